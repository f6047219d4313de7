//! `nanobot doctor`: the security guide's production checklist, every item a program can check,
//! each with its fix.

use crate::cli::globals::Globals;
use crate::config::{self, Loaded};
use crate::sandbox::{autostart, client, socket, vocab};
use anyhow::Result;
use nanobot_proto::pb::{InfoResponse, Layer};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// One JSON object instead of ✓/✗ lines
    #[arg(long)]
    pub json: bool,
    /// sandboxd socket to check (default: as the agent would pick it)
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// A failed critical check makes `doctor` exit non-zero.
    pub critical: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

fn check(name: &str, ok: bool, critical: bool, detail: String, fix: String) -> Check {
    Check {
        name: name.into(),
        ok,
        critical,
        detail,
        fix: if ok { String::new() } else { fix },
    }
}

/// How to get a sandboxd answering, on this machine (pure): with a socket named (flag,
/// environment, config) the daemon behind it must be started; otherwise nanobot starts one
/// itself, which needs the sandboxd binary.
pub fn reach_fix(
    named: Option<&Path>,
    binary: Result<&Path, &str>,
    system_unit: bool,
    config_flag: Option<&Path>,
) -> String {
    let nanobot = match config_flag {
        Some(c) => format!("nanobot -c {}", c.display()),
        None => "nanobot".into(),
    };
    let systemd = |s: &Path| system_unit && s == Path::new(socket::SYSTEM_SOCKET);
    match (named, binary) {
        (Some(s), _) if systemd(s) => "systemctl start sandboxd.socket".into(),
        (Some(s), Ok(_)) => format!(
            "start the sandboxd that listens on {}, or name no socket (drop --socket, unset \
             NANOBOT_SANDBOX_SOCKET, remove sandbox.socket from the config) and run `{nanobot} \
             exec -- true` to have one started for you",
            s.display()
        ),
        (Some(s), Err(_)) => format!("start the sandboxd that listens on {}", s.display()),
        (None, Ok(_)) if system_unit => format!(
            "systemctl start sandboxd.socket, or run `{nanobot} exec -- true` to start a per-user one"
        ),
        (None, Ok(_)) => format!("{nanobot} exec -- true"),
        (None, Err(why)) => format!(
            "install sandboxd ({why}): `cargo build --release` in the nanobot source tree puts \
             it next to nanobot, the nanobot .deb installs both; then run `{nanobot} exec -- true`"
        ),
    }
}

/// How to run sandboxd here: `sandboxd` when PATH finds it, else its full path.
fn sandboxd_command(binary: Option<&Path>) -> String {
    let in_path = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|d| Path::new(d).join("sandboxd").is_file());
    match binary {
        Some(b) if !in_path => b.display().to_string(),
        _ => "sandboxd".into(),
    }
}

/// How to stop running nanobot as root (pure): back to the user sudo came from, else the
/// `nanobot` user when it exists, else create one.
pub fn root_fix(sudo_user: Option<String>, nanobot_user: bool) -> String {
    match (sudo_user, nanobot_user) {
        (Some(u), _) => format!("run nanobot as {u}, without sudo"),
        (None, true) => "sudo -u nanobot -H nanobot doctor".into(),
        (None, false) => "useradd --create-home nanobot && sudo -u nanobot -H nanobot onboard \
             (or run nanobot from your own unprivileged account)"
            .into(),
    }
}

/// Whether the packaged systemd socket unit is installed.
fn system_unit_installed() -> bool {
    [
        "/etc/systemd/system",
        "/lib/systemd/system",
        "/usr/lib/systemd/system",
    ]
    .iter()
    .any(|d| Path::new(d).join("sandboxd.socket").is_file())
        && Path::new("/run/systemd/system").is_dir()
}

/// Checks on the config alone (pure; unit-tested).
pub fn config_checks(loaded: &Loaded, home: &Path) -> Vec<Check> {
    use std::os::unix::fs::PermissionsExt;
    let cfg = &loaded.config;
    let mut out = vec![];
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| m.permissions().mode() & 0o777)
    };
    match mode(home) {
        Some(m) => out.push(check(
            "config directory mode",
            m == 0o700,
            true,
            format!("{} is {m:o}", home.display()),
            format!("chmod 700 {}", home.display()),
        )),
        None => out.push(check(
            "config directory mode",
            false,
            true,
            format!("{} does not exist", home.display()),
            crate::cli::globals::onboard_command(&loaded.path),
        )),
    }
    match mode(&loaded.path) {
        Some(m) => out.push(check(
            "config file mode",
            m == 0o600,
            true,
            format!("{} is {m:o}", loaded.path.display()),
            format!("chmod 600 {}", loaded.path.display()),
        )),
        None => out.push(check(
            "config file",
            false,
            true,
            crate::cli::globals::missing(&loaded.path),
            crate::cli::globals::onboard_command(&loaded.path),
        )),
    }
    let root = crate::user::is_root();
    out.push(check(
        "not running as root",
        !root,
        true,
        if root {
            "running as root".into()
        } else {
            // SAFETY: geteuid has no preconditions.
            format!("uid {}", unsafe { libc::geteuid() })
        },
        root_fix(
            std::env::var("SUDO_USER")
                .ok()
                .filter(|u| !u.is_empty() && u != "root"),
            crate::user::exists("nanobot"),
        ),
    ));
    let open: Vec<&String> = cfg
        .channels
        .iter()
        .filter(|(_, c)| c.enabled && c.allow_from.is_empty())
        .map(|(n, _)| n)
        .collect();
    let enabled = cfg.channels.values().filter(|c| c.enabled).count();
    out.push(check(
        "allowFrom on every enabled channel",
        open.is_empty(),
        true,
        if open.is_empty() {
            format!(
                "{}, all restricted",
                crate::text::count(enabled as u64, "enabled channel")
            )
        } else {
            format!(
                "empty allowFrom lets anyone in: {}",
                open.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        open.iter()
            .map(|n| format!("set channels.{n}.allowFrom to the user ids allowed"))
            .collect::<Vec<_>>()
            .join("; "),
    ));
    out.extend(channel_checks(cfg));
    out.push(check(
        "restrictToWorkspace",
        cfg.restrict_to_workspace(),
        true,
        format!("{}", cfg.restrict_to_workspace()),
        "set agents.defaults.restrictToWorkspace to true".into(),
    ));
    let t = cfg.exec_timeout();
    out.push(check(
        "exec timeout",
        t > 0 && t <= 3600,
        true,
        format!(
            "{t} s{}",
            if cfg.agents.defaults.exec_config.timeout.is_none() {
                " (default)"
            } else {
                ""
            }
        ),
        "set agents.defaults.execConfig.timeout (seconds, e.g. 60)".into(),
    ));
    let literal = config::literal_secrets(&loaded.path);
    out.push(check(
        "secrets as ${VAR} references",
        literal.is_empty(),
        false,
        if literal.is_empty() {
            "no literal keys".into()
        } else {
            format!("written literally: {}", literal.join(", "))
        },
        "write \"${ENV_VAR}\" in the config and export the variable".into(),
    ));
    let provider = crate::provider::select(cfg);
    out.push(check(
        "model provider",
        provider.is_ok(),
        true,
        match &provider {
            Ok(p) => format!("{} via {} ({}), because {}", p.model, p.name, p.base, p.why),
            Err(e) => crate::cli::provider::explain(loaded, e),
        },
        match &provider {
            Ok(_) => String::new(),
            Err(e) => crate::cli::provider::fix(loaded, e),
        },
    ));
    out
}

/// The guide's per-channel items beyond allowFrom: each enabled channel's own settings (the
/// WhatsApp bridge token set and not the example value). A channel with its own checklist item
/// adds an arm here.
fn channel_checks(cfg: &crate::config::Config) -> Vec<Check> {
    let mut out = vec![];
    for (name, c) in cfg.channels.iter().filter(|(_, c)| c.enabled) {
        match name.as_str() {
            "whatsapp" => {
                let p = crate::channels::whatsapp::bridge_settings(c)
                    .err()
                    .unwrap_or_default();
                let w = crate::channels::whatsapp::warnings(c);
                out.push(check(
                    "WhatsApp bridge token",
                    p.is_empty(),
                    true,
                    if p.is_empty() {
                        "set, not the example value".into()
                    } else {
                        p.join("; ")
                    },
                    "set channels.whatsapp.bridgeToken to \"${WHATSAPP_BRIDGE_TOKEN}\" and put the same secret (openssl rand -hex 32) in the bridge's BRIDGE_TOKEN".into(),
                ));
                out.push(check(
                    "WhatsApp bridge on this host",
                    w.is_empty(),
                    false,
                    if w.is_empty() {
                        "loopback or Unix socket".into()
                    } else {
                        w.join("; ")
                    },
                    "run the bridge on this host, bound to 127.0.0.1 (the default)".into(),
                ));
            }
            "email" => {
                let mut problems = crate::channels::email::check(c);
                if c.allow_from.is_empty() {
                    problems.push("channels.email.allowFrom is empty".into());
                }
                out.push(check(
                    "email channel",
                    problems.is_empty(),
                    true,
                    if problems.is_empty() {
                        format!(
                            "consent granted, {}",
                            crate::text::count(c.allow_from.len() as u64, "allowed sender")
                        )
                    } else {
                        problems.join("; ")
                    },
                    "fix the channels.email keys named (docs/channels.md, Email)".into(),
                ));
            }
            _ => {
                let p = crate::channels::registry::channel_problems(name, c);
                if !p.is_empty() {
                    out.push(check(
                        &format!("{name} settings"),
                        false,
                        true,
                        p.join("; "),
                        format!("complete channels.{name} in the config"),
                    ));
                }
            }
        }
    }
    out
}

fn log_check(g: &Globals) -> Check {
    let log = g.home_dir().join("logs/nanobot.log");
    let r = (|| -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if let Some(d) = log.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log)
            .map(drop)
    })();
    check(
        "log file writable",
        r.is_ok(),
        true,
        match &r {
            Ok(()) => log.display().to_string(),
            Err(e) => format!("{}: {e}", log.display()),
        },
        format!(
            "make {} writable by this user",
            log.parent().unwrap_or(&log).display()
        ),
    )
}

fn sandbox_checks(
    tried: &[PathBuf],
    found: Option<&Path>,
    info: Option<&InfoResponse>,
    fix: String,
    autostarted: bool,
    sandboxd: &str,
) -> Vec<Check> {
    let shown: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    let mut out = vec![check(
        "sandboxd reachable",
        info.is_some(),
        true,
        match found {
            Some(s) => s.display().to_string(),
            None => format!("no answer on {}", shown.join(", ")),
        },
        fix,
    )];
    if let Some(i) = info {
        // Info's layer names and problem prefixes are the contract's (`vocab::layer_name`); a
        // missing layer's problem already says why and what to change on the daemon's host
        // (sandboxd words it once, in its host.rs), so it is shown as sent, with no second hint.
        let has = |l: Layer| i.layers_enforced.contains(&vocab::layer_name(l));
        let why_not = |l: Layer| {
            let prefix = format!("{}: ", vocab::layer_name(l));
            let problems: Vec<&str> = i
                .problems
                .iter()
                .filter_map(|p| p.strip_prefix(&prefix))
                .collect();
            if !problems.is_empty() {
                format!("not enforced: {}", problems.join("; "))
            } else if !i.problems.is_empty() {
                format!("not enforced: {}", i.problems.join("; "))
            } else if i
                .degraded
                .iter()
                .any(|d| d.starts_with(&vocab::layer_name(l)))
            {
                // Allowed to be missing (allow_degraded): Info lists it as degraded, not as a
                // problem.
                format!("not enforced: degraded ({})", i.degraded.join("; "))
            } else {
                "not enforced (sandboxd gave no reason)".to_string()
            }
        };
        let fix = format!("{sandboxd} doctor says why");
        out.push(check(
            "sandboxd enforces Landlock",
            has(Layer::Landlock) && i.landlock_abi > 0,
            true,
            if has(Layer::Landlock) {
                format!("Landlock ABI {}", i.landlock_abi)
            } else {
                why_not(Layer::Landlock)
            },
            fix.clone(),
        ));
        out.push(check(
            "sandboxd enforces seccomp",
            has(Layer::Seccomp),
            true,
            if has(Layer::Seccomp) {
                i.layers_enforced.join(", ")
            } else {
                why_not(Layer::Seccomp)
            },
            fix,
        ));
        out.push(check(
            "sandboxd not degraded",
            i.degraded.is_empty(),
            true,
            if i.degraded.is_empty() {
                "all layers".into()
            } else {
                format!("running without: {}", i.degraded.join(", "))
            },
            if autostarted {
                format!(
                    "the sandboxd nanobot started for you runs as you, without root, and so \
                     without those layers: run sandboxd as root with --user (see `{sandboxd} \
                     doctor` and the operator section of the README), then `nanobot sandbox stop`"
                )
            } else {
                format!(
                    "{sandboxd} doctor says why; remove allow_degraded from sandboxd.toml once \
                     the host supports every layer"
                )
            },
        ));
    }
    out
}

/// What is wrong with a config that did not load, and the fix for that cause: a position to
/// edit only where there is one.
fn unparsed_config(e: &config::ConfigError, path: &Path) -> (String, String) {
    use config::ConfigError::*;
    match e {
        Read { path: shown, err } => {
            let detail = format!("cannot read {shown}: {}", crate::errors::plain_io(err));
            let fix = if path.is_dir() {
                let inside = path.join("config.json");
                // A config file inside the directory the -c named.
                format!("nanobot -c {} onboard", inside.display())
            } else if err.kind() == std::io::ErrorKind::PermissionDenied {
                format!(
                    "make it readable by you: ls -l {} shows its owner and mode",
                    path.display()
                )
            } else {
                format!("check {} (ls -l {})", path.display(), path.display())
            };
            (detail, fix)
        }
        Syntax { .. } | Type { .. } => (e.to_string(), "fix the file at the position shown".into()),
        Env { var, .. } => (e.to_string(), format!("unset {var}")),
    }
}

pub async fn run(g: &Globals, a: DoctorArgs) -> Result<i32> {
    let path = g.config_path();
    let mut checks = vec![];
    // A config that does not exist is reported by config_checks ("config file"), not as parsed.
    let loaded = match config::load(&path) {
        Ok(l) => Some(l),
        Err(e) => {
            let (detail, fix) = unparsed_config(&e, &path);
            checks.push(check("config parses", false, true, detail, fix));
            None
        }
    };
    if let Some(l) = &loaded {
        if l.exists {
            checks.push(check(
                "config parses",
                true,
                true,
                format!(
                    "{}{}",
                    path.display(),
                    if l.warnings.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", l.warnings.join("; "))
                    }
                ),
                String::new(),
            ));
        }
        checks.extend(config_checks(l, &g.home_dir()));
    }
    checks.push(log_check(g));
    let cfg = loaded.map(|l| l.config).unwrap_or_default();
    let (tried, found) = socket::locate(a.socket.clone(), cfg.sandbox.socket.as_deref()).await;
    let inf = match &found {
        Some(s) => client::info(s).await,
        None => None,
    };
    let named = match socket::candidates(a.socket.clone(), cfg.sandbox.socket.as_deref()) {
        socket::Candidates::Named(s) => Some(s),
        socket::Candidates::Defaults(_) => None,
    };
    let binary = autostart::sandboxd_binary().map_err(|e| e.to_string());
    let fix = reach_fix(
        named.as_deref(),
        binary.as_deref().map_err(String::as_str),
        system_unit_installed(),
        g.config.as_deref(),
    );
    let autostarted = found
        .as_deref()
        .is_some_and(|s| autostart::started(s).is_some());
    checks.extend(sandbox_checks(
        &tried,
        found.as_deref(),
        inf.as_ref(),
        fix,
        autostarted,
        &sandboxd_command(binary.as_deref().ok()),
    ));
    let ok = checks.iter().all(|c| c.ok || !c.critical);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"ok": ok, "checks": checks}))?
        );
    } else {
        for c in &checks {
            let mark = if c.ok {
                "✓"
            } else if c.critical {
                "✗"
            } else {
                "!"
            };
            println!("{mark} {}: {}", c.name, c.detail);
            if !c.ok {
                println!("    fix: {}", c.fix);
            }
        }
        println!(
            "\n{}",
            if ok {
                "Ready for production."
            } else {
                "Not ready: fix the ✗ items above."
            }
        );
    }
    Ok(if ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_channels_and_loose_settings_fail_critically() {
        let dir = std::env::temp_dir().join(format!("nanobot-doc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("config.json");
        std::fs::write(
            &p,
            r#"{"channels": {"telegram": {"enabled": true, "allowFrom": []},
                             "email": {"enabled": true, "allowFrom": ["a@b"]}},
                "agents": {"defaults": {"restrictToWorkspace": false}},
                "providers": {"openrouter": {"apiKey": "sk-literal"}}}"#,
        )
        .unwrap();
        let l = config::load_with_env(&p, &[]).unwrap();
        let checks = config_checks(&l, &dir);
        let get = |n: &str| checks.iter().find(|c| c.name == n).unwrap().clone();
        let ch = get("allowFrom on every enabled channel");
        assert!(!ch.ok && ch.critical && ch.detail.contains("telegram"));
        assert!(ch.fix.contains("channels.telegram.allowFrom"));
        assert!(!get("restrictToWorkspace").ok);
        let s = get("secrets as ${VAR} references");
        assert!(!s.ok && !s.critical && s.detail.contains("providers.openrouter.apiKey"));
        assert!(get("model provider").ok);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn email_channel_needs_consent_and_passwords_from_the_environment() {
        let dir = std::env::temp_dir().join(format!("nanobot-doc-email-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("config.json");
        let write = |consent: bool, pw: &str| {
            std::fs::write(
                &p,
                serde_json::json!({"channels": {"email": {
                    "enabled": true, "consentGranted": consent, "allowFrom": ["a@example.com"],
                    "imapHost": "imap.example.com", "imapUsername": "bot", "imapPassword": pw,
                    "smtpHost": "smtp.example.com", "smtpUsername": "bot@example.com",
                    "smtpPassword": "${SMTP_PW}"}}})
                .to_string(),
            )
            .unwrap();
            config::load_with_env(
                &p,
                &[
                    ("SMTP_PW".into(), "x".into()),
                    ("IMAP_PW".into(), "y".into()),
                ],
            )
            .unwrap()
        };
        let get = |checks: &[Check], n: &str| checks.iter().find(|c| c.name == n).unwrap().clone();
        let checks = config_checks(&write(false, "literal"), &dir);
        let e = get(&checks, "email channel");
        assert!(
            !e.ok && e.critical && e.detail.contains("consentGranted"),
            "{e:?}"
        );
        let s = get(&checks, "secrets as ${VAR} references");
        assert!(
            !s.ok && s.detail.contains("channels.email.imapPassword"),
            "{s:?}"
        );
        assert!(!s.detail.contains("smtpPassword"), "{s:?}");
        let checks = config_checks(&write(true, "${IMAP_PW}"), &dir);
        let e = get(&checks, "email channel");
        assert!(e.ok, "{e:?}");
        assert!(get(&checks, "secrets as ${VAR} references").ok);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn whatsapp_needs_a_real_bridge_token() {
        let dir = std::env::temp_dir().join(format!("nanobot-doc-wa-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("config.json");
        let run = |wa: &str| {
            std::fs::write(&p, format!("{{\"channels\": {{\"whatsapp\": {wa}}}}}")).unwrap();
            let l = config::load_with_env(&p, &[]).unwrap();
            config_checks(&l, &dir)
                .into_iter()
                .filter(|c| c.name.starts_with("WhatsApp"))
                .collect::<Vec<_>>()
        };
        let c = run(
            r#"{"enabled": true, "allowFrom": ["+1234567890"], "bridgeToken": "your-secret-token-here"}"#,
        );
        assert!(
            !c[0].ok && c[0].critical && c[0].detail.contains("example value"),
            "{c:?}"
        );
        let c = run(r#"{"enabled": true, "allowFrom": ["+1234567890"]}"#);
        assert!(!c[0].ok && c[0].detail.contains("not set"), "{c:?}");
        let c = run(
            r#"{"enabled": true, "allowFrom": ["+1234567890"], "bridgeToken": "x9", "bridgeUrl": "ws://10.1.1.1:3001"}"#,
        );
        assert!(c[0].ok && !c[1].ok && !c[1].critical, "{c:?}");
        assert!(run(r#"{"enabled": false, "bridgeToken": ""}"#).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sandbox_checks_need_landlock_and_seccomp() {
        let checks = |i: &InfoResponse| {
            sandbox_checks(
                &[],
                Some(Path::new("/s")),
                Some(i),
                String::new(),
                false,
                "sandboxd",
            )
        };
        let i = InfoResponse {
            landlock_abi: 7,
            layers_enforced: vec!["landlock".into(), "seccomp".into()],
            ..Default::default()
        };
        let c = checks(&i);
        assert!(c.iter().all(|c| c.ok), "{c:?}");
        let i = InfoResponse {
            layers_enforced: vec!["seccomp".into()],
            degraded: vec!["landlock".into()],
            ..Default::default()
        };
        let c = checks(&i);
        assert_eq!(c.iter().filter(|c| !c.ok).count(), 2);
        // Allowed to be degraded: said so, never an empty "not enforced: ".
        assert_eq!(c[1].detail, "not enforced: degraded (landlock)");
        let c = checks(&InfoResponse::default());
        assert_eq!(c[1].detail, "not enforced (sandboxd gave no reason)");
        // A missing layer shows Info's problem for that layer (it carries sandboxd's own fix),
        // not a second hint of the agent's.
        let i = InfoResponse {
            layers_enforced: vec!["namespaces".into()],
            problems: vec![
                "landlock: the Landlock syscalls are blocked (EPERM); allow them".into(),
                "seccomp: seccomp(SECCOMP_GET_ACTION_AVAIL) failed; allow the seccomp syscall"
                    .into(),
            ],
            ..Default::default()
        };
        let c = checks(&i);
        assert_eq!(
            c[1].detail,
            "not enforced: the Landlock syscalls are blocked (EPERM); allow them"
        );
        assert!(
            c[2].detail.contains("allow the seccomp syscall") && !c[2].detail.contains("EPERM")
        );
        assert!(
            !c[1].fix.contains("5.13") && !c[1].fix.contains("lsm="),
            "{}",
            c[1].fix
        );
        let c = sandbox_checks(
            &[PathBuf::from("/x")],
            None,
            None,
            "f".into(),
            false,
            "sandboxd",
        );
        assert!(!c[0].ok && c[0].detail.contains("/x"));
    }

    /// Every fix for an unreachable sandboxd works on the machine it is printed on: no
    /// `nanobot exec` where no sandboxd binary exists, no systemctl without the unit, -c kept.
    #[test]
    fn the_reach_fix_fits_the_machine() {
        let bin = Ok(Path::new("/usr/bin/sandboxd"));
        let none = || Err("sandboxd not found next to nanobot or in PATH");
        assert_eq!(reach_fix(None, bin, false, None), "nanobot exec -- true");
        assert_eq!(
            reach_fix(None, bin, false, Some(Path::new("/x/c.json"))),
            "nanobot -c /x/c.json exec -- true"
        );
        assert!(reach_fix(None, bin, true, None).starts_with("systemctl start sandboxd.socket"));
        let f = reach_fix(None, none(), false, None);
        assert!(f.starts_with("install sandboxd (sandboxd not found"), "{f}");
        let sys = Path::new(socket::SYSTEM_SOCKET);
        assert_eq!(
            reach_fix(Some(sys), none(), true, None),
            "systemctl start sandboxd.socket"
        );
        let f = reach_fix(Some(sys), none(), false, None);
        assert!(
            !f.contains("systemctl") && !f.contains("exec -- true"),
            "{f}"
        );
        let f = reach_fix(Some(Path::new("/tmp/s.sock")), bin, true, None);
        assert!(
            f.contains("/tmp/s.sock") && f.contains("nanobot exec -- true"),
            "{f}"
        );
    }

    #[test]
    fn a_missing_config_is_not_parsed_and_onboard_writes_it() {
        assert_eq!(
            crate::cli::globals::onboard_command(&config::default_path()),
            "nanobot onboard"
        );
        let l = config::load_with_env(Path::new("/nonexistent/c.json"), &[]).unwrap();
        let checks = config_checks(&l, Path::new("/nonexistent"));
        let f = checks.iter().find(|c| c.name == "config file").unwrap();
        assert!(
            !f.ok && f.detail == "/nonexistent/c.json does not exist",
            "{f:?}"
        );
        assert_eq!(f.fix, "nanobot -c /nonexistent/c.json onboard");
    }

    #[test]
    fn the_root_fix_names_a_user_that_exists() {
        assert_eq!(
            root_fix(Some("alice".into()), true),
            "run nanobot as alice, without sudo"
        );
        assert_eq!(root_fix(None, true), "sudo -u nanobot -H nanobot doctor");
        assert!(root_fix(None, false).starts_with("useradd --create-home nanobot && "));
    }
}

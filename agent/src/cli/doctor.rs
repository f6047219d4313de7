//! `nanobot doctor`: the security guide's production checklist, every item a program can check,
//! each with its fix.

use crate::cli::globals::Globals;
use crate::config::{self, Loaded};
use crate::sandbox::{client, socket};
use anyhow::Result;
use nanobot_proto::pb::InfoResponse;
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
            "nanobot onboard".into(),
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
            format!("{} does not exist", loaded.path.display()),
            "nanobot onboard".into(),
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
        "run nanobot as an unprivileged user, e.g. sudo -u nanobot nanobot agent".into(),
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
            Ok(p) => format!("{} via {} ({})", p.model, p.name, p.base),
            Err(e) => e.to_string(),
        },
        "set providers.<name>.apiKey in the config".into(),
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
            // "email": consentGranted (added with the email channel).
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
        "start it (systemctl start sandboxd.socket), or run `nanobot exec -- true` to start a per-user one".into(),
    )];
    if let Some(i) = info {
        let has = |l: &str| i.layers_enforced.iter().any(|x| x == l);
        out.push(check(
            "sandboxd enforces Landlock",
            has("landlock") && i.landlock_abi > 0,
            true,
            if has("landlock") {
                format!("Landlock ABI {}", i.landlock_abi)
            } else {
                format!("not enforced: {}", i.problems.join("; "))
            },
            "see `sandboxd doctor`; Landlock needs Linux 5.13+ and lsm=landlock".into(),
        ));
        out.push(check(
            "sandboxd enforces seccomp",
            has("seccomp"),
            true,
            i.layers_enforced.join(", "),
            "see `sandboxd doctor`".into(),
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
            "remove allow_degraded from sandboxd.toml once the host supports every layer".into(),
        ));
    }
    out
}

pub async fn run(g: &Globals, a: DoctorArgs) -> Result<i32> {
    let path = g.config_path();
    let mut checks = vec![];
    let loaded = match config::load(&path) {
        Ok(l) => Some(l),
        Err(e) => {
            checks.push(check(
                "config parses",
                false,
                true,
                e.to_string(),
                "fix the file at the position shown".into(),
            ));
            None
        }
    };
    if let Some(l) = &loaded {
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
        checks.extend(config_checks(l, &g.home_dir()));
    }
    checks.push(log_check(g));
    let cfg = loaded.map(|l| l.config).unwrap_or_default();
    let (tried, found) = socket::locate(a.socket.clone(), cfg.sandbox.socket.as_deref()).await;
    let inf = match &found {
        Some(s) => client::info(s).await,
        None => None,
    };
    checks.extend(sandbox_checks(&tried, found.as_deref(), inf.as_ref()));
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
        let i = InfoResponse {
            landlock_abi: 7,
            layers_enforced: vec!["landlock".into(), "seccomp".into()],
            ..Default::default()
        };
        let c = sandbox_checks(&[], Some(Path::new("/s")), Some(&i));
        assert!(c.iter().all(|c| c.ok), "{c:?}");
        let i = InfoResponse {
            layers_enforced: vec!["seccomp".into()],
            degraded: vec!["landlock".into()],
            ..Default::default()
        };
        let c = sandbox_checks(&[], Some(Path::new("/s")), Some(&i));
        assert_eq!(c.iter().filter(|c| !c.ok).count(), 2);
        let c = sandbox_checks(&[PathBuf::from("/x")], None, None);
        assert!(!c[0].ok && c[0].detail.contains("/x"));
    }
}

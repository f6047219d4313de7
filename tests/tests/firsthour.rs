//! The first hour of a laptop user (issue 16), end to end: warnings only where they concern the
//! command, an explicit provider with its reason, a missing `-c` file said as such, an
//! auto-started sandboxd that is announced and can be inspected and stopped, errors as one
//! sentence, and `doctor` fixes that work on the machine. nanobot runs as the unprivileged test
//! user with a fresh HOME and a cleared environment (no XDG_RUNTIME_DIR: the per-user socket is
//! ~/.nanobot/run/sandboxd.sock, so each test's auto-started daemon is its own).

use nanobot_e2e::llm::{self, Server};
use nanobot_e2e::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A fresh home for the test user; stops the sandboxd nanobot started in it, if any, on drop.
struct Home {
    base: UserHome,
    env: Vec<(String, String)>,
}

impl std::ops::Deref for Home {
    type Target = UserHome;
    fn deref(&self) -> &UserHome {
        &self.base
    }
}

impl Home {
    fn new(tag: &str) -> Home {
        Home {
            base: UserHome::bare("first", tag),
            env: vec![],
        }
    }

    fn socket(&self) -> PathBuf {
        self.dot().join("run/sandboxd.sock")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = self.base.command(args);
        c.current_dir(&self.dir);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = self.run(&["sandbox", "stop"]);
        // Whatever `sandbox stop` did not stop (it is under test too) must not outlive the test.
        for pid in nanobot_e2e::pids_with(&self.dir.to_string_lossy()) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // `base` removes the directory after this.
    }
}

fn template() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/config.json"))
        .unwrap()
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

/// The onboard template names openrouter's key as `${OPENROUTER_API_KEY}`: commands that need no
/// provider say nothing about it, `status` reports it as a line, and the agent, which needs it,
/// says which variable to export.
#[test]
fn an_unset_key_is_heard_only_where_a_provider_is_needed() {
    let d = Daemon::start();
    let home = Home::new("unset");
    home.write_config(&template());
    assert!(template().contains("\"provider\": \"openrouter\""));
    let ws = d.ws.to_string_lossy().into_owned();
    let socket = d.socket.to_string_lossy().into_owned();
    for args in [
        vec!["exec", "--socket", &socket, "-w", &ws, "--", "true"],
        vec![
            "tool",
            "exec",
            "{\"command\": \"true\"}",
            "--socket",
            &socket,
            "-w",
            &ws,
        ],
        vec!["status", "--socket", &socket, "-w", &ws],
    ] {
        let o = home.run(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", show(&o));
        assert!(
            !stderr(&o).contains("OPENROUTER_API_KEY"),
            "{args:?} warns about a provider it does not use: {}",
            show(&o)
        );
    }
    let o = home.run(&["status", "--socket", &socket, "-w", &ws]);
    assert!(
        stdout(&o).contains(
            "provider:   none — agents.defaults.provider is \"openrouter\", but its key is not set"
        ) && stdout(&o).contains("export OPENROUTER_API_KEY="),
        "{}",
        show(&o)
    );
    let o = home.run(&["agent", "-m", "hi", "--socket", &socket, "-w", &ws]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        stderr(&o).contains("export OPENROUTER_API_KEY=<your key>"),
        "{}",
        show(&o)
    );

    // A custom provider chosen: its own unset reference warns in the agent, openrouter's does not.
    let server = Server::start(vec![llm::openai_text("hello back")]);
    home.write_config(
        &json!({
            "agents": {"defaults": {"provider": "custom", "model": "m"}},
            "providers": {"openrouter": {"apiKey": "${OPENROUTER_API_KEY}"},
                          "custom": {"apiBase": server.base(), "apiKey": "${CUSTOM_KEY}"}},
            "sandbox": {"socket": d.socket},
        })
        .to_string(),
    );
    let o = home.run(&["agent", "-m", "hi", "--quiet", "-w", &ws]);
    assert_eq!(stdout(&o), "hello back\n", "{}", show(&o));
    assert!(
        stderr(&o).contains("providers.custom.apiKey refers to ${CUSTOM_KEY}")
            && !stderr(&o).contains("OPENROUTER_API_KEY"),
        "{}",
        show(&o)
    );
}

/// With a custom provider chosen in agents.defaults.provider, an OPENROUTER_API_KEY that appears
/// in the environment changes nothing; `status` says which provider and why. A config without the
/// key (older than it) still works, and a guess among several is said.
#[test]
fn the_provider_is_explicit_and_status_says_why() {
    let d = Daemon::start();
    let server = Server::start(vec![llm::openai_text("from custom")]);
    let mut home = Home::new("explicit");
    home.env.push((
        "OPENROUTER_API_KEY".into(),
        "sk-or-should-not-be-used".into(),
    ));
    let ws = d.ws.to_string_lossy().into_owned();
    let cfg = |provider: Option<&str>| {
        let mut v = json!({
            "agents": {"defaults": {"model": "m"}},
            "providers": {"openrouter": {"apiKey": "${OPENROUTER_API_KEY}"},
                          "custom": {"apiBase": server.base()}},
            "sandbox": {"socket": d.socket},
        });
        if let Some(p) = provider {
            v["agents"]["defaults"]["provider"] = json!(p);
        }
        v.to_string()
    };
    home.write_config(&cfg(Some("custom")));
    let o = home.run(&["status", "-w", &ws]);
    assert!(
        stdout(&o).contains(&format!(
            "provider:   custom ({}), because agents.defaults.provider = custom",
            server.base()
        )) && stdout(&o).contains("model:      m"),
        "{}",
        show(&o)
    );
    let o = home.run(&["agent", "-m", "hi", "--quiet", "-w", &ws]);
    assert_eq!(stdout(&o), "from custom\n", "{}", show(&o));
    assert_eq!(server.recorded().len(), 1);

    // No agents.defaults.provider: the documented fallback, said in status (the agent would
    // warn the same way, but it would then call openrouter: not from a test).
    home.write_config(&cfg(None));
    let o = home.run(&["status", "-w", &ws]);
    assert!(
        stdout(&o).contains("provider:   openrouter")
            && stdout(&o).contains("agents.defaults.provider is not set"),
        "{}",
        show(&o)
    );
    // An explicit provider that is not configured names what to add.
    home.write_config(&cfg(Some("anthropic")));
    let o = home.run(&["agent", "-m", "hi", "-w", &ws]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        stderr(&o).contains("agents.defaults.provider is \"anthropic\", but providers.anthropic is not in the config"),
        "{}",
        show(&o)
    );
}

/// `-c` naming a file that does not exist is said as such by every command, instead of "no
/// provider is configured"; doctor reports it as a ✗ whose fix, run as shown, writes it.
#[test]
fn a_missing_config_file_is_said_by_every_command() {
    let home = Home::new("missingc");
    let missing = home.dir.join("nope/config.json");
    let m = missing.to_string_lossy().into_owned();
    for args in [
        vec!["exec", "--", "true"],
        vec!["tool", "exec", "{\"command\": \"true\"}"],
        vec!["status"],
        vec!["agent", "-m", "hi"],
        vec!["gateway"],
        vec!["sandbox", "status"],
    ] {
        let mut full = vec!["-c", &m];
        full.extend(args.iter().copied());
        let o = home.run(&full);
        assert_ne!(o.status.code(), Some(0), "{full:?}: {}", show(&o));
        assert!(
            stderr(&o).contains(&format!("config file {m} does not exist")),
            "{full:?}: {}",
            show(&o)
        );
        assert!(
            !stderr(&o).contains("no provider is configured"),
            "{}",
            show(&o)
        );
    }
    let o = home.run(&["-c", &m, "doctor"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let out = stdout(&o);
    assert!(!out.contains("config parses"), "{out}");
    assert!(
        out.contains(&format!("✗ config file: {m} does not exist")),
        "{out}"
    );
    let fix = format!("nanobot -c {m} onboard");
    assert!(out.contains(&format!("fix: {fix}")), "{out}");
    // The fix works as printed (after creating the directory it names, which onboard does).
    let words: Vec<&str> = fix.split_whitespace().skip(1).collect();
    let o = home.run(&words);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let o = home.run(&["-c", &m, "doctor"]);
    assert!(
        stdout(&o).contains("✓ config parses") && !stdout(&o).contains("✗ config file"),
        "{}",
        show(&o)
    );
}

/// No daemon anywhere: the first command starts one and says so in one line; `sandbox status`
/// shows it; a workspace outside its roots gets the fix; `sandbox stop` stops it (and only it).
#[test]
fn an_auto_started_daemon_is_announced_inspected_and_stopped() {
    let home = Home::new("auto");
    let o = home.run(&["exec", "--", "echo hi"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(stdout(&o), "hi\n");
    let socket = home.socket();
    let err = stderr(&o);
    let announced: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("started sandboxd for you"))
        .collect();
    assert_eq!(announced.len(), 1, "{}", show(&o));
    for want in [
        format!("on {}", socket.display()),
        format!("serving workspaces under {}", home.dir.display()),
        format!("log {}", home.dot().join("logs/sandboxd.log").display()),
        "stop it with: nanobot sandbox stop".to_string(),
    ] {
        assert!(announced[0].contains(&want), "{want:?} in {}", announced[0]);
    }
    // The second command reuses it, silently.
    let o = home.run(&["exec", "--", "true"]);
    assert!(!stderr(&o).contains("started sandboxd"), "{}", show(&o));

    let o = home.run(&["sandbox", "status"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("socket:     {}", socket.display()))
            && out.contains("started by: nanobot")
            && out.contains(&format!("roots:      {}", home.dir.display()))
            && out.contains("health:     "),
        "{out}"
    );
    let pid: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("pid:        "))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {out}"));
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    // A workspace outside the daemon's roots: refused before asking, with the fix.
    let outside = PathBuf::from(format!(
        "/var/tmp/nanobot-e2e-first-out-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&outside).unwrap();
    let (uid, gid) = test_ids();
    chown(&outside, uid, gid);
    let o = home.run(&["-w", &outside.to_string_lossy(), "exec", "--", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(
        stderr(&o).contains(&format!("workspace {} is outside", outside.display()))
            && stderr(&o).contains("run `nanobot sandbox stop` and try again"),
        "{}",
        show(&o)
    );

    let o = home.run(&["sandbox", "stop"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        stdout(&o).contains(&format!("stopped sandboxd (pid {pid})")),
        "{}",
        show(&o)
    );
    let o = home.run(&["sandbox", "status"]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    let o = home.run(&["sandbox", "stop"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stdout(&o).contains("no sandboxd started by nanobot is running"));

    // As the fix said: after the stop, the workspace outside is served by the next daemon.
    let o = home.run(&["-w", &outside.to_string_lossy(), "exec", "--", "pwd"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(stdout(&o).trim(), outside.to_string_lossy());
    let _ = home.run(&["sandbox", "stop"]);
    let _ = std::fs::remove_dir_all(&outside);

    // A daemon nanobot did not start is left alone, with exit 1.
    let d = Daemon::start();
    let o = home.run(&["sandbox", "stop", "--socket", &d.socket.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        stderr(&o).contains("was not started by nanobot"),
        "{}",
        show(&o)
    );
    let o = home.run(&["sandbox", "status", "--socket", &d.socket.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        stdout(&o).contains("started by: not nanobot"),
        "{}",
        show(&o)
    );
}

/// A socket that does not exist: one sentence, the cause once, a hint; no "os error", no
/// "transport error".
#[test]
fn a_missing_socket_is_one_sentence_with_a_hint() {
    let home = Home::new("nosock");
    let o = home.run(&[
        "exec",
        "--socket",
        "/nonexistent/sandboxd.sock",
        "--",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.starts_with(
            "nanobot: cannot reach sandboxd: /nonexistent/sandboxd.sock does not exist; "
        ) && e.contains("nanobot sandbox status"),
        "{e}"
    );
    for bad in ["os error", "transport error", "No such file or directory"] {
        assert!(!e.contains(bad), "{bad:?} in {e}");
    }
}

/// A provider that refuses connections: each retry is one plain line (no ANSI escapes when
/// stderr is a file), and the final error says "connection refused".
#[test]
fn provider_retries_are_plain_lines_and_the_error_keeps_its_cause() {
    let d = Daemon::start();
    let home = Home::new("refused");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    home.write_config(
        &json!({
            "agents": {"defaults": {"provider": "custom", "model": "m"}},
            "providers": {"custom": {"apiBase": format!("http://127.0.0.1:{port}/v1")}},
            "sandbox": {"socket": d.socket},
        })
        .to_string(),
    );
    let o = home.run(&["agent", "-m", "hi", "-w", &d.ws.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let e = stderr(&o);
    assert!(!e.contains('\x1b'), "ANSI escapes in a file: {e:?}");
    assert!(!e.contains("WARN"), "{e}");
    let base = format!("http://127.0.0.1:{port}/v1");
    assert!(
        e.contains(&format!(
            "nanobot: warning: custom: cannot connect to {base}: connection refused (attempt 1 of 4), retrying in 1 s"
        )) && e.contains("(attempt 3 of 4), retrying in 4 s"),
        "{e}"
    );
    let last = e.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("nanobot: provider custom (model m) failed after 4 attempts")
            && last.contains("connection refused"),
        "{e}"
    );
}

/// Every ✗ of `doctor` comes with a fix that works here: the command printed for an unreachable
/// default socket runs and makes the check pass; with no sandboxd binary it says to install one
/// instead of suggesting a command that would fail; a named socket's fix names it.
#[test]
fn doctor_fixes_work_on_this_machine() {
    let mut home = Home::new("doctor");
    home.write_config(
        &json!({"agents": {"defaults": {"provider": "custom"}},
        "providers": {"custom": {"apiBase": "http://127.0.0.1:9/v1"}}})
        .to_string(),
    );
    let fix_of = |out: &str, name: &str| -> String {
        let mut lines = out.lines();
        lines
            .find(|l| l.starts_with(&format!("✗ {name}")))
            .and_then(|_| lines.next())
            .and_then(|l| l.trim().strip_prefix("fix: "))
            .unwrap_or_else(|| panic!("no ✗ {name} with a fix in\n{out}"))
            .to_string()
    };
    // No sandboxd binary: install it, not `nanobot exec`.
    home.env
        .push(("NANOBOT_SANDBOXD".into(), "/nonexistent/sandboxd".into()));
    let o = home.run(&["doctor"]);
    let fix = fix_of(&stdout(&o), "sandboxd reachable");
    assert!(
        fix.starts_with(
            "install sandboxd (NANOBOT_SANDBOXD is /nonexistent/sandboxd, which is not a file)"
        ),
        "{fix}"
    );
    home.env.clear();

    // A named socket nobody serves: the fix names it.
    home.env.push((
        "NANOBOT_SANDBOX_SOCKET".into(),
        "/nonexistent/s.sock".into(),
    ));
    let o = home.run(&["doctor"]);
    let fix = fix_of(&stdout(&o), "sandboxd reachable");
    assert!(fix.contains("/nonexistent/s.sock"), "{fix}");
    home.env.clear();

    // The defaults: the printed command works as shown and makes the check pass.
    let o = home.run(&["doctor"]);
    let fix = fix_of(&stdout(&o), "sandboxd reachable");
    let words: Vec<&str> = fix.split_whitespace().collect();
    match words.first() {
        Some(&"nanobot") => {
            let o = home.run(&words[1..]);
            assert_eq!(o.status.code(), Some(0), "{fix}: {}", show(&o));
        }
        Some(&"systemctl") => {
            assert!(Path::new("/run/systemd/system").is_dir(), "{fix}");
            return;
        }
        _ => panic!("not a command: {fix}"),
    }
    let o = home.run(&["doctor"]);
    assert!(
        stdout(&o).contains(&format!(
            "✓ sandboxd reachable: {}",
            home.socket().display()
        )),
        "{}",
        show(&o)
    );
}

/// `nanobot … | head -1`: a reader that goes away ends the command quietly (SIGPIPE, as other
/// tools do), not with a Rust panic on stderr and exit 101.
#[test]
fn a_closed_stdout_ends_quietly() {
    let home = Home::new("epipe");
    home.write_config(&template());
    for args in [
        vec!["completions", "bash"],
        vec!["status"],
        vec!["sandbox", "status"],
        vec!["doctor"],
        vec!["sandbox", "stop"],
    ] {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid array of two ints.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both fds were just returned by pipe() and are owned here.
        let (r, w) = unsafe {
            use std::os::fd::FromRawFd;
            (
                std::os::fd::OwnedFd::from_raw_fd(fds[0]),
                std::os::fd::OwnedFd::from_raw_fd(fds[1]),
            )
        };
        drop(r); // the reader is gone before the first line
        let o = home
            .command(&args)
            .stdout(Stdio::from(w))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = stderr(&o);
        assert!(
            !err.contains("panicked") && o.status.code() != Some(101),
            "{args:?}: {:?}\n{err}",
            o.status
        );
    }
}

/// A config that cannot be read or is overridden wrongly: doctor's fix is a command for that
/// cause that works here (not "fix the file at the position shown", which names no position).
#[test]
fn doctor_fixes_an_unreadable_config() {
    let home = Home::new("doctorcfg");
    let (uid, gid) = test_ids();
    let fix_of = |o: &Output| -> String {
        let out = stdout(o);
        let mut lines = out.lines();
        lines
            .find(|l| l.starts_with("✗ config parses"))
            .and_then(|_| lines.next())
            .and_then(|l| l.trim().strip_prefix("fix: "))
            .unwrap_or_else(|| panic!("no ✗ config parses with a fix in\n{}", show(o)))
            .to_string()
    };
    // -c names a directory: the fix puts the config inside it, and then it parses.
    let dir = home.dir.join("confdir");
    std::fs::create_dir_all(&dir).unwrap();
    chown(&dir, uid, gid);
    let d = dir.to_string_lossy().into_owned();
    let o = home.run(&["-c", &d, "doctor"]);
    assert!(!stdout(&o).contains("os error"), "{}", show(&o));
    let fix = fix_of(&o);
    let words: Vec<&str> = fix.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"nanobot"), "{fix}");
    let r = home.run(&words[1..]);
    assert_eq!(r.status.code(), Some(0), "{fix}: {}", show(&r));
    let c = words[words.iter().position(|w| *w == "-c").unwrap() + 1];
    let o = home.run(&["-c", c, "doctor"]);
    assert!(
        stdout(&o).contains("✓ config parses"),
        "{fix}: {}",
        show(&o)
    );

    // An environment override that does not fit its key: the fix unsets it.
    let mut home = home;
    home.write_config(&template());
    home.env
        .push(("NANOBOT_AGENTS__DEFAULTS__MAX_TOKENS".into(), "lots".into()));
    let o = home.run(&["doctor"]);
    let fix = fix_of(&o);
    assert!(
        fix.contains("unset NANOBOT_AGENTS__DEFAULTS__MAX_TOKENS"),
        "{fix}: {}",
        show(&o)
    );
    home.env.clear();
    let _ = home.run(&["sandbox", "stop"]);
}

/// `-c` naming a symbolic link to nothing: every command says it is a link and where it points,
/// rather than that the file the user can see in `ls` does not exist.
#[test]
fn a_dangling_config_link_is_said_as_such() {
    let home = Home::new("danglingc");
    let link = home.dir.join("config.json");
    let target = home.dir.join("moved-away.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let l = link.to_string_lossy().into_owned();
    let want = format!(
        "{} is a symbolic link to {}, which does not exist",
        link.display(),
        target.display()
    );
    for args in [
        vec!["status"],
        vec!["exec", "--", "true"],
        vec!["sandbox", "status"],
        vec!["doctor"],
    ] {
        let mut full = vec!["-c", &l];
        full.extend(args.iter().copied());
        let o = home.run(&full);
        assert_ne!(o.status.code(), Some(0), "{full:?}: {}", show(&o));
        assert!(
            stderr(&o).contains(&want) || stdout(&o).contains(&want),
            "{full:?}: {}",
            show(&o)
        );
    }
}

/// A daemon nanobot started for another user (root's, say) is not "the sandboxd nanobot started
/// for you": a user naming its socket is not told to `nanobot sandbox stop` it, `status` says
/// whose it is, and `stop` leaves it running with exit 1.
#[test]
fn another_users_auto_started_daemon_is_not_yours() {
    let home = Home::new("otheruser");
    let d = Daemon::start();
    let s = d.socket.to_string_lossy().into_owned();
    // As nanobot records it for root: owned by root, with roots the user's workspace is not in.
    let state = d.socket.with_extension("autostart.json");
    std::fs::write(
        &state,
        json!({"pid": d.pid(), "socket": s, "roots": ["/nonexistent-root"],
               "log": "/nonexistent-root/sandboxd.log", "user": null})
        .to_string(),
    )
    .unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = home.run(&["exec", "--socket", &s, "--", "true"]);
    assert!(
        !stderr(&o).contains("started for you") && !stderr(&o).contains("nanobot sandbox stop"),
        "{}",
        show(&o)
    );
    let o = home.run(&["sandbox", "status", "--socket", &s]);
    assert!(
        stdout(&o).contains("started by: nanobot, for another user"),
        "{}",
        show(&o)
    );
    let o = home.run(&["sandbox", "stop", "--socket", &s]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        stderr(&o).contains("started by nanobot for another user"),
        "{}",
        show(&o)
    );
    assert!(Path::new(&format!("/proc/{}", d.pid())).exists());
    let _ = std::fs::remove_file(&state);
}

//! `nanobot agent` end to end: a scripted model server on 127.0.0.1 asks for tool calls across
//! several rounds, a real sandboxd runs them, and the agent runs as the unprivileged test user.

use nanobot_e2e::llm::{self, Server};
use nanobot_e2e::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A home directory for the agent's user with ~/.nanobot (0700) and config.json (0600).
struct Home(UserHome);

impl std::ops::Deref for Home {
    type Target = UserHome;
    fn deref(&self) -> &UserHome {
        &self.0
    }
}

impl Home {
    fn new(tag: &str) -> Home {
        Home(UserHome::new("home", tag))
    }

    /// The config for a daemon and a scripted server.
    fn config(&self, d: &Daemon, provider: &str, base: &str, model: &str) {
        self.write_config(
            &json!({
                "agents": {"defaults": {"model": model, "provider": provider,
                    "maxToolIterations": 6, "execConfig": {"timeout": 20}}},
                "providers": {provider: {"apiKey": "${TEST_LLM_KEY}", "apiBase": base}},
                "sandbox": {"socket": d.socket},
            })
            .to_string(),
        );
    }

    /// nanobot as the test user (never root) with this home, in the daemon's workspace.
    fn command(&self, d: &Daemon, args: &[&str]) -> Command {
        let mut c = self.0.command(args);
        c.arg("-w").arg(&d.ws).env("TEST_LLM_KEY", "sk-test-123");
        c
    }

    fn nanobot(&self, d: &Daemon, args: &[&str]) -> Output {
        self.command(d, args).output().unwrap()
    }
}

fn tool_results(r: &llm::Recorded) -> Vec<String> {
    r.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn tool_calls_over_several_rounds_run_in_the_sandbox() {
    let d = Daemon::start();
    let outside = d.dir.join("outside.txt");
    std::fs::write(&outside, "secret outside").unwrap();
    std::fs::write(d.ws.join("AGENTS.md"), "MARKER-AGENTS-MD: be brief").unwrap();
    let server = Server::start(vec![
        llm::openai_tools(&[(
            "write_file",
            json!({"path": "notes/plan.md", "content": "step one\n"}),
        )]),
        llm::openai_tools(&[(
            "exec",
            json!({"command": format!("cat notes/plan.md; cat {}", outside.display())}),
        )]),
        llm::openai_tools(&[
            ("read_file", json!({"path": "../outside.txt"})),
            ("list_dir", json!({"path": "notes"})),
            (
                "edit_file",
                json!({"path": "notes/plan.md", "old_text": "one", "new_text": "two"}),
            ),
        ]),
        llm::openai_text("All done."),
    ]);
    let home = Home::new("rounds");
    home.config(&d, "custom", &server.base(), "test-model");
    let o = home.nanobot(&d, &["agent", "-m", "make a plan", "--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "All done.\n");
    // What the model wrote exists, and its edit applied.
    assert_eq!(
        std::fs::read_to_string(d.ws.join("notes/plan.md")).unwrap(),
        "step two\n"
    );
    let reqs = server.recorded();
    assert_eq!(reqs.len(), 4);
    let first = &reqs[0];
    assert_eq!(first.path, "/v1/chat/completions");
    assert_eq!(first.header("authorization"), Some("Bearer sk-test-123"));
    assert_eq!(first.body["model"], "test-model");
    let system = first.body["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("MARKER-AGENTS-MD"), "{system}");
    let tools: Vec<&str> = first.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        tools,
        ["exec", "read_file", "write_file", "edit_file", "list_dir"]
    );
    // Round 2 saw the write succeed; round 3 saw the file, and the read outside refused by the
    // kernel, formatted as the Python nanobot does.
    let r2 = tool_results(&reqs[1]);
    assert!(r2[0].contains("notes/plan.md"), "{r2:?}");
    let r3 = tool_results(&reqs[2]);
    let exec_out = r3.last().unwrap();
    assert!(exec_out.starts_with("step one\n"), "{exec_out}");
    assert!(exec_out.contains("STDERR:"), "{exec_out}");
    // The file outside is not part of the sandbox's root at all.
    assert!(exec_out.contains("No such file or directory"), "{exec_out}");
    assert!(exec_out.contains("Exit code: 1"), "{exec_out}");
    assert!(!exec_out.contains("secret outside"));
    let r4 = tool_results(&reqs[3]);
    let read = &r4[r4.len() - 3];
    assert!(
        read.starts_with("Error:") && read.contains("outside the workspace"),
        "{r4:?}"
    );
    assert!(r4[r4.len() - 2].contains("plan.md"), "{r4:?}");
    // The session is on disk, one JSON line per message.
    let sess =
        std::fs::read_to_string(home.dir.join(".nanobot/sessions/cli_default.jsonl")).unwrap();
    let lines: Vec<Value> = sess
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.first().unwrap()["content"], "make a plan");
    assert_eq!(lines.last().unwrap()["content"], "All done.");
    // And the audit log has the guide's words.
    let log = std::fs::read_to_string(home.dir.join(".nanobot/logs/nanobot.log")).unwrap();
    assert!(log.contains("ExecTool:"), "{log}");
    assert!(log.contains("write_file path=notes/plan.md"), "{log}");
    assert!(log.contains("Access denied"), "{log}");
}

#[test]
fn history_persists_per_session_and_new_starts_over() {
    let d = Daemon::start();
    let server = Server::start(vec![
        llm::openai_text("first answer"),
        llm::openai_text("second answer"),
        llm::openai_text("third answer"),
        llm::openai_text("other session"),
    ]);
    let home = Home::new("history");
    home.config(&d, "custom", &server.base(), "m");
    assert_eq!(
        stdout(&home.nanobot(&d, &["agent", "-m", "one", "--quiet"])),
        "first answer\n"
    );
    assert_eq!(
        stdout(&home.nanobot(&d, &["agent", "-m", "two", "--quiet"])),
        "second answer\n"
    );
    let o = home.nanobot(&d, &["agent", "-m", "/new"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    home.nanobot(&d, &["agent", "-m", "three", "--quiet"]);
    home.nanobot(&d, &["agent", "-s", "telegram:42", "-m", "hi", "--quiet"]);
    let reqs = server.recorded();
    let users = |i: usize| -> Vec<String> {
        reqs[i].body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] != "system")
            .map(|m| m["content"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(users(1), ["one", "first answer", "two"]);
    assert_eq!(users(2), ["three"]);
    assert_eq!(users(3), ["hi"]);
    assert!(home
        .dir
        .join(".nanobot/sessions/telegram_42.jsonl")
        .exists());
}

#[test]
fn retries_on_429_and_5xx_then_answers() {
    let d = Daemon::start();
    let server = Server::start(vec![
        llm::status(429, &[("Retry-After", "0")], "{\"error\": \"slow down\"}"),
        llm::status(503, &[("Retry-After", "0")], "{\"error\": \"busy\"}"),
        llm::openai_text("made it"),
    ]);
    let home = Home::new("retry");
    home.config(&d, "custom", &server.base(), "m");
    let o = home.nanobot(&d, &["agent", "-m", "hi", "--quiet"]);
    assert_eq!(stdout(&o), "made it\n", "{}", stderr(&o));
    assert_eq!(server.recorded().len(), 3);
    assert!(stderr(&o).contains("retrying"), "{}", stderr(&o));
}

#[test]
fn provider_errors_name_the_provider_and_model() {
    let d = Daemon::start();
    let server = Server::start(vec![
        llm::status(401, &[], "{\"error\": {\"message\": \"bad key\"}}"),
        llm::status(404, &[], "{\"error\": {\"message\": \"no such model\"}}"),
    ]);
    let home = Home::new("errors");
    home.config(&d, "custom", &server.base(), "gpt-nope");
    let o = home.nanobot(&d, &["agent", "-m", "hi", "--quiet"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("provider custom rejected the API key (HTTP 401) for model gpt-nope")
            && e.contains("bad key"),
        "{e}"
    );
    let o = home.nanobot(&d, &["agent", "-m", "hi", "--quiet"]);
    let e = stderr(&o);
    assert!(
        e.contains("provider custom does not know model gpt-nope (HTTP 404"),
        "{e}"
    );
}

#[test]
fn anthropic_messages_format_with_tools() {
    let d = Daemon::start();
    let server = Server::start(vec![
        llm::anthropic_tools(&[(
            "exec",
            json!({"command": "echo from-claude > out.txt; echo ok"}),
        )]),
        llm::anthropic_text("Wrote it."),
    ]);
    let home = Home::new("anthropic");
    home.config(&d, "anthropic", &server.base(), "anthropic/claude-test");
    let o = home.nanobot(&d, &["agent", "-m", "write a file", "--quiet"]);
    assert_eq!(stdout(&o), "Wrote it.\n", "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(d.ws.join("out.txt")).unwrap(),
        "from-claude\n"
    );
    let reqs = server.recorded();
    assert_eq!(reqs[0].path, "/v1/messages");
    assert_eq!(reqs[0].header("x-api-key"), Some("sk-test-123"));
    assert_eq!(reqs[0].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(reqs[0].body["model"], "claude-test");
    assert!(reqs[0].body["system"].as_str().unwrap().contains("nanobot"));
    assert!(reqs[0].body["tools"][0]["input_schema"].is_object());
    let last = reqs[1].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["role"], "user");
    assert_eq!(last["content"][0]["type"], "tool_result");
    assert_eq!(last["content"][0]["tool_use_id"], "toolu_0");
    assert_eq!(last["content"][0]["content"], "ok\n");
}

#[test]
fn a_bad_config_is_an_error_naming_file_line_column_and_key() {
    let d = Daemon::start();
    let home = Home::new("badcfg");
    home.write_config("{\n  \"agents\": {\n    \"defaults\": {\"model\": \"x\",}\n  }\n}\n");
    let o = home.nanobot(&d, &["agent", "-m", "hi"]);
    assert_ne!(o.status.code(), Some(0));
    let want = format!("{}:3:", home.config_path().display());
    assert!(
        stderr(&o).contains(&want) && stderr(&o).contains("invalid JSON"),
        "{}",
        stderr(&o)
    );
    home.write_config("{\"agents\": {\"defaults\": {\n  \"maxToolIterations\": \"lots\"}}}");
    let o = home.nanobot(&d, &["agent", "-m", "hi"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("key agents.defaults.maxToolIterations")
            && stderr(&o).contains(&format!("{}:2:", home.config_path().display())),
        "{}",
        stderr(&o)
    );
    // A number out of range is refused the same way, naming the range; 0 is not taken as 1.
    home.write_config("{\"agents\": {\"defaults\": {\n  \"maxToolIterations\": 0}}}");
    let o = home.nanobot(&d, &["agent", "-m", "hi"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("key agents.defaults.maxToolIterations")
            && stderr(&o).contains("allowed are 1 to 1000")
            && stderr(&o).contains(&format!("{}:2:", home.config_path().display())),
        "{}",
        stderr(&o)
    );
    // Unknown keys only warn; loose modes warn with the exact chmod.
    home.write_config("{\"agents\": {\"defaults\": {\"modle\": \"x\"}}}");
    std::fs::set_permissions(home.config_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = home.nanobot(&d, &["status"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unknown key agents.defaults.modle"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains(&format!("chmod 600 {}", home.config_path().display())),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_agent_refuses_root_unless_allowed() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let o = Command::new(bin("nanobot"))
        .args(["agent", "-m", "hi"])
        .env("HOME", "/var/tmp/nanobot-e2e-root-refusal")
        .env_remove("NANOBOT_ALLOW_ROOT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("refusing to run the agent as root"),
        "{}",
        stderr(&o)
    );
    // With the override it goes on (and fails later for want of a provider, not for root).
    let o = Command::new(bin("nanobot"))
        .args(["agent", "-m", "hi"])
        .env("HOME", "/var/tmp/nanobot-e2e-root-refusal")
        .env("NANOBOT_ALLOW_ROOT", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("NANOBOT_ALLOW_ROOT=1"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("no provider is configured"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all("/var/tmp/nanobot-e2e-root-refusal");
}

#[test]
fn doctor_passes_a_good_setup_and_names_each_fix_on_a_bad_one() {
    let d = Daemon::start();
    let home = Home::new("doctor");
    home.write_config(
        &json!({
            "agents": {"defaults": {"restrictToWorkspace": true, "execConfig": {"timeout": 30}}},
            "providers": {"openrouter": {"apiKey": "${TEST_LLM_KEY}"}},
            "channels": {"telegram": {"enabled": true, "token": "${TEST_LLM_KEY}", "allowFrom": ["42"]}},
            "sandbox": {"socket": d.socket},
        })
        .to_string(),
    );
    let o = home.nanobot(&d, &["doctor"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("✓ sandboxd enforces Landlock"),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains('✗'), "{}", stdout(&o));

    // Bad: loose modes, an open channel, a literal key, restrictToWorkspace off.
    home.write_config(
        &json!({
            "agents": {"defaults": {"restrictToWorkspace": false}},
            "providers": {"openrouter": {"apiKey": "sk-or-literal"}},
            "channels": {"telegram": {"enabled": true, "allowFrom": []}},
            "sandbox": {"socket": d.socket},
        })
        .to_string(),
    );
    let dot = home.dir.join(".nanobot");
    std::fs::set_permissions(&dot, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = home.nanobot(&d, &["doctor"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    for want in [
        format!("fix: chmod 700 {}", dot.display()),
        "fix: set channels.telegram.allowFrom".to_string(),
        "✗ restrictToWorkspace".to_string(),
        "! secrets as ${VAR} references: written literally: providers.openrouter.apiKey"
            .to_string(),
    ] {
        assert!(out.contains(&want), "missing {want:?} in\n{out}");
    }
    let o = home.nanobot(&d, &["doctor", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let failed: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false && c["critical"] == true)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(failed.contains(&"config directory mode"), "{failed:?}");
    assert!(
        failed.contains(&"allowFrom on every enabled channel"),
        "{failed:?}"
    );

    // No sandboxd: critical.
    home.write_config(&json!({"sandbox": {"socket": "/nonexistent/sandboxd.sock"}}).to_string());
    std::fs::set_permissions(&dot, std::fs::Permissions::from_mode(0o700)).unwrap();
    let o = home.nanobot(&d, &["doctor"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("✗ sandboxd reachable: no answer on /nonexistent/sandboxd.sock"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn onboard_creates_private_files_and_never_overwrites_silently() {
    let d = Daemon::start();
    let home = Home::new("onboard");
    let dot = home.dir.join(".nanobot");
    std::fs::remove_dir_all(&dot).unwrap();
    // Route onboard to the test daemon through the environment.
    let (uid, gid) = test_ids();
    let run = |args: &[&str]| {
        let mut c = Command::new(bin("nanobot"));
        c.args(args)
            .arg("-w")
            .arg(&d.ws)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &home.dir)
            .env("NANOBOT_SANDBOX_SOCKET", &d.socket)
            .stdin(Stdio::null());
        if is_root() {
            c.uid(uid).gid(gid);
        }
        c.output().unwrap()
    };
    let o = run(&["onboard"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dot), 0o700);
    assert_eq!(mode(&dot.join("config.json")), 0o600);
    let text = std::fs::read_to_string(dot.join("config.json")).unwrap();
    assert!(text.contains("// "), "a commented config");
    for f in [
        "AGENTS.md",
        "SOUL.md",
        "USER.md",
        "TOOLS.md",
        "memory/MEMORY.md",
    ] {
        assert!(d.ws.join(f).exists(), "{f}");
    }
    // The commented template loads.
    let o = run(&["status"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A second onboard keeps an edited config (no terminal to ask on).
    std::fs::write(dot.join("config.json"), "{\"agents\": {}}").unwrap();
    std::fs::write(d.ws.join("SOUL.md"), "mine").unwrap();
    let o = run(&["onboard"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(dot.join("config.json")).unwrap(),
        "{\"agents\": {}}"
    );
    assert_eq!(
        std::fs::read_to_string(d.ws.join("SOUL.md")).unwrap(),
        "mine"
    );
    assert!(stdout(&o).contains("kept the existing"), "{}", stdout(&o));
}

#[test]
fn interactive_mode_reads_lines_until_exit() {
    let d = Daemon::start();
    let server = Server::start(vec![llm::openai_text("hello there")]);
    let home = Home::new("interactive");
    home.config(&d, "custom", &server.base(), "m");
    for (input, quit) in [
        ("hi\n/help\n/new\nexit\nnever sent\n", "exit"),
        ("/help\n:q\n", ":q"),
        ("/help\n", "EOF"),
    ] {
        let mut child = home
            .command(&d, &["agent", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{quit}: {}", stderr(&o));
        let out = stdout(&o);
        assert!(
            out.contains("/new"),
            "{quit}: /help lists the commands: {out}"
        );
        if quit == "exit" {
            assert!(out.contains("hello there"), "{out}");
            assert!(out.contains("Started a new session"), "{out}");
        }
    }
    // Only "hi" reached the model: nothing after `exit`.
    assert_eq!(server.recorded().len(), 1);
}

#[test]
fn a_spinner_says_what_runs_on_a_terminal() {
    if !Path::new("/usr/bin/script").exists() {
        eprintln!("skipped: needs script(1) for a pseudo-terminal");
        return;
    }
    let d = Daemon::start();
    let mut think = llm::openai_tools(&[("exec", json!({"command": "sleep 0.5; echo slow"}))]);
    think.delay_ms = 400;
    let server = Server::start(vec![think, llm::openai_text("finished")]);
    let home = Home::new("spinner");
    home.config(&d, "custom", &server.base(), "m");
    let cmd = format!(
        "{} agent -w {} -m go",
        bin("nanobot").display(),
        d.ws.display()
    );
    let (uid, gid) = test_ids();
    let mut c = Command::new("script");
    c.args(["-qfec", &cmd, "/dev/null"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &home.dir)
        .env("TEST_LLM_KEY", "k")
        .stdin(Stdio::null());
    if is_root() {
        c.uid(uid).gid(gid);
    }
    let o = c.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("thinking…"), "{out:?}");
    assert!(out.contains("exec: sleep 0.5; echo slow…"), "{out:?}");
    assert!(out.contains("finished"), "{out:?}");
}

/// Warnings are coloured on a terminal only, and never with NO_COLOR set (into a file they never
/// are: `provider_retries_are_plain_lines_and_the_error_keeps_its_cause` in firsthour.rs).
#[test]
fn warnings_are_coloured_on_a_terminal_unless_no_color() {
    if !Path::new("/usr/bin/script").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "script(1) is needed for a pseudo-terminal"
        );
        eprintln!("skipped: needs script(1) for a pseudo-terminal");
        return;
    }
    let d = Daemon::start();
    let home = Home::new("colour");
    let run = |no_color: Option<&str>| {
        let server = Server::start(vec![
            llm::status(429, &[("Retry-After", "0")], "{\"error\": \"slow down\"}"),
            llm::openai_text("fine"),
        ]);
        home.config(&d, "custom", &server.base(), "m");
        let cmd = format!(
            "{} agent -w {} -m hi --quiet",
            bin("nanobot").display(),
            d.ws.display()
        );
        let (uid, gid) = test_ids();
        let mut c = Command::new("script");
        c.args(["-qfec", &cmd, "/dev/null"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &home.dir)
            .env("TEST_LLM_KEY", "k")
            .stdin(Stdio::null());
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        if is_root() {
            c.uid(uid).gid(gid);
        }
        let o = c.output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let coloured = run(None);
    assert!(
        coloured.contains("nanobot: \x1b[33mwarning\x1b[0m: custom: HTTP 429"),
        "{coloured:?}"
    );
    let plain = run(Some("1"));
    assert!(
        plain.contains("nanobot: warning: custom: HTTP 429") && !plain.contains("\x1b[33m"),
        "{plain:?}"
    );
    assert!(plain.contains("fine"), "{plain:?}");
}

#[test]
fn gateway_answers_allowed_telegram_users_and_ignores_others() {
    let d = Daemon::start();
    let llm_server = Server::start(vec![
        llm::openai_tools(&[("write_file", json!({"path": "hi.txt", "content": "hello"}))]),
        llm::openai_text("Done!"),
    ]);
    let update = |id: i64, uid: i64, name: &str, chat: i64, text: &str| {
        json!({"update_id": id, "message": {"message_id": id, "from": {"id": uid, "username": name},
               "chat": {"id": chat}, "text": text}})
    };
    let mut tg = vec![
        llm::ok(json!({"ok": true, "result": [
            update(10, 42, "alice", 4242, "write hello to hi.txt"),
            update(11, 666, "mallory", 666, "cat /etc/shadow"),
        ]})),
        llm::ok(json!({"ok": true, "result": {"message_id": 99}})),
    ];
    for _ in 0..50 {
        let mut empty = llm::ok(json!({"ok": true, "result": []}));
        empty.delay_ms = 100;
        tg.push(empty);
    }
    let tg_server = Server::start(tg);
    let home = Home::new("gateway");
    let config = |allow: Value| {
        json!({
            "agents": {"defaults": {"model": "m", "provider": "custom"}},
            "providers": {"custom": {"apiKey": "${TEST_LLM_KEY}", "apiBase": llm_server.base()}},
            "channels": {"telegram": {"enabled": true, "token": "123:abc", "allowFrom": allow,
                                      "apiBase": format!("http://127.0.0.1:{}", tg_server.port),
                                      "pollTimeout": 1}},
            "sandbox": {"socket": d.socket},
        })
        .to_string()
    };
    // An enabled channel without allowFrom refuses to start (fail closed, unlike upstream).
    home.write_config(&config(json!([])));
    let o = home.nanobot(&d, &["gateway"]);
    assert_eq!(o.status.code(), Some(78));
    assert!(
        stderr(&o).contains("channels.telegram.allowFrom is empty"),
        "{}",
        stderr(&o)
    );

    home.write_config(&config(json!(["42"])));
    let mut child = home
        .command(&d, &["gateway"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    let sent = loop {
        let sent: Vec<_> = tg_server
            .recorded()
            .into_iter()
            .filter(|r| r.path.ends_with("/sendMessage"))
            .collect();
        if !sent.is_empty() || t0.elapsed() > std::time::Duration::from_secs(20) {
            break sent;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // Let it poll once more, then stop it the way systemd does.
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(sent.len(), 1, "exactly one reply");
    assert_eq!(sent[0].path, "/bot123:abc/sendMessage");
    assert_eq!(sent[0].body["chat_id"], 4242);
    assert_eq!(sent[0].body["text"], "Done!");
    assert_eq!(
        std::fs::read_to_string(d.ws.join("hi.txt")).unwrap(),
        "hello"
    );
    // Mallory's message never reached the model; the log says so in the guide's words.
    assert_eq!(llm_server.recorded().len(), 2);
    let log = std::fs::read_to_string(home.dir.join(".nanobot/logs/nanobot.log")).unwrap();
    assert!(
        log.contains("Access denied for sender [\"666\", \"mallory\"] on channel telegram"),
        "{log}"
    );
    // The next poll acknowledged both updates.
    let polls: Vec<_> = tg_server
        .recorded()
        .into_iter()
        .filter(|r| r.path.ends_with("/getUpdates"))
        .collect();
    assert!(polls.len() >= 2);
    assert_eq!(polls[1].body["offset"], 12);
    assert!(home
        .dir
        .join(".nanobot/sessions/telegram_4242.jsonl")
        .exists());
}

/// A pseudo-terminal: the agent gets the slave as its stdio and controlling terminal, the test
/// writes keys to the master and collects everything the agent shows.
struct Pty {
    master: std::fs::File,
    out: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Pty {
    /// Spawn `c` on a fresh pseudo-terminal.
    fn spawn(mut c: Command) -> (Pty, std::process::Child) {
        use std::os::fd::FromRawFd;
        // SAFETY: posix_openpt/grantpt/unlockpt take integers; ptsname_r writes at most
        // name.len() bytes (NUL included) into the local `name`, and open reads that
        // NUL-terminated name; ioctl(TIOCSWINSZ) reads one winsize from the local `ws`. `m` and
        // `s` are fresh fds, checked non-negative, each handed to exactly one File.
        let (master, slave) = unsafe {
            let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
            assert!(m >= 0, "posix_openpt");
            assert_eq!(libc::grantpt(m), 0);
            assert_eq!(libc::unlockpt(m), 0);
            let mut name = [0 as libc::c_char; 128];
            assert_eq!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0);
            let ws = libc::winsize {
                ws_row: 40,
                ws_col: 200,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            libc::ioctl(m, libc::TIOCSWINSZ, &ws);
            let s = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
            assert!(s >= 0, "open the pty slave");
            (std::fs::File::from_raw_fd(m), std::fs::File::from_raw_fd(s))
        };
        c.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            c.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = c.spawn().unwrap();
        drop(c); // closes our copies of the slave
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (o, mut r) = (out.clone(), master.try_clone().unwrap());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut r, &mut buf) {
                if n == 0 {
                    break;
                }
                o.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        (Pty { master, out }, child)
    }

    fn send(&mut self, keys: &str) {
        std::io::Write::write_all(&mut self.master, keys.as_bytes()).unwrap();
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// Wait until `what` appears `count` times in the output; the output so far on a timeout.
    fn wait_for(&self, what: &str, count: usize, secs: u64) -> Result<(), String> {
        let t0 = std::time::Instant::now();
        loop {
            let t = self.text();
            if t.matches(what).count() >= count {
                return Ok(());
            }
            if t0.elapsed() > std::time::Duration::from_secs(secs) {
                return Err(t);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

fn wait_exit(child: &mut std::process::Child, secs: u64) -> Option<std::process::ExitStatus> {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(secs) {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

#[test]
fn ctrl_c_cancels_a_running_tool_and_returns_to_the_prompt() {
    let d = Daemon::start();
    let marker = format!("nbcancel{}", std::process::id());
    let command = format!("sleep 30; echo done > {marker}");
    let server = Server::start(vec![
        llm::openai_tools(&[("exec", json!({ "command": command }))]),
        llm::openai_text("second answer"),
    ]);
    let home = Home::new("ctrlc");
    home.config(&d, "custom", &server.base(), "m");
    let (mut pty, mut child) = Pty::spawn(home.command(&d, &["agent"]));
    pty.wait_for("you> ", 1, 20).expect("first prompt");
    pty.send("go\r");
    // The sandboxed command is running.
    let t0 = std::time::Instant::now();
    while pids_with(&marker).is_empty() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "the command never started: {}",
            pty.text()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let t0 = std::time::Instant::now();
    pty.send("\x03");
    pty.wait_for("Cancelled (Ctrl-C)", 1, 5)
        .expect("a note after Ctrl-C");
    pty.wait_for("you> ", 2, 5).expect("the prompt again");
    assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    // sandboxd killed the process tree when the stream went away.
    while !pids_with(&marker).is_empty() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(5),
            "still running: {:?}",
            pids_with(&marker)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The next message works, and the model learns the call was cancelled.
    pty.send("again\r");
    pty.wait_for("second answer", 1, 20)
        .expect("the next answer");
    pty.wait_for("you> ", 3, 5)
        .expect("the prompt after the answer");
    let reqs = server.recorded();
    assert_eq!(reqs.len(), 2);
    let results = tool_results(&reqs[1]);
    assert!(
        results.iter().any(|r| r.contains("cancelled by the user")),
        "{results:?}"
    );
    // Ctrl-C at an empty prompt leaves.
    pty.send("\x03");
    let st = wait_exit(&mut child, 10).expect("Ctrl-C at an empty prompt exits");
    assert_eq!(st.code(), Some(0), "{}", pty.text());
    assert!(
        !d.ws.join(&marker).exists(),
        "the cancelled command finished"
    );
    assert!(pids_with(&marker).is_empty());

    // Ctrl-D leaves too; Ctrl-C on a typed line only clears it.
    let (mut pty, mut child) = Pty::spawn(home.command(&d, &["agent", "--quiet"]));
    pty.wait_for("you> ", 1, 20).expect("prompt");
    pty.send("not sent\x03");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "{}", pty.text());
    pty.send("\x04");
    let st = wait_exit(&mut child, 10).expect("Ctrl-D exits");
    assert_eq!(st.code(), Some(0), "{}", pty.text());
    assert_eq!(server.recorded().len(), 2);
}

#[test]
fn max_tool_iterations_uses_grammar_and_fails_the_message() {
    let d = Daemon::start();
    for (n, want) in [(1, "after 1 round of"), (2, "after 2 rounds of")] {
        let script = (0..n)
            .map(|_| llm::openai_tools(&[("exec", json!({"command": "true"}))]))
            .collect();
        let server = Server::start(script);
        let home = Home::new(&format!("maxiter{n}"));
        home.config(&d, "custom", &server.base(), "m");
        let o = home
            .command(&d, &["agent", "-m", "loop"])
            .env(
                "NANOBOT_AGENTS__DEFAULTS__MAX_TOOL_ITERATIONS",
                n.to_string(),
            )
            .output()
            .unwrap();
        assert!(stdout(&o).contains(want), "{}", stdout(&o));
        assert!(
            stderr(&o).contains(want.trim_end_matches(" of")),
            "{}",
            stderr(&o)
        );
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert_eq!(server.recorded().len(), n);
    }
}

#[test]
fn empty_messages_and_unknown_commands_never_reach_the_model() {
    let d = Daemon::start();
    let server = Server::start(vec![llm::openai_text("should not be asked")]);
    let home = Home::new("refuse");
    home.config(&d, "custom", &server.base(), "m");
    for m in ["", "   \t"] {
        let o = home.nanobot(&d, &["agent", "-m", m]);
        assert_eq!(o.status.code(), Some(2), "{m:?}: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with("nanobot: the message is empty"),
            "{}",
            stderr(&o)
        );
    }
    let o = home.nanobot(&d, &["agent", "-m", " /frobnicate "]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unknown command /frobnicate") && stderr(&o).contains("/new"),
        "{}",
        stderr(&o)
    );
    let mut child = home
        .command(&d, &["agent", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"   \n\n/bogus\nexit\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("message is empty"), "{out}");
    assert!(out.contains("Unknown command /bogus"), "{out}");
    assert!(out.contains("/help"), "{out}");
    assert!(server.recorded().is_empty(), "{:?}", server.recorded());
}

#[test]
fn ctrl_c_ends_a_one_shot_message_with_130_and_kills_its_command() {
    use std::os::unix::process::ExitStatusExt;
    let d = Daemon::start();
    let marker = format!("nbsigint{}", std::process::id());
    let command = format!("sleep 30; echo done > {marker}");
    let server = Server::start(vec![llm::openai_tools(&[(
        "exec",
        json!({ "command": command }),
    )])]);
    let home = Home::new("sigint");
    home.config(&d, "custom", &server.base(), "m");
    let (mut pty, mut child) = Pty::spawn(home.command(&d, &["agent", "-m", "go"]));
    let t0 = std::time::Instant::now();
    while pids_with(&marker).is_empty() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "the command never started: {}",
            pty.text()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    pty.send("\x03");
    let st = wait_exit(&mut child, 5).expect("Ctrl-C ends agent -m");
    assert!(
        st.code() == Some(130) || st.signal() == Some(libc::SIGINT),
        "{st:?}"
    );
    let t0 = std::time::Instant::now();
    while !pids_with(&marker).is_empty() {
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!d.ws.join(&marker).exists());
}

#[test]
fn only_a_lone_slash_word_is_a_command() {
    let d = Daemon::start();
    let server = Server::start(vec![
        llm::openai_text("cleaned"),
        llm::openai_text("new as asked"),
        llm::openai_text("path answered"),
    ]);
    let home = Home::new("slash");
    home.config(&d, "custom", &server.base(), "m");
    // Messages that merely start with '/' go to the model.
    for (m, want) in [
        ("/tmp is full, clean it", "cleaned\n"),
        ("/new please", "new as asked\n"),
        ("/etc/hosts", "path answered\n"),
    ] {
        let o = home.nanobot(&d, &["agent", "-m", m, "--quiet"]);
        assert_eq!(o.status.code(), Some(0), "{m}: {}", stderr(&o));
        assert_eq!(stdout(&o), want, "{m}");
    }
    let reqs = server.recorded();
    assert_eq!(reqs.len(), 3);
    let last = reqs[2].body["messages"].as_array().unwrap();
    assert_eq!(last.last().unwrap()["content"], "/etc/hosts");
    // Known commands run locally, with or without surrounding whitespace.
    let o = home.nanobot(&d, &["agent", "-m", "/help"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("/new"), "{}", stdout(&o));
    // With -m there is no prompt to leave: the help says what -m does, not exit/quit/Ctrl-D.
    for not_here in ["quit", ":q", "Ctrl-D"] {
        assert!(!stdout(&o).contains(not_here), "{}", stdout(&o));
    }
    assert!(stdout(&o).contains("/exit"), "{}", stdout(&o));
    let o = home.nanobot(&d, &["agent", "-m", " /exit "]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    let o = home.nanobot(&d, &["agent", "-m", "/new"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("new session"), "{}", stdout(&o));
    // A lone unknown /word is refused with the list.
    let o = home.nanobot(&d, &["agent", "-m", "/tmp"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unknown command /tmp"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("/help"), "{}", stderr(&o));
    assert_eq!(server.recorded().len(), 3, "commands never reach the model");
}

#[test]
fn a_one_shot_turn_killed_mid_tool_leaves_a_session_the_next_request_can_use() {
    let d = Daemon::start();
    let marker = format!("nbinterrupt{}", std::process::id());
    let command = format!("sleep 30; echo done > {marker}");
    let server = Server::start(vec![
        llm::openai_tools(&[("exec", json!({ "command": command }))]),
        llm::openai_text("second answer"),
    ]);
    let home = Home::new("interrupt");
    home.config(&d, "custom", &server.base(), "m");
    let mut child = home
        .command(&d, &["agent", "-m", "go", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while pids_with(&marker).is_empty() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "the command never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: kill takes only integers; the pid is our own child, not yet reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    wait_exit(&mut child, 5).expect("SIGINT ends agent -m");
    // The saved session ends with the tool call and no result.
    let sess =
        std::fs::read_to_string(home.dir.join(".nanobot/sessions/cli_default.jsonl")).unwrap();
    let last: Value = serde_json::from_str(sess.lines().last().unwrap()).unwrap();
    assert!(last["tool_calls"].is_array(), "{sess}");

    let o = home.nanobot(&d, &["agent", "-m", "second", "--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "second answer\n");
    let reqs = server.recorded();
    assert_eq!(reqs.len(), 2);
    let msgs = reqs[1].body["messages"].as_array().unwrap();
    let calls: Vec<&str> = msgs
        .iter()
        .filter_map(|m| m["tool_calls"].as_array())
        .flatten()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(!calls.is_empty(), "{msgs:?}");
    for id in calls {
        let result = msgs
            .iter()
            .find(|m| m["role"] == "tool" && m["tool_call_id"] == id)
            .unwrap_or_else(|| panic!("no result for {id}: {msgs:?}"));
        assert!(
            result["content"]
                .as_str()
                .unwrap()
                .contains("interrupted before this tool call finished"),
            "{result}"
        );
    }
    assert_eq!(msgs.last().unwrap()["content"], "second");
    let t0 = std::time::Instant::now();
    while !pids_with(&marker).is_empty() {
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// After Ctrl-C the note and the session say exactly what happened: the running command was
/// killed and the calls after it were not run; Ctrl-C while the model thinks kills nothing.
#[test]
fn ctrl_c_says_what_it_interrupted() {
    let d = Daemon::start();
    let marker = format!("nbcancelwhat{}", std::process::id());
    let never = format!("nbneverran{}", std::process::id());
    let mut thinking = llm::openai_text("too late");
    thinking.delay_ms = 4_000;
    let server = Server::start(vec![
        llm::openai_tools(&[
            (
                "exec",
                json!({ "command": format!("sleep 30; echo done > {marker}") }),
            ),
            ("exec", json!({ "command": format!("echo x > {never}") })),
        ]),
        thinking,
        llm::openai_text("third answer"),
    ]);
    let home = Home::new("ctrlcwhat");
    home.config(&d, "custom", &server.base(), "m");
    let (mut pty, mut child) = Pty::spawn(home.command(&d, &["agent", "--quiet"]));
    pty.wait_for("you> ", 1, 20).expect("first prompt");
    pty.send("go\r");
    let t0 = std::time::Instant::now();
    while pids_with(&marker).is_empty() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "the command never started: {}",
            pty.text()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    pty.send("\x03");
    pty.wait_for(
        "Cancelled (Ctrl-C): the running command was killed; 1 more tool call not run.",
        1,
        5,
    )
    .expect("the note for a running command");
    pty.wait_for("you> ", 2, 5).expect("the prompt again");

    // Ctrl-C while the model is thinking: nothing was killed.
    pty.send("think\r");
    let t0 = std::time::Instant::now();
    while server.recorded().len() < 2 {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "{}",
            pty.text()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    pty.send("\x03");
    pty.wait_for(
        "Cancelled (Ctrl-C) while waiting for the model; no command was running.",
        1,
        5,
    )
    .expect("the note for a cancelled model call");
    pty.wait_for("you> ", 3, 5).expect("the prompt again");
    assert_eq!(
        pty.text().matches("killed").count(),
        1,
        "only the first note says a command was killed: {}",
        pty.text()
    );

    // The model learns the same: killed, not run.
    pty.send("again\r");
    pty.wait_for("third answer", 1, 20)
        .expect("the next answer");
    let reqs = server.recorded();
    assert_eq!(reqs.len(), 3);
    let results = tool_results(&reqs[2]);
    assert_eq!(
        results,
        vec![
            "Error: cancelled by the user (Ctrl-C) while this command was running; the command \
             was killed."
                .to_string(),
            "Error: not run: the user cancelled the turn (Ctrl-C) before this tool call started."
                .to_string(),
        ]
    );
    assert!(!d.ws.join(&never).exists(), "the second call ran");
    // Ctrl-D only at the prompt: typed ahead while the answer prints, the terminal's cooked mode
    // turns it into a NUL byte for the line editor (as in bash), not an end of input.
    pty.wait_for("you> ", 4, 5)
        .expect("the prompt after the answer");
    pty.send("\x04");
    let st = wait_exit(&mut child, 10).expect("Ctrl-D exits");
    assert_eq!(st.code(), Some(0), "{}", pty.text());
}

//! A working directory is a cwd, never a workspace: the exec tool's `working_dir`, `nanobot exec
//! --cwd` and `ExecRequest.cwd` only pick where the command starts inside the workspace. Root R
//! holds R/ws (the agent's workspace) and R/other (with a secret); each escape first shows R/other
//! is reachable when it IS the workspace (positive control), then that naming it as a working
//! directory neither reads nor writes there and the error names the field.

use nanobot_e2e::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const SECRET: &str = "SECRET-OF-OTHER-7431";

/// R/other with secret.txt, R/ws/sub and R/ws/src, and R/ws/link -> R/other.
fn setup(d: &Daemon) -> PathBuf {
    let (uid, gid) = test_ids();
    let other = d.root.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("secret.txt"), format!("{SECRET}\n")).unwrap();
    for p in [other.clone(), other.join("secret.txt")] {
        chown(&p, uid, gid);
    }
    for s in ["sub", "src"] {
        std::fs::create_dir_all(d.ws.join(s)).unwrap();
        chown(&d.ws.join(s), uid, gid);
    }
    std::os::unix::fs::symlink(&other, d.ws.join("link")).unwrap();
    other
}

/// A config for `nanobot -c`, in a private directory.
fn config(d: &Daemon, name: &str, json: &str) -> PathBuf {
    let dir = d.dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let p = dir.join("config.json");
    std::fs::write(&p, json).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// `nanobot [-c CFG] tool --socket S --workspace WS exec JSON`; it prints the tool's text and a newline.
fn tool(d: &Daemon, cfg: Option<&Path>, ws: &Path, json: &str) -> Output {
    let home = d.dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut c = Command::new(bin("nanobot"));
    if let Some(cfg) = cfg {
        c.arg("-c").arg(cfg);
    }
    c.args(["tool", "--socket"])
        .arg(&d.socket)
        .arg("--workspace")
        .arg(ws)
        .args(["exec", json])
        .env("HOME", &home)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn exec_json(command: &str, working_dir: &str) -> String {
    serde_json::json!({"command": command, "working_dir": working_dir}).to_string()
}

/// Every file the escape attempts try to create.
fn created(d: &Daemon, other: &Path) -> Vec<PathBuf> {
    [
        other.join("from_ws.txt"),
        d.root.join("from_ws.txt"),
        d.ws.join("from_ws.txt"),
    ]
    .into_iter()
    .filter(|p| p.exists())
    .collect()
}

#[test]
fn a_working_dir_outside_the_workspace_never_becomes_the_workspace() {
    // R/other is granted to the peer too: what keeps it out is that working_dir is a cwd.
    let d = Daemon::start_with(Opts {
        grant: vec!["other".into()],
        ..Opts::default()
    });
    let other = setup(&d);
    // Positive control: R/other is reachable when it is the workspace.
    let o = tool(&d, None, &other, r#"{"command":"cat secret.txt"}"#);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains(SECRET), "{}", stdout(&o));

    let open = config(
        &d,
        "open",
        r#"{"agents": {"defaults": {"restrictToWorkspace": false}}}"#,
    );
    let closed = config(
        &d,
        "closed",
        r#"{"agents": {"defaults": {"restrictToWorkspace": true}}}"#,
    );
    // The one in docs/agent.md is /etc.
    let attempts = [
        other.to_string_lossy().into_owned(),
        d.root.to_string_lossy().into_owned(),
        "../other".to_string(),
        format!("{}/../other", d.ws.display()),
        "/etc".to_string(),
    ];
    for (cfg, restrict) in [(None, true), (Some(&closed), true), (Some(&open), false)] {
        for wd in &attempts {
            let json = exec_json("cat secret.txt; echo x > from_ws.txt; pwd", wd);
            let o = tool(&d, cfg.map(PathBuf::as_path), &d.ws, &json);
            let out = stdout(&o);
            let what = format!("restrict={restrict} working_dir={wd}: {out}{}", stderr(&o));
            // Refused, as `nanobot exec --cwd` is: 125.
            assert_eq!(o.status.code(), Some(125), "{what}");
            assert!(!out.contains(SECRET), "{what}");
            assert!(created(&d, &other).is_empty(), "{what}");
            assert!(
                out.starts_with(&format!("Error: working_dir {wd} ")),
                "{what}"
            );
            if restrict {
                // Refused by the agent, without asking sandboxd.
                assert!(
                    out.contains(&format!("is outside the workspace {}", d.ws.display())),
                    "{what}"
                );
            } else {
                // Sent, and refused by sandboxd (the kernel's RESOLVE_BENEATH).
                assert!(out.contains("refused by sandboxd: cwd "), "{what}");
                if !wd.starts_with('/') {
                    assert!(out.contains("escapes the workspace"), "{what}");
                }
            }
        }
    }
    // The open config says what it means.
    let o = tool(&d, Some(&open), &d.ws, &exec_json("true", "sub"));
    assert!(
        stderr(&o).contains("restrictToWorkspace is false"),
        "{}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("no effect"),
        "the warning must stay truthful: {}",
        stderr(&o)
    );
}

#[test]
fn a_working_dir_inside_the_workspace_is_where_the_command_runs() {
    // R/other is granted to the peer too: what keeps it out is that working_dir is a cwd.
    let d = Daemon::start_with(Opts {
        grant: vec!["other".into()],
        ..Opts::default()
    });
    let other = setup(&d);
    let sub = d.ws.join("sub");
    let open = config(
        &d,
        "open",
        r#"{"agents": {"defaults": {"restrictToWorkspace": false}}}"#,
    );
    for cfg in [None, Some(open.as_path())] {
        for wd in ["sub", "./sub/", &sub.to_string_lossy()] {
            let o = tool(&d, cfg, &d.ws, &exec_json("pwd; /bin/pwd -P", wd));
            assert_eq!(
                o.status.code(),
                Some(0),
                "{wd}: {}{}",
                stdout(&o),
                stderr(&o)
            );
            assert_eq!(stdout(&o), format!("{0}\n{0}\n\n", sub.display()), "{wd}");
        }
        for wd in [".", "", &d.ws.to_string_lossy(), "sub/.."] {
            let o = tool(&d, cfg, &d.ws, &exec_json("pwd", wd));
            assert_eq!(stdout(&o), format!("{}\n\n", d.ws.display()), "{wd}");
        }
    }
    // The workspace is still the sandbox's read-write tree: a write from sub lands in it.
    let o = tool(&d, None, &d.ws, &exec_json("echo hi > made.txt", "sub"));
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(
        std::fs::read_to_string(sub.join("made.txt")).unwrap(),
        "hi\n"
    );

    // A symlink that leads out: the link works outside the sandbox (positive control), the kernel
    // refuses it as a working directory.
    let o = d.unsandboxed(Path::new("/bin/cat"), &["link/secret.txt"]);
    assert!(stdout(&o).contains(SECRET), "{}", stderr(&o));
    for cfg in [None, Some(open.as_path())] {
        let o = tool(
            &d,
            cfg,
            &d.ws,
            &exec_json("cat secret.txt; echo x > from_ws.txt", "link"),
        );
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(125), "{out}");
        assert!(!out.contains(SECRET), "{out}");
        assert!(created(&d, &other).is_empty(), "{out}");
        assert!(
            out.starts_with(
                "Error: working_dir link refused by sandboxd: cwd \"link\" escapes the workspace"
            ),
            "{out}"
        );
    }

    // As documented in docs/agent.md.
    let o = tool(
        &d,
        None,
        &d.ws,
        r#"{"command": "pwd", "working_dir": "src"}"#,
    );
    assert_eq!(stdout(&o), format!("{}\n\n", d.ws.join("src").display()));
}

#[test]
fn nanobot_exec_cwd_runs_in_a_directory_of_the_workspace() {
    // R/other is granted to the peer too: what keeps it out is that working_dir is a cwd.
    let d = Daemon::start_with(Opts {
        grant: vec!["other".into()],
        ..Opts::default()
    });
    let other = setup(&d);
    // As documented: `nanobot exec --cwd src -- pwd`.
    let o = d.nanobot(&["--cwd", "src"], "pwd");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{}\n", d.ws.join("src").display()));
    let sub = d.ws.join("sub");
    let o = d.nanobot(&["--cwd", &sub.to_string_lossy()], "pwd");
    assert_eq!(stdout(&o), format!("{}\n", sub.display()));

    // Outside: refused by the agent (names --cwd) or by sandboxd (names cwd); nothing ran.
    let other_s = other.to_string_lossy().into_owned();
    for (dir, says) in [
        (other_s.as_str(), "--cwd "),
        ("../other", "--cwd ../other is outside the workspace"),
        ("link", "cwd \"link\" escapes the workspace"),
    ] {
        let o = d.nanobot(&["--cwd", dir], "cat secret.txt; echo x > from_ws.txt");
        assert_eq!(o.status.code(), Some(125), "{dir}: {}", stderr(&o));
        assert!(!stdout(&o).contains(SECRET), "{dir}");
        assert!(stderr(&o).contains(says), "{dir}: {}", stderr(&o));
        assert!(created(&d, &other).is_empty(), "{dir}");
    }
    let o = Command::new(bin("nanobot"))
        .args(["exec", "--help"])
        .output()
        .unwrap();
    assert!(stdout(&o).contains("--cwd <DIR>"), "{}", stdout(&o));
}

#[test]
fn exec_request_cwd_is_resolved_beneath_the_workspace() {
    // R/other is granted to the peer too: what keeps it out is that working_dir is a cwd.
    let d = Daemon::start_with(Opts {
        grant: vec!["other".into()],
        ..Opts::default()
    });
    let other = setup(&d);
    let rt = grpc::rt();
    rt.block_on(async {
        let mut c = grpc::client(&d.socket).await;
        let mut r = grpc::req(&d.ws, "pwd; echo \"$PWD\"; echo \"$HOME\"");
        r.cwd = "sub".into();
        let run = grpc::exec(&mut c, r).await.unwrap();
        let res = run.result.unwrap();
        assert_eq!(res.exit_code, 0, "{res:?}");
        let sub = d.ws.join("sub");
        assert_eq!(
            String::from_utf8_lossy(&run.stdout),
            format!("{0}\n{0}\n{1}\n", sub.display(), d.ws.display())
        );

        // Positive control: R/other is reachable as a workspace.
        let run = grpc::exec(&mut c, grpc::req(&other, "cat secret.txt"))
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&run.stdout).contains(SECRET));

        let cmd = "cat secret.txt; echo x > from_ws.txt";
        for (cwd, why) in [
            ("/etc".to_string(), "is an absolute path"),
            (other.to_string_lossy().into_owned(), "is an absolute path"),
            ("../other".into(), "escapes the workspace"),
            ("sub/../../other".into(), "escapes the workspace"),
            ("link".into(), "escapes the workspace"),
            ("missing".into(), "does not exist"),
        ] {
            let mut r = grpc::req(&d.ws, cmd);
            r.cwd = cwd.clone();
            let st = grpc::exec(&mut c, r).await.unwrap_err();
            assert_eq!(st.code(), tonic::Code::InvalidArgument, "{cwd}: {st:?}");
            assert!(
                st.message().starts_with(&format!("cwd {cwd:?} {why}")),
                "{cwd}: {}",
                st.message()
            );
            assert!(created(&d, &other).is_empty(), "{cwd}");
        }
        let mut r = grpc::req(&d.ws, "true");
        r.cwd = "a\0b".into();
        let st = grpc::exec(&mut c, r).await.unwrap_err();
        assert_eq!(st.message(), "cwd contains a NUL byte");
        // The operator sees each refusal, naming cwd.
        let log = d.log_text();
        assert!(
            log.contains("exec refused: cwd \"link\" escapes the workspace"),
            "{log}"
        );
    });
}

//! The daemon's life outside a single exec: health checks, systemd socket activation and
//! readiness, degraded mode, refusing when a layer is blocked, and the auto-start that `nanobot`
//! does for a user or for root.

use nanobot_e2e::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {} / {}", stdout(o), stderr(o)))
}

fn info(d: &Daemon) -> nanobot_proto::pb::InfoResponse {
    grpc::rt().block_on(async {
        let mut c = grpc::client(&d.socket).await;
        c.info(nanobot_proto::pb::InfoRequest {})
            .await
            .expect("Info")
            .into_inner()
    })
}

#[test]
fn health_service_reports_serving() {
    use tonic_health::pb::{
        health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
    };
    let d = Daemon::start();
    grpc::rt().block_on(async {
        let mut h = HealthClient::new(grpc::channel(&d.socket).await);
        for service in ["", "nanobot.sandbox.v1.Sandbox"] {
            let r = h
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap_or_else(|e| panic!("health check of {service:?}: {e}"))
                .into_inner();
            assert_eq!(r.status(), ServingStatus::Serving, "{service:?}");
        }
        let e = h
            .check(HealthCheckRequest {
                service: "no.such.Service".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
    });
}

fn socket_inode_of_fd(pid: i32, fd: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[test]
fn systemd_socket_activation_and_readiness() {
    let mut d = Daemon::start_with(Opts {
        socket_activated: true,
        notify: true,
        ..Opts::default()
    });
    let mut buf = [0u8; 512];
    let n = d
        .notify
        .as_ref()
        .unwrap()
        .recv(&mut buf)
        .expect("READY=1 on NOTIFY_SOCKET");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.contains("READY=1"), "{msg}");
    assert!(msg.contains(&format!("MAINPID={}", d.pid())), "{msg}");

    // The socket systemd handed over is the one serving.
    let o = d.nanobot(&[], "echo activated");
    assert_eq!(stdout(&o), "activated\n", "{}", stderr(&o));

    // Only the daemon holds the listening socket: not the launcher, not a sandbox.
    let listener = socket_inode_of_fd(d.pid(), 3);
    assert!(listener.starts_with("socket:"), "{listener}");
    let launchers: Vec<i32> = pids_with("__launcher")
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/status"))
                .map(|s| s.contains(&format!("PPid:\t{}\n", d.pid())))
                .unwrap_or(false)
        })
        .collect();
    assert_eq!(launchers.len(), 1, "launcher of {}", d.pid());
    let held: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", launchers[0]))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        !held.contains(&listener),
        "launcher holds {listener}: {held:?}"
    );

    // systemd owns the socket file: the daemon leaves it in place on exit.
    assert_eq!(d.stop().and_then(|s| s.code()), Some(0));
    assert!(d.socket.exists());
}

#[test]
fn landlock_blocked_by_a_container_filter_refuses_execs() {
    // Positive control: the same command runs on a daemon whose Landlock works.
    let ok = Daemon::start();
    let o = ok.nanobot(&[], "touch ran");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(ok.ws.join("ran").exists());

    let d = Daemon::start_with(Opts {
        wrap: vec![bin("deny-syscalls"), "landlock".into()],
        ..Opts::default()
    });
    let o = d.nanobot(&["--json"], "touch ran");
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["refused"], true);
    assert_eq!(v["refused_layer"], "landlock");
    assert_eq!(v["errno"], libc::EPERM);
    assert!(
        v["refused_reason"]
            .as_str()
            .unwrap()
            .contains("Landlock syscalls are blocked (EPERM)"),
        "{v}"
    );
    assert!(!d.ws.join("ran").exists());
    // Without --json the reason goes to stderr.
    let o = d.nanobot(&[], "touch ran");
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("Landlock syscalls are blocked"),
        "{}",
        stderr(&o)
    );
    let i = info(&d);
    assert!(!i.layers_enforced.iter().any(|l| l == "landlock"));
    assert!(
        i.problems.iter().any(|p| p.starts_with("landlock:")),
        "{:?}",
        i.problems
    );
    assert!(i.degraded.is_empty());
    assert!(d.log_text().contains("exec refused"), "{}", d.log_text());
}

#[test]
fn no_user_namespaces_refuses_execs() {
    // Positive control: user namespaces work for this user outside the wrapper.
    let (uid, gid) = test_ids();
    let mut c = Command::new("unshare");
    c.args(["-U", "true"]);
    if is_root() {
        as_user(&mut c, uid, gid);
    }
    assert!(c.status().unwrap().success());

    let d = Daemon::start_with(Opts {
        wrap: vec![bin("deny-syscalls"), "userns".into()],
        ..Opts::default()
    });
    let o = d.nanobot(&["--json"], "touch ran");
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["refused_layer"], "namespaces", "{v}");
    assert_eq!(v["errno"], libc::EPERM, "{v}");
    assert!(
        v["refused_reason"]
            .as_str()
            .unwrap()
            .contains("user namespaces"),
        "{v}"
    );
    assert!(!d.ws.join("ran").exists());
}

#[test]
fn network_namespaces_refused_alone_refuse_only_the_private_profile() {
    let config = "[profiles.lan]\nnetwork = \"private\"\n";
    // Positive control: on a daemon whose host allows network namespaces, both profiles run and
    // Info reports nothing.
    let ok = Daemon::start_with(Opts {
        config: Some(config.into()),
        ..Opts::default()
    });
    for profile in ["default", "lan"] {
        let o = ok.nanobot(&["--profile", profile], "echo ran");
        assert_eq!(stdout(&o), "ran\n", "{profile}: {}", stderr(&o));
    }
    assert!(info(&ok).problems.is_empty(), "{:?}", info(&ok).problems);

    let d = Daemon::start_with(Opts {
        config: Some(config.into()),
        wrap: vec![bin("deny-syscalls"), "netns".into()],
        ..Opts::default()
    });
    // The sandbox namespaces still work: the default profile (network = "none") runs.
    let o = d.nanobot(&[], "echo ran");
    assert_eq!(stdout(&o), "ran\n", "{}", stderr(&o));
    // network = "private" is refused, naming the layer and the step; nothing runs.
    let o = d.nanobot(&["--profile", "lan", "--json"], "touch ran");
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["refused_layer"], "namespaces", "{v}");
    assert_eq!(v["errno"], libc::EPERM, "{v}");
    assert!(!d.ws.join("ran").exists());
    // Info: the layer is enforced, and the problem names the profile that cannot run.
    let i = info(&d);
    assert!(i.layers_enforced.iter().any(|l| l == "namespaces"), "{i:?}");
    assert_eq!(i.problems.len(), 1, "{:?}", i.problems);
    assert!(
        i.problems[0].starts_with("namespaces: network = \"private\" (profile lan) cannot run here: cannot create a network namespace: unshare(CLONE_NEWNET) failed: Operation not permitted"),
        "{:?}",
        i.problems
    );
}

#[test]
fn degraded_mode_runs_only_when_configured_and_says_so() {
    // Without allow_degraded a missing layer refuses (fails_closed_naming_the_layer covers it);
    // with it the command runs, every result carries the degradation, and the other layers hold.
    let d = Daemon::start_with(Opts {
        config: Some("min_landlock_abi = 99\nallow_degraded = [\"landlock\"]\n".into()),
        ..Opts::default()
    });
    let outside = d.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let (uid, gid) = test_ids();
    chown(&outside, uid, gid);
    // Positive controls, unsandboxed as the same user: both actions succeed.
    let ctl = d.unsandboxed(
        Path::new("/bin/sh"),
        &[
            "-c",
            &format!(
                "touch {0}/w && rm {0}/w && unshare -U true && echo ok",
                outside.display()
            ),
        ],
    );
    assert_eq!(stdout(&ctl), "ok\n", "{}", stderr(&ctl));

    let cmd = format!(
        "touch inside; touch {}/w; touch /usr/nb-degraded; unshare -U true; echo done",
        outside.display()
    );
    let o = d.nanobot(&["--json"], &cmd);
    let v = json(&o);
    assert_eq!(v["refused"], false, "{v}");
    assert_eq!(v["exit_code"], 0, "{v}");
    let degraded = v["degraded"].as_array().unwrap();
    assert_eq!(degraded.len(), 1, "{v}");
    let why = degraded[0].as_str().unwrap();
    assert!(
        why.starts_with("landlock:") && why.contains("requires at least 99"),
        "{why}"
    );
    assert!(d.ws.join("inside").exists());
    // The constructed root still holds nothing outside (absent) and the system paths it holds
    // are read-only mounts; seccomp still stops namespaces.
    let err = v["stderr"].as_str().unwrap();
    assert!(
        err.contains(&format!(
            "{}/w': No such file or directory",
            outside.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("'/usr/nb-degraded': Read-only file system"),
        "{err}"
    );
    assert!(
        err.contains("unshare failed: Operation not permitted"),
        "{err}"
    );
    assert!(!outside.join("w").exists());

    // The streaming client warns on stderr.
    let o = d.nanobot(&[], "true");
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("sandbox ran DEGRADED, without landlock"),
        "{}",
        stderr(&o)
    );
    let i = info(&d);
    assert!(
        i.degraded.iter().any(|l| l.starts_with("landlock:")),
        "{:?}",
        i.degraded
    );
    assert!(!i.layers_enforced.iter().any(|l| l == "landlock"));
    assert!(d.log_text().contains("DEGRADED"), "{}", d.log_text());
}

#[test]
fn degraded_mode_accepts_only_landlock() {
    let dir = PathBuf::from(format!("/var/tmp/nanobot-e2e-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("sandboxd.toml");
    std::fs::write(&cfg, "allow_degraded = [\"seccomp\"]\n").unwrap();
    let o = Command::new(bin("sandboxd"))
        .args(["serve", "--workspace-root", "/var/tmp", "--socket"])
        .arg(dir.join("s.sock"))
        .arg("--config")
        .arg(&cfg)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("\"seccomp\" cannot be degraded"),
        "{}",
        stderr(&o)
    );
}

/// Stop whatever daemons were started on `socket` by nanobot's auto-start.
fn kill_daemons_on(socket: &Path) {
    for pid in pids_with(&socket.display().to_string()) {
        // SAFETY: signalling a process we started through nanobot.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let t0 = Instant::now();
    while !pids_with(&socket.display().to_string()).is_empty()
        && t0.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct KillOnDrop(PathBuf);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        kill_daemons_on(&self.0);
    }
}

#[test]
fn autostart_for_a_user_without_setup() {
    let (uid, gid) = test_ids();
    let base = PathBuf::from(format!("/var/tmp/nanobot-e2e-home-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let home = base.join("home");
    let xdg = base.join("xdg");
    for p in [&base, &home, &xdg] {
        std::fs::create_dir_all(p).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700)).unwrap();
        chown(p, uid, gid);
    }
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = xdg.join("nanobot/sandboxd.sock");
    let _cleanup = KillOnDrop(socket.clone());
    let run = |command: &str| {
        let mut c = Command::new(bin("nanobot"));
        c.args(["exec", "--", command])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &xdg)
            .stdin(Stdio::null());
        if is_root() {
            as_user(&mut c, uid, gid);
        }
        c.output().unwrap()
    };
    // Positive control for "no daemon yet": nothing listens on the per-user socket.
    assert!(!socket.exists());
    let o = run("id -u; pwd; echo hello > made");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Started for the user, and said so in one line: where, what it serves, its log, the stop.
    let said: Vec<String> = stderr(&o)
        .lines()
        .filter(|l| l.starts_with("nanobot: started sandboxd for you"))
        .map(String::from)
        .collect();
    assert_eq!(said.len(), 1, "{}", stderr(&o));
    for want in [
        format!("on {}", socket.display()),
        format!("serving workspaces under {}", home.display()),
        format!("log {}", home.join(".nanobot/logs/sandboxd.log").display()),
        "stop it with: nanobot sandbox stop".into(),
    ] {
        assert!(said[0].contains(&want), "{want:?} in {}", said[0]);
    }
    let ws = home.join(".nanobot/workspace");
    assert_eq!(
        stdout(&o),
        format!("{uid}\n{}\n", ws.display()),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(ws.join("made")).unwrap(), "hello\n");
    assert!(socket.exists());
    let mode = std::fs::metadata(socket.parent().unwrap()).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let daemons = pids_with(&socket.display().to_string());
    assert_eq!(daemons.len(), 1, "{daemons:?}");
    // The daemon runs as the user, in the background, and is reused by the next call.
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemons[0])).unwrap();
    assert!(
        status.contains(&format!("\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")),
        "{status}"
    );
    let o = run("cat made");
    assert_eq!(stdout(&o), "hello\n");
    assert!(!stderr(&o).contains("started sandboxd"), "{}", stderr(&o));
    assert_eq!(pids_with(&socket.display().to_string()), daemons);
    // Confined like any other exec: the home around the workspace is not readable.
    std::fs::write(home.join("secret"), "TOPSECRET").unwrap();
    chown(&home.join("secret"), uid, gid);
    let o = run("cat ../../secret");
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("No such file or directory"),
        "{}",
        stderr(&o)
    );
    drop(_cleanup);
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn autostart_for_root_runs_commands_as_a_system_user() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let socket = PathBuf::from("/run/nanobot/sandboxd.sock");
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        eprintln!("skipped: a sandboxd already serves {}", socket.display());
        return;
    }
    let _cleanup = KillOnDrop(socket.clone());
    let home = PathBuf::from(format!(
        "/var/tmp/nanobot-e2e-roothome-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&home).unwrap();
    let run = |command: &str| {
        Command::new(bin("nanobot"))
            .args(["exec", "--", command])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", &home)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let marker = format!("made-{}", std::process::id());
    let existed = lookup("nanobot-sandbox").is_some();
    let o = run(&format!("id -un; id -u; pwd; touch {marker}"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Root hears what was set up for it: the system user (created, if it was), the workspace
    // under /var/lib and its link, the socket under /run, the log and how to stop it.
    let said = stderr(&o)
        .lines()
        .find(|l| l.starts_with("nanobot: started sandboxd for you"))
        .unwrap_or_else(|| panic!("no announcement in {}", stderr(&o)))
        .to_string();
    for want in [
        "on /run/nanobot/sandboxd.sock",
        "serving workspaces under /var/lib/nanobot/workspace",
        "as the system user nanobot-sandbox",
        "root's ~/.nanobot/workspace links there",
        "stop it with: nanobot sandbox stop",
    ] {
        assert!(said.contains(want), "{want:?} in {said}");
    }
    assert_eq!(
        said.contains("just created with useradd"),
        !existed,
        "{said}"
    );
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "nanobot-sandbox", "{out}");
    assert_ne!(lines[1], "0", "{out}");
    assert_eq!(lines[2], "/var/lib/nanobot/workspace", "{out}");
    let made = Path::new("/var/lib/nanobot/workspace").join(&marker);
    // The default workspace is ~/.nanobot/workspace for root too: a link to the directory the
    // sandbox user can reach, in a 0700 ~/.nanobot.
    let link = home.join(".nanobot/workspace");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("/var/lib/nanobot/workspace")
    );
    assert!(link.join(&marker).exists());
    assert_eq!(
        std::fs::metadata(home.join(".nanobot")).unwrap().mode() & 0o777,
        0o700
    );
    let sandbox_uid = lookup("nanobot-sandbox").unwrap().0;
    assert_eq!(std::fs::metadata(&made).unwrap().uid(), sandbox_uid);
    // The daemon dropped root too.
    let daemons = pids_with(&socket.display().to_string());
    assert!(!daemons.is_empty());
    for pid in &daemons {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(
            status.contains(&format!(
                "\nUid:\t{sandbox_uid}\t{sandbox_uid}\t{sandbox_uid}\t"
            )),
            "{status}"
        );
    }
    // A second call finds the running daemon.
    let o = run("id -un");
    assert_eq!(stdout(&o), "nanobot-sandbox\n");
    assert_eq!(pids_with(&socket.display().to_string()), daemons);
    // `nanobot sandbox stop` stops it, as the line said.
    let o = Command::new(bin("nanobot"))
        .args(["sandbox", "stop"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", &home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("stopped sandboxd"), "{}", stdout(&o));
    assert!(!Path::new("/run/nanobot/sandboxd.autostart.json").exists());
    let _ = std::fs::remove_file(made);
    let _ = std::fs::remove_dir_all(&home);
}

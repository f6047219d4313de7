//! Operator profiles proven by real attempts: network none / private / ports / full against
//! listeners on 127.0.0.1 and ::1 only, read-only workspace, extra read-only paths, profile
//! grants. Each denial is preceded by the same action succeeding outside the sandbox.

use nanobot_e2e::*;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

struct Net {
    d: Daemon,
    /// Listening on 127.0.0.1: `allowed` is in the ports profile, `other` is not.
    allowed: TcpListener,
    other: TcpListener,
    /// Listening on ::1, in the ports profile (None when the host has no IPv6 loopback).
    v6: Option<TcpListener>,
}

fn port(l: &TcpListener) -> u16 {
    l.local_addr().unwrap().port()
}

fn setup() -> Net {
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let v6 = TcpListener::bind("[::1]:0").ok();
    let mut ports = vec![port(&allowed)];
    if let Some(l) = &v6 {
        ports.push(port(l));
    }
    let config = format!(
        "[profiles.ports]\nnetwork = \"ports\"\nconnect_ports = {ports:?}\n\
         [profiles.private]\nnetwork = \"private\"\n\
         [profiles.full]\nnetwork = \"full\"\n"
    );
    let d = Daemon::start_with(Opts {
        config: Some(config),
        ..Opts::default()
    });
    // Accept and drop whatever connects, so the listeners never fill up.
    for l in [&allowed, &other].into_iter().chain(v6.as_ref()) {
        let l = l.try_clone().unwrap();
        std::thread::spawn(move || for _ in l.incoming() {});
    }
    Net {
        d,
        allowed,
        other,
        v6,
    }
}

/// The probe inside with `profile`, and outside as the same user.
fn probe(n: &Net, profile: &str, what: &[&str]) -> (String, String) {
    let p = n.d.install_probe();
    let outside = n.d.unsandboxed(&n.d.ws.join("probe"), what);
    let inside =
        n.d.nanobot(&["--profile", profile], &format!("{p} {}", what.join(" ")));
    (
        stdout(&outside).trim().to_string(),
        format!("{}{}", stdout(&inside).trim(), stderr(&inside).trim()),
    )
}

const EACCES: &str = "errno 13";
const EAFNOSUPPORT: &str = "errno 97";
const ECONNREFUSED: &str = "errno 111";

#[test]
fn network_modes_against_local_listeners() {
    let n = setup();
    let a = port(&n.allowed).to_string();
    let o = port(&n.other).to_string();
    let tcp = |host: &'static str, p: &str| {
        vec!["tcp", host, p]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let run = |profile: &str, what: &[String]| {
        let w: Vec<&str> = what.iter().map(String::as_str).collect();
        probe(&n, profile, &w)
    };
    // Positive controls: outside, the user reaches both ports.
    assert_eq!(run("default", &tcp("127.0.0.1", &a)).0, "ok");
    assert_eq!(run("default", &tcp("127.0.0.1", &o)).0, "ok");

    // none (the default profile): no inet socket at all.
    assert_eq!(run("default", &tcp("127.0.0.1", &a)).1, EAFNOSUPPORT);

    // ports: the listed port connects, another port on the same host does not.
    assert_eq!(run("ports", &tcp("127.0.0.1", &a)).1, "ok");
    assert_eq!(run("ports", &tcp("127.0.0.1", &o)).1, EACCES);
    if let Some(v6) = &n.v6 {
        let p6 = port(v6).to_string();
        assert_eq!(run("default", &tcp("::1", &p6)).0, "ok");
        assert_eq!(run("ports", &tcp("::1", &p6)).1, "ok");
        assert_eq!(run("ports", &tcp("::1", &o)).1, EACCES);
    }
    // ...and nothing but TCP connect: no UDP, no listening.
    let udp = vec!["udp".to_string(), "127.0.0.1".into(), a.clone()];
    assert_eq!(run("ports", &udp).0, "ok");
    assert_eq!(run("ports", &udp).1, EAFNOSUPPORT);
    let bind = vec!["bind-tcp".to_string(), "127.0.0.1".into(), "0".into()];
    assert_eq!(run("ports", &bind).0, "ok");
    assert_eq!(run("ports", &bind).1, EACCES);

    // full: everything the host allows.
    assert_eq!(run("full", &tcp("127.0.0.1", &a)).1, "ok");
    assert_eq!(run("full", &tcp("127.0.0.1", &o)).1, "ok");

    // private: its own loopback; the host's listeners are not there.
    assert_eq!(run("private", &tcp("127.0.0.1", &a)).1, ECONNREFUSED);
    assert_eq!(
        run("private", &udp).1,
        "ok",
        "UDP works inside its own namespace"
    );
}

#[test]
fn a_server_inside_private_is_reachable_inside_and_invisible_outside() {
    let n = setup();
    let p = n.d.install_probe();
    // The host's own listener keeps its port for the whole test (a port freed and probed later
    // could be taken by any other process meanwhile); the sandbox listens on the same number in
    // its own namespace, which it could not do on the host (EADDRINUSE).
    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = port(&host);
    let ready = n.d.ws.join("ready");
    let release = n.d.ws.join("release");
    let cmd = format!(
        "{p} serve 127.0.0.1 {port} ready & \
         while [ ! -e release ]; do sleep 0.05; done; {p} fetch 127.0.0.1 {port}"
    );
    let child =
        n.d.nanobot_cmd(&["--profile", "private"], &cmd)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    let t0 = Instant::now();
    while !ready.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "server never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The server is listening inside: from the host the same port reaches the host's listener,
    // never the sandbox's server (which would greet with "hi").
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (accepted, _) = host.accept().unwrap();
    assert_eq!(accepted.peer_addr().unwrap(), c.local_addr().unwrap());
    drop(accepted);
    let mut got = String::new();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::io::Read::read_to_string(&mut c, &mut got).unwrap();
    assert_eq!(
        got, "",
        "the host's connection reached the sandbox's server"
    );
    std::fs::write(&release, "").unwrap();
    let o = child.wait_with_output().unwrap();
    // `fetch` got the greeting from the server inside; the server reports its own "ok".
    let out = stdout(&o);
    assert!(out.contains("hi ok"), "{out}{}", stderr(&o));
    assert_eq!(out.matches("ok").count(), 2, "{out}");
}

#[test]
fn readonly_workspace_and_extra_read_only_paths() {
    let extra = std::env::temp_dir().join(format!("nanobot-e2e-extra-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&extra);
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("data.txt"), "shared data\n").unwrap();
    let (uid, gid) = test_ids();
    for p in [&extra, &extra.join("data.txt")] {
        chown(p, uid, gid);
    }
    // /tmp is private inside: use a path outside it.
    let extra2 = Path::new("/var/tmp").join(extra.file_name().unwrap());
    let _ = std::fs::remove_dir_all(&extra2);
    std::fs::rename(&extra, &extra2).unwrap();
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "[profiles.readonly.filesystem]\nworkspace_writable = false\n\
             [profiles.data.filesystem]\nread_only = [{:?}]\n\
             [profiles.shared.filesystem]\nread_write = [{:?}]\n",
            extra2.display().to_string(),
            extra2.display().to_string()
        )),
        ..Opts::default()
    });
    let data = extra2.join("data.txt");
    // Control: the user can write both outside the sandbox.
    let w = d.unsandboxed(
        Path::new("/bin/sh"),
        &["-c", &format!("echo w >> {}", data.display())],
    );
    assert!(w.status.success());
    // readonly: reads work, writes fail.
    std::fs::write(d.ws.join("in.txt"), "inside\n").unwrap();
    let o = d.nanobot(&["--profile", "readonly"], "cat in.txt");
    assert_eq!(stdout(&o), "inside\n");
    let o = d.nanobot(&["--profile", "readonly"], "echo x > out.txt");
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("Read-only file system") || stderr(&o).contains("Permission denied"),
        "{}",
        stderr(&o)
    );
    assert!(!d.ws.join("out.txt").exists());
    // data: the extra path is readable, not writable; the default profile cannot even read it.
    let o = d.nanobot(&["--profile", "data"], &format!("cat {}", data.display()));
    assert_eq!(stdout(&o), "shared data\nw\n", "{}", stderr(&o));
    let o = d.nanobot(
        &["--profile", "data"],
        &format!("echo x >> {}", data.display()),
    );
    assert_ne!(o.status.code(), Some(0));
    let o = d.nanobot(&[], &format!("cat {}", data.display()));
    assert!(
        stderr(&o).contains("No such file or directory"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "shared data\nw\n");
    // shared: the extra path is writable too, and only it.
    let o = d.nanobot(
        &["--profile", "shared"],
        &format!(
            "echo s >> {} && echo new > {}/new.txt && cat {}",
            data.display(),
            extra2.display(),
            data.display()
        ),
    );
    assert_eq!(stdout(&o), "shared data\nw\ns\n", "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(extra2.join("new.txt")).unwrap(),
        "new\n"
    );
    let o = d.nanobot(&["--profile", "shared"], "echo x > /var/tmp/nb-elsewhere");
    assert_ne!(o.status.code(), Some(0));
    assert!(!Path::new("/var/tmp/nb-elsewhere").exists());
    let _ = std::fs::remove_dir_all(&extra2);
}

#[test]
fn a_profile_not_granted_to_the_peer_is_permission_denied() {
    // The peer is this test process's user (nanobot exec runs as it).
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "[profiles.mine]\ngrant_uids = [{uid}]\n[profiles.theirs]\ngrant_uids = [{}]\ngrant_gids = [4242]\n",
            uid + 1
        )),
        ..Opts::default()
    });
    let o = d.nanobot(&["--profile", "mine"], "echo granted");
    assert_eq!(stdout(&o), "granted\n", "{}", stderr(&o));
    let o = d.nanobot(&["--profile", "theirs"], "echo nope");
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains(&format!("profile \"theirs\" is not granted to uid {uid}")),
        "{}",
        stderr(&o)
    );
    let log = std::fs::read_to_string(d.dir.join("sandboxd.log")).unwrap();
    assert!(log.contains("Access denied: profile \"theirs\""), "{log}");
}

#[test]
fn sighup_reloads_atomically_and_a_broken_config_keeps_the_old_one() {
    let d = Daemon::start_with(Opts {
        config: Some("[profiles.extra]\ntimeout_secs = 5\n".into()),
        ..Opts::default()
    });
    let cfg = d.dir.join("sandboxd.toml");
    assert!(cfg.exists());
    let hup = |d: &Daemon| {
        // SAFETY: signalling the daemon this test started.
        unsafe { libc::kill(d.pid(), libc::SIGHUP) };
    };
    let wait_for = |what: &dyn Fn() -> bool| {
        let t0 = Instant::now();
        while !what() {
            assert!(t0.elapsed() < Duration::from_secs(10), "reload not seen");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // A command started under `extra` (5 s) keeps it while the profile is tightened to 1 s.
    let long = d
        .nanobot_cmd(&["--profile", "extra"], "sleep 2; echo survived")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(
        &cfg,
        "[profiles.extra]\ntimeout_secs = 1\n[profiles.added]\n",
    )
    .unwrap();
    hup(&d);
    wait_for(&|| d.nanobot(&["--profile", "added"], "true").status.success());
    let o = long.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "survived\n", "{}", stderr(&o));
    let o = d.nanobot(&["--profile", "extra"], "sleep 3; echo late");
    assert_eq!(
        o.status.code(),
        Some(124),
        "new commands get the new 1 s timeout"
    );

    // A broken config is rejected with its location; the old one keeps serving.
    std::fs::write(&cfg, "[profiles.extra]\ntimeout_secs = \"soon\"\n").unwrap();
    hup(&d);
    wait_for(&|| d.log_text().contains("config reload rejected"));
    let log = d.log_text();
    assert!(log.contains(&format!("{}:2", cfg.display())), "{log}");
    assert!(d.nanobot(&["--profile", "added"], "true").status.success());
    assert_eq!(stdout(&d.nanobot(&[], "echo still")), "still\n");
    // And a config that parses but breaks a rule is rejected too.
    std::fs::write(&cfg, "[profiles.added.limits]\nprocesses = 0\n").unwrap();
    hup(&d);
    wait_for(&|| d.log_text().matches("config reload rejected").count() >= 2);
    assert!(d.nanobot(&["--profile", "added"], "true").status.success());
}

#[test]
fn check_validates_and_names_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("nanobot-e2e-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("profiles.d")).unwrap();
    let cfg = dir.join("sandboxd.toml");
    std::fs::write(
        &cfg,
        "socket = \"/run/nanobot/sandboxd.sock\"\n[profiles.build]\nnetwork = \"private\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("profiles.d/web.toml"),
        "network = \"ports\"\nconnect_ports = [443]\n",
    )
    .unwrap();
    let run = || {
        std::process::Command::new(bin("sandboxd"))
            .args(["check", "--config"])
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let o = run();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("3 profile(s): build, default, web"),
        "{}",
        stdout(&o)
    );
    std::fs::write(
        &cfg,
        "socket = \"/run/nanobot/sandboxd.sock\"\nsokcet = 1\n",
    )
    .unwrap();
    let o = run();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains(&format!(
            "{}:2: sokcet: unknown key `sokcet`; did you mean `socket`?",
            cfg.display()
        )),
        "{}",
        stdout(&o)
    );
    std::fs::write(
        &cfg,
        "socket = \"/run/nanobot/sandboxd.sock\"\n[profiles.build.filesystem]\nread_write = [\"/\", \"/run/nanobot\"]\nread_only = [\"/nonexistent/x\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("profiles.d/web.toml"),
        "network = \"ports\"\n\n[limits]\ncpu_secs = 0\n",
    )
    .unwrap();
    let o = run();
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    for want in [
        format!("{}:3: profiles.build.filesystem.read_write: grants write access to /", cfg.display()),
        format!("{}:3: profiles.build.filesystem.read_write: /run/nanobot grants write access to the socket's directory", cfg.display()),
        format!("{}:4: profiles.build.filesystem.read_only: /nonexistent/x does not exist", cfg.display()),
        format!("{}:1: profiles.web.network: \"ports\" needs at least one port in connect_ports", dir.join("profiles.d/web.toml").display()),
        format!("{}:4: profiles.web.limits.cpu_secs: 0 is out of range", dir.join("profiles.d/web.toml").display()),
    ] {
        assert!(out.contains(&want), "missing {want:?} in\n{out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sandboxd explain` must agree with what the kernel then does, for a table of paths and ports.
#[test]
fn explain_agrees_with_the_kernel() {
    let (uid, gid) = test_ids();
    let extra = Path::new("/var/tmp").join(format!("nanobot-e2e-explain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&extra);
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("data.txt"), "d\n").unwrap();
    for p in [&extra, &extra.join("data.txt")] {
        chown(p, uid, gid);
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    for l in [&listener, &other] {
        let l = l.try_clone().unwrap();
        std::thread::spawn(move || for _ in l.incoming() {});
    }
    let (a, b) = (port(&listener), port(&other));
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "[profiles.data.filesystem]\nread_only = [{e:?}]\n\
             [profiles.shared.filesystem]\nread_write = [{e:?}]\n\
             [profiles.readonly.filesystem]\nworkspace_writable = false\n\
             [profiles.ports]\nnetwork = \"ports\"\nconnect_ports = [{a}]\n\
             [profiles.full]\nnetwork = \"full\"\n",
            e = extra.display().to_string()
        )),
        ..Opts::default()
    });
    std::fs::write(d.ws.join("f.txt"), "f\n").unwrap();
    std::fs::write(d.ws.join("run.sh"), "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(d.ws.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in ["f.txt", "run.sh"] {
        chown(&d.ws.join(f), uid, gid);
    }
    let explain = |profile: &str, args: &[&str]| -> bool {
        let o = std::process::Command::new(bin("sandboxd"))
            .args(["explain", profile, "--config"])
            .arg(d.dir.join("sandboxd.toml"))
            .arg("--workspace")
            .arg(&d.ws)
            .args(if is_root() {
                vec!["--user", TEST_USER]
            } else {
                vec![]
            })
            .args(args)
            .output()
            .unwrap();
        assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
        o.status.code() == Some(0)
    };
    let ws = d.ws.display().to_string();
    let data = extra.join("data.txt").display().to_string();
    let newfile = extra.join("new.txt").display().to_string();
    // (profile, path, mode, shell command doing exactly that)
    let cases: Vec<(&str, String, &str, String)> = vec![
        (
            "default",
            "/etc/hostname".into(),
            "read",
            "cat /etc/hostname".into(),
        ),
        (
            "default",
            "/etc/hostname".into(),
            "write",
            "echo x >> /etc/hostname".into(),
        ),
        (
            "default",
            format!("{ws}/f.txt"),
            "write",
            "echo x >> f.txt".into(),
        ),
        (
            "default",
            format!("{ws}/new.txt"),
            "write",
            "echo x > new.txt".into(),
        ),
        (
            "readonly",
            format!("{ws}/f.txt"),
            "write",
            "echo x >> f.txt".into(),
        ),
        (
            "readonly",
            format!("{ws}/f.txt"),
            "read",
            "cat f.txt".into(),
        ),
        ("default", data.clone(), "read", format!("cat {data}")),
        ("data", data.clone(), "read", format!("cat {data}")),
        ("data", data.clone(), "write", format!("echo x >> {data}")),
        ("shared", data.clone(), "write", format!("echo x >> {data}")),
        (
            "shared",
            newfile.clone(),
            "write",
            format!("echo x > {newfile}"),
        ),
        (
            "default",
            "/usr/bin/true".into(),
            "exec",
            "/usr/bin/true".into(),
        ),
        ("default", format!("{ws}/run.sh"), "exec", "./run.sh".into()),
        (
            "readonly",
            format!("{ws}/run.sh"),
            "exec",
            "./run.sh".into(),
        ),
        ("default", "/root".into(), "read", "ls /root".into()),
        (
            "default",
            "/dev/null".into(),
            "write",
            "echo x > /dev/null".into(),
        ),
        (
            "default",
            "/var/tmp".into(),
            "write",
            "echo x > /var/tmp/nb-explain-probe".into(),
        ),
        // Landlock lets /etc be read; shadow's mode does not let the sandbox user.
        (
            "default",
            "/etc/shadow".into(),
            "read",
            "cat /etc/shadow".into(),
        ),
        (
            "default",
            "/etc/passwd".into(),
            "read",
            "cat /etc/passwd".into(),
        ),
        // Absent from the constructed root.
        ("default", "/run".into(), "read", "ls /run".into()),
        ("full", "/home".into(), "read", "ls /home".into()),
        // The sandbox's own /dev and private /tmp.
        ("default", "/dev/pts".into(), "read", "ls /dev/pts".into()),
        (
            "default",
            "/tmp/nb-explain".into(),
            "write",
            "echo x > /tmp/nb-explain".into(),
        ),
        (
            "default",
            "/dev/shm/nb-explain".into(),
            "write",
            "echo x > /dev/shm/nb-explain".into(),
        ),
    ];
    let probe = d.install_probe();
    let mut table = vec![];
    for (profile, path, mode, cmd) in &cases {
        let mut args = vec!["--path", path.as_str()];
        match *mode {
            "write" => args.push("--write"),
            "exec" => args.push("--exec"),
            _ => {}
        }
        let said = explain(profile, &args);
        let did = d.nanobot(&["--profile", profile], cmd).status.success();
        table.push(format!(
            "{profile:9} {mode:5} {path}: explain {said}, kernel {did}"
        ));
        assert_eq!(said, did, "{profile} {mode} {path}\n{}", table.join("\n"));
    }
    for (profile, p, want) in [
        ("default", a, false),
        ("ports", a, true),
        ("ports", b, false),
        ("full", b, true),
    ] {
        let said = explain(profile, &["--connect", &p.to_string()]);
        let o = d.nanobot(
            &["--profile", profile],
            &format!("{probe} tcp 127.0.0.1 {p}"),
        );
        let did = stdout(&o).trim() == "ok";
        assert_eq!(
            (said, did),
            (want, want),
            "{profile} tcp/{p}: {}",
            stdout(&o)
        );
    }
    // Cases where both sides allow must exist, and where both deny: the table is not one-sided.
    assert!(table.iter().any(|l| l.contains("explain true")));
    assert!(table.iter().any(|l| l.contains("explain false")));
    let _ = std::fs::remove_dir_all(&extra);
}

#[test]
fn doctor_reports_the_host_and_what_blocks_it() {
    use std::os::unix::process::CommandExt;
    let (uid, gid) = test_ids();
    let cfg = std::env::temp_dir().join(format!("nb-doctor-{}.toml", std::process::id()));
    std::fs::write(&cfg, "").unwrap();
    let doctor = |wrap: Option<&str>, config: &Path, json: bool| {
        let mut c = match wrap {
            Some(mode) => {
                let mut c = std::process::Command::new(bin("deny-syscalls"));
                c.arg(mode).arg(bin("sandboxd"));
                c
            }
            None => std::process::Command::new(bin("sandboxd")),
        };
        c.arg("doctor").arg("--config").arg(config);
        if json {
            c.arg("--json");
        }
        if is_root() {
            c.uid(uid).gid(gid);
        }
        c.output().unwrap()
    };
    let run = |wrap: Option<&str>, json: bool| doctor(wrap, &cfg, json);
    // The config named must exist: doctor reads min_landlock_abi from it.
    let o = doctor(None, Path::new("/nonexistent-config.toml"), false);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("/nonexistent-config.toml"),
        "{}",
        stderr(&o)
    );
    // This machine is ready, as the unprivileged user.
    let o = run(None, false);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("✓ Landlock: ABI"), "{}", stdout(&o));
    assert!(stdout(&o).contains("✓ user namespaces"), "{}", stdout(&o));
    assert!(stdout(&o).contains(&format!("uid {uid}")), "{}", stdout(&o));
    // Landlock filtered as in a container: ✗ with the fix, non-zero.
    let o = run(Some("landlock"), false);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("✗ Landlock: the Landlock syscalls are blocked (EPERM)"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("fix: allow landlock_create_ruleset"),
        "{}",
        stdout(&o)
    );
    // User namespaces blocked.
    let o = run(Some("userns"), true);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let ns = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "user namespaces")
        .unwrap();
    assert_eq!(ns["ok"], false);
    assert_eq!(ns["critical"], true);
    assert!(ns["fix"].as_str().unwrap().len() > 10);
    // Network namespaces refused alone: user namespaces pass, network namespaces fail, with
    // their own fix, without failing doctor while no profile uses network = "private".
    let o = run(None, true);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let check = |v: &serde_json::Value, name: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} check in {v}"))
    };
    assert_eq!(check(&v, "network namespaces")["ok"], true, "{v}");
    let o = run(Some("netns"), true);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(check(&v, "user namespaces")["ok"], true, "{v}");
    let net = check(&v, "network namespaces");
    assert_eq!(net["ok"], false, "{v}");
    assert_eq!(net["critical"], false, "{v}");
    assert!(
        net["fix"].as_str().unwrap().contains("RestrictNamespaces"),
        "{v}"
    );
    // ...but critical, naming it, once a configured profile uses network = "private": its
    // execs are refused.
    let private = cfg.with_extension("private.toml");
    std::fs::write(&private, "[profiles.lan]\nnetwork = \"private\"\n").unwrap();
    let o = doctor(Some("netns"), &private, true);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let net = check(&v, "network namespaces");
    assert_eq!(
        (&net["ok"], &net["critical"]),
        (&false.into(), &true.into()),
        "{v}"
    );
    assert!(
        net["detail"]
            .as_str()
            .unwrap()
            .contains("network = \"private\" (profile lan) is refused"),
        "{v}"
    );
    let _ = std::fs::remove_file(&private);
    let _ = std::fs::remove_file(&cfg);
}

#[test]
fn a_limit_hit_says_which_limit() {
    let d = Daemon::start_with(Opts {
        config: Some(
            "[profiles.tight]\ntimeout_secs = 6\noutput_limit_bytes = 100\n\
             [profiles.tight.limits]\ncpu_secs = 1\nfile_size_bytes = 4096\n"
                .into(),
        ),
        ..Opts::default()
    });
    let json = |cmd: &str| -> serde_json::Value {
        let o = d.nanobot(&["--profile", "tight", "--json"], cmd);
        serde_json::from_slice(&o.stdout).unwrap()
    };
    // Positive control: the default profile lets each of these finish.
    let o = d.nanobot(&["--json"], "head -c 10000 /dev/zero > big && echo done");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["exit"].as_i64(), v["limit_hit"].as_str()),
        (Some(0), Some("")),
        "{v}"
    );

    let v = json("head -c 10000 /dev/zero > big");
    assert_eq!(v["limit_hit"], "file_size_bytes", "{v}");
    assert_eq!(
        v["exit_code"],
        128 + libc::SIGXFSZ,
        "the shell saw head die of SIGXFSZ"
    );
    let v = json("while :; do :; done");
    assert_eq!(v["limit_hit"], "cpu_secs", "{v}");
    assert_eq!(v["signal"], libc::SIGXCPU);
    // The timeout leaves the 1 s CPU budget room to trip first on a loaded machine.
    let v = json("sleep 30");
    assert_eq!(v["limit_hit"], "timeout_secs", "{v}");
    assert_eq!(v["exit"], 124);
    // An exit status alone is no limit hit: `exit 152`, `exit 153`, `kill -XCPU $$` did not use
    // the CPU budget or write past the file size limit.
    for (cmd, code) in [("exit 152", 152), ("exit 153", 153)] {
        let v = json(cmd);
        assert_eq!(
            (v["exit_code"].as_i64(), v["limit_hit"].as_str()),
            (Some(code), Some("")),
            "{v}"
        );
    }
    let v = json("kill -XCPU $$");
    assert_eq!(v["signal"], libc::SIGXCPU, "{v}");
    assert_eq!(v["limit_hit"], "", "{v}");
    let v = json("head -c 1000 /dev/zero | tr '\\0' x");
    assert_eq!(v["limit_hit"], "output_limit_bytes", "{v}");
    // And on stderr for people.
    let o = d.nanobot(&["--profile", "tight"], "sleep 30");
    assert!(
        stderr(&o).contains("limit hit: timeout_secs"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_profile_adds_its_own_guard_patterns() {
    let d = Daemon::start_with(Opts {
        config: Some("[profiles.strict]\ndeny_patterns = [\"curl\", \"git push\"]\n".into()),
        ..Opts::default()
    });
    let o = d.nanobot(&[], "echo curl is fine here; git push 2>/dev/null; true");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = d.nanobot(&["--profile", "strict"], "cd x && git push origin main");
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("blocked by safety guard"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("git push"), "{}", stderr(&o));
    // The global defaults still apply inside the profile.
    let o = d.nanobot(&["--profile", "strict"], "rm -rf build");
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn the_shipped_profiles_check_and_mean_what_the_docs_say() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/sandboxd.toml");
    let o = std::process::Command::new(bin("sandboxd"))
        .args(["check", "--config"])
        .arg(&shipped)
        .output()
        .unwrap();
    // The file names the users, group and directories the package creates: where they are
    // missing (a build host), those are its only problems, as serve would refuse it too.
    let group_exists = std::process::Command::new("getent")
        .args(["group", "nanobot"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut expected = vec![];
    if lookup("nanobot-sandbox").is_none() {
        expected.push("user: user \"nanobot-sandbox\" does not exist");
    }
    if !group_exists {
        expected.push("allow_groups: group \"nanobot\" does not exist");
    }
    if !Path::new("/var/lib/nanobot/workspaces").is_dir() {
        expected.push("workspace_roots: /var/lib/nanobot/workspaces");
    }
    let out = stdout(&o);
    if expected.is_empty() {
        assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
        assert!(out.contains("build, default, network, readonly"), "{out}");
    } else {
        assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
        assert_eq!(out.lines().count(), expected.len(), "{out}");
        for e in expected {
            assert!(out.contains(e), "missing {e:?} in\n{out}");
        }
    }
    // Its profiles alone, as a packaged host reads them.
    let dir = std::env::temp_dir().join(format!("nanobot-e2e-shipped-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("profiles.toml");
    let text: String = std::fs::read_to_string(&shipped)
        .unwrap()
        .lines()
        .skip_while(|l| !l.starts_with("[profiles."))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&cfg, text).unwrap();
    let explain = |profile: &str, args: &[&str]| {
        let o = std::process::Command::new(bin("sandboxd"))
            .args(["explain", profile, "--config"])
            .arg(&cfg)
            .args(["--workspace", "/var/tmp"])
            .args(args)
            .output()
            .unwrap();
        (o.status.code(), stdout(&o))
    };
    assert_eq!(explain("default", &["--connect", "443"]).0, Some(1));
    assert_eq!(explain("network", &["--connect", "443"]).0, Some(0));
    assert_eq!(
        explain("readonly", &["--path", "/var/tmp/x", "--write"]).0,
        Some(1)
    );
    assert_eq!(
        explain("default", &["--path", "/var/tmp/x", "--write"]).0,
        Some(0)
    );
    let (_, build) = explain("build", &[]);
    assert!(build.contains("network: private"), "{build}");
    let (_, default) = explain("default", &[]);
    assert!(default.contains("processes 256"), "{default}");
    assert!(build.contains("processes 1024"), "{build}");
    let _ = std::fs::remove_dir_all(&dir);
}

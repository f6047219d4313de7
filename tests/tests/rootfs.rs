//! The sandbox's root is built from its profile: host named sockets are absent (unless a profile
//! grants one by path), sockets made inside work, and the sandbox has its own pseudo-terminals.
//! Each escape test first shows the same action succeeds outside the sandbox, as the sandbox's
//! user (positive control).

use nanobot_e2e::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

const PY: &str = "/usr/bin/python3";

/// A Python client that connects to a named socket, reads one line and prints it (or the error).
fn client(path: &Path) -> String {
    format!(
        "{PY} -c \"import socket; s = socket.socket(socket.AF_UNIX); s.connect('{}'); print(s.recv(64).decode().strip())\"",
        path.display()
    )
}

/// A host listener (created by the test, connectable by everyone) that greets each client.
fn host_listener(path: &Path) -> UnixListener {
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let l2 = l.try_clone().unwrap();
    std::thread::spawn(move || {
        for mut c in l2.incoming().flatten() {
            use std::io::Write;
            let _ = c.write_all(b"HOSTSOCKET\n");
        }
    });
    l
}

fn run_dir() -> PathBuf {
    let d = PathBuf::from(format!("/run/nanobot-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

#[test]
fn host_sockets_are_absent_and_sockets_made_inside_work() {
    if !is_root() {
        eprintln!("skipped: needs root to create a socket under /run");
        return;
    }
    let run = run_dir();
    let d = Daemon::start_with(Opts {
        config: Some("guard_defaults = false\n".into()),
        ..Opts::default()
    });
    let socks = [run.join("agent.sock"), d.dir.join("beside-root.sock")];
    let _listeners: Vec<UnixListener> = socks.iter().map(|p| host_listener(p)).collect();
    for s in &socks {
        // Positive control: the sandbox's user reaches it outside the sandbox.
        let ctl = d.unsandboxed(Path::new("/bin/sh"), &["-c", &client(s)]);
        assert_eq!(
            stdout(&ctl),
            "HOSTSOCKET\n",
            "{}: {}",
            s.display(),
            stderr(&ctl)
        );
        let r = d.nanobot(&[], &client(s));
        assert_ne!(r.status.code(), Some(0), "{}", stdout(&r));
        assert!(!stdout(&r).contains("HOSTSOCKET"));
        assert!(
            stderr(&r).contains("FileNotFoundError"),
            "{}: {}",
            s.display(),
            stderr(&r)
        );
    }
    // Also not through the network = "none" seccomp surface: AF_UNIX stays allowed, the path
    // simply is not there. A server and a client inside the sandbox talk, in the workspace and
    // in the private /tmp.
    let script = format!(
        "{PY} -c \"\nimport os, socket, sys\nfor p in ['srv.sock', '/tmp/srv.sock']:\n    srv = socket.socket(socket.AF_UNIX); srv.bind(p); srv.listen(1)\n    c = socket.socket(socket.AF_UNIX); c.connect(p)\n    a, _ = srv.accept(); a.sendall(b'inside ' + p.encode()); print(c.recv(64).decode())\n    os.unlink(p)\n\""
    );
    let r = d.nanobot(&[], &script);
    assert_eq!(
        stdout(&r),
        "inside srv.sock\ninside /tmp/srv.sock\n",
        "{}",
        stderr(&r)
    );
    let _ = std::fs::remove_dir_all(&run);
}

#[test]
fn a_profile_grants_one_host_socket_by_path() {
    if !is_root() {
        eprintln!("skipped: needs root to create a socket under /run");
        return;
    }
    let run = run_dir().join("granted");
    std::fs::create_dir_all(&run).unwrap();
    let granted = run.join("ssh-agent.sock");
    let other = run.join("other.sock");
    let _l = [host_listener(&granted), host_listener(&other)];
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "guard_defaults = false\n[profiles.agent.filesystem]\nunix_sockets = [{:?}]\n",
            granted.display().to_string()
        )),
        ..Opts::default()
    });
    let r = d.nanobot(&["--profile", "agent"], &client(&granted));
    assert_eq!(stdout(&r), "HOSTSOCKET\n", "{}", stderr(&r));
    // Only that socket: its neighbour (same directory, same mode) stays absent.
    let ctl = d.unsandboxed(Path::new("/bin/sh"), &["-c", &client(&other)]);
    assert_eq!(stdout(&ctl), "HOSTSOCKET\n", "{}", stderr(&ctl));
    let r = d.nanobot(&["--profile", "agent"], &client(&other));
    assert!(stderr(&r).contains("FileNotFoundError"), "{}", stderr(&r));
    // The default profile does not get it.
    let r = d.nanobot(&[], &client(&granted));
    assert!(stderr(&r).contains("FileNotFoundError"), "{}", stderr(&r));
    // explain says the same.
    let explain = |profile: &str| {
        std::process::Command::new(bin("sandboxd"))
            .args(["explain", profile, "--config"])
            .arg(d.dir.join("sandboxd.toml"))
            .arg("--workspace")
            .arg(&d.ws)
            .arg("--unix")
            .arg(&granted)
            .args(["--user", TEST_USER])
            .output()
            .unwrap()
    };
    let o = explain("agent");
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("filesystem.unix_sockets"),
        "{}",
        stdout(&o)
    );
    let o = explain("default");
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("absent"), "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(run.parent().unwrap());
}

#[test]
fn pseudo_terminals_work_inside_and_the_hosts_are_invisible() {
    let d = Daemon::start_with(Opts {
        config: Some("guard_defaults = false\n".into()),
        ..Opts::default()
    });
    // A host pty, so the host's /dev/pts has an entry of ours to look for.
    let host = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/ptmx")
        .unwrap();
    let mut n: libc::c_uint = 0;
    use std::os::fd::AsRawFd;
    assert_eq!(
        // SAFETY: TIOCGPTN writes the pty number into `n`, a c_uint we own.
        unsafe { libc::ioctl(host.as_raw_fd(), libc::TIOCGPTN, &mut n) },
        0
    );
    let host_pts = format!("/dev/pts/{n}");
    assert!(Path::new(&host_pts).exists());

    let cmds = [
        (
            format!("{PY} -c \"import os; m, s = os.openpty(); print(os.ttyname(s))\""),
            "/dev/pts/0\n",
        ),
        (
            format!("{PY} -c \"import os, pty, sys\npid, fd = pty.fork()\nif pid == 0:\n    print('child on', os.ttyname(0)); sys.stdout.flush(); os._exit(0)\nout = b''\nwhile True:\n    try:\n        b = os.read(fd, 64)\n    except OSError:\n        break\n    if not b:\n        break\n    out += b\nos.waitpid(pid, 0)\nprint(out.decode().strip().replace(chr(13), ''))\""),
            "child on /dev/pts/0\n",
        ),
        ("script -qc tty /dev/null".to_string(), "/dev/pts/0"),
    ];
    for (cmd, want) in &cmds {
        // Positive control: the same works outside (its pty number is the host's).
        let ctl = d.unsandboxed(Path::new("/bin/sh"), &["-c", cmd]);
        assert!(
            ctl.status.success() && stdout(&ctl).contains("/dev/pts/"),
            "control {cmd}: {}{}",
            stdout(&ctl),
            stderr(&ctl)
        );
        let r = d.nanobot(&[], cmd);
        assert_eq!(r.status.code(), Some(0), "{cmd}: {}", stderr(&r));
        // The sandbox's own devpts instance numbers from 0.
        assert!(
            stdout(&r).replace('\r', "").starts_with(want),
            "{cmd}: {:?} {}",
            stdout(&r),
            stderr(&r)
        );
    }
    // Nothing of the host's terminals: only ptmx in a fresh instance, and the host's pty is not
    // there by any name.
    let r = d.nanobot(&[], &format!("ls /dev/pts; ls {host_pts}; ls /dev"));
    let out = stdout(&r);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("ptmx"), "{out}");
    assert!(
        stderr(&r).contains(&format!("{host_pts}': No such file or directory")),
        "{}",
        stderr(&r)
    );
    let dev: Vec<&str> = lines.collect();
    assert_eq!(
        dev,
        [
            "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
            "tty", "urandom", "zero"
        ],
        "{out}"
    );
    drop(host);
}

/// A profile's paths are bound as they resolved when the configuration was loaded. A path one
/// profile may write and another binds (a shared directory) swapped for a symlink to `/` in
/// between must not hand the second profile the host's root: the sandbox is refused instead,
/// whether it is built fresh or rebuilt from a warm one.
#[test]
fn a_bound_path_swapped_for_a_symlink_is_refused_not_followed() {
    let (uid, gid) = test_ids();
    let base = PathBuf::from(format!("/var/tmp/nanobot-e2e-swap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let shared = base.join("shared");
    std::fs::create_dir_all(shared.join("sub")).unwrap();
    std::fs::write(shared.join("sub/f"), "planned\n").unwrap();
    for p in [&base, &shared, &shared.join("sub"), &shared.join("sub/f")] {
        chown(p, uid, gid);
    }
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "guard_defaults = false\n\
             [profiles.w.filesystem]\nread_write = [{s:?}]\n\
             [profiles.r.filesystem]\nread_only = [{sub:?}]\n",
            s = shared.display().to_string(),
            sub = shared.join("sub").display().to_string()
        )),
        ..Opts::default()
    });
    let sub = shared.join("sub");
    let r = d.nanobot(&["--profile", "r"], &format!("cat {}/f", sub.display()));
    assert_eq!(stdout(&r), "planned\n", "{}", stderr(&r));
    // Profile w may replace sub (it is inside its read-write path) with a link to /.
    let r = d.nanobot(
        &["--profile", "w"],
        &format!("cd {} && mv sub sub.old && ln -s / sub", shared.display()),
    );
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    // Positive control: on the host the name now leads to the host's root.
    assert!(sub.join("etc/passwd").exists());
    let look = format!("ls {0}/; cat {0}/etc/hostname", sub.display());
    for attempt in ["rebuilt from a warm sandbox", "built cold"] {
        if attempt == "built cold" {
            // Warm sandboxes older than 10 s are not used: the next one starts cold.
            std::thread::sleep(std::time::Duration::from_secs(11));
        }
        let r = d.nanobot(&["--profile", "r", "--json"], &look);
        let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        assert_eq!(v["refused"], true, "{attempt}: {v}");
        assert_eq!(v["refused_layer"], "mounts", "{attempt}: {v}");
        let why = v["refused_reason"].as_str().unwrap_or_default();
        assert!(why.contains("through a symlink now"), "{attempt}: {why}");
        assert_eq!(v["stdout"], "", "{attempt}: {v}");
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// A granted socket that was missing when the configuration was loaded is bound only if it is a
/// socket when the command starts, never through a symlink placed there since.
#[test]
fn a_socket_grant_is_not_followed_through_a_later_symlink() {
    if !is_root() {
        eprintln!("skipped: needs root to create a socket under /run");
        return;
    }
    let run = run_dir().join("later");
    std::fs::create_dir_all(&run).unwrap();
    let target = run.join("real.sock");
    let later = run.join("later.sock");
    let _ = std::fs::remove_file(&later);
    let _l = host_listener(&target);
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "guard_defaults = false\n[profiles.s.filesystem]\nunix_sockets = [{:?}]\n",
            later.display().to_string()
        )),
        ..Opts::default()
    });
    // Missing: the profile runs, without it.
    let r = d.nanobot(&["--profile", "s"], &client(&later));
    assert!(stderr(&r).contains("FileNotFoundError"), "{}", stderr(&r));
    std::os::unix::fs::symlink(&target, &later).unwrap();
    // Positive control: through the link, the host socket answers.
    let ctl = d.unsandboxed(Path::new("/bin/sh"), &["-c", &client(&later)]);
    assert_eq!(stdout(&ctl), "HOSTSOCKET\n", "{}", stderr(&ctl));
    let r = d.nanobot(&["--profile", "s", "--json"], &client(&later));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["refused"], true, "{v}");
    assert_eq!(v["refused_layer"], "mounts", "{v}");
    assert!(!v["stdout"]
        .as_str()
        .unwrap_or_default()
        .contains("HOSTSOCKET"));
    let _ = std::fs::remove_dir_all(run.parent().unwrap());
}

/// `sandboxd check` judges where a profile's names lead, not only how they are written.
#[test]
fn check_refuses_paths_that_lead_to_the_hosts_root_proc_or_dev() {
    let base = PathBuf::from(format!("/var/tmp/nanobot-e2e-links-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    std::os::unix::fs::symlink("/proc", base.join("proclink")).unwrap();
    std::os::unix::fs::symlink("/", base.join("rootlink")).unwrap();
    let cfg = base.join("sandboxd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[profiles.a.filesystem]\nread_write = [{p:?}]\n\
             [profiles.b.filesystem]\nread_only = [{r:?}]\n\
             [profiles.c.filesystem]\nread_write = [\"/dev\"]\n",
            p = base.join("proclink").display().to_string(),
            r = base.join("rootlink").display().to_string()
        ),
    )
    .unwrap();
    let o = std::process::Command::new(bin("sandboxd"))
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(1), "{out}");
    for want in [
        "profiles.a.filesystem.read_write: ",
        "is inside /proc",
        "profiles.b.filesystem.read_only: ",
        "would show the host's whole root",
        "profiles.c.filesystem.read_write: /dev is inside /dev",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// The init's command line (readable inside) carries no policy: the launcher gets its warm shape
/// through the environment, which the sandbox cannot read.
#[test]
fn the_sandboxs_pid_1_shows_no_policy() {
    let d = Daemon::start();
    let r = d.nanobot(
        &[],
        "tr '\\0' ' ' < /proc/1/cmdline; echo; cat /proc/1/environ",
    );
    let out = stdout(&r);
    assert!(out.starts_with("sandboxd-launcher __launcher "), "{out}");
    assert!(
        !out.contains("workspace_roots") && !out.contains('{'),
        "{out}"
    );
    assert!(stderr(&r).contains("Permission denied"), "{}", stderr(&r));
}

/// Profile w may write a directory that profile v binds read-only, with a read-write bind of a
/// subdirectory in it. While v's root is built, w swaps that subdirectory's parent with a symlink
/// to /usr, over and over: v's read-write bind must never land on /usr/bin (or anywhere else).
/// Every v sandbox either runs as planned or is refused (mount layer or Landlock).
#[test]
fn a_symlink_raced_into_a_bind_target_is_refused() {
    let (uid, gid) = test_ids();
    let x = PathBuf::from(format!("/var/tmp/nanobot-e2e-race-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&x);
    std::fs::create_dir_all(x.join("sub/bin")).unwrap();
    // From x/sub/bin's point of view the link leads to /usr.
    let ups = "../".repeat(x.components().count() - 1);
    std::os::unix::fs::symlink(format!("{ups}usr"), x.join("lnk")).unwrap();
    for p in [x.clone(), x.join("sub"), x.join("sub/bin"), x.join("lnk")] {
        let _ = std::os::unix::fs::lchown(&p, Some(uid), Some(gid));
    }
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "guard_defaults = false\n\
             [profiles.w.filesystem]\nread_write = [{x:?}]\n\
             [profiles.v.filesystem]\nread_only = [{x:?}]\nread_write = [{b:?}]\n",
            x = x.display().to_string(),
            b = x.join("sub/bin").display().to_string()
        )),
        ..Opts::default()
    });
    // Positive control: v runs as planned while nothing races.
    let r = d.nanobot(&["--profile", "v"], "ls /usr/bin/true && echo ok");
    assert_eq!(stdout(&r), "/usr/bin/true\nok\n", "{}", stderr(&r));
    // w exchanges sub and lnk (renameat2 RENAME_EXCHANGE) for a few seconds.
    let racer = format!(
        "{PY} -c \"\nimport ctypes, os, time\nlibc = ctypes.CDLL(None, use_errno=True)\nd = os.open('{x}', os.O_RDONLY)\nt = time.time() + 6\nwhile time.time() < t:\n    libc.syscall(316, d, b'sub', d, b'lnk', 2)\n\"",
        x = x.display()
    );
    let mut race = d.nanobot_cmd(&["--profile", "w"], &racer);
    let mut race = race.spawn().unwrap();
    let t0 = std::time::Instant::now();
    let (mut ran, mut refused) = (0, 0);
    while t0.elapsed() < std::time::Duration::from_secs(5) {
        let r = d.nanobot(&["--profile", "v", "--json"], "ls /usr/bin/true && echo ok");
        let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        if v["refused"] == true {
            // The mount layer (a bind target reached through a symlink) or Landlock (a rule's
            // path reached through one): refused either way, nothing ran.
            let layer = v["refused_layer"].as_str().unwrap_or_default();
            assert!(layer == "mounts" || layer == "landlock", "{v}");
            assert!(
                v["refused_reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("symlink") || r.contains("os error")),
                "{v}"
            );
            refused += 1;
        } else {
            assert_eq!(v["stdout"], "/usr/bin/true\nok\n", "{v}");
            ran += 1;
        }
    }
    let _ = race.wait();
    eprintln!("{ran} ran as planned, {refused} refused");
    assert!(ran + refused > 20);
    // Put it back so the directory can be removed.
    let _ = std::fs::remove_dir_all(&x);
}

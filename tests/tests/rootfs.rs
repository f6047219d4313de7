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
    // SAFETY: TIOCGPTN writes the pty number into `n`.
    assert_eq!(
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

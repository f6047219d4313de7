//! Escape attempts from the threat model (shared/threat-model.md). Each first shows the action
//! succeeds outside the sandbox as the same user (positive control), then asserts the exact denial.

use nanobot_e2e::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A directory outside every workspace root, readable and writable by the sandbox user.
fn outside(d: &Daemon) -> PathBuf {
    let (uid, gid) = test_ids();
    let o = d.dir.join("outside");
    std::fs::create_dir_all(&o).unwrap();
    std::fs::write(o.join("secret"), "TOPSECRET\n").unwrap();
    std::fs::create_dir_all(o.join(".nanobot")).unwrap();
    std::fs::write(o.join(".nanobot/config.json"), "{\"apiKey\":\"sk-live\"}\n").unwrap();
    for p in [
        o.clone(),
        o.join("secret"),
        o.join(".nanobot"),
        o.join(".nanobot/config.json"),
    ] {
        chown(&p, uid, gid);
    }
    o
}

/// A daemon without the command guard: these tests prove the kernel layers, which hold alone.
fn no_guard() -> Daemon {
    Daemon::start_with(Opts {
        config: Some("guard_defaults = false\n".into()),
        ..Opts::default()
    })
}

fn sh(d: &Daemon, cmd: &str) -> std::process::Output {
    d.unsandboxed(Path::new("/bin/sh"), &["-c", cmd])
}

#[test]
fn fs_reads_outside_the_workspace_are_denied() {
    let d = Daemon::start();
    let o = outside(&d);
    std::os::unix::fs::symlink(o.join("secret"), d.ws.join("link")).unwrap();
    std::os::unix::fs::symlink(&o, d.ws.join("dirlink")).unwrap();
    let rel = "../../outside/secret";
    let attempts = [
        format!("cat {}", o.join("secret").display()),
        format!("cat {rel}"),
        "cat link".to_string(),
        "cat dirlink/secret".to_string(),
        format!("cat {}", o.join(".nanobot/config.json").display()),
        "cd .. && cat ../outside/secret".to_string(),
    ];
    for a in &attempts {
        // Positive control: the same command works unsandboxed, as the same user, in the workspace.
        let ctl = sh(&d, a);
        assert_eq!(
            stdout(&ctl).trim(),
            if a.contains("config") {
                "{\"apiKey\":\"sk-live\"}"
            } else {
                "TOPSECRET"
            },
            "control failed for {a}: {}",
            stderr(&ctl)
        );
        let r = d.nanobot(&[], a);
        assert!(
            !stdout(&r).contains("TOPSECRET") && !stdout(&r).contains("sk-live"),
            "{a} leaked: {}",
            stdout(&r)
        );
        // Nothing outside the workspace and the profile's paths is part of the sandbox's root.
        assert!(
            stderr(&r).contains("No such file or directory"),
            "{a}: {}",
            stderr(&r)
        );
    }
    // Home directories are absent; the sandbox's own / exists but Landlock grants no listing.
    let r = d.nanobot(&[], "ls / ; ls /root ; ls /home");
    assert_eq!(
        stderr(&r).matches("Permission denied").count(),
        1,
        "{}",
        stderr(&r)
    );
    assert_eq!(
        stderr(&r).matches("No such file or directory").count(),
        2,
        "{}",
        stderr(&r)
    );
}

#[test]
fn fs_writes_outside_are_denied_and_tmp_is_private_and_removed() {
    let d = Daemon::start();
    let o = outside(&d);
    let tag = format!("nb-e2e-{}", std::process::id());
    let targets = [
        format!("/var/tmp/{tag}"),
        format!("/dev/shm/{tag}"),
        o.join("new").display().to_string(),
        format!("/etc/{tag}"),
    ];
    for t in &targets {
        // Positive control: the sandbox user may write there on the host (root for /etc).
        let ctl = if t.starts_with("/etc") {
            std::process::Command::new("/bin/sh")
                .args(["-c", &format!("echo x > {t} && rm {t}")])
                .output()
                .unwrap()
        } else {
            sh(&d, &format!("echo x > {t} && rm {t}"))
        };
        assert!(
            ctl.status.success(),
            "control failed for {t}: {}",
            stderr(&ctl)
        );
        let r = d.nanobot(&[], &format!("echo x > {t}"));
        if t.starts_with("/dev/shm") {
            // The sandbox has its own /dev/shm: the write lands there, never on the host's.
            assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
        } else if *t == format!("/var/tmp/{tag}") {
            // Only the empty directories leading to the workspace exist there, on the sandbox's
            // own root, which is sealed read-only.
            let e = stderr(&r);
            assert!(e.contains("Read-only file system"), "{t}: {e}");
        } else if t.starts_with("/etc") {
            // Visible (the profile reads /etc) but read-only: the mount and Landlock refuse.
            let e = stderr(&r);
            assert!(
                e.contains("Read-only file system") || e.contains("Permission denied"),
                "{t}: {e}"
            );
        } else {
            // Not part of the sandbox's root at all (dash says ENOENT on create this way).
            let e = stderr(&r);
            assert!(e.contains("Directory nonexistent"), "{t}: {e}");
        }
        assert!(!Path::new(t).exists(), "{t} was created on the host");
    }
    // Truncate, chmod, utimes, mkfifo, rename and hard links on outside files.
    let secret = o.join("secret").display().to_string();
    let ops = [
        format!("truncate -s 0 {secret}"),
        format!(": > {secret}"),
        format!("chmod 600 {secret}"),
        format!("touch -d 2001-01-01 {secret}"),
        format!("mkfifo {}/fifo", o.display()),
        format!("ln {secret} ./hardlink"),
        format!("mv {secret} ./stolen"),
        format!("rm {secret}"),
    ];
    let before = std::fs::metadata(&secret).unwrap();
    for op in &ops {
        let r = d.nanobot(&[], op);
        assert_ne!(r.status.code(), Some(0), "{op} succeeded: {}", stdout(&r));
        let e = stderr(&r);
        assert!(
            e.contains("Read-only file system")
                || e.contains("Permission denied")
                || e.contains("No such file or directory")
                || e.contains("Directory nonexistent")
                || e.contains("Invalid cross-device link"),
            "{op}: {e}"
        );
    }
    let after = std::fs::metadata(&secret).unwrap();
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "TOPSECRET\n");
    assert_eq!(before.permissions().mode(), after.permissions().mode());
    assert_eq!(before.modified().unwrap(), after.modified().unwrap());
    assert!(
        !o.join("fifo").exists()
            && !d.ws.join("hardlink").exists()
            && !d.ws.join("stolen").exists()
    );
    // Positive control for the ops: they work unsandboxed (on a copy).
    let ctl = sh(&d, &format!("cp {secret} {0}/copy && truncate -s 0 {0}/copy && chmod 600 {0}/copy && mkfifo {0}/f2 && ln {0}/copy ./hl && rm ./hl {0}/f2 {0}/copy", o.display()));
    assert!(ctl.status.success(), "{}", stderr(&ctl));

    // /tmp is a private tmpfs: usable, invisible to the host, gone afterwards.
    let r = d.nanobot(
        &[],
        &format!("echo private > /tmp/{tag} && cat /tmp/{tag} && echo $TMPDIR"),
    );
    assert_eq!(stdout(&r), "private\n/tmp\n", "{}", stderr(&r));
    assert!(!Path::new(&format!("/tmp/{tag}")).exists());
    let r = d.nanobot(&[], &format!("ls /tmp/{tag}"));
    assert!(stderr(&r).contains("No such file"), "{}", stderr(&r));
}

#[test]
fn workspace_reads_writes_and_inside_symlinks_work() {
    let d = no_guard();
    let r = d.nanobot(&[], "mkdir -p a/b && echo hi > a/b/f && ln -s a/b/f l && cat l && ln a/b/f hard && mv hard a/ && chmod +x a/b/f && rm -r a && ls");
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert_eq!(stdout(&r), "hi\nl\n");
}

fn probe_in_and_out(d: &Daemon, probe: &str, what: &[&str]) -> (String, String) {
    let ctl = d.unsandboxed(&d.ws.join("probe"), what);
    let r = d.nanobot(&[], &format!("{probe} {}", what.join(" ")));
    (
        stdout(&ctl).trim().to_string(),
        format!("{}{}", stdout(&r).trim(), stderr(&r).trim()),
    )
}

#[test]
fn seccomp_denies_the_kernel_surface() {
    let d = Daemon::start();
    let probe = d.install_probe();
    let eperm = "errno 1";
    // (probe, denial inside); each must succeed outside as the same unprivileged user.
    let cases: &[(&[&str], &str)] = &[
        (&["ptrace"], eperm),
        (&["unshare-user"], eperm),
        (&["unshare-user-mount"], eperm),
        (&["clone-newuser"], eperm),
        (&["keyctl"], eperm),
        (&["add_key"], eperm),
        (&["io_uring"], eperm),
        (&["perf"], eperm),
        (&["userfaultfd"], eperm),
        (&["process_vm_readv"], eperm),
        (&["socket-inet"], "errno 97"),
        (&["socket-inet6"], "errno 97"),
        (&["socket-netlink"], "errno 97"),
        (&["socket-mptcp"], "errno 97"),
        (&["socket-vsock"], "errno 97"),
    ];
    for (what, denial) in cases {
        let (out, inside) = probe_in_and_out(&d, &probe, what);
        assert_eq!(
            out, "ok",
            "positive control for {what:?} failed outside the sandbox"
        );
        assert_eq!(inside, *denial, "{what:?}");
    }
    // Denied everywhere for an unprivileged user, but by the filter first inside (EPERM).
    for what in [
        &["mount"][..],
        &["chroot"],
        &["setns"],
        &["bpf"],
        &["open_by_handle_at"],
    ] {
        let (_, inside) = probe_in_and_out(&d, &probe, what);
        assert_eq!(inside, eperm, "{what:?}");
    }
    // clone3 answers ENOSYS so libc falls back to clone, whose flags the filter can see.
    let (out, inside) = probe_in_and_out(&d, &probe, &["clone3"]);
    assert_ne!(out, "errno 38");
    assert_eq!(inside, "errno 38");
    // TIOCSTI/TIOCLINUX, also with garbage in the upper 32 bits: the tty driver would say ENOTTY
    // on /dev/null; the filter answers EPERM before it.
    for what in ["tiocsti", "tiocsti-high", "tioclinux"] {
        let (out, inside) = probe_in_and_out(&d, &probe, &[what]);
        assert_eq!(out, "errno 25", "control {what}");
        assert_eq!(inside, eperm, "{what}");
    }
    // AF_UNIX sockets keep working.
    assert_eq!(probe_in_and_out(&d, &probe, &["socket-unix"]).1, "ok");
}

#[test]
fn x32_and_i386_syscalls_kill_the_process() {
    let d = Daemon::start();
    let probe = d.install_probe();
    // Outside, x32 getpid either works or is ENOSYS (kernels without x32); int 0x80 works.
    let (out, _) = probe_in_and_out(&d, &probe, &["x32"]);
    assert!(out == "ok" || out == "errno 38", "{out}");
    let (out, _) = probe_in_and_out(&d, &probe, &["int80"]);
    assert_eq!(out, "ok");
    for what in ["x32", "int80"] {
        let r = d.nanobot(&["--json"], &format!("{probe} {what}; echo status=$?"));
        let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        assert!(
            v["stdout"].as_str().unwrap().contains("status=159"),
            "{what} was not killed by SIGSYS: {v}"
        );
    }
}

#[test]
fn network_none_blocks_tcp_unix_abstract_and_dev_tcp() {
    let d = Daemon::start();
    let probe = d.install_probe();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let (out, inside) = probe_in_and_out(&d, &probe, &["connect-tcp", &port]);
    assert_eq!(out, "ok");
    assert_eq!(inside, "errno 97");
    // bash's /dev/tcp goes through socket() too.
    let ctl = d.unsandboxed(
        Path::new("/bin/bash"),
        &["-c", &format!("echo hi > /dev/tcp/127.0.0.1/{port}")],
    );
    assert!(ctl.status.success());
    let r = d.nanobot(
        &[],
        &format!("bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}'"),
    );
    assert_ne!(r.status.code(), Some(0));
    // An abstract unix socket of the host is out of reach (Landlock scope).
    let name = format!("nanobot-e2e-{}", std::process::id());
    let fd = abstract_listener(&name);
    let (out, inside) = probe_in_and_out(&d, &probe, &["connect-abstract", &name]);
    assert_eq!(out, "ok");
    assert_eq!(inside, "errno 1");
    // SAFETY: closing our own listener fd.
    unsafe { libc::close(fd) };
}

fn abstract_listener(name: &str) -> i32 {
    // SAFETY: socket and listen take integers; bind reads `len` bytes of `sa`, a local
    // sockaddr_un from abstract_addr whose length it reports, alive for the call.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
        let (sa, len) = abstract_addr(name);
        assert_eq!(
            libc::bind(fd, &sa as *const _ as *const libc::sockaddr, len),
            0
        );
        assert_eq!(libc::listen(fd, 8), 0);
        fd
    }
}

#[test]
fn cannot_signal_the_daemon_or_other_processes() {
    let d = Daemon::start();
    let probe = d.install_probe();
    let pid = d.pid().to_string();
    let (out, inside) = probe_in_and_out(&d, &probe, &["kill", &pid, "0"]);
    assert_eq!(
        out, "ok",
        "control: the sandbox user may signal the daemon outside"
    );
    assert_eq!(inside, "errno 3", "the daemon is not even visible");
    // kill -1 reaches only the sandbox itself; the daemon keeps serving.
    let _ = d.nanobot(&[], "kill -9 -1");
    assert_eq!(stdout(&d.nanobot(&[], "echo alive")), "alive\n");
}

#[test]
fn setuid_binaries_do_not_raise_privileges() {
    let d = Daemon::start();
    // `su` is setuid root; with no_new_privs it cannot gain anything.
    if !Path::new("/bin/su").exists() {
        eprintln!("SKIP setuid test: /bin/su missing");
        return;
    }
    let r = d.nanobot(&[], "su -c id root </dev/null; echo rc=$?");
    assert!(!stdout(&r).contains("uid=0"), "{}", stdout(&r));
}

#[test]
fn fork_bomb_and_memory_bomb_stop_neither_the_daemon_nor_a_neighbour() {
    // The guard would stop the fork bomb by name; the kernel must stop it without the guard.
    let d = no_guard();
    let probe = d.install_probe();
    // Positive control: outside, the user can reserve 8 GiB of address space.
    assert_eq!(probe_in_and_out(&d, &probe, &["alloc", "8"]).0, "ok");
    assert_eq!(
        stdout(&d.nanobot(&[], &format!("{probe} alloc 8"))).trim(),
        "errno 12"
    );

    let neighbour = d
        .nanobot_cmd(&[], "sleep 2; echo neighbour-alive")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let bomb = d.nanobot(
        &["--timeout", "4", "--json"],
        "bomb() { bomb | bomb & }; bomb; sleep 10",
    );
    let v: serde_json::Value = serde_json::from_slice(&bomb.stdout).unwrap();
    // Either the bomb ran into the timeout, or the process ceiling (RLIMIT_NPROC, the cgroup's
    // pids.max) left even `sleep` unable to fork and the shell gave up: stopped both ways.
    let stopped_by_ceiling = v["exit_code"] != 0
        && v["stderr"]
            .as_str()
            .is_some_and(|e| e.contains("Cannot fork"));
    assert!(v["timed_out"] == true || stopped_by_ceiling, "{v}");
    let n = neighbour.wait_with_output().unwrap();
    assert_eq!(stdout(&n), "neighbour-alive\n", "{}", stderr(&n));
    // The daemon still starts sandboxes right after.
    assert_eq!(
        stdout(&d.nanobot(&[], "echo still-serving")),
        "still-serving\n"
    );
    assert!(t0.elapsed() < Duration::from_secs(20));
}

#[test]
fn rlimits_are_in_force() {
    let d = Daemon::start();
    let r = d.nanobot(&[], "cat /proc/self/limits");
    let s = stdout(&r);
    let limit = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .map(|l| {
                l[name.len()..]
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    assert_eq!(limit("Max core file size"), "0 0", "{s}");
    // Hard one second above soft: SIGXCPU (naming the limit) comes before SIGKILL.
    assert_eq!(limit("Max cpu time"), "60 61", "{s}");
    assert_eq!(limit("Max open files"), "1024 1024", "{s}");
    assert_eq!(limit("Max processes"), "256 256", "{s}");
    assert_eq!(limit("Max file size"), "1073741824 1073741824", "{s}");
    assert_eq!(limit("Max address space"), "4294967296 4294967296", "{s}");
    // The daemon may let its warm sandboxes come back from a lower priority; commands may not
    // raise theirs.
    assert_eq!(limit("Max nice priority"), "0 0", "{s}");
    // And the command itself runs at normal priority (the warm sandbox that built its root at
    // nice 10 came back to 0 for it).
    for _ in 0..3 {
        let r = d.nanobot(&[], "nice");
        assert_eq!(stdout(&r), "0\n", "{}", stderr(&r));
    }
}

//! The exec path end to end: real sandboxd, real nanobot, real kernel.

use nanobot_e2e::grpc::{self, req};
use nanobot_e2e::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn streams_started_then_output_then_result_and_exit_codes() {
    let d = Daemon::start();
    let rt = grpc::rt();
    rt.block_on(async {
        let mut c = grpc::client(&d.socket).await;
        let run = grpc::exec(&mut c, req(&d.ws, "echo out; echo err >&2; exit 3"))
            .await
            .unwrap();
        assert_eq!(run.events.first(), Some(&"started"));
        assert_eq!(run.events.last(), Some(&"result"));
        assert!(run.pid > 0);
        assert_eq!(run.stdout, b"out\n");
        assert_eq!(run.stderr, b"err\n");
        let r = run.result.unwrap();
        assert_eq!(
            (r.exit_code, r.signal, r.timed_out, r.refused),
            (3, 0, false, false)
        );
        assert_eq!(r.profile, "default");
        assert_eq!(r.timeout_secs, 60, "the security guide's default timeout");
        assert!(r.peak_rss_kb > 0 && r.duration_ms < 10_000);
    });
    // The CLI mirrors the result in its exit code.
    let o = d.nanobot(&[], "echo hi; exit 7");
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(stdout(&o), "hi\n");
    let o = d.nanobot(&[], "kill -TERM $$");
    assert_eq!(o.status.code(), Some(128 + 15));
    let o = d.nanobot(&["--profile", "nope"], "true");
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("unknown profile"), "{}", stderr(&o));
    let o = d.nanobot(&["--json"], "echo j");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["stdout"], "j\n");
    assert_eq!(v["exit_code"], 0);
}

#[test]
fn output_streams_while_the_command_runs() {
    let d = Daemon::start();
    let mut child = d
        .nanobot_cmd(&[], "echo first; sleep 3; echo second")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut buf).unwrap();
    assert_eq!(&buf, b"first\n");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "first line arrived only after {:?}",
        t0.elapsed()
    );
    assert!(child.wait().unwrap().success());
}

#[test]
fn runs_unprivileged_with_no_new_privs_no_caps_and_seccomp() {
    let d = Daemon::start();
    let (uid, _) = test_ids();
    let o = d.nanobot(
        &[],
        "id -u; grep -E '^(NoNewPrivs|CapEff|CapPrm|Seccomp):' /proc/self/status",
    );
    let s = stdout(&o);
    assert_eq!(s.lines().next(), Some(uid.to_string().as_str()), "{s}");
    assert_ne!(uid, 0);
    assert!(s.contains("NoNewPrivs:\t1"), "{s}");
    assert!(s.contains("CapEff:\t0000000000000000"), "{s}");
    assert!(s.contains("CapPrm:\t0000000000000000"), "{s}");
    assert!(s.contains("Seccomp:\t2"), "{s}");
}

#[test]
fn own_session_stdin_devnull_only_three_fds_allowlisted_env() {
    let d = Daemon::start_with(Opts {
        env: vec![("OPENROUTER_API_KEY".into(), "sk-secret-123".into())],
        ..Opts::default()
    });
    // Positive control: the daemon's environment does hold the key.
    let environ = std::fs::read(format!("/proc/{}/environ", d.pid())).unwrap_or_default();
    if is_root() {
        assert!(String::from_utf8_lossy(&environ).contains("sk-secret-123"));
    }
    let probe = d.install_probe();
    let o = d.nanobot(
        &[],
        &format!("env; echo sid=$(ps -o sid= -p $$) pid=$$; readlink /proc/self/fd/0; {probe} fds"),
    );
    let s = stdout(&o);
    assert!(
        !s.contains("sk-secret"),
        "API key leaked into the sandbox: {s}"
    );
    let names: Vec<&str> = s
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .filter(|k| k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .collect();
    for n in &names {
        assert!(
            ["PATH", "HOME", "PWD", "LANG", "TERM", "TMPDIR", "OLDPWD", "SHLVL", "_"].contains(n),
            "unexpected variable {n} in {s}"
        );
    }
    assert!(s.contains(&format!("HOME={}", d.ws.display())), "{s}");
    let sid_line = s.lines().find(|l| l.starts_with("sid=")).unwrap();
    let (sid, pid) = sid_line
        .trim_start_matches("sid=")
        .split_once(" pid=")
        .unwrap();
    assert_eq!(
        sid.trim(),
        pid.trim(),
        "the command leads its own session: {sid_line}"
    );
    assert!(s.contains("/dev/null"), "{s}");
    // The probe sees 0, 1, 2 and the fd it opened to list /proc/self/fd.
    assert!(s.lines().any(|l| l == "0 1 2 3"), "{s}");
}

#[test]
fn proc_shows_only_the_sandbox() {
    let d = Daemon::start();
    let daemon = d.pid();
    // Positive control: outside, the sandbox user sees the daemon in /proc.
    let ls = d.unsandboxed(
        std::path::Path::new("/bin/ls"),
        &[&format!("/proc/{daemon}/cmdline")],
    );
    assert!(ls.status.success());
    let o = d.nanobot(&[], &format!("ls /proc | grep -cE '^[0-9]+$'; cat /proc/{daemon}/cmdline; cat /proc/1/environ; ls /proc/1/root"));
    let s = stdout(&o);
    let count: u32 = s.lines().next().unwrap().trim().parse().unwrap();
    assert!(count <= 6, "the sandbox sees {count} processes: {s}");
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "/proc/{daemon}/cmdline: No such file or directory"
        )),
        "{e}"
    );
    assert!(e.contains("/proc/1/environ: Permission denied"), "{e}");
    assert!(e.contains("/proc/1/root': Permission denied"), "{e}");
}

#[test]
fn timeout_kills_the_whole_tree_including_setsid_and_double_fork() {
    let d = Daemon::start();
    let marker = format!("31.{}", std::process::id());
    let cmd = format!("setsid sleep {marker} & (sleep {marker} &) ; sleep {marker}");
    let mut child = d.nanobot_cmd(&["--timeout", "2"], &cmd).spawn().unwrap();
    // Positive control: the processes exist while it runs.
    let t0 = Instant::now();
    while pids_with(&marker).len() < 3 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the sleeps never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(124));
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "took {:?}",
        t0.elapsed()
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        pids_with(&marker).is_empty(),
        "survivors: {:?}",
        pids_with(&marker)
    );
}

#[test]
fn nothing_outlives_the_command_and_the_result_is_prompt() {
    let d = Daemon::start();
    let marker = format!("32.{}", std::process::id());
    let t0 = Instant::now();
    // A daemonized child keeps stdout open: the result must not wait for it.
    let o = d.nanobot(
        &[],
        &format!("setsid sleep {marker} & (setsid sleep {marker} > /dev/null 2>&1 &); echo done"),
    );
    assert_eq!(stdout(&o), "done\n");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
    assert!(
        pids_with(&marker).is_empty(),
        "survivors: {:?}",
        pids_with(&marker)
    );
}

#[test]
fn client_disconnect_kills_the_tree() {
    let d = Daemon::start();
    let marker = format!("33.{}", std::process::id());
    let mut child = d
        .nanobot_cmd(&[], &format!("sleep {marker} & sleep {marker}"))
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while pids_with(&marker).len() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let t1 = Instant::now();
    while !pids_with(&marker).is_empty() {
        assert!(
            t1.elapsed() < Duration::from_secs(2),
            "tree survived the client: {:?}",
            pids_with(&marker)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The daemon logs it once its exec task has seen the stream close (which may come just after
    // the sandbox is gone).
    let t2 = Instant::now();
    while !d.log_text().contains("client disconnected; sandbox killed") {
        assert!(t2.elapsed() < Duration::from_secs(3), "{}", d.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn output_is_capped_and_daemon_memory_stays_bounded() {
    let d = Daemon::start();
    let rss = |pid: i32| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .unwrap()
            .trim()
            .trim_end_matches(" kB")
            .trim()
            .parse()
            .unwrap()
    };
    let before = rss(d.pid());
    let o = d.nanobot(
        &["--json"],
        "head -c 300000000 /dev/zero; head -c 50000 /dev/zero >&2",
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["stdout"].as_str().unwrap().len(), 10240);
    assert_eq!(v["stderr"].as_str().unwrap().len(), 10240);
    assert_eq!(v["stdout_truncated"], true);
    assert_eq!(v["stderr_truncated"], true);
    assert_eq!(v["exit_code"], 0);
    let after = rss(d.pid());
    assert!(
        after < before + 50_000,
        "daemon RSS grew from {before} kB to {after} kB"
    );
    // Below the cap nothing is marked truncated.
    let v: serde_json::Value =
        serde_json::from_slice(&d.nanobot(&["--json"], "echo small").stdout).unwrap();
    assert_eq!(v["stdout_truncated"], false);
}

#[test]
fn sixty_four_execs_in_flight_and_a_stuck_one_blocks_nobody() {
    let d = Daemon::start();
    let rt = grpc::rt();
    rt.block_on(async {
        let mut stuck_client = grpc::client(&d.socket).await;
        let ws0 = d.ws.clone();
        let stuck = tokio::spawn(async move {
            let mut r = req(&ws0, "sleep 20");
            r.timeout_secs = 20;
            // Never read: the stream stays open and stuck.
            let s = stuck_client.exec(r).await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(s);
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t0 = Instant::now();
        let mut tasks = vec![];
        for i in 0..64 {
            let sock = d.socket.clone();
            let ws = d.ws.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = grpc::client(&sock).await;
                let run = grpc::exec(&mut c, req(&ws, &format!("sleep 1; echo {i}")))
                    .await
                    .unwrap();
                (i, run)
            }));
        }
        for t in tasks {
            let (i, run) = t.await.unwrap();
            assert_eq!(String::from_utf8_lossy(&run.stdout), format!("{i}\n"));
            assert_eq!(run.result.unwrap().exit_code, 0);
        }
        // 64 one-second sleeps in parallel: far less than 64 s.
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "took {:?}",
            t0.elapsed()
        );
        stuck.abort();
    });
}

#[test]
fn concurrency_limits_answer_resource_exhausted_naming_the_limit() {
    let d = Daemon::start_with(Opts {
        config: Some("max_concurrent_per_peer = 2\n".into()),
        ..Opts::default()
    });
    let rt = grpc::rt();
    rt.block_on(async {
        let mut c = grpc::client(&d.socket).await;
        let a = c.exec(req(&d.ws, "sleep 3")).await.unwrap();
        let b = c.exec(req(&d.ws, "sleep 3")).await.unwrap();
        let e = c.exec(req(&d.ws, "true")).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(
            e.message().contains("max_concurrent_per_peer=2"),
            "{}",
            e.message()
        );
        drop((a, b));
    });
}

#[test]
fn bad_requests_get_clear_errors_and_the_daemon_keeps_serving() {
    let d = Daemon::start();
    let rt = grpc::rt();
    rt.block_on(async {
        let mut c = grpc::client(&d.socket).await;
        let big = "x".repeat(2 << 20);
        let e = grpc::exec(&mut c, req(&d.ws, &big)).await.unwrap_err();
        assert!(
            matches!(
                e.code(),
                tonic::Code::OutOfRange
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::InvalidArgument
            ),
            "{e:?}"
        );
        let mut c = grpc::client(&d.socket).await;
        let e = grpc::exec(&mut c, req(&d.ws, &"y".repeat(100_000)))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("max_command_bytes"), "{}", e.message());
        let e = grpc::exec(&mut c, req(&d.ws, "echo a\0b"))
            .await
            .unwrap_err();
        assert!(e.message().contains("NUL"), "{}", e.message());
        let e = grpc::exec(&mut c, req(&d.ws, "")).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        let mut r = req(&d.ws, "true");
        r.env.insert("LD_PRELOAD".into(), "/x.so".into());
        let e = grpc::exec(&mut c, r).await.unwrap_err();
        assert!(e.message().contains("LD_PRELOAD"), "{}", e.message());
        // Still serving.
        let run = grpc::exec(&mut c, req(&d.ws, "echo alive")).await.unwrap();
        assert_eq!(run.stdout, b"alive\n");
    });
}

#[test]
fn workspace_must_be_beneath_a_root_without_symlink_escapes() {
    let d = Daemon::start();
    let (uid, gid) = test_ids();
    let outside = d.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, d.ws.join("link-out")).unwrap();
    std::fs::create_dir_all(d.ws.join("sub")).unwrap();
    chown(&d.ws.join("sub"), uid, gid);
    std::os::unix::fs::symlink("sub", d.ws.join("link-in")).unwrap();
    let rt = grpc::rt();
    rt.block_on(async {
        let mut c = grpc::client(&d.socket).await;
        // Positive control: inside the root, and through a symlink that stays inside.
        assert_eq!(
            grpc::exec(&mut c, req(&d.ws.join("link-in"), "pwd"))
                .await
                .unwrap()
                .stdout,
            format!("{}\n", d.ws.join("sub").display()).into_bytes()
        );
        for (ws, want) in [
            (outside.clone(), "not beneath a configured workspace root"),
            (d.ws.join("link-out"), "escapes its workspace root"),
            (d.ws.join("../../outside"), "escapes its workspace root"),
            (d.ws.join("missing"), "does not exist"),
            ("relative".into(), "absolute"),
        ] {
            let e = grpc::exec(&mut c, req(&ws, "true")).await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{ws:?}");
            assert!(e.message().contains(want), "{ws:?}: {}", e.message());
        }
    });
}

#[test]
fn unauthorized_peers_are_refused_and_logged() {
    if !is_root() {
        eprintln!("SKIP unauthorized_peers_are_refused_and_logged: needs root to run a client as another uid");
        return;
    }
    let d = Daemon::start();
    // The socket is 0660; let the other user reach it so that peer auth, not file mode, decides.
    let mut cmd = d.nanobot_cmd(&[], "echo should-not-run");
    std::fs::set_permissions(
        &d.socket,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    as_user(&mut cmd, 65534, 65534);
    cmd.env("HOME", "/nonexistent");
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("Access denied"), "{}", stderr(&o));
    assert!(!stdout(&o).contains("should-not-run"));
    let log = d.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("Access denied") && l.contains("uid=65534") && l.contains("pid=")),
        "{log}"
    );
    // Positive control: an allowed peer gets through.
    assert_eq!(d.nanobot(&[], "echo ok").status.code(), Some(0));
}

#[test]
fn a_sandboxed_command_cannot_use_sandboxd_itself() {
    let d2 = Daemon::start();
    let nb = d2.install(&bin("nanobot"), "nanobot");
    // Make the daemon's socket reachable from inside: Landlock (ABI < 9) does not restrict
    // connect() to a named socket, so the peer check is what must stop it.
    let alias = d2.ws.join("sock");
    std::os::unix::fs::symlink(&d2.socket, &alias).unwrap();
    let cmd = format!(
        "./nanobot exec --socket {} --workspace {} -- echo escaped",
        alias.display(),
        d2.ws.display()
    );
    // Positive control: the same client run outside the sandbox as the sandbox's user works.
    let ctl = d2.unsandboxed(
        &nb,
        &[
            "exec",
            "--socket",
            alias.to_str().unwrap(),
            "--workspace",
            d2.ws.to_str().unwrap(),
            "--",
            "echo reached",
        ],
    );
    assert_eq!(stdout(&ctl), "reached\n", "{}", stderr(&ctl));
    let o = d2.nanobot(&[], &cmd);
    assert!(
        !stdout(&o).contains("escaped"),
        "a sandbox ran a command through sandboxd: {}",
        stdout(&o)
    );
    let e = stderr(&o);
    assert!(
        e.contains("Access denied")
            || e.contains("Permission denied")
            || e.contains("nanobot: cannot reach sandboxd: "),
        "{e}"
    );
}

#[test]
fn started_as_root_it_drops_privileges_for_good() {
    if !is_root() {
        eprintln!("SKIP started_as_root_it_drops_privileges_for_good: needs root");
        return;
    }
    let d = Daemon::start();
    let (uid, gid) = test_ids();
    let st = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    let field = |k: &str| {
        st.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(field("Uid:"), format!("{uid} {uid} {uid} {uid}"));
    assert_eq!(field("Gid:"), format!("{gid} {gid} {gid} {gid}"));
    assert_eq!(field("Groups:"), "");
    assert_eq!(field("CapEff:"), "0000000000000000");
    assert_eq!(field("CapPrm:"), "0000000000000000");
    // Without a user to drop to, root refuses to start.
    let o = std::process::Command::new(bin("sandboxd"))
        .args([
            "serve",
            "--socket",
            "/var/tmp/never.sock",
            "--workspace-root",
        ])
        .arg(&d.root)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no user to drop to"), "{}", stderr(&o));
}

#[test]
fn sigterm_kills_sandboxes_removes_the_socket_and_exits_zero() {
    let mut d = Daemon::start();
    let marker = format!("34.{}", std::process::id());
    let mut child = d
        .nanobot_cmd(&[], &format!("sleep {marker}"))
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while pids_with(&marker).is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = d.stop().unwrap();
    assert_eq!(st.code(), Some(0), "{}", d.log_text());
    assert!(!d.socket.exists());
    // The client (whose own command line carries the marker too) ends with the stream.
    assert_eq!(child.wait().unwrap().code(), Some(125));
    // The sandbox was killed on the way out: its init kills everything in it as soon as the
    // daemon's end of its socket closes, and is gone a moment later.
    let t0 = Instant::now();
    while !pids_with(&marker).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "still running after the daemon exited: {:?}",
            pids_with(&marker)
                .iter()
                .map(|p| std::fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn fails_closed_naming_the_layer() {
    // A kernel older than the configured minimum Landlock ABI: the exec is refused, nothing runs.
    let d = Daemon::start_with(Opts {
        config: Some("min_landlock_abi = 99\n".into()),
        ..Opts::default()
    });
    let o = d.nanobot(&["--json"], "touch ran");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert_eq!(v["refused"], true);
    assert_eq!(v["refused_layer"], "landlock");
    assert!(
        v["refused_reason"]
            .as_str()
            .unwrap()
            .contains("requires at least 99"),
        "{v}"
    );
    assert!(!d.ws.join("ran").exists());
}

#[test]
fn info_reports_the_enforced_layers() {
    let d = Daemon::start();
    let rt = grpc::rt();
    rt.block_on(async {
        let mut c = grpc::client(&d.socket).await;
        let i = c
            .info(nanobot_proto::pb::InfoRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(i.landlock_abi >= 1);
        for l in ["landlock", "seccomp", "rlimits", "namespaces"] {
            assert!(
                i.layers_enforced.iter().any(|x| x == l),
                "{l} missing from {:?}",
                i.layers_enforced
            );
        }
        assert!(i.profiles.contains(&"default".to_string()));
        assert_ne!(i.uid, 0);
    });
}

/// Each sandbox is prepared ahead of time for the default profile (private /tmp of the default
/// size, its Landlock ruleset). Requests that differ — another profile, a workspace under /tmp —
/// must get exactly their own policy, not the prepared one.
#[test]
fn requests_unlike_the_prepared_sandbox_get_their_own_policy() {
    let (uid, gid) = test_ids();
    let tmp_root = PathBuf::from(format!("/tmp/nanobot-e2e-tmproot-{}", std::process::id()));
    let tmp_ws = tmp_root.join("ws");
    std::fs::create_dir_all(&tmp_ws).unwrap();
    for p in [&tmp_root, &tmp_ws] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        chown(p, uid, gid);
    }
    let d = Daemon::start_with(Opts {
        config: Some(
            "[profiles.small.limits]\ntmp_size_bytes = 1048576\n\
             [profiles.ro.filesystem]\nworkspace_writable = false\nprivate_tmp = true\n\
             [profiles.net]\nnetwork = \"full\"\n"
                .into(),
        ),
        extra_args: vec!["--workspace-root".into(), tmp_root.display().to_string()],
        ..Opts::default()
    });
    let fill = "head -c 2000000 /dev/zero > /tmp/big && echo filled";
    // Positive control: the default profile's /tmp (256 MiB) takes 2 MB.
    let o = d.nanobot(&[], fill);
    assert_eq!(stdout(&o), "filled\n", "{}", stderr(&o));
    // The small profile's /tmp is 1 MiB.
    let o = d.nanobot(&["--profile", "small"], fill);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("No space left"), "{}", stderr(&o));
    // And the next default sandbox is back to its own size.
    let o = d.nanobot(&[], fill);
    assert_eq!(stdout(&o), "filled\n", "{}", stderr(&o));

    // Read-only workspace: the default profile writes (control), `ro` cannot.
    let o = d.nanobot(&[], "echo x > w && cat w");
    assert_eq!(stdout(&o), "x\n", "{}", stderr(&o));
    let o = d.nanobot(&["--profile", "ro"], "echo y > w2");
    assert_ne!(o.status.code(), Some(0));
    assert!(!d.ws.join("w2").exists());
    // ...while its private /tmp still works (its rules point at its own tmpfs).
    let o = d.nanobot(&["--profile", "ro"], "echo t > /tmp/t && cat /tmp/t");
    assert_eq!(stdout(&o), "t\n", "{}", stderr(&o));

    // Network: the prepared ruleset (default profile: no network) must not leak into `net`.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connect = format!("bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}' && echo connected");
    let o = d.nanobot(&["--profile", "net"], &connect);
    assert_eq!(stdout(&o), "connected\n", "{}", stderr(&o));
    let (mut c, _) = listener.accept().unwrap();
    let mut got = String::new();
    std::io::Read::read_to_string(&mut c, &mut got).unwrap();
    assert_eq!(got, "hi\n");
    let o = d.nanobot(&[], &connect);
    assert_ne!(o.status.code(), Some(0), "{}", stdout(&o));

    // A workspace under /tmp: the private tmpfs must not hide it.
    let o = Command::new(bin("nanobot"))
        .args(["exec", "--socket"])
        .arg(&d.socket)
        .arg("--workspace")
        .arg(&tmp_ws)
        .args([
            "--",
            "echo here > f && cat f && echo t > /tmp/t && cat /tmp/t",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "here\nt\n", "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(tmp_ws.join("f")).unwrap(), "here\n");
    assert!(!tmp_root.join("t").exists() && !Path::new("/tmp/t").exists());
    let _ = std::fs::remove_dir_all(&tmp_root);
}

/// `nanobot tool --socket S --workspace WS exec JSON`: the text the model sees, and a newline.
fn exec_tool(d: &Daemon, command: &str) -> String {
    let home = d.dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let o = Command::new(bin("nanobot"))
        .args(["tool", "--socket"])
        .arg(&d.socket)
        .arg("--workspace")
        .arg(&d.ws)
        .args([
            "exec",
            &serde_json::json!({ "command": command }).to_string(),
        ])
        .env("HOME", &home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    stdout(&o)
}

/// The issue's example: 10 100 bytes of stdout used to push stderr, the exit code and every note
/// out of the 10 000-character result.
#[test]
fn long_exec_results_keep_stderr_exit_code_and_a_truncation_note() {
    let d = Daemon::start();
    let text = exec_tool(&d, "yes x | head -c 10100; echo boom >&2; exit 3");
    let text = text.strip_suffix('\n').unwrap_or(&text);
    assert!(text.chars().count() <= 10_000, "{}", text.len());
    assert!(text.starts_with("x\nx\nx\n"), "{}", &text[..50]);
    assert!(
        text.ends_with(
            "x\nx\n\nSTDERR:\nboom\n\nExit code: 3\n\
             (output truncated: stdout: 9,796 of 10,100 bytes shown, 304 omitted)"
        ),
        "{}",
        &text[text.len() - 300..]
    );
    assert!(text.contains("\n... (304 bytes omitted) ...\n"), "{text}");

    // Past the daemon's own cap (10 240 bytes per stream): head and tail of stdout, the real
    // number of bytes written, stderr's tail, the exit code and the sandbox's note.
    let text = exec_tool(
        &d,
        "printf HEAD; yes x | head -c 300000; printf TAIL; \
         yes e | head -c 20000 >&2; echo boom >&2; exit 3",
    );
    let text = text.strip_suffix('\n').unwrap_or(&text);
    assert!(text.chars().count() <= 10_000, "{}", text.len());
    assert!(text.starts_with("HEADx\nx\n"), "{}", &text[..50]);
    assert!(text.contains("x\nx\nTAIL\nSTDERR:\n"), "{text}");
    let end = &text[text.find("boom").unwrap_or(0)..];
    assert!(
        end.starts_with("boom\n\nExit code: 3\n(output truncated: stdout: ")
            && end.contains(" of 300,008 bytes shown, ")
            && end.contains("; stderr: ")
            && end.contains(" of 20,005 bytes shown, ")
            && end.ends_with("; the sandbox's output limit (output_limit_bytes) was hit)"),
        "{end}"
    );
    // The omitted count is the real one: shown + omitted = written.
    let omitted: u64 = text
        .split("\n... (")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.replace(',', "").parse().ok())
        .unwrap_or(0);
    let shown_head = text.find("\n... (").unwrap_or(0) as u64;
    let tail_start = text.find(") ...\n").unwrap_or(0) + ") ...\n".len();
    let shown_tail = (text.find("\nSTDERR:").unwrap_or(0) - tail_start) as u64;
    assert_eq!(
        shown_head + omitted + shown_tail,
        300_008,
        "{shown_head} {omitted} {shown_tail}"
    );

    // Signals and timeouts end the text as well.
    let text = exec_tool(&d, "yes y | head -c 20000; kill -KILL $$");
    assert!(
        text.contains("\nKilled by signal 9\n(output truncated: stdout: ")
            || text.contains("\nExit code: 137\n(output truncated: stdout: "),
        "{}",
        &text[text.len() - 200..]
    );
}

/// The daemon counts what the command wrote and keeps the tail past its cap; what it streams
/// stays the exact head.
#[test]
fn the_daemon_counts_every_byte_and_sends_the_tail() {
    let d = Daemon::start();
    let expected: Vec<u8> = (1..=100_000)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let rt = grpc::rt();
    rt.block_on(async {
        let mut c = grpc::client(&d.socket).await;
        let run = grpc::exec(&mut c, req(&d.ws, "seq 1 100000; echo short >&2"))
            .await
            .unwrap();
        let r = run.result.unwrap();
        assert_eq!(run.stdout, &expected[..10_240]);
        assert!(r.stdout_truncated);
        assert_eq!(r.stdout_bytes, expected.len() as u64);
        assert_eq!(r.stdout_tail, &expected[expected.len() - 4096..]);
        assert_eq!(r.limit_hit, "output_limit_bytes");
        assert_eq!(run.stderr, b"short\n");
        assert!(!r.stderr_truncated);
        assert_eq!(r.stderr_bytes, 6);
        assert!(r.stderr_tail.is_empty());
        // A lower cap keeps a tail no longer than the cap.
        let mut small = req(&d.ws, "seq 1 100000");
        small.max_output_bytes = 100;
        let run = grpc::exec(&mut c, small).await.unwrap();
        let r = run.result.unwrap();
        assert_eq!(run.stdout, &expected[..100]);
        assert_eq!(r.stdout_tail, &expected[expected.len() - 100..]);
        assert_eq!(r.stdout_bytes, expected.len() as u64);
        // Nothing cut: the counts equal what was streamed, no tail.
        let run = grpc::exec(&mut c, req(&d.ws, "printf abc")).await.unwrap();
        let r = run.result.unwrap();
        assert_eq!((r.stdout_bytes, r.stdout_tail.len()), (3, 0));
    });
    // `--json` carries the counts and the tail too.
    let o = d.nanobot(&["--json"], "seq 1 100000");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["stdout_bytes"], expected.len() as u64);
    assert_eq!(
        v["stdout_tail"].as_str().unwrap().as_bytes(),
        &expected[expected.len() - 4096..]
    );
}

/// Bytes that are not UTF-8 are replaced only where text is required, and that is said.
#[test]
fn invalid_utf8_is_never_silently_rewritten() {
    let d = Daemon::start();
    let text = exec_tool(&d, r"printf 'a\377b\376\n'");
    assert_eq!(
        text,
        "a\u{fffd}b\u{fffd}\n\n(2 invalid UTF-8 bytes replaced with U+FFFD in stdout)\n"
    );
    let o = d.nanobot(&["--json"], r"printf 'a\377b'; printf '\377' >&2");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["stdout"], "a\u{fffd}b");
    assert_eq!(v["stdout_invalid_utf8_bytes"], 1);
    assert_eq!(v["stderr_invalid_utf8_bytes"], 1);
    assert_eq!(
        v["notes"],
        serde_json::json!([
            "1 invalid UTF-8 byte replaced with U+FFFD in stdout",
            "1 invalid UTF-8 byte replaced with U+FFFD in stderr"
        ])
    );
    // The streaming path passes the bytes through untouched.
    let o = d.nanobot(&[], r"printf 'a\377b'");
    assert_eq!(o.stdout, b"a\xffb");
}

/// `nanobot exec -- PROGRAM ARGS...` runs that argv; one argument stays a shell command line.
#[test]
fn several_arguments_are_an_argv_one_is_a_shell_command_line() {
    let d = Daemon::start();
    let run = |opts: &[&str], argv: &[&str]| {
        let o = d
            .nanobot_cmd(opts, argv[0])
            .args(&argv[1..])
            .output()
            .unwrap();
        (o.status.code(), stdout(&o), stderr(&o))
    };
    // The issue's example printed an empty line.
    assert_eq!(run(&[], &["/bin/sh", "-c", "echo hi"]).1, "hi\n");
    // Spaces, quotes, shell metacharacters and empty arguments arrive as given.
    let (code, out, err) = run(
        &[],
        &[
            "printf", "[%s]\\n", "a  b", "\"q\"", "it's", "", "$HOME;*", "x",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "[a  b]\n[\"q\"]\n[it's]\n[]\n[$HOME;*]\n[x]\n");
    // Exit codes come through.
    assert_eq!(run(&[], &["/bin/sh", "-c", "exit 4"]).0, Some(4));
    // A single argument is still a shell command line (README's first example).
    let (code, out, _) = run(&[], &["echo a; echo 'b  c' > f.txt && cat f.txt"]);
    assert_eq!((code, out.as_str()), (Some(0), "a\nb  c\n"));
    // --shell joins several arguments into one command line, as before.
    assert_eq!(run(&["--shell"], &["echo", "$((1+2))"]).1, "3\n");
    assert_eq!(run(&[], &["echo", "$((1+2))"]).1, "$((1+2))\n");
    // --no-shell runs a single argument as a program.
    assert_eq!(run(&[], &["echo hi"]).1, "hi\n");
    let (code, _, err) = run(&["--no-shell"], &["echo hi"]);
    assert_ne!(code, Some(0), "{err}");
    // --json reports the same.
    let (_, out, _) = run(&["--json"], &["/bin/sh", "-c", "echo hi"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["stdout"], "hi\n");
}

/// In argv mode a program that is missing or not executable is the command's own failure, with
/// the shell's exit codes (127, 126), not a sandbox refusal (125); the empty program says so.
#[test]
fn argv_program_not_found_or_not_executable_exits_like_the_shell() {
    let d = Daemon::start();
    let run = |opts: &[&str], argv: &[&str]| {
        let o = d
            .nanobot_cmd(opts, argv[0])
            .args(&argv[1..])
            .output()
            .unwrap();
        (o.status.code(), stderr(&o))
    };
    // Not found: 127 in both forms.
    let (code, err) = run(&[], &["nosuchprog", "arg"]);
    assert_eq!(code, Some(127), "{err}");
    assert_eq!(err.trim_end(), "nanobot: nosuchprog: command not found");
    assert!(!err.contains("refused"), "{err}");
    assert_eq!(run(&[], &["nosuchprog arg"]).0, Some(127));
    let (code, err) = run(&["--no-shell"], &["nosuchprog"]);
    assert_eq!(code, Some(127), "{err}");
    let (code, err) = run(&[], &["/no/such/prog", "x"]);
    assert_eq!(code, Some(127), "{err}");
    assert!(
        err.contains("/no/such/prog: No such file or directory"),
        "{err}"
    );
    // Found but not executable: 126 in both forms.
    let (code, err) = run(&["--no-shell"], &["/etc/passwd"]);
    assert_eq!(code, Some(126), "{err}");
    assert!(
        err.starts_with("nanobot: /etc/passwd: cannot execute: Permission denied"),
        "{err}"
    );
    assert!(!err.contains("refused"), "{err}");
    assert_eq!(run(&[], &["/etc/passwd"]).0, Some(126));
    // Not a binary and no #!: 126 as well (the shell form would run it as a script).
    let (code, err) = run(
        &[],
        &["/bin/sh", "-c", "printf '\\000\\001' > junk; chmod +x junk"],
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run(&["--no-shell"], &["./junk"]);
    assert_eq!(code, Some(126), "{err}");
    assert!(
        err.contains("./junk: cannot execute: Exec format error"),
        "{err}"
    );
    // --json carries the same exit code.
    let o = d
        .nanobot_cmd(&["--json"], "nosuchprog")
        .arg("x")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(127));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["exit"], 127);
    // The empty program is an error that says so, in both forms.
    let (code, err) = run(&["--no-shell"], &[""]);
    assert_eq!(code, Some(125), "{err}");
    assert!(err.contains("command is empty"), "{err}");
    assert!(!err.contains("execve"), "{err}");
    let (code, err) = run(&[], &["", "x"]);
    assert_eq!(code, Some(125), "{err}");
    assert!(err.contains("command is empty"), "{err}");
    let (code, err) = run(&[], &[""]);
    assert_eq!(code, Some(125), "{err}");
    assert!(err.contains("command is empty"), "{err}");
}

/// `nanobot tool … exec JSON`: its exit code, stdout and stderr.
fn exec_tool_run(d: &Daemon, args: &[&str], command: &str) -> (Option<i32>, String, String) {
    let home = d.dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let o = Command::new(bin("nanobot"))
        .args(["tool", "--socket"])
        .arg(&d.socket)
        .arg("--workspace")
        .arg(&d.ws)
        .args(args)
        .args([
            "exec",
            &serde_json::json!({ "command": command }).to_string(),
        ])
        .env("HOME", &home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (o.status.code(), stdout(&o), stderr(&o))
}

/// A stream the sandbox cut at `output_limit_bytes` is an incomplete copy: `nanobot exec` exits
/// 125 whatever the command's own code, says so on stderr, and keeps the command's own code in
/// `--json`'s `exit_code`; `nanobot tool exec` exits the same way.
#[test]
fn a_truncated_stream_exits_125_and_says_so() {
    let d = Daemon::start_with(Opts {
        config: Some("[profiles.tight]\noutput_limit_bytes = 100\n".into()),
        ..Opts::default()
    });
    let tight = ["--profile", "tight"];
    // Positive control: output under the limit keeps the command's own code.
    let o = d.nanobot(&tight, "echo hi; exit 3");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hi\n");
    assert!(!stderr(&o).contains("limit hit"), "{}", stderr(&o));

    let o = d.nanobot(&tight, "head -c 1000 /dev/zero | tr '\\0' x");
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    // The head, then the tail the daemon kept (#13 second review: once the head alone).
    assert_eq!(
        stdout(&o),
        format!(
            "{}\n... (800 bytes omitted) ...\n{}",
            "x".repeat(100),
            "x".repeat(100)
        )
    );
    let err = stderr(&o);
    assert!(
        err.contains("nanobot: limit hit: output_limit_bytes: output truncated at the profile's limit (the command wrote 1,000 bytes to stdout, 0 to stderr)"),
        "{err}"
    );
    assert!(
        err.contains("exit code 125 because the output is incomplete (its own exit code was 0)"),
        "{err}"
    );
    // stderr cut, command failing on its own: still 125.
    let o = d.nanobot(&tight, "head -c 1000 /dev/zero >&2; exit 3");
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("its own exit code was 3"),
        "{}",
        stderr(&o)
    );
    // --json: `exit` is the CLI's code, `exit_code` the command's own.
    let o = d.nanobot(
        &["--profile", "tight", "--json"],
        "head -c 1000 /dev/zero; exit 3",
    );
    assert_eq!(o.status.code(), Some(125));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (
            &v["exit"],
            &v["exit_code"],
            &v["limit_hit"],
            &v["stdout_bytes"]
        ),
        (
            &serde_json::json!(125),
            &serde_json::json!(3),
            &serde_json::json!("output_limit_bytes"),
            &serde_json::json!(1000)
        ),
        "{v}"
    );
    // Argv mode too.
    let o = d
        .nanobot_cmd(&tight, "head")
        .args(["-c", "1000", "/dev/zero"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    // `nanobot tool exec`: the same code, the model's note in the text.
    let (code, out, _) = exec_tool_run(&d, &tight, "head -c 1000 /dev/zero | tr '\\0' x");
    assert_eq!(code, Some(125), "{out}");
    assert!(
        out.contains("the sandbox's output limit (output_limit_bytes) was hit"),
        "{out}"
    );
}

/// `nanobot tool exec` exits as `nanobot exec` would for the same result; the other tools 0 on
/// success and 1 on an error result.
#[test]
fn tool_exec_exits_like_nanobot_exec() {
    let d = Daemon::start();
    for (command, want) in [
        ("true", 0),
        ("echo out; exit 3", 3),
        ("kill -TERM $$", 128 + libc::SIGTERM),
        ("nosuchprog", 127),
        ("/etc/passwd", 126),
    ] {
        let (code, out, err) = exec_tool_run(&d, &[], command);
        assert_eq!(code, Some(want), "{command}: {out} {err}");
        assert_eq!(
            d.nanobot(&[], command).status.code(),
            Some(want),
            "{command}"
        );
    }
    let (code, out, _) = exec_tool_run(&d, &["--timeout", "1"], "sleep 5");
    assert_eq!(code, Some(124), "{out}");
    assert!(
        out.contains("timed out after 1 second\n") || out.ends_with("timed out after 1 second\n"),
        "{out}"
    );
    // Blocked by the guard: refused, 125.
    let (code, out, _) = exec_tool_run(&d, &[], "rm -rf /");
    assert_eq!(code, Some(125), "{out}");
    // Bad arguments: 2, as for every tool (this used to be 125).
    let home = d.dir.join("home");
    let tool = |name: &str, json: &str| {
        Command::new(bin("nanobot"))
            .args(["tool", "--socket"])
            .arg(&d.socket)
            .arg("--workspace")
            .arg(&d.ws)
            .args([name, json])
            .env("HOME", &home)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    assert_eq!(tool("exec", "{}").status.code(), Some(2));
    // Other tools: 0 / 1.
    assert_eq!(tool("list_dir", "{\"path\": \".\"}").status.code(), Some(0));
    let o = tool("read_file", "{\"path\": \"no-such-file\"}");
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    // --help documents it.
    let o = Command::new(bin("nanobot"))
        .args(["tool", "--help"])
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("exec exits as `nanobot exec` would"),
        "{}",
        stdout(&o)
    );
}

/// Shell mode runs `/bin/sh -c -- CMD`: a command line that starts with `-` is a command, never
/// an option of the shell (it used to be `sh -c -x`, which turned on tracing and ran nothing).
#[test]
fn a_shell_command_line_starting_with_a_dash_is_a_command() {
    let d = Daemon::start();
    // Positive control: the same program name, found, runs.
    let o = d.nanobot(&[], "echo ok");
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "ok\n"));
    for cmd in ["-x", "-c", "--", "-e"] {
        let o = d.nanobot(&[], cmd);
        assert_eq!(o.status.code(), Some(127), "{cmd}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("{cmd}: not found")),
            "{cmd}: {}",
            stderr(&o)
        );
    }
    let o = d.nanobot(&["--shell"], "-x");
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    // `--` ends the shell's options only: the command line itself is intact.
    let o = d.nanobot(&[], "echo a -- -x");
    assert_eq!(stdout(&o), "a -- -x\n");
    // Old-style argv clients still run: [/bin/sh, -c, CMD].
    let rt = grpc::rt();
    rt.block_on(async {
        let mut c = grpc::client(&d.socket).await;
        let mut r = req(&d.ws, "");
        r.argv = vec!["/bin/sh".into(), "-c".into(), "echo old; exit 4".into()];
        let run = grpc::exec(&mut c, r).await.unwrap();
        assert_eq!(run.stdout, b"old\n");
        assert_eq!(run.result.unwrap().exit_code, 4);
    });
}

/// A program found in PATH only as a non-executable file is "cannot execute" (EACCES, 126), as
/// bash and execvp report it (dash says "Permission denied" too), not "command not found" (127); an executable later in PATH wins.
#[test]
fn a_non_executable_match_in_path_is_126_not_127() {
    let d = Daemon::start_with(Opts {
        config: Some("[profiles.pathy]\nenv_pass = [\"PATH\"]\n".into()),
        ..Opts::default()
    });
    let (uid, gid) = test_ids();
    let (a, b) = (d.ws.join("pa"), d.ws.join("pb"));
    for dir in [&a, &b] {
        std::fs::create_dir_all(dir).unwrap();
        chown(dir, uid, gid);
    }
    let file = |p: PathBuf, mode: u32| {
        let who = p
            .parent()
            .and_then(|d| d.file_name())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        std::fs::write(&p, format!("#!/bin/sh\necho ran {who}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        chown(&p, uid, gid);
    };
    file(a.join("nbnoexec"), 0o644);
    file(a.join("nbboth"), 0o644);
    file(b.join("nbboth"), 0o755);
    let path = format!("{}:{}:/usr/bin:/bin", a.display(), b.display());
    let rt = grpc::rt();
    rt.block_on(async {
        let mut c = grpc::client(&d.socket).await;
        let run = |argv: Vec<&str>| {
            let mut r = req(&d.ws, "");
            r.argv = argv.iter().map(|s| s.to_string()).collect();
            r.profile = "pathy".into();
            r.env.insert("PATH".into(), path.clone());
            r
        };
        // What execvp (env) and the shell say for the same PATH: 126 / Permission denied (dash
        // prints that but exits 127; bash exits 126).
        let env = grpc::exec(&mut c, run(vec!["/usr/bin/env", "nbnoexec"]))
            .await
            .unwrap();
        assert_eq!(env.result.unwrap().exit_code, 126);
        let sh = grpc::exec(&mut c, run(vec!["/bin/sh", "-c", "nbnoexec"]))
            .await
            .unwrap();
        assert!(
            String::from_utf8_lossy(&sh.stderr).contains("nbnoexec: Permission denied"),
            "{:?}",
            String::from_utf8_lossy(&sh.stderr)
        );
        // Argv mode: execve of the non-executable file, EACCES.
        let r = grpc::exec(&mut c, run(vec!["nbnoexec"]))
            .await
            .unwrap()
            .result
            .unwrap();
        assert!(r.refused, "{r:?}");
        assert_eq!(
            (r.refused_layer.as_str(), r.errno),
            ("exec", libc::EACCES),
            "{r:?}"
        );
        assert!(r.failed_step.starts_with("execve"), "{r:?}");
        // An executable later in PATH wins over the non-executable one before it.
        let both = grpc::exec(&mut c, run(vec!["nbboth"])).await.unwrap();
        assert_eq!(both.stdout, b"ran pb\n", "{:?}", both.result);
        // Nothing anywhere: still not found.
        let r = grpc::exec(&mut c, run(vec!["nbnosuch"]))
            .await
            .unwrap()
            .result
            .unwrap();
        assert_eq!(r.errno, libc::ENOENT, "{r:?}");
    });
}

/// A `€` the daemon's cap cut in two (at the end of the streamed head, at the start of the kept
/// tail) is not invalid data: neither the model's text nor `--json` replaces or reports it; the
/// bytes of the cut character count as omitted. Genuinely invalid bytes still are reported.
#[test]
fn characters_cut_by_the_output_cap_are_not_reported_invalid() {
    let d = Daemon::start();
    // The reviewer's examples. 30 001 bytes of stderr: the 10 240-byte head ends inside a `€`.
    let text = exec_tool(
        &d,
        r#"echo small; i=0; while [ $i -lt 10000 ]; do printf "€" >&2; i=$((i+1)); done; printf z >&2"#,
    );
    assert!(
        !text.contains('\u{fffd}') && !text.contains("invalid UTF-8"),
        "{}",
        &text[text.len().saturating_sub(300)..]
    );
    assert!(text.starts_with("small\n\nSTDERR:\n€€€"), "{}", &text[..40]);
    assert!(
        text.contains("€€€z\n(output truncated: "),
        "{}",
        &text[text.len() - 300..]
    );
    // 15 000 bytes of stdout: the head ends inside a `€` and the 4 096-byte tail starts inside one.
    let euros = r#"i=0; while [ $i -lt 5000 ]; do printf "€"; i=$((i+1)); done"#;
    let o = d.nanobot(&["--json"], euros);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (head, tail) = (
        v["stdout"].as_str().unwrap(),
        v["stdout_tail"].as_str().unwrap(),
    );
    assert_eq!(
        (
            v["stdout_invalid_utf8_bytes"].as_u64(),
            v["notes"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0)),
        "{v}"
    );
    assert!(
        head.chars().all(|c| c == '€') && tail.chars().all(|c| c == '€'),
        "{v}"
    );
    assert_eq!((head.len(), tail.len()), (10_239, 4_095), "{v}");
    assert_eq!(v["stdout_bytes"], 15_000);
    // No gap (11 400 bytes: all past the head fits the tail): the split `€` is whole in the tail.
    let o = d.nanobot(&["--json"], &euros.replace("5000", "3800"));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let whole = format!(
        "{}{}",
        v["stdout"].as_str().unwrap(),
        v["stdout_tail"].as_str().unwrap()
    );
    assert_eq!(whole, "€".repeat(3_800), "{v}");
    assert_eq!(v["stdout_invalid_utf8_bytes"], 0, "{v}");
    // Invalid bytes before and after the cut are still replaced and counted.
    let o = d.nanobot(
        &["--json"],
        &format!(r"printf '\377'; {euros}; printf '\376'"),
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["stdout_invalid_utf8_bytes"], 2, "{v}");
    assert_eq!(
        v["notes"],
        serde_json::json!([
            "1 invalid UTF-8 byte replaced with U+FFFD in stdout",
            "1 invalid UTF-8 byte replaced with U+FFFD in stdout_tail"
        ])
    );
    let text = exec_tool(&d, &format!(r"printf '\377'; {euros}; printf '\376'"));
    assert!(
        text.ends_with("(2 invalid UTF-8 bytes replaced with U+FFFD in stdout)\n"),
        "{}",
        &text[text.len() - 300..]
    );
}

/// `nanobot exec --json` prints its one object also when sandboxd refuses the request outright
/// (a gRPC error) or nanobot refuses it before asking: `refused`, the reason, `exit` 125.
#[test]
fn json_reports_a_request_refused_outright() {
    let d = Daemon::start();
    std::fs::write(d.ws.join("afile"), "x").unwrap();
    for (opts, says) in [
        (&["--profile", "nosuch"][..], "nosuch"),
        (&["--cwd", "nosuchdir"][..], "nosuchdir"),
        (&["--cwd", "afile"][..], "afile"),
        (&["--cwd", "/etc"][..], "/etc"),
    ] {
        let o = d.nanobot(&[opts, &["--json"]].concat(), "echo ran");
        assert_eq!(o.status.code(), Some(125), "{opts:?}: {}", stderr(&o));
        let out = stdout(&o);
        assert_eq!(out.lines().count(), 1, "{opts:?}: {out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (&v["refused"], &v["exit"]),
            (&serde_json::json!(true), &serde_json::json!(125)),
            "{v}"
        );
        let reason = v["refused_reason"].as_str().unwrap();
        assert!(reason.contains(says), "{opts:?}: {reason}");
        assert!(stderr(&o).contains(reason), "{}", stderr(&o));
        assert!(!out.contains("ran"), "{out}");
        // Without --json: the same code, nothing on stdout.
        let o = d.nanobot(opts, "echo ran");
        assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(125), ""));
    }
    // nanobot itself cannot ask (no such workspace): one object too.
    let o = Command::new(bin("nanobot"))
        .args(["exec", "--json", "--socket"])
        .arg(&d.socket)
        .args(["-w", "/nonexistent/ws", "--", "true"])
        .env("HOME", d.dir.join("home"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (&v["refused"], &v["refused_layer"]),
        (&serde_json::json!(true), &serde_json::json!("nanobot")),
        "{v}"
    );
}

/// `nanobot tool`: wrong arguments exit 2 for every tool and say what is wrong; an empty command
/// is refused in the exec tool's own terms; a missing workspace exits as `nanobot exec` does.
#[test]
fn tool_arguments_are_checked_alike_and_exit_2() {
    let d = Daemon::start();
    let home = d.dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let tool = |ws: &Path, name: &str, json: &str| {
        let o = Command::new(bin("nanobot"))
            .args(["tool", "--socket"])
            .arg(&d.socket)
            .arg("--workspace")
            .arg(ws)
            .args([name, json])
            .env("HOME", &home)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (o.status.code(), stdout(&o), stderr(&o))
    };
    let ws = d.ws.clone();
    for (name, json, says) in [
        ("exec", "{}", "Error: missing required argument 'command'\n"),
        (
            "exec",
            r#"{"command": 5}"#,
            "Error: argument 'command' must be a string, got a number\n",
        ),
        (
            "exec",
            r#"{"command": "ls", "working_dir": 1}"#,
            "Error: argument 'working_dir' must be a string, got a number\n",
        ),
        (
            "exec",
            "[]",
            "Error: the arguments of exec must be a JSON object, got an array\n",
        ),
        (
            "read_file",
            "{}",
            "Error: missing required argument 'path'\n",
        ),
        (
            "read_file",
            r#"{"path": "a", "limit": "3"}"#,
            "Error: argument 'limit' must be a non-negative integer, got a string\n",
        ),
        (
            "write_file",
            r#"{"path": "a"}"#,
            "Error: missing required argument 'content'\n",
        ),
        (
            "edit_file",
            r#"{"path": "a", "old_text": "x", "new_text": null}"#,
            "Error: missing required argument 'new_text'\n",
        ),
        (
            "list_dir",
            r#"{"path": false}"#,
            "Error: argument 'path' must be a string, got a boolean\n",
        ),
    ] {
        let (code, out, err) = tool(&ws, name, json);
        assert_eq!(
            (code, out.as_str()),
            (Some(2), says),
            "{name} {json}: {err}"
        );
    }
    // Not JSON at all, an unknown tool: 2 as well, on stderr.
    let (code, _, err) = tool(&ws, "exec", "{command");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not valid JSON"), "{err}");
    assert_eq!(tool(&ws, "rm_rf", "{}").0, Some(2));
    assert!(!ws.join("a").exists());
    // Positive control: right arguments run.
    assert_eq!(tool(&ws, "exec", r#"{"command": "true"}"#).0, Some(0));
    assert_eq!(tool(&ws, "list_dir", r#"{"path": "."}"#).0, Some(0));
    // An empty command: said in the tool's own terms (the model cannot set `argv`), 125 as
    // `nanobot exec -- ''`.
    let (code, out, _) = tool(&ws, "exec", r#"{"command": ""}"#);
    assert_eq!(code, Some(125), "{out}");
    assert!(out.starts_with("Error: command is empty"), "{out}");
    assert!(!out.contains("argv"), "{out}");
    assert_eq!(d.nanobot(&[], "").status.code(), Some(125));
    // No such workspace: 125 from `nanobot exec` and `nanobot tool exec` alike.
    let missing = Path::new("/nonexistent/ws");
    let (code, _, err) = tool(missing, "exec", r#"{"command": "true"}"#);
    assert_eq!(code, Some(125), "{err}");
    assert!(err.contains("/nonexistent/ws"), "{err}");
    let o = Command::new(bin("nanobot"))
        .args(["exec", "--socket"])
        .arg(&d.socket)
        .args(["-w", "/nonexistent/ws", "--", "true"])
        .env("HOME", &home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    // The other tools: 2 (nanobot failed before the tool ran).
    assert_eq!(tool(missing, "read_file", r#"{"path": "a"}"#).0, Some(2));
    // --help says it.
    let o = Command::new(bin("nanobot"))
        .args(["tool", "--help"])
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("Exit codes: 2 for every tool when its arguments are wrong"),
        "{}",
        stdout(&o)
    );
}

/// The output of `seq 1 N`, as the test's own shell prints it.
fn seq(n: u32) -> String {
    (1..=n).map(|i| format!("{i}\n")).collect()
}

/// A cut stream shows its end when streamed to the terminal (#13 second review): after the head,
/// the tail the daemon kept, behind a newline and a `... (N bytes omitted) ...` line when bytes
/// were dropped between them, or continuing the head byte for byte when none were; stderr then
/// starts on its own line, and the exit code (125) and the note stay.
#[test]
fn a_cut_stream_streams_its_tail_after_its_head() {
    // The review's example, on the default profile: the tail reaches the head, nothing is lost.
    let d = Daemon::start();
    let o = d.nanobot(&[], "seq 1 2400; echo FAILED >&2; exit 1");
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert_eq!(stdout(&o), seq(2400));
    let err = stderr(&o);
    assert!(err.starts_with("FAILED\n"), "{err}");
    assert!(
        err.contains("limit hit: output_limit_bytes") && err.contains("its own exit code was 1"),
        "{err}"
    );
    drop(d);

    // A small limit: head 1,002 bytes, tail 1,002 bytes, the rest omitted and counted.
    let d = Daemon::start_with(Opts {
        config: Some("[profiles.tight]\noutput_limit_bytes = 1002\n".into()),
        ..Opts::default()
    });
    let tight = ["--profile", "tight"];
    let all = seq(2400);
    let (head, tail) = (&all[..1002], &all[all.len() - 1002..]);
    assert!(!head.ends_with('\n'), "the head stops mid-line");
    let o = d.nanobot(&tight, "seq 1 2400; echo FAILED >&2; exit 1");
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "{head}\n... ({} bytes omitted) ...\n{tail}",
            thousands(all.len() - 2004)
        )
    );
    assert!(stdout(&o).ends_with("2399\n2400\n"));
    assert!(
        stderr(&o).starts_with("FAILED\nnanobot: limit hit"),
        "{}",
        stderr(&o)
    );
    // stderr cut the same way, on stderr, before the note.
    let o = d.nanobot(&tight, "seq 1 2400 >&2");
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    let err = stderr(&o);
    let want = format!(
        "{head}\n... ({} bytes omitted) ...\n{tail}nanobot: limit hit: output_limit_bytes",
        thousands(all.len() - 2004)
    );
    assert!(err.starts_with(&want), "{err}");
    // Just over the limit: the tail continues the head, no marker, byte for byte.
    let o = d.nanobot(&tight, "seq 1 300");
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(seq(300).len() > 1002);
    assert_eq!(stdout(&o), seq(300));
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Empty and blank commands are refused in the CLI's own words, 125, everywhere; a program that
/// cannot be run is no refusal in --json either; `nanobot exec --help` lists the exit codes.
#[test]
fn empty_commands_program_failures_and_help_say_it_in_the_clis_terms() {
    let d = Daemon::start();
    for cmd in ["", "   ", " \t\n "] {
        let o = d.nanobot(&[], cmd);
        assert_eq!(o.status.code(), Some(125), "{cmd:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "nanobot: the command is empty\n", "{cmd:?}");
        assert_eq!(stdout(&o), "", "{cmd:?}: nothing ran");
        let o = d.nanobot(&["--json"], cmd);
        assert_eq!(o.status.code(), Some(125), "{cmd:?}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            (&v["refused"], &v["refused_layer"], &v["exit"]),
            (
                &serde_json::json!(true),
                &serde_json::json!("nanobot"),
                &serde_json::json!(125)
            ),
            "{v}"
        );
        let (code, out, _) = exec_tool_run(&d, &[], cmd);
        assert_eq!(code, Some(125), "{cmd:?}: {out}");
        assert!(out.starts_with("Error: command is empty"), "{out}");
    }
    // No protocol field names the CLI user never set.
    let err = stderr(&d.nanobot(&[], ""));
    assert!(
        !err.contains("argv") && !err.contains("sandbox refused"),
        "{err}"
    );
    // A program that cannot be run: the command's own failure, in --json too.
    for (argv, code, says) in [
        (["/tmp", "x"], 126, "/tmp: cannot execute"),
        (["nosuchprog", "x"], 127, "nosuchprog: command not found"),
    ] {
        let o = d
            .nanobot_cmd(&["--json"], argv[0])
            .args(&argv[1..])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["refused"], false, "{v}");
        assert_eq!(v["exit"], code, "{v}");
        assert!(v["error"].as_str().unwrap_or("").starts_with(says), "{v}");
    }
    // A command that ran has no error.
    let o = d.nanobot(&["--json"], "true");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["error"].is_null(), "{v}");
    // --help lists the exit codes, in the words of `nanobot tool --help`.
    let help = |sub: &str| {
        let o = Command::new(bin("nanobot"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        stdout(&o).split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let exec = help("exec");
    let codes = "the command's own code, 128+N when killed by signal N, 124 on timeout, 125 when \
                 it did not run";
    assert!(exec.contains(&format!("Exit codes: {codes}")), "{exec}");
    assert!(exec.contains("126/127"), "{exec}");
    assert!(help("tool").contains(codes));
}

/// A command line that is only an absolute path runs that program without starting a shell
/// (its parent is the sandbox's init, PID 1); every other line, and every case where the direct
/// exec fails, goes through `/bin/sh -c` exactly as before.
#[test]
fn a_command_line_that_is_only_a_path_runs_without_a_shell_and_falls_back_to_it() {
    let d = Daemon::start();
    let (uid, gid) = test_ids();
    let write = |name: &str, text: &str, mode: u32| {
        let p = d.ws.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        chown(&p, uid, gid);
        p.display().to_string()
    };
    let ppid = write("ppid.sh", "#!/bin/sh\necho \"ppid=$PPID\"\n", 0o755);
    // Through the shell (a line with anything more than the path): the shell is the parent.
    let o = d.nanobot(&[], &format!("{ppid};"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("ppid=") && stdout(&o) != "ppid=1\n",
        "{}",
        stdout(&o)
    );
    // Only the path: no shell in between.
    let o = d.nanobot(&[], &ppid);
    assert_eq!(stdout(&o), "ppid=1\n", "{}", stderr(&o));
    // No `#!` line: execve refuses it, the shell runs it as a script, as before.
    let script = write("noshebang", "echo \"as a script: $0\"\n", 0o755);
    let o = d.nanobot(&[], &script);
    assert_eq!(
        stdout(&o),
        format!("as a script: {script}\n"),
        "{}",
        stderr(&o)
    );
    // Missing and not executable: the shell's own words and codes, as before.
    let o = d.nanobot(&[], "/nonexistent/prog");
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/nonexistent/prog: not found"),
        "{}",
        stderr(&o)
    );
    let data = write("data", "x\n", 0o644);
    let o = d.nanobot(&[], &data);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
}

//! Connections cannot starve the daemon (issue #14 §2): the open-file limit is raised at start, a
//! flood of idle connections at systemd's default limit neither spins the daemon nor keeps
//! another client's exec from completing, connections are capped in total and per peer uid,
//! out of file descriptors the accept loop backs off and says so, and connections that do not
//! finish the HTTP/2 handshake in time or sit idle are closed, never one with a request running.

use nanobot_e2e::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: with the preface, all a client owes for the handshake.
const SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];

fn prlimit(nofile: &str) -> Vec<std::path::PathBuf> {
    vec![
        "/usr/bin/prlimit".into(),
        format!("--nofile={nofile}").into(),
    ]
}

/// (soft, hard) "Max open files" of a process.
fn nofile_of(pid: i32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_else(|| panic!("{limits}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[3].parse().unwrap(), f[4].parse().unwrap())
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// The share of one core the process used over `window`, in percent.
fn cpu_percent(pid: i32, window: Duration) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let t0 = cpu_ticks(pid);
    std::thread::sleep(window);
    let ticks = (cpu_ticks(pid) - t0) as f64;
    100.0 * ticks / hz / window.as_secs_f64()
}

/// Whether the daemon has closed this connection (drains what it sent, e.g. its SETTINGS).
fn is_closed(s: &UnixStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let mut r = s;
    let closed = loop {
        match r.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).unwrap();
    closed
}

/// How long until the daemon closes this connection, if within `limit`.
fn closed_within(s: &UnixStream, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if is_closed(s) {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

/// Let the daemon see the end of the harness's start-up probes (root's connections too), so
/// they no longer count under the caps.
fn settle() {
    std::thread::sleep(Duration::from_millis(500));
}

/// Open `n` raw connections from this process (root) that send nothing.
fn flood(socket: &Path, n: usize) -> Vec<UnixStream> {
    (0..n)
        .map(|i| {
            UnixStream::connect(socket).unwrap_or_else(|e| panic!("flood connection {i}: {e}"))
        })
        .collect()
}

/// How many of `conns` the daemon keeps open, once it has caught up with them: a refused
/// connection that sends no request gets its GOAWAY after a second.
fn open_count(conns: &[UnixStream]) -> usize {
    let mut last = usize::MAX;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(2000));
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let n = conns.iter().filter(|c| !is_closed(c)).count();
        if n == last || t0.elapsed() > Duration::from_secs(10) {
            return n;
        }
        last = n;
    }
}

/// `nanobot exec -- COMMAND` as the sandbox's user (another uid than the flooding root), with
/// a bound on how long it may take.
fn exec_as_other_user(d: &Daemon, command: &str, bound: Duration) -> (Output, Duration) {
    let (uid, gid) = test_ids();
    let mut c = d.nanobot_cmd(&[], command);
    c.env("HOME", "/nonexistent")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    as_user(&mut c, uid, gid);
    let t0 = Instant::now();
    let mut child = c.spawn().unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), t0.elapsed());
        }
        if t0.elapsed() > bound {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "`nanobot exec -- {command}` did not complete within {bound:?}: {}\nlog:\n{}",
                stderr(&o),
                d.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_log(d: &Daemon, needle: &str, limit: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if d.log_text().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
    if !is_root() {
        return;
    }
    let d = Daemon::start_with(Opts {
        wrap: prlimit("256:4096"),
        ..Opts::default()
    });
    assert_eq!(nofile_of(d.pid()), (4096, 4096));
    assert!(
        d.log_text()
            .contains("open-file limit raised from 256 to 4096"),
        "{}",
        d.log_text()
    );
    let o = d.nanobot(&[], "echo ok");
    assert_eq!(stdout(&o), "ok\n", "{}", stderr(&o));

    // Where the hard limit itself is low, the connection cap follows it (half the files).
    let d = Daemon::start_with(Opts {
        wrap: prlimit("256:256"),
        ..Opts::default()
    });
    assert_eq!(nofile_of(d.pid()), (256, 256));
    let log = d.log_text();
    assert!(
        log.contains("max_connections=128 (configured 512)") && log.contains("raise LimitNOFILE="),
        "{log}"
    );
}

/// The case: systemd's default limit (1,024 files), 1,100 idle connections.
#[test]
fn a_flood_of_idle_connections_at_the_default_limit_does_not_starve_another_client() {
    if !is_root() {
        return;
    }
    let d = Daemon::start_with(Opts {
        wrap: prlimit("1024:1024"),
        // Long enough that the flood is still held while the other client runs.
        config: Some("handshake_timeout_secs = 120\n".into()),
        ..Opts::default()
    });
    assert_eq!(nofile_of(d.pid()), (1024, 1024));
    // Positive control: served before the flood.
    let (o, _) = exec_as_other_user(&d, "echo ok", Duration::from_secs(30));
    assert_eq!(stdout(&o), "ok\n", "{}", stderr(&o));

    settle();
    let conns = flood(&d.socket, 1100);
    let open = open_count(&conns);
    assert_eq!(
        open, 128,
        "root keeps max_connections_per_uid (128) connections; the rest are closed"
    );
    let cpu = cpu_percent(d.pid(), Duration::from_secs(2));
    assert!(
        cpu < 25.0,
        "the daemon used {cpu:.0}% of a core while flooded"
    );

    let (o, took) = exec_as_other_user(&d, "echo ok", Duration::from_secs(20));
    assert_eq!(stdout(&o), "ok\n", "{}", stderr(&o));
    assert!(took < Duration::from_secs(10), "exec took {took:?}");
    let log = d.log_text();
    assert!(
        log.contains("WARN")
            && log.contains("closed a new connection from uid 0: max_connections_per_uid reached"),
        "{log}"
    );
    // Rate-limited: one warning for a thousand refusals, the rest counted.
    let warnings = log.matches("closed a new connection").count();
    assert!(warnings <= 3, "{warnings} warnings:\n{log}");
    // The flood is still held: the caps shielded the other client, not a timeout.
    assert_eq!(conns.iter().filter(|c| !is_closed(c)).count(), 128);
}

#[test]
fn out_of_file_descriptors_the_accept_loop_backs_off_logs_and_keeps_serving() {
    if !is_root() {
        return;
    }
    let d = Daemon::start_with(Opts {
        config: Some("max_connections_per_uid = 512\nhandshake_timeout_secs = 120\n".into()),
        ..Opts::default()
    });
    // A client connected before the descriptors run out.
    let rt = grpc::rt();
    let mut client = rt.block_on(grpc::client(&d.socket));
    rt.block_on(client.info(nanobot_proto::pb::InfoRequest {}))
        .expect("Info before the flood");
    // The limit lowered under the running daemon, below what its caps allow (by its own uid:
    // root may lack CAP_SYS_RESOURCE in a container).
    let (uid, gid) = test_ids();
    let mut c = Command::new("prlimit");
    c.args(["--pid", &d.pid().to_string(), "--nofile=64:64"]);
    as_user(&mut c, uid, gid);
    let st = c.status().unwrap();
    assert!(st.success());
    assert_eq!(nofile_of(d.pid()), (64, 64));
    let conns = flood(&d.socket, 120);
    assert!(
        wait_for_log(&d, "Too many open files", Duration::from_secs(10)),
        "{}",
        d.log_text()
    );
    let cpu = cpu_percent(d.pid(), Duration::from_secs(2));
    assert!(cpu < 25.0, "the daemon used {cpu:.0}% of a core at EMFILE");
    let log = d.log_text();
    assert!(
        log.contains("WARN")
            && log.contains("accepting a connection out of resources: Too many open files"),
        "{log}"
    );
    let warnings = log
        .matches("accepting a connection out of resources")
        .count();
    assert!(warnings <= 2, "rate-limited, got {warnings}:\n{log}");
    // Connections already open are served meanwhile.
    let t0 = Instant::now();
    rt.block_on(client.info(nanobot_proto::pb::InfoRequest {}))
        .expect("Info on an open connection while out of descriptors");
    assert!(t0.elapsed() < Duration::from_secs(2));
    // Once the flood goes, a new client is served again.
    drop(conns);
    let (o, took) = exec_as_other_user(&d, "echo ok", Duration::from_secs(20));
    assert_eq!(stdout(&o), "ok\n", "{}", stderr(&o));
    assert!(took < Duration::from_secs(10), "exec took {took:?}");
}

#[test]
fn connections_are_capped_per_uid_and_in_total() {
    if !is_root() {
        return;
    }
    let (uid, _) = test_ids();
    let d = Daemon::start_with(Opts {
        config: Some(
            "max_connections = 4\nmax_connections_per_uid = 3\nhandshake_timeout_secs = 120\n"
                .into(),
        ),
        ..Opts::default()
    });
    settle();
    let root = flood(&d.socket, 3);
    let fourth = UnixStream::connect(&d.socket).unwrap();
    assert!(
        closed_within(&fourth, Duration::from_secs(3)).is_some(),
        "root's 4th connection is over max_connections_per_uid = 3"
    );
    assert!(root.iter().all(|c| !is_closed(c)), "the first 3 stay open");
    assert!(d.log_text().contains("max_connections_per_uid reached"));
    // Another uid is still served (total 4 of 4).
    let (o, _) = exec_as_other_user(&d, "echo ok", Duration::from_secs(20));
    assert_eq!(stdout(&o), "ok\n", "{}", stderr(&o));

    // The other uid holds the 4th place with a running exec; its next connection is over the total.
    let (u, g) = test_ids();
    let mut holder = d.nanobot_cmd(&[], "sleep 4");
    holder
        .env("HOME", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    as_user(&mut holder, u, g);
    let mut holder = holder.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let (o, _) = exec_as_other_user(&d, "echo refused", Duration::from_secs(20));
    assert!(
        !o.status.success() && !stdout(&o).contains("refused"),
        "{}",
        stderr(&o)
    );
    // The client is told why (an HTTP/2 GOAWAY), not "Broken pipe".
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("sandboxd refused the connection: too many open connections"),
        "{}",
        stderr(&o)
    );
    assert!(
        d.log_text().contains(&format!(
            "closed a new connection from uid {uid}: max_connections reached"
        )),
        "{}",
        d.log_text()
    );
    assert!(holder.wait().unwrap().success(), "the held exec completes");
    // Places come back when connections close.
    drop(root);
    let (o, _) = exec_as_other_user(&d, "echo ok", Duration::from_secs(20));
    assert_eq!(stdout(&o), "ok\n", "{}", stderr(&o));
}

#[test]
fn a_connection_that_does_not_finish_the_handshake_in_time_is_closed() {
    let d = Daemon::start_with(Opts {
        config: Some("handshake_timeout_secs = 1\nidle_timeout_secs = 60\n".into()),
        ..Opts::default()
    });
    let silent = UnixStream::connect(&d.socket).unwrap();
    let mut partial = UnixStream::connect(&d.socket).unwrap();
    partial.write_all(&PREFACE[..16]).unwrap();
    let mut preface_only = UnixStream::connect(&d.socket).unwrap();
    preface_only.write_all(PREFACE).unwrap();
    // Positive control: preface and a first frame in time.
    let mut done = UnixStream::connect(&d.socket).unwrap();
    done.write_all(PREFACE).unwrap();
    done.write_all(&SETTINGS).unwrap();
    for (name, c) in [
        ("silent", &silent),
        ("partial preface", &partial),
        ("preface only", &preface_only),
    ] {
        let t = closed_within(c, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{name}: still open after 5 s"));
        assert!(t < Duration::from_secs(4), "{name}: closed after {t:?}");
    }
    assert!(
        !is_closed(&done),
        "a finished handshake keeps the connection"
    );
    assert!(
        wait_for_log(
            &d,
            "did not finish the HTTP/2 handshake within handshake_timeout_secs=1",
            Duration::from_secs(2)
        ),
        "{}",
        d.log_text()
    );
    // The daemon still serves.
    let o = d.nanobot(&[], "echo ok");
    assert_eq!(stdout(&o), "ok\n", "{}", stderr(&o));
}

#[test]
fn an_idle_connection_is_closed_but_never_one_with_a_silent_exec_running() {
    let d = Daemon::start_with(Opts {
        config: Some("idle_timeout_secs = 1\n".into()),
        ..Opts::default()
    });
    let mut idle = UnixStream::connect(&d.socket).unwrap();
    idle.write_all(PREFACE).unwrap();
    idle.write_all(&SETTINGS).unwrap();
    let t = closed_within(&idle, Duration::from_secs(5)).expect("idle connection closed");
    assert!(
        t >= Duration::from_millis(900) && t < Duration::from_secs(4),
        "closed after {t:?}"
    );
    assert!(
        wait_for_log(
            &d,
            "closing a connection idle for idle_timeout_secs=1",
            Duration::from_secs(2)
        ),
        "{}",
        d.log_text()
    );
    // A command silent for three idle timeouts keeps its connection to the end.
    let o = d.nanobot(&[], "sleep 3; echo done");
    assert_eq!(stdout(&o), "done\n", "{}{}", stderr(&o), d.log_text());
    assert!(o.status.success());
    grpc::rt().block_on(async {
        let mut c = grpc::client(&d.socket).await;
        let run = grpc::exec(&mut c, grpc::req(&d.ws, "sleep 3"))
            .await
            .unwrap_or_else(|e| {
                panic!("a silent exec over one connection: {e:?}\n{}", d.log_text())
            });
        let r = run.result.expect("a result");
        assert_eq!((r.exit_code, r.refused), (0, false), "{r:?}");
    });
}

/// VmRSS of a process, in KiB.
fn rss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What a burst of 64 concurrent clients made the daemon allocate goes back to the kernel once
/// they are gone: its RSS returns to within 2 MiB of what it was idle (the allocator kept about
/// 4 MiB of freed memory for good before the daemon trimmed its heap when idle).
#[test]
fn memory_a_burst_of_clients_took_is_given_back_when_idle() {
    let d = Daemon::start();
    let rt = grpc::rt();
    let burst = |clients: usize| {
        rt.block_on(async {
            let mut tasks = vec![];
            for _ in 0..clients {
                let (socket, ws) = (d.socket.clone(), d.ws.clone());
                tasks.push(tokio::spawn(async move {
                    let mut c = grpc::client(&socket).await;
                    for _ in 0..4 {
                        let r = grpc::exec(&mut c, grpc::req(&ws, "echo hi")).await;
                        assert_eq!(r.expect("exec").stdout, b"hi\n");
                    }
                }));
            }
            for t in tasks {
                t.await.expect("client");
            }
        })
    };
    // Idle after a little use, as a daemon is after its first clients.
    burst(2);
    std::thread::sleep(Duration::from_millis(1500));
    let idle = rss_kb(d.pid());
    burst(64);
    let peak = rss_kb(d.pid());
    let t0 = Instant::now();
    let mut now = peak;
    while t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(250));
        now = rss_kb(d.pid());
        if now <= idle + 2048 {
            break;
        }
    }
    eprintln!("daemon RSS: idle {idle} KiB, after the burst {peak} KiB, then {now} KiB");
    assert!(
        now <= idle + 2048,
        "idle {idle} KiB, after the burst {peak} KiB, 5 s later {now} KiB"
    );
}

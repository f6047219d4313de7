//! Round trip of `/bin/true` through sandboxd with full confinement, against a bare posix_spawn
//! of `/bin/true` measured in the same run; `nanobot exec -- /bin/true` end to end beside
//! `bwrap --unshare-all` (when installed); throughput at 1, 2, 8 and 64 concurrent clients; the
//! daemon's memory idle, under load and after it. Ends with one `TARGET` line per target of
//! issue 17 with the measured ratio and PASS or FAIL. Run with `./scripts/bench.sh` (it builds
//! the release binaries first).
//!
//! Environment: BENCH_ITERS (default 400), BENCH_CLI_ITERS (default 100), BENCH_SECS per
//! throughput level (default 3), BENCH_CONFIG (sandboxd.toml text added to the daemon's config),
//! BENCH_LOAD=N (only N concurrent gRPC clients for BENCH_SECS, nothing else: a steady load to
//! profile with `perf record -a`).

use nanobot_e2e::{bin, grpc, is_root, test_ids, Daemon, Opts};
use nanobot_proto::pb::ExecRequest;
use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// posix_spawn + waitpid of /bin/true: what any process pays to run a program at all.
fn bare_spawn() -> Duration {
    let path = CString::new("/bin/true").unwrap_or_default();
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let t0 = Instant::now();
    let mut pid: libc::pid_t = 0;
    // SAFETY: valid NUL-terminated argv/envp arrays that outlive the call; no file actions.
    let r = unsafe {
        libc::posix_spawn(
            &mut pid,
            path.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            argv.as_ptr() as *const *mut libc::c_char,
            envp.as_ptr() as *const *mut libc::c_char,
        )
    };
    assert_eq!(r, 0, "posix_spawn failed");
    let mut st = 0;
    // SAFETY: waiting for the child we just spawned.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    t0.elapsed()
}

/// Run a command to completion with no stdio; its wall time, or None when it failed.
fn timed(mut c: Command) -> Option<Duration> {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let t0 = Instant::now();
    let ok = c.status().map(|s| s.success()).unwrap_or(false);
    ok.then(|| t0.elapsed())
}

/// As the unprivileged test user when we are root (nanobot refuses root), with a clean
/// environment: what a user's shell would run.
fn as_user(c: &mut Command, home: &Path) {
    c.env_clear().env("PATH", "/usr/bin:/bin").env("HOME", home);
    if is_root() {
        let (uid, gid) = test_ids();
        c.uid(uid).gid(gid);
    }
}

fn req(ws: &Path) -> ExecRequest {
    ExecRequest {
        workspace: ws.to_string_lossy().into_owned(),
        argv: vec!["/bin/true".into()],
        ..Default::default()
    }
}

/// `clients` concurrent gRPC clients, each running `/bin/true` in a loop until `deadline`.
/// Returns (execs that exited 0, execs that failed or were refused); the first failure of each
/// client is printed.
async fn load(socket: &Path, ws: &Path, clients: usize, deadline: Instant) -> (u64, u64) {
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (socket, ws) = (socket.to_path_buf(), ws.to_path_buf());
            tokio::spawn(async move {
                let mut c = grpc::client(&socket).await;
                let (mut n, mut failed) = (0u64, 0u64);
                while Instant::now() < deadline {
                    match grpc::exec(&mut c, req(&ws)).await {
                        Ok(r) if r.result.as_ref().map(|r| r.exit_code) == Some(0) => n += 1,
                        Ok(r) => {
                            failed += 1;
                            if failed == 1 {
                                eprintln!("exec failed: {:?}", r.result);
                            }
                        }
                        Err(e) => {
                            failed += 1;
                            if failed == 1 {
                                eprintln!("exec failed: {e}");
                            }
                        }
                    }
                }
                (n, failed)
            })
        })
        .collect();
    let (mut n, mut failed) = (0, 0);
    for t in tasks {
        let (a, b) = t.await.unwrap_or((0, 1));
        n += a;
        failed += b;
    }
    (n, failed)
}

fn rss_kb(pid: i32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One target line: `TARGET <what>: <measured> (<limit>) PASS|FAIL`; scripts/bench.sh collects
/// them.
fn target(what: &str, measured: String, limit: &str, pass: bool) {
    println!(
        "TARGET {what:<46} {measured:>22}  ({limit})  {}",
        if pass { "PASS" } else { "FAIL" }
    );
}

/// `bwrap` on PATH, if installed: the peer the CLI is compared with.
fn bwrap() -> Option<std::path::PathBuf> {
    ["/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

fn main() {
    let iters = env_num("BENCH_ITERS", 400) as usize;
    let cli_iters = env_num("BENCH_CLI_ITERS", 100) as usize;
    let secs = env_num("BENCH_SECS", 3);
    // BENCH_CONFIG: extra sandboxd.toml text, to measure one layer's cost (`cgroups = "off"`).
    let d = Daemon::start_with(Opts {
        config: std::env::var("BENCH_CONFIG").ok(),
        ..Opts::default()
    });
    let rt = grpc::rt();
    if std::env::var_os("BENCH_LOAD").is_some() {
        let clients = env_num("BENCH_LOAD", 8) as usize;
        let deadline = Instant::now() + Duration::from_secs(secs);
        let (n, failed) = rt.block_on(load(&d.socket, &d.ws, clients, deadline));
        println!(
            "{clients} client(s): {:.0} execs/s, {failed} failed",
            n as f64 / secs as f64
        );
        return;
    }

    // Warm up both paths (page cache, the daemon's first connection).
    for _ in 0..20 {
        bare_spawn();
    }
    let mut bare: Vec<Duration> = Vec::with_capacity(iters);
    let mut boxed: Vec<Duration> = Vec::with_capacity(iters);
    rt.block_on(async {
        let mut c = grpc::client(&d.socket).await;
        for _ in 0..20 {
            let r = grpc::exec(&mut c, req(&d.ws)).await.expect("exec");
            let res = r.result.expect("result");
            assert!(!res.refused, "sandbox refused: {}", res.refused_reason);
            assert_eq!(res.exit_code, 0);
        }
        // Interleaved, so drift on a shared machine hits both series alike.
        for _ in 0..iters {
            bare.push(bare_spawn());
            let t0 = Instant::now();
            let r = grpc::exec(&mut c, req(&d.ws)).await.expect("exec");
            boxed.push(t0.elapsed());
            assert_eq!(r.result.map(|r| r.exit_code), Some(0));
        }
    });
    // The transport alone: an Info call over the same socket, for the breakdown.
    let mut info: Vec<Duration> = Vec::with_capacity(iters);
    rt.block_on(async {
        let mut c = grpc::client(&d.socket).await;
        for _ in 0..iters {
            let t0 = Instant::now();
            c.info(nanobot_proto::pb::InfoRequest {})
                .await
                .expect("Info");
            info.push(t0.elapsed());
        }
    });
    info.sort();
    bare.sort();
    boxed.sort();
    let (b50, b99) = (percentile(&bare, 0.50), percentile(&bare, 0.99));
    let (s50, s99) = (percentile(&boxed, 0.50), percentile(&boxed, 0.99));
    println!("sandboxd exec benchmark: /bin/true, {iters} iterations each, interleaved");
    println!("{:<44} {:>10} {:>10}", "", "p50 (us)", "p99 (us)");
    println!(
        "{:<44} {:>10.0} {:>10.0}",
        "bare posix_spawn + waitpid (baseline)",
        us(b50),
        us(b99)
    );
    println!(
        "{:<44} {:>10.0} {:>10.0}",
        "sandboxd Exec round trip (full confinement)",
        us(s50),
        us(s99)
    );
    println!(
        "{:<44} {:>10.0} {:>10.0}",
        "  of which gRPC transport (Info round trip)",
        us(percentile(&info, 0.50)),
        us(percentile(&info, 0.99))
    );
    let grpc_ratio = us(s50) / us(b50);
    println!(
        "ratio sandboxd/baseline: p50 {grpc_ratio:.2}  p99 {:.2}",
        us(s99) / us(b99)
    );

    // What a user runs: the CLI, start to exit, beside bwrap and a bare spawn, interleaved.
    let home = d.dir.join("home");
    std::fs::create_dir_all(&home).expect("home");
    if is_root() {
        let (uid, gid) = test_ids();
        nanobot_e2e::chown(&home, uid, gid);
    }
    let cli = || {
        let mut c = Command::new(bin("nanobot"));
        c.arg("exec")
            .arg("--socket")
            .arg(&d.socket)
            .arg("-w")
            .arg(&d.ws)
            .args(["--", "/bin/true"]);
        as_user(&mut c, &home);
        c
    };
    let bw = bwrap();
    // The confinement bwrap offers for one command: every namespace, the host read-only, its
    // own /dev, /proc and /tmp.
    let bwrap_cmd = |b: &Path| {
        let mut c = Command::new(b);
        c.args([
            "--unshare-all",
            "--die-with-parent",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
            "/bin/true",
        ]);
        as_user(&mut c, &home);
        c
    };
    for _ in 0..3 {
        assert!(timed(cli()).is_some(), "nanobot exec -- /bin/true failed");
    }
    let bw = bw.filter(|b| {
        let ok = timed(bwrap_cmd(b)).is_some();
        if !ok {
            println!(
                "bwrap at {} cannot run here; its row is left out",
                b.display()
            );
        }
        ok
    });
    // Two interleaved series: the CLI beside a bare spawn, then the CLI beside bwrap. In the
    // second, each run is followed by a pause, so the work bwrap leaves to the kernel after it
    // exited (its network namespace is torn down by a kernel worker) is not charged to the CLI.
    let pause = || std::thread::sleep(Duration::from_millis(10));
    let (mut cb, mut cc, mut cc2, mut cw) = (vec![], vec![], vec![], vec![]);
    for _ in 0..cli_iters {
        cb.push(bare_spawn());
        cc.push(timed(cli()).expect("nanobot exec -- /bin/true failed"));
    }
    if let Some(b) = &bw {
        for _ in 0..cli_iters {
            cc2.push(timed(cli()).expect("nanobot exec -- /bin/true failed"));
            pause();
            if let Some(t) = timed(bwrap_cmd(b)) {
                cw.push(t);
            }
            pause();
        }
    }
    for v in [&mut cb, &mut cc, &mut cc2, &mut cw] {
        v.sort();
    }
    println!();
    println!("end to end, {cli_iters} runs each, interleaved:");
    println!("{:<44} {:>10} {:>10}", "", "p50 (us)", "p99 (us)");
    let row = |name: &str, v: &[Duration]| {
        println!(
            "{name:<44} {:>10.0} {:>10.0}",
            us(percentile(v, 0.5)),
            us(percentile(v, 0.99))
        )
    };
    row("bare posix_spawn + waitpid", &cb);
    row("nanobot exec -- /bin/true", &cc);
    if !cw.is_empty() {
        row("nanobot exec -- /bin/true (beside bwrap)", &cc2);
        row("bwrap --unshare-all ... /bin/true", &cw);
    } else {
        println!("bwrap not installed: no bwrap row (scripts/bench.sh installs it)");
    }
    let cli_bare = us(percentile(&cc, 0.5)) / us(percentile(&cb, 0.5));
    let cli_bwrap = (!cw.is_empty()).then(|| us(percentile(&cc2, 0.5)) / us(percentile(&cw, 0.5)));

    let idle = rss_kb(d.pid(), "VmRSS:");
    println!();
    println!("throughput, {secs} s per level (execs/s of /bin/true):");
    let mut peak = idle;
    let mut share8 = 0.0;
    let mut failed64 = None;
    for clients in [1usize, 2, 8, 64] {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let (n, failed, p) = rt.block_on(async {
            let tasks = load(&d.socket, &d.ws, clients, deadline);
            let pid = d.pid();
            let sampler = tokio::spawn(async move {
                let mut peak = 0;
                while Instant::now() < deadline {
                    peak = peak.max(rss_kb(pid, "VmRSS:"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                peak
            });
            let (n, failed) = tasks.await;
            (n, failed, sampler.await.unwrap_or(0))
        });
        peak = peak.max(p);
        // The bare baseline at the same concurrency, for scale.
        let t0 = Instant::now();
        let bare_n: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..clients)
                .map(|_| {
                    s.spawn(|| {
                        let mut n = 0u64;
                        while t0.elapsed() < Duration::from_secs(secs) {
                            bare_spawn();
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        let rate = n as f64 / secs as f64;
        let bare_rate = bare_n as f64 / secs as f64;
        let share = rate / bare_rate.max(1.0);
        println!(
            "  {clients:>2} client(s): sandboxd {rate:>7.0}/s   bare posix_spawn {bare_rate:>7.0}/s   {:>3.0} % of bare   {failed} failed",
            share * 100.0
        );
        if clients == 8 {
            share8 = share;
        }
        if clients == 64 {
            failed64 = Some(failed);
        }
    }
    // The daemon gives back what the load took once it is idle again.
    std::thread::sleep(Duration::from_secs(2));
    let after = rss_kb(d.pid(), "VmRSS:");
    println!();
    println!(
        "daemon RSS: idle {idle} KiB, peak under load {peak} KiB (VmHWM {} KiB), 2 s after the load {after} KiB",
        rss_kb(d.pid(), "VmHWM:")
    );

    println!();
    match cli_bwrap {
        Some(r) => target(
            "nanobot exec -- /bin/true vs bwrap, p50",
            format!("{r:.2}x"),
            "<= 0.5x",
            r <= 0.5,
        ),
        None => println!(
            "TARGET nanobot exec -- /bin/true vs bwrap: not measured, bwrap is not installed  SKIP"
        ),
    }
    target(
        "nanobot exec -- /bin/true vs bare, p50",
        format!("{cli_bare:.2}x"),
        "<= 4x",
        cli_bare <= 4.0,
    );
    target(
        "gRPC Exec vs bare posix_spawn, p50",
        format!("{grpc_ratio:.2}x"),
        "<= 2.0x",
        grpc_ratio <= 2.0,
    );
    target(
        "throughput at 8 gRPC clients, share of bare",
        format!("{:.0} %", share8 * 100.0),
        ">= 40 %",
        share8 >= 0.40,
    );
    let f64_ = failed64.unwrap_or(u64::MAX);
    target(
        "failures at 64 concurrent gRPC clients",
        format!("{f64_}"),
        "0",
        f64_ == 0,
    );
    let grew = after.saturating_sub(idle);
    target(
        "daemon RSS after the load, above idle",
        format!("{grew} KiB"),
        "<= 2048 KiB",
        grew <= 2048,
    );
}

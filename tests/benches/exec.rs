//! Round trip of `/bin/true` through sandboxd with full confinement, against a bare posix_spawn
//! of `/bin/true` measured in the same run, plus throughput at 1, 2 and 8 concurrent clients and
//! the daemon's memory. Run with `./scripts/bench.sh` (it builds the release binaries first).
//!
//! Environment: BENCH_ITERS (default 400), BENCH_SECS per throughput level (default 3),
//! BENCH_CONFIG (sandboxd.toml text added to the daemon's config).

use nanobot_e2e::{grpc, Daemon, Opts};
use nanobot_proto::pb::ExecRequest;
use std::ffi::CString;
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

fn req(ws: &std::path::Path) -> ExecRequest {
    ExecRequest {
        workspace: ws.to_string_lossy().into_owned(),
        argv: vec!["/bin/true".into()],
        ..Default::default()
    }
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

fn main() {
    let iters = env_num("BENCH_ITERS", 400) as usize;
    let secs = env_num("BENCH_SECS", 3);
    // BENCH_CONFIG: extra sandboxd.toml text, to measure one layer's cost (`cgroups = "off"`).
    let d = Daemon::start_with(Opts {
        config: std::env::var("BENCH_CONFIG").ok(),
        ..Opts::default()
    });
    let rt = grpc::rt();

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
    println!(
        "ratio sandboxd/baseline: p50 {:.2}  p99 {:.2}   (target p50 <= 2.5)",
        us(s50) / us(b50),
        us(s99) / us(b99)
    );

    let idle = rss_kb(d.pid(), "VmRSS:");
    println!();
    println!("throughput, {secs} s per level (execs/s of /bin/true):");
    let mut peak = idle;
    for clients in [1usize, 2, 8] {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let (n, p) = rt.block_on(async {
            let mut tasks = vec![];
            for _ in 0..clients {
                let socket = d.socket.clone();
                let ws = d.ws.clone();
                tasks.push(tokio::spawn(async move {
                    let mut c = grpc::client(&socket).await;
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        let r = grpc::exec(&mut c, req(&ws)).await.expect("exec");
                        assert_eq!(r.result.map(|r| r.exit_code), Some(0));
                        n += 1;
                    }
                    n
                }));
            }
            let pid = d.pid();
            let sampler = tokio::spawn(async move {
                let mut peak = 0;
                while Instant::now() < deadline {
                    peak = peak.max(rss_kb(pid, "VmRSS:"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                peak
            });
            let mut n = 0;
            for t in tasks {
                n += t.await.unwrap_or(0);
            }
            (n, sampler.await.unwrap_or(0))
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
        println!(
            "  {clients} client(s): sandboxd {rate:>7.0}/s   bare posix_spawn {bare_rate:>7.0}/s   ratio {:.2}",
            bare_rate / rate.max(1.0)
        );
    }
    println!();
    println!(
        "daemon RSS: idle {idle} KiB, peak under load {peak} KiB (VmHWM {} KiB)",
        rss_kb(d.pid(), "VmHWM:")
    );
}

//! `nanobot agent -m` end to end: one model round that asks for one exec, then the answer, against
//! a scripted model server on 127.0.0.1 (zero model latency) and a real sandboxd. Reports wall
//! time and peak RSS of the agent process, beside two baselines measured in the same run:
//! `nanobot exec -- true` (process start + one sandboxed exec) and a bare `/bin/true`.
//!
//! Environment: BENCH_AGENT_ITERS (default 40).

use nanobot_e2e::llm::{self, Server};
use nanobot_e2e::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run to completion; wall time and the child's peak RSS (KiB) from wait4.
// The child is reaped by wait4 below (not Child::wait), which also gives its rusage.
#[allow(clippy::zombie_processes)]
fn measure(mut c: Command) -> (Duration, u64, i32) {
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        .stdin(Stdio::null());
    let t0 = Instant::now();
    let child = c.spawn().expect("spawn");
    let mut st = 0;
    // SAFETY: rusage is a C struct of integers and timevals (integers): all-zero bytes are a
    // valid value; wait4 overwrites it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `child` is our own child, spawned above and not waited for by Child::wait, so no
    // one else reaps it; wait4 writes one c_int into `st` and one rusage into `ru`, both locals
    // alive through the call.
    unsafe { libc::wait4(child.id() as i32, &mut st, 0, &mut ru) };
    let took = t0.elapsed();
    (took, ru.ru_maxrss.max(0) as u64, libc::WEXITSTATUS(st))
}

fn as_user(c: &mut Command, home: &Path) {
    let (uid, gid) = test_ids();
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("BENCH_KEY", "sk-bench");
    if is_root() {
        c.uid(uid).gid(gid);
    }
}

fn p(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

fn main() {
    let iters: usize = std::env::var("BENCH_AGENT_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let d = Daemon::start();
    let mut script = vec![];
    for _ in 0..iters + 3 {
        script.push(llm::openai_tools(&[(
            "exec",
            json!({"command": "echo hi"}),
        )]));
        script.push(llm::openai_text("done"));
    }
    let server = Server::start(script);
    let (uid, gid) = test_ids();
    let home = PathBuf::from(format!(
        "/var/tmp/nanobot-bench-home-{}",
        std::process::id()
    ));
    let dot = home.join(".nanobot");
    std::fs::create_dir_all(&dot).unwrap();
    std::fs::set_permissions(&dot, std::fs::Permissions::from_mode(0o700)).unwrap();
    let cfg = dot.join("config.json");
    std::fs::write(
        &cfg,
        json!({"agents": {"defaults": {"model": "m", "provider": "bench"}},
               "providers": {"bench": {"apiKey": "${BENCH_KEY}", "apiBase": server.base()}},
               "sandbox": {"socket": d.socket}})
        .to_string(),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    for q in [&home, &dot, &cfg] {
        chown(q, uid, gid);
    }

    let agent = || {
        let mut c = Command::new(bin("nanobot"));
        c.args(["agent", "--quiet", "-m", "run echo"])
            .arg("-w")
            .arg(&d.ws);
        as_user(&mut c, &home);
        c
    };
    let exec = || {
        let mut c = Command::new(bin("nanobot"));
        c.args(["exec", "--socket"])
            .arg(&d.socket)
            .arg("-w")
            .arg(&d.ws)
            .args(["--", "true"]);
        as_user(&mut c, &home);
        c
    };
    let bare = || Command::new("/bin/true");
    for _ in 0..3 {
        assert_eq!(measure(agent()).2, 0, "nanobot agent failed");
        assert_eq!(measure(exec()).2, 0, "nanobot exec failed");
    }
    let (mut ta, mut te, mut tb) = (vec![], vec![], vec![]);
    let (mut ra, mut re) = (0u64, 0u64);
    for _ in 0..iters {
        let (t, r, code) = measure(agent());
        assert_eq!(code, 0);
        ta.push(t);
        ra = ra.max(r);
        let (t, r, _) = measure(exec());
        te.push(t);
        re = re.max(r);
        tb.push(measure(bare()).0);
    }
    for v in [&mut ta, &mut te, &mut tb] {
        v.sort();
    }
    println!("nanobot agent benchmark: {iters} runs each, interleaved; model answers instantly");
    println!(
        "{:<52} {:>9} {:>9} {:>12}",
        "", "p50 (ms)", "p99 (ms)", "peak RSS"
    );
    println!(
        "{:<52} {:>9.1} {:>9.1} {:>9} KiB",
        "nanobot agent -m (2 model calls, 1 exec)",
        p(&ta, 0.5),
        p(&ta, 0.99),
        ra
    );
    println!(
        "{:<52} {:>9.1} {:>9.1} {:>9} KiB",
        "nanobot exec -- true (baseline: start + one exec)",
        p(&te, 0.5),
        p(&te, 0.99),
        re
    );
    println!(
        "{:<52} {:>9.1} {:>9.1}",
        "/bin/true (process start)",
        p(&tb, 0.5),
        p(&tb, 0.99)
    );
    println!("ratio agent/exec: p50 {:.2}", p(&ta, 0.5) / p(&te, 0.5));
    println!();
    // Issue 17's targets for the agent round; scripts/bench.sh collects the TARGET lines.
    let verdict = |pass: bool| if pass { "PASS" } else { "FAIL" };
    println!(
        "TARGET {:<46} {:>22}  (<= 10 ms)  {}",
        "nanobot agent -m round, p50",
        format!("{:.1} ms", p(&ta, 0.5)),
        verdict(p(&ta, 0.5) <= 10.0)
    );
    println!(
        "TARGET {:<46} {:>22}  (<= 10 MiB)  {}",
        "nanobot agent -m round, peak RSS",
        format!("{:.1} MiB", ra as f64 / 1024.0),
        verdict(ra <= 10 * 1024)
    );
    let _ = std::fs::remove_dir_all(&home);
}

//! `nanobot agent -m` end to end: one model round that asks for one exec, then the answer, against
//! a scripted model server on 127.0.0.1 (zero model latency) and a real sandboxd. Reports wall
//! time and peak RSS of the agent process, beside two baselines measured in the same run:
//! `nanobot exec -- true` (process start + one sandboxed exec) and a bare `/bin/true`. Each run
//! is timed and measured by `peak-rss` (tests/src/bin/peak-rss.rs), a small parent, so that
//! this process's own memory is not counted as the subject's.
//!
//! Environment: BENCH_AGENT_ITERS (default 40).

use nanobot_e2e::llm::{self, Server};
use nanobot_e2e::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Run `c` (a `peak-rss` command) to completion: the subject's wall time, its own peak RSS (KiB)
/// and its exit code, as `peak-rss` measured them. Forked from this process, the subject's
/// `ru_maxrss` would include this process's RSS (see tests/src/bin/peak-rss.rs).
fn measure(mut c: Command) -> (Duration, u64, i32) {
    let o = c.stdin(Stdio::null()).output().expect("spawn peak-rss");
    let text = String::from_utf8_lossy(&o.stdout);
    let f: Vec<u64> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(
        f.len(),
        3,
        "peak-rss: {text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    (Duration::from_micros(f[0]), f[1], f[2] as i32)
}

/// `program args` under `peak-rss`.
fn peak_rss(program: &Path) -> Command {
    let mut c = Command::new(bin("peak-rss"));
    c.arg(program);
    c
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
        let mut c = peak_rss(&bin("nanobot"));
        c.args(["agent", "--quiet", "-m", "run echo"])
            .arg("-w")
            .arg(&d.ws);
        as_user(&mut c, &home);
        c
    };
    let exec = || {
        let mut c = peak_rss(&bin("nanobot"));
        c.args(["exec", "--socket"])
            .arg(&d.socket)
            .arg("-w")
            .arg(&d.ws)
            .args(["--", "true"]);
        as_user(&mut c, &home);
        c
    };
    let bare = || peak_rss(Path::new("/bin/true"));
    for _ in 0..3 {
        assert_eq!(measure(agent()).2, 0, "nanobot agent failed");
        assert_eq!(measure(exec()).2, 0, "nanobot exec failed");
    }
    let (mut ta, mut te, mut tb) = (vec![], vec![], vec![]);
    let (mut ra, mut re, mut rb) = (0u64, 0u64, 0u64);
    for _ in 0..iters {
        let (t, r, code) = measure(agent());
        assert_eq!(code, 0);
        ta.push(t);
        ra = ra.max(r);
        let (t, r, _) = measure(exec());
        te.push(t);
        re = re.max(r);
        let (t, r, _) = measure(bare());
        tb.push(t);
        rb = rb.max(r);
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
        "{:<52} {:>9.1} {:>9.1} {:>9} KiB",
        "/bin/true (process start)",
        p(&tb, 0.5),
        p(&tb, 0.99),
        rb
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

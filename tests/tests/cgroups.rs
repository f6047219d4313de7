//! Ceilings for the whole sandbox through its own cgroup (#14 §4), on this host's cgroup v1
//! memory and pids controllers: several processes together are OOM-killed at `memory_bytes`
//! (`limit_hit: memory`) where the same command runs fine with a high ceiling; a fork loop gets
//! EAGAIN at `pids` (`limit_hit: pids`) where it does not without; the peak memory is reported;
//! the cgroup is gone after the exec; the subtree belongs to the sandbox user and is absent from
//! the sandbox's root. Without cgroups (`cgroups = "off"`) every result says so.

use nanobot_e2e::grpc::{self, req};
use nanobot_e2e::*;
use nanobot_proto::pb::{ExecRequest, ExecResult, LimitHit};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// `roomy`: a 4 GiB ceiling and 1024 processes (the positive control); `tight`: 128 MiB, 32.
const CONFIG: &str = "cgroups = \"required\"\n\
    [profiles.roomy.limits]\nmemory_bytes = 4294967296\npids = 1024\n\
    [profiles.tight.limits]\nmemory_bytes = 134217728\npids = 32\n";

/// Three processes each allocating and touching 64 MiB at the same time (192 MiB together),
/// the shell exiting with the first failure among them.
const THREE_TIMES_64_MIB: &str = "p=; for i in 1 2 3; do \
    python3 -c 'import time; x = b\"a\" * (64 << 20); time.sleep(1.5)' & p=\"$p $!\"; done; \
    s=0; for x in $p; do wait $x || s=$?; done; exit $s";

/// Forks 64 sleeping children, or says how far it got and whether the failure was EAGAIN.
const FORK_64: &str = "python3 -c '
import os, time, errno
kids = []
try:
    for i in range(64):
        pid = os.fork()
        if pid == 0:
            time.sleep(5)
            os._exit(0)
        kids.append(pid)
    print(\"forked\", len(kids))
except OSError as e:
    print(\"fork failed after\", len(kids), \"EAGAIN\" if e.errno == errno.EAGAIN else e.errno)
for k in kids:
    os.kill(k, 9)
'";

fn run(d: &Daemon, profile: &str, command: &str) -> (grpc::Run, ExecResult) {
    let rt = grpc::rt();
    rt.block_on(async {
        let mut c = grpc::client(&d.socket).await;
        let r = ExecRequest {
            profile: profile.into(),
            ..req(&d.ws, command)
        };
        let mut run = grpc::exec(&mut c, r).await.expect("exec");
        let result = run.result.take().expect("a result");
        (run, result)
    })
}

/// This process's cgroup directory in a v1 hierarchy (the daemon it starts inherits it).
fn own_v1(controller: &str) -> PathBuf {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = own
        .lines()
        .find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctl, path) = (it.next()?, it.next()?, it.next()?);
            ctl.split(',')
                .any(|c| c == controller)
                .then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no {controller} hierarchy in /proc/self/cgroup"));
    PathBuf::from(format!("/sys/fs/cgroup/{controller}")).join(path.trim_start_matches('/'))
}

fn v1_host() -> bool {
    std::path::Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
        && std::path::Path::new("/sys/fs/cgroup/pids").exists()
}

fn start() -> Option<Daemon> {
    if !is_root() || !v1_host() {
        eprintln!("skipped: needs root and the cgroup v1 memory and pids controllers");
        return None;
    }
    Some(Daemon::start_with(Opts {
        config: Some(CONFIG.into()),
        ..Opts::default()
    }))
}

#[test]
fn memory_ceiling_is_for_the_whole_sandbox_and_the_oom_kill_is_reported() {
    let Some(d) = start() else { return };
    // Positive control: the same command with a high ceiling runs to the end.
    let (_, ok) = run(&d, "roomy", THREE_TIMES_64_MIB);
    assert_eq!(
        (ok.exit_code, ok.limit_hit.as_str(), ok.refused),
        (0, "", false),
        "{ok:?}"
    );
    assert!(ok.degraded.is_empty(), "{:?}", ok.degraded);
    // All three were alive with their 64 MiB at once: the sandbox's peak is at least that.
    assert!(
        ok.peak_memory_bytes >= 192 * MIB && ok.peak_memory_bytes < 1024 * MIB,
        "peak {} MiB",
        ok.peak_memory_bytes / MIB
    );
    // Each process stays far below its own 4 GiB address-space limit: only the sandbox-wide
    // ceiling can stop them.
    let (_, hit) = run(&d, "tight", THREE_TIMES_64_MIB);
    assert_eq!(hit.limit_hit, "memory", "{hit:?}");
    assert_eq!(hit.limit_hit_kind(), LimitHit::Memory);
    assert_eq!(hit.exit_code, 128 + libc::SIGKILL, "{hit:?}");
    assert!(
        hit.peak_memory_bytes <= 128 * MIB && hit.peak_memory_bytes > 100 * MIB,
        "peak {} MiB",
        hit.peak_memory_bytes / MIB
    );
    // What `nanobot exec` makes of it.
    let o = d.nanobot(&["--profile", "tight"], THREE_TIMES_64_MIB);
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
    assert!(stderr(&o).contains("limit hit: memory"), "{}", stderr(&o));
}

#[test]
fn process_ceiling_is_for_the_whole_sandbox_and_reported() {
    let Some(d) = start() else { return };
    let (run_ok, ok) = run(&d, "roomy", FORK_64);
    assert_eq!(
        String::from_utf8_lossy(&run_ok.stdout),
        "forked 64\n",
        "{ok:?}"
    );
    assert_eq!(ok.limit_hit, "", "{ok:?}");
    let (r, hit) = run(&d, "tight", FORK_64);
    let out = String::from_utf8_lossy(&r.stdout).into_owned();
    assert!(
        out.starts_with("fork failed after") && out.trim_end().ends_with("EAGAIN"),
        "{out:?} {hit:?}"
    );
    // python, its children and the shell: fewer than 32 forks got through.
    let n: u32 = out.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(n < 32, "{out}");
    assert_eq!(hit.limit_hit, "pids", "{hit:?}");
    assert_eq!(hit.limit_hit_kind(), LimitHit::Pids);
}

#[test]
fn the_peak_is_what_was_allocated_and_the_cgroup_is_emptied_with_the_sandbox() {
    let Some(d) = start() else { return };
    let (mem, pids) = (own_v1("memory"), own_v1("pids"));
    let mine = |h: &PathBuf| h.join("sandboxd").join(format!("d{}", d.pid()));
    // The daemon's subtree was made as root and given to the sandbox user.
    let (uid, _) = test_ids();
    for h in [&mem, &pids] {
        let md = std::fs::metadata(mine(h)).unwrap();
        assert_eq!(md.uid(), uid, "{}", mine(h).display());
    }
    let (r, res) = run(
        &d,
        "default",
        "python3 -c 'x = b\"a\" * (96 << 20)'; cat /proc/self/cgroup; test -e /sys/fs/cgroup && echo cgroupfs visible; true",
    );
    assert_eq!(res.exit_code, 0, "{res:?}");
    let out = String::from_utf8_lossy(&r.stdout).into_owned();
    // The command ran in its sandbox's own cgroup, in both hierarchies...
    let in_ctl = |ctl: &str| {
        out.lines()
            .find(|l| l.contains(&format!(":{ctl}:")))
            .and_then(|l| l.rsplit_once(&format!("/d{}/", d.pid())))
            .map(|(_, n)| n.to_string())
            .unwrap_or_else(|| panic!("{ctl}: {out}"))
    };
    let sb = in_ctl("memory");
    assert!(sb.starts_with("slot-"), "{out}");
    assert_eq!(in_ctl("pids"), sb, "{out}");
    // ...whose files it cannot reach: there is no cgroupfs in its root.
    assert!(!out.contains("cgroupfs visible"), "{out}");
    // 96 MiB touched, plus python itself.
    assert!(
        res.peak_memory_bytes >= 96 * MIB && res.peak_memory_bytes < 256 * MIB,
        "peak {} MiB",
        res.peak_memory_bytes / MIB
    );
    assert!(res.peak_rss_kb > 0);
    // Emptied with the sandbox, and either removed or reset for reuse with (almost) nothing
    // still charged to it (allow a moment for a slow exit).
    let read = |h: &PathBuf, f: &str| std::fs::read_to_string(mine(h).join(&sb).join(f)).ok();
    let t0 = Instant::now();
    let reset = |h: &PathBuf| match read(h, "cgroup.procs") {
        None => true,
        Some(p) => {
            p.trim().is_empty()
                && (h != &mem
                    || read(h, "memory.max_usage_in_bytes")
                        .and_then(|u| u.trim().parse::<u64>().ok())
                        .is_some_and(|u| u <= MIB))
        }
    };
    while ![&mem, &pids].iter().all(|h| reset(h)) {
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "{sb} is still in use after the exec"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The next sandbox's peak is its own, not the 96 MiB of the one before in the same cgroup.
    let (_, res) = run(&d, "default", "true");
    assert_eq!(res.exit_code, 0, "{res:?}");
    assert!(
        res.peak_memory_bytes < 32 * MIB,
        "peak {} MiB",
        res.peak_memory_bytes / MIB
    );
    assert_eq!(res.limit_hit, "", "{res:?}");
}

#[test]
fn without_cgroups_every_result_and_info_say_so() {
    if !is_root() {
        return;
    }
    let d = Daemon::start_with(Opts {
        config: Some("cgroups = \"off\"\n".into()),
        ..Opts::default()
    });
    let (_, r) = run(&d, "default", "true");
    assert_eq!(r.exit_code, 0);
    assert!(
        r.degraded
            .iter()
            .any(|d| d.starts_with("cgroups: off in the config") && d.contains("per process only")),
        "{:?}",
        r.degraded
    );
    assert_eq!(r.peak_memory_bytes, 0);
    let o = d.nanobot(&[], "true");
    assert!(
        stderr(&o).contains("DEGRADED, without cgroups: off in the config"),
        "{}",
        stderr(&o)
    );
    let rt = grpc::rt();
    let info = rt.block_on(async {
        let mut c = grpc::client(&d.socket).await;
        c.info(nanobot_proto::pb::InfoRequest {})
            .await
            .unwrap()
            .into_inner()
    });
    assert!(
        info.degraded.iter().any(|d| d.starts_with("cgroups:")),
        "{info:?}"
    );
    assert!(!info.layers_enforced.contains(&"cgroups".to_string()));
}

#[test]
fn check_validates_and_explain_shows_the_ceilings() {
    let dir = std::env::temp_dir().join(format!("cg-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("sandboxd.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let o = std::process::Command::new(bin("sandboxd"))
        .args(["explain", "tight", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let s = stdout(&o);
    assert!(o.status.success(), "{s}{}", stderr(&o));
    assert!(
        s.contains("whole sandbox: memory 128 MiB, 32 processes"),
        "{s}"
    );
    if v1_host() && !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert!(s.contains("memory.limit_in_bytes = 134217728"), "{s}");
        assert!(s.contains("pids.max = 32"), "{s}");
    }
    std::fs::write(
        &cfg,
        "[profiles.default.limits]\nmemory_bytes = 1000\npids = 0\ncpu_weight = 20000\n",
    )
    .unwrap();
    let o = std::process::Command::new(bin("sandboxd"))
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!o.status.success(), "{all}");
    for k in ["limits.memory_bytes", "limits.pids", "limits.cpu_weight"] {
        assert!(all.contains(k), "{k}: {all}");
    }
    std::fs::write(&cfg, "").unwrap();
    let o = std::process::Command::new(bin("sandboxd"))
        .args(["doctor", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let s = stdout(&o);
    assert!(
        s.lines()
            .any(|l| l.starts_with("✓ cgroups: cgroup v1 memory and pids")
                || l.starts_with("✓ cgroups: cgroup v2")
                || (l.starts_with("! cgroups:") && l.contains("per process only"))),
        "{s}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The command and what it forks are in the sandbox's own cgroups (the init moved itself in
/// before starting it): `/proc/self/cgroup` names this daemon's slot in both hierarchies.
#[test]
fn the_command_runs_in_the_sandboxs_cgroups() {
    let Some(d) = start() else { return };
    let (run_, r) = run(
        &d,
        "roomy",
        "cat /proc/self/cgroup; sh -c 'cat /proc/self/cgroup'",
    );
    assert_eq!(r.exit_code, 0, "{r:?}");
    let out = String::from_utf8_lossy(&run_.stdout).into_owned();
    let mine = format!("/sandboxd/d{}/slot-", d.pid());
    for ctl in ["memory", "pids"] {
        let lines: Vec<&str> = out
            .lines()
            .filter(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|c| c.split(',').any(|c| c == ctl))
            })
            .collect();
        assert_eq!(lines.len(), 2, "{ctl}: {out}");
        assert!(lines.iter().all(|l| l.contains(&mine)), "{ctl}: {out}");
    }
}

/// Memory that outlives the command's processes (tmpfs pages in /tmp and /dev/shm stay charged
/// to the sandbox) fills the ceiling: the OOM killer must take the command's processes (they
/// run at oom_score_adj 1000), and even if it takes the init the result is the memory ceiling,
/// never a refusal (which a client reads as "never ran": this command did run).
#[test]
fn tmpfs_memory_at_the_ceiling_is_a_memory_hit_not_a_refusal() {
    let Some(d) = start() else { return };
    let cmd = "head -c 100000000 /dev/zero > /tmp/a; head -c 100000000 /dev/zero > /dev/shm/b; \
               echo wrote; sleep 1";
    // Positive control: under 4 GiB both files fit and the command ends normally.
    let (_, ok) = run(&d, "roomy", cmd);
    assert_eq!(
        (ok.exit_code, ok.limit_hit.as_str(), ok.refused),
        (0, "", false),
        "{ok:?}"
    );
    let (_, hit) = run(&d, "tight", cmd);
    assert_eq!(hit.limit_hit, "memory", "{hit:?}");
    assert!(!hit.refused, "{hit:?}");
    // The command's own processes run with oom_score_adj 1000.
    let (run_, adj) = run(&d, "roomy", "cat /proc/self/oom_score_adj");
    assert_eq!(String::from_utf8_lossy(&run_.stdout), "1000\n", "{adj:?}");
}

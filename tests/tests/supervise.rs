//! The launcher is supervised (issue #14, section 1): a killed launcher is reaped and replaced
//! (or the daemon exits non-zero for systemd), a request the daemon gave up on never starts even
//! when the stuck launcher or init comes back, and a prepared sandbox that no longer matches the
//! host is discarded and the request retried once from scratch.

use nanobot_e2e::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

/// (state, ppid) of a process from /proc/PID/stat; None when it is gone (reaped).
fn stat(pid: i32) -> Option<(char, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields follow the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Processes whose parent is `parent` and whose command line holds `__launcher` (the launcher
/// itself under the daemon; warm and running sandbox inits, its copies, under the launcher).
fn launcher_children(parent: i32) -> Vec<i32> {
    pids_with("__launcher")
        .into_iter()
        .filter(|p| stat(*p).is_some_and(|(_, pp)| pp == parent))
        .collect()
}

fn launcher_of(d: &Daemon) -> i32 {
    let t0 = Instant::now();
    loop {
        if let [l] = launcher_children(d.pid())[..] {
            return l;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no single launcher under the daemon {}: {:?}",
            d.pid(),
            launcher_children(d.pid())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until the launcher has prepared `n` warm sandboxes.
fn wait_warm(launcher: i32, n: usize) -> Vec<i32> {
    let t0 = Instant::now();
    loop {
        let w = launcher_children(launcher);
        if w.len() >= n {
            return w;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the launcher prepared no warm sandbox"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until `pid` has exited (gone, or a zombie: its fds are closed either way).
fn wait_exited(pid: i32) {
    let t0 = Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
        if matches!(state, None | Some('Z') | Some('X')) {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "{pid} did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill with a pid we found under our own daemon.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

fn health(d: &Daemon) -> Vec<ServingStatus> {
    grpc::rt().block_on(async {
        let mut h = HealthClient::new(grpc::channel(&d.socket).await);
        let mut v = vec![];
        for service in ["", "nanobot.sandbox.v1.Sandbox"] {
            let r = h
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .map(|r| r.into_inner().status())
                .unwrap_or(ServingStatus::Unknown);
            v.push(r);
        }
        v
    })
}

fn wait_log(d: &Daemon, words: &str) {
    let t0 = Instant::now();
    while !d.log_text().contains(words) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no {words:?} in the log:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_launcher_is_reaped_and_replaced() {
    let d = Daemon::start();
    let o = d.nanobot(&[], "echo before");
    assert_eq!(stdout(&o), "before\n", "{}", stderr(&o));
    let old = launcher_of(&d);
    signal(old, libc::SIGKILL);
    // Reaped at once: no zombie left under the daemon.
    let t0 = Instant::now();
    while stat(old).is_some() {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "the killed launcher {old} was not reaped: {:?}",
            stat(old)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_log(&d, "the sandbox launcher died (signal 9); restarting it");
    // Every exec from now on either runs (the new launcher is up) or is UNAVAILABLE saying why,
    // never the old `Broken pipe` refusal.
    let t1 = Instant::now();
    loop {
        let o = d.nanobot(&[], "echo after");
        if o.status.success() {
            assert_eq!(stdout(&o), "after\n");
            break;
        }
        let e = stderr(&o);
        assert!(
            e.contains("the sandbox launcher died (signal 9); restarting it"),
            "exit {:?}: {e}",
            o.status.code()
        );
        assert!(t1.elapsed() < Duration::from_secs(10), "never restarted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let new = launcher_of(&d);
    assert_ne!(new, old);
    assert_eq!(health(&d), vec![ServingStatus::Serving; 2]);
    assert!(!d.log_text().contains("Broken pipe"), "{}", d.log_text());
    // The replacement is supervised too.
    signal(new, libc::SIGKILL);
    let t2 = Instant::now();
    while launcher_of(&d) == new {
        assert!(t2.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = d.nanobot(&[], "echo third");
    assert_eq!(stdout(&o), "third\n", "{}", stderr(&o));
    assert!(stat(new).is_none(), "zombie {new}");
}

#[test]
fn a_launcher_that_keeps_dying_makes_the_daemon_exit_non_zero() {
    let mut d = Daemon::start();
    let t0 = Instant::now();
    let mut killed = 0;
    // Kill every launcher as soon as it appears, until the daemon gives up.
    while d
        .child
        .as_mut()
        .and_then(|c| c.try_wait().ok())
        .flatten()
        .is_none()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the daemon kept restarting after {killed} deaths:\n{}",
            d.log_text()
        );
        if let [l] = launcher_children(d.pid())[..] {
            // SAFETY: a launcher under our own daemon; it may already be gone.
            if unsafe { libc::kill(l, libc::SIGKILL) } == 0 {
                killed += 1;
            }
            while stat(l).is_some_and(|(s, _)| s != 'Z') {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let st = d.child.as_mut().and_then(|c| c.wait().ok());
    assert!(st.is_some_and(|s| !s.success()), "{st:?}\n{}", d.log_text());
    let log = d.log_text();
    assert!(
        log.contains("sandboxd is exiting so systemd can restart it"),
        "{log}"
    );
    assert!(killed >= 2, "{killed}");
    // Nothing of it is left behind.
    assert!(launcher_children(d.pid()).is_empty());
}

/// The command every "given up" case tries to run, and where it would leave its mark.
fn marker_command(d: &Daemon, name: &str) -> (String, std::path::PathBuf) {
    (format!("touch {name}"), d.ws.join(name))
}

/// Run `touch` with a 1 s timeout (so the daemon's guard is 11 s) while `stuck` are stopped;
/// the client must come back refused within the bound, and the command must never run, even
/// after the stuck processes continue.
fn given_up_never_starts(d: &Daemon, stuck: &[i32], name: &str) {
    let (cmd, marker) = marker_command(d, name);
    for p in stuck {
        signal(*p, libc::SIGSTOP);
    }
    let t0 = Instant::now();
    let mut child = d
        .nanobot_cmd(&["--timeout", "1"], &cmd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(25) {
            for p in stuck {
                signal(*p, libc::SIGCONT);
            }
            let _ = child.kill();
            panic!("the client never returned:\n{}", d.log_text());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let o = child.wait_with_output().unwrap();
    for p in stuck {
        signal(*p, libc::SIGCONT);
    }
    assert_eq!(st.code(), Some(125), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("did not report in time"), "{e}");
    assert!(e.contains("will not run"), "{e}");
    assert!(d.log_text().contains("did not report in time"));
    // What the stuck processes had queued runs now, and must stop short of the command.
    std::thread::sleep(Duration::from_secs(3));
    assert!(!marker.exists(), "the refused command ran after SIGCONT");
    // Positive control: the same command runs once nothing is stuck.
    let o = d.nanobot(&["--timeout", "5"], &cmd);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(marker.exists(), "the control did not run");
}

#[test]
fn a_request_given_up_on_a_stopped_launcher_never_starts() {
    let d = Daemon::start();
    let l = launcher_of(&d);
    given_up_never_starts(&d, &[l], "marker-launcher");
}

#[test]
fn a_request_given_up_on_a_stopped_sandbox_init_never_starts() {
    let d = Daemon::start();
    let l = launcher_of(&d);
    let warm = wait_warm(l, 2);
    given_up_never_starts(&d, &warm, "marker-init");
}

/// Unmounts on drop (declared after the daemon, so it runs first).
struct Mounted(std::path::PathBuf);

impl Mounted {
    fn tmpfs(at: &Path) -> Mounted {
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=0755", "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", at.display());
        let (uid, gid) = test_ids();
        chown(at, uid, gid);
        Mounted(at.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_workspace_mounted_after_the_sandbox_was_prepared_still_runs() {
    if !is_root() {
        eprintln!("skipped: mounting needs root");
        return;
    }
    let d = Daemon::start();
    // The prepared sandboxes exist (their mount namespaces are copies from before the mount).
    wait_warm(launcher_of(&d), 2);
    let _m = Mounted::tmpfs(&d.ws);
    let o = d.nanobot(&[], "touch fresh && echo ok");
    assert_eq!(stdout(&o), "ok\n", "{}\n{}", stderr(&o), d.log_text());
    assert!(d.ws.join("fresh").exists(), "not written to the new mount");
    assert!(d.log_text().contains("retrying once from scratch"));
    // And the next one too (the stale prepared sandboxes were discarded).
    let o = d.nanobot(&[], "echo again");
    assert_eq!(stdout(&o), "again\n", "{}", stderr(&o));
}

#[test]
fn a_workspace_that_differs_every_time_is_refused_cleanly() {
    if !is_root() {
        eprintln!("skipped: mounting needs root");
        return;
    }
    let d = Daemon::start();
    let warm = wait_warm(launcher_of(&d), 2);
    // Cover the whole root: the daemon resolves workspaces through the root it opened at start
    // (the directory now hidden), every sandbox created from now on sees the tmpfs: never the
    // same directory. The prepared ones (from before the mount) go, so none sees the old one.
    let _m = Mounted::tmpfs(&d.root);
    for &w in &warm {
        signal(w, libc::SIGKILL);
    }
    // SIGKILL is delivered asynchronously: until they have exited, the launcher may still hand
    // the request to one of them, which then dies holding it (a different failure).
    for w in warm {
        wait_exited(w);
    }
    std::fs::create_dir(d.root.join("ws")).unwrap();
    let (uid, gid) = test_ids();
    chown(&d.root.join("ws"), uid, gid);
    let t0 = Instant::now();
    let o = d.nanobot(&[], "touch never");
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("changed while the sandbox was being set up"),
        "{}",
        stderr(&o)
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(!d.root.join("ws/never").exists());
    let log = d.log_text();
    assert_eq!(
        log.matches("retrying once from scratch").count(),
        1,
        "{log}"
    );
    assert!(log.contains("exec refused"), "{log}");
}

const SERVICES: [&str; 2] = ["", "nanobot.sandbox.v1.Sandbox"];

type Watch = tonic::Streaming<tonic_health::pb::HealthCheckResponse>;

/// Open a `grpc.health.v1.Health/Watch` stream for every service in `SERVICES`.
async fn watch_all(d: &Daemon) -> Vec<Watch> {
    let mut h = HealthClient::new(grpc::channel(&d.socket).await);
    let mut v = vec![];
    for service in SERVICES {
        let s = h
            .watch(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("watch")
            .into_inner();
        v.push(s);
    }
    v
}

/// The next status a watch stream reports (None: the stream ended), within 10 s.
async fn next_status(s: &mut Watch) -> Option<ServingStatus> {
    tokio::time::timeout(Duration::from_secs(10), s.message())
        .await
        .expect("no health status within 10 s")
        .ok()
        .flatten()
        .map(|r| r.status())
}

#[test]
fn health_watchers_see_not_serving_while_the_launcher_is_replaced() {
    let d = Daemon::start();
    let old = launcher_of(&d);
    grpc::rt().block_on(async {
        let mut streams = watch_all(&d).await;
        for s in &mut streams {
            assert_eq!(next_status(s).await, Some(ServingStatus::Serving));
        }
        signal(old, libc::SIGKILL);
        for (s, service) in streams.iter_mut().zip(SERVICES) {
            assert_eq!(
                next_status(s).await,
                Some(ServingStatus::NotServing),
                "service {service:?}"
            );
            assert_eq!(
                next_status(s).await,
                Some(ServingStatus::Serving),
                "service {service:?}"
            );
        }
    });
    wait_log(&d, "the sandbox launcher died (signal 9); restarting it");
    assert_ne!(launcher_of(&d), old);
    assert_eq!(health(&d), vec![ServingStatus::Serving; 2]);
    let o = d.nanobot(&[], "echo back");
    assert_eq!(stdout(&o), "back\n", "{}", stderr(&o));
}

#[test]
fn health_watchers_see_not_serving_when_the_daemon_gives_up() {
    let mut d = Daemon::start();
    let rt = grpc::rt();
    let mut streams = rt.block_on(watch_all(&d));
    for s in &mut streams {
        assert_eq!(rt.block_on(next_status(s)), Some(ServingStatus::Serving));
    }
    let t0 = Instant::now();
    // Kill every launcher as soon as it appears, until the daemon gives up.
    while d
        .child
        .as_mut()
        .and_then(|c| c.try_wait().ok())
        .flatten()
        .is_none()
    {
        assert!(t0.elapsed() < Duration::from_secs(20), "{}", d.log_text());
        if let [l] = launcher_children(d.pid())[..] {
            // SAFETY: a launcher under our own daemon; it may already be gone.
            unsafe { libc::kill(l, libc::SIGKILL) };
            while stat(l).is_some_and(|(s, _)| s != 'Z') {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let st = d.child.as_mut().and_then(|c| c.wait().ok());
    assert!(st.is_some_and(|s| !s.success()), "{st:?}");
    // What each watcher saw after the first SERVING: NOT_SERVING with every death, SERVING with
    // every restart, and NOT_SERVING last, before its connection closed.
    for (s, service) in streams.iter_mut().zip(SERVICES) {
        let mut seen = vec![];
        while let Some(x) = rt.block_on(next_status(s)) {
            seen.push(x);
        }
        assert_eq!(
            seen.last(),
            Some(&ServingStatus::NotServing),
            "service {service:?}: {seen:?}"
        );
        assert!(
            seen.iter()
                .filter(|x| **x == ServingStatus::NotServing)
                .count()
                >= 2,
            "service {service:?}: {seen:?}"
        );
    }
}

/// A command typed a while after the last one still finds a prepared sandbox: the launcher
/// replaces a prepared sandbox when it ages out (10 s), not when the next request finds it stale
/// and has to start one cold.
#[test]
fn after_a_pause_the_request_finds_a_sandbox_prepared_before_it_came() {
    if !is_root() {
        eprintln!("skipped: the daemon drops to the test user, which needs root");
        return;
    }
    let d = Daemon::start();
    let l = launcher_of(&d);
    let first = wait_warm(l, 2);
    std::thread::sleep(Duration::from_millis(11_500));
    let now = wait_warm(l, 2);
    assert!(
        now.iter().all(|p| !first.contains(p)),
        "the prepared sandboxes {first:?} aged out but were not replaced: {now:?}"
    );
    let o = d.nanobot(&["--json"], "true");
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let pid = v["pid"].as_i64().unwrap() as i32;
    assert!(
        now.contains(&pid),
        "the request ran in {pid}, not in one of the sandboxes prepared before it: {now:?}"
    );
}

//! The launcher's supervisor: a thread of the daemon that waits for the launcher process, reaps it
//! when it dies and starts a new one. The launcher needs nothing the dropped daemon lacks: it is
//! forked after the privilege drop and creates its sandboxes' user namespaces unprivileged, so a
//! replacement is the same as the first. Only a launcher that keeps dying (more than
//! `MAX_DEATHS` within `DEATH_WINDOW`), or one that cannot be started, makes the daemon give up:
//! it then exits non-zero, so that systemd (`Restart=on-failure`) starts it afresh.
//!
//! What the rest of the daemon sees is `Slot`: the launcher to use, or the sentence to answer
//! with (gRPC UNAVAILABLE) while there is none; `daemon` turns it into the health status.

use crate::confine::mounts::MountPlan;
use crate::launcher::Launcher;
use crate::policy::WarmShape;
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// More deaths than this within `DEATH_WINDOW` and the daemon gives up.
pub const MAX_DEATHS: usize = 5;
pub const DEATH_WINDOW: Duration = Duration::from_secs(60);

/// The launcher as requests see it.
#[derive(Clone)]
pub enum Slot {
    Up(Arc<Launcher>),
    /// It died and a new one is being started; the message says so.
    Restarting(String),
    /// It died and none will be started: the daemon is exiting.
    Failed(String),
}

pub struct Supervisor {
    slot: watch::Sender<Slot>,
    shape: WarmShape,
    /// How many times the health status has been set NOT_SERVING for a dead launcher
    /// (`published_down`); a restart waits for it, so that the window without a launcher is
    /// recorded even when the replacement is up a millisecond later.
    down_published: std::sync::Mutex<u64>,
    down_cv: std::sync::Condvar,
}

/// How long a restart waits for the health status to say NOT_SERVING before going on anyway.
const PUBLISH_WAIT: Duration = Duration::from_secs(1);

impl Supervisor {
    /// Supervise `first`, started with `shape` (replacements get the same shape, so a spec made
    /// for one launcher's prepared sandboxes fits the next).
    pub fn new(first: Launcher, shape: WarmShape) -> Arc<Supervisor> {
        Arc::new(Supervisor {
            slot: watch::Sender::new(Slot::Up(Arc::new(first))),
            shape,
            down_published: std::sync::Mutex::new(0),
            down_cv: std::sync::Condvar::new(),
        })
    }

    /// Start the supervising thread. It lives as long as the daemon: a launcher's parent-death
    /// signal follows the thread that forked it.
    pub fn spawn(self: &Arc<Self>) -> io::Result<()> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("launcher-supervisor".into())
            .spawn(move || me.run())
            .map(drop)
    }

    /// The launcher to hand a request to, or why there is none.
    pub fn current(&self) -> Result<Arc<Launcher>, String> {
        match &*self.slot.borrow() {
            Slot::Up(l) => Ok(l.clone()),
            Slot::Restarting(m) | Slot::Failed(m) => Err(m.clone()),
        }
    }

    /// The mount plan every launcher's sandboxes are prepared with.
    pub fn warm_mounts(&self) -> &MountPlan {
        &self.shape.mounts
    }

    pub fn subscribe(&self) -> watch::Receiver<Slot> {
        self.slot.subscribe()
    }

    /// The health status now says NOT_SERVING for the launcher's absence.
    pub fn published_down(&self) {
        let mut n = self
            .down_published
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *n += 1;
        self.down_cv.notify_all();
    }

    fn down_count(&self) -> u64 {
        *self
            .down_published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Wait (at most `PUBLISH_WAIT`) until `published_down` has been called more than `seen` times.
    fn wait_published(&self, seen: u64) {
        let guard = self
            .down_published
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (_g, t) = self
            .down_cv
            .wait_timeout_while(guard, PUBLISH_WAIT, |n| *n <= seen)
            .unwrap_or_else(|e| e.into_inner());
        if t.timed_out() {
            tracing::warn!(
                "the health status did not turn NOT_SERVING within {} ms; restarting the launcher anyway",
                PUBLISH_WAIT.as_millis()
            );
        }
    }

    /// After a request lost launcher `pid` (its socket broke): wait, briefly, until the
    /// supervisor has seen it die, and return the launcher now in place, or why there is none.
    /// None: `pid` is still the launcher (the failure was something else).
    pub async fn after_loss(&self, pid: libc::pid_t) -> Option<Result<Arc<Launcher>, String>> {
        let mut rx = self.slot.subscribe();
        let moved = |s: &Slot| !matches!(s, Slot::Up(l) if l.pid == pid);
        // Reaping takes microseconds; a restart a few milliseconds.
        let seen = tokio::time::timeout(Duration::from_millis(500), rx.wait_for(moved))
            .await
            .is_ok_and(|r| r.is_ok());
        if !seen {
            return None;
        }
        let settled = |s: &Slot| !matches!(s, Slot::Restarting(_));
        let _ = tokio::time::timeout(Duration::from_secs(2), rx.wait_for(settled)).await;
        Some(self.current())
    }

    fn run(&self) {
        let mut deaths: VecDeque<Instant> = VecDeque::new();
        loop {
            let pid = match &*self.slot.borrow() {
                Slot::Up(l) => l.pid,
                _ => return,
            };
            let why = wait_for_death(pid);
            let now = Instant::now();
            deaths.push_back(now);
            while deaths
                .front()
                .is_some_and(|t| now.duration_since(*t) > DEATH_WINDOW)
            {
                deaths.pop_front();
            }
            if deaths.len() > MAX_DEATHS {
                let msg = format!(
                    "the sandbox launcher died ({why}); sandboxd is exiting so systemd can restart it"
                );
                tracing::error!(
                    launcher_pid = pid,
                    deaths = deaths.len(),
                    window_secs = DEATH_WINDOW.as_secs(),
                    "{msg}: it died {} times within {} s",
                    deaths.len(),
                    DEATH_WINDOW.as_secs()
                );
                self.slot.send_replace(Slot::Failed(msg));
                return;
            }
            let msg = format!("the sandbox launcher died ({why}); restarting it");
            tracing::error!(launcher_pid = pid, "{msg}");
            let seen = self.down_count();
            self.slot.send_replace(Slot::Restarting(msg));
            // Health watchers see NOT_SERVING before the replacement makes it SERVING again.
            self.wait_published(seen);
            match Launcher::start(&self.shape) {
                Ok(l) => {
                    tracing::info!(
                        launcher_pid = l.pid,
                        "sandbox launcher restarted; serving again"
                    );
                    self.slot.send_replace(Slot::Up(Arc::new(l)));
                }
                Err(e) => {
                    let msg = format!(
                        "the sandbox launcher died ({why}) and could not be started again ({e}); sandboxd is exiting so systemd can restart it"
                    );
                    tracing::error!(launcher_pid = pid, "{msg}");
                    self.slot.send_replace(Slot::Failed(msg));
                    return;
                }
            }
        }
    }
}

/// Block until child `pid` has ended, reap it, and say how it ended.
fn wait_for_death(pid: libc::pid_t) -> String {
    loop {
        let mut st = 0;
        // SAFETY: waitpid on our own child with a pointer to a local; any thread of the process
        // may wait for a child another thread forked.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r == pid {
            return how_it_ended(st);
        }
        let e = io::Error::last_os_error();
        if r < 0 && e.raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        // ECHILD: someone else reaped it; it is gone all the same.
        return format!("its exit status is unknown: {e}");
    }
}

/// A wait status in words: "signal 9", "exit status 1".
pub fn how_it_ended(st: libc::c_int) -> String {
    if libc::WIFSIGNALED(st) {
        format!("signal {}", libc::WTERMSIG(st))
    } else if libc::WIFEXITED(st) {
        format!("exit status {}", libc::WEXITSTATUS(st))
    } else {
        format!("wait status {st:#x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn how_a_launcher_ended_reads_as_words() {
        assert_eq!(how_it_ended(libc::SIGKILL), "signal 9");
        assert_eq!(how_it_ended(1 << 8), "exit status 1");
        assert_eq!(how_it_ended(0), "exit status 0");
    }
}

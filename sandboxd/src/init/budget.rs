//! The sandbox's write budget (`SandboxSpec::write_budget_bytes`, chosen by `disk.rs` where the
//! workspace's filesystem holds no ceiling): the bytes its processes wrote to storage, as the
//! kernel accounts them (`write_bytes` in `/proc/PID/io`: pages dirtied in page cache, counted
//! when written, not when flushed; tmpfs, pipes and sockets do not count, the private /tmp has its
//! own size). `supervise` samples the sum over the sandbox's own /proc (its PID namespace) while
//! the command runs and kills the sandbox when it is over.
//!
//! A process's `io` includes every child it reaped (the kernel adds a reaped child's counters to
//! its parent's), and the init reaps every orphan: the sandbox's total is the sum over its live
//! (and zombie) processes plus what the init reaped. The init reads the latter from its own
//! `getrusage(RUSAGE_CHILDREN).ru_oublock` (the same counter in 512-byte units): its own
//! `/proc/1/io` is closed to it, since it is not dumpable. A child reaped between reading it and
//! reading its parent can be counted twice in one sample: the budget errs towards killing early,
//! never towards letting more through. A process whose counters are closed to the init (it is not
//! dumpable: for an instant while it execs, or for good once it asks `PR_SET_DUMPABLE 0`) is
//! left out of a sample (new and exiting processes of a fork storm are, too); the same process
//! closed in `STRIKES` samples in a row makes the budget fail closed and kill the sandbox. A
//! zombie's counters are always closed (the kernel gives a process without memory to root): it
//! counts with what it had written when last read alive, until its parent reaps it and has its
//! counters. What a process writes after its last sample and before it exits is therefore not
//! counted while it stays an unreaped zombie (at most `limits.processes` of them).

use std::io;
use std::path::Path;
use std::time::Duration;

/// How often the sum is sampled; faster once half the budget is used.
pub(super) const SAMPLE: Duration = Duration::from_millis(50);
pub(super) const SAMPLE_NEAR: Duration = Duration::from_millis(10);
/// Samples in a row in which one process's counters are closed before the budget fails closed.
pub(super) const STRIKES: u32 = 5;

pub(super) struct Budget {
    limit: u64,
    /// The init's own count before the command started (the budget is the command's).
    base: u64,
    /// The last sample, for the cadence.
    last: u64,
    /// Why the counters could not be read, when they could not (the sandbox was killed for it).
    pub(super) unreadable: Option<String>,
    /// The processes whose counters were closed in the last sample, with how many samples in a
    /// row they have been.
    strikes: Vec<(u32, u32)>,
    /// Every process's counter as last read, for when it is a zombie.
    seen: std::collections::HashMap<u32, u64>,
}

impl Budget {
    /// The budget for `limit` bytes (None for 0: the filesystem holds the ceiling). Read once the
    /// init is in the sandbox's root, whose /proc is the sandbox's PID namespace.
    pub(super) fn new(limit: u64) -> Option<Budget> {
        (limit > 0).then(|| Budget {
            limit,
            base: own_written(),
            last: 0,
            unreadable: None,
            strikes: vec![],
            seen: Default::default(),
        })
    }

    /// How long until the next sample.
    pub(super) fn interval(&self) -> Duration {
        if self.last.saturating_mul(2) >= self.limit {
            SAMPLE_NEAR
        } else {
            SAMPLE
        }
    }

    /// The bytes written so far, summed over every process of the sandbox, and whether that is
    /// over the budget. A process whose counters cannot be read (other than by having exited)
    /// fails closed: it counts as over.
    pub(super) fn sample(&mut self) -> (u64, bool) {
        match sum_written(Path::new("/proc"), &mut self.seen) {
            Ok((live, closed)) => {
                let total = live.saturating_add(own_written());
                self.last = total.saturating_sub(self.base);
                let before = std::mem::take(&mut self.strikes);
                for (pid, why) in closed {
                    let n = before.iter().find(|(p, _)| *p == pid).map_or(0, |s| s.1) + 1;
                    if n >= STRIKES {
                        self.unreadable = Some(why);
                        return (self.last, true);
                    }
                    self.strikes.push((pid, n));
                }
                (self.last, self.last > self.limit)
            }
            Err(e) => {
                self.unreadable = Some(e.to_string());
                (self.last, true)
            }
        }
    }

    /// The final count once every process is reaped (the init's own counters hold them all).
    pub(super) fn finish(&mut self) -> (u64, bool) {
        let total = own_written().saturating_sub(self.base).max(self.last);
        self.last = total;
        (total, total > self.limit)
    }
}

/// What the processes the init reaped wrote (with everything they reaped in turn).
fn own_written() -> u64 {
    // SAFETY: rusage is a C struct of integers and timevals: all-zero bytes are a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage into `ru`, a local alive for the call.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return 0;
    }
    (ru.ru_oublock.max(0) as u64).saturating_mul(512)
}

/// The `write_bytes` line of a `/proc/PID/io`.
fn write_bytes(io: &str) -> Option<u64> {
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// `write_bytes` summed over every process in `proc` but the caller (whose reaped children
/// `own_written` counts). Processes that exit while it is read are skipped (their parent's
/// counters get them); processes whose counters are closed (EACCES) are left out and returned
/// (pid, why); any other failure is an error.
fn sum_written(
    proc: &Path,
    seen: &mut std::collections::HashMap<u32, u64>,
) -> io::Result<(u64, Vec<(u32, String)>)> {
    let mut closed = vec![];
    let me = std::process::id().to_string();
    let mut total = 0u64;
    let list = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", proc.display()));
    for e in std::fs::read_dir(proc).map_err(list)? {
        let e = e.map_err(list)?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        let Ok(pid) = name.parse::<u32>() else {
            continue;
        };
        let path = e.path().join("io");
        match std::fs::read_to_string(&path) {
            Ok(s) => {
                let v = write_bytes(&s).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "no write_bytes in io")
                })?;
                seen.insert(pid, v);
                total = total.saturating_add(v);
            }
            Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => {}
            Err(err) if matches!(err.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {
                if zombie(&e.path()) {
                    total = total.saturating_add(seen.get(&pid).copied().unwrap_or(0));
                } else {
                    closed.push((pid, format!("{}: {err}", path.display())));
                }
            }
            Err(err) => {
                return Err(io::Error::new(
                    err.kind(),
                    format!("{}: {err}", path.display()),
                ))
            }
        }
    }
    Ok((total, closed))
}

/// Whether the process of a `/proc/PID` directory is a zombie (`stat` is open to all).
fn zombie(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_bytes_is_read_from_an_io_file() {
        let io = "rchar: 6976\nwchar: 12\nsyscr: 10\nsyscw: 1\nread_bytes: 0\nwrite_bytes: 4096\ncancelled_write_bytes: 0\n";
        assert_eq!(write_bytes(io), Some(4096));
        assert_eq!(write_bytes("rchar: 1\n"), None);
    }

    #[test]
    fn a_fake_proc_is_summed_and_gone_processes_are_skipped() {
        let d = std::env::temp_dir().join(format!("nanobot-budget-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        for (pid, wb) in [("1", 100u64), ("42", 4096)] {
            std::fs::create_dir_all(d.join(pid)).unwrap();
            std::fs::write(d.join(pid).join("io"), format!("write_bytes: {wb}\n")).unwrap();
        }
        // A process that exited between readdir and open: its directory has no io.
        std::fs::create_dir_all(d.join("77")).unwrap();
        std::fs::create_dir_all(d.join("self")).unwrap();
        std::fs::write(d.join("uptime"), "1").unwrap();
        let mut seen = Default::default();
        assert_eq!(sum_written(&d, &mut seen).unwrap(), (4196, vec![]));
        assert_eq!(seen.get(&42), Some(&4096));
        std::fs::write(d.join("1").join("stat"), "1 (a) b) Z 0\n").unwrap();
        assert!(zombie(&d.join("1")));
        std::fs::write(d.join("1").join("stat"), "1 (a) S 0\n").unwrap();
        assert!(!zombie(&d.join("1")));
        std::fs::write(d.join("42").join("io"), "garbage\n").unwrap();
        assert!(sum_written(&d, &mut seen).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_cadence_quickens_past_half_the_budget() {
        let mut b = Budget {
            limit: 100,
            base: 0,
            last: 10,
            unreadable: None,
            strikes: vec![],
            seen: Default::default(),
        };
        assert_eq!(b.interval(), SAMPLE);
        b.last = 50;
        assert_eq!(b.interval(), SAMPLE_NEAR);
        assert!(Budget::new(0).is_none());
    }
}

//! PID 1's watch over the command: SIGCHLD through a signalfd, the deadline, the daemon's end of
//! the status socket; then every process of the namespace killed and reaped, with its usage.

use super::budget::Budget;
use crate::step::{check, StepError};
use crate::vocab::Layer;
use crate::wire::Report;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

/// Block SIGCHLD (before the fork, so no exit is missed) and return a signalfd reporting it.
pub(super) fn sigchld_fd() -> Result<OwnedFd, StepError> {
    // SAFETY: `set` is a local sigset_t (all-zero bytes are a valid value for this plain C
    // struct, and sigemptyset initialises it anyway); sigemptyset/sigaddset write only into it,
    // sigprocmask and signalfd only read it, all while it is alive; the old mask is not asked
    // for (null).
    let sigfd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        check(
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()),
            Layer::Launcher,
            "sigprocmask",
        )?;
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        check(fd, Layer::Launcher, "signalfd")?;
        OwnedFd::from_raw_fd(fd)
    };
    Ok(sigfd)
}

/// Wait for the command until it exits, the deadline passes, the sandbox goes over its write
/// budget or the daemon closes (or writes on) the status socket; then kill everything left in
/// the namespace, reap it all and say how the command ended.
pub(super) fn supervise(
    status: &File,
    sigfd: &OwnedFd,
    child: libc::pid_t,
    deadline: Instant,
    mut acc: ReapedUsage,
    mut budget: Option<Budget>,
) -> Report {
    let mut timed_out = false;
    let mut disk_over = false;
    let mut cmd_status: Option<libc::c_int> = None;
    // The first sample waits one interval: a command that ends sooner (most do) costs no walk
    // of /proc, and what it wrote is counted from its rusage when it is reaped (`finish`).
    let mut next_sample = budget.as_ref().map(|b| Instant::now() + b.interval());
    while cmd_status.is_none() {
        if let (Some(b), Some(due)) = (budget.as_mut(), next_sample.as_mut()) {
            if Instant::now() >= *due {
                if b.sample().1 {
                    disk_over = true;
                    break;
                }
                *due = Instant::now() + b.interval();
            }
        }
        let mut left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            timed_out = true;
            break;
        }
        if let Some(due) = next_sample {
            left = left.min(due.saturating_duration_since(Instant::now()));
        }
        let mut pfd = [
            libc::pollfd {
                fd: status.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sigfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: poll reads and writes exactly `2` pollfd entries starting at `pfd`, a local
        // array of two that outlives the call; the fds in it are open (owned by this function).
        let n = unsafe { libc::poll(pfd.as_mut_ptr(), 2, ms.max(1)) };
        if n < 0 {
            continue; // EINTR
        }
        if pfd[0].revents != 0 {
            // The daemon closed the socket (client gone, shutdown) or wrote: either way, stop.
            break;
        }
        if pfd[1].revents != 0 {
            drain_signalfd(sigfd);
            reap_nohang(child, &mut cmd_status, &mut acc);
        }
    }
    // Nothing the command left behind survives it: kill every other process of the namespace.
    // SAFETY: kill(-1) from PID 1 of the namespace reaches only processes inside it.
    unsafe { libc::kill(-1, libc::SIGKILL) };
    if cmd_status.is_none() {
        let mut st = 0;
        // SAFETY: rusage is a C struct of integers and timevals: all-zero bytes are a valid value.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waiting for our own child; wait4 writes one c_int into `st` and one rusage
        // into `ru`, both locals alive for the call.
        if unsafe { libc::wait4(child, &mut st, 0, &mut ru) } == child {
            acc.add(&ru);
            cmd_status = Some(st);
        }
    }
    reap_all(&mut acc);
    let (code, signal) = exit_of(cmd_status.unwrap_or(libc::SIGKILL));
    // Everything is reaped: the init's own counters hold every process's writes.
    let (written_bytes, over_at_end) = budget.as_mut().map_or((0, false), Budget::finish);
    Report::Exited {
        code,
        signal,
        timed_out,
        maxrss_kb: acc.maxrss_kb,
        cpu_us: acc.cpu_us,
        disk_over: disk_over || over_at_end,
        written_bytes,
        disk_unreadable: budget.and_then(|b| b.unreadable),
    }
}

/// A wait status as (exit code, signal): (code, 0) for an exit, (-1, signal) for a kill.
fn exit_of(st: libc::c_int) -> (i32, i32) {
    if libc::WIFEXITED(st) {
        (libc::WEXITSTATUS(st), 0)
    } else if libc::WIFSIGNALED(st) {
        (-1, libc::WTERMSIG(st))
    } else {
        (-1, libc::SIGKILL)
    }
}

/// Resource usage summed over every process reaped.
#[derive(Default)]
pub(super) struct ReapedUsage {
    maxrss_kb: u64,
    cpu_us: u64,
}

impl ReapedUsage {
    fn add(&mut self, ru: &libc::rusage) {
        let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        self.maxrss_kb = self.maxrss_kb.max(ru.ru_maxrss.max(0) as u64);
        self.cpu_us += us(ru.ru_utime) + us(ru.ru_stime);
    }
}

fn drain_signalfd(fd: &OwnedFd) {
    let mut buf = [0u8; 128 * 8];
    // SAFETY: `fd` is borrowed from the caller's OwnedFd (the init's signalfd), open through the
    // loop and not closed here; read writes at most `buf.len()` bytes into `buf`, a local array
    // alive through every call.
    while unsafe {
        libc::read(
            fd.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
        )
    } > 0
    {}
}

fn reap_nohang(child: libc::pid_t, cmd: &mut Option<libc::c_int>, acc: &mut ReapedUsage) {
    loop {
        let mut st = 0;
        // SAFETY: rusage is a C struct of integers and timevals (integers): all-zero bytes are
        // a valid value; wait4 overwrites it.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 writes one c_int into `st` and one rusage into `ru`, both locals alive
        // for the call; reaping any child (-1) is what PID 1 of the sandbox is for.
        let pid = unsafe { libc::wait4(-1, &mut st, libc::WNOHANG, &mut ru) };
        if pid <= 0 {
            return;
        }
        acc.add(&ru);
        if pid == child {
            *cmd = Some(st);
        }
    }
}

/// Reap every child left, blocking until there is none.
pub(super) fn reap_all(acc: &mut ReapedUsage) {
    loop {
        let mut st = 0;
        // SAFETY: rusage is a C struct of integers and timevals (integers): all-zero bytes are
        // a valid value; wait4 overwrites it.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 writes one c_int into `st` and one rusage into `ru`, both locals alive
        // for the call; reaping any child (-1) is what PID 1 of the sandbox is for.
        let pid = unsafe { libc::wait4(-1, &mut st, 0, &mut ru) };
        if pid > 0 {
            acc.add(&ru);
            continue;
        }
        if pid < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_read_as_code_or_signal() {
        // Exit 3: status 3 << 8. Killed by SIGTERM: the signal in the low bits.
        assert_eq!(exit_of(3 << 8), (3, 0));
        assert_eq!(exit_of(0), (0, 0));
        assert_eq!(exit_of(libc::SIGTERM), (-1, libc::SIGTERM));
        // The fallback when the command could not be waited for.
        assert_eq!(exit_of(libc::SIGKILL), (-1, libc::SIGKILL));
        // Stopped (0x7f in the low byte) is neither: reported as killed.
        assert_eq!(exit_of((libc::SIGSTOP << 8) | 0x7f), (-1, libc::SIGKILL));
    }

    #[test]
    fn usage_keeps_the_peak_rss_and_sums_cpu() {
        let ru = |rss: libc::c_long, user_us: i64, sys_us: i64| {
            // SAFETY: rusage is plain integers and timevals; all-zero is a valid value.
            let mut r: libc::rusage = unsafe { std::mem::zeroed() };
            r.ru_maxrss = rss;
            r.ru_utime.tv_sec = user_us / 1_000_000;
            r.ru_utime.tv_usec = user_us % 1_000_000;
            r.ru_stime.tv_usec = sys_us;
            r
        };
        let mut u = ReapedUsage::default();
        u.add(&ru(100, 1_500_000, 20));
        u.add(&ru(50, 5, 5));
        assert_eq!(u.maxrss_kb, 100);
        assert_eq!(u.cpu_us, 1_500_030);
    }
}

//! The launcher: a single-threaded process forked from the daemon before its tokio runtime exists.
//! The multi-threaded daemon never forks a sandbox itself (only async-signal-safe work is allowed
//! after fork in a threaded process, and building Landlock rules allocates); it hands the launcher
//! four fds per exec and the launcher clones the sandbox init into fresh namespaces.

use crate::handover::{self, ExecFds, CLONE_FLAGS, FDS_PER_EXEC};
use crate::init;
use crate::policy::WarmShape;
use crate::vocab::Layer;
use crate::wire::{self, Report};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

/// The environment variable carrying the warm shape (JSON) to the launcher.
pub const WARM_ENV: &str = "SANDBOXD_WARM";

/// Where the launcher finds its end of the control socket.
pub const LAUNCHER_FD: RawFd = 3;

/// Whether fd 3 is open and a socket, as `Launcher::start` leaves it: `main` checks this before
/// handing fd 3 to [`launcher_entry`], so `sandboxd __launcher` typed by hand cannot make the
/// launcher take over some other file.
pub fn control_socket_present() -> bool {
    // SAFETY: `stat` is a C struct of integers only, so all-zero bytes are a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one stat into `st`, a local that lives through the call, and reads no
    // memory of ours; fd 3 is only inspected (a closed fd gives EBADF), not taken or closed.
    let r = unsafe { libc::fstat(LAUNCHER_FD, &mut st) };
    r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFSOCK
}

/// Entry point of the launcher image (`sandboxd __launcher PARENT_PID`), called by `main` before
/// anything else.
///
/// # Safety
/// The caller must be the process `Launcher::start` exec'd, calling this first thing:
/// - single-threaded, and staying so: the launcher clones sandbox inits with a fork-like raw
///   clone, and each init later starts its command with CLONE_VM|CLONE_VFORK, a child that
///   allocates in memory it shares with us; another thread could hold the allocator's lock or
///   change that memory under it;
/// - fd 3 ([`LAUNCHER_FD`]) is the launcher's end of the control socket, placed by
///   `Launcher::start`, open, and owned by nothing else in this process: it is taken over here
///   and closed when the launcher ends.
pub unsafe fn launcher_entry(parent: &str, warm: &str) -> ! {
    let parent: libc::pid_t = parent.parse().unwrap_or(0);
    // SAFETY: per this function's contract fd 3 is open and no other owner exists, so this
    // OwnedFd is its only owner and closing it on drop closes nothing else's fd.
    let sock = unsafe { OwnedFd::from_raw_fd(LAUNCHER_FD) };
    // Unreadable: nothing is prepared ahead beyond namespaces and mounts; requests still work.
    let warm: Option<WarmShape> = serde_json::from_str(warm).ok();
    // SAFETY: single-threaded per this function's contract, which is what launcher_main needs.
    unsafe { launcher_main(sock, parent, warm) }
}

/// A warm sandbox older than this is discarded rather than used: its mount namespace is a copy
/// of the host's from when it was made, and the host may have mounted or replaced paths since.
const WARM_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a warm sandbox of this age may still take a request (the warm-reuse rule on age; the
/// init decides on its own whether its root and ruleset fit the request: `init::rules`).
fn usable(age: std::time::Duration) -> bool {
    age < WARM_MAX_AGE
}

/// How long after the last request (or the start) the pool is kept fresh: an aged-out sandbox is
/// replaced when it ages out instead of when the next request finds it stale, so a command typed
/// a minute after the last one still finds a prepared sandbox. Past this, the launcher sleeps
/// until a request comes (that one starts cold), so an idle daemon does no work.
const KEEP_WARM_IDLE: std::time::Duration = std::time::Duration::from_secs(600);

/// How long the launcher may wait for a request before it must replace its oldest prepared
/// sandbox: `None` to wait without limit (no sandbox to keep fresh, or idle for longer than
/// `KEEP_WARM_IDLE`). `oldest`: the age of the oldest prepared sandbox; `idle`: the time since
/// the last request or the start.
fn refresh_in(
    oldest: Option<std::time::Duration>,
    idle: std::time::Duration,
) -> Option<std::time::Duration> {
    let oldest = oldest?;
    if idle >= KEEP_WARM_IDLE {
        return None;
    }
    Some(WARM_MAX_AGE.saturating_sub(oldest))
}

/// Wait until `fd` is readable or `limit` passes (`None`: no limit): true when readable (or in
/// error, which the read then reports); false when the limit passed or a signal interrupted.
fn wait_readable(fd: RawFd, limit: Option<std::time::Duration>) -> bool {
    let ms = limit.map_or(-1, |d| {
        // Round up: a wake-up a little before the sandbox ages out would find nothing to do.
        d.as_millis().saturating_add(1).min(i32::MAX as u128) as libc::c_int
    });
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd on our stack, valid for the call.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    n > 0 || (n < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
}

/// Sandboxes kept prepared. Building a root from a profile takes longer than a short command's
/// round trip, so with one, back-to-back requests would wait for it; with two, one is always
/// ready while the next is being built.
const WARM_POOL: usize = 2;

pub struct Launcher {
    sock: Mutex<OwnedFd>,
    pub pid: libc::pid_t,
    /// The mount plan the launcher's sandboxes were prepared with: a spec with the same plan
    /// says so instead of carrying it (`SandboxSpec::mounts_warm`).
    pub warm_mounts: crate::confine::mounts::MountPlan,
}

impl Launcher {
    /// Fork and re-execute the launcher. Safe in a multi-threaded process (the supervisor starts
    /// a replacement from its own thread, `supervisor.rs`): between fork and execve the child only
    /// makes async-signal-safe calls on memory prepared before the fork. The forking thread must
    /// live as long as the launcher should: the launcher's parent-death signal follows it.
    pub fn start(shape: &WarmShape) -> io::Result<Launcher> {
        let warm = serde_json::to_string(shape).map_err(io::Error::other)?;
        let warm =
            std::ffi::CString::new(format!("{WARM_ENV}={warm}")).map_err(io::Error::other)?;
        let (ours, theirs) = handover::seqpacket_pair()?;
        let theirs_fd = theirs.as_raw_fd();
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        let exe = c"/proc/self/exe";
        let arg0 = c"sandboxd-launcher";
        let arg1 = c"__launcher";
        let ppid = std::ffi::CString::new(parent.to_string()).map_err(io::Error::other)?;
        let argv = [
            arg0.as_ptr(),
            arg1.as_ptr(),
            ppid.as_ptr(),
            std::ptr::null(),
        ];
        // Only the warm shape; /proc/PID/environ is closed to the sandbox (its init is not
        // dumpable), while /proc/PID/cmdline is not.
        let envp = [warm.as_ptr(), std::ptr::null()];
        // SAFETY: fork is sound in a multi-threaded process as long as the child makes only
        // async-signal-safe calls before execve, which is all it does below.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            // SAFETY: in the child of the fork: fcntl, dup2, close_range, execve and _exit are
            // async-signal-safe, and argv/envp point into memory prepared before the fork.
            0 => unsafe {
                // A fresh image: the sandbox inits cloned from it carry neither the daemon's
                // command line nor its environment. Our end is close-on-exec; when it already
                // is fd 3, dup2 would keep that flag, so clear it instead.
                let placed = if theirs_fd == LAUNCHER_FD {
                    libc::fcntl(LAUNCHER_FD, libc::F_SETFD, 0)
                } else {
                    libc::dup2(theirs_fd, LAUNCHER_FD)
                };
                if placed < 0 {
                    libc::_exit(126);
                }
                libc::syscall(
                    libc::SYS_close_range,
                    (LAUNCHER_FD + 1) as u32,
                    u32::MAX,
                    0u32,
                );
                libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127)
            },
            pid => {
                drop(theirs);
                Ok(Launcher {
                    sock: Mutex::new(ours),
                    pid,
                    warm_mounts: shape.mounts.clone(),
                })
            }
        }
    }

    /// Ask for a sandbox: any (`handover::TAG_ANY`), or one created now (`TAG_COLD`). `fds.status`
    /// is the sandbox's end of the status socket.
    pub fn launch(&self, fds: &handover::ExecFdsRef<'_>, tag: u8) -> io::Result<()> {
        let sock = self
            .sock
            .lock()
            .map_err(|_| io::Error::other("launcher lock poisoned"))?;
        handover::send_exec(sock.as_raw_fd(), fds, tag)
    }
}

/// The launcher's loop: keep warm sandboxes, hand each request's fds to one, or clone a cold one.
///
/// # Safety
/// The process must be single-threaded and stay so (see [`launcher_entry`]): it clones sandbox
/// inits (`clone_init`).
unsafe fn launcher_main(sock: OwnedFd, parent: libc::pid_t, shape: Option<WarmShape>) -> ! {
    // SAFETY: prctl/signal calls with constant arguments in a single-threaded child.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != parent {
            libc::_exit(0);
        }
        // Start from default dispositions (whatever started the daemon may have ignored some),
        // so a sandboxed command only needs the few set below reset: see `CHANGED_SIGNALS`.
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        // Sandbox inits report their own results; auto-reap them so none lingers as a zombie.
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        // Nobody may read this process's memory or environment through /proc.
        libc::prctl(libc::PR_SET_DUMPABLE, 0);
    }
    // Compiled once here; every sandbox is a copy of this process and finds them ready.
    crate::confine::seccomp::prebuild();
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let sock_fd = sock.as_raw_fd();
    let mut warm: std::collections::VecDeque<Warm> = std::collections::VecDeque::new();
    let mut last_request = std::time::Instant::now();
    loop {
        // Prepare the next sandboxes while idle (namespaces, maps, the profile's root, Landlock),
        // so a request only pays for what depends on it. If this fails, the request below starts
        // cold and reports why.
        while warm.len() < WARM_POOL {
            // SAFETY: this process is single-threaded (this function's contract).
            match unsafe { Warm::start(sock_fd, uid, gid, shape.as_ref()) } {
                Some(w) => warm.push_back(w),
                None => break,
            }
        }
        let oldest = warm.front().map(|w| w.born.elapsed());
        if !wait_readable(sock_fd, refresh_in(oldest, last_request.elapsed())) {
            // Aged out with no request: replace it now, while nobody waits (the loop refills).
            while warm.front().is_some_and(|w| !usable(w.born.elapsed())) {
                warm.pop_front();
            }
            continue;
        }
        let (tag, fds) = match handover::recv_batch(sock_fd) {
            Ok(Some(batch)) => batch,
            Ok(None) => break,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(_) => break,
        };
        if fds.len() != FDS_PER_EXEC {
            continue;
        }
        last_request = std::time::Instant::now();
        // A prepared sandbox was stale for this request: so are all of ours (as old or older).
        if tag == handover::TAG_COLD {
            warm.clear();
        }
        // The oldest first (the most likely to be ready); stale ones are dropped (their inits
        // exit when their control socket closes).
        while warm.front().is_some_and(|w| !usable(w.born.elapsed())) {
            warm.pop_front();
        }
        if let Some(w) = warm.pop_front() {
            if handover::forward(w.ctl.as_raw_fd(), &fds).is_ok() {
                continue; // our copies close here; the sandbox holds its own
            }
            // The warm sandbox died (killed from outside): start this one cold.
        }
        let Some(fds) = ExecFds::from_batch(fds) else {
            continue;
        };
        // SAFETY: this process is single-threaded (this function's contract), so the cloned
        // child is a single-threaded fresh copy of it, as init_main requires.
        match unsafe { clone_init(sock_fd, None) } {
            // SAFETY: in the child clone_init just made: single-threaded, and the fds in `fds`
            // are its own copies, owned by `fds` alone.
            Ok(0) => unsafe { init::init_main(fds, uid, gid, shape.as_ref()) },
            Ok(_) => {}
            Err(errno) => {
                let report = Report::Failed {
                    layer: Layer::Namespaces,
                    step: "clone(CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWIPC)".into(),
                    errno,
                    message: crate::host::namespace_hint(errno),
                };
                let mut f = std::fs::File::from(fds.status);
                let _ = wire::write_frame(&mut f, &report);
            }
        }
        // Our copies of the fds are dropped here; the sandbox holds its own.
    }
    // SAFETY: _exit ends the launcher without unwinding or running destructors, so no Rust
    // invariant is left half-kept; it is reached once the daemon's socket is closed, and the
    // sandboxes it cloned are processes of their own holding their own copies of their fds, so
    // nothing they need lives in this one.
    unsafe { libc::_exit(0) }
}

/// A sandbox init cloned ahead of time, waiting on `ctl` for a request's fds.
struct Warm {
    ctl: OwnedFd,
    born: std::time::Instant,
}

impl Warm {
    /// Clone a warm init, or None when the kernel refuses.
    ///
    /// # Safety
    /// The process must be single-threaded (see `clone_init`).
    unsafe fn start(
        daemon_sock: RawFd,
        uid: libc::uid_t,
        gid: libc::gid_t,
        shape: Option<&WarmShape>,
    ) -> Option<Warm> {
        let (ours, theirs) = handover::seqpacket_pair().ok()?;
        // SAFETY: single-threaded, per this function's contract.
        match unsafe { clone_init(daemon_sock, Some(ours.as_raw_fd())) } {
            // SAFETY: in the child clone_init just made: single-threaded, and `theirs` is its own
            // copy of the socket end, owned by that OwnedFd alone (`ours` was closed).
            Ok(0) => unsafe { init::warm_main(theirs, uid, gid, shape) },
            Ok(_) => Some(Warm {
                ctl: ours,
                born: std::time::Instant::now(),
            }),
            Err(_) => None,
        }
    }
}

/// Clone a sandbox init into fresh namespaces: Ok(0) in the child (which has closed the daemon's
/// socket and `also_close`), Ok(pid) in the launcher, Err(errno) when the kernel refuses.
///
/// # Safety
/// The calling process must be single-threaded: the child goes on to run Rust code that
/// allocates (the whole init), which after a fork is sound only when no other thread could have
/// held a lock (the allocator's, stdio's) at the moment of the clone.
unsafe fn clone_init(daemon_sock: RawFd, also_close: Option<RawFd>) -> Result<libc::c_long, i32> {
    // SAFETY: raw clone without CLONE_VM behaves like fork (the child gets a copy of our stack
    // and memory, no pointer is passed); the caller guarantees this process is single-threaded,
    // so the copy holds no lock another thread was in the middle of.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (CLONE_FLAGS | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    if pid == 0 {
        // SAFETY: closing fds this child inherited and must not keep; nothing else owns them here.
        unsafe {
            libc::close(daemon_sock);
            if let Some(fd) = also_close {
                libc::close(fd);
            }
        }
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_warm_sandbox_is_used_only_while_young() {
        assert!(usable(Duration::ZERO));
        assert!(usable(WARM_MAX_AGE - Duration::from_millis(1)));
        assert!(!usable(WARM_MAX_AGE));
        assert!(!usable(WARM_MAX_AGE + Duration::from_secs(1)));
    }

    #[test]
    fn the_pool_is_kept_fresh_only_while_requests_are_recent() {
        let s = Duration::from_secs;
        // Nothing prepared: nothing to keep fresh.
        assert_eq!(refresh_in(None, s(0)), None);
        // The oldest is replaced when it ages out, which is never later than it is usable.
        assert_eq!(refresh_in(Some(s(3)), s(3)), Some(WARM_MAX_AGE - s(3)));
        assert_eq!(refresh_in(Some(WARM_MAX_AGE), s(30)), Some(Duration::ZERO));
        assert_eq!(refresh_in(Some(s(60)), s(60)), Some(Duration::ZERO));
        assert!(!usable(refresh_in(Some(s(0)), s(0)).unwrap()));
        // Idle for long: wait for a request without limit.
        assert_eq!(refresh_in(Some(s(1)), KEEP_WARM_IDLE), None);
        assert_eq!(refresh_in(Some(s(1)), KEEP_WARM_IDLE + s(1)), None);
        assert!(KEEP_WARM_IDLE > WARM_MAX_AGE);
    }

    #[test]
    fn waiting_ends_when_the_socket_is_readable_or_the_limit_passes() {
        let (a, b) = handover::seqpacket_pair().unwrap();
        let t0 = std::time::Instant::now();
        assert!(!wait_readable(
            a.as_raw_fd(),
            Some(Duration::from_millis(20))
        ));
        assert!(t0.elapsed() >= Duration::from_millis(20));
        handover::send_fds(b.as_raw_fd(), &[], b'x').unwrap();
        assert!(wait_readable(a.as_raw_fd(), None));
        drop(b);
        assert!(
            wait_readable(a.as_raw_fd(), Some(Duration::ZERO)),
            "EOF is readable"
        );
    }
}

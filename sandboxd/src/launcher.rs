//! The launcher: a single-threaded process forked from the daemon before its tokio runtime exists.
//! The multi-threaded daemon never forks a sandbox itself (only async-signal-safe work is allowed
//! after fork in a threaded process, and building Landlock rules allocates); it hands the launcher
//! four fds per exec and the launcher clones the sandbox init into fresh namespaces.

use crate::policy::WarmShape;
use crate::sandbox;
use crate::wire::{self, Report};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

/// Namespaces every sandbox gets: its own user namespace (so RLIMIT_NPROC counts it apart and it
/// holds no privilege on the host), PID namespace (its /proc shows only itself; when its init
/// exits the kernel kills every process left), mount namespace (private /proc, /tmp, /dev/shm) and
/// IPC namespace (no SysV IPC shared with the host).
pub const CLONE_FLAGS: libc::c_int =
    libc::CLONE_NEWUSER | libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWIPC;

/// Signals whose disposition the launcher or a sandbox init changes from the default; the command
/// resets exactly these before exec (ignored signals survive execve).
pub const CHANGED_SIGNALS: &[libc::c_int] =
    &[libc::SIGCHLD, libc::SIGINT, libc::SIGHUP, libc::SIGPIPE];

/// The environment variable carrying the warm shape (JSON) to the launcher.
pub const WARM_ENV: &str = "SANDBOXD_WARM";

/// Where the launcher finds its end of the control socket.
pub const LAUNCHER_FD: RawFd = 3;

/// Entry point of the launcher image (`sandboxd __launcher PARENT_PID`), called by `main` before
/// anything else.
pub fn launcher_entry(parent: &str, warm: &str) -> ! {
    let parent: libc::pid_t = parent.parse().unwrap_or(0);
    // SAFETY: fd 3 was placed there by `Launcher::start` and belongs to this process alone.
    let sock = unsafe { OwnedFd::from_raw_fd(LAUNCHER_FD) };
    // Unreadable: nothing is prepared ahead beyond namespaces and mounts; requests still work.
    let warm: Option<WarmShape> = serde_json::from_str(warm).ok();
    launcher_main(sock, parent, warm)
}

/// A warm sandbox older than this is discarded rather than used: its mount namespace is a copy
/// of the host's from when it was made, and the host may have mounted or replaced paths since.
const WARM_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(10);

/// Sandboxes kept prepared. Building a root from a profile takes longer than a short command's
/// round trip, so with one, back-to-back requests would wait for it; with two, one is always
/// ready while the next is being built.
const WARM_POOL: usize = 2;

/// fds handed over per exec, in this order.
pub const FDS_PER_EXEC: usize = 4;

pub struct Launcher {
    sock: Mutex<OwnedFd>,
    pub pid: libc::pid_t,
    /// The mount plan the launcher's sandboxes were prepared with: a spec with the same plan
    /// says so instead of carrying it (`SandboxSpec::mounts_warm`).
    pub warm_mounts: crate::confine::mounts::MountPlan,
}

impl Launcher {
    /// Fork the launcher. Must be called while the process is still single-threaded.
    pub fn start(shape: &WarmShape) -> io::Result<Launcher> {
        let warm = serde_json::to_string(shape).map_err(io::Error::other)?;
        let warm =
            std::ffi::CString::new(format!("{WARM_ENV}={warm}")).map_err(io::Error::other)?;
        let (ours, theirs) = seqpacket_pair()?;
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
        // SAFETY: the caller guarantees we are single-threaded. The child only calls dup2,
        // close_range and execve on memory prepared before the fork, then _exit on failure.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => unsafe {
                // A fresh image: the sandbox inits cloned from it carry neither the daemon's
                // command line nor its environment.
                if libc::dup2(theirs.as_raw_fd(), LAUNCHER_FD) < 0 {
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

    /// Ask for a sandbox. `status` is the sandbox's end of the status socket.
    pub fn launch(
        &self,
        status: &OwnedFd,
        stdout: &OwnedFd,
        stderr: &OwnedFd,
        workspace: &OwnedFd,
    ) -> io::Result<()> {
        let fds = [
            status.as_raw_fd(),
            stdout.as_raw_fd(),
            stderr.as_raw_fd(),
            workspace.as_raw_fd(),
        ];
        let sock = self
            .sock
            .lock()
            .map_err(|_| io::Error::other("launcher lock poisoned"))?;
        send_fds(sock.as_raw_fd(), &fds)
    }

    /// Whether the launcher process is still alive.
    pub fn alive(&self) -> bool {
        // SAFETY: kill with signal 0 only checks for existence.
        unsafe { libc::kill(self.pid, 0) == 0 }
    }
}

/// A close-on-exec SOCK_SEQPACKET pair: message boundaries keep one request per fd batch.
fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut sv = [0 as RawFd; 2];
    // SAFETY: socketpair writes two fds into the array we own.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            sv.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) })
}

fn send_fds(sock: RawFd, fds: &[RawFd]) -> io::Result<()> {
    let byte = [b'x'];
    let mut iov = libc::iovec {
        iov_base: byte.as_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    let payload = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(payload as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: msghdr is plain data; zeroed is a valid initial state.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space;
    // SAFETY: msg points at a control buffer of `space` bytes, so CMSG_FIRSTHDR is non-null and the
    // data area holds `payload` bytes.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(payload as u32) as usize;
        std::ptr::copy_nonoverlapping(fds.as_ptr() as *const u8, libc::CMSG_DATA(c), payload);
    }
    // SAFETY: msg and everything it points to live across the call.
    let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receive one request: Ok(None) on EOF (the daemon is gone).
pub(crate) fn recv_fds(sock: RawFd) -> io::Result<Option<Vec<OwnedFd>>> {
    let mut byte = [0u8; 16];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr() as *mut libc::c_void,
        iov_len: byte.len(),
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE((FDS_PER_EXEC * 4 * 2) as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: plain data.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space;
    // SAFETY: buffers outlive the call.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n == 0 {
        return Ok(None);
    }
    let mut fds = Vec::new();
    // SAFETY: we walk the control messages the kernel wrote within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c) as *const RawFd;
                let count = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / 4;
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(Some(fds))
}

fn launcher_main(sock: OwnedFd, parent: libc::pid_t, shape: Option<WarmShape>) -> ! {
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
    loop {
        // Prepare the next sandboxes while idle (namespaces, maps, the profile's root, Landlock),
        // so a request only pays for what depends on it. If this fails, the request below starts
        // cold and reports why.
        while warm.len() < WARM_POOL {
            match Warm::start(sock_fd, uid, gid, shape.as_ref()) {
                Some(w) => warm.push_back(w),
                None => break,
            }
        }
        let fds = match recv_fds(sock_fd) {
            Ok(Some(fds)) => fds,
            Ok(None) => break,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(_) => break,
        };
        if fds.len() != FDS_PER_EXEC {
            continue;
        }
        // The oldest first (the most likely to be ready); stale ones are dropped (their inits
        // exit when their control socket closes).
        while warm
            .front()
            .is_some_and(|w| w.born.elapsed() >= WARM_MAX_AGE)
        {
            warm.pop_front();
        }
        if let Some(w) = warm.pop_front() {
            let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
            if send_fds(w.ctl.as_raw_fd(), &raw).is_ok() {
                continue; // our copies close here; the sandbox holds its own
            }
            // The warm sandbox died (killed from outside): start this one cold.
        }
        let Ok::<[OwnedFd; FDS_PER_EXEC], _>([status, stdout, stderr, workspace]) = fds.try_into()
        else {
            continue;
        };
        match clone_init(sock_fd, None) {
            Ok(0) => sandbox::init_main(
                sandbox::Handover {
                    status,
                    stdout,
                    stderr,
                    workspace,
                    uid,
                    gid,
                },
                shape.as_ref(),
            ),
            Ok(_) => {}
            Err(errno) => {
                let report = Report::Failed {
                    layer: "namespaces".into(),
                    step: "clone(CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWIPC)".into(),
                    errno,
                    message: namespace_hint(errno),
                };
                let mut f = std::fs::File::from(status);
                let _ = wire::write_frame(&mut f, &report);
            }
        }
        // Our copies of the fds are dropped here; the sandbox holds its own.
    }
    // SAFETY: _exit is always safe.
    unsafe { libc::_exit(0) }
}

/// A sandbox init cloned ahead of time, waiting on `ctl` for a request's fds.
struct Warm {
    ctl: OwnedFd,
    born: std::time::Instant,
}

impl Warm {
    fn start(
        daemon_sock: RawFd,
        uid: libc::uid_t,
        gid: libc::gid_t,
        shape: Option<&WarmShape>,
    ) -> Option<Warm> {
        let (ours, theirs) = seqpacket_pair().ok()?;
        match clone_init(daemon_sock, Some(ours.as_raw_fd())) {
            Ok(0) => sandbox::warm_main(theirs, uid, gid, shape),
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
fn clone_init(daemon_sock: RawFd, also_close: Option<RawFd>) -> Result<libc::c_long, i32> {
    // SAFETY: raw clone without CLONE_VM behaves like fork (the child gets a copy of our stack);
    // this process is single-threaded.
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

pub fn namespace_hint(errno: i32) -> String {
    let base = format!(
        "cannot create the sandbox namespaces: {}",
        io::Error::from_raw_os_error(errno)
    );
    match errno {
        libc::EPERM | libc::EACCES => format!(
            "{base}; unprivileged user namespaces are blocked here (check sysctl kernel.unprivileged_userns_clone, \
             kernel.apparmor_restrict_unprivileged_userns on Ubuntu — install packaging/apparmor/sandboxd — \
             or the container runtime's seccomp profile)"
        ),
        libc::ENOSPC => format!("{base}; the user or PID namespace limit is reached (sysctl user.max_user_namespaces)"),
        libc::EINVAL => format!("{base}; this kernel lacks user or PID namespace support"),
        _ => base,
    }
}

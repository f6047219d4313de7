//! Inside the sandbox. `init_main` runs as PID 1 of the sandbox's fresh namespaces (cloned by the
//! launcher, single-threaded): it maps the user, mounts the private /proc, /tmp and /dev/shm, forks
//! the command, reaps every process, enforces the timeout and reports the result. The command child
//! then applies, in this order: session, fds, working directory, rlimits, no_new_privs, Landlock,
//! seccomp, exec. Any failure is reported as {layer, step, errno} and nothing runs.

use crate::confine;
use crate::confine::mounts::MountPlan;
use crate::policy::{SandboxSpec, WarmShape};
use crate::rootfs;
use crate::step::check;
pub use crate::step::StepError;
use crate::wire::{self, Report};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Handover {
    pub status: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub workspace: OwnedFd,
    /// The daemon's uid/gid outside, mapped to themselves inside.
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
}

/// A cold start: the launcher cloned us for a request already in hand.
pub fn init_main(h: Handover, shape: Option<&WarmShape>) -> ! {
    let prepared = prepare(h.uid, h.gid, None).map(|mut p| {
        p.warm_plan = shape.map(|s| s.mounts.clone());
        p
    });
    finish(h.status, h.stdout, h.stderr, h.workspace, prepared)
}

/// A warm start: the launcher cloned us ahead of time. Do the part of the setup that does not
/// depend on the request, then wait on `ctl` for the request's fds (EOF: the launcher is gone).
pub fn warm_main(ctl: OwnedFd, uid: libc::uid_t, gid: libc::gid_t, shape: Option<&WarmShape>) -> ! {
    // Building the next root is work for spare CPU: at a lower priority it does not slow the
    // command running beside it. Only where RLIMIT_NICE lets us come back to normal (the daemon
    // raises it when started as root); the request then runs at normal priority again.
    let deprioritized = set_nice(PREPARE_NICE, true);
    let prepared = prepare(uid, gid, shape);
    let fds = loop {
        match crate::launcher::recv_fds(ctl.as_raw_fd()) {
            Ok(Some(fds)) => break fds,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            // SAFETY: _exit is always safe.
            _ => unsafe { libc::_exit(0) },
        }
    };
    drop(ctl);
    if deprioritized {
        set_nice(0, false);
    }
    let Ok::<[OwnedFd; crate::launcher::FDS_PER_EXEC], _>([status, stdout, stderr, workspace]) =
        fds.try_into()
    else {
        // SAFETY: as above.
        unsafe { libc::_exit(1) }
    };
    finish(status, stdout, stderr, workspace, prepared)
}

/// Nice value of a warm sandbox while it builds its root.
const PREPARE_NICE: libc::c_int = 10;

/// setpriority on ourselves. `only_if_reversible`: do it only when RLIMIT_NICE lets us return to
/// nice 0 afterwards. True when the priority was changed.
fn set_nice(nice: libc::c_int, only_if_reversible: bool) -> bool {
    if only_if_reversible {
        // SAFETY: a zeroed rlimit is valid; getrlimit writes into it.
        let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: getrlimit with a valid pointer.
        if unsafe { libc::getrlimit(libc::RLIMIT_NICE, &mut lim) } != 0 || lim.rlim_cur < 20 {
            return false;
        }
    }
    // SAFETY: setpriority on the calling process only.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) == 0 }
}

fn finish(
    status: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    workspace: OwnedFd,
    prepared: Result<Prepared, StepError>,
) -> ! {
    let mut status = File::from(status);
    let result = prepared.and_then(|p| init(&mut status, stdout, stderr, workspace, p));
    let code = match result {
        Ok(report) => {
            let _ = wire::write_frame(&mut status, &report);
            0
        }
        Err(e) => {
            let _ = wire::write_frame(&mut status, &e.report());
            1
        }
    };
    // SAFETY: _exit is always safe; it skips atexit handlers inherited from the daemon.
    unsafe { libc::_exit(code) }
}

/// What `prepare` has done ahead of the request.
struct Prepared {
    /// Our pid as the host sees it.
    host_pid: u32,
    /// The mount namespace being built.
    stage: rootfs::Stage,
    /// The plan of the root already built (a warm sandbox), if any.
    mounts: Option<MountPlan>,
    /// The launcher's warm plan, which a spec with `mounts_warm` means.
    warm_plan: Option<MountPlan>,
    /// The Landlock ruleset of the warm shape, without the workspace rule.
    landlock: Option<(WarmShape, landlock::ABI, landlock::RulesetCreated)>,
}

/// The setup every sandbox shares, whatever the request: identity maps and a private mount
/// namespace pivoted into a staging tmpfs (the host's root beneath it, for binding from); with a
/// warm `shape`, also the default profile's whole root and its Landlock ruleset.
fn prepare(
    uid: libc::uid_t,
    gid: libc::gid_t,
    shape: Option<&WarmShape>,
) -> Result<Prepared, StepError> {
    // SAFETY: resetting a disposition inherited from the launcher (which ignores SIGCHLD).
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    // Read from the host's /proc before ours covers it.
    let host_pid: u32 = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0);

    // Map the daemon's own uid/gid to themselves: the command keeps an unprivileged identity and
    // holds capabilities over nothing but this sandbox's own namespaces.
    // The maps are writable only while we are dumpable (the launcher is not, so that nobody reads
    // its memory); we go back to non-dumpable right after.
    // SAFETY: prctl with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) };
    write_file("/proc/self/setgroups", "deny", "namespaces")?;
    write_file(
        "/proc/self/uid_map",
        &format!("{uid} {uid} 1\n"),
        "namespaces",
    )?;
    write_file(
        "/proc/self/gid_map",
        &format!("{gid} {gid} 1\n"),
        "namespaces",
    )?;
    // SAFETY: as above.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0) };

    rootfs::mount("", Path::new("/"), "", libc::MS_REC | libc::MS_PRIVATE, "")?;
    let mut prepared = Prepared {
        host_pid,
        stage: rootfs::Stage::open()?,
        mounts: None,
        warm_plan: shape.map(|s| s.mounts.clone()),
        landlock: None,
    };
    if let Some(shape) = shape.filter(|s| !s.mounts.ops.is_empty()) {
        prepared.stage.build(&shape.mounts)?;
        prepared.stage.make_dirs(&shape.workspace_roots);
        prepared.stage.settle()?;
        prepared.mounts = Some(shape.mounts.clone());
        // Best effort: if this fails, the request builds the ruleset itself and reports why.
        if let (Ok(v), Ok(root)) = (confine::landlock::kernel_abi(), prepared.stage.root_fd()) {
            let abi = confine::landlock::abi_from_version(v);
            let plan = confine::landlock::plan(&shape.fs, shape.network, &shape.connect_ports, abi);
            if let Ok(r) = confine::landlock::create(&plan, Some(&root)) {
                prepared.landlock = Some((shape.clone(), abi, r));
            }
        }
    }
    populate_memory();
    Ok(prepared)
}

/// `network = "private"`: a network namespace of our own (owned by the sandbox's user namespace)
/// with its loopback up and nothing else.
fn private_network() -> Result<(), StepError> {
    // SAFETY: unshare with a constant flag in this single-threaded process.
    check(
        unsafe { libc::unshare(libc::CLONE_NEWNET) },
        "namespaces",
        "unshare(CLONE_NEWNET)",
    )?;
    // SAFETY: a plain socket for the interface ioctls, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(fd, "namespaces", "socket for loopback setup")?;
    // SAFETY: fresh fd owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; zeroed is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we pass.
    unsafe {
        check(
            libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr),
            "namespaces",
            "SIOCGIFFLAGS lo",
        )?;
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        check(
            libc::ioctl(fd.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr),
            "namespaces",
            "SIOCSIFFLAGS lo up",
        )?;
    }
    Ok(())
}

/// Break copy-on-write ahead of the request on the memory this copy of the launcher will write:
/// every first write to a page after the clone is a fault and a copy, which added up to tens of
/// µs on the request path. Only writable mappings: populating the code as well cost ~0.7 ms per
/// sandbox and, done while the previous command runs, slowed it more than it saved on a 2-core
/// machine. Best effort: a range that cannot be populated is faulted in on use as before.
fn populate_memory() {
    const MADV_POPULATE_WRITE: libc::c_int = 23;
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let name = f.nth(3).unwrap_or("");
        if name.starts_with("[v") {
            continue; // vdso, vvar, vsyscall: not ordinary memory
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            continue;
        };
        if !perms.starts_with("rw") {
            continue;
        }
        // SAFETY: madvise on a mapping of our own process; POPULATE only faults pages in.
        unsafe { libc::madvise(a as *mut libc::c_void, b - a, MADV_POPULATE_WRITE) };
    }
}

fn write_file(path: &str, data: &str, layer: &'static str) -> Result<(), StepError> {
    std::fs::write(path, data).map_err(|e| StepError::io(layer, format!("write {path}"), e))
}

fn init(
    status: &mut File,
    stdout: OwnedFd,
    stderr: OwnedFd,
    workspace: OwnedFd,
    mut prepared: Prepared,
) -> Result<Report, StepError> {
    let host_pid = prepared.host_pid;
    let mut spec: SandboxSpec =
        wire::read_frame(status).map_err(|e| StepError::io("launcher", "read sandbox spec", e))?;
    if spec.mounts_warm {
        spec.mounts = prepared.warm_plan.take().ok_or_else(|| {
            StepError::new(
                "launcher",
                "read sandbox spec",
                libc::EINVAL,
                "the spec names the launcher's warm mount plan, which this sandbox was not given",
            )
        })?;
    }
    let started = Instant::now();
    if spec.network == crate::policy::Network::Private {
        private_network()?;
    }
    // The root: the warm one when it was built from the same plan, else built now.
    let stage = &mut prepared.stage;
    if prepared.mounts.as_ref() != Some(&spec.mounts) {
        if prepared.mounts.take().is_some() {
            stage.rebuild(&spec.mounts)?;
            // Its rules name the root just discarded.
            prepared.landlock = None;
        } else {
            stage.build(&spec.mounts)?;
        }
    }
    let workspace = stage
        .bind_workspace(&spec.workspace, &workspace, spec.fs.workspace_writable)?
        .ok_or_else(|| StepError::new(
            "mounts",
            "open workspace",
            libc::EACCES,
            format!("workspace {} is not reachable by the sandbox user (a parent directory is not searchable); place it where that user can traverse", spec.workspace.display()),
        ))?;
    stage.seal(&spec.mounts)?;
    // Rules are opened inside the new root before entering it (RESOLVE_IN_ROOT), so they name
    // exactly what the command will see.
    let new_root = stage.root_fd()?;

    // Block SIGCHLD before the fork so no exit is missed; signalfd reports it.
    // SAFETY: sigset manipulation on a local set.
    let sigfd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        check(
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()),
            "launcher",
            "sigprocmask",
        )?;
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        check(fd, "launcher", "signalfd")?;
        OwnedFd::from_raw_fd(fd)
    };

    let mut errpipe = [0; 2];
    // SAFETY: pipe2 writes two fds into our array.
    check(
        unsafe { libc::pipe2(errpipe.as_mut_ptr(), libc::O_CLOEXEC) },
        "launcher",
        "pipe2",
    )?;
    // SAFETY: fresh fds owned by nobody else.
    let (err_r, err_w) = unsafe { (File::from_raw_fd(errpipe[0]), File::from_raw_fd(errpipe[1])) };

    // A layer the kernel cannot apply fails the exec, unless the operator allowed it to be missing;
    // then the command runs without it and every result says so.
    let mut degraded = vec![];
    // Detected once here; the command applies the rules for this ABI (None: degraded).
    let landlock = match confine::landlock::detect(spec.min_landlock_abi) {
        Ok(abi) => Some(abi),
        Err(e) if spec.allow_degraded.iter().any(|l| l == "landlock") => {
            degraded.push(format!("landlock: {e}"));
            None
        }
        Err(e) => return Err(StepError::landlock(e, "landlock_create_ruleset")),
    };

    // The ruleset is built here, or taken from the warm preparation when the request matches it;
    // the command only enforces it.
    let ll = StepError::landlock;
    let ruleset = match landlock {
        Some(abi) => {
            let plan = confine::landlock::plan(&spec.fs, spec.network, &spec.connect_ports, abi);
            let created = match prepared.landlock.take() {
                Some((shape, a, r))
                    if a == abi
                        && shape.fs == spec.fs
                        && shape.network == spec.network
                        && shape.connect_ports == spec.connect_ports =>
                {
                    r
                }
                _ => confine::landlock::create(&plan, Some(&new_root))
                    .map_err(|e| ll(e, "landlock_add_rule"))?,
            };
            Some(
                confine::landlock::add_workspace(created, &plan, workspace.as_fd())
                    .map_err(|e| ll(e, "landlock_add_rule workspace"))?,
            )
        }
        None => None,
    };

    // The command's working directory, resolved again beneath the workspace: the kernel re-checks
    // that it stays inside, whatever changed since the daemon looked.
    let cwd =
        crate::workspace::open_beneath(&workspace, &spec.cwd, libc::O_PATH | libc::O_DIRECTORY)
            .map_err(|errno| {
                StepError::io("mounts", "open cwd", io::Error::from_raw_os_error(errno))
            })?;
    drop(new_root);
    stage.enter()?;

    let child = spawn_command(&ChildArgs {
        spec: &spec,
        ruleset: std::cell::Cell::new(ruleset),
        stdout: &stdout,
        stderr: &stderr,
        cwd: &cwd,
        err_w: &err_w,
    })?;
    drop((err_w, stdout, stderr, workspace, cwd));

    let mut acc = Usage::default();
    // The child reports a setup failure, or the pipe closes on a successful exec.
    let mut buf = Vec::new();
    let _ = (&err_r).read_to_end(&mut buf);
    if !buf.is_empty() {
        reap_all(&mut acc);
        return match wire::decode::<Report>(&buf[4.min(buf.len())..]) {
            Ok(r) => Ok(r),
            Err(e) => Err(StepError::io("launcher", "read child report", e)),
        };
    }
    let _ = wire::write_frame(
        status,
        &Report::Started {
            pid: host_pid,
            degraded,
        },
    );

    let deadline = started + Duration::from_millis(spec.timeout_ms);
    let mut timed_out = false;
    let mut cmd_status: Option<libc::c_int> = None;
    while cmd_status.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            timed_out = true;
            break;
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
        // SAFETY: pfd is a valid array of two pollfds.
        let n = unsafe { libc::poll(pfd.as_mut_ptr(), 2, ms.max(1)) };
        if n < 0 {
            continue; // EINTR
        }
        if pfd[0].revents != 0 {
            // The daemon closed the socket (client gone, shutdown) or wrote: either way, stop.
            break;
        }
        if pfd[1].revents != 0 {
            drain_signalfd(&sigfd);
            reap_nohang(child, &mut cmd_status, &mut acc);
        }
    }
    // Nothing the command left behind survives it: kill every other process of the namespace.
    // SAFETY: kill(-1) from PID 1 of the namespace reaches only processes inside it.
    unsafe { libc::kill(-1, libc::SIGKILL) };
    if cmd_status.is_none() {
        let mut st = 0;
        // SAFETY: waiting for our own child with a valid status pointer.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::wait4(child, &mut st, 0, &mut ru) } == child {
            acc.add(&ru);
            cmd_status = Some(st);
        }
    }
    reap_all(&mut acc);
    let st = cmd_status.unwrap_or(libc::SIGKILL);
    let (code, signal) = if libc::WIFEXITED(st) {
        (libc::WEXITSTATUS(st), 0)
    } else if libc::WIFSIGNALED(st) {
        (-1, libc::WTERMSIG(st))
    } else {
        (-1, libc::SIGKILL)
    };
    Ok(Report::Exited {
        code,
        signal,
        timed_out,
        maxrss_kb: acc.maxrss_kb,
        cpu_us: acc.cpu_us,
    })
}

#[derive(Default)]
struct Usage {
    maxrss_kb: u64,
    cpu_us: u64,
}

impl Usage {
    fn add(&mut self, ru: &libc::rusage) {
        let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        self.maxrss_kb = self.maxrss_kb.max(ru.ru_maxrss.max(0) as u64);
        self.cpu_us += us(ru.ru_utime) + us(ru.ru_stime);
    }
}

fn drain_signalfd(fd: &OwnedFd) {
    let mut buf = [0u8; 128 * 8];
    // SAFETY: reading into a local buffer from a nonblocking signalfd.
    while unsafe {
        libc::read(
            fd.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
        )
    } > 0
    {}
}

fn reap_nohang(child: libc::pid_t, cmd: &mut Option<libc::c_int>, acc: &mut Usage) {
    loop {
        let mut st = 0;
        // SAFETY: zeroed rusage is valid; wait4 writes into it.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers to locals.
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

fn reap_all(acc: &mut Usage) {
    loop {
        let mut st = 0;
        // SAFETY: zeroed rusage is valid; wait4 writes into it.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers to locals.
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

/// What the command's process works from: borrowed from the init, whose memory it shares until
/// it execs.
struct ChildArgs<'a> {
    spec: &'a SandboxSpec,
    /// Taken (once) by the child, which enforces it.
    ruleset: std::cell::Cell<Option<landlock::RulesetCreated>>,
    stdout: &'a OwnedFd,
    stderr: &'a OwnedFd,
    /// The working directory (the workspace or a directory beneath it).
    cwd: &'a OwnedFd,
    err_w: &'a File,
}

/// Stack for the command's process until it execs; its lowest page is a guard.
const CHILD_STACK: usize = 1 << 20;

/// Start the command the way posix_spawn does: clone(CLONE_VM|CLONE_VFORK) on a stack of its
/// own. The child shares our memory and we are suspended until it execs or exits, so nothing is
/// copied (fork duplicated the init's page tables and every page it then touched, and execve tore
/// the copy down again: ~200 µs per exec). It has its own fd table, credentials, signal
/// dispositions and seccomp/Landlock state, so what it confines is only itself.
fn spawn_command(args: &ChildArgs) -> Result<libc::pid_t, StepError> {
    let page = 4096;
    // SAFETY: a fresh anonymous private mapping; no existing memory is touched.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            CHILD_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return Err(StepError::os("launcher", "mmap command stack"));
    }
    // SAFETY: the guard page lies inside the mapping we just made.
    check(
        unsafe { libc::mprotect(stack, page, libc::PROT_NONE) },
        "launcher",
        "mprotect stack guard",
    )?;
    // SAFETY: `stack + CHILD_STACK` is the end of our mapping (stacks grow down; mmap returns
    // page-aligned memory, so the top is 16-byte aligned). `args` outlives the child's use of it:
    // with CLONE_VFORK this call returns only after the child has exec'd or exited.
    let pid = unsafe {
        libc::clone(
            command_entry,
            (stack as *mut u8).add(CHILD_STACK) as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            args as *const ChildArgs as *mut libc::c_void,
        )
    };
    let err = (pid < 0).then(|| StepError::os("launcher", "clone command"));
    // SAFETY: the child no longer runs on this stack (it exec'd or exited).
    unsafe { libc::munmap(stack, CHILD_STACK) };
    match err {
        Some(e) => Err(e),
        None => Ok(pid),
    }
}

/// The command's process: confine, exec, or report why not. Never returns.
extern "C" fn command_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `spawn_command` passes a pointer to a live ChildArgs and is suspended until we exec
    // or exit.
    let a = unsafe { &*(arg as *const ChildArgs) };
    let e = match confine_and_exec(a.spec, a.ruleset.take(), a.stdout, a.stderr, a.cwd) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let mut w = a.err_w;
    let _ = w.write_all(&wire::encode(&e.report()).unwrap_or_default());
    // SAFETY: _exit is always safe; it runs no destructor in the memory we share.
    unsafe { libc::_exit(127) }
}

/// Resolve the program like execvp would, in the sandbox's PATH (see `spawn::resolve_in_path`).
fn resolve_program(argv0: &str, env: &[(String, String)]) -> Option<String> {
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/bin:/bin");
    let executable = |p: &str| {
        let Ok(c) = CString::new(p) else {
            return false;
        };
        // SAFETY: access with a valid C string.
        unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
    };
    let file = |p: &str| std::fs::metadata(p).is_ok_and(|m| !m.is_dir());
    crate::spawn::resolve_in_path(argv0, path, executable, file)
}

fn cstrings(
    v: impl Iterator<Item = String>,
    layer: &'static str,
) -> Result<Vec<CString>, StepError> {
    v.map(|s| {
        CString::new(s).map_err(|_| StepError {
            layer,
            step: "prepare exec".into(),
            errno: libc::EINVAL,
            message: "argument or environment contains a NUL byte".into(),
        })
    })
    .collect()
}

enum Never {}

fn confine_and_exec(
    spec: &SandboxSpec,
    ruleset: Option<landlock::RulesetCreated>,
    stdout: &OwnedFd,
    stderr: &OwnedFd,
    cwd: &OwnedFd,
) -> Result<Never, StepError> {
    // SAFETY: plain syscalls on our own process in a single-threaded child.
    unsafe {
        check(libc::setsid(), "session", "setsid")?;
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for &sig in crate::launcher::CHANGED_SIGNALS {
            libc::signal(sig, libc::SIG_DFL);
        }
        let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        check(devnull, "fds", "open /dev/null")?;
        check(libc::dup2(devnull, 0), "fds", "dup2 stdin")?;
        check(libc::dup2(stdout.as_raw_fd(), 1), "fds", "dup2 stdout")?;
        check(libc::dup2(stderr.as_raw_fd(), 2), "fds", "dup2 stderr")?;
        check(libc::fchdir(cwd.as_raw_fd()), "fds", "fchdir cwd")?;
    }
    confine::rlimits::apply(&spec.limits).map_err(|(name, errno)| StepError {
        layer: "rlimits",
        step: format!("setrlimit {name}"),
        errno,
        message: format!("setrlimit {name}: {}", io::Error::from_raw_os_error(errno)),
    })?;
    // Only 0, 1 and 2 survive exec; the workspace fd and the report pipe close with it.
    // SAFETY: marks fds close-on-exec; no memory involved.
    check(
        unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        } as i32,
        "fds",
        "close_range",
    )?;

    // Everything that allocates happens before the filters go on.
    let program = resolve_program(&spec.argv[0], &spec.env).ok_or_else(|| StepError {
        layer: "exec",
        step: "execve".into(),
        errno: libc::ENOENT,
        message: format!("{}: command not found in PATH", spec.argv[0]),
    })?;
    let prog_c = cstrings(std::iter::once(program), "exec")?;
    let argv_c = cstrings(spec.argv.iter().cloned(), "exec")?;
    let env_c = cstrings(spec.env.iter().map(|(k, v)| format!("{k}={v}")), "exec")?;
    let mut argv_p: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut env_p: Vec<*const libc::c_char> = env_c.iter().map(|c| c.as_ptr()).collect();
    env_p.push(std::ptr::null());
    let filters = confine::seccomp::prebuilt(spec.network).map_err(|e| StepError {
        layer: "seccomp",
        step: "build filter".into(),
        errno: libc::EINVAL,
        message: e,
    })?;

    // SAFETY: prctl with constant arguments.
    check(
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
        "no_new_privs",
        "prctl(PR_SET_NO_NEW_PRIVS)",
    )?;

    if let Some(r) = ruleset {
        confine::landlock::restrict(r)
            .map_err(|e| StepError::landlock(e, "landlock_restrict_self"))?;
    }

    confine::seccomp::apply(filters).map_err(|e| {
        let errno = io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL);
        StepError {
            layer: "seccomp",
            step: "seccomp(SECCOMP_SET_MODE_FILTER)".into(),
            errno,
            message: e.to_string(),
        }
    })?;

    // SAFETY: argv/env arrays are NUL-terminated and their strings outlive the call.
    unsafe { libc::execve(prog_c[0].as_ptr(), argv_p.as_ptr(), env_p.as_ptr()) };
    Err(StepError::os("exec", format!("execve {}", spec.argv[0])))
}

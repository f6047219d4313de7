//! The command's process: started vfork-style, it confines itself in order (session, fds,
//! working directory, rlimits, no_new_privs, Landlock, seccomp) and execs, or reports through the
//! report pipe which step failed.

use crate::confine;
use crate::handover::CHANGED_SIGNALS;
use crate::policy::SandboxSpec;
use crate::step::{check, StepError};
use crate::vocab::Layer;
use crate::wire::{self, Report};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The pipe on which the command's process reports a setup failure; it closes unread on a
/// successful exec (both ends are close-on-exec).
pub(super) fn report_pipe() -> Result<(File, File), StepError> {
    let mut errpipe = [0; 2];
    check(
        // SAFETY: pipe2 writes two c_ints into `errpipe`, a local array of two, alive through
        // the call.
        unsafe { libc::pipe2(errpipe.as_mut_ptr(), libc::O_CLOEXEC) },
        Layer::Launcher,
        "pipe2",
    )?;
    // SAFETY: pipe2 succeeded (check returned Ok), so both are new open fds nothing else in this
    // process refers to: each File is the only owner of its fd and closes it once.
    Ok(unsafe { (File::from_raw_fd(errpipe[0]), File::from_raw_fd(errpipe[1])) })
}

/// What the command's process reported before exec, if anything: None when the pipe closed empty
/// (it exec'd). Call after the write end is dropped.
pub(super) fn setup_report(err_r: &File) -> Option<Result<Report, StepError>> {
    let mut buf = Vec::new();
    let _ = (&*err_r).read_to_end(&mut buf);
    if buf.is_empty() {
        return None;
    }
    Some(match wire::decode::<Report>(&buf[4.min(buf.len())..]) {
        Ok(r) => Ok(r),
        Err(e) => Err(StepError::io(Layer::Launcher, "read child report", e)),
    })
}

/// What the command's process works from: borrowed from the init, whose memory it shares until
/// it execs.
pub(super) struct ChildArgs<'a> {
    pub spec: &'a SandboxSpec,
    /// Taken (once) by the child, which enforces it.
    pub ruleset: std::cell::Cell<Option<landlock::RulesetCreated>>,
    pub stdout: &'a OwnedFd,
    pub stderr: &'a OwnedFd,
    /// The working directory (the workspace or a directory beneath it).
    pub cwd: &'a OwnedFd,
    pub err_w: &'a File,
}

/// Stack for the command's process until it execs; its lowest page is a guard.
const CHILD_STACK: usize = 1 << 20;

/// Start the command the way posix_spawn does: clone(CLONE_VM|CLONE_VFORK) on a stack of its
/// own. The child shares our memory and we are suspended until it execs or exits, so nothing is
/// copied (fork duplicated the init's page tables and every page it then touched, and execve tore
/// the copy down again: ~200 µs per exec). It has its own fd table, credentials, signal
/// dispositions and seccomp/Landlock state, so what it confines is only itself.
///
/// # Safety
/// The calling process must be single-threaded: the child runs in our memory and allocates
/// (it resolves the program and builds the exec arrays), and CLONE_VFORK suspends only the
/// calling thread; another thread could hold the allocator's lock or change what it reads.
pub(super) unsafe fn spawn_command(args: &ChildArgs) -> Result<libc::pid_t, StepError> {
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
        return Err(StepError::os(Layer::Launcher, "mmap command stack"));
    }
    check(
        // SAFETY: the guard page lies inside the mapping we just made.
        unsafe { libc::mprotect(stack, page, libc::PROT_NONE) },
        Layer::Launcher,
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
    let err = (pid < 0).then(|| StepError::os(Layer::Launcher, "clone command"));
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

/// Resolve the program like execvp would, in the sandbox's PATH.
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
        // SAFETY: access only reads the NUL-terminated path `c` owns for the call.
        unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
    };
    let file = |p: &str| std::fs::metadata(p).is_ok_and(|m| !m.is_dir());
    resolve_in_path(argv0, path, executable, file)
}

/// Where execvp would find `argv0` in `path`: a name with a `/` as it is; else the first
/// executable `dir/argv0`; else, like execvp and bash, the first one that exists but is not
/// executable (a file that is no directory), so that execve fails with EACCES and the command is
/// reported "cannot execute" (126), not "command not found" (127); else None (127).
pub fn resolve_in_path(
    argv0: &str,
    path: &str,
    executable: impl Fn(&str) -> bool,
    file: impl Fn(&str) -> bool,
) -> Option<String> {
    if argv0.contains('/') {
        return Some(argv0.to_string());
    }
    let candidates: Vec<String> = path
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| format!("{d}/{argv0}"))
        .collect();
    let first_executable = candidates.iter().position(|p| executable(p));
    let i = first_executable.or_else(|| candidates.iter().position(|p| file(p)))?;
    candidates.into_iter().nth(i)
}

/// The program a shell command line names when the line is nothing but an absolute path made of
/// plain characters (`/bin/true`, `/usr/bin/make`): `sh -c -- /bin/true` would only find that
/// file and run it with no arguments, in the same environment (the sandbox sets PWD already), so
/// the child execs it straight away and saves starting a shell. Should that execve fail (no such
/// file, not executable, no `#!` line), the child goes on to exec the shell as asked, which then
/// runs the file as a script or reports the error in its own words, exactly as before.
fn plain_program(argv: &[String]) -> Option<&str> {
    let line = crate::shell::shell_line(argv)?;
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'+');
    // /proc and /dev name things per process (/proc/self/exe, /dev/fd/N, /dev/stdin): from this
    // child they would be the init's, not a shell's, so those lines keep the shell.
    let per_process = ["/proc/", "/dev/"].iter().any(|p| line.starts_with(p));
    (line.starts_with('/') && !line.ends_with('/') && !per_process && line.bytes().all(plain))
        .then_some(line)
}

fn cstrings(v: impl Iterator<Item = String>, layer: Layer) -> Result<Vec<CString>, StepError> {
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
    // SAFETY: every call changes only this process (the command-to-be, single-threaded, so no
    // other thread sees fds 0-2 or the cwd change under it) and passes no memory but: `set`, a
    // local sigset_t (all-zero bytes valid, sigemptyset initialises it), read by sigprocmask;
    // the static NUL-terminated c"..." paths, read by open; and b"1000", 4 bytes read by write.
    // The fds given to dup2/fchdir are borrowed from live OwnedFds; `devnull` and `adj` are
    // fresh fds this block owns (devnull is close-on-exec, adj is closed here).
    unsafe {
        check(libc::setsid(), Layer::Session, "setsid")?;
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for &sig in CHANGED_SIGNALS {
            libc::signal(sig, libc::SIG_DFL);
        }
        let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        check(devnull, Layer::Fds, "open /dev/null")?;
        check(libc::dup2(devnull, 0), Layer::Fds, "dup2 stdin")?;
        check(libc::dup2(stdout.as_raw_fd(), 1), Layer::Fds, "dup2 stdout")?;
        check(libc::dup2(stderr.as_raw_fd(), 2), Layer::Fds, "dup2 stderr")?;
        check(libc::fchdir(cwd.as_raw_fd()), Layer::Fds, "fchdir cwd")?;
        // At the sandbox's memory ceiling the OOM killer must pick the command's processes, not
        // the init, whose death would lose the result (and read as "never ran"). Raising one's
        // own oom_score_adj needs no privilege and children inherit it. Best effort: without
        // /proc the init may be picked, and the result then still says `limit_hit: memory`.
        // The init's credential changes left this process non-dumpable, so its /proc files
        // belong to root; execve makes it dumpable again anyway (same credentials).
        libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
        let adj = libc::open(
            c"/proc/self/oom_score_adj".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        );
        if adj >= 0 {
            libc::write(adj, b"1000".as_ptr().cast(), 4);
            libc::close(adj);
        }
    }
    confine::rlimits::apply(&spec.limits).map_err(|(name, errno)| StepError {
        layer: Layer::Rlimits,
        step: format!("setrlimit {name}"),
        errno,
        message: format!("setrlimit {name}: {}", io::Error::from_raw_os_error(errno)),
    })?;
    // Only 0, 1 and 2 survive exec; the workspace fd and the report pipe close with it.
    check(
        // SAFETY: marks fds close-on-exec; no memory involved.
        unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        } as i32,
        Layer::Fds,
        "close_range",
    )?;

    // Everything that allocates happens before the filters go on.
    let program = resolve_program(&spec.argv[0], &spec.env).ok_or_else(|| StepError {
        layer: Layer::Exec,
        step: "execve".into(),
        errno: libc::ENOENT,
        message: format!("{}: command not found in PATH", spec.argv[0]),
    })?;
    let prog_c = cstrings(std::iter::once(program), Layer::Exec)?;
    let argv_c = cstrings(spec.argv.iter().cloned(), Layer::Exec)?;
    let env_c = cstrings(
        spec.env.iter().map(|(k, v)| format!("{k}={v}")),
        Layer::Exec,
    )?;
    let mut argv_p: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let direct = match plain_program(&spec.argv) {
        Some(p) => Some(cstrings(std::iter::once(p.to_string()), Layer::Exec)?),
        None => None,
    };
    let direct_argv: Option<[*const libc::c_char; 2]> =
        direct.as_ref().map(|d| [d[0].as_ptr(), std::ptr::null()]);
    let mut env_p: Vec<*const libc::c_char> = env_c.iter().map(|c| c.as_ptr()).collect();
    env_p.push(std::ptr::null());
    let filters = confine::seccomp::prebuilt(spec.network).map_err(|e| StepError {
        layer: Layer::Seccomp,
        step: "build filter".into(),
        errno: libc::EINVAL,
        message: e,
    })?;

    check(
        // SAFETY: PR_SET_NO_NEW_PRIVS takes integers only and touches no memory; it can only
        // take privilege away from this process (the command about to be executed).
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
        Layer::NoNewPrivs,
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
            layer: Layer::Seccomp,
            step: "seccomp(SECCOMP_SET_MODE_FILTER)".into(),
            errno,
            message: e.to_string(),
        }
    })?;

    if let Some(d) = &direct_argv {
        // SAFETY: `d` is [program, NULL]: its pointer is into `direct`, a CString this function
        // owns and keeps to its end; `env_p` is NULL-terminated and points into the CStrings of
        // `env_c`, also kept to the end. The kernel only reads them (and copies them into the new
        // image); on failure execve returns, having changed nothing, and the shell runs below.
        unsafe { libc::execve(d[0], d.as_ptr(), env_p.as_ptr()) };
    }
    // SAFETY: `argv_p` and `env_p` are NULL-terminated arrays of pointers into the CStrings of
    // `argv_c` and `env_c`, and `prog_c[0]` is a CString; all are locals of this function, alive
    // through the call. The kernel only reads them; on failure execve returns and the error is
    // reported below.
    unsafe { libc::execve(prog_c[0].as_ptr(), argv_p.as_ptr(), env_p.as_ptr()) };
    Err(StepError::os(
        Layer::Exec,
        format!("execve {}", spec.argv[0]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_shell_line_that_is_a_plain_absolute_path_is_run_without_the_shell() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let sh = |line: &str| v(&["/bin/sh", "-c", "--", line]);
        assert_eq!(plain_program(&sh("/bin/true")), Some("/bin/true"));
        assert_eq!(
            plain_program(&sh("/usr/lib/x86_64-linux-gnu/a.b_c-d+e")),
            Some("/usr/lib/x86_64-linux-gnu/a.b_c-d+e")
        );
        // Anything the shell would read otherwise: words, variables, globs, quotes, operators,
        // assignments, a relative path or a PATH lookup, builtins, a directory.
        for line in [
            "/bin/echo hi",
            "/bin/$X",
            "/bin/tru*",
            "/bin/tr?e",
            "'/bin/true'",
            "/bin/true;",
            "/bin/true&",
            "/bin/true|x",
            "/bin/true\n",
            "A=/bin/true",
            "~/bin/x",
            "./x",
            "true",
            "exit",
            "/bin/",
            "/proc/self/exe",
            "/dev/fd/3",
            "/dev/stdin",
            "/bin/true\n/bin/false",
            "",
        ] {
            assert_eq!(plain_program(&sh(line)), None, "{line:?}");
        }
        // Only the exact argv the daemon builds for a shell line; never an argv request.
        assert_eq!(plain_program(&v(&["/bin/sh", "-c", "/bin/true"])), None);
        assert_eq!(
            plain_program(&v(&["/bin/sh", "-c", "--", "/bin/true", "x"])),
            None
        );
        assert_eq!(
            plain_program(&v(&["/bin/bash", "-c", "--", "/bin/true"])),
            None
        );
        assert_eq!(plain_program(&v(&["/bin/true"])), None);
    }

    #[test]
    fn path_lookup_falls_back_to_a_non_executable_file_like_the_shell() {
        let exec = |p: &str| matches!(p, "/b/run" | "/c/run");
        let file = |p: &str| matches!(p, "/a/run" | "/b/run" | "/c/run" | "/a/data");
        let find = |name: &str, path: &str| resolve_in_path(name, path, exec, file);
        // An executable match wins over an earlier non-executable one.
        assert_eq!(find("run", "/a:/b:/c"), Some("/b/run".into()));
        // No executable match: the first non-executable one (execve then fails with EACCES).
        assert_eq!(find("data", "/a:/b"), Some("/a/data".into()));
        assert_eq!(find("data", "/b::/a"), Some("/a/data".into()));
        // Nothing at all: not found.
        assert_eq!(find("nosuch", "/a:/b:/c"), None);
        assert_eq!(find("run", ""), None);
        // A name with a slash is not looked up.
        assert_eq!(find("./x", "/a"), Some("./x".into()));
    }
}

//! What this kernel can do, probed, and what to do when it cannot: the one place for host
//! capability probes and their fix hints, shared by `Info` (`api/info.rs`), `doctor`
//! (`doctor.rs`) and the errors a refused exec carries (the namespace hint, `LandlockError`).
//!
//! One probe per capability. Where trying the real thing changes the calling process (seccomp,
//! namespaces) there are two variants of the same probe: a cheap one, side-effect free and
//! fork-free, that `Info` runs on every request; and a thorough one for `doctor` that first runs
//! the cheap one and then tries the real thing in a throwaway child. So doctor never reports a
//! capability that Info reports missing; the thorough one only adds failures the cheap one
//! cannot see (named on each cheap probe).
//!
//! Info does not stay blind to those: `sandboxd serve` runs the thorough namespace probe once at
//! start-up, after dropping privileges and before the tokio runtime exists (so it forks from a
//! single-threaded process, as the daemon itself will clone sandboxes), and keeps the result
//! (`AtStart`). Info reports that result, and the cheap probe at request time on top, so Info and
//! doctor agree on user namespaces even where only trying them shows the refusal.
//!
//! One fix wording per capability, here only: `UsernsSysctls::fix` (doctor, Info and the refused
//! namespace clone, `namespace_hint`), `cgroups_fix`, `seccomp_fix`, `landlock_unavailable`.

use std::io;

/// Landlock ABI offered by the running kernel, or the errno that stopped us asking (EPERM: a
/// seccomp filter outside us, as in systemd-nspawn or some container runtimes, blocks the
/// syscalls). Cheap and side-effect free: Info, doctor, explain and every exec use it.
pub fn landlock_abi() -> Result<i32, i32> {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) passes no memory
    // and creates nothing: it only returns the ABI number (or -1 and errno).
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL))
    } else {
        Ok(r as i32)
    }
}

/// Why Landlock is unavailable and what to do, by the errno `landlock_abi` returned: (detail,
/// fix). The one wording: doctor shows the two apart, `LandlockError` (exec refusals, Info's
/// problems) joins them with `landlock_unavailable_message`.
pub fn landlock_unavailable(errno: i32) -> (String, &'static str) {
    match errno {
        libc::EPERM => (
            "the Landlock syscalls are blocked (EPERM), as inside systemd-nspawn or a container runtime's seccomp profile".into(),
            "allow landlock_create_ruleset, landlock_add_rule and landlock_restrict_self (e.g. systemd-nspawn --system-call-filter='landlock_create_ruleset landlock_add_rule landlock_restrict_self', or a Docker seccomp profile that permits them)",
        ),
        libc::EOPNOTSUPP => (
            "Landlock is built in but disabled at boot (EOPNOTSUPP)".into(),
            "add landlock to the lsm= kernel parameter (e.g. lsm=landlock,lockdown,yama,integrity,apparmor,bpf) and reboot",
        ),
        e => (
            format!("Landlock is not available in this kernel: {}", io::Error::from_raw_os_error(e)),
            "use a kernel with CONFIG_SECURITY_LANDLOCK=y (Linux 5.13+; 6.7+ for network rules)",
        ),
    }
}

/// `landlock_unavailable` as one message, for an exec refusal and Info's problems: the detail,
/// then the fix.
pub fn landlock_unavailable_message(errno: i32) -> String {
    let (detail, fix) = landlock_unavailable(errno);
    format!("{detail}; {fix}")
}

/// What to do when the kernel's Landlock ABI is below the configured minimum.
pub fn landlock_too_old_fix() -> &'static str {
    "upgrade the kernel, or lower min_landlock_abi in sandboxd.toml"
}

/// What to do for Landlock's second layer on named sockets (RESOLVE_UNIX, ABI 9).
pub fn landlock_resolve_unix_fix() -> &'static str {
    "for the second layer, run a kernel whose Landlock offers ABI 9 or later (Linux 7.1+); nothing is exposed without it"
}

/// Whether seccomp filters are available: the cheap probe (Info). Asks the seccomp syscall
/// whether it offers SECCOMP_RET_ALLOW (SECCOMP_GET_ACTION_AVAIL): it goes through the same
/// syscall and the same CONFIG_SECCOMP_FILTER code as installing a filter, so a kernel without
/// filters or a container filter on the seccomp syscall fails it, and it changes nothing. It
/// cannot see an install that fails for another reason (e.g. out of memory): the thorough
/// `seccomp_installable` tries one.
pub fn seccomp_available() -> Result<(), ProbeError> {
    let action: u32 = libc::SECCOMP_RET_ALLOW;
    // SAFETY: SECCOMP_GET_ACTION_AVAIL reads one u32 through the pointer, which points at
    // `action`, alive for the call; the kernel writes nothing and changes no process state.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0,
            &action as *const u32,
        )
    };
    if r != 0 {
        return Err(ProbeError::Refused {
            op: "seccomp(SECCOMP_GET_ACTION_AVAIL)",
            err: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// What to do when seccomp filters cannot be installed.
pub fn seccomp_fix() -> &'static str {
    "use a kernel with CONFIG_SECCOMP_FILTER=y; inside a container, allow the seccomp syscall"
}

/// Whether the sysctls allow this process to create user namespaces: the cheap probe (Info).
/// Reads the settings that refuse every creation (user.max_user_namespaces 0 or absent;
/// kernel.unprivileged_userns_clone 0 without CAP_SYS_ADMIN), which make unshare fail too. It
/// cannot see what only trying shows (Ubuntu's AppArmor restriction depends on the profile
/// sandboxd runs under; a container's seccomp filter on unshare): the thorough
/// `namespaces_creatable` tries it.
pub fn user_namespaces_allowed() -> Result<(), ProbeError> {
    UsernsSysctls::read().refusal(has_cap_sys_admin())
}

/// linux/capability.h (the libc crate does not define capability numbers).
const CAP_SYS_ADMIN: u32 = 21;

/// CAP_SYS_ADMIN in our effective set (it lifts kernel.unprivileged_userns_clone = 0).
fn has_cap_sys_admin() -> bool {
    let status = read("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}

/// What to do when cgroups cannot bound a sandbox as a whole.
pub fn cgroups_fix() -> &'static str {
    "start sandboxd as root with --user (it prepares its cgroup subtree, then drops), with Delegate=yes in sandboxd.service on a cgroup v2 host; or mount the v1 memory and pids controllers"
}

/// What to do when the daemon holds capabilities it does not need.
pub fn capabilities_fix() -> &'static str {
    "run sandboxd without capabilities (systemd: CapabilityBoundingSet= empty)"
}

/// The sysctls that decide whether an unprivileged process may create user namespaces, as read
/// (None: absent on this kernel).
pub struct UsernsSysctls {
    /// kernel.apparmor_restrict_unprivileged_userns (Ubuntu).
    pub apparmor: Option<String>,
    /// kernel.unprivileged_userns_clone (Debian).
    pub debian: Option<String>,
    /// user.max_user_namespaces.
    pub max: Option<String>,
}

impl UsernsSysctls {
    pub fn read() -> UsernsSysctls {
        UsernsSysctls {
            apparmor: read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
            debian: read("/proc/sys/kernel/unprivileged_userns_clone"),
            max: read("/proc/sys/user/max_user_namespaces"),
        }
    }

    /// (name, value) of each sysctl present, for a report.
    pub fn present(&self) -> Vec<(&'static str, &str)> {
        [
            (
                "kernel.apparmor_restrict_unprivileged_userns",
                &self.apparmor,
            ),
            ("kernel.unprivileged_userns_clone", &self.debian),
            ("user.max_user_namespaces", &self.max),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }

    /// The sysctl that refuses every user namespace to this process, if one does (`privileged`:
    /// it holds CAP_SYS_ADMIN, which kernel.unprivileged_userns_clone does not restrict).
    pub fn refusal(&self, privileged: bool) -> Result<(), ProbeError> {
        match (self.max.as_deref(), self.debian.as_deref()) {
            (None, _) => Err(ProbeError::Sysctl(
                "user.max_user_namespaces is absent (no user namespace support)",
            )),
            (Some("0"), _) => Err(ProbeError::Sysctl("user.max_user_namespaces is 0")),
            (_, Some("0")) if !privileged => Err(ProbeError::Sysctl(
                "kernel.unprivileged_userns_clone is 0 and sandboxd lacks CAP_SYS_ADMIN",
            )),
            _ => Ok(()),
        }
    }

    /// What to change when user namespaces cannot be created: the one wording, shown by doctor,
    /// Info's problems and a refused namespace clone (`namespace_hint`). `errno`: what the
    /// kernel answered when creating them was tried (None: not tried, the sysctls decide).
    pub fn fix(&self, errno: Option<i32>) -> &'static str {
        if self.apparmor.as_deref() == Some("1") {
            "Ubuntu's AppArmor blocks unprivileged user namespaces: install packaging/apparmor/sandboxd (apparmor_parser -r /etc/apparmor.d/sandboxd)"
        } else if self.debian.as_deref() == Some("0") {
            "sysctl -w kernel.unprivileged_userns_clone=1"
        } else if self.max.as_deref() == Some("0") || errno == Some(libc::ENOSPC) {
            "sysctl -w user.max_user_namespaces=15000"
        } else if self.max.is_none() || errno == Some(libc::EINVAL) {
            "use a kernel with user and PID namespaces (CONFIG_USER_NS=y, CONFIG_PID_NS=y)"
        } else {
            "inside a container, allow clone/unshare with CLONE_NEWUSER (or run sandboxd on the host)"
        }
    }
}

/// The message of a refused namespace clone: what the kernel said, then the same fix doctor and
/// Info give (`UsernsSysctls::fix`), from the sysctls as they are now.
pub fn namespace_hint(errno: i32) -> String {
    namespace_message(errno, &UsernsSysctls::read())
}

fn namespace_message(errno: i32, sysctls: &UsernsSysctls) -> String {
    let base = format!(
        "cannot create the sandbox namespaces: {}",
        io::Error::from_raw_os_error(errno)
    );
    let cause = match errno {
        libc::EPERM | libc::EACCES => "unprivileged user namespaces are blocked here",
        libc::ENOSPC => "the user or PID namespace limit is reached",
        libc::EINVAL => "this kernel lacks user or PID namespace support",
        _ => return base,
    };
    format!("{base}; {cause}; {}", sysctls.fix(Some(errno)))
}

/// The user-namespace problem for Info and doctor: what the probe found, then the fix.
pub fn namespaces_problem(e: &ProbeError) -> String {
    format!("{e}; {}", UsernsSysctls::read().fix(e.errno()))
}

/// What the thorough probes found when the daemon started (see the module header): Info reports
/// it, as the cheap probes cannot see everything the thorough ones can.
#[derive(Debug, Clone, Default)]
pub struct AtStart {
    /// Why the sandbox namespaces could not be created at start (`namespaces_problem`), if so.
    pub namespaces: Option<String>,
    /// Why a network namespace (`network = "private"`) could not be created at start
    /// (`network_namespace_problem`), if so; probed only where `namespaces` is None.
    pub network_namespace: Option<String>,
}

impl AtStart {
    /// Run the thorough probes. Call before the runtime exists, as the user the daemon runs as.
    pub fn probe() -> AtStart {
        let namespaces = namespaces_creatable().err().map(|e| namespaces_problem(&e));
        let network_namespace = match namespaces {
            Some(_) => None,
            None => network_namespace_creatable()
                .err()
                .map(|e| network_namespace_problem(&e)),
        };
        AtStart {
            namespaces,
            network_namespace,
        }
    }
}

pub fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Why a probe could not show that a capability works.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The probed operation itself failed, with its errno.
    #[error("{op} failed: {err}")]
    Refused { op: &'static str, err: io::Error },
    /// The throwaway child died of a signal (e.g. SIGSYS from a filter outside us).
    #[error("{op} killed the probe child with signal {signal}")]
    Killed { op: &'static str, signal: i32 },
    /// A sysctl refuses it (the cheap probe's finding).
    #[error("{0}")]
    Sysctl(&'static str),
    /// No child to probe in.
    #[error("cannot fork a probe child: {0}")]
    Fork(io::Error),
}

impl ProbeError {
    /// The errno of a refused operation (None for the other kinds).
    pub fn errno(&self) -> Option<i32> {
        match self {
            ProbeError::Refused { err, .. } => err.raw_os_error(),
            _ => None,
        }
    }
}

/// Whether a seccomp filter can be installed: the thorough probe (doctor). The cheap
/// `seccomp_available`, then the real thing in a throwaway child (the calling process gets
/// neither no_new_privs nor the filter).
pub fn seccomp_installable() -> Result<(), ProbeError> {
    seccomp_available()?;
    // SAFETY: `try_seccomp` makes only raw syscalls (prctl, seccomp) on a filter that lives on
    // its own stack, reads errno and returns: async-signal-safe, no allocation, no lock, no
    // unwinding, so it is sound in a child forked from a multi-threaded process; and it runs in
    // that throwaway child, which `in_child` ends with _exit, as `try_seccomp` requires.
    unsafe { in_child("installing a filter", try_seccomp) }
}

/// Whether the namespaces every sandbox gets (user, PID, mount, IPC) can be created: the
/// thorough probe (doctor). The cheap `user_namespaces_allowed`, then unshare for real in a
/// throwaway child.
pub fn namespaces_creatable() -> Result<(), ProbeError> {
    user_namespaces_allowed()?;
    // SAFETY: `try_unshare` makes one raw syscall (unshare) with constant flags, reads errno
    // and returns: async-signal-safe, no allocation, no lock, no unwinding; it runs in the
    // throwaway child `in_child` forks and ends with _exit, as `try_unshare` requires.
    unsafe { in_child("unshare", try_unshare::<{ crate::handover::CLONE_FLAGS }>) }
}

/// Whether a sandbox can also get a network namespace of its own, which only `network =
/// "private"` uses: probed apart, so a host that refuses network namespaces alone (a
/// `RestrictNamespaces=~net` unit, a container's seccomp profile, `user.max_net_namespaces = 0`)
/// is reported as that, not as having no sandbox namespaces at all. Call it where
/// `namespaces_creatable` passed (which ran the cheap probe already); it tries the same
/// namespaces with a network namespace as well (what `network = "private"` adds: the init
/// unshares it inside the sandbox's user namespace).
pub fn network_namespace_creatable() -> Result<(), ProbeError> {
    const FLAGS: libc::c_int = crate::handover::CLONE_FLAGS | libc::CLONE_NEWNET;
    // SAFETY: as for `namespaces_creatable`: one raw unshare with constant flags in the
    // throwaway child `in_child` forks and ends with _exit, as `try_unshare` requires.
    unsafe { in_child("unshare(CLONE_NEWNET)", try_unshare::<FLAGS>) }
}

/// What to do when only network namespaces are refused.
pub fn network_namespace_fix(errno: Option<i32>) -> &'static str {
    match errno {
        Some(libc::ENOSPC) => "raise user.max_net_namespaces (sysctl -w user.max_net_namespaces=15000), or give the profiles network = \"none\", \"ports\" or \"full\" instead of \"private\"",
        _ => "allow CLONE_NEWNET to sandboxd (systemd: RestrictNamespaces= without net; a container: its seccomp profile), or give the profiles network = \"none\", \"ports\" or \"full\" instead of \"private\"",
    }
}

/// The network-namespace problem for Info and doctor: what the probe found, then the fix.
pub fn network_namespace_problem(e: &ProbeError) -> String {
    format!(
        "cannot create a network namespace: {e}; {}",
        network_namespace_fix(e.errno())
    )
}

/// Run `f` in a forked child; Ok(()) when it returns 0, else the errno it returned (or the
/// signal that killed it), labelled `op`.
///
/// # Safety
/// The caller may be multi-threaded (the test harness, the daemon's runtime), so in the child
/// only the forking thread exists and any lock another thread held (the allocator's, stdio's)
/// stays held forever. `f` must therefore make only async-signal-safe calls: raw syscalls on
/// data prepared before the fork, no allocation, no lock, no stdio, and it must not unwind.
unsafe fn in_child(op: &'static str, f: unsafe fn() -> i32) -> Result<(), ProbeError> {
    // SAFETY: fork has no memory preconditions; what the child may do after it is the contract
    // of this function, which the caller upholds for `f`, and the child does nothing else but
    // _exit (a raw syscall).
    match unsafe { libc::fork() } {
        -1 => Err(ProbeError::Fork(io::Error::last_os_error())),
        0 => {
            // SAFETY: the caller guarantees `f` is async-signal-safe and meant for a throwaway
            // child, which this is.
            let code = unsafe { f() };
            // SAFETY: _exit ends the child without running atexit handlers or flushing stdio
            // buffers copied from the parent; it is async-signal-safe.
            unsafe { libc::_exit(code) }
        }
        pid => {
            let mut st = 0;
            loop {
                // SAFETY: `pid` is the child forked just above and not yet reaped; `st` is a
                // live c_int the kernel writes the status into.
                let r = unsafe { libc::waitpid(pid, &mut st, 0) };
                if r == pid {
                    break;
                }
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EINTR) {
                    return Err(ProbeError::Refused { op: "waitpid", err });
                }
            }
            if libc::WIFSIGNALED(st) {
                return Err(ProbeError::Killed {
                    op,
                    signal: libc::WTERMSIG(st),
                });
            }
            match libc::WEXITSTATUS(st) {
                0 => Ok(()),
                e => Err(ProbeError::Refused {
                    op,
                    err: io::Error::from_raw_os_error(e),
                }),
            }
        }
    }
}

/// errno of the last failed call, as an exit status (1..=255), without allocating: safe to read
/// in a forked child.
fn child_errno() -> i32 {
    // SAFETY: __errno_location returns the calling thread's errno slot, valid for the thread's
    // life; reading it is async-signal-safe.
    let e = unsafe { *libc::__errno_location() };
    match e & 0xff {
        0 => 255,
        e => e,
    }
}

/// Put no_new_privs and an allow-everything seccomp filter on the calling process; 0 or errno.
///
/// # Safety
/// Only in a throwaway child that exits right after (`in_child`): both stay on the process for
/// good. It makes only raw syscalls on a filter on its own stack, so it is async-signal-safe.
unsafe fn try_seccomp() -> i32 {
    // SAFETY: prctl with integer arguments only; the caller guarantees this process is the
    // throwaway child.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return child_errno();
    }
    let prog = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: libc::SECCOMP_RET_ALLOW,
    }];
    let fprog = libc::sock_fprog {
        len: 1,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `prog`, one valid instruction (len 1), both alive on this stack
    // for the call; the kernel only reads them (it copies the filter).
    if unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog) } != 0 {
        return child_errno();
    }
    0
}

/// Move the calling process into new namespaces (`FLAGS`, CLONE_NEW* bits); 0 or errno.
///
/// # Safety
/// Only in a throwaway child that exits right after (`in_child`): the calling process stays in
/// the new namespaces. One raw syscall with constant flags: async-signal-safe.
unsafe fn try_unshare<const FLAGS: libc::c_int>() -> i32 {
    // SAFETY: unshare takes integer flags only; the caller guarantees this process is the
    // throwaway child.
    if unsafe { libc::unshare(FLAGS) } != 0 {
        return child_errno();
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_hint_names_the_cause() {
        assert!(namespace_hint(libc::EPERM).contains("unprivileged user namespaces are blocked"));
        // The fix is doctor's and Info's (`UsernsSysctls::fix`), from the sysctls: on Ubuntu
        // with the AppArmor restriction on, it names the profile to install.
        let ubuntu = UsernsSysctls {
            apparmor: Some("1".into()),
            debian: None,
            max: Some("100".into()),
        };
        assert!(namespace_message(libc::EACCES, &ubuntu).contains("packaging/apparmor/sandboxd"));
        assert!(namespace_message(libc::EACCES, &ubuntu).ends_with(ubuntu.fix(Some(libc::EACCES))));
        assert!(namespace_hint(libc::ENOSPC).contains("user.max_user_namespaces"));
        assert!(namespace_hint(libc::EINVAL).contains("lacks user or PID namespace support"));
        assert!(namespace_hint(libc::ENOMEM).starts_with("cannot create the sandbox namespaces: "));
        assert!(!namespace_hint(libc::ENOMEM).contains(';'));
    }

    #[test]
    fn the_userns_fix_follows_the_blocking_sysctl() {
        let s = |a: Option<&str>, d: Option<&str>, m: Option<&str>| UsernsSysctls {
            apparmor: a.map(String::from),
            debian: d.map(String::from),
            max: m.map(String::from),
        };
        assert!(s(Some("1"), Some("0"), Some("0"))
            .fix(None)
            .contains("AppArmor"));
        assert!(s(Some("0"), Some("0"), None)
            .fix(None)
            .contains("unprivileged_userns_clone=1"));
        assert!(s(None, None, Some("0"))
            .fix(None)
            .contains("max_user_namespaces=15000"));
        assert!(s(None, Some("1"), Some("100"))
            .fix(None)
            .contains("inside a container"));
        // What the kernel answered a real attempt picks the fix the sysctls cannot show.
        assert!(s(None, Some("1"), Some("100"))
            .fix(Some(libc::ENOSPC))
            .contains("max_user_namespaces=15000"));
        assert!(s(None, Some("1"), Some("100"))
            .fix(Some(libc::EINVAL))
            .contains("CONFIG_USER_NS"));
        assert_eq!(
            s(None, Some("1"), Some("100")).present(),
            [
                ("kernel.unprivileged_userns_clone", "1"),
                ("user.max_user_namespaces", "100")
            ]
        );
    }

    #[test]
    fn the_cheap_userns_probe_reads_the_refusing_sysctls() {
        let s = |d: Option<&str>, m: Option<&str>| UsernsSysctls {
            apparmor: None,
            debian: d.map(String::from),
            max: m.map(String::from),
        };
        assert!(s(None, None).refusal(true).is_err());
        assert!(s(None, Some("0")).refusal(true).is_err());
        assert!(s(Some("0"), Some("100")).refusal(false).is_err());
        assert!(s(Some("0"), Some("100")).refusal(true).is_ok());
        assert!(s(Some("1"), Some("100")).refusal(false).is_ok());
    }

    #[test]
    fn cheap_and_thorough_probes_agree_on_this_host() {
        // The development and CI machines have seccomp and user namespaces: Info's cheap
        // probes and doctor's thorough ones (run from this multi-threaded harness) both say so.
        seccomp_available().unwrap();
        seccomp_installable().unwrap();
        user_namespaces_allowed().unwrap();
        namespaces_creatable().unwrap();
    }

    #[test]
    fn the_landlock_message_is_detail_then_fix() {
        for e in [libc::EPERM, libc::EOPNOTSUPP, libc::ENOSYS] {
            let (detail, fix) = landlock_unavailable(e);
            let m = landlock_unavailable_message(e);
            assert_eq!(m, format!("{detail}; {fix}"));
        }
        assert!(landlock_unavailable_message(libc::EPERM)
            .contains("Landlock syscalls are blocked (EPERM)"));
    }

    #[test]
    fn landlock_hints_by_errno() {
        assert!(landlock_unavailable(libc::EPERM)
            .0
            .contains("blocked (EPERM)"));
        assert!(landlock_unavailable(libc::EOPNOTSUPP).1.contains("lsm="));
        assert!(landlock_unavailable(libc::ENOSYS)
            .1
            .contains("CONFIG_SECURITY_LANDLOCK"));
    }

    /// Set in the copy of this test binary that runs with network namespaces refused.
    const NO_NETNS: &str = "SANDBOXD_TEST_NETNS_REFUSED";

    /// A host that refuses network namespaces alone (here: a seccomp filter answering EPERM to
    /// an unshare with CLONE_NEWNET, as systemd's RestrictNamespaces=~net does) gets the
    /// sandbox namespaces reported as creatable and the network namespace as refused, with its
    /// own fix. The refusal is the kernel's, in a copy of this test binary whose test thread
    /// carries the filter (the probes fork from that thread and inherit it).
    #[test]
    fn a_host_refusing_only_network_namespaces_is_reported_as_that() {
        if std::env::var_os(NO_NETNS).is_some() {
            refuse_network_namespaces();
            let at = AtStart::probe();
            assert_eq!(at.namespaces, None);
            let p = at.network_namespace.expect("the refusal is reported");
            assert!(
                p.starts_with("cannot create a network namespace: unshare(CLONE_NEWNET) failed: Operation not permitted"),
                "{p}"
            );
            assert!(p.ends_with(network_namespace_fix(Some(libc::EPERM))), "{p}");
            println!("REFUSED-AS-EXPECTED");
            return;
        }
        // Positive control: without the filter this host creates both.
        let at = AtStart::probe();
        assert_eq!(at.namespaces, None, "this host creates sandbox namespaces");
        assert_eq!(at.network_namespace, None);
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "host::tests::a_host_refusing_only_network_namespaces_is_reported_as_that",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(NO_NETNS, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("REFUSED-AS-EXPECTED"), "{text}");
    }

    /// no_new_privs and a filter on the calling thread: unshare with CLONE_NEWNET → EPERM.
    fn refuse_network_namespaces() {
        const NR: u32 = 0; // offsetof(struct seccomp_data, nr)
        const ARG0: u32 = 16; // offsetof(struct seccomp_data, args[0]), low half on x86_64
        let stmt = |code: u32, k: u32| libc::sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        };
        let jump = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
            code: code as u16,
            jt,
            jf,
            k,
        };
        let prog = [
            stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, NR),
            jump(
                libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
                libc::SYS_unshare as u32,
                0,
                3,
            ),
            stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, ARG0),
            jump(
                libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K,
                libc::CLONE_NEWNET as u32,
                0,
                1,
            ),
            stmt(
                libc::BPF_RET | libc::BPF_K,
                libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
            ),
            stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
        ];
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: prctl with integer arguments; this is a throwaway copy of the test binary.
        let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        assert_eq!(r, 0);
        // SAFETY: `fprog` points at `prog` (its length in `len`), both alive for the call; the
        // kernel copies the filter. Flags 0: this thread only.
        let r =
            unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog) };
        assert_eq!(r, 0, "{}", io::Error::last_os_error());
    }
}

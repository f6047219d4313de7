//! What this kernel can do, probed, and what to do when it cannot: shared by `Info`, `doctor`,
//! and the errors a refused exec carries (the namespace hint). Landlock's own refusal messages
//! stay with its error type (`confine::landlock::LandlockError`).

use std::io;

/// Landlock ABI offered by the running kernel, or the errno that stopped us asking (EPERM: a
/// seccomp filter outside us blocks the syscalls).
pub fn landlock_abi() -> Result<i32, i32> {
    crate::confine::landlock::kernel_abi()
}

/// Whether the kernel supports seccomp filters (it reports a Seccomp: line for every process).
pub fn seccomp_supported() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .contains("Seccomp:")
}

/// user.max_user_namespaces (0 when unreadable): 0 means no user namespace can be created.
pub fn max_user_namespaces() -> u64 {
    std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0)
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

    /// What to change when user namespaces cannot be created.
    pub fn fix(&self) -> &'static str {
        if self.apparmor.as_deref() == Some("1") {
            "Ubuntu's AppArmor blocks unprivileged user namespaces: install packaging/apparmor/sandboxd (apparmor_parser -r /etc/apparmor.d/sandboxd)"
        } else if self.debian.as_deref() == Some("0") {
            "sysctl -w kernel.unprivileged_userns_clone=1"
        } else if self.max.as_deref() == Some("0") {
            "sysctl -w user.max_user_namespaces=15000"
        } else {
            "inside a container, allow clone/unshare with CLONE_NEWUSER (or run sandboxd on the host)"
        }
    }
}

/// Why Landlock is unavailable and what to do, by the errno `landlock_abi` returned: (detail, fix).
pub fn landlock_unavailable(errno: i32) -> (String, &'static str) {
    match errno {
        libc::EPERM => (
            "the Landlock syscalls are filtered (EPERM), as inside systemd-nspawn or a container runtime's seccomp profile".into(),
            "allow landlock_create_ruleset, landlock_add_rule and landlock_restrict_self (e.g. systemd-nspawn --system-call-filter='landlock_create_ruleset landlock_add_rule landlock_restrict_self', or a Docker seccomp profile that permits them)",
        ),
        libc::EOPNOTSUPP => (
            "Landlock is built in but disabled at boot".into(),
            "add landlock to the lsm= kernel parameter (e.g. lsm=landlock,lockdown,yama,integrity,apparmor,bpf) and reboot",
        ),
        e => (
            format!("not available: {}", io::Error::from_raw_os_error(e)),
            "use a kernel with CONFIG_SECURITY_LANDLOCK=y (Linux 5.13+; 6.7+ for network rules)",
        ),
    }
}

/// The message of a refused namespace clone, with what to check for its errno.
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

pub fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Run `f` in a forked child; Ok(()) when it returns 0, else the errno it returned.
pub fn in_child(f: fn() -> i32) -> Result<(), i32> {
    // SAFETY: doctor runs single-threaded before any runtime starts; the child only calls
    // async-signal-safe syscalls in `f` and then _exit.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
        0 => {
            let code = f();
            // SAFETY: _exit is always safe.
            unsafe { libc::_exit(code) }
        }
        pid => {
            let mut st = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(pid, &mut st, 0) };
            match libc::WEXITSTATUS(st) {
                0 => Ok(()),
                e => Err(e),
            }
        }
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(255)
        & 0xff
}

pub fn try_seccomp() -> i32 {
    // SAFETY: in a throwaway child: no_new_privs and an allow-everything filter.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return errno();
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
        if libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0 {
            return errno();
        }
    }
    0
}

pub fn try_namespaces() -> i32 {
    let flags = crate::handover::CLONE_FLAGS | libc::CLONE_NEWNET;
    // SAFETY: in a throwaway child: the namespaces every sandbox gets (and network, for
    // `network = "private"`).
    if unsafe { libc::unshare(flags) } != 0 {
        return errno();
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_hint_names_the_cause() {
        assert!(namespace_hint(libc::EPERM).contains("unprivileged user namespaces are blocked"));
        assert!(namespace_hint(libc::EACCES).contains("packaging/apparmor/sandboxd"));
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
            .fix()
            .contains("AppArmor"));
        assert!(s(Some("0"), Some("0"), None)
            .fix()
            .contains("unprivileged_userns_clone=1"));
        assert!(s(None, None, Some("0"))
            .fix()
            .contains("max_user_namespaces=15000"));
        assert!(s(None, Some("1"), Some("100"))
            .fix()
            .contains("inside a container"));
        assert_eq!(
            s(None, Some("1"), Some("100")).present(),
            [
                ("kernel.unprivileged_userns_clone", "1"),
                ("user.max_user_namespaces", "100")
            ]
        );
    }

    #[test]
    fn landlock_hints_by_errno() {
        assert!(landlock_unavailable(libc::EPERM).0.contains("filtered"));
        assert!(landlock_unavailable(libc::EOPNOTSUPP).1.contains("lsm="));
        assert!(landlock_unavailable(libc::ENOSYS)
            .1
            .contains("CONFIG_SECURITY_LANDLOCK"));
    }
}

//! `sandboxd doctor`: is this host ready to run sandboxes? Each check tries the real thing (in a
//! throwaway child process where it changes process state) and says what to do when it fails.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// Without it sandboxd refuses every exec (fail closed).
    pub critical: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

fn check(name: &str, ok: bool, critical: bool, detail: String, fix: &str) -> Check {
    Check {
        name: name.into(),
        ok,
        critical,
        detail,
        fix: if ok { String::new() } else { fix.into() },
    }
}

fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Run `f` in a forked child; Ok(()) when it returns 0, else the errno it returned.
fn in_child(f: fn() -> i32) -> Result<(), i32> {
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

fn try_seccomp() -> i32 {
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

fn try_namespaces() -> i32 {
    // SAFETY: in a throwaway child: the namespaces every sandbox gets (and network, for
    // `network = "private"`).
    let flags = crate::handover::CLONE_FLAGS | libc::CLONE_NEWNET;
    if unsafe { libc::unshare(flags) } != 0 {
        return errno();
    }
    0
}

const ABI_FEATURES: &[(i32, &str)] = &[
    (1, "filesystem access"),
    (2, "rename/link across directories"),
    (3, "truncate"),
    (4, "TCP bind/connect (network = \"ports\")"),
    (5, "device ioctls"),
    (6, "abstract unix socket and signal scoping"),
    (7, "audit logging control"),
    (9, "connect() to named unix sockets (RESOLVE_UNIX)"),
];

/// Landlock's RESOLVE_UNIX (ABI 9): a second layer for named sockets. Not critical: the
/// sandbox's constructed root already leaves every host socket out unless a profile grants it.
fn resolve_unix(abi: i32) -> Check {
    check(
        "Landlock RESOLVE_UNIX",
        abi >= 9,
        false,
        if abi >= 9 {
            format!("ABI {abi}: connect() to a named socket is also a Landlock right; sandboxes get it only on their workspace, /tmp and granted sockets")
        } else {
            format!("not offered (ABI {abi} < 9): host sockets are kept out by the sandbox's constructed root alone (they are absent from it)")
        },
        "for the second layer, run a kernel whose Landlock offers ABI 9 or later (Linux 7.1+); nothing is exposed without it",
    )
}

pub fn checks(min_landlock_abi: u32) -> Vec<Check> {
    let mut out = vec![];
    match crate::confine::landlock::kernel_abi() {
        Ok(v) => {
            let feats: Vec<&str> = ABI_FEATURES
                .iter()
                .filter(|(a, _)| *a <= v)
                .map(|(_, f)| *f)
                .collect();
            out.push(check(
                "Landlock",
                v >= min_landlock_abi as i32,
                true,
                format!("ABI {v}: {}", feats.join(", ")),
                "upgrade the kernel, or lower min_landlock_abi in sandboxd.toml",
            ));
            out.push(resolve_unix(v));
        }
        Err(libc::EPERM) => out.push(check(
            "Landlock",
            false,
            true,
            "the Landlock syscalls are filtered (EPERM), as inside systemd-nspawn or a container runtime's seccomp profile".into(),
            "allow landlock_create_ruleset, landlock_add_rule and landlock_restrict_self (e.g. systemd-nspawn --system-call-filter='landlock_create_ruleset landlock_add_rule landlock_restrict_self', or a Docker seccomp profile that permits them)",
        )),
        Err(libc::EOPNOTSUPP) => out.push(check(
            "Landlock",
            false,
            true,
            "Landlock is built in but disabled at boot".into(),
            "add landlock to the lsm= kernel parameter (e.g. lsm=landlock,lockdown,yama,integrity,apparmor,bpf) and reboot",
        )),
        Err(e) => out.push(check(
            "Landlock",
            false,
            true,
            format!("not available: {}", std::io::Error::from_raw_os_error(e)),
            "use a kernel with CONFIG_SECURITY_LANDLOCK=y (Linux 5.13+; 6.7+ for network rules)",
        )),
    }
    let sec = in_child(try_seccomp);
    out.push(check(
        "seccomp",
        sec.is_ok(),
        true,
        match sec {
            Ok(()) => "filters can be installed".into(),
            Err(e) => format!(
                "installing a filter failed: {}",
                std::io::Error::from_raw_os_error(e)
            ),
        },
        "use a kernel with CONFIG_SECCOMP_FILTER=y; inside a container, allow the seccomp syscall",
    ));
    let ns = in_child(try_namespaces);
    let apparmor = read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
    let debian = read("/proc/sys/kernel/unprivileged_userns_clone");
    let max = read("/proc/sys/user/max_user_namespaces");
    let mut detail = match ns {
        Ok(()) => "user, PID, mount, IPC and network namespaces can be created".to_string(),
        Err(e) => format!("unshare failed: {}", std::io::Error::from_raw_os_error(e)),
    };
    for (k, v) in [
        ("kernel.apparmor_restrict_unprivileged_userns", &apparmor),
        ("kernel.unprivileged_userns_clone", &debian),
        ("user.max_user_namespaces", &max),
    ] {
        if let Some(v) = v {
            detail.push_str(&format!("; {k}={v}"));
        }
    }
    let fix = if apparmor.as_deref() == Some("1") {
        "Ubuntu's AppArmor blocks unprivileged user namespaces: install packaging/apparmor/sandboxd (apparmor_parser -r /etc/apparmor.d/sandboxd)"
    } else if debian.as_deref() == Some("0") {
        "sysctl -w kernel.unprivileged_userns_clone=1"
    } else if max.as_deref() == Some("0") {
        "sysctl -w user.max_user_namespaces=15000"
    } else {
        "inside a container, allow clone/unshare with CLONE_NEWUSER (or run sandboxd on the host)"
    };
    out.push(check("user namespaces", ns.is_ok(), true, detail, fix));

    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let own = read("/proc/self/cgroup").and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("0::").map(String::from))
    });
    let writable = own.as_ref().is_some_and(|p| {
        let dir = format!("/sys/fs/cgroup{p}");
        std::ffi::CString::new(dir)
            // SAFETY: access with a valid C string.
            .map(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0)
            .unwrap_or(false)
    });
    out.push(check(
        "cgroup v2 delegation",
        v2 && writable,
        false,
        match (v2, &own) {
            (false, _) => "cgroup v2 is not mounted".into(),
            (true, Some(p)) => format!(
                "cgroup {p} is {}delegated to this user",
                if writable { "" } else { "not " }
            ),
            (true, None) => "own cgroup unknown".into(),
        },
        "optional today (limits use rlimits); under systemd set Delegate=yes for per-sandbox memory accounting",
    ));

    let status = read("/proc/self/status").unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let caps = field("CapEff:");
    let no_caps = caps.trim_start_matches('0').is_empty();
    out.push(check(
        "daemon identity",
        uid == 0 || no_caps,
        false,
        format!(
            "uid {uid}, effective capabilities {caps}{}",
            if uid == 0 {
                " (as root, `sandboxd serve` drops to --user before serving)"
            } else if no_caps {
                " (none: good)"
            } else {
                " (sandboxd needs none)"
            }
        ),
        "run sandboxd without capabilities (systemd: CapabilityBoundingSet= empty)",
    ));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_host_has_the_layers() {
        // The development and CI machines have Landlock ABI 7, seccomp and user namespaces.
        let c = super::checks(3);
        for name in ["Landlock", "seccomp"] {
            let x = c.iter().find(|c| c.name == name).unwrap();
            assert!(x.ok, "{x:?}");
        }
        let r = c
            .iter()
            .find(|c| c.name == "Landlock RESOLVE_UNIX")
            .unwrap();
        let abi = crate::confine::landlock::kernel_abi().unwrap();
        assert_eq!(r.ok, abi >= 9, "{r:?}");
        assert!(!r.critical);
    }

    #[test]
    fn resolve_unix_is_reported_both_ways() {
        let no = super::resolve_unix(7);
        assert!(!no.ok && no.detail.contains("absent") && !no.fix.is_empty());
        let yes = super::resolve_unix(9);
        assert!(yes.ok && yes.fix.is_empty());
    }
}

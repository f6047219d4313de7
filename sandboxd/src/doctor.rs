//! `sandboxd doctor`: is this host ready to run sandboxes? Each check tries the real thing (in a
//! throwaway child process where it changes process state) and says what to do when it fails.

use crate::confine::cgroup::CgroupMode;
use crate::host;
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
        host::landlock_resolve_unix_fix(),
    )
}

/// Which mechanism bounds a sandbox's memory and processes as a whole. Critical only when the
/// config requires cgroups (the daemon then refuses to start without them).
fn cgroups_check(mode: CgroupMode, a: &crate::cgroups::Available) -> Check {
    use crate::cgroups::Available;
    let (ok, detail) = match (mode, a) {
        (CgroupMode::Off, _) => (
            false,
            crate::cgroups::degraded_note("off in the config (cgroups = \"off\")"),
        ),
        (_, Available::V2 { own }) => (
            true,
            format!("cgroup v2, delegated: each sandbox gets its own cgroup under {}/sandboxes with its profile's memory_bytes, pids and cpu_weight", own.display()),
        ),
        (_, Available::V1 { memory, pids }) => (
            true,
            format!("cgroup v1 memory and pids controllers: each sandbox gets its own cgroup under {}/sandboxd and {}/sandboxd with its profile's memory_bytes and pids (sandboxd serve prepares them as root, then drops; cpu_weight needs cgroup v2)", memory.display(), pids.display()),
        ),
        (_, Available::None(why)) => (false, crate::cgroups::degraded_note(why)),
    };
    check(
        "cgroups",
        ok,
        mode == CgroupMode::Required,
        detail,
        host::cgroups_fix(),
    )
}

/// `private_profiles`: the configured profiles with `network = "private"`, which make the
/// network-namespace check critical.
pub fn checks(min_landlock_abi: u32, mode: CgroupMode, private_profiles: &[&str]) -> Vec<Check> {
    let mut out = vec![];
    match host::landlock_abi() {
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
                host::landlock_too_old_fix(),
            ));
            out.push(resolve_unix(v));
        }
        Err(e) => {
            let (detail, fix) = host::landlock_unavailable(e);
            out.push(check("Landlock", false, true, detail, fix))
        }
    }
    let sec = host::seccomp_installable();
    out.push(check(
        "seccomp",
        sec.is_ok(),
        true,
        match sec {
            Ok(()) => "filters can be installed".into(),
            Err(e) => e.to_string(),
        },
        host::seccomp_fix(),
    ));
    let ns = host::namespaces_creatable();
    let sysctls = host::UsernsSysctls::read();
    let mut detail = match &ns {
        Ok(()) => "user, PID, mount and IPC namespaces can be created".to_string(),
        Err(e) => e.to_string(),
    };
    for (k, v) in sysctls.present() {
        detail.push_str(&format!("; {k}={v}"));
    }
    let fix = sysctls.fix(ns.as_ref().err().and_then(host::ProbeError::errno));
    out.push(check("user namespaces", ns.is_ok(), true, detail, fix));
    if ns.is_ok() {
        // Apart: only network = "private" needs one, so it is critical only where a configured
        // profile uses it (their execs are refused).
        let net = host::network_namespace_creatable();
        let fix = host::network_namespace_fix(net.as_ref().err().and_then(host::ProbeError::errno));
        let detail = match (&net, private_profiles) {
            (Ok(()), _) => {
                "a sandbox can get its own network namespace (network = \"private\")".into()
            }
            (Err(e), []) => format!("{e}; no configured profile uses network = \"private\""),
            (Err(e), names) => format!(
                "{e}: network = \"private\" (profile {}) is refused",
                names.join(", ")
            ),
        };
        let critical = !private_profiles.is_empty();
        out.push(check(
            "network namespaces",
            net.is_ok(),
            critical,
            detail,
            fix,
        ));
    }

    out.push(cgroups_check(mode, &crate::cgroups::probe()));

    let status = host::read("/proc/self/status").unwrap_or_default();
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
        host::capabilities_fix(),
    ));
    out
}

/// The mechanism holding each workspace's byte ceiling (`disk.rs`) for a profile's
/// `workspace_bytes`. Never critical: where the filesystem offers no ceiling, the sandbox's write
/// budget holds it.
pub fn disk_checks(workspaces: &[std::path::PathBuf], workspace_bytes: u64) -> Vec<Check> {
    workspaces
        .iter()
        .map(|w| {
            let c = crate::disk::decide(&crate::disk::probe_path(w), workspace_bytes);
            check(
                "workspace ceiling",
                true,
                false,
                format!("{}: {c}", w.display()),
                "",
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_host_has_the_layers() {
        // The development and CI machines have Landlock ABI 7, seccomp and user namespaces.
        let c = super::checks(3, super::CgroupMode::Auto, &["build"]);
        for name in [
            "Landlock",
            "seccomp",
            "user namespaces",
            "network namespaces",
        ] {
            let x = c.iter().find(|c| c.name == name).unwrap();
            assert!(x.ok, "{x:?}");
        }
        let r = c
            .iter()
            .find(|c| c.name == "Landlock RESOLVE_UNIX")
            .unwrap();
        let abi = crate::host::landlock_abi().unwrap();
        assert_eq!(r.ok, abi >= 9, "{r:?}");
        assert!(!r.critical);
        // A configured network = "private" profile makes the network namespaces critical.
        let net = |private: &[&str]| {
            super::checks(3, super::CgroupMode::Auto, private)
                .into_iter()
                .find(|c| c.name == "network namespaces")
                .unwrap()
        };
        assert!(net(&["build"]).critical);
        assert!(!net(&[]).critical);
    }

    #[test]
    fn cgroups_are_reported_never_silently() {
        use super::CgroupMode;
        use crate::cgroups::Available;
        let none = Available::None("cgroup v2 is not mounted".into());
        let c = super::cgroups_check(CgroupMode::Auto, &none);
        assert!(
            !c.ok && !c.critical && c.detail.contains("per process only"),
            "{c:?}"
        );
        assert!(super::cgroups_check(CgroupMode::Required, &none).critical);
        let v1 = Available::V1 {
            memory: "/sys/fs/cgroup/memory".into(),
            pids: "/sys/fs/cgroup/pids".into(),
        };
        assert!(super::cgroups_check(CgroupMode::Auto, &v1).ok);
        let off = super::cgroups_check(CgroupMode::Off, &v1);
        assert!(
            !off.ok && off.detail.contains("off in the config"),
            "{off:?}"
        );
    }

    #[test]
    fn resolve_unix_is_reported_both_ways() {
        let no = super::resolve_unix(7);
        assert!(!no.ok && no.detail.contains("absent") && !no.fix.is_empty());
        let yes = super::resolve_unix(9);
        assert!(yes.ok && yes.fix.is_empty());
    }
}

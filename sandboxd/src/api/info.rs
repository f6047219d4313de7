//! The Info RPC: what this host and configuration enforce (probes in `crate::host`).

use crate::config::Config;
use crate::host;
use nanobot_proto::pb::{self, InfoResponse};

/// What this host and configuration enforce.
pub fn info(cfg: &Config, cgroups: &crate::cgroups::Cgroups) -> InfoResponse {
    let mut layers = vec!["rlimits".to_string(), "no_new_privs".to_string()];
    let mut problems = vec![];
    let mut degraded = vec![];
    let abi = match crate::confine::landlock::detect(cfg.min_landlock_abi) {
        Ok(_) => {
            layers.push("landlock".into());
            host::landlock_abi().unwrap_or(0) as u32
        }
        Err(e) => {
            if cfg.allow_degraded.iter().any(|l| l == "landlock") {
                degraded.push(format!("landlock: {e}"));
            } else {
                problems.push(format!("landlock: {e}"));
            }
            host::landlock_abi().unwrap_or(0).max(0) as u32
        }
    };
    // The cheap probes (Info runs per request); doctor runs their thorough variants, which
    // never pass where these fail (`crate::host`).
    match host::seccomp_available() {
        Ok(()) => layers.push("seccomp".into()),
        Err(e) => problems.push(format!("seccomp: {e}; {}", host::seccomp_fix())),
    }
    match host::user_namespaces_allowed() {
        Ok(()) => layers.push("namespaces".into()),
        Err(e) => problems.push(format!(
            "namespaces: {e}; {}",
            host::UsernsSysctls::read().fix()
        )),
    }
    // Not a failure (execs run), but never silent: without them the limits are per process.
    match cgroups.degraded() {
        Some(d) => degraded.push(d),
        None => layers.push("cgroups".into()),
    }
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    pb::InfoResponse {
        version: env!("CARGO_PKG_VERSION").into(),
        landlock_abi: abi,
        layers_enforced: layers,
        profiles: cfg.profiles.keys().cloned().collect(),
        degraded,
        problems,
        uid,
        gid,
    }
}

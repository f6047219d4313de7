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
    if host::seccomp_supported() {
        layers.push("seccomp".into());
    } else {
        problems.push("seccomp: the kernel does not support seccomp filters".into());
    }
    if host::max_user_namespaces() > 0 {
        layers.push("namespaces".into());
    } else {
        problems.push("namespaces: user.max_user_namespaces is 0".into());
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

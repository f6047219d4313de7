//! The Info RPC: what this host and configuration enforce (probes in `crate::host`).

use crate::config::Config;
use crate::host;
use crate::vocab::Layer;
use nanobot_proto::pb::{self, InfoResponse};

/// What this host and configuration enforce. `at_start`: what the thorough probes found when
/// the daemon started (`host::AtStart`), reported next to the cheap probes run now.
pub fn info(
    cfg: &Config,
    cgroups: &crate::cgroups::Cgroups,
    at_start: &host::AtStart,
) -> InfoResponse {
    // `layers_enforced` and the prefixes of `problems`/`degraded` are the contract's layer names
    // (`Layer::as_str`), the same strings a refusal's `refused_layer` carries.
    let mut layers = vec![Layer::Rlimits.to_string(), Layer::NoNewPrivs.to_string()];
    let mut problems = vec![];
    let mut degraded = vec![];
    let abi = match crate::confine::landlock::detect(cfg.min_landlock_abi) {
        Ok(_) => {
            layers.push(Layer::Landlock.to_string());
            host::landlock_abi().unwrap_or(0) as u32
        }
        Err(e) => {
            let landlock = Layer::Landlock;
            if landlock.degraded_allowed(&cfg.allow_degraded) {
                degraded.push(format!("{landlock}: {e}"));
            } else {
                problems.push(format!("{landlock}: {e}"));
            }
            host::landlock_abi().unwrap_or(0).max(0) as u32
        }
    };
    // The cheap probes (Info runs per request); doctor runs their thorough variants, which
    // never pass where these fail (`crate::host`). For namespaces the thorough one ran at start.
    match host::seccomp_available() {
        Ok(()) => layers.push(Layer::Seccomp.to_string()),
        Err(e) => problems.push(format!("{}: {e}; {}", Layer::Seccomp, host::seccomp_fix())),
    }
    let namespaces = match (&at_start.namespaces, host::user_namespaces_allowed()) {
        (_, Err(e)) => Err(host::namespaces_problem(&e)),
        (Some(at_start), Ok(())) => Err(at_start.clone()),
        (None, Ok(())) => Ok(()),
    };
    match namespaces {
        Ok(()) => {
            layers.push(Layer::Namespaces.to_string());
            // Only `network = "private"` needs a network namespace: where the host refuses
            // those alone, the profiles that use it are named (their execs are refused), and
            // the others are not affected.
            if let Some(p) = &at_start.network_namespace {
                let private = cfg.private_network_profiles();
                if !private.is_empty() {
                    problems.push(format!(
                        "{}: network = \"private\" (profile {}) cannot run here: {p}",
                        Layer::Namespaces,
                        private.join(", ")
                    ));
                }
            }
        }
        Err(p) => problems.push(format!("{}: {p}", Layer::Namespaces)),
    }
    // Not a failure (execs run), but never silent: without them the limits are per process.
    // "cgroups" is no `Layer`: a missing cgroup never refuses an exec (it only degrades the
    // limits to per process, `ExecResult.degraded` says so), and `Layer` names what can refuse
    // one. It is still enforced on every exec when present, so Info lists it under this wire
    // name, which clients already match.
    match cgroups.degraded() {
        Some(d) => degraded.push(d),
        None => layers.push("cgroups".to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_reports_the_start_up_probe_and_the_cgroups_fix() {
        let cfg = Config::default();
        let cgroups = crate::cgroups::Cgroups::none("cgroup v2 is not mounted");
        let refused = host::AtStart {
            namespaces: Some("unshare failed: Operation not permitted; allow it".into()),
            network_namespace: None,
        };
        let i = info(&cfg, &cgroups, &refused);
        // Where the cheap probe passes, the thorough one's finding at start still shows.
        assert!(!i.layers_enforced.contains(&Layer::Namespaces.to_string()));
        assert!(
            i.problems
                .contains(&"namespaces: unshare failed: Operation not permitted; allow it".into()),
            "{:?}",
            i.problems
        );
        assert!(
            i.degraded.contains(&format!(
                "{}; {}",
                crate::cgroups::degraded_note("cgroup v2 is not mounted"),
                host::cgroups_fix()
            )),
            "{:?}",
            i.degraded
        );
        // This host creates namespaces (as the host tests assume): nothing at start, none now.
        let i = info(&cfg, &cgroups, &host::AtStart::default());
        assert!(i.layers_enforced.contains(&Layer::Namespaces.to_string()));
    }

    #[test]
    fn a_refused_network_namespace_names_only_the_profiles_that_need_one() {
        let cgroups = crate::cgroups::Cgroups::none("cgroup v2 is not mounted");
        let no_netns = host::AtStart {
            namespaces: None,
            network_namespace: Some("cannot create a network namespace: EPERM; allow it".into()),
        };
        let mut cfg = Config::default();
        cfg.profiles
            .retain(|_, p| p.network != crate::policy::Network::Private);
        // No profile uses network = "private": the sandbox namespaces are enforced, no problem.
        let i = info(&cfg, &cgroups, &no_netns);
        assert!(i.layers_enforced.contains(&Layer::Namespaces.to_string()));
        assert!(i.problems.is_empty(), "{:?}", i.problems);
        // Two that do: both named, the layer still enforced for the rest.
        for name in ["lan", "offline-net"] {
            let p = crate::config::Profile {
                network: crate::policy::Network::Private,
                ..Default::default()
            };
            cfg.profiles.insert(name.into(), p);
        }
        let i = info(&cfg, &cgroups, &no_netns);
        assert!(i.layers_enforced.contains(&Layer::Namespaces.to_string()));
        assert_eq!(
            i.problems,
            vec!["namespaces: network = \"private\" (profile lan, offline-net) cannot run here: cannot create a network namespace: EPERM; allow it".to_string()]
        );
    }
}

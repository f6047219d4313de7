//! The request's Landlock ruleset, built in the init (the command only enforces it): detected
//! once, taken from the warm preparation when it fits the request, else created now; the
//! workspace rule added last.

use crate::confine;
use crate::policy::{SandboxSpec, WarmShape};
use crate::step::StepError;
use crate::vocab::Layer;
use std::os::fd::{AsFd, OwnedFd};

/// A ruleset prepared ahead for a warm shape, at the ABI it was made for.
pub(super) type WarmRuleset = (WarmShape, landlock::ABI, landlock::RulesetCreated);

/// Whether a ruleset made ahead for `shape` at `built_abi` is the one `spec` needs at `abi` (the
/// warm-reuse rule for Landlock: same ABI, filesystem policy, network mode and ports).
pub(super) fn warm_ruleset_fits(
    shape: &WarmShape,
    built_abi: landlock::ABI,
    spec: &SandboxSpec,
    abi: landlock::ABI,
) -> bool {
    built_abi == abi
        && shape.fs == spec.fs
        && shape.network == spec.network
        && shape.connect_ports == spec.connect_ports
}

/// The layers missing but allowed to be (with the reason), and the ruleset the command enforces
/// (None: Landlock degraded). `warm` is taken when Landlock is available.
pub(super) fn ruleset(
    spec: &SandboxSpec,
    warm: &mut Option<WarmRuleset>,
    new_root: &OwnedFd,
    workspace: &OwnedFd,
) -> Result<(Vec<String>, Option<landlock::RulesetCreated>), StepError> {
    // A layer the kernel cannot apply fails the exec, unless the operator allowed it to be missing;
    // then the command runs without it and every result says so.
    let mut degraded = vec![];
    // Detected once here; the command applies the rules for this ABI (None: degraded).
    let landlock = match confine::landlock::detect(spec.min_landlock_abi) {
        Ok(abi) => Some(abi),
        Err(e) if Layer::Landlock.degraded_allowed(&spec.allow_degraded) => {
            degraded.push(format!("{}: {e}", Layer::Landlock));
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
            let created = match warm.take() {
                Some((shape, a, r)) if warm_ruleset_fits(&shape, a, spec, abi) => r,
                _ => confine::landlock::create(&plan, new_root)
                    .map_err(|e| ll(e, "landlock_add_rule"))?,
            };
            Some(
                confine::landlock::add_workspace(created, &plan, workspace.as_fd())
                    .map_err(|e| ll(e, "landlock_add_rule workspace"))?,
            )
        }
        None => None,
    };
    Ok((degraded, ruleset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{FsPolicy, Limits, Network};
    use landlock::ABI;

    /// The default profile's policy (`config::Profile::default()`), from the policy's own
    /// defaults: the init stays below the config.
    struct DefaultProfile {
        limits: Limits,
        filesystem: FsPolicy,
        network: Network,
        connect_ports: Vec<u16>,
    }

    fn default_profile() -> DefaultProfile {
        DefaultProfile {
            limits: Limits::default(),
            filesystem: FsPolicy::default(),
            network: Network::default(),
            connect_ports: vec![],
        }
    }

    fn spec(fs: FsPolicy, network: Network, ports: Vec<u16>) -> SandboxSpec {
        let p = default_profile();
        SandboxSpec {
            workspace: "/w".into(),
            cwd: "".into(),
            argv: vec!["true".into()],
            env: vec![],
            timeout_ms: 1000,
            limits: p.limits,
            fs,
            network,
            connect_ports: ports,
            min_landlock_abi: 1,
            allow_degraded: vec![],
            mounts: Default::default(),
            mounts_warm: false,
            write_budget_bytes: 0,
        }
    }

    #[test]
    fn a_warm_ruleset_is_reused_only_for_the_same_shape_and_abi() {
        let p = default_profile();
        let shape = WarmShape {
            fs: p.filesystem.clone(),
            network: p.network,
            connect_ports: p.connect_ports.clone(),
            ..Default::default()
        };
        let same = spec(p.filesystem.clone(), p.network, p.connect_ports.clone());
        assert!(warm_ruleset_fits(&shape, ABI::V5, &same, ABI::V5));
        // Another ABI, filesystem policy, network mode or port list: built anew.
        assert!(!warm_ruleset_fits(&shape, ABI::V4, &same, ABI::V5));
        let mut fs = p.filesystem.clone();
        fs.read_only.push("/opt".into());
        assert!(!warm_ruleset_fits(
            &shape,
            ABI::V5,
            &spec(fs, p.network, p.connect_ports.clone()),
            ABI::V5
        ));
        let other_net = if p.network == Network::Full {
            Network::None
        } else {
            Network::Full
        };
        assert!(!warm_ruleset_fits(
            &shape,
            ABI::V5,
            &spec(p.filesystem.clone(), other_net, p.connect_ports.clone()),
            ABI::V5
        ));
        let mut ports = p.connect_ports.clone();
        ports.push(65000);
        assert!(!warm_ruleset_fits(
            &shape,
            ABI::V5,
            &spec(p.filesystem.clone(), p.network, ports),
            ABI::V5
        ));
        // What the request runs (argv, workspace, limits) does not matter.
        let mut other_cmd = same.clone();
        other_cmd.argv = vec!["ls".into()];
        other_cmd.workspace = "/elsewhere".into();
        assert!(warm_ruleset_fits(&shape, ABI::V5, &other_cmd, ABI::V5));
    }
}

//! The daemon's shared state and the config snapshot every handler works from.

use crate::auth;
use crate::config::Config;
use crate::confine::mounts::MountPlan;
use crate::supervisor::Supervisor;
use crate::tenants::{self, Tenancy};
use crate::workspace::Roots;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{watch, Semaphore};

/// The configuration in force and what is derived from it once per load (guards, tenancy,
/// mount plans). SIGHUP replaces it as a whole: a request works from one snapshot from start to
/// end.
pub struct ConfigSnapshot {
    pub cfg: Config,
    /// One guard per profile: the global patterns plus the profile's own.
    pub guards: HashMap<String, crate::guard::Guard>,
    /// Who may use which workspace: the mode follows the peer policy in force (fixed until a
    /// restart), the grants follow the config (reloaded by SIGHUP).
    pub tenancy: Tenancy,
    /// Each profile's mount plan (`confine::mounts::plan`), made once per load from what the
    /// host has then; the error says why a profile's root cannot be built.
    pub mounts: HashMap<String, Result<MountPlan, String>>,
}

impl ConfigSnapshot {
    pub fn new(
        cfg: Config,
        auth: &auth::PeerPolicy,
        roots: &Roots,
    ) -> Result<ConfigSnapshot, String> {
        let mut guards = HashMap::new();
        for (name, p) in &cfg.profiles {
            let (deny, allow) = cfg.patterns_for(p);
            let g = crate::guard::Guard::new(cfg.guard_defaults, &deny, &allow)
                .map_err(|e| format!("profiles.{name}: {e}"))?;
            guards.insert(name.clone(), g);
        }
        let tenancy = Tenancy::new(
            tenants::mode(&auth.allow_uids, &auth.allow_gids, &[]),
            roots.0.iter().map(|r| r.path.clone()).collect(),
            cfg.workspaces.clone(),
        );
        let mounts = cfg
            .profiles
            .iter()
            .map(|(name, p)| {
                let plan = crate::confine::mounts::plan(
                    &p.filesystem,
                    p.limits.tmp_size_bytes,
                    &crate::confine::mounts::host_probe,
                )
                .map_err(|e| e.to_string());
                (name.clone(), plan)
            })
            .collect();
        Ok(ConfigSnapshot {
            cfg,
            guards,
            tenancy,
            mounts,
        })
    }
}

/// The daemon's shared state, one per process: the config snapshot, the workspace roots, the
/// launcher, the concurrency slots and the peer policy.
pub struct State {
    /// The configuration in force; SIGHUP swaps it whole (`replace`).
    pub snapshot: std::sync::RwLock<Arc<ConfigSnapshot>>,
    /// The sandboxes' cgroups, prepared at start (fixed until a restart).
    pub cgroups: Arc<crate::cgroups::Cgroups>,
    /// What the thorough host probes found at start (Info reports it).
    pub at_start: crate::host::AtStart,
    pub roots: Roots,
    /// The launcher, supervised: the one to use, or why there is none right now.
    pub launcher: Arc<Supervisor>,
    /// Sandboxes that may run at once over all peers (`max_concurrent`): an exec holds one
    /// permit from admission until its result.
    pub sandbox_slots: Arc<Semaphore>,
    /// Sandboxes running per peer uid (`max_concurrent_per_peer`).
    pub per_peer: Mutex<HashMap<u32, usize>>,
    pub shutdown: watch::Receiver<bool>,
    pub auth: auth::PeerPolicy,
    /// The concurrency ceiling `sandbox_slots` was made with (fixed until restart).
    pub max_concurrent: usize,
}

impl State {
    /// The snapshot a request works from, from start to end.
    pub fn snapshot(&self) -> Arc<ConfigSnapshot> {
        match self.snapshot.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Swap in a new configuration (SIGHUP). Requests already running keep the one they began
    /// with.
    pub fn replace(&self, cfg: Config) -> Result<(), String> {
        let new = Arc::new(ConfigSnapshot::new(cfg, &self.auth, &self.roots)?);
        match self.snapshot.write() {
            Ok(mut g) => *g = new,
            Err(p) => *p.into_inner() = new,
        }
        Ok(())
    }
}

//! Policy → the sandbox's cgroup: which control files get which values (`plan`), and what the
//! kernel's counters said afterwards (`Usage`, parsed from the files' text). Pure: the daemon
//! applies the plan (`crate::cgroups`), `sandboxd explain` prints it.
//!
//! Two kernel interfaces: cgroup v2 (one hierarchy, a subtree delegated to the daemon) and the v1
//! `memory` and `pids` controllers (one hierarchy each). The CPU weight is set on v2 only; v1
//! sandboxes get memory and process ceilings.

use crate::policy::Limits;
use serde::{Deserialize, Serialize};

/// Config `cgroups`: whether sandboxes must, may or must not get their own cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// Use cgroups where the host offers them; elsewhere run with rlimits only and say so in
    /// `doctor`, `explain`, `Info` and every result (`degraded`).
    #[default]
    Auto,
    /// Refuse to start without them (fail closed).
    Required,
    /// Never: rlimits only, said in every result as in `Auto` without cgroups.
    Off,
}

/// Which cgroup interface a plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Version {
    V1,
    V2,
}

/// The v1 hierarchy (controller) a file belongs to; on v2 every file is in the one hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Controller {
    Memory,
    Pids,
    Cpu,
}

/// One control file written when the sandbox's cgroup is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Write {
    pub controller: Controller,
    pub file: &'static str,
    pub value: String,
    /// Skipped when the file does not exist (v1 `memory.memsw.*` without swap accounting; v2
    /// `memory.swap.max` without swap).
    pub optional: bool,
    /// The profile key it comes from.
    pub from: &'static str,
}

/// Everything written into a sandbox's cgroup, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupPlan {
    pub version: Version,
    pub writes: Vec<Write>,
}

/// The v2 `cpu.weight` range (v1-style shares are not set).
pub const CPU_WEIGHT_MAX: u64 = 10_000;

/// The profile's limits as control-file writes. Memory first (v1 refuses a memsw limit below the
/// memory limit, and a fresh cgroup's limits are unlimited, so memory then memsw always works).
/// Swap is not a way around the ceiling: memory+swap gets the same value (v1), swap 0 (v2).
pub fn plan(l: &Limits, version: Version) -> CgroupPlan {
    let w = |controller, file, value: u64, optional, from| Write {
        controller,
        file,
        value: value.to_string(),
        optional,
        from,
    };
    let writes = match version {
        Version::V1 => vec![
            w(
                Controller::Memory,
                "memory.limit_in_bytes",
                l.memory_bytes,
                false,
                "memory_bytes",
            ),
            w(
                Controller::Memory,
                "memory.memsw.limit_in_bytes",
                l.memory_bytes,
                true,
                "memory_bytes",
            ),
            w(Controller::Pids, "pids.max", l.pids, false, "pids"),
        ],
        Version::V2 => vec![
            w(
                Controller::Memory,
                "memory.max",
                l.memory_bytes,
                false,
                "memory_bytes",
            ),
            w(
                Controller::Memory,
                "memory.swap.max",
                0,
                true,
                "memory_bytes",
            ),
            w(Controller::Pids, "pids.max", l.pids, false, "pids"),
            w(
                Controller::Cpu,
                "cpu.weight",
                l.cpu_weight,
                true,
                "cpu_weight",
            ),
        ],
    };
    CgroupPlan { version, writes }
}

/// The files read after the command ended: (controller, file).
pub fn usage_files(version: Version) -> [(Controller, &'static str); 3] {
    match version {
        Version::V1 => [
            (Controller::Memory, "memory.max_usage_in_bytes"),
            (Controller::Memory, "memory.oom_control"),
            (Controller::Pids, "pids.events"),
        ],
        Version::V2 => [
            (Controller::Memory, "memory.peak"),
            (Controller::Memory, "memory.events"),
            (Controller::Pids, "pids.events"),
        ],
    }
}

/// What the sandbox's cgroup counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Highest memory use of the whole sandbox, in bytes (None: not reported by this kernel).
    pub peak_bytes: Option<u64>,
    /// Processes the OOM killer killed in the sandbox for its memory ceiling.
    pub oom_kills: u64,
    /// Forks refused at the process ceiling.
    pub pids_max_hits: u64,
}

impl Usage {
    /// From the text of the three `usage_files`, in that order (None: unreadable).
    pub fn parse(peak: Option<&str>, oom: Option<&str>, pids_events: Option<&str>) -> Usage {
        Usage {
            peak_bytes: peak.and_then(|s| s.trim().parse().ok()),
            // v1 memory.oom_control and v2 memory.events both say `oom_kill N`.
            oom_kills: oom.and_then(|s| keyed(s, "oom_kill")).unwrap_or(0),
            // v1 and v2 pids.events: `max N`.
            pids_max_hits: pids_events.and_then(|s| keyed(s, "max")).unwrap_or(0),
        }
    }
}

impl Usage {
    /// What was counted since `base` (a reused cgroup's counts when this sandbox got it); the
    /// peak is reset on reuse and is taken as read.
    pub fn since(self, base: Usage) -> Usage {
        Usage {
            peak_bytes: self.peak_bytes,
            oom_kills: self.oom_kills.saturating_sub(base.oom_kills),
            pids_max_hits: self.pids_max_hits.saturating_sub(base.pids_max_hits),
        }
    }
}

/// The value of `key` in a flat-keyed cgroup file (`key value` lines).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(p: &CgroupPlan) -> Vec<(Controller, &str, &str)> {
        p.writes
            .iter()
            .map(|w| (w.controller, w.file, w.value.as_str()))
            .collect()
    }

    #[test]
    fn v1_plan_sets_memory_then_memsw_to_the_ceiling_and_the_pids_ceiling() {
        let l = Limits {
            memory_bytes: 128 << 20,
            pids: 32,
            ..Limits::default()
        };
        let p = plan(&l, Version::V1);
        assert_eq!(
            files(&p),
            vec![
                (Controller::Memory, "memory.limit_in_bytes", "134217728"),
                (
                    Controller::Memory,
                    "memory.memsw.limit_in_bytes",
                    "134217728"
                ),
                (Controller::Pids, "pids.max", "32"),
            ]
        );
        assert!(!p.writes[0].optional && p.writes[1].optional && !p.writes[2].optional);
    }

    #[test]
    fn v2_plan_has_no_swap_and_a_cpu_weight() {
        let l = Limits {
            memory_bytes: 1 << 30,
            pids: 100,
            cpu_weight: 50,
            ..Limits::default()
        };
        let p = plan(&l, Version::V2);
        assert_eq!(
            files(&p),
            vec![
                (Controller::Memory, "memory.max", "1073741824"),
                (Controller::Memory, "memory.swap.max", "0"),
                (Controller::Pids, "pids.max", "100"),
                (Controller::Cpu, "cpu.weight", "50"),
            ]
        );
    }

    #[test]
    fn the_default_profile_ships_with_at_most_4_gib_per_sandbox() {
        let l = Limits::default();
        assert!(l.memory_bytes > 0 && l.memory_bytes <= 4 << 30);
        assert!(l.pids > 0);
    }

    #[test]
    fn usage_reads_peak_oom_kills_and_fork_refusals_from_v1_and_v2_files() {
        let v1 = Usage::parse(
            Some("67108864\n"),
            Some("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            Some("max 5\n"),
        );
        assert_eq!(
            v1,
            Usage {
                peak_bytes: Some(64 << 20),
                oom_kills: 2,
                pids_max_hits: 5
            }
        );
        let v2 = Usage::parse(
            Some("1000\n"),
            Some("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n"),
            Some("max 0\n"),
        );
        assert_eq!(v2.oom_kills, 1);
        assert_eq!(v2.pids_max_hits, 0);
        // `oom_kill_disable` is not `oom_kill`; unreadable files count nothing.
        assert_eq!(keyed("oom_kill_disable 1\n", "oom_kill"), None);
        assert_eq!(Usage::parse(None, None, None), Usage::default());
        assert_eq!(
            Usage::parse(Some("x"), Some(""), Some("max x")),
            Usage::default()
        );
        // A reused cgroup: oom_kill and pids max count on from its earlier sandboxes.
        let now = Usage {
            peak_bytes: Some(10),
            oom_kills: 3,
            pids_max_hits: 5,
        };
        let base = Usage {
            peak_bytes: Some(99),
            oom_kills: 2,
            pids_max_hits: 5,
        };
        assert_eq!(
            now.since(base),
            Usage {
                peak_bytes: Some(10),
                oom_kills: 1,
                pids_max_hits: 0
            }
        );
        assert_eq!(base.since(now).oom_kills, 0);
    }
}

//! The contract's vocabulary for how an exec ended: the layer that refused it (`Layer`) and the
//! profile limit it ran into (`LimitHit`). Each maps, here and nowhere else, to the string the
//! daemon has always sent (`ExecResult.refused_layer`, `ExecResult.limit_hit`, and the sandbox's
//! reports on the wire) and to the proto enum (`refused_layer_kind`, `limit_hit_kind`).

use nanobot_proto::pb::{self, ExecResult};
use serde::{Deserialize, Serialize};

/// A layer of the sandbox that can refuse or fail an exec, in the order a request meets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum Layer {
    /// The command guard blocked the command before any sandbox was created.
    Guard,
    /// The plumbing between the daemon, the launcher and the sandbox's init: pipes, the fd
    /// handover, the spec, signals, cloning the command.
    Launcher,
    /// The user, PID, mount, IPC (and network) namespaces and their id maps.
    Namespaces,
    /// The sandbox's root: tmpfs, binds, /proc, /dev, the workspace, pivot_root.
    Mounts,
    /// The command's own session (setsid).
    Session,
    /// The command's stdin, stdout, stderr and working directory; every other fd closed.
    Fds,
    /// The profile's resource limits (setrlimit).
    Rlimits,
    /// PR_SET_NO_NEW_PRIVS.
    NoNewPrivs,
    /// The Landlock ruleset.
    Landlock,
    /// The seccomp filter.
    Seccomp,
    /// Running the program: not found, not executable, bad argument.
    Exec,
}

impl Layer {
    pub const ALL: [Layer; 11] = [
        Layer::Guard,
        Layer::Launcher,
        Layer::Namespaces,
        Layer::Mounts,
        Layer::Session,
        Layer::Fds,
        Layer::Rlimits,
        Layer::NoNewPrivs,
        Layer::Landlock,
        Layer::Seccomp,
        Layer::Exec,
    ];

    /// The string the daemon sends for it (`refused_layer`, the wire reports, the logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Guard => "guard",
            Layer::Launcher => "launcher",
            Layer::Namespaces => "namespaces",
            Layer::Mounts => "mounts",
            Layer::Session => "session",
            Layer::Fds => "fds",
            Layer::Rlimits => "rlimits",
            Layer::NoNewPrivs => "no_new_privs",
            Layer::Landlock => "landlock",
            Layer::Seccomp => "seccomp",
            Layer::Exec => "exec",
        }
    }

    /// The proto enum value (`refused_layer_kind`).
    pub fn proto(self) -> pb::Layer {
        match self {
            Layer::Guard => pb::Layer::Guard,
            Layer::Launcher => pb::Layer::Launcher,
            Layer::Namespaces => pb::Layer::Namespaces,
            Layer::Mounts => pb::Layer::Mounts,
            Layer::Session => pb::Layer::Session,
            Layer::Fds => pb::Layer::Fds,
            Layer::Rlimits => pb::Layer::Rlimits,
            Layer::NoNewPrivs => pb::Layer::NoNewPrivs,
            Layer::Landlock => pb::Layer::Landlock,
            Layer::Seccomp => pb::Layer::Seccomp,
            Layer::Exec => pb::Layer::Exec,
        }
    }

    /// The layers the config's `allow_degraded` may list: the sandbox is built from every other
    /// one, so it cannot run without them.
    pub const DEGRADABLE: [Layer; 1] = [Layer::Landlock];

    /// Whether `allow_degraded` (the config's list, as written) lets this layer be missing.
    pub fn degraded_allowed(self, allow_degraded: &[String]) -> bool {
        allow_degraded.iter().any(|l| l == self.as_str())
    }

    /// The layer a string names, as `as_str` writes it.
    pub fn parse(s: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// Record this layer as the one that refused `r`: the string and the enum.
    pub fn set_refused(self, r: &mut ExecResult) {
        r.refused_layer = self.as_str().into();
        r.refused_layer_kind = self.proto().into();
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Layer> for &'static str {
    fn from(l: Layer) -> &'static str {
        l.as_str()
    }
}

impl TryFrom<String> for Layer {
    type Error = String;
    fn try_from(s: String) -> Result<Layer, String> {
        Layer::parse(&s).ok_or_else(|| format!("unknown layer {s:?}"))
    }
}

/// A profile limit an exec ran into, when the kernel (or the daemon's output cap) says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitHit {
    /// The wall-clock timeout killed the sandbox.
    TimeoutSecs,
    /// SIGXCPU: the CPU time limit.
    CpuSecs,
    /// SIGXFSZ: the file size limit.
    FileSizeBytes,
    /// The daemon cut stdout or stderr at the profile's output limit.
    OutputLimitBytes,
    /// The OOM killer acted in the sandbox's cgroup (`limits.memory_bytes`).
    Memory,
    /// A fork was refused at the sandbox cgroup's process ceiling (`limits.pids`).
    Pids,
    /// The sandbox's processes wrote more than `workspace_bytes` (the write budget): its init
    /// killed it.
    Disk,
}

impl LimitHit {
    pub const ALL: [LimitHit; 7] = [
        LimitHit::TimeoutSecs,
        LimitHit::CpuSecs,
        LimitHit::FileSizeBytes,
        LimitHit::OutputLimitBytes,
        LimitHit::Memory,
        LimitHit::Pids,
        LimitHit::Disk,
    ];

    /// The string the daemon sends for it (`limit_hit`): the profile key of the limit (for the
    /// sandbox-wide ceilings, the resource: "memory", "pids").
    pub fn as_str(self) -> &'static str {
        match self {
            LimitHit::TimeoutSecs => "timeout_secs",
            LimitHit::CpuSecs => "cpu_secs",
            LimitHit::FileSizeBytes => "file_size_bytes",
            LimitHit::OutputLimitBytes => "output_limit_bytes",
            LimitHit::Memory => "memory",
            LimitHit::Pids => "pids",
            LimitHit::Disk => "disk",
        }
    }

    /// The proto enum value (`limit_hit_kind`).
    pub fn proto(self) -> pb::LimitHit {
        match self {
            LimitHit::TimeoutSecs => pb::LimitHit::TimeoutSecs,
            LimitHit::CpuSecs => pb::LimitHit::CpuSecs,
            LimitHit::FileSizeBytes => pb::LimitHit::FileSizeBytes,
            LimitHit::OutputLimitBytes => pb::LimitHit::OutputLimitBytes,
            LimitHit::Memory => pb::LimitHit::Memory,
            LimitHit::Pids => pb::LimitHit::Pids,
            LimitHit::Disk => pb::LimitHit::Disk,
        }
    }

    /// Record the limit `r` ran into, if any: the string (empty for none) and the enum
    /// (unspecified for none).
    pub fn set(hit: Option<LimitHit>, r: &mut ExecResult) {
        r.limit_hit = hit.map_or("", LimitHit::as_str).into();
        r.limit_hit_kind = hit
            .map_or(pb::LimitHit::Unspecified, LimitHit::proto)
            .into();
    }
}

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layer_round_trips_to_the_string_the_daemon_has_always_sent() {
        // The strings sandboxd sent before the enum existed, in declaration order.
        let sent = [
            "guard",
            "launcher",
            "namespaces",
            "mounts",
            "session",
            "fds",
            "rlimits",
            "no_new_privs",
            "landlock",
            "seccomp",
            "exec",
        ];
        assert_eq!(Layer::ALL.map(Layer::as_str), sent);
        for l in Layer::ALL {
            let s = l.as_str();
            assert_eq!(Layer::parse(s), Some(l));
            assert_eq!(l.to_string(), s);
            // The wire (JSON reports from the sandbox) carries the same string.
            let json = serde_json::to_string(&l).unwrap();
            assert_eq!(json, format!("{s:?}"));
            assert_eq!(serde_json::from_str::<Layer>(&json).unwrap(), l);
            // The proto value is the same name, and both fields of a result agree.
            assert_eq!(
                l.proto().as_str_name(),
                format!("LAYER_{}", s.to_uppercase())
            );
            let mut r = ExecResult::default();
            l.set_refused(&mut r);
            assert_eq!(r.refused_layer, s);
            assert_eq!(r.refused_layer_kind(), l.proto());
        }
        assert_eq!(Layer::parse("sandbox"), None);
        assert!(serde_json::from_str::<Layer>("\"sandbox\"").is_err());
        assert_eq!(
            ExecResult::default().refused_layer_kind(),
            pb::Layer::Unspecified
        );
    }

    #[test]
    fn every_limit_round_trips_to_the_string_the_daemon_has_always_sent() {
        let sent = [
            "timeout_secs",
            "cpu_secs",
            "file_size_bytes",
            "output_limit_bytes",
            "memory",
            "pids",
            "disk",
        ];
        assert_eq!(LimitHit::ALL.map(LimitHit::as_str), sent);
        for h in LimitHit::ALL {
            let s = h.as_str();
            assert_eq!(h.to_string(), s);
            assert_eq!(
                h.proto().as_str_name(),
                format!("LIMIT_HIT_{}", s.to_uppercase())
            );
            let mut r = ExecResult::default();
            LimitHit::set(Some(h), &mut r);
            assert_eq!(r.limit_hit, s);
            assert_eq!(r.limit_hit_kind(), h.proto());
        }
        let mut r = ExecResult::default();
        LimitHit::set(None, &mut r);
        assert_eq!(r.limit_hit, "");
        assert_eq!(r.limit_hit_kind(), pb::LimitHit::Unspecified);
    }
}

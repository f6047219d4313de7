//! The contract's vocabulary for how an exec ended, read from a result: the layer that refused it
//! and the profile limit it ran into. sandboxd sends both as proto enums (`refused_layer_kind`,
//! `limit_hit_kind`) and, for older clients, as strings; a daemon older than the enums sends only
//! the strings, which are read here too, so the rest of the agent matches on the enums alone.

use nanobot_proto::pb::{ExecResult, Layer, LimitHit};

/// The layer that refused or failed the exec; `Unspecified` when it ran.
pub fn layer(r: &ExecResult) -> Layer {
    match r.refused_layer_kind() {
        Layer::Unspecified => layer_named(&r.refused_layer),
        l => l,
    }
}

/// The profile limit the command ran into; `Unspecified` when none.
pub fn limit_hit(r: &ExecResult) -> LimitHit {
    match r.limit_hit_kind() {
        LimitHit::Unspecified => limit_named(&r.limit_hit),
        l => l,
    }
}

/// The name operators and docs use for a limit (the profile's key), as the daemon spells it: the
/// proto name without its `LIMIT_HIT_` prefix, lower-cased (as for layers, `layer_named`).
pub fn limit_name(l: LimitHit) -> String {
    match l {
        LimitHit::Unspecified => String::new(),
        l => l
            .as_str_name()
            .trim_start_matches("LIMIT_HIT_")
            .to_ascii_lowercase(),
    }
}

fn limit_named(s: &str) -> LimitHit {
    if s.is_empty() {
        return LimitHit::Unspecified;
    }
    LimitHit::from_str_name(&format!("LIMIT_HIT_{}", s.to_ascii_uppercase()))
        .unwrap_or(LimitHit::Unspecified)
}

/// The daemon's string for a layer (in `refused_layer`, Info's `layers_enforced` and the
/// `<layer>: ` prefix of its `problems`/`degraded`): the proto name without its `LAYER_` prefix,
/// lower-cased.
pub fn layer_name(l: Layer) -> String {
    match l {
        Layer::Unspecified => String::new(),
        l => l
            .as_str_name()
            .trim_start_matches("LAYER_")
            .to_ascii_lowercase(),
    }
}

/// The daemon's string for a layer read back (`layer_name`).
fn layer_named(s: &str) -> Layer {
    if s.is_empty() {
        return Layer::Unspecified;
    }
    Layer::from_str_name(&format!("LAYER_{}", s.to_ascii_uppercase())).unwrap_or(Layer::Unspecified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_win_and_strings_from_older_daemons_are_read_alike() {
        let mut r = ExecResult {
            limit_hit: "cpu_secs".into(),
            refused_layer: "no_new_privs".into(),
            ..Default::default()
        };
        assert_eq!(limit_hit(&r), LimitHit::CpuSecs);
        assert_eq!(layer(&r), Layer::NoNewPrivs);
        r.set_limit_hit_kind(LimitHit::TimeoutSecs);
        r.set_refused_layer_kind(Layer::Exec);
        assert_eq!(limit_hit(&r), LimitHit::TimeoutSecs);
        assert_eq!(layer(&r), Layer::Exec);
        let none = ExecResult::default();
        assert_eq!(limit_hit(&none), LimitHit::Unspecified);
        assert_eq!(layer(&none), Layer::Unspecified);
        // Every limit's name reads back to it; every layer string the daemon sends is known.
        for l in [
            LimitHit::TimeoutSecs,
            LimitHit::CpuSecs,
            LimitHit::FileSizeBytes,
            LimitHit::OutputLimitBytes,
            LimitHit::Memory,
            LimitHit::Pids,
            LimitHit::Disk,
        ] {
            assert_eq!(limit_named(&limit_name(l)), l);
        }
        // The strings sandboxd sends (sandboxd/src/vocab.rs), read to the enum and back.
        for s in [
            "timeout_secs",
            "cpu_secs",
            "file_size_bytes",
            "output_limit_bytes",
            "memory",
            "pids",
            "disk",
        ] {
            assert_eq!(limit_name(limit_named(s)), s);
        }
        assert_eq!(limit_name(LimitHit::Unspecified), "");
        assert_eq!(limit_named("nosuch"), LimitHit::Unspecified);
        for s in [
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
        ] {
            assert_ne!(layer_named(s), Layer::Unspecified, "{s}");
            assert_eq!(layer_name(layer_named(s)), s);
            assert_eq!(
                layer_named(s).as_str_name(),
                format!("LAYER_{}", s.to_uppercase())
            );
        }
        assert_eq!(layer_named("nosuch"), Layer::Unspecified);
        assert_eq!(layer_name(Layer::Unspecified), "");
    }
}

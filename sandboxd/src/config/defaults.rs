//! What an empty configuration means: every key's default (the security guide's values).

use super::schema::{Config, LogFormat, Profile};
use crate::policy::{FsPolicy, Limits, Network};
use std::collections::BTreeMap;
use std::path::PathBuf;

impl Default for Config {
    fn default() -> Self {
        Config {
            socket: PathBuf::from("/run/nanobot/sandboxd.sock"),
            user: None,
            socket_group: None,
            workspace_roots: vec![],
            allow_uids: vec![],
            allow_gids: vec![],
            allow_groups: vec![],
            max_concurrent: 128,
            max_concurrent_per_peer: 96,
            max_connections: 512,
            max_connections_per_uid: 128,
            handshake_timeout_secs: 10,
            idle_timeout_secs: 300,
            max_request_bytes: 1 << 20,
            max_command_bytes: 64 << 10,
            log_format: LogFormat::Text,
            min_landlock_abi: 3,
            allow_degraded: vec![],
            cgroups: crate::confine::cgroup::CgroupMode::Auto,
            guard_defaults: true,
            deny_patterns: vec![],
            allow_patterns: vec![],
            read_max_chars: 128_000,
            write_max_bytes: 1_000_000,
            list_max_entries: 1000,
            profiles: BTreeMap::new(),
            workspaces: vec![],
        }
    }
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            timeout_secs: 60,
            max_timeout_secs: 600,
            output_limit_bytes: 10 * 1024,
            network: Network::None,
            connect_ports: vec![],
            deny_patterns: vec![],
            allow_patterns: vec![],
            grant_uids: vec![],
            grant_gids: vec![],
            limits: Limits::default(),
            filesystem: FsPolicy::default(),
            env_pass: ["LANG", "LC_ALL", "TERM"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            env_set: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::Config;
    use crate::policy::Network;
    use std::path::Path;

    #[test]
    fn empty_config_has_default_profile_with_guide_defaults() {
        let c = Config::parse("", Path::new("x.toml")).unwrap();
        let p = &c.profiles["default"];
        assert_eq!(p.timeout_secs, 60);
        assert_eq!(p.output_limit_bytes, 10240);
        assert_eq!(p.network, Network::None);
    }
}

//! What an empty configuration means: every key's default (the security guide's values), and
//! the built-in configuration used when there is no config file: those defaults with the shipped
//! profiles (`default`, `readonly`, `network`, `build`) of packaging/sandboxd.toml, the file the
//! .deb installs as /etc/nanobot/sandboxd.toml, so both always agree.

use super::problem::ConfigError;
use super::schema::{Config, LogFormat, Profile};
use super::source::BUILT_IN;
use crate::policy::{FsPolicy, Limits, Network};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The shipped configuration, compiled in.
pub const SHIPPED: &str = include_str!("../../../packaging/sandboxd.toml");

/// The shipped file's profiles; its other keys (user, groups, roots) name things of a packaged
/// host and stay at their defaults.
#[derive(Deserialize)]
struct ShippedProfiles {
    profiles: BTreeMap<String, Profile>,
}

impl Config {
    /// The configuration without a file: every default, and the shipped profiles.
    pub fn built_in() -> Result<Config, ConfigError> {
        let shipped: ShippedProfiles = toml::from_str(SHIPPED).map_err(|e| {
            ConfigError::Problems(vec![super::problem::Problem {
                file: BUILT_IN.into(),
                line: e.span().map(|s| super::sieve::line_at(SHIPPED, s.start)),
                key: String::new(),
                msg: e.message().trim().to_string(),
            }])
        })?;
        let mut c = Config {
            profiles: shipped.profiles,
            ..Config::default()
        };
        c.finish()?;
        Ok(c)
    }
}

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
    fn the_built_in_profiles_are_the_shipped_files() {
        let b = Config::built_in().unwrap();
        let names: Vec<&str> = b.profiles.keys().map(String::as_str).collect();
        assert_eq!(names, ["build", "default", "network", "readonly"]);
        // The file compiled in is the one the .deb installs as /etc/nanobot/sandboxd.toml.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let manifest = std::fs::read_to_string(root.join("agent/Cargo.toml")).unwrap();
        assert!(
            manifest
                .contains(r#"["../packaging/sandboxd.toml", "etc/nanobot/sandboxd.toml", "644"]"#),
            "agent/Cargo.toml no longer installs packaging/sandboxd.toml"
        );
        let shipped = std::fs::read_to_string(root.join("packaging/sandboxd.toml")).unwrap();
        assert_eq!(shipped, super::SHIPPED);
        // Its profiles parse to the same values as the built-ins (the rest of the file names
        // users and directories of a packaged host).
        let text: String = shipped
            .lines()
            .skip_while(|l| !l.starts_with("[profiles."))
            .map(|l| format!("{l}\n"))
            .collect();
        let from_file = Config::parse(&text, Path::new("sandboxd.toml")).unwrap();
        assert_eq!(from_file.profiles, b.profiles);
        assert_eq!(b.profiles["build"].network, Network::Private);
        assert_eq!(b.profiles["network"].network, Network::Full);
        assert!(!b.profiles["readonly"].filesystem.workspace_writable);
        // Everything but the profiles is the empty file's.
        let empty = Config::parse("", Path::new("x")).unwrap();
        assert_eq!(
            (b.user, b.allow_groups, b.workspace_roots),
            (empty.user, empty.allow_groups, empty.workspace_roots)
        );
    }

    #[test]
    fn empty_config_has_default_profile_with_guide_defaults() {
        let c = Config::parse("", Path::new("x.toml")).unwrap();
        let p = &c.profiles["default"];
        assert_eq!(p.timeout_secs, 60);
        assert_eq!(p.output_limit_bytes, 10240);
        assert_eq!(p.network, Network::None);
    }
}

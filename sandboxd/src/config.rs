//! sandboxd's configuration file (TOML). Unknown keys are errors: a typo in a security setting must
//! not silently fall back to a default.

use crate::policy::{FsPolicy, Limits, Network};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("invalid config {path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where to listen when not socket-activated.
    pub socket: PathBuf,
    /// User to drop to when started as root.
    pub user: Option<String>,
    /// Group that owns the socket (clients in it may connect; allow_gids still decides).
    pub socket_group: Option<String>,
    /// Requests may name workspaces beneath these directories only.
    pub workspace_roots: Vec<PathBuf>,
    /// Peers allowed to connect, by uid; empty means the daemon's own uid.
    pub allow_uids: Vec<u32>,
    /// Peers allowed to connect, by primary or supplementary gid.
    pub allow_gids: Vec<u32>,
    /// Sandboxes running at once, over all peers.
    pub max_concurrent: usize,
    /// Sandboxes running at once for one peer uid.
    pub max_concurrent_per_peer: usize,
    /// Largest gRPC message accepted, in bytes.
    pub max_request_bytes: usize,
    /// Longest command (or argv, summed) accepted, in bytes.
    pub max_command_bytes: usize,
    pub log_format: LogFormat,
    /// Oldest Landlock ABI accepted; execs fail closed on older kernels.
    pub min_landlock_abi: u32,
    /// Layers that may be missing: execs then run without them and every result and `Info` say
    /// so. Empty (the default) means every layer is required. Only "landlock" can be listed; the
    /// other layers are what the sandbox is built from.
    pub allow_degraded: Vec<String>,
    /// The command guard's built-in deny patterns (the security guide's list) are on.
    pub guard_defaults: bool,
    /// Extra command-guard patterns (see docs/guard.md); a match blocks the exec.
    pub deny_patterns: Vec<String>,
    /// Exceptions: a simple command matching one of these is never blocked by a word pattern.
    pub allow_patterns: Vec<String>,
    /// read_file returns at most this many characters and says how to read on.
    pub read_max_chars: usize,
    /// write_file/edit_file refuse content larger than this many bytes.
    pub write_max_bytes: usize,
    /// list_dir returns at most this many entries.
    pub list_max_entries: usize,
    pub profiles: BTreeMap<String, Profile>,
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
            max_concurrent: 128,
            max_concurrent_per_peer: 96,
            max_request_bytes: 1 << 20,
            max_command_bytes: 64 << 10,
            log_format: LogFormat::Text,
            min_landlock_abi: 3,
            allow_degraded: vec![],
            guard_defaults: true,
            deny_patterns: vec![],
            allow_patterns: vec![],
            read_max_chars: 128_000,
            write_max_bytes: 1_000_000,
            list_max_entries: 1000,
            profiles: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    /// Timeout applied when the request names none (the security guide's default: 60 s).
    pub timeout_secs: u32,
    /// Ceiling for a request's timeout.
    pub max_timeout_secs: u32,
    /// Output kept per stream (the guide promises 10 KB); the rest is read and discarded.
    pub output_limit_bytes: u64,
    pub network: Network,
    /// With `network = "ports"`: the TCP ports commands may connect to.
    pub connect_ports: Vec<u16>,
    /// Peers that may use this profile, by uid and by primary or supplementary gid. Both empty:
    /// every peer the daemon accepts.
    pub grant_uids: Vec<u32>,
    pub grant_gids: Vec<u32>,
    pub limits: Limits,
    pub filesystem: FsPolicy,
    /// Environment variable names a request may set.
    pub env_pass: Vec<String>,
    /// Variables set for every command.
    pub env_set: BTreeMap<String, String>,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            timeout_secs: 60,
            max_timeout_secs: 600,
            output_limit_bytes: 10 * 1024,
            network: Network::None,
            connect_ports: vec![],
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

impl Profile {
    /// Whether a peer with this uid and these gids (primary and supplementary) may use it.
    pub fn granted(&self, uid: u32, gids: &[u32]) -> bool {
        (self.grant_uids.is_empty() && self.grant_gids.is_empty())
            || self.grant_uids.contains(&uid)
            || gids.iter().any(|g| self.grant_gids.contains(g))
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
            path: path.into(),
            err,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            msg: e.to_string(),
        })?;
        cfg.finish()?;
        Ok(cfg)
    }

    /// Fill in the built-in profile and check ranges.
    pub fn finish(&mut self) -> Result<(), ConfigError> {
        self.profiles.entry("default".into()).or_default();
        if self.max_concurrent == 0 || self.max_concurrent_per_peer == 0 {
            return Err(ConfigError::Invalid(
                "max_concurrent and max_concurrent_per_peer must be at least 1".into(),
            ));
        }
        crate::guard::Guard::new(
            self.guard_defaults,
            &self.deny_patterns,
            &self.allow_patterns,
        )
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if self.read_max_chars == 0 || self.write_max_bytes == 0 || self.list_max_entries == 0 {
            return Err(ConfigError::Invalid(
                "read_max_chars, write_max_bytes and list_max_entries must be at least 1".into(),
            ));
        }
        for l in &self.allow_degraded {
            if l != "landlock" {
                return Err(ConfigError::Invalid(format!(
                    "allow_degraded: {l:?} cannot be degraded; only \"landlock\" may be listed (seccomp, namespaces, rlimits and no_new_privs are always required)"
                )));
            }
        }
        for (name, p) in &self.profiles {
            if p.timeout_secs == 0 || p.timeout_secs > p.max_timeout_secs {
                return Err(ConfigError::Invalid(format!(
                    "profiles.{name}: timeout_secs must be between 1 and max_timeout_secs ({})",
                    p.max_timeout_secs
                )));
            }
            if p.limits.processes == 0 || p.limits.open_files < 16 {
                return Err(ConfigError::Invalid(format!(
                    "profiles.{name}.limits: processes must be >= 1 and open_files >= 16"
                )));
            }
            for w in &p.filesystem.read_write {
                if w == Path::new("/") {
                    return Err(ConfigError::Invalid(format!(
                        "profiles.{name}.filesystem.read_write grants write access to /"
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_has_default_profile_with_guide_defaults() {
        let c = Config::parse("", Path::new("x.toml")).unwrap();
        let p = &c.profiles["default"];
        assert_eq!(p.timeout_secs, 60);
        assert_eq!(p.output_limit_bytes, 10240);
        assert_eq!(p.network, Network::None);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let e = Config::parse("sokcet = \"/x\"\n", Path::new("/etc/x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/x.toml") && e.contains("sokcet"), "{e}");
        let e = Config::parse("[profiles.default]\ntimeout = 3\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("timeout"), "{e}");
    }

    #[test]
    fn only_landlock_may_be_degraded() {
        let c = Config::parse("allow_degraded = [\"landlock\"]\n", Path::new("x")).unwrap();
        assert_eq!(c.allow_degraded, vec!["landlock".to_string()]);
        for layer in ["seccomp", "namespaces", "rlimits", "Landlock"] {
            let e = Config::parse(&format!("allow_degraded = [{layer:?}]\n"), Path::new("x"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("allow_degraded") && e.contains(layer), "{e}");
        }
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let e = Config::parse("[profiles.default]\ntimeout_secs = 900\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("timeout_secs"), "{e}");
        let e = Config::parse(
            "[profiles.p.filesystem]\nread_write = [\"/\"]\n",
            Path::new("x"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("write access to /"), "{e}");
        let e = Config::parse("[profiles.p.limits]\nprocess = 5\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("process"), "{e}");
        let c = Config::parse("[profiles.p.limits]\nprocesses = 5\n", Path::new("x")).unwrap();
        assert_eq!(c.profiles["p"].limits.processes, 5);
        assert_eq!(c.profiles["p"].limits.open_files, 1024);
    }
}

//! The keys of the configuration: the main file's (`Config`) and a profile's (`Profile`, a
//! `[profiles.NAME]` table or a `profiles.d/NAME.toml` file). Their defaults are in `defaults.rs`.

use crate::policy::{FsPolicy, Limits, Network};
use crate::tenants::WorkspaceGrant;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

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
    /// The same by group name (resolved at start), e.g. the agent's group `nanobot`.
    pub allow_groups: Vec<String>,
    /// Sandboxes running at once, over all peers.
    pub max_concurrent: usize,
    /// Sandboxes running at once for one peer uid.
    pub max_concurrent_per_peer: usize,
    /// Connections open at once, over all peers (also at most half the open-file limit).
    /// Beyond, a new connection is accepted and closed at once.
    pub max_connections: usize,
    /// Connections open at once from one peer uid.
    pub max_connections_per_uid: usize,
    /// A client must send the HTTP/2 preface and a first frame within this many seconds of
    /// connecting, or its connection is closed.
    pub handshake_timeout_secs: u64,
    /// A connection with no request in flight and no bytes either way for this many seconds is
    /// closed (a running exec, however silent, keeps its connection).
    pub idle_timeout_secs: u64,
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
    /// Each sandbox in its own cgroup with the profile's `memory_bytes`, `pids` and `cpu_weight`:
    /// "auto" (where the host offers cgroup v2 delegation or the v1 memory and pids controllers;
    /// elsewhere rlimits only, said in every result), "required" (refuse to start without) or
    /// "off" (rlimits only, said in every result).
    pub cgroups: crate::confine::cgroup::CgroupMode,
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
    /// Explicit workspace grants (`[[workspaces]]`), on top of the default `<root>/<user>` when
    /// the daemon serves several tenants (see tenants.rs).
    pub workspaces: Vec<WorkspaceGrant>,
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
    /// Command-guard patterns added to the global ones for this profile (see docs/guard.md).
    pub deny_patterns: Vec<String>,
    pub allow_patterns: Vec<String>,
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

impl Config {
    /// The names of the profiles with `network = "private"`, the only ones that need a network
    /// namespace (Info and doctor name them where the host refuses those).
    pub fn private_network_profiles(&self) -> Vec<&str> {
        self.profiles
            .iter()
            .filter(|(_, p)| p.network == Network::Private)
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// The guard patterns in force for a profile: the global ones, then the profile's.
    pub fn patterns_for(&self, p: &Profile) -> (Vec<String>, Vec<String>) {
        let deny = self
            .deny_patterns
            .iter()
            .chain(&p.deny_patterns)
            .cloned()
            .collect();
        let allow = self
            .allow_patterns
            .iter()
            .chain(&p.allow_patterns)
            .cloned()
            .collect();
        (deny, allow)
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

#[cfg(test)]
mod tests {
    use super::Config;
    use crate::policy::Network;
    use std::path::Path;

    /// Every key a config file may hold, dotted (`profiles.*.limits.cpu_secs`), from the schema
    /// itself: a config with every optional key set, serialized.
    fn every_key() -> Vec<String> {
        let mut c = Config::built_in().unwrap();
        c.user = Some("u".into());
        c.socket_group = Some("g".into());
        c.workspaces.push(crate::tenants::WorkspaceGrant::default());
        let v = toml::Value::try_from(&c).unwrap();
        let mut out = vec![];
        fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
            let table = match v {
                toml::Value::Table(t) => t,
                toml::Value::Array(a) => match a.first() {
                    Some(first @ toml::Value::Table(_)) => return walk(prefix, first, out),
                    _ => return,
                },
                _ => return,
            };
            for (k, v) in table {
                // A profile's name and env_set's variables are the operator's, not keys.
                let key = match prefix {
                    "profiles" => "profiles.*".to_string(),
                    p if p.ends_with(".env_set") => continue,
                    "" => k.clone(),
                    p => format!("{p}.{k}"),
                };
                if !out.contains(&key) {
                    out.push(key.clone());
                }
                walk(&key, v, out);
            }
        }
        walk("", &v, &mut out);
        out
    }

    #[test]
    fn docs_sandboxd_md_names_every_key_and_network_mode() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let doc = std::fs::read_to_string(root.join("docs/sandboxd.md")).unwrap();
        let keys = every_key();
        // The walk itself sees the keys (a control: a broken walk would pass anything).
        for k in [
            "allow_groups",
            "profiles.*.limits.cpu_secs",
            "profiles.*.filesystem.unix_sockets",
            "workspaces.users",
        ] {
            assert!(keys.contains(&k.to_string()), "{k}: {keys:#?}");
        }
        // Keys must be shown in the reference (a ```toml block), not just named in passing.
        let toml_blocks: String = doc
            .split("```toml\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .collect();
        let words: std::collections::BTreeSet<&str> = toml_blocks
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .collect();
        let missing: Vec<&String> = keys
            .iter()
            .filter(|k| {
                let last = k.rsplit('.').next().unwrap_or(k);
                last != "*" && !words.contains(last)
            })
            .collect();
        assert!(
            missing.is_empty(),
            "docs/sandboxd.md's TOML does not show: {missing:?}"
        );
        // The reference is a valid config: its only problems are the names and paths of a
        // packaged host that this one may lack.
        let reference = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .unwrap();
        if let Err(e) = Config::parse(reference, Path::new("docs/sandboxd.md")) {
            for p in e.problems() {
                let host = [
                    ": user: ",
                    ": socket_group: ",
                    ": allow_groups: ",
                    ": workspace_roots: ",
                    ": workspaces[1].",
                ];
                assert!(host.iter().any(|h| p.contains(h)), "{p}");
            }
        }
        for n in Network::ALL {
            let spelled = toml::Value::try_from(n).unwrap().to_string();
            assert!(
                doc.contains(&spelled),
                "docs/sandboxd.md does not mention network = {spelled}"
            );
        }
    }
}

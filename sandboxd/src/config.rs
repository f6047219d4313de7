//! sandboxd's configuration file (TOML). Unknown keys are errors: a typo in a security setting must
//! not silently fall back to a default.

use crate::policy::{FsPolicy, Limits, Network};
use crate::tenants::WorkspaceGrant;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One thing wrong with the configuration, located as precisely as we can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// Dotted key (`profiles.build.limits.processes`); empty when the file itself is broken.
    pub key: String,
    pub msg: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.msg)
        } else {
            write!(f, ": {}: {}", self.key, self.msg)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Problems(Vec<Problem>),
}

impl ConfigError {
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Problems(p) => p.iter().map(|p| p.to_string()).collect(),
            other => vec![other.to_string()],
        }
    }
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
    /// The same by group name (resolved at start), e.g. the agent's group `nanobot`.
    pub allow_groups: Vec<String>,
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
    /// Explicit workspace grants (`[[workspaces]]`), on top of the default `<root>/<user>` when
    /// the daemon serves several tenants (see tenants.rs).
    pub workspaces: Vec<WorkspaceGrant>,
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
            workspaces: vec![],
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

impl Config {
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

/// A file the config came from, kept to point problems at their line.
struct Source {
    path: PathBuf,
    text: String,
    /// For a profiles.d file: the profile it defines (its keys are then top-level).
    profile: Option<String>,
}

impl Source {
    /// Line of `key` inside `[table]` (dotted, relative to this file), if written there.
    fn line_of(&self, table: &str, key: &str) -> Option<usize> {
        let mut current = String::new();
        for (i, raw) in self.text.lines().enumerate() {
            let l = raw.trim();
            if let Some(h) = l.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                current = h.trim().trim_matches('[').trim_matches(']').to_string();
                if key.is_empty() && current == table {
                    return Some(i + 1);
                }
                continue;
            }
            if current == table && !key.is_empty() && assigns(l, key) {
                return Some(i + 1);
            }
        }
        None
    }

    /// Line of `key` inside the `n`-th (0-based) `[[table]]` block; the block's header line when
    /// the key is not written there.
    fn line_in_array(&self, table: &str, n: usize, key: &str) -> Option<usize> {
        let mut seen = 0usize;
        let mut header = None;
        for (i, raw) in self.text.lines().enumerate() {
            let l = raw.trim();
            if l.starts_with('[') {
                let inside = l
                    .strip_prefix("[[")
                    .and_then(|h| h.split("]]").next())
                    .map(str::trim);
                if header.is_some() {
                    // The block ended without the key.
                    return header;
                }
                if inside == Some(table) {
                    if seen == n {
                        header = Some(i + 1);
                    }
                    seen += 1;
                }
                continue;
            }
            if header.is_some() && assigns(l, key) {
                return Some(i + 1);
            }
        }
        header
    }
}

/// Whether the (trimmed) line assigns `key`.
fn assigns(l: &str, key: &str) -> bool {
    l.strip_prefix(key)
        .is_some_and(|rest| rest.trim_start().starts_with('='))
}

/// The problems of one `[[workspaces]]` grant, as (key, message); resolves its users and groups
/// to ids and its path to the real path as it goes. `roots`: the configured workspace roots.
pub fn check_grant(roots: &[PathBuf], g: &mut WorkspaceGrant) -> Vec<(&'static str, String)> {
    let mut out = vec![];
    if !g.path.is_absolute() {
        out.push((
            "path",
            format!("{} is not an absolute path", g.path.display()),
        ));
    } else {
        match g.path.canonicalize() {
            Err(e) => out.push(("path", format!("{}: {e}", g.path.display()))),
            Ok(real) => {
                let beneath = roots.iter().any(|r| {
                    let r = r.canonicalize().unwrap_or_else(|_| r.clone());
                    real.starts_with(r)
                });
                if !beneath {
                    out.push((
                        "path",
                        format!(
                            "{} is not beneath a workspace root ({})",
                            g.path.display(),
                            if roots.is_empty() {
                                "none configured in workspace_roots".to_string()
                            } else {
                                roots
                                    .iter()
                                    .map(|r| r.display().to_string())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            }
                        ),
                    ));
                }
                g.path = real;
            }
        }
    }
    if g.users.is_empty() && g.groups.is_empty() {
        out.push(("users", "grants nobody: list users and/or groups".into()));
    }
    g.uids.clear();
    for u in &g.users {
        match crate::privdrop::lookup(u) {
            Ok(id) => g.uids.push(id.uid),
            Err(_) => out.push(("users", format!("user {u:?} does not exist"))),
        }
    }
    g.gids.clear();
    for name in &g.groups {
        match crate::privdrop::lookup_group(name) {
            Some(gid) => g.gids.push(gid),
            None => out.push(("groups", format!("group {name:?} does not exist"))),
        }
    }
    out
}

fn toml_problem(src: &Source, e: &toml::de::Error) -> Problem {
    let line = e.span().map(|sp| {
        src.text[..sp.start.min(src.text.len())]
            .matches('\n')
            .count()
            + 1
    });
    Problem {
        file: src.path.clone(),
        line,
        key: String::new(),
        msg: e.message().trim().to_string(),
    }
}

impl Config {
    /// Load `path` and the profiles in `profiles.d/*.toml` beside it (one profile per file,
    /// named after the file).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
            path: path.into(),
            err,
        })?;
        let dir = path.parent().map(|d| d.join("profiles.d"));
        Self::parse_with(&text, path, dir.as_deref())
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Self::parse_with(text, path, None)
    }

    fn parse_with(
        text: &str,
        path: &Path,
        profiles_dir: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let main = Source {
            path: path.into(),
            text: text.into(),
            profile: None,
        };
        let mut problems = vec![];
        let mut cfg: Config = match toml::from_str(text) {
            Ok(c) => c,
            Err(e) => return Err(ConfigError::Problems(vec![toml_problem(&main, &e)])),
        };
        let mut sources = vec![main];
        if let Some(dir) = profiles_dir.filter(|d| d.is_dir()) {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|err| ConfigError::Read {
                    path: dir.into(),
                    err,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            for f in files {
                let name = f
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let text = std::fs::read_to_string(&f).map_err(|err| ConfigError::Read {
                    path: f.clone(),
                    err,
                })?;
                let src = Source {
                    path: f.clone(),
                    text,
                    profile: Some(name.clone()),
                };
                match toml::from_str::<Profile>(&src.text) {
                    Ok(p) => match cfg.profiles.entry(name.clone()) {
                        std::collections::btree_map::Entry::Occupied(_) => problems.push(Problem {
                            file: f.clone(),
                            line: None,
                            key: format!("profiles.{name}"),
                            msg: format!("profile {name:?} is also defined in {}", path.display()),
                        }),
                        std::collections::btree_map::Entry::Vacant(v) => {
                            v.insert(p);
                        }
                    },
                    Err(e) => problems.push(toml_problem(&src, &e)),
                }
                sources.push(src);
            }
        }
        cfg.profiles.entry("default".into()).or_default();
        problems.extend(cfg.validate(&sources));
        problems.extend(cfg.resolve_grants(&sources[0]));
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Problems(problems))
        }
    }

    /// For configs built in code (no file): check the same rules.
    pub fn finish(&mut self) -> Result<(), ConfigError> {
        self.profiles.entry("default".into()).or_default();
        let src = Source {
            path: PathBuf::from("(built-in defaults)"),
            text: String::new(),
            profile: None,
        };
        let mut p = self.validate(std::slice::from_ref(&src));
        p.extend(self.resolve_grants(&src));
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Problems(p))
        }
    }

    /// Check every `[[workspaces]]` grant and resolve it (real path, uids, gids).
    fn resolve_grants(&mut self, main: &Source) -> Vec<Problem> {
        let roots = self.workspace_roots.clone();
        let mut out = vec![];
        for (i, g) in self.workspaces.iter_mut().enumerate() {
            for (key, msg) in check_grant(&roots, g) {
                out.push(Problem {
                    file: main.path.clone(),
                    line: main.line_in_array("workspaces", i, key),
                    key: format!("workspaces[{}].{key}", i + 1),
                    msg,
                });
            }
        }
        out
    }

    /// Every rule the config must satisfy; all problems at once.
    fn validate(&self, sources: &[Source]) -> Vec<Problem> {
        let main = &sources[0];
        let mut out = vec![];
        let mut global = |key: &str, msg: String| {
            out.push(Problem {
                file: main.path.clone(),
                line: main.line_of("", key),
                key: key.into(),
                msg,
            })
        };
        if self.max_concurrent == 0 {
            global("max_concurrent", "must be at least 1".into());
        }
        if self.max_concurrent_per_peer == 0 {
            global("max_concurrent_per_peer", "must be at least 1".into());
        }
        for (k, v) in [
            ("read_max_chars", self.read_max_chars),
            ("write_max_bytes", self.write_max_bytes),
            ("list_max_entries", self.list_max_entries),
        ] {
            if v == 0 {
                global(k, "must be at least 1".into());
            }
        }
        if let Err(e) = crate::guard::Guard::new(
            self.guard_defaults,
            &self.deny_patterns,
            &self.allow_patterns,
        ) {
            global("deny_patterns", e.to_string());
        }
        for l in &self.allow_degraded {
            if l != "landlock" {
                global("allow_degraded", format!("{l:?} cannot be degraded; only \"landlock\" may be listed (seccomp, namespaces, rlimits and no_new_privs are always required)"));
            }
        }
        let socket_dir = self.socket.parent().map(Path::to_path_buf);
        for (name, p) in &self.profiles {
            // Where this profile's keys are written: its own profiles.d file, or the main file.
            let (src, prefix) = match sources.iter().find(|s| s.profile.as_deref() == Some(name)) {
                Some(s) => (s, String::new()),
                None => (main, format!("profiles.{name}")),
            };
            let mut bad = |table: &str, key: &str, msg: String| {
                let t = [prefix.as_str(), table]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(".");
                out.push(Problem {
                    file: src.path.clone(),
                    line: src.line_of(&t, key).or_else(|| src.line_of(&t, "")),
                    key: [
                        format!("profiles.{name}"),
                        table.to_string(),
                        key.to_string(),
                    ]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("."),
                    msg,
                })
            };
            if p.max_timeout_secs == 0 || p.max_timeout_secs > 86_400 {
                bad("", "max_timeout_secs", "must be between 1 and 86400".into());
            }
            if p.timeout_secs == 0 || p.timeout_secs > p.max_timeout_secs {
                bad(
                    "",
                    "timeout_secs",
                    format!(
                        "must be between 1 and max_timeout_secs ({})",
                        p.max_timeout_secs
                    ),
                );
            }
            if p.output_limit_bytes == 0 || p.output_limit_bytes > 1 << 30 {
                bad(
                    "",
                    "output_limit_bytes",
                    "must be between 1 and 1 GiB".into(),
                );
            }
            let l = &p.limits;
            for (key, v, lo, hi) in [
                ("cpu_secs", l.cpu_secs, 1, 86_400),
                (
                    "address_space_bytes",
                    l.address_space_bytes,
                    64 << 20,
                    1 << 44,
                ),
                ("file_size_bytes", l.file_size_bytes, 1, 1 << 44),
                ("open_files", l.open_files, 16, 1 << 20),
                ("processes", l.processes, 1, 1 << 16),
                ("tmp_size_bytes", l.tmp_size_bytes, 1 << 20, 1 << 40),
            ] {
                if v < lo || v > hi {
                    bad("limits", key, format!("{v} is out of range {lo}..={hi}"));
                }
            }
            let fs = &p.filesystem;
            for (key, paths, must_exist) in [
                ("read_exec", &fs.read_exec, false),
                ("read_only", &fs.read_only, true),
                ("read_write", &fs.read_write, true),
            ] {
                for path in paths {
                    if !path.is_absolute() {
                        bad(
                            "filesystem",
                            key,
                            format!("{} is not an absolute path", path.display()),
                        );
                    } else if must_exist && !path.exists() {
                        bad(
                            "filesystem",
                            key,
                            format!("{} does not exist", path.display()),
                        );
                    }
                }
            }
            for sock in &fs.unix_sockets {
                if !sock.is_absolute() {
                    bad(
                        "filesystem",
                        "unix_sockets",
                        format!("{} is not an absolute path", sock.display()),
                    );
                }
            }
            // What the sandbox's root cannot be built from (missing paths are reported above).
            match crate::confine::mounts::plan(
                fs,
                p.limits.tmp_size_bytes,
                &crate::confine::mounts::host_probe,
            ) {
                Err(crate::confine::mounts::MountPlanError::Missing { .. }) | Ok(_) => {}
                Err(crate::confine::mounts::MountPlanError::WholeRoot {
                    key: "filesystem.read_write",
                    ..
                }) => {}
                Err(e) => {
                    let key = e.key().trim_start_matches("filesystem.");
                    bad("filesystem", key, e.detail());
                }
            }
            for w in &fs.read_write {
                if w == Path::new("/") {
                    bad(
                        "filesystem",
                        "read_write",
                        "grants write access to /".into(),
                    );
                } else if let Some(sd) = &socket_dir {
                    if sd.starts_with(w) || w.starts_with(sd) {
                        bad(
                            "filesystem",
                            "read_write",
                            format!(
                                "{} grants write access to the socket's directory {}",
                                w.display(),
                                sd.display()
                            ),
                        );
                    }
                }
            }
            match p.network {
                Network::Ports if p.connect_ports.is_empty() => bad(
                    "",
                    "network",
                    "\"ports\" needs at least one port in connect_ports".into(),
                ),
                Network::Ports => {}
                _ if !p.connect_ports.is_empty() => bad(
                    "",
                    "connect_ports",
                    format!(
                        "has no effect with network = {:?}; use network = \"ports\"",
                        p.network
                    ),
                ),
                _ => {}
            }
            if p.connect_ports.contains(&0) {
                bad("", "connect_ports", "port 0 is not a port".into());
            }
            if let Err(e) = crate::guard::Guard::new(false, &p.deny_patterns, &p.allow_patterns) {
                bad("", "deny_patterns", e.to_string());
            }
            for k in p.env_set.keys() {
                if k.is_empty() || k.contains('=') || k.contains('\0') {
                    bad("env_set", k, "is not a valid variable name".into());
                }
            }
        }
        out
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

    #[test]
    fn problems_name_file_line_and_key_and_come_all_at_once() {
        let text = "socket = \"/run/nb/sandboxd.sock\"\n\
                    [profiles.build]\n\
                    timeout_secs = 0\n\
                    [profiles.build.limits]\n\
                    processes = 0\n\
                    [profiles.build.filesystem]\n\
                    read_write = [\"/run\"]\n\
                    read_only = [\"/nonexistent/nb-data\"]\n";
        let e = Config::parse(text, Path::new("/etc/nb.toml")).unwrap_err();
        let p = e.problems();
        let has = |s: &str| p.iter().any(|l| l.contains(s));
        assert!(
            has("/etc/nb.toml:3: profiles.build.timeout_secs: must be between 1"),
            "{p:#?}"
        );
        assert!(
            has("/etc/nb.toml:5: profiles.build.limits.processes: 0 is out of range"),
            "{p:#?}"
        );
        assert!(has("/etc/nb.toml:7: profiles.build.filesystem.read_write: /run grants write access to the socket's directory /run/nb"), "{p:#?}");
        assert!(has("/etc/nb.toml:8: profiles.build.filesystem.read_only: /nonexistent/nb-data does not exist"), "{p:#?}");
        assert_eq!(p.len(), 4, "{p:#?}");
    }

    #[test]
    fn roots_that_cannot_be_built_are_named_with_their_key() {
        let text = "[profiles.p.filesystem]\n\
                    read_only = [\"/proc/1\"]\n\
                    [profiles.q.filesystem]\n\
                    read_exec = [\"/\"]\n\
                    unix_sockets = [\"/etc/passwd\", \"rel.sock\"]\n";
        let p = Config::parse(text, Path::new("/etc/nb.toml"))
            .unwrap_err()
            .problems();
        let has = |s: &str| p.iter().any(|l| l.contains(s));
        assert!(
            has("/etc/nb.toml:2: profiles.p.filesystem.read_only: /proc/1 is inside /proc"),
            "{p:#?}"
        );
        assert!(
            has("/etc/nb.toml:4: profiles.q.filesystem.read_exec: / would show the host's whole root"),
            "{p:#?}"
        );
        assert!(
            has("/etc/nb.toml:5: profiles.q.filesystem.unix_sockets: rel.sock is not an absolute path"),
            "{p:#?}"
        );
        // A socket that is not there yet is fine (it is bound when present); a file is not a socket.
        let c = Config::parse(
            "[profiles.p.filesystem]\nunix_sockets = [\"/run/nb-no-such.sock\"]\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(c.profiles["p"].filesystem.unix_sockets.len(), 1);
        let e = Config::parse(
            "[profiles.p.filesystem]\nunix_sockets = [\"/etc/passwd\"]\n",
            Path::new("x"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/etc/passwd is not a socket"), "{e}");
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        let e = Config::parse("a = 1\n[profiles.x\n", Path::new("/etc/nb.toml")).unwrap_err();
        assert!(e.to_string().starts_with("/etc/nb.toml:2: "), "{e}");
    }

    #[test]
    fn ports_need_ports_and_ports_need_the_ports_mode() {
        let e = Config::parse("[profiles.p]\nnetwork = \"ports\"\n", Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("needs at least one port"), "{e}");
        let e = Config::parse("[profiles.p]\nconnect_ports = [443]\n", Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("has no effect"), "{e}");
        let c = Config::parse(
            "[profiles.p]\nnetwork = \"ports\"\nconnect_ports = [443]\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(c.profiles["p"].connect_ports, vec![443]);
    }

    #[test]
    fn profiles_d_files_define_profiles_named_after_them() {
        let dir = std::env::temp_dir().join(format!("sandboxd-cfg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("profiles.d")).unwrap();
        let main = dir.join("sandboxd.toml");
        std::fs::write(&main, "[profiles.inline]\ntimeout_secs = 5\n").unwrap();
        std::fs::write(
            dir.join("profiles.d/web.toml"),
            "network = \"full\"\n[limits]\nprocesses = 64\n",
        )
        .unwrap();
        std::fs::write(dir.join("profiles.d/notes.txt"), "ignored").unwrap();
        let c = Config::load(&main).unwrap();
        assert_eq!(c.profiles["web"].network, Network::Full);
        assert_eq!(c.profiles["web"].limits.processes, 64);
        assert_eq!(c.profiles["inline"].timeout_secs, 5);
        // A bad file is named with its line and the profile's key path.
        std::fs::write(
            dir.join("profiles.d/bad.toml"),
            "\n[limits]\nopen_files = 3\n",
        )
        .unwrap();
        std::fs::write(dir.join("profiles.d/inline.toml"), "").unwrap();
        let p = Config::load(&main).unwrap_err().problems();
        let bad = dir.join("profiles.d/bad.toml");
        assert!(
            p.iter().any(|l| l.starts_with(&format!(
                "{}:3: profiles.bad.limits.open_files",
                bad.display()
            ))),
            "{p:#?}"
        );
        assert!(p.iter().any(|l| l.contains("also defined in")), "{p:#?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn workspace_grants_resolve_and_their_problems_name_file_line_and_key() {
        let base = std::env::temp_dir().join(format!("sandboxd-grants-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("root/shared")).unwrap();
        std::fs::create_dir_all(base.join("elsewhere")).unwrap();
        let root = base.join("root").canonicalize().unwrap();
        // Positive control: an existing path beneath the root, an existing user and group.
        let good = format!(
            "workspace_roots = [{r:?}]\n\n[[workspaces]]\npath = {p:?}\nusers = [\"root\"]\ngroups = [\"root\"]\n",
            r = root.display().to_string(),
            p = root.join("shared").display().to_string()
        );
        let c = Config::parse(&good, Path::new("/etc/nb.toml")).unwrap();
        assert_eq!(c.workspaces.len(), 1);
        assert_eq!(c.workspaces[0].path, root.join("shared"));
        assert_eq!(c.workspaces[0].uids, vec![0]);
        assert_eq!(c.workspaces[0].gids, vec![0]);

        let text = format!(
            "workspace_roots = [{r:?}]\n\
             [[workspaces]]\n\
             path = {shared:?}\n\
             users = [\"root\", \"nb-no-such-user\"]\n\
             [[workspaces]]\n\
             groups = [\"nb-no-such-group\"]\n\
             path = {missing:?}\n\
             \n\
             [[workspaces]]\n\
             path = {outside:?}\n\
             users = [\"root\"]\n\
             [profiles.default]\n\
             timeout_secs = 5\n",
            r = root.display().to_string(),
            shared = root.join("shared").display().to_string(),
            missing = root.join("missing").display().to_string(),
            outside = base.join("elsewhere").display().to_string(),
        );
        let p = Config::parse(&text, Path::new("/etc/nb.toml"))
            .unwrap_err()
            .problems();
        let has = |s: &str| p.iter().any(|l| l.starts_with(s));
        assert!(
            has("/etc/nb.toml:4: workspaces[1].users: user \"nb-no-such-user\" does not exist"),
            "{p:#?}"
        );
        assert!(
            has("/etc/nb.toml:6: workspaces[2].groups: group \"nb-no-such-group\" does not exist"),
            "{p:#?}"
        );
        assert!(has("/etc/nb.toml:7: workspaces[2].path: "), "{p:#?}");
        assert!(
            has("/etc/nb.toml:10: workspaces[3].path: ")
                && p.iter()
                    .any(|l| l.contains("is not beneath a workspace root")),
            "{p:#?}"
        );
        assert_eq!(p.len(), 4, "{p:#?}");
        // Unknown keys in a grant stay errors.
        let e = Config::parse(
            "[[workspaces]]\npath = \"/x\"\nuser = [\"root\"]\n",
            Path::new("x"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("user"), "{e}");
        // A grant for nobody is a mistake, not a no-op.
        let e = Config::parse(
            &format!(
                "workspace_roots = [{r:?}]\n[[workspaces]]\npath = {r:?}\n",
                r = root.display().to_string()
            ),
            Path::new("x"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("x:2: workspaces[1].users: grants nobody"), "{e}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}

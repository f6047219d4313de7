//! `~/.nanobot/config.json`: the keys of the security guide, camelCase, with the Python nanobot's
//! spellings accepted as aliases. Loading never falls back to defaults on a bad file: a syntax or
//! type error names the file, line, column and key. `//` comments are allowed (onboard writes a
//! commented file), `${VAR}` references are expanded, and `NANOBOT_SECTION__KEY` environment
//! variables override keys.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("{path}:{line}:{column}: invalid JSON: {msg}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        msg: String,
    },
    #[error("{path}:{line}:{column}: key {key}: {msg}")]
    Type {
        path: String,
        line: usize,
        column: usize,
        key: String,
        msg: String,
    },
    #[error("environment variable {var} overrides key {key}: {msg}")]
    Env {
        var: String,
        key: String,
        msg: String,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Config {
    pub agents: Agents,
    pub providers: BTreeMap<String, ProviderConfig>,
    pub channels: BTreeMap<String, ChannelConfig>,
    pub sandbox: SandboxConfig,
    /// The Python nanobot's spellings, folded into `agents.defaults` on load.
    #[serde(skip_serializing)]
    pub tools: LegacyTools,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Agents {
    pub defaults: AgentDefaults,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AgentDefaults {
    pub workspace: Option<String>,
    pub model: String,
    /// Provider name; when unset it is chosen from the model name.
    pub provider: Option<String>,
    pub max_tokens: u32,
    pub temperature: f32,
    /// Rounds of model call → tool calls per message, 1 to `MAX_TOOL_ITERATIONS`; 0 is refused
    /// at load, never taken as 1.
    #[serde(deserialize_with = "tool_iterations")]
    pub max_tool_iterations: u32,
    pub restrict_to_workspace: Option<bool>,
    pub exec_config: ExecConfig,
}

impl Default for AgentDefaults {
    fn default() -> Self {
        AgentDefaults {
            workspace: None,
            model: "anthropic/claude-opus-4-5".into(),
            provider: None,
            max_tokens: 8192,
            temperature: 0.7,
            max_tool_iterations: 20,
            restrict_to_workspace: None,
            exec_config: ExecConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExecConfig {
    /// Seconds, at least 1; default 60 (0 would silently mean the profile's own timeout).
    #[serde(deserialize_with = "positive_u32")]
    pub timeout: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProviderConfig {
    pub api_key: Option<String>,
    pub api_base: Option<String>,
    pub extra_headers: BTreeMap<String, String>,
    /// Seconds per HTTP request, at least 1; default 120.
    #[serde(deserialize_with = "positive_u64")]
    pub timeout: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChannelConfig {
    pub enabled: bool,
    pub allow_from: Vec<String>,
    /// Channel-specific settings (token, bridgeToken, …).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SandboxConfig {
    pub socket: Option<PathBuf>,
    pub profile: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LegacyTools {
    pub restrict_to_workspace: Option<bool>,
    pub exec: ExecConfig,
}

/// The most `maxToolIterations` accepts.
pub const MAX_TOOL_ITERATIONS: u32 = 1000;

/// A number in `min..=max`; anything else is an error naming the allowed range (the key, file,
/// line and column are added by the loader), never clamped.
fn ranged<'de, D: serde::Deserializer<'de>>(d: D, min: u64, max: u64) -> Result<u64, D::Error> {
    let n = u64::deserialize(d)?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(serde::de::Error::custom(format!(
            "{n} is out of range: allowed are {min} to {max}"
        )))
    }
}

fn tool_iterations<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = ranged(d, 1, u64::from(MAX_TOOL_ITERATIONS))?;
    u32::try_from(n).map_err(serde::de::Error::custom)
}

fn positive_u32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let n = positive_u64(d)?;
    n.map(|n| u32::try_from(n).map_err(serde::de::Error::custom))
        .transpose()
}

fn positive_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<u64>::deserialize(d)? {
        None => Ok(None),
        Some(n) => ranged(
            serde::de::value::U64Deserializer::<D::Error>::new(n),
            1,
            u64::from(u32::MAX),
        )
        .map(Some),
    }
}

impl Config {
    pub fn restrict_to_workspace(&self) -> bool {
        self.agents.defaults.restrict_to_workspace.unwrap_or(true)
    }
    pub fn exec_timeout(&self) -> u32 {
        self.agents.defaults.exec_config.timeout.unwrap_or(60)
    }
    pub fn workspace(&self) -> Option<PathBuf> {
        self.agents.defaults.workspace.as_deref().map(expand_home)
    }
}

pub fn expand_home(p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => crate::user::home().join(rest),
        None if p == "~" => crate::user::home(),
        None => PathBuf::from(p),
    }
}

pub fn default_dir() -> PathBuf {
    crate::user::home().join(".nanobot")
}

pub fn default_path() -> PathBuf {
    default_dir().join("config.json")
}

/// A loaded config and what the operator should hear about it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub path: PathBuf,
    pub exists: bool,
    pub warnings: Vec<String>,
    /// `${VAR}` references to unset variables. Not warnings by themselves: only the command that
    /// uses the key they sit in warns about them (a template's unused provider stays quiet).
    pub unset_refs: Vec<UnsetRef>,
}

/// A `${VAR}` reference whose variable is not set: the key it sits in (`providers.openrouter.apiKey`)
/// and the variable's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsetRef {
    pub key: String,
    pub var: String,
}

impl std::fmt::Display for UnsetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} refers to ${{{}}}, which is not set in the environment",
            self.key, self.var
        )
    }
}

/// Sections whose keys only some commands use: an unset reference in them concerns only the
/// command that uses that provider or channel.
pub const SECTIONS_USED_ON_DEMAND: &[&str] = &["providers", "channels"];

impl Loaded {
    /// The unset references in `section` (`providers.openrouter`) and below.
    pub fn unset_under<'a>(&'a self, section: &'a str) -> impl Iterator<Item = &'a UnsetRef> + 'a {
        self.unset_refs.iter().filter(move |r| {
            r.key == section
                || r.key
                    .strip_prefix(section)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    }

    /// The unset references every command uses (outside `providers` and `channels`).
    pub fn unset_everywhere(&self) -> impl Iterator<Item = &UnsetRef> + '_ {
        self.unset_refs.iter().filter(|r| {
            !SECTIONS_USED_ON_DEMAND
                .iter()
                .any(|s| r.key.starts_with(&format!("{s}.")))
        })
    }
}

/// Load `path` (a missing file gives the defaults) and apply the environment.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    load_with_env(path, &env)
}

pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let shown = path.display().to_string();
    let (text, exists) = match std::fs::read_to_string(path) {
        Ok(t) => (t, true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ("{}".to_string(), false),
        Err(err) => return Err(ConfigError::Read { path: shown, err }),
    };
    let text = strip_comments(&text);
    let mut warnings = vec![];

    // Syntax first, then types against the text itself so errors carry line and column.
    let mut value: Value = serde_json::from_str(&text).map_err(|e| ConfigError::Syntax {
        path: shown.clone(),
        line: e.line(),
        column: e.column(),
        msg: strip_position(&e.to_string()),
    })?;
    let mut unknown = vec![];
    {
        let mut de = serde_json::Deserializer::from_str(&text);
        let mut record = |p: serde_ignored::Path<'_>| unknown.push(p.to_string());
        let ig = serde_ignored::Deserializer::new(&mut de, &mut record);
        let r: Result<Config, _> = serde_path_to_error::deserialize(ig);
        if let Err(e) = r {
            let inner = e.inner();
            return Err(ConfigError::Type {
                path: shown,
                line: inner.line(),
                column: inner.column(),
                key: e.path().to_string(),
                msg: strip_position(&inner.to_string()),
            });
        }
    }
    for k in unknown {
        warnings.push(format!("{shown}: unknown key {k} (ignored)"));
    }

    fold_aliases(&mut value, &mut warnings);
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix("NANOBOT_") else {
            continue;
        };
        if !rest.contains("__") {
            continue; // NANOBOT_ALLOW_ROOT, NANOBOT_SANDBOX_SOCKET: not config keys
        }
        let keys: Vec<String> = rest.split("__").map(camel).collect();
        set_path(&mut value, &keys, raw);
        // Check that this one override still makes a valid config, to name it if not.
        if let Err(e) = serde_path_to_error::deserialize::<_, Config>(value.clone()) {
            return Err(ConfigError::Env {
                var: var.clone(),
                key: keys.join("."),
                msg: e.inner().to_string(),
            });
        }
    }
    let mut unset_refs = vec![];
    expand_env_refs(&mut value, "", env, &mut unset_refs);
    let config: Config =
        serde_path_to_error::deserialize(value).map_err(|e| ConfigError::Type {
            path: shown.clone(),
            line: 0,
            column: 0,
            key: e.path().to_string(),
            msg: e.inner().to_string(),
        })?;
    Ok(Loaded {
        config,
        path: path.to_path_buf(),
        exists,
        warnings,
        unset_refs,
    })
}

/// serde_json appends " at line L column C"; we print the position up front.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Blank out `//` comments outside strings, keeping every other byte (and so line and column) in
/// place.
pub fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_str = false;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        if c == '"' {
            in_str = true;
            out.push(c);
        } else if c == '/' && chars.peek() == Some(&'/') {
            out.push(' ');
            for c in chars.by_ref() {
                if c == '\n' {
                    out.push('\n');
                    break;
                }
                out.push(if c == '\t' { '\t' } else { ' ' });
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `tools.restrictToWorkspace` → `agents.defaults.restrictToWorkspace`, `tools.exec.timeout` →
/// `agents.defaults.execConfig.timeout`, unless the new spelling is set too.
fn fold_aliases(v: &mut Value, warnings: &mut Vec<String>) {
    let Some(tools) = v.get("tools").cloned() else {
        return;
    };
    let pairs = [
        (
            tools.get("restrictToWorkspace").cloned(),
            vec!["agents", "defaults", "restrictToWorkspace"],
            "tools.restrictToWorkspace",
        ),
        (
            tools.get("exec").and_then(|e| e.get("timeout")).cloned(),
            vec!["agents", "defaults", "execConfig", "timeout"],
            "tools.exec.timeout",
        ),
    ];
    for (val, path, old) in pairs {
        let Some(val) = val else { continue };
        let keys: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        if get_path(v, &keys).is_some() {
            warnings.push(format!(
                "both {old} and {} are set; using {}",
                keys.join("."),
                keys.join(".")
            ));
        } else {
            set_value(v, &keys, val);
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("tools");
    }
}

/// `API_KEY` → `apiKey`, `OPENROUTER` → `openrouter`.
fn camel(seg: &str) -> String {
    let mut out = String::new();
    for (i, part) in seg.split('_').filter(|p| !p.is_empty()).enumerate() {
        let lower = part.to_ascii_lowercase();
        if i == 0 {
            out.push_str(&lower);
        } else {
            let mut c = lower.chars();
            if let Some(f) = c.next() {
                out.extend(f.to_uppercase());
                out.push_str(c.as_str());
            }
        }
    }
    out
}

fn get_path<'a>(v: &'a Value, keys: &[String]) -> Option<&'a Value> {
    keys.iter().try_fold(v, |cur, k| cur.get(k))
}

fn set_value(v: &mut Value, keys: &[String], val: Value) {
    let mut cur = v;
    for k in &keys[..keys.len().saturating_sub(1)] {
        if !cur.is_object() {
            *cur = Value::Object(Default::default());
        }
        let Some(obj) = cur.as_object_mut() else {
            return;
        };
        cur = obj
            .entry(k.clone())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    if let (Some(last), Some(obj)) = (keys.last(), {
        if !cur.is_object() {
            *cur = Value::Object(Default::default());
        }
        cur.as_object_mut()
    }) {
        obj.insert(last.clone(), val);
    }
}

/// Set from an environment string: a string where the file has a string, else JSON when it parses
/// as a number, boolean, array or object.
fn set_path(v: &mut Value, keys: &[String], raw: &str) {
    let existing_is_string = matches!(get_path(v, keys), Some(Value::String(_)));
    let parsed = serde_json::from_str::<Value>(raw)
        .ok()
        .filter(|p| !p.is_string() && !existing_is_string);
    set_value(v, keys, parsed.unwrap_or_else(|| Value::String(raw.into())));
}

/// Replace `${VAR}` in every string. An unset variable becomes empty and is recorded in `unset`.
fn expand_env_refs(v: &mut Value, at: &str, env: &[(String, String)], unset: &mut Vec<UnsetRef>) {
    match v {
        Value::String(s) if s.contains("${") => {
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(i) = rest.find("${") {
                out.push_str(&rest[..i]);
                let after = &rest[i + 2..];
                match after.find('}') {
                    Some(j) => {
                        let name = &after[..j];
                        match env.iter().find(|(k, _)| k == name) {
                            Some((_, val)) => out.push_str(val),
                            None => unset.push(UnsetRef {
                                key: at.to_string(),
                                var: name.to_string(),
                            }),
                        }
                        rest = &after[j + 1..];
                    }
                    None => {
                        out.push_str(&rest[i..]);
                        rest = "";
                    }
                }
            }
            out.push_str(rest);
            *s = out;
        }
        Value::Object(o) => {
            for (k, child) in o.iter_mut() {
                let p = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                expand_env_refs(child, &p, env, unset);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter_mut().enumerate() {
                expand_env_refs(child, &format!("{at}[{i}]"), env, unset);
            }
        }
        _ => {}
    }
}

/// Warnings, with the exact command to fix them, when the directory or file is readable by others.
pub fn mode_warnings(dir: &Path, file: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = vec![];
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| m.permissions().mode() & 0o777)
    };
    if let Some(m) = mode(dir) {
        if m != 0o700 {
            out.push(format!(
                "{} has mode {m:o}; other users may read your keys and history. Run: chmod 700 {}",
                dir.display(),
                dir.display()
            ));
        }
    }
    if let Some(m) = mode(file) {
        if m != 0o600 {
            out.push(format!(
                "{} has mode {m:o}; other users may read your API keys. Run: chmod 600 {}",
                file.display(),
                file.display()
            ));
        }
    }
    out
}

/// Keys whose value is written in the file literally where a `${VAR}` reference could be used.
pub fn literal_secrets(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return vec![];
    };
    let Ok(v) = serde_json::from_str::<Value>(&strip_comments(&text)) else {
        return vec![];
    };
    let mut out = vec![];
    if let Some(p) = v.get("providers").and_then(Value::as_object) {
        for (name, cfg) in p {
            if let Some(k) = cfg.get("apiKey").and_then(Value::as_str) {
                if !k.is_empty() && !k.contains("${") {
                    out.push(format!("providers.{name}.apiKey"));
                }
            }
        }
    }
    if let Some(c) = v.get("channels").and_then(Value::as_object) {
        for (name, cfg) in c {
            for key in [
                "token",
                "bridgeToken",
                "password",
                "secret",
                "appSecret",
                "imapPassword",
                "smtpPassword",
            ] {
                if let Some(k) = cfg.get(key).and_then(Value::as_str) {
                    if !k.is_empty() && !k.contains("${") {
                        out.push(format!("channels.{name}.{key}"));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "nanobot-cfg-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("config.json");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::SeqCst)
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults_when_missing() {
        let l = load_with_env(Path::new("/nonexistent/config.json"), &[]).unwrap();
        assert!(!l.exists);
        assert!(l.config.restrict_to_workspace());
        assert_eq!(l.config.exec_timeout(), 60);
        assert_eq!(l.config.agents.defaults.max_tool_iterations, 20);
    }

    #[test]
    fn guide_keys_load() {
        let (_d, p) = write(
            r#"{
  "agents": {"defaults": {"model": "openrouter/x", "maxTokens": 100, "temperature": 0.1,
     "maxToolIterations": 3, "restrictToWorkspace": true, "execConfig": {"timeout": 30},
     "workspace": "~/ws"}},
  "providers": {"openrouter": {"apiKey": "k", "apiBase": "http://127.0.0.1:1/v1",
     "extraHeaders": {"X-A": "b"}}},
  "channels": {"telegram": {"enabled": true, "token": "t", "allowFrom": ["1"]}},
  "sandbox": {"socket": "/run/x.sock", "profile": "build"}
}"#,
        );
        let l = load_with_env(&p, &[]).unwrap();
        let c = &l.config;
        assert_eq!(c.exec_timeout(), 30);
        assert_eq!(c.agents.defaults.max_tokens, 100);
        assert_eq!(c.providers["openrouter"].extra_headers["X-A"], "b");
        assert_eq!(c.channels["telegram"].allow_from, vec!["1"]);
        assert_eq!(c.channels["telegram"].extra["token"], "t");
        assert_eq!(c.sandbox.profile.as_deref(), Some("build"));
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    }

    #[test]
    fn python_aliases_are_accepted() {
        let (_d, p) =
            write(r#"{"tools": {"restrictToWorkspace": false, "exec": {"timeout": 15}}}"#);
        let l = load_with_env(&p, &[]).unwrap();
        assert!(!l.config.restrict_to_workspace());
        assert_eq!(l.config.exec_timeout(), 15);
    }

    #[test]
    fn syntax_error_names_file_line_and_column() {
        let (_d, p) = write("{\n  \"agents\": {\n    \"defaults\": {\"model\": \"x\",}\n  }\n}");
        let e = load_with_env(&p, &[]).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:3:", p.display())), "{e}");
        assert!(e.contains("invalid JSON"), "{e}");
    }

    #[test]
    fn type_error_names_the_key() {
        let (_d, p) = write("{\"agents\": {\"defaults\": {\n  \"maxToolIterations\": \"many\"}}}");
        let e = load_with_env(&p, &[]).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{}:2:", p.display()))
                && e.contains("key agents.defaults.maxToolIterations"),
            "{e}"
        );
    }

    /// A number out of its range is refused, naming the key and the range; never clamped.
    #[test]
    fn numbers_out_of_range_are_refused_not_clamped() {
        for (text, key, range) in [
            (
                "{\"agents\": {\"defaults\": {\n  \"maxToolIterations\": 0}}}",
                "key agents.defaults.maxToolIterations",
                "allowed are 1 to 1000",
            ),
            (
                "{\"agents\": {\"defaults\": {\n  \"maxToolIterations\": 1001}}}",
                "key agents.defaults.maxToolIterations",
                "allowed are 1 to 1000",
            ),
            (
                "{\"agents\": {\"defaults\": {\n  \"execConfig\": {\"timeout\": 0}}}}",
                "key agents.defaults.execConfig.timeout",
                "allowed are 1 to",
            ),
            (
                "{\"tools\": {\n  \"exec\": {\"timeout\": 0}}}",
                "key tools.exec.timeout",
                "allowed are 1 to",
            ),
            (
                "{\"providers\": {\"x\": {\n  \"timeout\": 0}}}",
                "key providers.x.timeout",
                "allowed are 1 to",
            ),
        ] {
            let (_d, p) = write(text);
            let e = load_with_env(&p, &[]).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("{}:2:", p.display()))
                    && e.contains(key)
                    && e.contains(range),
                "{e}"
            );
            assert!(
                e.contains(" 0 is out of range") || e.contains(" 1001 is out of range"),
                "{e}"
            );
        }
        // The edges are accepted.
        let (_d, p) = write("{\"agents\": {\"defaults\": {\"maxToolIterations\": 1, \"execConfig\": {\"timeout\": 1}}}}");
        let l = load_with_env(&p, &[]).unwrap();
        assert_eq!(l.config.agents.defaults.max_tool_iterations, 1);
        assert_eq!(l.config.exec_timeout(), 1);
        let (_d, p) = write("{\"agents\": {\"defaults\": {\"maxToolIterations\": 1000}}}");
        assert_eq!(
            load_with_env(&p, &[])
                .unwrap()
                .config
                .agents
                .defaults
                .max_tool_iterations,
            1000
        );
        // An environment override is checked the same way.
        let e = load_with_env(
            Path::new("/nonexistent/config.json"),
            &env(&[("NANOBOT_AGENTS__DEFAULTS__MAX_TOOL_ITERATIONS", "0")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("NANOBOT_AGENTS__DEFAULTS__MAX_TOOL_ITERATIONS")
                && e.contains("agents.defaults.maxToolIterations")
                && e.contains("allowed are 1 to 1000"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_warn_with_their_path() {
        let (_d, p) = write(r#"{"agents": {"defaults": {"modle": "x"}}, "extra": 1}"#);
        let l = load_with_env(&p, &[]).unwrap();
        let w = l.warnings.join("\n");
        assert!(w.contains("unknown key agents.defaults.modle"), "{w}");
        assert!(w.contains("unknown key extra"), "{w}");
    }

    #[test]
    fn env_refs_and_overrides() {
        let (_d, p) = write(
            "// keys come from the environment\n{\"providers\": {\"openrouter\": {\"apiKey\": \"${OR_KEY}\"}, \"groq\": {\"apiKey\": \"${MISSING}\"}}}",
        );
        let e = env(&[
            ("OR_KEY", "sk-or"),
            ("NANOBOT_PROVIDERS__DEEPSEEK__API_KEY", "sk-ds"),
            ("NANOBOT_AGENTS__DEFAULTS__MAX_TOOL_ITERATIONS", "7"),
            ("NANOBOT_ALLOW_ROOT", "1"),
        ]);
        let l = load_with_env(&p, &e).unwrap();
        assert_eq!(
            l.config.providers["openrouter"].api_key.as_deref(),
            Some("sk-or")
        );
        assert_eq!(
            l.config.providers["deepseek"].api_key.as_deref(),
            Some("sk-ds")
        );
        assert_eq!(l.config.agents.defaults.max_tool_iterations, 7);
        assert_eq!(
            l.unset_refs,
            vec![UnsetRef {
                key: "providers.groq.apiKey".into(),
                var: "MISSING".into()
            }]
        );
        // Not a warning by itself: only a command using providers.groq hears of it.
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    }

    #[test]
    fn unset_refs_belong_to_the_section_they_sit_in() {
        let (_d, p) = write(
            r#"{"providers": {"openrouter": {"apiKey": "${OR}"}, "open": {"apiKey": "${OPEN}"}},
                "channels": {"telegram": {"token": "${TG}"}},
                "sandbox": {"profile": "${PROFILE}"}}"#,
        );
        let l = load_with_env(&p, &[]).unwrap();
        let vars = |it: Vec<&UnsetRef>| it.iter().map(|r| r.var.clone()).collect::<Vec<_>>();
        assert_eq!(
            vars(l.unset_under("providers.open").collect()),
            vec!["OPEN"]
        );
        assert_eq!(
            vars(l.unset_under("providers.openrouter").collect()),
            vec!["OR"]
        );
        assert_eq!(
            vars(l.unset_under("channels.telegram").collect()),
            vec!["TG"]
        );
        assert_eq!(vars(l.unset_everywhere().collect()), vec!["PROFILE"]);
        assert_eq!(
            l.unset_refs[0].to_string(),
            "channels.telegram.token refers to ${TG}, which is not set in the environment"
        );
    }

    #[test]
    fn a_bad_override_names_the_variable() {
        let (_d, p) = write("{}");
        let e = env(&[("NANOBOT_AGENTS__DEFAULTS__MAX_TOKENS", "lots")]);
        let err = load_with_env(&p, &e).unwrap_err().to_string();
        assert!(
            err.contains("NANOBOT_AGENTS__DEFAULTS__MAX_TOKENS") && err.contains("maxTokens"),
            "{err}"
        );
    }

    #[test]
    fn comments_keep_positions_and_strings() {
        let s = strip_comments("{\"a\": \"http://x\" // c\n}");
        assert_eq!(s, "{\"a\": \"http://x\"     \n}");
    }

    #[test]
    fn camel_case_segments() {
        assert_eq!(camel("API_KEY"), "apiKey");
        assert_eq!(camel("OPENROUTER"), "openrouter");
        assert_eq!(camel("MAX_TOOL_ITERATIONS"), "maxToolIterations");
    }

    #[test]
    fn loose_modes_warn_with_the_chmod() {
        use std::os::unix::fs::PermissionsExt;
        let (d, p) = write("{}");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let w = mode_warnings(&d, &p);
        assert!(
            w[0].contains(&format!("chmod 700 {}", d.display())),
            "{w:?}"
        );
        assert!(
            w[1].contains(&format!("chmod 600 {}", p.display())),
            "{w:?}"
        );
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(mode_warnings(&d, &p).is_empty());
    }
}

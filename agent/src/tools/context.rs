//! What every tool call has and gives back: the context (sandboxd client, workspace, exec limits,
//! audit log), the `Output` the model reads, argument parsing and the log line of a failed call.

use crate::audit::AuditLog;
use crate::config::Config;
use crate::sandbox::client::Client;
use serde_json::Value;
use std::path::PathBuf;

pub struct Ctx {
    pub client: Client,
    pub workspace: PathBuf,
    /// Seconds sent with each exec (`execConfig.timeout`); sandboxd's profile maximum still wins.
    pub timeout: u32,
    pub profile: String,
    pub log: AuditLog,
    /// `restrictToWorkspace`: refuse a `working_dir` outside the workspace here, without asking
    /// sandboxd. When false it is sent and sandboxd refuses it; nothing runs outside either way.
    pub restrict: bool,
}

/// What the model gets back: the text, and whether it is an error; and the exit code of
/// `nanobot tool` for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub text: String,
    pub is_error: bool,
    /// For exec, the code `nanobot exec` would exit with for the same result (the command's own,
    /// 128+N, 124, 125 when the sandbox refused, failed or cut the output, 126, 127); for the
    /// other tools 0, or 1 for an error result; for every tool `EXIT_BAD_ARGS` (2) when the
    /// arguments are wrong.
    pub code: i32,
}

pub fn ok(text: String) -> Output {
    Output {
        text,
        is_error: false,
        code: 0,
    }
}

/// `nanobot tool`'s exit code when the call's arguments are wrong (not an object, a required
/// argument missing, an argument of the wrong type): the tool did not run.
pub const EXIT_BAD_ARGS: i32 = 2;

/// An error result for arguments the tool cannot run with.
pub fn bad_arg(text: impl std::fmt::Display) -> Output {
    Output {
        code: EXIT_BAD_ARGS,
        ..err(text)
    }
}

pub fn err(text: impl std::fmt::Display) -> Output {
    Output {
        text: format!("Error: {text}"),
        is_error: true,
        code: 1,
    }
}

impl Ctx {
    /// A tool context from the config: `execConfig.timeout`, `sandbox.profile`,
    /// `restrictToWorkspace`.
    pub fn new(client: Client, workspace: PathBuf, cfg: &Config, log: AuditLog) -> Ctx {
        Ctx {
            client,
            workspace,
            timeout: cfg.exec_timeout(),
            profile: cfg.sandbox.profile.clone().unwrap_or_default(),
            log,
            restrict: cfg.restrict_to_workspace(),
        }
    }

    pub fn ws(&self) -> String {
        self.workspace.to_string_lossy().into_owned()
    }

    /// Log a failed call in the words operators grep for.
    pub fn log_status(&self, what: &str, st: &tonic::Status) {
        if st.code() == tonic::Code::PermissionDenied {
            self.log
                .line("WARN", &format!("{what}: Access denied: {}", st.message()));
        } else {
            self.log
                .line("WARN", &format!("{what}: error: {}", st.message()));
        }
    }
}

/// What a JSON value is, for a message: `a string`, `a number`, ...
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A required string argument.
pub fn arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, Output> {
    match args.get(name) {
        None | Some(Value::Null) => Err(bad_arg(format!("missing required argument '{name}'"))),
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(bad_arg(format!(
            "argument '{name}' must be a string, got {}",
            kind(v)
        ))),
    }
}

/// An optional string argument.
pub fn opt_arg<'a>(args: &'a Value, name: &str) -> Result<Option<&'a str>, Output> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => arg(args, name).map(Some),
    }
}

/// An optional non-negative integer argument, 0 when absent.
pub fn num(args: &Value, name: &str) -> Result<u32, Output> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                let got = if v.is_number() {
                    format!("got {v}")
                } else {
                    format!("got {}", kind(v))
                };
                bad_arg(format!(
                    "argument '{name}' must be a non-negative integer, {got}"
                ))
            }),
    }
}

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
    /// other tools 0, or 1 for an error result.
    pub code: i32,
}

pub fn ok(text: String) -> Output {
    Output {
        text,
        is_error: false,
        code: 0,
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

pub fn arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, Output> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| err(format!("missing string argument '{name}'")))
}

pub fn num(args: &Value, name: &str) -> Result<u32, Output> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| err(format!("argument '{name}' must be a non-negative integer"))),
    }
}

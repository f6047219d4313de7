//! `nanobot tool NAME 'JSON_ARGS'`: run one tool exactly as the agent loop would and print what
//! the model would see. Exit 0 on success, 1 when the tool returned an error.

use crate::audit::AuditLog;
use crate::tools::{Ctx, TOOLS};
use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ToolArgs {
    /// exec, read_file, write_file, edit_file or list_dir
    pub name: String,
    /// Arguments as a JSON object, e.g. '{"path": "notes.md"}'
    pub json: String,
    /// sandboxd socket (same defaults as `nanobot exec`)
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Workspace directory (default: ~/.nanobot/workspace)
    #[arg(long, short = 'w')]
    pub workspace: Option<PathBuf>,
    /// Exec timeout in seconds (default 60, the security guide's execConfig.timeout)
    #[arg(long, default_value_t = 60)]
    pub timeout: u32,
    /// Sandbox profile
    #[arg(long)]
    pub profile: Option<String>,
}

pub async fn run(a: ToolArgs) -> Result<i32> {
    if !TOOLS.contains(&a.name.as_str()) {
        anyhow::bail!("unknown tool {:?}; available: {}", a.name, TOOLS.join(", "));
    }
    let args: serde_json::Value = serde_json::from_str(&a.json)
        .with_context(|| format!("arguments are not valid JSON: {}", a.json))?;
    if !args.is_object() {
        anyhow::bail!("arguments must be a JSON object, got {}", a.json);
    }
    let workspace = crate::exec::resolve_workspace(a.workspace.as_deref())?;
    let socket = crate::exec::resolve_socket(a.socket.clone(), &workspace).await?;
    let client = crate::client::connect(&socket)
        .await
        .with_context(|| format!("connecting to sandboxd at {}", socket.display()))?;
    let mut ctx = Ctx {
        client,
        workspace,
        timeout: a.timeout,
        profile: a.profile.unwrap_or_default(),
        log: AuditLog::new(AuditLog::default_path()),
    };
    let out = ctx.call(&a.name, &args).await;
    println!("{}", out.text);
    Ok(if out.is_error { 1 } else { 0 })
}

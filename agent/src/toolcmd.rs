//! `nanobot tool NAME 'JSON_ARGS'`: run one tool exactly as the agent loop would and print what
//! the model would see. Exit 0 on success, 1 when the tool returned an error.

use crate::tools::TOOLS;
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
    /// Exec timeout in seconds (default: agents.defaults.execConfig.timeout, 60)
    #[arg(long)]
    pub timeout: Option<u32>,
    /// Sandbox profile
    #[arg(long)]
    pub profile: Option<String>,
}

pub async fn run(g: &crate::instance::Globals, a: ToolArgs) -> Result<i32> {
    if !TOOLS.contains(&a.name.as_str()) {
        anyhow::bail!("unknown tool {:?}; available: {}", a.name, TOOLS.join(", "));
    }
    let args: serde_json::Value = serde_json::from_str(&a.json)
        .with_context(|| format!("arguments are not valid JSON: {}", a.json))?;
    if !args.is_object() {
        anyhow::bail!("arguments must be a JSON object, got {}", a.json);
    }
    let cfg = g.load()?.config;
    let workspace = g.workspace(&cfg)?;
    let (_socket, client) = crate::instance::connect(a.socket.clone(), &cfg, &workspace).await?;
    let mut ctx = crate::instance::ctx(client, workspace, &cfg, g.log());
    if let Some(t) = a.timeout {
        ctx.timeout = t;
    }
    if let Some(p) = a.profile {
        ctx.profile = p;
    }
    let out = ctx.call(&a.name, &args).await;
    println!("{}", out.text);
    Ok(if out.is_error { 1 } else { 0 })
}

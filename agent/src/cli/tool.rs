//! `nanobot tool NAME 'JSON_ARGS'`: run one tool exactly as the agent loop would and print what
//! the model would see. `exec` exits with the code `nanobot exec` would give for the same result;
//! the other tools exit 0 on success, 1 when the tool returned an error.

use crate::cli::globals::Globals;
use crate::sandbox::outcome::EXIT_REFUSED;
use crate::sandbox::socket;
use crate::tools::{self, Ctx};
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

/// The exit codes, for `nanobot tool --help`.
pub const EXIT_CODES: &str = "Exit codes: exec exits as `nanobot exec` would for the same result: \
the command's own code, 128+N when killed by signal N, 124 on timeout, 125 when the sandbox \
refused or failed, when the command was blocked or could not be sent, or when the sandbox cut \
its output at the profile's output_limit_bytes (the result is incomplete), 126/127 from the \
shell when a program is not executable / not found. The other tools exit 0 on success and 1 \
when the tool returned an error. 2: the tool or its JSON arguments are wrong, or nanobot failed.";

pub async fn run(g: &Globals, a: ToolArgs) -> Result<i32> {
    if tools::find(&a.name).is_none() {
        anyhow::bail!("unknown tool {:?}; available: {}", a.name, tools::names());
    }
    let args: serde_json::Value = serde_json::from_str(&a.json)
        .with_context(|| format!("arguments are not valid JSON: {}", a.json))?;
    if !args.is_object() {
        anyhow::bail!("arguments must be a JSON object, got {}", a.json);
    }
    let cfg = g.load()?.config;
    let workspace = g.workspace(&cfg)?;
    let client =
        match socket::connect(a.socket.clone(), cfg.sandbox.socket.as_deref(), &workspace).await {
            Ok((_socket, client)) => client,
            // As `nanobot exec`: no sandbox to run it in is the sandbox's failure.
            Err(e) if a.name == "exec" => {
                eprintln!("nanobot: {e:#}");
                return Ok(EXIT_REFUSED);
            }
            Err(e) => return Err(e),
        };
    let mut ctx = Ctx::new(client, workspace, &cfg, g.log());
    if let Some(t) = a.timeout {
        ctx.timeout = t;
    }
    if let Some(p) = a.profile {
        ctx.profile = p;
    }
    let out = tools::call(&mut ctx, &a.name, &args).await;
    println!("{}", out.text);
    Ok(out.code)
}

//! `nanobot tool NAME 'JSON_ARGS'`: run one tool exactly as the agent loop would and print what
//! the model would see. Wrong arguments exit 2 for every tool; otherwise `exec` exits with the
//! code `nanobot exec` would give for the same command, the other tools 0 on success, 1 when the
//! tool returned an error (see `EXIT_CODES`).

use crate::cli::globals::Globals;
use crate::config::Config;
use crate::sandbox::client::Client;
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
pub const EXIT_CODES: &str = concat!(
    "Exit codes: 2 for every tool when its arguments are wrong: not valid JSON, not a JSON \
     object, a required argument missing or an argument of the wrong type (the error is printed; \
     the tool did not run), and for an unknown tool. Otherwise exec exits as `nanobot exec` would \
     for the same command: ",
    crate::sandbox::outcome::exec_exit_codes!(),
    ". The other tools exit 0 on success, 1 when the tool returned an error, 2 when nanobot could \
     not use the config, the workspace or the sandbox."
);

pub async fn run(g: &Globals, a: ToolArgs) -> Result<i32> {
    let Some(tool) = tools::find(&a.name) else {
        anyhow::bail!("unknown tool {:?}; available: {}", a.name, tools::names());
    };
    let args: serde_json::Value = serde_json::from_str(&a.json)
        .with_context(|| format!("arguments are not valid JSON: {}", a.json))?;
    // Wrong arguments, before anything else: the same check, text and code for every tool.
    if let Err(e) = tools::check_args(tool, &args) {
        println!("{}", e.text);
        return Ok(e.code);
    }
    // nanobot failing before the tool runs (config, workspace, sandbox): for exec what `nanobot
    // exec` exits with, 125; for the other tools 2.
    let (cfg, workspace, client) = match setup(g, &a).await {
        Ok(s) => s,
        Err(e) if tool.name == "exec" => {
            eprintln!("nanobot: {}", crate::errors::anyhow_chain(&e));
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

/// The config, the workspace and a client of the sandbox.
async fn setup(g: &Globals, a: &ToolArgs) -> Result<(Config, PathBuf, Client)> {
    let cfg = g.load()?.config;
    let workspace = g.workspace(&cfg)?;
    let (_socket, client) =
        socket::connect(a.socket.clone(), cfg.sandbox.socket.as_deref(), &workspace).await?;
    Ok((cfg, workspace, client))
}

//! `nanobot gateway`: the long-running agent behind chat channels (run by nanobot.service), one
//! turn at a time, one session per conversation. Every enabled channel runs on its own: one that
//! fails for good is logged and recorded (`nanobot channels status`) while the others go on; the
//! gateway exits non-zero only when every channel has failed, so systemd restarts it then.

use crate::agent::Agent;
use crate::audit::AuditLog;
use crate::channels::registry::{channel_warnings, check_channels};
use crate::channels::status::{self, Board};
use crate::channels::{email, telegram, whatsapp, Inbox};
use crate::cli::globals::Globals;
use crate::sandbox::socket;
use crate::session::Session;
use crate::tools::Ctx;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Mutex;

#[derive(clap::Args, Debug)]
pub struct GatewayArgs {
    /// sandboxd socket (default: sandbox.socket in the config, then as `nanobot exec`)
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

/// The agent shared by the channels: one turn at a time.
pub struct Shared {
    pub agent: Mutex<Agent>,
    pub sessions: PathBuf,
    pub log: AuditLog,
}

impl Inbox for Shared {
    async fn handle(&self, session_key: &str, text: &str) -> String {
        let mut agent = self.agent.lock().await;
        let (mut session, _) = match Session::load(&self.sessions, session_key) {
            Ok(s) => s,
            Err(e) => return format!("Sorry, I cannot open this conversation's history: {e}"),
        };
        match text.trim() {
            "/new" => {
                return match session.clear() {
                    Ok(()) => "Started a new conversation.".into(),
                    Err(e) => format!("Sorry: {e}"),
                }
            }
            "/help" => return crate::cli::agent::HELP.into(),
            _ => {}
        }
        match agent.turn(&mut session, text, &()).await {
            Ok(a) if a.text.trim().is_empty() => "(no answer)".into(),
            Ok(a) => a.text,
            Err(e) => {
                self.log
                    .line("ERROR", &format!("{session_key}: model error: {e}"));
                format!("Sorry, the model failed: {e}")
            }
        }
    }

    fn log(&self) -> &AuditLog {
        &self.log
    }
}

/// Exit code when the gateway stops for its configuration or credentials (sysexits' EX_CONFIG):
/// nanobot.service does not restart on it (`RestartPreventExitStatus=78`), since a restart would
/// fail the same way every 5 s. Anything else that stops it exits 1, and systemd restarts it.
pub const EXIT_CONFIG: i32 = 78;

pub async fn run(g: &Globals, a: GatewayArgs) -> Result<i32> {
    crate::cli::agent::refuse_root()?;
    let loaded = match g.load() {
        Ok(l) => l,
        Err(e) => return config_error(e),
    };
    let channels = match check_channels(&loaded.config) {
        Ok(c) => c,
        Err(e) => return config_error(e),
    };
    crate::cli::provider::warn_unset_channels(&loaded);
    let provider = match crate::cli::provider::pick(&loaded) {
        Ok(p) => p,
        Err(e) => return config_error(e),
    };
    let cfg = loaded.config;
    let workspace = g.workspace(&cfg)?;
    let (socket, client) =
        socket::connect(a.socket.clone(), cfg.sandbox.socket.as_deref(), &workspace).await?;
    let log = g.log();
    let agent = Agent {
        provider,
        ctx: Ctx::new(client, workspace.clone(), &cfg, g.log()),
        max_tokens: cfg.agents.defaults.max_tokens,
        temperature: cfg.agents.defaults.temperature,
        max_iterations: cfg.agents.defaults.max_tool_iterations,
    };
    let shared = Arc::new(Shared {
        agent: Mutex::new(agent),
        sessions: g.home_dir().join("sessions"),
        log,
    });
    eprintln!(
        "nanobot gateway: channels {}, workspace {}, sandboxd {}",
        channels
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        workspace.display(),
        socket.display()
    );
    for (name, c) in &channels {
        for w in channel_warnings(name, c) {
            eprintln!("nanobot: warning: {w}");
        }
    }
    let names: Vec<String> = channels.iter().map(|(n, _)| n.clone()).collect();
    let board = Board::new(Some(g.home_dir().join(status::FILE_NAME)), &names);
    let mut tasks = tokio::task::JoinSet::new();
    let mut task_names = std::collections::HashMap::new();
    for (name, c) in channels {
        let (s, report) = (shared.clone(), board.reporter(&name));
        let label = name.clone();
        let handle = tasks.spawn(async move {
            // One arm per channel, as in channels::channel_problems.
            match name.as_str() {
                "telegram" => telegram::run(c, s, report).await,
                "whatsapp" => whatsapp::run(c, s, report).await,
                "email" => email::run(c, s.sessions.with_file_name("email"), s, report).await,
                other => Err(anyhow::anyhow!("unsupported channel {other}")),
            }
        });
        task_names.insert(handle.id(), label);
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut heartbeat = tokio::time::interval(status::HEARTBEAT);
    let mut all_config = true;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = heartbeat.tick() => board.touch(),
            Some(r) = tasks.join_next_with_id() => {
                // A channel returns an error only for what retrying cannot fix (it retries the
                // rest itself); a channel that stopped or crashed is not a configuration problem.
                let (id, why, failed_on_config) = match r {
                    Ok((id, Ok(()))) => (id, "stopped".to_string(), false),
                    Ok((id, Err(e))) => (id, format!("{e:#}"), true),
                    Err(e) => (e.id(), format!("crashed: {e}"), false),
                };
                let name = task_names.get(&id).cloned().unwrap_or_else(|| "?".into());
                board.reporter(&name).failed(&why);
                shared.log.line("ERROR", &format!("channel {name} failed for good: {why}"));
                eprintln!("nanobot: channel {name} failed for good: {why}");
                if !failed_on_config {
                    all_config = false;
                }
                if tasks.is_empty() {
                    board.stopped();
                    let msg = format!("every enabled channel has failed ({}); see above", names.join(", "));
                    if all_config {
                        // Each gave up on its settings or credentials (a refused token, a wrong
                        // password): restarting cannot help.
                        eprintln!("nanobot: {msg}; fix the configuration, then start the gateway again");
                        return Ok(EXIT_CONFIG);
                    }
                    anyhow::bail!("{msg}");
                }
                eprintln!("nanobot: the other channels keep running");
            }
        }
    }
    board.stopped();
    Ok(0)
}

/// A configuration the gateway cannot run with: said once, exit `EXIT_CONFIG`.
fn config_error(e: anyhow::Error) -> Result<i32> {
    eprintln!("nanobot: {}", crate::errors::anyhow_chain(&e));
    Ok(EXIT_CONFIG)
}

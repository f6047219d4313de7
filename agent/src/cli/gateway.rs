//! `nanobot gateway`: the long-running agent behind chat channels (run by nanobot.service).
//! Every enabled channel must name who may talk to the agent: an empty `allowFrom` refuses to
//! start (the Python version lets everyone in); `["*"]` says "everyone" explicitly.

use crate::agent::Agent;
use crate::audit::AuditLog;
use crate::config::{ChannelConfig, Config};
use crate::instance::Globals;
use crate::session::Session;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Mutex;

#[derive(clap::Args, Debug)]
pub struct GatewayArgs {
    /// sandboxd socket (default: sandbox.socket in the config, then as `nanobot exec`)
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

pub const CHANNELS: &[&str] = &["telegram"];

/// Check every enabled channel before anything starts; all problems at once.
pub fn check_channels(cfg: &Config) -> Result<Vec<(String, ChannelConfig)>> {
    let mut problems = vec![];
    let mut enabled = vec![];
    for (name, c) in cfg.channels.iter().filter(|(_, c)| c.enabled) {
        if !CHANNELS.contains(&name.as_str()) {
            problems.push(format!(
                "channels.{name}: this version supports {}; disable it or remove it",
                CHANNELS.join(", ")
            ));
            continue;
        }
        if c.allow_from.is_empty() {
            problems.push(format!(
                "channels.{name}.allowFrom is empty: list the user ids allowed to talk to the agent (or [\"*\"] for everyone, which the security guide advises against)"
            ));
        }
        if name == "telegram"
            && c.extra
                .get("token")
                .and_then(|t| t.as_str())
                .is_none_or(str::is_empty)
        {
            problems.push("channels.telegram.token is not set".into());
        }
        enabled.push((name.clone(), c.clone()));
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    if enabled.is_empty() {
        bail!(
            "no channel is enabled: set channels.<name>.enabled = true (supported: {})",
            CHANNELS.join(", ")
        );
    }
    Ok(enabled)
}

/// Whether `sender` (id or username) may talk to the agent on this channel.
pub fn allowed(c: &ChannelConfig, ids: &[String]) -> bool {
    c.allow_from
        .iter()
        .any(|a| a == "*" || ids.iter().any(|i| i == a || format!("@{i}") == *a))
}

/// The agent shared by the channels: one turn at a time.
pub struct Shared {
    pub agent: Mutex<Agent>,
    pub sessions: PathBuf,
    pub log: AuditLog,
}

impl Shared {
    /// One message in, the reply out; failures become a short apology the user sees.
    pub async fn handle(&self, session_key: &str, text: &str) -> String {
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
            "/help" => return crate::agentcmd::HELP.into(),
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
}

pub async fn run(g: &Globals, a: GatewayArgs) -> Result<i32> {
    crate::agentcmd::refuse_root()?;
    let cfg = g.load()?.config;
    let channels = check_channels(&cfg)?;
    let provider = crate::provider::select(&cfg)?;
    let workspace = g.workspace(&cfg)?;
    let (socket, client) = crate::instance::connect(a.socket.clone(), &cfg, &workspace).await?;
    let log = g.log();
    let agent = Agent {
        provider,
        ctx: crate::instance::ctx(client, workspace.clone(), &cfg, g.log()),
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
    let mut tasks = tokio::task::JoinSet::new();
    for (name, c) in channels {
        let s = shared.clone();
        tasks.spawn(async move {
            match name.as_str() {
                "telegram" => crate::telegram::run(c, s).await,
                other => Err(anyhow::anyhow!("unsupported channel {other}")),
            }
        });
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => Ok(0),
        _ = tokio::signal::ctrl_c() => Ok(0),
        // Channels run until they fail for good.
        Some(r) = tasks.join_next() => match r {
            Ok(Ok(())) => Ok(0),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(anyhow::anyhow!("channel task: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chan(allow: &[&str]) -> ChannelConfig {
        ChannelConfig {
            enabled: true,
            allow_from: allow.iter().map(|s| s.to_string()).collect(),
            extra: [("token".to_string(), serde_json::json!("t"))].into(),
        }
    }

    #[test]
    fn empty_allow_from_refuses_to_start() {
        let mut c = Config::default();
        c.channels.insert("telegram".into(), chan(&[]));
        let e = check_channels(&c).unwrap_err().to_string();
        assert!(e.contains("channels.telegram.allowFrom is empty"), "{e}");
        c.channels.insert("telegram".into(), chan(&["42"]));
        assert_eq!(check_channels(&c).unwrap().len(), 1);
        c.channels.insert("irc".into(), chan(&["x"]));
        assert!(check_channels(&c)
            .unwrap_err()
            .to_string()
            .contains("channels.irc"));
    }

    #[test]
    fn allow_from_matches_ids_and_usernames() {
        let c = chan(&["42", "@alice"]);
        assert!(allowed(&c, &["42".into()]));
        assert!(allowed(&c, &["7".into(), "alice".into()]));
        assert!(!allowed(&c, &["7".into(), "mallory".into()]));
        assert!(allowed(&chan(&["*"]), &["anyone".into()]));
    }
}

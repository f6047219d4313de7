//! `nanobot agent`: one message with `-m`, or an interactive chat with line editing and history.

use crate::agent::Agent;
use crate::instance::Globals;
use crate::session::Session;
use crate::spinner::Spinner;
use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// Send one message, print the answer and exit
    #[arg(short = 'm', long = "message")]
    pub message: Option<String>,
    /// Session key; history is kept per session
    #[arg(short = 's', long = "session", default_value = "cli:default")]
    pub session: String,
    /// sandboxd socket (default: sandbox.socket in the config, then as `nanobot exec`)
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// No spinner
    #[arg(long)]
    pub quiet: bool,
}

pub const HELP: &str = "Commands:\n  /new   start a new session (the history file keeps the old one)\n  /help  this list\n  exit, quit, /exit, :q or Ctrl-D  leave";

/// The guide says never to run nanobot as root; NANOBOT_ALLOW_ROOT=1 overrides, with a warning.
pub fn refuse_root() -> Result<()> {
    if !crate::autostart::is_root() {
        return Ok(());
    }
    if std::env::var("NANOBOT_ALLOW_ROOT").as_deref() == Ok("1") {
        eprintln!(
            "nanobot: warning: running as root because NANOBOT_ALLOW_ROOT=1; the agent holds your \
             API keys and should run as an unprivileged user"
        );
        tracing::warn!("running as root (NANOBOT_ALLOW_ROOT=1)");
        return Ok(());
    }
    anyhow::bail!(
        "refusing to run the agent as root: it holds your API keys and talks to the network. \
         Run it as an unprivileged user (e.g. `sudo -u nanobot nanobot agent`), or set \
         NANOBOT_ALLOW_ROOT=1 to override"
    )
}

pub async fn run(g: &Globals, a: AgentArgs) -> Result<i32> {
    refuse_root()?;
    let loaded = g.load()?;
    let cfg = loaded.config;
    let provider = crate::provider::select(&cfg)?;
    let workspace = g.workspace(&cfg)?;
    let (_socket, client) = crate::instance::connect(a.socket.clone(), &cfg, &workspace).await?;
    let ctx = crate::instance::ctx(client, workspace, &cfg, g.log());
    let mut agent = Agent {
        provider,
        ctx,
        max_tokens: cfg.agents.defaults.max_tokens,
        temperature: cfg.agents.defaults.temperature,
        max_iterations: cfg.agents.defaults.max_tool_iterations.max(1),
    };
    let (mut session, warnings) = Session::load(&g.home_dir().join("sessions"), &a.session)
        .context("opening the session directory")?;
    for w in warnings {
        eprintln!("nanobot: warning: skipped a history line: {w}");
    }
    if let Some(m) = a.message {
        match m.trim() {
            "/new" => {
                session.clear().context("starting a new session")?;
                println!("Started a new session.");
                return Ok(0);
            }
            "/help" => {
                println!("{HELP}");
                return Ok(0);
            }
            _ => {}
        }
        let mut sp = Spinner::start(!a.quiet);
        let r = agent.turn(&mut session, &m, &sp).await;
        sp.stop();
        return match r {
            Ok(answer) => {
                println!("{answer}");
                Ok(0)
            }
            Err(e) => {
                eprintln!("nanobot: {e}");
                Ok(1)
            }
        };
    }
    interactive(g, &mut agent, &mut session, a.quiet).await
}

async fn interactive(
    g: &Globals,
    agent: &mut Agent,
    session: &mut Session,
    quiet: bool,
) -> Result<i32> {
    use rustyline::error::ReadlineError;
    let mut rl = rustyline::DefaultEditor::new().context("starting the line editor")?;
    let history = g.home_dir().join("history");
    let _ = rl.load_history(&history);
    println!(
        "nanobot — model {} via {}, workspace {}. /help for commands.",
        agent.provider.model,
        agent.provider.name,
        agent.ctx.workspace.display()
    );
    loop {
        // rustyline blocks: run it off the async threads.
        let (r, back) = tokio::task::spawn_blocking(move || {
            let r = rl.readline("you> ");
            (r, rl)
        })
        .await
        .context("line editor task")?;
        rl = back;
        let line = match r {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e).context("reading input"),
        };
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(text);
        match text {
            "exit" | "quit" | "/exit" | ":q" => break,
            "/help" => {
                println!("{HELP}");
                continue;
            }
            "/new" => {
                session.clear().context("starting a new session")?;
                println!("Started a new session.");
                continue;
            }
            _ => {}
        }
        let mut sp = Spinner::start(!quiet);
        let r = agent.turn(session, text, &sp).await;
        sp.stop();
        match r {
            Ok(answer) => println!("nanobot> {answer}\n"),
            Err(e) => eprintln!("nanobot: {e}\n"),
        }
    }
    save_history(&mut rl, &history);
    Ok(0)
}

fn save_history(rl: &mut rustyline::DefaultEditor, path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if rl.save_history(path).is_ok() {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

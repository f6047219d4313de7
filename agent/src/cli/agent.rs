//! `nanobot agent`: one message with `-m`, or an interactive chat with line editing and history.

use crate::agent::Agent;
use crate::cli::globals::Globals;
use crate::sandbox::socket;
use crate::session::Session;
use crate::spinner::Spinner;
use crate::tools::Ctx;
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

pub const HELP: &str = "Commands:\n  /new   start a new session (the history file keeps the old one)\n  /help  this list\n  exit, quit, /exit, :q or Ctrl-D  leave\n  Ctrl-C  cancel the running turn (at an empty prompt: leave)";

/// The commands with `agent -m`, where the message is one of them or text for the model: no
/// prompt to leave, so no `exit`/`quit`/Ctrl-D (`-m exit` is a message).
pub const HELP_ONE_SHOT: &str = "Commands (as the whole -m message; anything else goes to the model):\n  /new   start a new session (the history file keeps the old one)\n  /help  this list\n  /exit  do nothing and exit 0\n  Ctrl-C  stop the running message (exit 130)";

/// Exit code of `agent -m` when the message is refused locally (empty, unknown command).
pub const EXIT_USAGE: i32 = 2;
/// Exit code of `agent -m` when `maxToolIterations` ran out before a final answer.
pub const EXIT_GAVE_UP: i32 = 3;

/// What to do with a line of input before anything reaches the model.
#[derive(Debug, PartialEq)]
pub enum Local<'a> {
    /// Nothing but whitespace: refused, never sent.
    Empty,
    /// `/exit`: leave (also with `-m`).
    Exit,
    /// `exit`, `quit`, `:q`: leave the interactive mode; with `-m` a message like any other.
    Quit,
    Help,
    New,
    /// A lone `/word` that is no command: answered with the list, never sent.
    Unknown(&'a str),
    /// Send this (trimmed) text to the model.
    Send(&'a str),
}

/// Sort a line: commands and empty input are handled here. A line is a command only when it is
/// a single token `/word` (letters, digits, `-`, `_`) with nothing else but surrounding
/// whitespace; anything else (`/tmp is full`, `/etc/hosts`, `/new please`) goes to the model.
pub fn classify(line: &str) -> Local<'_> {
    let text = line.trim();
    match text {
        "" => return Local::Empty,
        "/exit" => return Local::Exit,
        "exit" | "quit" | ":q" => return Local::Quit,
        "/help" => return Local::Help,
        "/new" => return Local::New,
        _ => {}
    }
    if let Some(name) = text.strip_prefix('/') {
        if !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Local::Unknown(text);
        }
    }
    Local::Send(text)
}

pub const EMPTY_MESSAGE: &str = "the message is empty: nothing was sent to the model.";

/// The guide says never to run nanobot as root; NANOBOT_ALLOW_ROOT=1 overrides, with a warning.
pub fn refuse_root() -> Result<()> {
    if !crate::user::is_root() {
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
    let provider = crate::cli::provider::pick(&loaded)?;
    let cfg = loaded.config;
    let workspace = g.workspace(&cfg)?;
    let (_socket, client) =
        socket::connect(a.socket.clone(), cfg.sandbox.socket.as_deref(), &workspace).await?;
    let ctx = Ctx::new(client, workspace, &cfg, g.log());
    let mut agent = Agent {
        provider,
        ctx,
        max_tokens: cfg.agents.defaults.max_tokens,
        temperature: cfg.agents.defaults.temperature,
        max_iterations: cfg.agents.defaults.max_tool_iterations,
    };
    let (mut session, warnings) = Session::load(&g.home_dir().join("sessions"), &a.session)
        .context("opening the session directory")?;
    for w in warnings {
        eprintln!("nanobot: warning: skipped a history line: {w}");
    }
    if let Some(m) = a.message {
        let text = match classify(&m) {
            Local::Empty => {
                eprintln!("nanobot: {EMPTY_MESSAGE}");
                return Ok(EXIT_USAGE);
            }
            Local::Unknown(c) => {
                eprintln!(
                    "nanobot: unknown command {c}: nothing was sent to the model.\n{HELP_ONE_SHOT}"
                );
                return Ok(EXIT_USAGE);
            }
            Local::New => {
                session.clear().context("starting a new session")?;
                println!("Started a new session.");
                return Ok(0);
            }
            Local::Help => {
                println!("{HELP_ONE_SHOT}");
                return Ok(0);
            }
            Local::Exit => return Ok(0),
            // `-m exit` is a message like any other.
            Local::Quit => m.trim(),
            Local::Send(t) => t,
        };
        // No Ctrl-C handler here: SIGINT ends the process (exit 130), which drops the
        // connection to sandboxd, which kills the command.
        let mut sp = Spinner::start(!a.quiet);
        let r = agent.turn(&mut session, text, &sp).await;
        sp.stop();
        return match r {
            Ok(answer) => {
                println!("{}", answer.text);
                if answer.gave_up {
                    eprintln!(
                        "nanobot: no final answer after {} of tool calls \
                         (agents.defaults.maxToolIterations)",
                        crate::agent::rounds(agent.max_iterations)
                    );
                    Ok(EXIT_GAVE_UP)
                } else {
                    Ok(0)
                }
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
    // Ctrl-C on a line being typed clears it; on an empty line it leaves (Interrupted).
    rl.bind_sequence(
        rustyline::KeyEvent::ctrl('C'),
        rustyline::EventHandler::Conditional(Box::new(CtrlC)),
    );
    let history = g.home_dir().join("history");
    let _ = rl.load_history(&history);
    println!(
        "nanobot — model {} via {}, workspace {}. /help for commands.",
        agent.provider.model,
        agent.provider.name,
        agent.ctx.workspace.display()
    );
    loop {
        // rustyline blocks: run it off the async threads. On a terminal it reads Ctrl-C as a key
        // (see CtrlC); a SIGINT at the prompt (input not a terminal, `kill -INT`) leaves with 130,
        // as it would without the handler that the turns below install.
        let mut read = tokio::task::spawn_blocking(move || {
            let r = rl.readline("you> ");
            (r, rl)
        });
        let (r, back) = tokio::select! {
            j = &mut read => j.context("line editor task")?,
            _ = tokio::signal::ctrl_c() => {
                println!();
                return Ok(130);
            }
        };
        rl = back;
        let line = match r {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) | Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e).context("reading input"),
        };
        let text = match classify(&line) {
            Local::Empty => {
                if !line.is_empty() {
                    // A sentence of its own here: capitalised.
                    println!(
                        "{}{}",
                        EMPTY_MESSAGE[..1].to_uppercase(),
                        &EMPTY_MESSAGE[1..]
                    );
                }
                continue;
            }
            Local::Exit | Local::Quit => break,
            Local::Help => {
                let _ = rl.add_history_entry(line.trim());
                println!("{HELP}");
                continue;
            }
            Local::New => {
                let _ = rl.add_history_entry(line.trim());
                session.clear().context("starting a new session")?;
                println!("Started a new session.");
                continue;
            }
            Local::Unknown(c) => {
                println!("Unknown command {c} (nothing was sent to the model).\n{HELP}");
                continue;
            }
            Local::Send(t) => t,
        };
        let _ = rl.add_history_entry(text);
        let mut sp = Spinner::start(!quiet);
        // Ctrl-C cancels the turn: dropping its future drops the gRPC stream of a running exec,
        // and sandboxd kills the command's process tree when its client goes away.
        let r = tokio::select! {
            r = agent.turn(session, text, &sp) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        };
        sp.stop();
        match r {
            Some(Ok(answer)) => println!("nanobot> {}\n", answer.text),
            Some(Err(e)) => eprintln!("nanobot: {e}\n"),
            None => {
                let what = crate::agent::close_cancelled(session).describe();
                agent
                    .ctx
                    .log
                    .line("WARN", &format!("turn cancelled by the user: {what}"));
                println!("\n{what}\n");
            }
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

/// Ctrl-C in the line editor: clear a typed line, or leave at an empty one.
struct CtrlC;

impl rustyline::ConditionalEventHandler for CtrlC {
    fn handle(
        &self,
        _: &rustyline::Event,
        _: rustyline::RepeatCount,
        _: bool,
        ctx: &rustyline::EventContext,
    ) -> Option<rustyline::Cmd> {
        if ctx.line().is_empty() {
            Some(rustyline::Cmd::Interrupt)
        } else {
            Some(rustyline::Cmd::Kill(rustyline::Movement::WholeLine))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_sorted_before_the_model() {
        assert_eq!(classify(""), Local::Empty);
        assert_eq!(classify("  \t "), Local::Empty);
        assert_eq!(classify(" exit "), Local::Quit);
        assert_eq!(classify(" /exit\n"), Local::Exit);
        assert_eq!(classify("/help"), Local::Help);
        assert_eq!(classify("  /new "), Local::New);
        assert_eq!(classify("/frobnicate"), Local::Unknown("/frobnicate"));
        assert_eq!(classify(" /x-y_2 "), Local::Unknown("/x-y_2"));
        // Only a lone /word is a command; everything else is a message.
        assert_eq!(classify("/frobnicate now"), Local::Send("/frobnicate now"));
        assert_eq!(classify("/new please"), Local::Send("/new please"));
        assert_eq!(
            classify("/tmp is full, clean it"),
            Local::Send("/tmp is full, clean it")
        );
        assert_eq!(classify("/tmp"), Local::Unknown("/tmp"));
        assert_eq!(classify("/etc/hosts"), Local::Send("/etc/hosts"));
        assert_eq!(classify("/"), Local::Send("/"));
        assert_eq!(classify("/ünï"), Local::Send("/ünï"));
        assert_eq!(
            classify("/etc/hosts has what?"),
            Local::Send("/etc/hosts has what?")
        );
        assert_eq!(classify("/ alone"), Local::Send("/ alone"));
        assert_eq!(classify("  hi  "), Local::Send("hi"));
    }
}

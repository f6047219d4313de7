//! nanobot command line.

mod agent;
mod audit;
mod channels;
mod cli;
mod config;
mod errors;
mod logging;
mod provider;
mod sandbox;
mod session;
mod spinner;
mod text;
mod tools;
mod user;

use clap::{CommandFactory, Parser, Subcommand};
use sandbox::outcome::EXIT_REFUSED;

#[derive(Parser)]
#[command(
    name = "nanobot",
    version,
    about = "Personal AI agent whose every command runs confined by sandboxd"
)]
struct Cli {
    #[command(flatten)]
    globals: cli::globals::Globals,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one command in the sandbox: nanobot exec -- 'ls -la' (one argument: a shell command
    /// line) or nanobot exec -- ls -la (several: a program and its arguments, without a shell)
    #[command(after_help = cli::exec::EXIT_CODES)]
    Exec(cli::exec::ExecArgs),
    /// Run one agent tool and print what the model would see: nanobot tool read_file '{"path":"a.md"}'
    #[command(after_help = cli::tool::EXIT_CODES)]
    Tool(cli::tool::ToolArgs),
    /// Create ~/.nanobot, a commented config and the workspace with starter files
    Onboard(cli::onboard::OnboardArgs),
    /// Talk to the agent: nanobot agent -m "hello", or interactively
    Agent(cli::agent::AgentArgs),
    /// Config, provider, model, workspace and sandboxd in use
    Status(cli::status::StatusArgs),
    /// Check the security guide's production checklist
    Doctor(cli::doctor::DoctorArgs),
    /// Serve the enabled chat channels (telegram, whatsapp, email) until stopped: what nanobot.service runs
    Gateway(cli::gateway::GatewayArgs),
    /// The sandboxd this user's commands reach: status, or stop the one nanobot started
    #[command(subcommand)]
    Sandbox(cli::sandbox::SandboxCmd),
    /// Chat channels: `status` (as the running gateway sees them), `login whatsapp` (QR code)
    Channels(cli::channels::ChannelsArgs),
    /// Print a shell completion script: nanobot completions bash > ~/.local/share/bash-completion/completions/nanobot
    Completions(nanobot_cligen::CompletionsArgs),
    /// Write the man pages into a directory (the .deb ships them)
    #[command(hide = true)]
    Man(nanobot_cligen::ManArgs),
}

fn main() {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    // Library warnings (provider retries) go to stderr as plain lines; NANOBOT_LOG=debug for more.
    logging::init();
    // `exec` is one request and its stream, `agent -m` one turn: one thread does it with no
    // hand-offs between threads (and no threads, stacks or malloc arenas to start), which is
    // most of what the client costs besides its own start. The long-running commands (the chat,
    // the gateway) serve several things at once.
    let one_shot = match &cli.cmd {
        Cmd::Exec(_) => true,
        Cmd::Agent(a) => a.message.is_some(),
        _ => false,
    };
    let mut builder = if one_shot {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nanobot: cannot start runtime: {e}");
            std::process::exit(EXIT_REFUSED);
        }
    };
    let g = cli.globals;
    let code = rt.block_on(async {
        let (r, on_error) = match cli.cmd {
            Cmd::Exec(a) => (cli::exec::run(&g, a).await, EXIT_REFUSED),
            Cmd::Tool(a) => (cli::tool::run(&g, a).await, 2),
            Cmd::Onboard(a) => (cli::onboard::run(&g, a).await, 1),
            Cmd::Agent(a) => (cli::agent::run(&g, a).await, 1),
            Cmd::Status(a) => (cli::status::run(&g, a).await, 1),
            Cmd::Doctor(a) => (cli::doctor::run(&g, a).await, 1),
            Cmd::Gateway(a) => (cli::gateway::run(&g, a).await, 1),
            Cmd::Sandbox(c) => (cli::sandbox::run(&g, c).await, 1),
            Cmd::Channels(a) => (cli::channels::run(&g, a).await, 1),
            Cmd::Completions(a) => (nanobot_cligen::completions(Cli::command(), a), 1),
            Cmd::Man(a) => (nanobot_cligen::man(Cli::command(), a), 1),
        };
        r.unwrap_or_else(|e| {
            eprintln!("nanobot: {}", errors::anyhow_chain(&e));
            on_error
        })
    });
    std::process::exit(code);
}

/// `nanobot status | head -1`: when the reader of stdout goes away, `println!` panics; end the
/// process by SIGPIPE instead, quietly, as other tools do. SIGPIPE itself stays ignored (Rust's
/// default): a write to a dead sandboxd's socket must be an error the command explains, not a
/// silent death.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout")
            && msg.contains(&std::io::Error::from_raw_os_error(libc::EPIPE).to_string())
        {
            // SAFETY: restoring the default disposition and raising the signal has no memory
            // preconditions; the process ends here as a pipe writer would.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
        }
        default(info);
    }));
}

//! nanobot command line.

mod audit;
mod autostart;
mod client;
mod config;
mod exec;
mod toolcmd;
mod tools;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "nanobot",
    version,
    about = "Personal AI agent whose every command runs confined by sandboxd"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one command in the sandbox: nanobot exec -- 'ls -la'
    Exec(exec::ExecArgs),
    /// Run one agent tool and print what the model would see: nanobot tool read_file '{"path":"a.md"}'
    Tool(toolcmd::ToolArgs),
}

fn main() {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nanobot: cannot start runtime: {e}");
            std::process::exit(exec::EXIT_REFUSED);
        }
    };
    let code = rt.block_on(async {
        match cli.cmd {
            Cmd::Exec(a) => match exec::run(a).await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("nanobot: {e:#}");
                    exec::EXIT_REFUSED
                }
            },
            Cmd::Tool(a) => match toolcmd::run(a).await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("nanobot: {e:#}");
                    2
                }
            },
        }
    });
    std::process::exit(code);
}

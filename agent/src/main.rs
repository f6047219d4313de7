//! nanobot command line.

mod autostart;
mod client;
mod exec;

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
        }
    });
    std::process::exit(code);
}

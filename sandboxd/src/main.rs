//! sandboxd command line: parse and dispatch. `serve` is `sandboxd::daemon`, the one-shot
//! subcommands are `sandboxd::cli`.

use clap::{CommandFactory, Parser, Subcommand};
use sandboxd::cli::{CheckArgs, CompletionsArgs, DoctorArgs, ExplainArgs, ManArgs};
use sandboxd::daemon::ServeArgs;

#[derive(Parser)]
#[command(
    name = "sandboxd",
    version,
    about = "Runs nanobot's commands confined by Landlock, seccomp, namespaces and rlimits"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the gRPC API on a Unix socket.
    Serve(ServeArgs),
    /// Validate the config and every profile; non-zero exit on any problem.
    Check(CheckArgs),
    /// Print a profile's effective policy, or whether one access would be allowed and why.
    Explain(ExplainArgs),
    /// Check that this host can run sandboxes: Landlock, seccomp, user namespaces, cgroups.
    Doctor(DoctorArgs),
    /// Print a shell completion script: sandboxd completions bash > /usr/share/bash-completion/completions/sandboxd
    Completions(CompletionsArgs),
    /// Write the man pages into a directory (the .deb ships them)
    #[command(hide = true)]
    Man(ManArgs),
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__launcher") {
        // The warm shape comes in the environment, not on the command line: every sandbox init
        // is a copy of the launcher, and its command line is readable inside the sandbox.
        let warm = std::env::var(sandboxd::launcher::WARM_ENV).unwrap_or_default();
        let parent = args.get(2).map(String::as_str).unwrap_or("0");
        if !sandboxd::launcher::control_socket_present() {
            eprintln!("sandboxd: __launcher is started by `sandboxd serve` only");
            std::process::exit(2);
        }
        // SAFETY: `__launcher` is the command line `Launcher::start` execs us with, and this is
        // the first thing main does: no thread has been started (std starts none before main,
        // and nothing above starts one). Fd 3 is open and a socket (checked just above): it was
        // inherited across execve, so nothing in this fresh image opened it or owns it.
        unsafe { sandboxd::launcher::launcher_entry(parent, &warm) };
    }
    let cli = Cli::parse();
    if !matches!(cli.cmd, Cmd::Serve(_)) {
        // A one-shot subcommand piped into `head` ends quietly, as other tools do, instead of
        // panicking on the closed pipe. The daemon keeps SIGPIPE ignored (a peer may go away).
        // SAFETY: resetting a signal's disposition before any thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let r = match cli.cmd {
        // SAFETY: main has started no thread (clap parsing and the signal reset above start
        // none), so serve runs single-threaded, as it requires.
        Cmd::Serve(a) => unsafe { sandboxd::daemon::serve(a) }.map(|()| 0),
        Cmd::Check(a) => sandboxd::cli::check(a),
        Cmd::Explain(a) => sandboxd::cli::explain(a),
        Cmd::Doctor(a) => sandboxd::cli::doctor(a),
        Cmd::Completions(a) => sandboxd::cli::completions(Cli::command(), a),
        Cmd::Man(a) => sandboxd::cli::man(Cli::command(), a),
    };
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("sandboxd: error: {e:#}");
            std::process::exit(1);
        }
    }
}

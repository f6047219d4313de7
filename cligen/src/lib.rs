//! `completions SHELL` and the hidden `man DIR` of both binaries (`nanobot`, `sandboxd`): shell
//! completions and man pages generated from each binary's clap definitions, so they cannot
//! disagree with `--help` (scripts/package.sh puts them in the .deb). One copy for both.

use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for: bash, zsh, fish (also elvish, powershell)
    pub shell: clap_complete::Shell,
}

#[derive(clap::Args)]
pub struct ManArgs {
    /// Directory to write the pages into: NAME.1 and one NAME-SUBCOMMAND.1 per subcommand
    pub dir: PathBuf,
}

/// Print the completion script for `cmd` to stdout.
pub fn completions(cmd: clap::Command, a: CompletionsArgs) -> Result<i32> {
    let mut cmd = visible(cmd);
    let name = cmd.get_name().to_string();
    // Into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut script = vec![];
    clap_complete::generate(a.shell, &mut cmd, name, &mut script);
    match std::io::Write::write_all(&mut std::io::stdout().lock(), &script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the completion script")
        }
        _ => Ok(0),
    }
}

/// `cmd` without its hidden subcommands, at every level: clap_complete offers hidden ones too,
/// and completions must offer what `--help` shows, no more.
fn visible(cmd: clap::Command) -> clap::Command {
    let hidden: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect();
    if hidden.is_empty() && cmd.get_subcommands().all(|s| !s.has_subcommands()) {
        return cmd;
    }
    let subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .map(visible)
        .collect();
    // clap has no way to remove a subcommand: rebuild the command from its parts.
    let mut out = clap::Command::new(cmd.get_name().to_string())
        .args(cmd.get_arguments().cloned())
        .subcommands(subs);
    if let Some(v) = cmd.get_version() {
        out = out.version(v.to_string());
    }
    if let Some(a) = cmd.get_about() {
        out = out.about(a.clone());
    }
    out
}

/// Write the man pages of `cmd` and its visible subcommands into `a.dir`.
pub fn man(cmd: clap::Command, a: ManArgs) -> Result<i32> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    clap_mangen::generate_to(cmd, &a.dir)
        .with_context(|| format!("writing man pages into {}", a.dir.display()))?;
    Ok(0)
}

//! `nanobot completions SHELL` and the hidden `nanobot man DIR`: shell completions and man
//! pages generated from the clap definitions, so they cannot disagree with `--help`
//! (scripts/package.sh puts them in the .deb).

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
pub fn completions(mut cmd: clap::Command, a: CompletionsArgs) -> Result<i32> {
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

/// Write the man pages of `cmd` and its visible subcommands into `a.dir`.
pub fn man(cmd: clap::Command, a: ManArgs) -> Result<i32> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    clap_mangen::generate_to(cmd, &a.dir)
        .with_context(|| format!("writing man pages into {}", a.dir.display()))?;
    Ok(0)
}

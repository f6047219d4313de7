//! What every command shares: the global `-c/--config` and `-w/--workspace` options, and what they
//! decide: the config (loaded, its warnings printed), the instance's home directory, the
//! workspace and the audit log. Several instances can run side by side, each with its own config
//! file; sessions, logs and history live next to that file.

use crate::audit::AuditLog;
use crate::config::{self, Loaded};
use crate::sandbox::workspace;
use anyhow::Result;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct Globals {
    /// Config file (default: ~/.nanobot/config.json)
    #[arg(short = 'c', long = "config", global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Workspace directory (default: agents.defaults.workspace, then ~/.nanobot/workspace)
    #[arg(short = 'w', long = "workspace", global = true, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

impl Globals {
    pub fn config_path(&self) -> PathBuf {
        self.config.clone().unwrap_or_else(config::default_path)
    }

    /// The directory holding the config, sessions and logs of this instance.
    pub fn home_dir(&self) -> PathBuf {
        self.config_path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(config::default_dir)
    }

    /// Load the config; print its warnings (unknown keys, loose modes, `${VAR}` references every
    /// command uses) on stderr. A file named with -c must exist; the default one may be missing.
    pub fn load(&self) -> Result<Loaded> {
        let path = self.config_path();
        if let Some(named) = &self.config {
            missing_named_config(named)?;
        }
        let loaded = match config::load(&path) {
            // The default path under a HOME this user cannot read (sudo -u without -H): say so
            // and go on with the defaults. A config named with -c must be readable.
            Err(config::ConfigError::Read { err, .. })
                if self.config.is_none() && err.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                eprintln!(
                    "nanobot: warning: cannot read {} ({err}); using defaults. Is HOME right for this user?",
                    path.display()
                );
                config::load(std::path::Path::new("/nonexistent/nanobot/config.json"))?
            }
            r => r?,
        };
        for w in warnings(&loaded, &self.home_dir()) {
            eprintln!("nanobot: warning: {w}");
        }
        Ok(loaded)
    }

    /// The workspace: -w, then the config, then ~/.nanobot/workspace (created on first use).
    pub fn workspace(&self, cfg: &config::Config) -> Result<PathBuf> {
        workspace::choose(self.workspace.as_deref(), cfg.workspace())
    }

    pub fn log(&self) -> AuditLog {
        AuditLog::new(self.home_dir().join("logs/nanobot.log"))
    }
}

/// A config named with -c that does not exist (or is a link to nothing) is an error saying so,
/// not a quiet fall back to the defaults (which then fails for want of a provider).
pub fn missing_named_config(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "config file {} (given with -c); check the path, or create it with: {}",
            missing(path),
            onboard_command(path)
        ),
        _ => Ok(()),
    }
}

/// "PATH does not exist", or, for a link to nothing, "PATH is a symbolic link to TARGET, which
/// does not exist": the user sees the link in `ls` and would not believe the first.
pub fn missing(path: &Path) -> String {
    match std::fs::read_link(path) {
        Ok(target) => format!(
            "{} is a symbolic link to {}, which does not exist",
            path.display(),
            target.display()
        ),
        Err(_) => format!("{} does not exist", path.display()),
    }
}

/// The command that writes this config: `nanobot onboard`, with `-c PATH` for another file.
pub fn onboard_command(path: &Path) -> String {
    if path == config::default_path() {
        "nanobot onboard".into()
    } else {
        format!("nanobot -c {} onboard", path.display())
    }
}

/// Everything the operator should hear when a command starts. `${VAR}` references in providers
/// and channels are left to the commands that use them (`cli::provider`).
pub fn warnings(loaded: &Loaded, home: &Path) -> Vec<String> {
    let mut w = loaded.warnings.clone();
    w.extend(loaded.unset_everywhere().map(|r| r.to_string()));
    w.extend(config::mode_warnings(home, &loaded.path));
    if loaded.config.agents.defaults.restrict_to_workspace == Some(false) {
        w.push(
            "restrictToWorkspace is false: the agent sends a working_dir outside the workspace to \
             sandboxd instead of refusing it; sandboxd refuses it and confines every tool to the \
             workspace anyway (set it to true)"
                .into(),
        );
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    /// -c to a missing file, or to a link to nothing, says the file does not exist and how to
    /// create it; an existing file passes.
    #[test]
    fn a_named_config_must_exist() {
        let dir = std::env::temp_dir().join(format!("nanobot-globals-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("none.json");
        let e = missing_named_config(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("config file {} does not exist", missing.display()))
                && e.contains(&format!("nanobot -c {} onboard", missing.display())),
            "{e}"
        );
        let link = dir.join("link.json");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&missing, &link).unwrap();
        assert!(missing_named_config(&link).is_err());
        std::fs::write(&missing, "{}").unwrap();
        assert!(missing_named_config(&link).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

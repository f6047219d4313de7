//! What every command shares: the global `-c/--config` and `-w/--workspace` options, loading the
//! config (printing its warnings), and connecting to sandboxd. Several instances can run side by
//! side, each with its own config file; sessions, logs and history live next to that file.

use crate::audit::AuditLog;
use crate::config::{self, Loaded};
use crate::tools::Ctx;
use anyhow::{Context, Result};
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

    /// Load the config; print its warnings (unknown keys, loose modes) on stderr.
    pub fn load(&self) -> Result<Loaded> {
        let path = self.config_path();
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
        match (&self.workspace, cfg.workspace()) {
            (Some(w), _) => crate::exec::resolve_workspace(Some(w)),
            (None, Some(w)) => {
                // Create it when missing; a workspace this user cannot even see (sandboxd's own,
                // under /var/lib/nanobot) is passed on for sandboxd to resolve.
                if let Err(e) = std::fs::symlink_metadata(&w) {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        std::fs::create_dir_all(&w)
                            .with_context(|| format!("creating workspace {}", w.display()))?;
                    }
                }
                crate::exec::resolve_workspace(Some(&w))
            }
            (None, None) => crate::exec::resolve_workspace(None),
        }
    }

    pub fn log(&self) -> AuditLog {
        AuditLog::new(self.home_dir().join("logs/nanobot.log"))
    }
}

/// Everything the operator should hear when a command starts.
pub fn warnings(loaded: &Loaded, home: &Path) -> Vec<String> {
    let mut w = loaded.warnings.clone();
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

/// Connect to sandboxd: --socket, $NANOBOT_SANDBOX_SOCKET, `sandbox.socket`, then the defaults
/// (starting a per-user daemon when none answers).
pub async fn connect(
    explicit: Option<PathBuf>,
    cfg: &config::Config,
    workspace: &Path,
) -> Result<(PathBuf, crate::client::Client)> {
    let explicit = explicit.or_else(|| {
        std::env::var_os("NANOBOT_SANDBOX_SOCKET")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .or_else(|| cfg.sandbox.socket.clone())
    });
    let socket = crate::exec::resolve_socket(explicit, workspace).await?;
    let client = crate::client::connect(&socket)
        .await
        .with_context(|| format!("connecting to sandboxd at {}", socket.display()))?;
    Ok((socket, client))
}

pub fn ctx(
    client: crate::client::Client,
    workspace: PathBuf,
    cfg: &config::Config,
    log: AuditLog,
) -> Ctx {
    Ctx {
        client,
        workspace,
        timeout: cfg.exec_timeout(),
        profile: cfg.sandbox.profile.clone().unwrap_or_default(),
        log,
        restrict: cfg.restrict_to_workspace(),
    }
}

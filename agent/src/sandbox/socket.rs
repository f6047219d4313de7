//! Which socket reaches sandboxd: the one rule every command follows. A socket named by
//! `--socket`, then `$NANOBOT_SANDBOX_SOCKET`, then the config's `sandbox.socket` is used as is;
//! otherwise the defaults are tried in order ($XDG_RUNTIME_DIR/nanobot/sandboxd.sock,
//! /run/nanobot/sandboxd.sock, this user's own) and the first that answers wins. `locate` stops
//! there (status, doctor); `connect` starts a per-user daemon when none answers.

use crate::sandbox::autostart;
use crate::sandbox::client::{self, answers, Client};
use crate::user::{home, is_root};
use anyhow::{Context, Result};

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub const SYSTEM_SOCKET: &str = "/run/nanobot/sandboxd.sock";
pub const ENV: &str = "NANOBOT_SANDBOX_SOCKET";

/// Where to look, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidates {
    /// Named by the operator (`--socket`, the environment, the config): used as is.
    Named(PathBuf),
    /// Nothing named: the defaults, first that answers.
    Defaults(Vec<PathBuf>),
}

impl Candidates {
    pub fn paths(&self) -> Vec<PathBuf> {
        match self {
            Candidates::Named(p) => vec![p.clone()],
            Candidates::Defaults(v) => v.clone(),
        }
    }
}

/// The rule, pure: `--socket`, then the environment (unless empty), then the config, then the
/// defaults.
pub fn choose(
    explicit: Option<PathBuf>,
    env: Option<OsString>,
    configured: Option<&Path>,
    defaults: impl FnOnce() -> Vec<PathBuf>,
) -> Candidates {
    match explicit
        .or_else(|| env.filter(|s| !s.is_empty()).map(PathBuf::from))
        .or_else(|| configured.map(Path::to_path_buf))
    {
        Some(p) => Candidates::Named(p),
        None => Candidates::Defaults(defaults()),
    }
}

/// The defaults, in order, given `$XDG_RUNTIME_DIR` and this user's own socket (pure).
pub fn defaults_for(xdg_runtime_dir: Option<OsString>, own: PathBuf) -> Vec<PathBuf> {
    let mut v = vec![];
    if let Some(d) = xdg_runtime_dir.filter(|d| !d.is_empty()) {
        v.push(PathBuf::from(d).join("nanobot/sandboxd.sock"));
    }
    v.push(PathBuf::from(SYSTEM_SOCKET));
    if !v.contains(&own) {
        v.push(own);
    }
    v
}

/// The socket this user gets when nanobot starts the daemon itself.
pub fn per_user_socket() -> PathBuf {
    if is_root() {
        return PathBuf::from(SYSTEM_SOCKET);
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("nanobot/sandboxd.sock"),
        _ => home().join(".nanobot/run/sandboxd.sock"),
    }
}

/// Sockets to try, in order, when none is named.
pub fn default_sockets() -> Vec<PathBuf> {
    defaults_for(std::env::var_os("XDG_RUNTIME_DIR"), per_user_socket())
}

/// The rule applied to this process's environment.
pub fn candidates(explicit: Option<PathBuf>, configured: Option<&Path>) -> Candidates {
    choose(explicit, std::env::var_os(ENV), configured, default_sockets)
}

/// The socket the agent would use, without starting a daemon: the first candidate that answers
/// (a named one too must answer). Returns the candidates tried and the one found.
pub async fn locate(
    explicit: Option<PathBuf>,
    configured: Option<&Path>,
) -> (Vec<PathBuf>, Option<PathBuf>) {
    let tried = candidates(explicit, configured).paths();
    for s in &tried {
        if answers(s).await {
            let found = s.clone();
            return (tried, Some(found));
        }
    }
    (tried, None)
}

/// Connect to sandboxd by the rule: a named socket as is; otherwise the first default that
/// answers, starting a per-user daemon when none does.
pub async fn connect(
    explicit: Option<PathBuf>,
    configured: Option<&Path>,
    workspace: &Path,
) -> Result<(PathBuf, Client)> {
    let socket = match candidates(explicit, configured) {
        Candidates::Named(s) => s,
        Candidates::Defaults(defaults) => first_answering_or_start(defaults, workspace).await?,
    };
    if let Some(s) = autostart::started(&socket) {
        if !autostart::serves(&s.roots, workspace) {
            return Err(ConnectError::OutsideRoots {
                workspace: workspace.to_path_buf(),
                started: s,
            }
            .into());
        }
    }
    let client = client::connect(&socket)
        .await
        .map_err(|e| ConnectError::from_transport(&socket, &e))?;
    Ok((socket, client))
}

/// Why no connection, in one sentence with the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot reach sandboxd: {socket} {why}; {hint}")]
    Unreachable {
        socket: String,
        why: String,
        hint: &'static str,
    },
    #[error(
        "workspace {} is outside what the sandboxd nanobot started for you on {} serves ({}): \
         run `nanobot sandbox stop` and try again (the next command starts one that serves it \
         too), or pass --socket for a sandboxd that serves it",
        .workspace.display(),
        .started.socket.display(),
        .started.roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    OutsideRoots {
        workspace: PathBuf,
        started: autostart::Started,
    },
}

/// What to do when a named socket does not answer.
const UNREACHABLE_HINT: &str = "start the sandboxd that serves it (`nanobot sandbox status` shows \
     what is running), or name another socket with --socket, NANOBOT_SANDBOX_SOCKET or \
     sandbox.socket, or name none to let nanobot start one for you";

impl ConnectError {
    pub fn from_transport(socket: &Path, e: &tonic::transport::Error) -> ConnectError {
        let why = match crate::errors::io_cause(e).map(std::io::Error::kind) {
            Some(std::io::ErrorKind::NotFound) => "does not exist".to_string(),
            Some(std::io::ErrorKind::ConnectionRefused) => {
                "is there but nothing listens on it (a daemon that stopped)".to_string()
            }
            Some(std::io::ErrorKind::PermissionDenied) => {
                "is not open to this user (permission denied: ask to be added to its allowed \
                 group)"
                    .to_string()
            }
            _ => format!("does not answer: {}", crate::errors::chain(e)),
        };
        ConnectError::Unreachable {
            socket: socket.display().to_string(),
            why,
            hint: UNREACHABLE_HINT,
        }
    }
}

async fn first_answering_or_start(defaults: Vec<PathBuf>, workspace: &Path) -> Result<PathBuf> {
    for s in defaults {
        if answers(&s).await {
            return Ok(s);
        }
    }
    let own = per_user_socket();
    autostart::start(&own, workspace)
        .await
        .context("no sandboxd answered and starting one failed")?;
    Ok(own)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn defaults() -> Vec<PathBuf> {
        vec![p("/d1"), p("/d2")]
    }

    #[test]
    fn named_sockets_win_in_order_then_the_defaults() {
        let env = || Some(OsString::from("/env"));
        let cfg = Some(Path::new("/cfg"));
        assert_eq!(
            choose(Some(p("/flag")), env(), cfg, defaults),
            Candidates::Named(p("/flag"))
        );
        assert_eq!(
            choose(None, env(), cfg, defaults),
            Candidates::Named(p("/env"))
        );
        // An empty variable counts as unset.
        assert_eq!(
            choose(None, Some(OsString::new()), cfg, defaults),
            Candidates::Named(p("/cfg"))
        );
        assert_eq!(
            choose(None, None, cfg, defaults),
            Candidates::Named(p("/cfg"))
        );
        assert_eq!(
            choose(None, None, None, defaults),
            Candidates::Defaults(defaults())
        );
        assert_eq!(choose(None, None, None, defaults).paths(), defaults());
        assert_eq!(Candidates::Named(p("/x")).paths(), vec![p("/x")]);
    }

    #[test]
    fn defaults_are_the_runtime_dir_then_the_system_socket_then_our_own() {
        let own = p("/home/u/.nanobot/run/sandboxd.sock");
        assert_eq!(
            defaults_for(Some("/run/user/1000".into()), own.clone()),
            vec![
                p("/run/user/1000/nanobot/sandboxd.sock"),
                p(SYSTEM_SOCKET),
                own.clone()
            ]
        );
        assert_eq!(
            defaults_for(Some("".into()), own.clone()),
            vec![p(SYSTEM_SOCKET), own.clone()]
        );
        // Our own socket is not tried twice (root's is the system one; with XDG it is the first).
        assert_eq!(defaults_for(None, p(SYSTEM_SOCKET)), vec![p(SYSTEM_SOCKET)]);
        assert_eq!(
            defaults_for(
                Some("/run/user/1000".into()),
                p("/run/user/1000/nanobot/sandboxd.sock")
            ),
            vec![p("/run/user/1000/nanobot/sandboxd.sock"), p(SYSTEM_SOCKET)]
        );
    }

    /// The example of issue 16: tonic's `transport error: No such file or directory (os error 2):
    /// No such file or directory (os error 2)` becomes one sentence with a hint.
    #[test]
    fn an_unreachable_socket_is_one_sentence() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let missing = p("/nonexistent/nanobot-test/sandboxd.sock");
        let e = rt.block_on(client::connect(&missing)).unwrap_err();
        let s = ConnectError::from_transport(&missing, &e).to_string();
        assert!(
            s.starts_with(
                "cannot reach sandboxd: /nonexistent/nanobot-test/sandboxd.sock does not exist; "
            ),
            "{s}"
        );
        assert!(
            !s.contains("os error") && !s.contains("transport error"),
            "{s}"
        );
        // A socket file nobody listens on.
        let dir = std::env::temp_dir().join(format!("nanobot-sock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stale = dir.join("s.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let e = rt.block_on(client::connect(&stale)).unwrap_err();
        let s = ConnectError::from_transport(&stale, &e).to_string();
        assert!(s.contains("is there but nothing listens on it"), "{s}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

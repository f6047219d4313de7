//! `nanobot sandbox status|stop`: which sandboxd this user's commands reach, and stopping the one
//! nanobot started for them (never a system service's).

use crate::cli::globals::Globals;
use crate::sandbox::autostart::{self, Started};
use crate::sandbox::{client, socket};
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const STATUS_EXIT_CODES: &str =
    "Exit codes: 0 a sandboxd answers (degraded or not: see `health`), 3 none answers.";
pub const STOP_EXIT_CODES: &str =
    "Exit codes: 0 the sandboxd nanobot started for you was stopped, or none \
     was running; 1 the sandboxd that answers was not started by nanobot for you (stop that \
     service instead, or let its user stop it), or it did not stop within 10 s.";

#[derive(clap::Subcommand, Debug)]
pub enum SandboxCmd {
    /// Socket, pid, workspace roots, whether nanobot started it, and its health
    #[command(after_help = STATUS_EXIT_CODES)]
    Status(SandboxArgs),
    /// Stop the sandboxd nanobot started for you (a system service is left alone)
    #[command(after_help = STOP_EXIT_CODES)]
    Stop(SandboxArgs),
}

#[derive(clap::Args, Debug)]
pub struct SandboxArgs {
    /// sandboxd socket (default: as the agent would pick it)
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

pub async fn run(g: &Globals, c: SandboxCmd) -> Result<i32> {
    let configured = g.load()?.config.sandbox.socket;
    match c {
        SandboxCmd::Status(a) => status(a.socket, configured.as_deref()).await,
        SandboxCmd::Stop(a) => stop(a.socket, configured.as_deref()).await,
    }
}

async fn status(explicit: Option<PathBuf>, configured: Option<&Path>) -> Result<i32> {
    let (tried, found) = socket::locate(explicit, configured).await;
    let Some(s) = found else {
        println!(
            "sandboxd:   not running (tried {})",
            tried
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!("            the next `nanobot exec` or `nanobot agent` starts one for you");
        return Ok(3);
    };
    let started = autostart::started(&s);
    println!("socket:     {}", s.display());
    match peer_pid(&s).await {
        Some(pid) => println!("pid:        {pid}"),
        None => println!("pid:        unknown"),
    }
    match &started {
        Some(st) => {
            println!(
                "roots:      {}",
                st.roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!(
                "started by: nanobot, for you (state {}; log {}); stop it with: nanobot sandbox stop",
                autostart::state_path(&s).display(),
                st.log.display()
            );
        }
        None if autostart::recorded(&s).is_some() => println!(
            "started by: nanobot, for another user (that user stops it with: nanobot sandbox stop)"
        ),
        None => println!(
            "started by: not nanobot (a service or started by hand: see its --workspace-root \
             and its own log)"
        ),
    }
    match client::info(&s).await {
        Some(i) if i.degraded.is_empty() => println!(
            "health:     ok (version {}, layers: {})",
            i.version,
            i.layers_enforced.join(", ")
        ),
        Some(i) => println!(
            "health:     DEGRADED, running without {} (layers: {})",
            i.degraded.join(", "),
            i.layers_enforced.join(", ")
        ),
        None => println!("health:     answers, but Info failed"),
    }
    Ok(0)
}

/// The pid at the other end of the socket (SO_PEERCRED), whoever started it.
async fn peer_pid(s: &Path) -> Option<i32> {
    let c = tokio::net::UnixStream::connect(s).await.ok()?;
    c.peer_cred().ok()?.pid()
}

async fn stop(explicit: Option<PathBuf>, configured: Option<&Path>) -> Result<i32> {
    let tried = socket::candidates(explicit, configured).paths();
    let found: Vec<(PathBuf, Started, Option<u32>)> = tried
        .iter()
        .filter_map(|s| {
            let owner = std::fs::metadata(autostart::state_path(s))
                .ok()
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m));
            autostart::recorded(s).map(|st| (s.clone(), st, owner))
        })
        .collect();
    // SAFETY: geteuid has no preconditions.
    let ours = own(found, unsafe { libc::geteuid() });
    if ours.is_empty() {
        let mut answering = None;
        for s in &tried {
            if client::answers(s).await {
                answering = Some(s.clone());
                break;
            }
        }
        return Ok(match answering {
            Some(s) if autostart::recorded(&s).is_some() => {
                eprintln!(
                    "nanobot: the sandboxd on {} was started by nanobot for another user, so it \
                     is left running; that user stops it with: nanobot sandbox stop",
                    s.display()
                );
                1
            }
            Some(s) => {
                eprintln!(
                    "nanobot: the sandboxd on {} was not started by nanobot, so it is left \
                     running; stop it the way it was started (systemctl stop sandboxd.service \
                     sandboxd.socket for the packaged service)",
                    s.display()
                );
                1
            }
            None => {
                println!("no sandboxd started by nanobot is running");
                0
            }
        });
    }
    for (s, st, _) in &ours {
        let pid = libc::pid_t::try_from(st.pid)?;
        // SAFETY: kill has no memory preconditions; `started` checked that the pid is a live
        // `sandboxd serve` on this socket, not a recycled one.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            let e = std::io::Error::last_os_error();
            let hint = if e.raw_os_error() == Some(libc::EPERM) {
                "; nanobot started it for another user (root): stop it as that user, e.g. sudo \
                 nanobot sandbox stop"
            } else {
                ""
            };
            eprintln!(
                "nanobot: cannot stop sandboxd (pid {pid}) on {}: {}{hint}",
                s.display(),
                crate::errors::plain_io(&e)
            );
            return Ok(1);
        }
        let t0 = Instant::now();
        while autostart::is_sandboxd(st.pid, s) {
            if t0.elapsed() > Duration::from_secs(10) {
                eprintln!(
                    "nanobot: sandboxd (pid {pid}) on {} did not stop within 10 s; see {}",
                    s.display(),
                    st.log.display()
                );
                return Ok(1);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = std::fs::remove_file(autostart::state_path(s));
        println!("stopped sandboxd (pid {pid}) on {}", s.display());
    }
    Ok(0)
}

/// The daemons nanobot started that `stop` acts on: the ones this user started (their state file
/// is this user's). Another user's (root's on the system socket) is theirs to stop: without this
/// a user's `stop` met it first, failed on it and never reached their own.
fn own(
    found: Vec<(PathBuf, Started, Option<u32>)>,
    uid: u32,
) -> Vec<(PathBuf, Started, Option<u32>)> {
    found
        .into_iter()
        .filter(|(_, _, o)| *o == Some(uid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_acts_only_on_this_users_daemons() {
        let st = |p: &str| Started {
            pid: 1,
            socket: PathBuf::from(p),
            roots: vec![],
            log: PathBuf::from("/l"),
            user: None,
        };
        let root = (
            PathBuf::from("/run/nanobot/sandboxd.sock"),
            st("/run/nanobot/sandboxd.sock"),
            Some(0),
        );
        let mine = (
            PathBuf::from("/h/.nanobot/run/sandboxd.sock"),
            st("/h/.nanobot/run/sandboxd.sock"),
            Some(1000),
        );
        assert_eq!(
            own(vec![root.clone(), mine.clone()], 1000),
            vec![mine.clone()]
        );
        assert_eq!(own(vec![root.clone()], 1000), vec![]);
        assert_eq!(own(vec![root.clone(), mine], 0), vec![root]);
    }
}

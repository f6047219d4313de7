//! The file calls (read, write, edit, list): workspace resolved and authorized, the operation run
//! off the async threads (`crate::fileops`), audited. `FileError` becomes a `Status` by its
//! `From` impl in fileops.rs.

use super::admit::authorize_workspace;
use super::State;
use crate::auth::Peer;
use crate::fileops::{self, FileError};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tonic::{Response, Status};

impl State {
    pub(super) fn limits(&self) -> fileops::Limits {
        let live = self.live();
        fileops::Limits {
            read_max_chars: live.cfg.read_max_chars,
            write_max_bytes: live.cfg.write_max_bytes,
            list_max_entries: live.cfg.list_max_entries,
        }
    }
}

/// One file operation: workspace and path resolved, run off the async threads, audited.
pub(super) struct FileOp {
    op: &'static str,
    peer: Peer,
    path: String,
    ws_path: PathBuf,
    ws_fd: std::os::fd::OwnedFd,
    rel: Result<PathBuf, FileError>,
    t0: Instant,
}

impl FileOp {
    pub(super) fn start(
        state: &State,
        op: &'static str,
        (peer, gids): (Peer, Vec<u32>),
        workspace: &str,
        path: &str,
    ) -> Result<FileOp, Status> {
        let t0 = Instant::now();
        let (ws_path, ws_fd) = state.roots.resolve(workspace).map_err(|e| {
            tracing::warn!(
                op,
                peer_uid = peer.uid,
                peer_pid = peer.pid,
                workspace,
                path,
                outcome = "invalid_workspace",
                "{op} refused: {e}"
            );
            Status::invalid_argument(e.to_string())
        })?;
        authorize_workspace(&state.live(), op, peer, &gids, &ws_path)?;
        let rel = fileops::relative_path(&ws_path, path);
        Ok(FileOp {
            op,
            peer,
            path: path.to_string(),
            ws_path,
            ws_fd,
            rel,
            t0,
        })
    }

    pub(super) async fn run<T: Send + 'static>(
        self,
        f: impl FnOnce(&std::os::fd::OwnedFd, &Path, &Path, &str) -> Result<T, FileError>
            + Send
            + 'static,
    ) -> Result<Response<T>, Status> {
        let FileOp {
            op,
            peer,
            path,
            ws_path,
            ws_fd,
            rel,
            t0,
        } = self;
        let shown = path.clone();
        let ws2 = ws_path.clone();
        let res = match rel {
            Err(e) => Err(e),
            Ok(rel) => tokio::task::spawn_blocking(move || f(&ws_fd, &ws2, &rel, &shown))
                .await
                .unwrap_or_else(|e| {
                    Err(FileError::Io {
                        path: path.clone(),
                        step: "worker",
                        err: e.to_string(),
                    })
                }),
        };
        let ms = t0.elapsed().as_millis() as u64;
        let ws = ws_path.display().to_string();
        match res {
            Ok(v) => {
                tracing::info!(op, peer_uid = peer.uid, peer_pid = peer.pid, workspace = %ws, path = %path, outcome = "ok", duration_ms = ms, "{op} path={path}");
                Ok(Response::new(v))
            }
            Err(e) => {
                let outside = matches!(e, FileError::Outside(_) | FileError::HardLink(_));
                if outside {
                    tracing::warn!(op, peer_uid = peer.uid, peer_pid = peer.pid, workspace = %ws, path = %path, outcome = "outside_workspace", duration_ms = ms, "{op} path={path}: Access denied: {e}");
                } else {
                    tracing::info!(op, peer_uid = peer.uid, peer_pid = peer.pid, workspace = %ws, path = %path, outcome = "error", error = %e, duration_ms = ms, "{op} path={path} failed: {e}");
                }
                Err(e.into())
            }
        }
    }
}

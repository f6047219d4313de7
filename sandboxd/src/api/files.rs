//! The file calls (read, write, edit, list): workspace resolved and authorized, the operation run
//! off the async threads (`crate::fileops`), audited. A `FileError` becomes a `Status` here
//! (`grpc_code`): the gRPC code is the API's choice, the domain error knows nothing of it.

use super::admit::authorize_workspace;
use super::state::State;
use crate::auth::Peer;
use crate::fileops::{self, FileError};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tonic::{Code, Response, Status};

/// The gRPC code of a file error: what a model (or a program) can act on. Bad arguments are
/// `InvalidArgument`, leaving the workspace or lacking permission `PermissionDenied`, a missing
/// file `NotFound`, a file in the wrong state (a directory, old_text not found or not unique)
/// `FailedPrecondition`, a size cap `ResourceExhausted`, anything else `Internal`.
pub(super) fn grpc_code(e: &FileError) -> Code {
    match e {
        FileError::Nul
        | FileError::Empty
        | FileError::Binary { .. }
        | FileError::InvalidUtf8(_)
        | FileError::Offset { .. }
        | FileError::EmptyOldText
        | FileError::BomOnlyOldText => Code::InvalidArgument,
        FileError::Outside(_) | FileError::HardLink(_) | FileError::Denied { .. } => {
            Code::PermissionDenied
        }
        FileError::NotFound(_) => Code::NotFound,
        FileError::IsDir(_)
        | FileError::NotFile(_)
        | FileError::NotDir(_)
        | FileError::TextNotFound { .. }
        | FileError::WhitespaceOnly { .. }
        | FileError::NotUnique { .. } => Code::FailedPrecondition,
        FileError::TooLarge { .. } => Code::ResourceExhausted,
        FileError::Io { .. } => Code::Internal,
    }
}

impl From<FileError> for Status {
    fn from(e: FileError) -> Self {
        Status::new(grpc_code(&e), e.to_string())
    }
}

impl State {
    pub(super) fn limits(&self) -> fileops::Limits {
        let snapshot = self.snapshot();
        fileops::Limits {
            read_max_chars: snapshot.cfg.read_max_chars,
            write_max_bytes: snapshot.cfg.write_max_bytes,
            list_max_entries: snapshot.cfg.list_max_entries,
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
        authorize_workspace(&state.snapshot(), op, peer, &gids, &ws_path)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_match_what_a_model_can_act_on() {
        assert_eq!(
            grpc_code(&FileError::Outside("x".into())),
            Code::PermissionDenied
        );
        assert_eq!(grpc_code(&FileError::NotFound("x".into())), Code::NotFound);
        assert!(FileError::Outside("../x".into())
            .to_string()
            .contains("outside the workspace"));
    }

    #[test]
    fn a_whitespace_only_miss_is_failed_precondition() {
        // Moved from fileops' whitespace_only_mismatch_says_so with the code mapping.
        let text = "def f():\r\n\treturn 1\r\n\r\ndef g():\r\n    pass\r\n";
        let e = fileops::edit_text(text, "def f():\n    return 1\n", "x", "f").unwrap_err();
        assert!(matches!(e, FileError::WhitespaceOnly { .. }), "{e}");
        assert_eq!(grpc_code(&e), Code::FailedPrecondition);
    }
}

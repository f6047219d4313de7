//! The file calls (read, write, edit, list): workspace resolved and authorized, the operation run
//! off the async threads (`crate::fileops`), audited. A `FileError` becomes a `Status` here
//! (`grpc_code`): the gRPC code is the API's choice, the domain error knows nothing of it.

use super::admit::authorize_workspace;
use super::state::State;
use crate::auth::Peer;
use crate::fileops::{self, FileError};
use crate::shown::shown_max;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tonic::{Code, Response, Status};

/// The gRPC code of a file error: what a model (or a program) can act on, by the gRPC
/// conventions (<https://grpc.github.io/grpc/core/md_doc_statuscodes.html>); the proto's comment
/// on the file calls lists the same table.
///
/// - `InvalidArgument`: the request itself is wrong whatever the files hold: NUL or empty path,
///   a name too long (ENAMETOOLONG), empty old_text; and content the file tools cannot handle
///   (binary, not UTF-8).
/// - `OutOfRange`: an offset past the end of the file (it may be fine once the file grows).
/// - `PermissionDenied`: outside the workspace (a `..`, a symlink, a hard link) or no permission
///   (EACCES, EPERM).
/// - `NotFound`, `AlreadyExists` (EEXIST).
/// - `FailedPrecondition`: the file is not in the state the call needs: a directory, not a
///   regular file, a parent that is not a directory, old_text not found or not unique, a
///   read-only filesystem (EROFS), busy (EBUSY, ETXTBSY).
/// - `ResourceExhausted`: a size cap, a full filesystem (ENOSPC) or quota (EDQUOT), a file too
///   large for the filesystem (EFBIG): the gRPC doc names "out of space" here, and retrying the
///   same call will not help until space is made.
/// - `Unavailable`: transient (EAGAIN, EINTR, EMFILE, ENFILE, ENOMEM): retrying may succeed.
/// - `Internal`: anything else (EIO, an unexpected errno, a failed worker): sandboxd's fault or
///   the host's, never the request's.
pub(super) fn grpc_code(e: &FileError) -> Code {
    match e {
        FileError::Nul
        | FileError::Empty
        | FileError::NameTooLong(_)
        | FileError::Binary { .. }
        | FileError::InvalidUtf8(_)
        | FileError::EmptyOldText
        | FileError::BomOnlyOldText => Code::InvalidArgument,
        FileError::Offset { .. } => Code::OutOfRange,
        FileError::Outside(_) | FileError::HardLink(_) | FileError::Denied { .. } => {
            Code::PermissionDenied
        }
        FileError::NotFound(_) => Code::NotFound,
        FileError::Exists { .. } => Code::AlreadyExists,
        FileError::IsDir(_)
        | FileError::NotFile(_)
        | FileError::NotDir(_)
        | FileError::TextNotFound { .. }
        | FileError::SplitsLineEnding { .. }
        | FileError::WhitespaceOnly { .. }
        | FileError::NotUnique { .. }
        | FileError::ReadOnly { .. }
        | FileError::Busy { .. } => Code::FailedPrecondition,
        FileError::TooLarge { .. }
        | FileError::NoSpace { .. }
        | FileError::FileTooBig { .. }
        | FileError::WorkspaceFull { .. }
        | FileError::UsageUnknown { .. } => Code::ResourceExhausted,
        FileError::Transient { .. } => Code::Unavailable,
        FileError::Io { .. } => Code::Internal,
    }
}

impl From<FileError> for Status {
    /// The message bounded for its HTTP/2 header (`crate::shown::message`): an edit miss quotes
    /// lines of the file, which may be long.
    fn from(e: FileError) -> Self {
        crate::shown::status(grpc_code(&e), e.to_string())
    }
}

/// Characters of a requested path or workspace the log keeps (PATH_MAX: every real one).
const LOG_CHARS: usize = 4096;

impl State {
    pub(super) fn limits(&self) -> fileops::FileLimits {
        let snapshot = self.snapshot();
        fileops::FileLimits {
            read_max_chars: snapshot.cfg.read_max_chars,
            write_max_bytes: snapshot.cfg.write_max_bytes,
            list_max_entries: snapshot.cfg.list_max_entries,
            workspace_ceiling: None,
        }
    }

    /// `limits` for a write in workspace `ws`: with the default profile's `workspace_bytes`
    /// when the write budget holds that workspace's ceiling (file calls name no profile; the
    /// filesystem refuses by itself under a btrfs qgroup). Blocking: it asks the filesystem.
    pub(super) fn write_limits(
        lim: fileops::FileLimits,
        workspace_bytes: Option<u64>,
        ws: &std::os::fd::OwnedFd,
    ) -> fileops::FileLimits {
        use std::os::fd::AsFd;
        let ceiling = workspace_bytes.and_then(|b| {
            match crate::disk::decide(&crate::disk::probe(ws.as_fd()), b) {
                crate::disk::Ceiling::Qgroup { .. } => None,
                crate::disk::Ceiling::WriteBudget { bytes, .. } => Some(bytes),
            }
        });
        fileops::FileLimits {
            workspace_ceiling: ceiling,
            ..lim
        }
    }

    /// The default profile's `workspace_bytes` (None: no default profile).
    pub(super) fn default_workspace_bytes(&self) -> Option<u64> {
        self.snapshot()
            .cfg
            .profiles
            .get("default")
            .map(|p| p.limits.workspace_bytes)
    }
}

/// One file operation: workspace and path resolved, run off the async threads, audited.
pub(super) struct FileOp {
    op: &'static str,
    peer: Peer,
    /// The requested path, for the log (up to PATH_MAX).
    path: String,
    /// The requested path as errors show it (bounded).
    shown: String,
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
        // Logged up to PATH_MAX, echoed in errors bounded (`crate::shown`).
        let workspace_log = shown_max(workspace, LOG_CHARS);
        let path_log = shown_max(path, LOG_CHARS);
        let (ws_path, ws_fd) = state.roots.resolve(workspace).map_err(|e| {
            tracing::warn!(
                op,
                peer_uid = peer.uid,
                peer_pid = peer.pid,
                workspace = %workspace_log,
                path = %path_log,
                outcome = "invalid_workspace",
                "{op} refused: {e}"
            );
            crate::shown::status(Code::InvalidArgument, e.to_string())
        })?;
        authorize_workspace(&state.snapshot(), op, peer, &gids, &ws_path)?;
        let rel = fileops::relative_path(&ws_path, path);
        Ok(FileOp {
            op,
            peer,
            path: path_log.into_owned(),
            shown: crate::shown::shown(path).into_owned(),
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
            shown,
            ws_path,
            ws_fd,
            rel,
            t0,
        } = self;
        let shown_err = shown.clone();
        let ws2 = ws_path.clone();
        let res = match rel {
            Err(e) => Err(e),
            Ok(rel) => tokio::task::spawn_blocking(move || f(&ws_fd, &ws2, &rel, &shown))
                .await
                .unwrap_or_else(|e| {
                    Err(FileError::Io {
                        path: shown_err,
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

    /// Every variant, and the code it gets. `listed` has no wildcard: a new variant does not
    /// compile until it is added here.
    fn table() -> Vec<(FileError, Code)> {
        let p = || "p".to_string();
        let step = "write";
        let v = vec![
            (FileError::Nul, Code::InvalidArgument),
            (FileError::Empty, Code::InvalidArgument),
            (FileError::NameTooLong(p()), Code::InvalidArgument),
            (
                FileError::Binary {
                    path: p(),
                    op: "read_file",
                },
                Code::InvalidArgument,
            ),
            (FileError::InvalidUtf8(p()), Code::InvalidArgument),
            (FileError::EmptyOldText, Code::InvalidArgument),
            (FileError::BomOnlyOldText, Code::InvalidArgument),
            (
                FileError::Offset {
                    path: p(),
                    offset: 9,
                    lines: 1,
                },
                Code::OutOfRange,
            ),
            (FileError::Outside(p()), Code::PermissionDenied),
            (FileError::HardLink(p()), Code::PermissionDenied),
            (FileError::Denied { path: p() }, Code::PermissionDenied),
            (FileError::NotFound(p()), Code::NotFound),
            (FileError::Exists { path: p(), step }, Code::AlreadyExists),
            (FileError::IsDir(p()), Code::FailedPrecondition),
            (FileError::NotFile(p()), Code::FailedPrecondition),
            (FileError::NotDir(p()), Code::FailedPrecondition),
            (
                FileError::TextNotFound {
                    path: p(),
                    closest: String::new(),
                },
                Code::FailedPrecondition,
            ),
            (
                FileError::SplitsLineEnding { path: p() },
                Code::FailedPrecondition,
            ),
            (
                FileError::WhitespaceOnly {
                    path: p(),
                    first: 1,
                    last: 1,
                    others: vec![],
                    more: 0,
                    detail: String::new(),
                },
                Code::FailedPrecondition,
            ),
            (
                FileError::NotUnique {
                    path: p(),
                    count: 2,
                },
                Code::FailedPrecondition,
            ),
            (
                FileError::ReadOnly { path: p(), step },
                Code::FailedPrecondition,
            ),
            (
                FileError::Busy { path: p(), step },
                Code::FailedPrecondition,
            ),
            (
                FileError::WorkspaceFull {
                    path: p(),
                    holds: 2,
                    ceiling: 3,
                    size: 2,
                },
                Code::ResourceExhausted,
            ),
            (
                FileError::UsageUnknown {
                    path: p(),
                    why: "w".into(),
                },
                Code::ResourceExhausted,
            ),
            (
                FileError::TooLarge {
                    path: p(),
                    size: 2,
                    limit: 1,
                    hint: "h",
                },
                Code::ResourceExhausted,
            ),
            (
                FileError::NoSpace {
                    path: p(),
                    step,
                    quota: false,
                },
                Code::ResourceExhausted,
            ),
            (
                FileError::NoSpace {
                    path: p(),
                    step,
                    quota: true,
                },
                Code::ResourceExhausted,
            ),
            (
                FileError::FileTooBig { path: p(), step },
                Code::ResourceExhausted,
            ),
            (
                FileError::Transient {
                    path: p(),
                    step,
                    err: "e".into(),
                },
                Code::Unavailable,
            ),
            (
                FileError::Io {
                    path: p(),
                    step,
                    err: "e".into(),
                },
                Code::Internal,
            ),
        ];
        for (e, _) in &v {
            listed(e);
        }
        v
    }

    fn listed(e: &FileError) {
        match e {
            FileError::Nul
            | FileError::Empty
            | FileError::NameTooLong(_)
            | FileError::Binary { .. }
            | FileError::InvalidUtf8(_)
            | FileError::EmptyOldText
            | FileError::BomOnlyOldText
            | FileError::Offset { .. }
            | FileError::Outside(_)
            | FileError::HardLink(_)
            | FileError::Denied { .. }
            | FileError::NotFound(_)
            | FileError::Exists { .. }
            | FileError::IsDir(_)
            | FileError::NotFile(_)
            | FileError::NotDir(_)
            | FileError::TextNotFound { .. }
            | FileError::SplitsLineEnding { .. }
            | FileError::WhitespaceOnly { .. }
            | FileError::NotUnique { .. }
            | FileError::ReadOnly { .. }
            | FileError::Busy { .. }
            | FileError::TooLarge { .. }
            | FileError::WorkspaceFull { .. }
            | FileError::UsageUnknown { .. }
            | FileError::NoSpace { .. }
            | FileError::FileTooBig { .. }
            | FileError::Transient { .. }
            | FileError::Io { .. } => {}
        }
    }

    #[test]
    fn every_file_error_has_its_code() {
        for (e, code) in table() {
            assert_eq!(grpc_code(&e), code, "{e:?}");
            let st = Status::from(e.clone());
            assert_eq!(st.code(), code);
            assert_eq!(st.message(), e.to_string());
        }
    }

    #[test]
    fn every_errno_a_file_call_can_meet_has_its_code() {
        let code = |errno| grpc_code(&fileops::map_errno(errno, "p", "write"));
        let want = [
            (libc::ENAMETOOLONG, Code::InvalidArgument),
            (libc::EXDEV, Code::PermissionDenied),
            (libc::ELOOP, Code::PermissionDenied),
            (libc::EACCES, Code::PermissionDenied),
            (libc::EPERM, Code::PermissionDenied),
            (libc::ENOENT, Code::NotFound),
            (libc::EEXIST, Code::AlreadyExists),
            (libc::ENOTDIR, Code::FailedPrecondition),
            (libc::EISDIR, Code::FailedPrecondition),
            (libc::EROFS, Code::FailedPrecondition),
            (libc::EBUSY, Code::FailedPrecondition),
            (libc::ETXTBSY, Code::FailedPrecondition),
            (libc::ENOSPC, Code::ResourceExhausted),
            (libc::EDQUOT, Code::ResourceExhausted),
            (libc::EFBIG, Code::ResourceExhausted),
            (libc::EAGAIN, Code::Unavailable),
            (libc::EINTR, Code::Unavailable),
            (libc::EMFILE, Code::Unavailable),
            (libc::ENFILE, Code::Unavailable),
            (libc::ENOMEM, Code::Unavailable),
            (libc::EIO, Code::Internal),
            (libc::EINVAL, Code::Internal),
        ];
        for (errno, c) in want {
            assert_eq!(code(errno), c, "errno {errno}");
        }
    }

    #[test]
    fn a_long_message_is_bounded_for_its_header() {
        let e = FileError::TextNotFound {
            path: "p".into(),
            closest: "x".repeat(100_000),
        };
        let st = Status::from(e);
        assert!(st.message().len() <= crate::shown::MESSAGE_ENCODED_BYTES);
        assert!(st.message().starts_with("p: old_text not found."));
    }

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

//! A failed syscall's errno → the `FileError` a model can act on.

use super::error::FileError;

pub(super) fn map_errno(errno: i32, path: &str, step: &'static str) -> FileError {
    match errno {
        // EXDEV: a step left the workspace; ELOOP: a magic link (/proc/self/fd/...) or a loop.
        libc::EXDEV | libc::ELOOP => FileError::Outside(path.into()),
        libc::ENOENT => FileError::NotFound(path.into()),
        libc::ENOTDIR => FileError::NotDir(path.into()),
        libc::EISDIR => FileError::IsDir(path.into()),
        libc::EACCES | libc::EPERM => FileError::Denied { path: path.into() },
        libc::ENAMETOOLONG => FileError::Io {
            path: path.into(),
            step,
            err: "name too long".into(),
        },
        e => FileError::Io {
            path: path.into(),
            step,
            err: std::io::Error::from_raw_os_error(e).to_string(),
        },
    }
}

pub(super) fn io_err(path: &str, step: &'static str, e: std::io::Error) -> FileError {
    map_errno(e.raw_os_error().unwrap_or(libc::EIO), path, step)
}

//! A failed syscall's errno → the `FileError` a model can act on.

use super::error::FileError;

pub fn map_errno(errno: i32, path: &str, step: &'static str) -> FileError {
    match errno {
        // EXDEV: a step left the workspace; ELOOP: a magic link (/proc/self/fd/...) or a loop.
        libc::EXDEV | libc::ELOOP => FileError::Outside(path.into()),
        libc::ENOENT => FileError::NotFound(path.into()),
        libc::ENOTDIR => FileError::NotDir(path.into()),
        libc::EISDIR => FileError::IsDir(path.into()),
        libc::EACCES | libc::EPERM => FileError::Denied { path: path.into() },
        libc::ENAMETOOLONG => FileError::NameTooLong(path.into()),
        libc::ENOSPC | libc::EDQUOT => FileError::NoSpace {
            path: path.into(),
            step,
            quota: errno == libc::EDQUOT,
        },
        libc::EFBIG => FileError::FileTooBig {
            path: path.into(),
            step,
        },
        libc::EROFS => FileError::ReadOnly {
            path: path.into(),
            step,
        },
        libc::EBUSY | libc::ETXTBSY => FileError::Busy {
            path: path.into(),
            step,
        },
        libc::EEXIST => FileError::Exists {
            path: path.into(),
            step,
        },
        libc::EAGAIN | libc::EINTR | libc::EMFILE | libc::ENFILE | libc::ENOMEM => {
            FileError::Transient {
                path: path.into(),
                step,
                err: std::io::Error::from_raw_os_error(errno).to_string(),
            }
        }
        e => FileError::Io {
            path: path.into(),
            step,
            err: std::io::Error::from_raw_os_error(e).to_string(),
        },
    }
}

/// The same for an `io::Error` (EIO when it carries no errno).
pub(super) fn io_err(path: &str, step: &'static str, e: std::io::Error) -> FileError {
    map_errno(e.raw_os_error().unwrap_or(libc::EIO), path, step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_errno_class_has_its_own_error() {
        let m = |e| map_errno(e, "p", "write");
        assert_eq!(m(libc::ENAMETOOLONG), FileError::NameTooLong("p".into()));
        assert!(matches!(
            m(libc::ENOSPC),
            FileError::NoSpace { quota: false, .. }
        ));
        assert!(matches!(
            m(libc::EDQUOT),
            FileError::NoSpace { quota: true, .. }
        ));
        assert!(matches!(m(libc::EFBIG), FileError::FileTooBig { .. }));
        assert!(matches!(m(libc::EROFS), FileError::ReadOnly { .. }));
        assert!(matches!(m(libc::EBUSY), FileError::Busy { .. }));
        assert!(matches!(m(libc::ETXTBSY), FileError::Busy { .. }));
        assert!(matches!(m(libc::EEXIST), FileError::Exists { .. }));
        for e in [
            libc::EAGAIN,
            libc::EINTR,
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOMEM,
        ] {
            assert!(matches!(m(e), FileError::Transient { .. }), "{e}");
        }
        assert!(matches!(m(libc::EIO), FileError::Io { .. }));
        assert!(m(libc::ENOSPC).to_string().contains("no space left"));
        assert!(m(libc::EDQUOT).to_string().contains("quota"));
    }
}

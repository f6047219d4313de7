//! Resolving a requested workspace beneath a configured root with openat2(RESOLVE_BENEATH): the
//! kernel refuses any `..` or symlink that leads out of the root, and the sandbox then uses the
//! resulting fd, so nothing can be swapped between the check and the use.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorkspaceError {
    #[error("workspace is required")]
    Empty,
    #[error("workspace path contains a NUL byte")]
    Nul,
    #[error("workspace must be an absolute path, got {0:?}")]
    Relative(String),
    #[error("workspace {path} is not beneath a configured workspace root ({roots})")]
    NotBeneath { path: String, roots: String },
    #[error("workspace {0} escapes its workspace root through '..' or a symlink")]
    Escapes(String),
    #[error("workspace {0} does not exist")]
    Missing(String),
    #[error("workspace {0} is not a directory")]
    NotDir(String),
    #[error("workspace {path} cannot be opened: {err}")]
    Other { path: String, err: String },
}

pub struct Root {
    pub path: PathBuf,
    fd: OwnedFd,
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
/// Resolve as if the dirfd were `/` (absolute symlinks included): paths inside a root being built.
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// openat2 beneath `dir`; errors are the raw errno.
pub fn open_beneath(dir: &OwnedFd, rel: &Path, flags: i32) -> Result<OwnedFd, i32> {
    open_beneath_with(dir, rel, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
}

/// openat2 relative to `dir` with the given RESOLVE_* flags (magic links are always refused);
/// errors are the raw errno.
pub fn open_beneath_with(
    dir: &OwnedFd,
    rel: &Path,
    flags: i32,
    resolve: u64,
) -> Result<OwnedFd, i32> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c = CString::new(rel.as_os_str().as_encoded_bytes()).map_err(|_| libc::EINVAL)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: resolve | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: openat2 with a valid dirfd, a NUL-terminated path and an open_how of the size we pass.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    // SAFETY: the kernel just returned this fd to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The path the kernel sees for an fd (for HOME and messages).
pub fn fd_path(fd: &OwnedFd) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()
}

pub struct Roots(pub Vec<Root>);

impl Roots {
    /// Open every root now (the daemon may lose the right to traverse to them after dropping root).
    pub fn open(paths: &[PathBuf]) -> io::Result<Roots> {
        let mut v = Vec::new();
        for p in paths {
            let canon = p.canonicalize().map_err(|e| {
                io::Error::new(e.kind(), format!("workspace root {}: {e}", p.display()))
            })?;
            let f = std::fs::File::open(&canon).map_err(|e| {
                io::Error::new(e.kind(), format!("workspace root {}: {e}", p.display()))
            })?;
            if !f.metadata()?.is_dir() {
                return Err(io::Error::other(format!(
                    "workspace root {} is not a directory",
                    p.display()
                )));
            }
            v.push(Root {
                path: canon,
                fd: f.into(),
            });
        }
        Ok(Roots(v))
    }

    pub fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none configured; start sandboxd with --workspace-root DIR".into();
        }
        self.0
            .iter()
            .map(|r| r.path.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Resolve a requested workspace to a directory fd and its real path.
    pub fn resolve(&self, requested: &str) -> Result<(PathBuf, OwnedFd), WorkspaceError> {
        if requested.is_empty() {
            return Err(WorkspaceError::Empty);
        }
        if requested.contains('\0') {
            return Err(WorkspaceError::Nul);
        }
        let path = Path::new(requested);
        if !path.is_absolute() {
            return Err(WorkspaceError::Relative(requested.into()));
        }
        // Longest matching root first, compared by components so /ws2 never matches root /ws.
        let mut best: Option<(&Root, &Path)> = None;
        for r in &self.0 {
            if let Ok(rel) = path.strip_prefix(&r.path) {
                if best
                    .is_none_or(|(b, _)| r.path.components().count() > b.path.components().count())
                {
                    best = Some((r, rel));
                }
            }
        }
        let Some((root, rel)) = best else {
            return Err(WorkspaceError::NotBeneath {
                path: requested.into(),
                roots: self.describe(),
            });
        };
        let fd =
            open_beneath(&root.fd, rel, libc::O_PATH | libc::O_DIRECTORY).map_err(|errno| {
                match errno {
                    libc::EXDEV | libc::ELOOP => WorkspaceError::Escapes(requested.into()),
                    libc::ENOENT => WorkspaceError::Missing(requested.into()),
                    libc::ENOTDIR => WorkspaceError::NotDir(requested.into()),
                    // Fail closed, and say why: there is no safe path resolution without it.
                    libc::ENOSYS => WorkspaceError::Other {
                        path: requested.into(),
                        err: "openat2 is not available (ENOSYS): sandboxd resolves every path with openat2(RESOLVE_BENEATH). Linux 5.6+ is needed, and under systemd RestrictSUIDSGID= must be off for sandboxd.service (systemd answers openat2 with ENOSYS under it)".into(),
                    },
                    e => WorkspaceError::Other {
                        path: requested.into(),
                        err: io::Error::from_raw_os_error(e).to_string(),
                    },
                }
            })?;
        // The kernel's name for what was opened, never the request's spelling: tenants are
        // authorized on it, so without it (no /proc) we fail closed.
        let real = fd_path(&fd).ok_or_else(|| WorkspaceError::Other {
            path: requested.into(),
            err: "its real path cannot be read from /proc/self/fd".into(),
        })?;
        Ok((real, fd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sandboxd-ws-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.canonicalize().unwrap()
    }

    #[test]
    fn resolves_inside_and_refuses_escapes() {
        let base = tmp("a");
        let root = base.join("root");
        std::fs::create_dir_all(root.join("ws/sub")).unwrap();
        std::fs::create_dir_all(base.join("root2")).unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        symlink(base.join("outside"), root.join("ws/out-link")).unwrap();
        symlink("sub", root.join("ws/in-link")).unwrap();
        std::fs::write(root.join("ws/file"), b"x").unwrap();
        let roots = Roots::open(std::slice::from_ref(&root)).unwrap();
        let s = |p: &Path| p.to_str().unwrap().to_string();

        // Positive controls: the root itself, a subdirectory, a symlink that stays inside.
        assert!(roots.resolve(&s(&root)).is_ok());
        assert!(roots.resolve(&s(&root.join("ws/sub"))).is_ok());
        let (real, _) = roots.resolve(&s(&root.join("ws/in-link"))).unwrap();
        assert_eq!(real, root.join("ws/sub"));

        assert!(matches!(
            roots.resolve(&s(&root.join("ws/out-link"))),
            Err(WorkspaceError::Escapes(_))
        ));
        assert!(matches!(
            roots.resolve(&format!("{}/ws/../..", root.display())),
            Err(WorkspaceError::Escapes(_))
        ));
        assert!(matches!(
            roots.resolve(&s(&base.join("root2"))),
            Err(WorkspaceError::NotBeneath { .. })
        ));
        assert!(matches!(
            roots.resolve(&s(&base.join("outside"))),
            Err(WorkspaceError::NotBeneath { .. })
        ));
        assert!(matches!(
            roots.resolve(&s(&root.join("missing"))),
            Err(WorkspaceError::Missing(_))
        ));
        assert!(matches!(
            roots.resolve(&s(&root.join("ws/file"))),
            Err(WorkspaceError::NotDir(_))
        ));
        assert_eq!(
            roots.resolve("relative/ws").unwrap_err(),
            WorkspaceError::Relative("relative/ws".into())
        );
        assert_eq!(roots.resolve("/a\0b").unwrap_err(), WorkspaceError::Nul);
        assert_eq!(roots.resolve("").unwrap_err(), WorkspaceError::Empty);
        std::fs::remove_dir_all(&base).unwrap();
    }
}

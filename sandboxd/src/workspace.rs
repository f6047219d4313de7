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

/// The directory `dir` names, opened for reading: an `O_PATH` fd (as workspaces are held) can be
/// neither fsynced nor given an ioctl.
pub fn reopen_dir(dir: std::os::fd::BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: `dir` is a borrowed, open fd and c"." a static NUL-terminated string; openat only
    // reads it.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c".".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` (>= 0) was just returned by openat: open, and referenced by nothing else in
    // this process, so the OwnedFd is its only owner and closes it once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

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
    // SAFETY: `dir` is borrowed from the caller's OwnedFd, open through the call and not closed
    // here; `c` is a CString owned here, read up to its NUL; `how` is a local #[repr(C)] struct
    // laid out as the kernel's open_how, whose size we pass, so the kernel reads exactly it;
    // nothing of ours is written; it returns a new fd or -1.
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
    // SAFETY: `fd` (>= 0) was just returned by openat2: open, and referenced by nothing else in
    // this process, so the OwnedFd is its only owner and closes it once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Open `path` (absolute, as the sandbox will see it) beneath `root`, the sandbox's root being
/// built, for a Landlock rule. Symlinks are followed only where they sit on the root's own
/// filesystem (the links the mount plan made: `/bin -> usr/bin`, `/dev/ptmx`); one met inside a
/// bind of host content is refused (ELOOP), since whoever can write there could point the rule
/// elsewhere. Errors are the raw errno.
pub fn open_rule_path(root: &OwnedFd, path: &Path) -> Result<OwnedFd, i32> {
    use std::os::unix::ffi::OsStrExt;
    let dev_of = |f: &OwnedFd| -> Result<u64, i32> {
        // SAFETY: stat is a C struct of integers: all-zero bytes are a valid value (fstat
        // overwrites it).
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat writes one stat into `st`, a local alive for the call; the fd belongs to a
        // live OwnedFd, so it is open.
        if unsafe { libc::fstat(f.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO));
        }
        Ok(st.st_dev)
    };
    let resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
    // Most rule paths have no link on the way: one lookup.
    let rel = path.strip_prefix("/").unwrap_or(path);
    match open_beneath_with(root, rel, libc::O_PATH, resolve) {
        Err(libc::ELOOP) => {}
        r => return r,
    }
    let root_dev = dev_of(root)?;
    let here = |f: &OwnedFd| open_beneath_with(f, Path::new("."), libc::O_PATH, resolve);
    // The directories walked so far (for ".."), the root first.
    let mut stack: Vec<OwnedFd> = vec![here(root)?];
    let mut todo: std::collections::VecDeque<std::ffi::OsString> = path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_os_string()),
            std::path::Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        let Some(cur) = stack.last() else {
            return Err(libc::ENOENT);
        };
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        if name == "." {
            continue;
        }
        match open_beneath_with(cur, Path::new(&name), libc::O_PATH, resolve) {
            Ok(fd) => stack.push(fd),
            Err(libc::ELOOP) => {
                links += 1;
                if links > 40 || dev_of(cur)? != root_dev {
                    return Err(libc::ELOOP);
                }
                let c = CString::new(name.as_bytes()).map_err(|_| libc::EINVAL)?;
                let mut buf = vec![0u8; 4096];
                // SAFETY: `cur` is an OwnedFd on our stack, open through the call; `c` is a
                // CString owned here, read up to its NUL; the kernel writes at most `buf.len()`
                // bytes into `buf`, a Vec owned here that lives through the call.
                let n = unsafe {
                    libc::readlinkat(
                        cur.as_raw_fd(),
                        c.as_ptr(),
                        buf.as_mut_ptr() as *mut libc::c_char,
                        buf.len(),
                    )
                };
                if n < 0 {
                    return Err(io::Error::last_os_error()
                        .raw_os_error()
                        .unwrap_or(libc::EIO));
                }
                buf.truncate(n as usize);
                let target = PathBuf::from(std::ffi::OsStr::from_bytes(&buf));
                if target.is_absolute() {
                    stack.truncate(1);
                }
                for c in target.components().rev() {
                    match c {
                        std::path::Component::Normal(n) => todo.push_front(n.to_os_string()),
                        std::path::Component::ParentDir => todo.push_front("..".into()),
                        _ => {}
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    stack.pop().ok_or(libc::ENOENT)
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
        // Echoed in the errors bounded (`crate::shown`): a status message is an HTTP/2 header.
        let shown = || crate::shown::shown(requested).into_owned();
        if !path.is_absolute() {
            return Err(WorkspaceError::Relative(shown()));
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
                path: shown(),
                roots: self.describe(),
            });
        };
        let fd =
            open_beneath(&root.fd, rel, libc::O_PATH | libc::O_DIRECTORY).map_err(|errno| {
                match errno {
                    libc::EXDEV | libc::ELOOP => WorkspaceError::Escapes(shown()),
                    libc::ENOENT => WorkspaceError::Missing(shown()),
                    libc::ENOTDIR => WorkspaceError::NotDir(shown()),
                    // Fail closed, and say why: there is no safe path resolution without it.
                    libc::ENOSYS => WorkspaceError::Other {
                        path: shown(),
                        err: "openat2 is not available (ENOSYS): sandboxd resolves every path with openat2(RESOLVE_BENEATH). Linux 5.6+ is needed, and under systemd RestrictSUIDSGID= must be off for sandboxd.service (systemd answers openat2 with ENOSYS under it)".into(),
                    },
                    e => WorkspaceError::Other {
                        path: shown(),
                        err: io::Error::from_raw_os_error(e).to_string(),
                    },
                }
            })?;
        // The kernel's name for what was opened, never the request's spelling: tenants are
        // authorized on it, so without it (no /proc) we fail closed.
        let real = fd_path(&fd).ok_or_else(|| WorkspaceError::Other {
            path: shown(),
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
    fn rule_paths_follow_the_roots_own_links_within_it() {
        let base = tmp("rules");
        std::fs::create_dir_all(base.join("usr/bin")).unwrap();
        std::fs::create_dir_all(base.join("dev/pts")).unwrap();
        symlink("usr/bin", base.join("bin")).unwrap();
        symlink("/usr/bin", base.join("abs")).unwrap();
        symlink("pts/../pts", base.join("dev/ptmx")).unwrap();
        symlink("../../../../..", base.join("up")).unwrap();
        let root: OwnedFd = std::fs::File::open(&base).unwrap().into();
        let ino = |f: &OwnedFd| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(fd_path(f).unwrap()).unwrap().ino()
        };
        let want = std::fs::metadata(base.join("usr/bin")).unwrap();
        use std::os::unix::fs::MetadataExt;
        for p in ["/bin", "/abs", "/usr/bin", "/bin/../bin"] {
            assert_eq!(
                ino(&open_rule_path(&root, Path::new(p)).unwrap()),
                want.ino(),
                "{p}"
            );
        }
        assert!(open_rule_path(&root, Path::new("/dev/ptmx")).is_ok());
        // ".." and links never climb out of the root.
        let up = open_rule_path(&root, Path::new("/up")).unwrap();
        assert_eq!(fd_path(&up).unwrap(), base);
        assert_eq!(
            open_rule_path(&root, Path::new("/missing")).unwrap_err(),
            libc::ENOENT
        );
        std::fs::remove_dir_all(&base).unwrap();
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

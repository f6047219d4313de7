//! Executing a mount plan (`confine::mounts`) inside the sandbox init's fresh mount namespace.
//!
//! The init first pivots into a small staging tmpfs (`enter_base`), with the host's root kept
//! beneath it at `OLD_ROOT` as the source of every bind, and builds the sandbox's root at
//! `NEW_ROOT` (`build`); a pre-warmed init does all of that before any request. Per request it
//! binds the workspace (`bind_workspace`), seals the root read-only (`seal`) and pivots into it,
//! detaching the staging tmpfs and the host's whole tree with it (`enter`). What the command then
//! sees is exactly the plan.

use crate::confine::mounts::{HostKind, MountOp, MountPlan};
use crate::step::{check, StepError};
use crate::workspace::{open_beneath_with, RESOLVE_IN_ROOT, RESOLVE_NO_SYMLINKS};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Where the staging tmpfs is mounted in the copied namespace before the first pivot (it hides
/// nothing afterwards: the pivot moves it away).
const BASE: &str = "/tmp";
/// The host's root, inside the staging tmpfs, until `enter`.
pub const OLD_ROOT: &str = "/oldroot";
/// The sandbox's root being built, inside the staging tmpfs, until `enter`.
pub const NEW_ROOT: &str = "/newroot";

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// `p` (absolute, as the sandbox sees it) under `root`.
pub fn under(root: &str, p: &Path) -> PathBuf {
    let rel = p.strip_prefix("/").unwrap_or(p);
    if rel.as_os_str().is_empty() {
        PathBuf::from(root)
    } else {
        Path::new(root).join(rel)
    }
}

fn cstr(s: &Path, step: &str) -> Result<CString, StepError> {
    CString::new(s.as_os_str().as_encoded_bytes())
        .map_err(|_| StepError::new("mounts", step, libc::EINVAL, "NUL in a mount path"))
}

pub fn mount(
    src: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> Result<(), StepError> {
    let step = format!("mount {} on {}", fstype_or(fstype, src), target.display());
    let c = |s: &str| cstr(Path::new(s), &step);
    let (src_c, target_c, fstype_c, data_c) = (c(src)?, cstr(target, &step)?, c(fstype)?, c(data)?);
    let opt = |s: &str, c: &CString| {
        if s.is_empty() {
            std::ptr::null()
        } else {
            c.as_ptr()
        }
    };
    // SAFETY: every pointer is null or a valid NUL-terminated string that outlives the call.
    let r = unsafe {
        libc::mount(
            opt(src, &src_c),
            target_c.as_ptr(),
            opt(fstype, &fstype_c),
            flags,
            opt(data, &data_c) as *const libc::c_void,
        )
    };
    check(r, "mounts", &step)
}

fn fstype_or<'a>(fstype: &'a str, src: &'a str) -> &'a str {
    if fstype.is_empty() {
        src
    } else {
        fstype
    }
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) on `path`: set and clear MOUNT_ATTR_* flags (recursively with AT_RECURSIVE).
pub fn mount_setattr(path: &Path, flags: libc::c_int, set: u64, clr: u64) -> Result<(), StepError> {
    let step = format!("mount_setattr {}", path.display());
    let c = cstr(path, &step)?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a valid C string and a mount_attr of the size we pass.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            flags as libc::c_uint,
            &attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(r as i32, "mounts", &step)
}

fn mkdir_p(p: &Path) -> Result<(), StepError> {
    std::fs::create_dir_all(p)
        .map_err(|e| StepError::io("mounts", format!("mkdir {}", p.display()), e))
}

fn chdir(p: &str) -> Result<(), StepError> {
    let c = cstr(Path::new(p), "chdir")?;
    // SAFETY: chdir with a valid C string.
    check(
        unsafe { libc::chdir(c.as_ptr()) },
        "mounts",
        &format!("chdir {p}"),
    )
}

fn pivot_root(new: &str, old: &str) -> Result<(), StepError> {
    let (n, o) = (
        cstr(Path::new(new), "pivot_root")?,
        cstr(Path::new(old), "pivot_root")?,
    );
    // SAFETY: pivot_root with two valid C strings; it only changes this namespace's mounts.
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) };
    check(r as i32, "mounts", &format!("pivot_root {new} {old}"))
}

fn umount_detach(p: &str) -> Result<(), StepError> {
    let c = cstr(Path::new(p), "umount")?;
    // SAFETY: umount2 with a valid C string.
    check(
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) },
        "mounts",
        &format!("umount {p}"),
    )
}

/// Pivot into a fresh staging tmpfs, keeping the host's root at `OLD_ROOT` as the bind source.
/// Our mount namespace must already be private (MS_REC|MS_PRIVATE on /).
pub fn enter_base() -> Result<(), StepError> {
    let nodev = libc::MS_NOSUID | libc::MS_NODEV;
    mount(
        "tmpfs",
        Path::new(BASE),
        "tmpfs",
        nodev,
        "size=65536,mode=0700",
    )?;
    for d in [OLD_ROOT, NEW_ROOT] {
        mkdir_p(&under(BASE, Path::new(d)))?;
    }
    chdir(BASE)?;
    pivot_root(".", &OLD_ROOT[1..])?;
    chdir("/")
}

/// What the host has at `p`, asked beneath `OLD_ROOT` (after `enter_base`).
pub fn host_kind(p: &Path) -> HostKind {
    crate::confine::mounts::host_probe(&under(OLD_ROOT, p))
}

/// Build `plan` at `NEW_ROOT`, everything but the workspace (see `bind_workspace`).
pub fn build(plan: &MountPlan) -> Result<(), StepError> {
    let nodev = libc::MS_NOSUID | libc::MS_NODEV;
    for op in &plan.ops {
        match op {
            MountOp::Tmpfs {
                path,
                size_bytes,
                mode,
                ..
            } => {
                let dst = under(NEW_ROOT, path);
                mkdir_p(&dst)?;
                let mut flags = nodev;
                if path != Path::new("/")
                    && path.starts_with("/dev")
                    && path != Path::new("/dev/shm")
                {
                    flags |= libc::MS_NOEXEC;
                }
                mount(
                    "tmpfs",
                    &dst,
                    "tmpfs",
                    flags,
                    &format!("size={size_bytes},mode={mode:o}"),
                )?;
            }
            MountOp::Proc { path } => {
                let dst = under(NEW_ROOT, path);
                mkdir_p(&dst)?;
                mount("proc", &dst, "proc", nodev | libc::MS_NOEXEC, "")?;
            }
            MountOp::Devpts { path } => {
                let dst = under(NEW_ROOT, path);
                mkdir_p(&dst)?;
                // Our own instance: the host's terminals are not in it, and ptys made here are
                // the only ones the command sees. gid is left to the creator (tty's gid is not
                // mapped in the sandbox's user namespace).
                mount(
                    "devpts",
                    &dst,
                    "devpts",
                    libc::MS_NOSUID | libc::MS_NOEXEC,
                    "newinstance,ptmxmode=0666,mode=0620",
                )?;
            }
            MountOp::Symlink { path, target, .. } => {
                let dst = under(NEW_ROOT, path);
                if let Some(parent) = dst.parent() {
                    mkdir_p(parent)?;
                }
                std::os::unix::fs::symlink(target, &dst).map_err(|e| {
                    StepError::io("mounts", format!("symlink {}", path.display()), e)
                })?;
            }
            MountOp::Bind {
                source,
                path,
                dir,
                writable,
                devices,
                optional,
                ..
            } => {
                let src = under(OLD_ROOT, source);
                if *optional && std::fs::symlink_metadata(&src).is_err() {
                    continue;
                }
                let dst = under(NEW_ROOT, path);
                make_mount_point(&dst, *dir)?;
                mount(
                    &src.to_string_lossy(),
                    &dst,
                    "",
                    libc::MS_BIND | libc::MS_REC,
                    "",
                )?;
                let mut set = MOUNT_ATTR_NOSUID;
                if *devices {
                    set |= MOUNT_ATTR_NOEXEC;
                } else {
                    set |= MOUNT_ATTR_NODEV;
                }
                if !*writable {
                    set |= MOUNT_ATTR_RDONLY;
                }
                mount_setattr(&dst, libc::AT_RECURSIVE, set, 0)?;
            }
            // Per request.
            MountOp::Workspace { .. } => {}
        }
    }
    Ok(())
}

fn make_mount_point(dst: &Path, dir: bool) -> Result<(), StepError> {
    if dir {
        return mkdir_p(dst);
    }
    if let Some(parent) = dst.parent() {
        mkdir_p(parent)?;
    }
    if std::fs::symlink_metadata(dst).is_ok() {
        return Ok(());
    }
    std::fs::File::create(dst)
        .map(drop)
        .map_err(|e| StepError::io("mounts", format!("create mount point {}", dst.display()), e))
}

/// Throw away a root built for another profile (a warm sandbox whose plan the request does not
/// match), leaving an empty `NEW_ROOT` to build on.
pub fn discard() -> Result<(), StepError> {
    umount_detach(NEW_ROOT)
}

fn same_inode(a: &OwnedFd, b: &OwnedFd) -> bool {
    let id = |f: &OwnedFd| -> Option<(u64, u64)> {
        // SAFETY: zeroed stat is valid; fstat writes into it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a valid fd and pointer.
        (unsafe { libc::fstat(f.as_raw_fd(), &mut st) } == 0).then_some((st.st_dev, st.st_ino))
    };
    matches!((id(a), id(b)), (Some(x), Some(y)) if x == y)
}

fn open_root(root: &str) -> Result<OwnedFd, StepError> {
    let c = cstr(Path::new(root), "open root")?;
    // SAFETY: open with a valid C string.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    check(fd, "mounts", &format!("open {root}"))?;
    // SAFETY: a fresh fd from open.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An O_PATH fd of the root being built, for the Landlock rules (opened `RESOLVE_IN_ROOT`, so
/// absolute symlinks inside resolve in the sandbox's root, as they will for the command).
pub fn new_root() -> Result<OwnedFd, StepError> {
    open_root(NEW_ROOT)
}

/// Open `path` (absolute, as the sandbox sees it) beneath `root` with every symlink resolved
/// inside that root.
pub fn open_in_root(root: &OwnedFd, path: &Path, no_symlinks: bool) -> Result<OwnedFd, i32> {
    let mut resolve = RESOLVE_IN_ROOT;
    if no_symlinks {
        resolve |= RESOLVE_NO_SYMLINKS;
    }
    open_beneath_with(root, path, libc::O_PATH, resolve)
}

/// Bind the request's workspace at its own path in the new root, from the host's view of the
/// same path, and prove it is the directory the daemon resolved (`daemon_fd`, same inode) before
/// and after. Returns an fd of the workspace as the command will see it; None when the sandbox
/// user cannot reach the path on the host (a parent it may not search).
pub fn bind_workspace(
    path: &Path,
    daemon_fd: &OwnedFd,
    writable: bool,
) -> Result<Option<OwnedFd>, StepError> {
    let old = open_root(OLD_ROOT)?;
    let src = match open_in_root(&old, path, true) {
        Ok(fd) => fd,
        Err(libc::EACCES) => return Ok(None),
        Err(e) => {
            return Err(changed(path, e));
        }
    };
    if !same_inode(&src, daemon_fd) {
        return Err(changed(path, libc::ESTALE));
    }
    let dst = under(NEW_ROOT, path);
    mkdir_p(&dst)?;
    mount(
        // The host's /proc (our only one until the new root's) names our fds too.
        &format!("{OLD_ROOT}/proc/self/fd/{}", src.as_raw_fd()),
        &dst,
        "",
        libc::MS_BIND | libc::MS_REC,
        "",
    )?;
    let mut set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if !writable {
        set |= MOUNT_ATTR_RDONLY;
    }
    mount_setattr(&dst, libc::AT_RECURSIVE, set, 0)?;
    let new = open_root(NEW_ROOT)?;
    let bound = open_in_root(&new, path, true).map_err(|e| changed(path, e))?;
    if !same_inode(&bound, daemon_fd) {
        return Err(changed(path, libc::ESTALE));
    }
    Ok(Some(bound))
}

fn changed(path: &Path, errno: i32) -> StepError {
    StepError::new(
        "mounts",
        "verify workspace",
        errno,
        format!(
            "workspace {} changed while the sandbox was being set up ({})",
            path.display(),
            io::Error::from_raw_os_error(errno)
        ),
    )
}

/// Make the root tmpfs and /dev read-only: nothing but the workspace, the private /tmp and the
/// profile's read-write paths can be written.
pub fn seal(plan: &MountPlan) -> Result<(), StepError> {
    for op in &plan.ops {
        if let MountOp::Tmpfs {
            path, seal: true, ..
        } = op
        {
            mount_setattr(&under(NEW_ROOT, path), 0, MOUNT_ATTR_RDONLY, 0)?;
        }
    }
    Ok(())
}

/// Pivot into the new root and detach everything else: the staging tmpfs and, beneath it, the
/// host's whole mount tree.
pub fn enter() -> Result<(), StepError> {
    chdir(NEW_ROOT)?;
    // pivot_root(".", "."): the old root ends up stacked on the new one, and is detached below
    // (pivot_root(2), "NOTES").
    pivot_root(".", ".")?;
    umount_detach(".")?;
    chdir("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_go_under_their_root() {
        assert_eq!(under(NEW_ROOT, Path::new("/")), PathBuf::from("/newroot"));
        assert_eq!(
            under(NEW_ROOT, Path::new("/usr/bin")),
            PathBuf::from("/newroot/usr/bin")
        );
        assert_eq!(
            under(OLD_ROOT, Path::new("/dev/null")),
            PathBuf::from("/oldroot/dev/null")
        );
    }
}

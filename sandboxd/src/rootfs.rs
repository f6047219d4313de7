//! Executing a mount plan (`confine::mounts`) inside the sandbox init's fresh mount namespace.
//!
//! Every bind is a clone of a subtree of the host's mount tree (open_tree OPEN_TREE_CLONE),
//! opened without following any symlink and checked for its kind, given its flags while still
//! detached (mount_setattr) and attached by fd onto a mount point that was itself reached without
//! following symlinks (move_mount): nothing is looked up twice.
//!
//! Where the kernel can clone from a detached tree (Linux 6.15+), the host's tree is first cloned
//! whole into one detached tree held by an fd, the root is built over `/tmp` of the init's copy of
//! the host's namespace, and a pre-warmed init enters it and lets go of the host's tree before
//! any request (`Stage::settle`): a request then only clones and attaches its workspace and seals
//! the root. On older kernels (found out at the first bind) the init pivots into a staging tmpfs
//! with the host's root at `OLD_ROOT`, builds at `NEW_ROOT`, and the request pivots and detaches
//! (`Stage::enter`). Either way, what the command sees is exactly the plan, and nothing of the
//! host's tree is left in its mount namespace.

use crate::confine::mounts::{MountOp, MountPlan};
use crate::step::{check, StepError};
use crate::vocab::Layer;
use crate::workspace::{open_beneath_with, RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_NO_SYMLINKS};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Where the root is built in the copied namespace (directly, or as the staging tmpfs on older
/// kernels); it hides nothing a bind needs: sources come from the clone or from `OLD_ROOT`.
const BASE: &str = "/tmp";
/// The host's root, inside the staging tmpfs, until it is let go of.
pub const OLD_ROOT: &str = "/oldroot";
/// The sandbox's root being built, inside the staging tmpfs.
pub const NEW_ROOT: &str = "/newroot";
/// Where a root for another plan is built once a warm root has been entered.
const REBUILD: &str = "/.rebuild";

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

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
        .map_err(|_| StepError::new(Layer::Mounts, step, libc::EINVAL, "NUL in a mount path"))
}

pub fn mount(
    src: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> Result<(), StepError> {
    let what = if fstype.is_empty() { src } else { fstype };
    let step = format!("mount {what} on {}", target.display());
    let c = |s: &str| cstr(Path::new(s), &step);
    let (src_c, target_c, fstype_c, data_c) = (c(src)?, cstr(target, &step)?, c(fstype)?, c(data)?);
    let opt = |s: &str, c: &CString| {
        if s.is_empty() {
            std::ptr::null()
        } else {
            c.as_ptr()
        }
    };
    // SAFETY: each pointer is null (an argument mount takes as absent) or points into one of
    // `src_c`, `target_c`, `fstype_c`, `data_c`: CStrings owned by this function, alive until it
    // returns, so through the call; the kernel reads them up to their NULs and writes nothing of
    // ours.
    let r = unsafe {
        libc::mount(
            opt(src, &src_c),
            target_c.as_ptr(),
            opt(fstype, &fstype_c),
            flags,
            opt(data, &data_c) as *const libc::c_void,
        )
    };
    check(r, Layer::Mounts, &step)
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) on `dirfd` + `path`: set MOUNT_ATTR_* flags.
fn setattr_at(
    dirfd: RawFd,
    path: &Path,
    flags: libc::c_int,
    set: u64,
    step: &str,
) -> Result<(), StepError> {
    let c = cstr(path, step)?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `dirfd` is AT_FDCWD or an fd the caller holds (an OwnedFd it borrows for this
    // call: the tree or root being built), so it stays open through the call; `c` is a CString
    // owned here, read up to its NUL; `attr` is a local #[repr(C)] struct laid out as the
    // kernel's mount_attr, whose size we pass, so the kernel reads exactly it; nothing of ours
    // is written.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            c.as_ptr(),
            flags as libc::c_uint,
            &attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(r as i32, Layer::Mounts, step)
}

/// mount_setattr(2) on `path`: set MOUNT_ATTR_* flags (recursively with AT_RECURSIVE).
pub fn mount_setattr(path: &Path, flags: libc::c_int, set: u64) -> Result<(), StepError> {
    setattr_at(
        libc::AT_FDCWD,
        path,
        flags,
        set,
        &format!("mount_setattr {}", path.display()),
    )
}

/// open_tree(2) with OPEN_TREE_CLONE|AT_RECURSIVE: a detached copy of the mount subtree at
/// `dirfd` + `path`. Errors are the raw errno.
fn clone_tree(dirfd: RawFd, path: &Path, recursive: bool) -> Result<OwnedFd, i32> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| libc::EINVAL)?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    if path.as_os_str().is_empty() {
        flags |= libc::AT_EMPTY_PATH as libc::c_uint;
    }
    // SAFETY: `dirfd` is AT_FDCWD or an fd the caller holds (as_raw_fd of an OwnedFd it keeps
    // through this call); `c` is a CString owned here, read up to its NUL; nothing of ours is
    // written; it returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, dirfd, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    // SAFETY: `fd` (>= 0) was just returned by open_tree: open, and referenced by nothing else in
    // this process, so the OwnedFd is its only owner and closes it once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The mount point for `path` (absolute, as the sandbox sees it) beneath the root `root_fd`:
/// made where missing (a directory, or an empty file when `dir` is false), every component reached
/// with openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS. Earlier binds put host content in the root
/// being built; a path that leads through a symlink there is refused, never followed (a profile
/// that can write one of its directories must not be able to move another bind elsewhere).
fn mount_point(root_fd: &OwnedFd, path: &Path, dir: bool) -> Result<OwnedFd, StepError> {
    let step = || format!("mount point {}", path.display());
    let resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
    let flags = libc::O_PATH | if dir { libc::O_DIRECTORY } else { 0 };
    let rel = path.strip_prefix("/").unwrap_or(path);
    let refused = |e: i32| {
        StepError::new(
            Layer::Mounts,
            step(),
            e,
            format!(
                "{} is reached through a symlink inside the sandbox's root being built; refused",
                path.display()
            ),
        )
    };
    // Most mount points exist, or only their last component is missing: one lookup each.
    match open_beneath_with(root_fd, rel, flags, resolve) {
        Ok(fd) => return Ok(fd),
        Err(e @ (libc::ELOOP | libc::EXDEV)) => return Err(refused(e)),
        Err(libc::ENOENT) => {}
        Err(e) => {
            return Err(StepError::io(
                Layer::Mounts,
                step(),
                io::Error::from_raw_os_error(e),
            ))
        }
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(StepError::new(
            Layer::Mounts,
            step(),
            libc::EINVAL,
            "no name to create",
        ));
    };
    let parent = mount_point(root_fd, parent, true)?;
    let c = cstr(Path::new(name), &step())?;
    // SAFETY: `parent` is an OwnedFd of this function, open through both calls; `c` is a CString
    // owned here, read by the kernel up to its NUL; nothing of ours is written. The fd openat
    // returns is ours alone and closed right away (only its creation matters), so nothing else
    // can be holding it.
    let r = unsafe {
        if dir {
            libc::mkdirat(parent.as_raw_fd(), c.as_ptr(), 0o755)
        } else {
            let fd = libc::openat(
                parent.as_raw_fd(),
                c.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o644,
            );
            if fd >= 0 {
                libc::close(fd);
            }
            fd
        }
    };
    if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
        return Err(StepError::os(Layer::Mounts, step()));
    }
    match open_beneath_with(&parent, Path::new(name), flags, resolve) {
        Ok(fd) => Ok(fd),
        Err(e @ (libc::ELOOP | libc::EXDEV)) => Err(refused(e)),
        Err(e) => Err(StepError::io(
            Layer::Mounts,
            step(),
            io::Error::from_raw_os_error(e),
        )),
    }
}

/// Give a detached tree its flags (recursively) and attach it onto the mount point `target` (an
/// fd: nothing is looked up again between making the mount point and mounting on it).
fn attach_at(tree: &OwnedFd, target: &OwnedFd, what: &Path, set: u64) -> Result<(), StepError> {
    if set != 0 {
        setattr_at(
            tree.as_raw_fd(),
            Path::new(""),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            set,
            &format!("mount_setattr for {}", what.display()),
        )?;
    }
    let step = format!("move_mount onto {}", what.display());
    let empty = cstr(Path::new(""), &step)?;
    // SAFETY: `tree` and `target` are borrowed from the caller's OwnedFds, open through the call
    // and not closed here; `empty` is a CString owned here ("", with the *_EMPTY_PATH flags the
    // kernel reads only its NUL); nothing of ours is written.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    check(r as i32, Layer::Mounts, &step)
}

fn mkdir_p(p: &Path) -> Result<(), StepError> {
    std::fs::create_dir_all(p)
        .map_err(|e| StepError::io(Layer::Mounts, format!("mkdir {}", p.display()), e))
}

fn chdir(p: &str) -> Result<(), StepError> {
    let c = cstr(Path::new(p), "chdir")?;
    check(
        // SAFETY: `c` is a NUL-terminated CString alive for the call; chdir only reads it.
        unsafe { libc::chdir(c.as_ptr()) },
        Layer::Mounts,
        &format!("chdir {p}"),
    )
}

fn pivot_root(new: &str, old: &str) -> Result<(), StepError> {
    let (n, o) = (
        cstr(Path::new(new), "pivot_root")?,
        cstr(Path::new(old), "pivot_root")?,
    );
    // SAFETY: `n` and `o` are CStrings owned here, alive through the call, read by the kernel up
    // to their NULs; nothing of ours is written. It changes only the mounts of this process's
    // own mount namespace (the sandbox's).
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) };
    check(r as i32, Layer::Mounts, &format!("pivot_root {new} {old}"))
}

fn umount_detach(p: &str) -> Result<(), StepError> {
    let c = cstr(Path::new(p), "umount")?;
    check(
        // SAFETY: `c` is a NUL-terminated CString alive for the call; umount2 only reads it.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) },
        Layer::Mounts,
        &format!("umount {p}"),
    )
}

fn open_dir(root: &str) -> Result<OwnedFd, StepError> {
    let c = cstr(Path::new(root), "open root")?;
    // SAFETY: `c` is a NUL-terminated CString alive for the call; open only reads it.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    check(fd, Layer::Mounts, &format!("open {root}"))?;
    // SAFETY: a fresh fd from open.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn same_inode(a: &OwnedFd, b: &OwnedFd) -> bool {
    let id = |f: &OwnedFd| -> Option<(u64, u64)> {
        // SAFETY: stat is a C struct of integers: all-zero bytes are a valid value (fstat
        // overwrites it).
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat writes one stat into `st`, a local alive for the call; the fd belongs to a
        // live OwnedFd, so it is open.
        (unsafe { libc::fstat(f.as_raw_fd(), &mut st) } == 0).then_some((st.st_dev, st.st_ino))
    };
    matches!((id(a), id(b)), (Some(x), Some(y)) if x == y)
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

/// What a bind source must be.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Dir,
    NonDir,
    Socket,
    Device,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Dir => "a directory",
            Kind::NonDir => "a file",
            Kind::Socket => "a socket",
            Kind::Device => "a character device",
        }
    }
}

/// Where bind sources come from.
enum Host {
    /// A detached clone of the host's whole mount tree: binds are cloned from it, and the host's
    /// tree itself can leave the namespace before the request.
    Tree(OwnedFd),
    /// The host's tree, still attached at `OLD_ROOT` (kernels that cannot clone from a detached
    /// tree): it leaves the namespace when the request enters its root.
    Attached,
}

/// The sandbox's mount namespace while its root is being built and entered.
pub struct Stage {
    host: Host,
    /// Where the root being built (or in use) is: `NEW_ROOT` or `REBUILD` before it is entered,
    /// "/" after.
    root: &'static str,
}

impl Stage {
    /// Start building a root. Where the kernel lets us build from a detached clone of the host's
    /// tree (Linux 6.15+), the root is built directly over `/tmp` of our copy of the host's
    /// namespace (every source comes from the clone, so nothing it hides matters). Otherwise
    /// (found out by the first bind, see `build`) from a staging tmpfs with the host's tree at
    /// `OLD_ROOT`. Our mount namespace must already be private (MS_REC|MS_PRIVATE on /).
    pub fn open() -> Result<Stage, StepError> {
        match clone_tree(libc::AT_FDCWD, Path::new("/"), true) {
            Ok(tree) => Ok(Stage {
                host: Host::Tree(tree),
                root: BASE,
            }),
            Err(_) => Self::open_staged(),
        }
    }

    /// Pivot into a fresh staging tmpfs, keeping the host's root at `OLD_ROOT`.
    fn open_staged() -> Result<Stage, StepError> {
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
        chdir("/")?;
        Ok(Stage {
            host: Host::Attached,
            root: NEW_ROOT,
        })
    }

    /// A detached clone of the host's subtree at `source`, which must still be what the plan
    /// saw: no symlink anywhere on the way (the plan bound what names resolved to when the
    /// configuration was loaded; a path swapped for a symlink since is refused, never followed)
    /// and the kind of file it expects. None when the host has nothing there.
    fn clone_of(&self, source: &Path, want: Kind) -> Result<Option<OwnedFd>, StepError> {
        let rel = source.strip_prefix("/").unwrap_or(source);
        let resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
        let found = match &self.host {
            Host::Tree(t) => open_beneath_with(t, rel, libc::O_PATH, resolve),
            Host::Attached => open_beneath_with(&open_dir(OLD_ROOT)?, rel, libc::O_PATH, resolve),
        };
        let step = format!("open {}", source.display());
        let fd = match found {
            Ok(fd) => fd,
            Err(libc::ENOENT) => return Ok(None),
            Err(libc::ELOOP) | Err(libc::EXDEV) => {
                return Err(StepError::new(
                    Layer::Mounts,
                    step,
                    libc::ELOOP,
                    format!(
                        "{} is reached through a symlink now; the profile's paths were resolved when the configuration was loaded, and a path that changed since is not followed (reload the configuration if the change is intended)",
                        source.display()
                    ),
                ))
            }
            Err(e) => return Err(StepError::io(Layer::Mounts, step, io::Error::from_raw_os_error(e))),
        };
        // SAFETY: stat is a C struct of integers: all-zero bytes are a valid value (fstat
        // overwrites it).
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        check(
            // SAFETY: fstat writes one stat into `st`, a local alive for the call; the fd belongs
            // to a live OwnedFd, so it is open.
            unsafe { libc::fstat(fd.as_raw_fd(), &mut st) },
            Layer::Mounts,
            &step,
        )?;
        let fmt = st.st_mode & libc::S_IFMT;
        let ok = match want {
            Kind::Dir => fmt == libc::S_IFDIR,
            Kind::NonDir => fmt != libc::S_IFDIR,
            Kind::Socket => fmt == libc::S_IFSOCK,
            Kind::Device => fmt == libc::S_IFCHR,
        };
        if !ok {
            return Err(StepError::new(
                Layer::Mounts,
                step,
                libc::ESTALE,
                format!(
                    "{} is no longer {} (it changed since the configuration was loaded)",
                    source.display(),
                    want.describe()
                ),
            ));
        }
        clone_tree(fd.as_raw_fd(), Path::new(""), true)
            .map(Some)
            .map_err(|e| {
                StepError::io(
                    Layer::Mounts,
                    format!("open_tree {}", source.display()),
                    io::Error::from_raw_os_error(e),
                )
            })
    }

    /// Build `plan` (everything but the workspace, see `bind_workspace`) at the stage's root.
    pub fn build(&mut self, plan: &MountPlan) -> Result<(), StepError> {
        match self.build_once(plan) {
            // A kernel that cannot clone from a detached tree (before 6.15) says EINVAL at the
            // first bind: drop what was built and build again from the staged host tree.
            Err(e)
                if e.errno == libc::EINVAL
                    && e.step.starts_with("open_tree")
                    && matches!(self.host, Host::Tree(_))
                    && self.root == BASE =>
            {
                umount_detach(BASE)?;
                *self = Self::open_staged()?;
                self.build_once(plan)
            }
            r => r,
        }
    }

    fn build_once(&self, plan: &MountPlan) -> Result<(), StepError> {
        let root = self.root;
        let nodev = libc::MS_NOSUID | libc::MS_NODEV;
        // The root being built, once its tmpfs is there (the first operation).
        let mut root_fd: Option<OwnedFd> = None;
        for op in &plan.ops {
            match op {
                MountOp::Tmpfs {
                    path,
                    size_bytes,
                    mode,
                    ..
                } => {
                    let dst = under(root, path);
                    mkdir_p(&dst)?;
                    let mut flags = nodev;
                    if path == Path::new("/dev") {
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
                    let dst = under(root, path);
                    mkdir_p(&dst)?;
                    mount("proc", &dst, "proc", nodev | libc::MS_NOEXEC, "")?;
                }
                MountOp::Devpts { path } => {
                    let dst = under(root, path);
                    mkdir_p(&dst)?;
                    // Our own instance: the host's terminals are not in it, and ptys made here
                    // are the only ones the command sees. gid is left to the creator (tty's gid
                    // is not mapped in the sandbox's user namespace).
                    mount(
                        "devpts",
                        &dst,
                        "devpts",
                        libc::MS_NOSUID | libc::MS_NOEXEC,
                        "newinstance,ptmxmode=0666,mode=0620",
                    )?;
                }
                MountOp::Symlink { path, target, .. } => {
                    let dst = under(root, path);
                    let link = || std::os::unix::fs::symlink(target, &dst);
                    // Parents only when missing: most links sit in directories made already.
                    let made = link().or_else(|e| match (e.kind(), dst.parent()) {
                        (io::ErrorKind::NotFound, Some(parent)) => {
                            std::fs::create_dir_all(parent).and_then(|_| link())
                        }
                        _ => Err(e),
                    });
                    made.map_err(|e| {
                        StepError::io(Layer::Mounts, format!("symlink {}", path.display()), e)
                    })?;
                }
                MountOp::Bind {
                    source,
                    path,
                    dir,
                    writable,
                    devices,
                    optional,
                    socket,
                    ..
                } => {
                    let want = if *socket {
                        Kind::Socket
                    } else if *devices {
                        Kind::Device
                    } else if *dir {
                        Kind::Dir
                    } else {
                        Kind::NonDir
                    };
                    let Some(tree) = self.clone_of(source, want)? else {
                        if *optional {
                            continue;
                        }
                        return Err(StepError::new(
                            Layer::Mounts,
                            format!("open_tree {}", source.display()),
                            libc::ENOENT,
                            format!("{} does not exist on the host", source.display()),
                        ));
                    };
                    if root_fd.is_none() {
                        root_fd = Some(open_dir(root)?);
                    }
                    let Some(rfd) = root_fd.as_ref() else {
                        return Err(StepError::new(
                            Layer::Mounts,
                            "open root",
                            libc::EBADF,
                            "no root",
                        ));
                    };
                    let target = mount_point(rfd, path, *dir)?;
                    // Device nodes keep the host's own mount flags (a device cannot be executed
                    // and has no set-id bits to honour); everything else is nosuid, nodev.
                    let mut set = 0;
                    if !*devices {
                        set |= MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
                    }
                    if !*writable {
                        set |= MOUNT_ATTR_RDONLY;
                    }
                    attach_at(&tree, &target, path, set)?;
                }
                // Per request.
                MountOp::Workspace { .. } => {}
            }
        }
        Ok(())
    }

    /// Empty directories in the root, ahead of time (best effort: e.g. the workspace roots, so a
    /// request creates only its workspace's own components).
    pub fn make_dirs(&self, dirs: &[PathBuf]) {
        let Ok(root) = self.root_fd() else {
            return;
        };
        for d in dirs {
            let _ = mount_point(&root, d, true);
        }
    }

    /// A pre-warmed root, once built: where the kernel allows it, enter it now and let go of the
    /// host's tree, so the request does not pay for it.
    pub fn settle(&mut self) -> Result<(), StepError> {
        if matches!(self.host, Host::Tree(_)) {
            self.enter()?;
        }
        Ok(())
    }

    /// Throw away the root built for another plan and build `plan` instead.
    pub fn rebuild(&mut self, plan: &MountPlan) -> Result<(), StepError> {
        if self.root == "/" {
            // Entered already (its host tree is a clone): build beside it, enter that later.
            mkdir_p(Path::new(REBUILD))?;
            self.root = REBUILD;
        } else {
            umount_detach(self.root)?;
        }
        self.build(plan)
    }

    /// An O_PATH fd of the root, for the Landlock rules (opened `RESOLVE_IN_ROOT`, so absolute
    /// symlinks inside resolve in the sandbox's root, as they will for the command).
    pub fn root_fd(&self) -> Result<OwnedFd, StepError> {
        open_dir(self.root)
    }

    /// Bind the request's workspace at its own path in the root, cloned from the host's view of
    /// the same path, and prove it is the directory the daemon resolved (`daemon_fd`, same inode)
    /// before and after. Returns an fd of the workspace as the command will see it; None when the
    /// sandbox user cannot reach the path on the host (a parent it may not search).
    pub fn bind_workspace(
        &self,
        path: &Path,
        daemon_fd: &OwnedFd,
        writable: bool,
    ) -> Result<Option<OwnedFd>, StepError> {
        let rel = path.strip_prefix("/").unwrap_or(path);
        let resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
        let found = match &self.host {
            Host::Tree(t) => open_beneath_with(t, rel, libc::O_PATH | libc::O_DIRECTORY, resolve),
            Host::Attached => open_beneath_with(
                &open_dir(OLD_ROOT)?,
                rel,
                libc::O_PATH | libc::O_DIRECTORY,
                resolve,
            ),
        };
        let src = match found {
            Ok(fd) => fd,
            Err(libc::EACCES) => return Ok(None),
            Err(e) => return Err(changed(path, e)),
        };
        if !same_inode(&src, daemon_fd) {
            return Err(changed(path, libc::ESTALE));
        }
        let tree = clone_tree(src.as_raw_fd(), Path::new(""), true).map_err(|e| {
            StepError::io(
                Layer::Mounts,
                "open_tree workspace",
                io::Error::from_raw_os_error(e),
            )
        })?;
        let root = self.root_fd()?;
        let target = mount_point(&root, path, true)?;
        let mut set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        if !writable {
            set |= MOUNT_ATTR_RDONLY;
        }
        attach_at(&tree, &target, path, set)?;
        let bound = open_in_root(&root, path, true).map_err(|e| changed(path, e))?;
        if !same_inode(&bound, daemon_fd) {
            return Err(changed(path, libc::ESTALE));
        }
        Ok(Some(bound))
    }

    /// Make the root tmpfs and /dev read-only: nothing but the workspace, the private /tmp and the
    /// profile's read-write paths can be written.
    pub fn seal(&self, plan: &MountPlan) -> Result<(), StepError> {
        for op in &plan.ops {
            if let MountOp::Tmpfs {
                path, seal: true, ..
            } = op
            {
                mount_setattr(&under(self.root, path), 0, MOUNT_ATTR_RDONLY)?;
            }
        }
        Ok(())
    }

    /// Pivot into the root (if not there yet) and detach everything else: the staging tmpfs with
    /// the host's tree beneath it, or a warm root a rebuild replaced.
    pub fn enter(&mut self) -> Result<(), StepError> {
        if self.root == "/" {
            return Ok(());
        }
        chdir(self.root)?;
        // pivot_root(".", "."): the old root ends up stacked on the new one, and is detached
        // below (pivot_root(2), "NOTES").
        pivot_root(".", ".")?;
        umount_detach(".")?;
        chdir("/")?;
        self.root = "/";
        Ok(())
    }
}

/// The step of a workspace that is not, in the sandbox, the directory the daemon resolved: a
/// prepared sandbox older than a mount on the path reports it, so the daemon retries once in a
/// sandbox created now (`exec_session::run`).
pub const VERIFY_WORKSPACE: &str = "verify workspace";

fn changed(path: &Path, errno: i32) -> StepError {
    StepError::new(
        Layer::Mounts,
        VERIFY_WORKSPACE,
        errno,
        format!(
            "workspace {} changed while the sandbox was being set up ({})",
            path.display(),
            io::Error::from_raw_os_error(errno)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_made_without_following_symlinks() {
        let base = std::env::temp_dir().join(format!("sandboxd-mp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("root/x/sub")).unwrap();
        std::fs::create_dir_all(base.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(base.join("elsewhere"), base.join("root/x/lnk")).unwrap();
        std::os::unix::fs::symlink("sub", base.join("root/x/rel")).unwrap();
        let root: OwnedFd = std::fs::File::open(base.join("root")).unwrap().into();
        // Made where missing, directories and files.
        assert!(mount_point(&root, Path::new("/x/sub/bin"), true).is_ok());
        assert!(base.join("root/x/sub/bin").is_dir());
        assert!(mount_point(&root, Path::new("/x/sub/dev/null"), false).is_ok());
        assert!(base.join("root/x/sub/dev/null").is_file());
        // Through a symlink, absolute or relative, in the middle or at the end: refused, and
        // nothing made on the other side.
        for p in ["/x/lnk/bin", "/x/rel/bin2", "/x/lnk"] {
            let e = mount_point(&root, Path::new(p), true).unwrap_err();
            assert_eq!(e.errno, libc::ELOOP, "{p}: {e:?}");
            assert!(e.message.contains("symlink"), "{p}: {e:?}");
        }
        assert!(std::fs::read_dir(base.join("elsewhere"))
            .unwrap()
            .next()
            .is_none());
        assert!(!base.join("root/x/sub/bin2").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn paths_go_under_their_root() {
        assert_eq!(under(NEW_ROOT, Path::new("/")), PathBuf::from("/newroot"));
        assert_eq!(
            under(NEW_ROOT, Path::new("/usr/bin")),
            PathBuf::from("/newroot/usr/bin")
        );
        assert_eq!(under("/", Path::new("/usr/bin")), PathBuf::from("/usr/bin"));
        assert_eq!(
            under(OLD_ROOT, Path::new("/dev/null")),
            PathBuf::from("/oldroot/dev/null")
        );
    }
}

//! The raw `*at` syscalls the file operations use, as safe functions over a directory fd and one
//! NUL-terminated name (never a path: the directory fd was resolved beneath the workspace, and a
//! single component cannot leave it). The only `unsafe` code of fileops is here.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The fd as a `File` (owning it).
pub(super) fn file_of(fd: OwnedFd) -> File {
    File::from(fd)
}

/// `fstat(fd)`: the status of the open file itself (its device and inode, for the lock table).
pub(super) fn stat_fd(fd: &OwnedFd) -> io::Result<libc::stat> {
    // SAFETY: `fd` is borrowed from the caller's OwnedFd, so it stays open through the call and
    // is not closed here. `st` is a local `stat` (integers only, so all-zero bytes are valid)
    // that fstat fills; it lives through the call.
    let (r, st) = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        let r = libc::fstat(fd.as_raw_fd(), &mut st);
        (r, st)
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: the entry itself, a final symlink not followed.
pub(super) fn lstat_at(dir: &OwnedFd, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: `dir` is borrowed from the caller's OwnedFd, open through the call and not closed
    // here; `name` is a &CStr the caller keeps alive through the call, which the kernel reads up
    // to its NUL. `st` is a local `stat` (integers only, so all-zero bytes are valid) that
    // fstatat fills; it lives through the call.
    let (r, st) = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        let r = libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        );
        (r, st)
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// `mkdirat(dir, name, mode)`.
pub(super) fn mkdir_at(dir: &OwnedFd, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: `dir` is borrowed from the caller's OwnedFd, open through the call and not closed
    // here; `name` is a &CStr alive through the call, read by the kernel up to its NUL; nothing
    // of ours is written.
    let r = unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A new file `name` in `dir`, created for writing with `mode`; fails if anything is there
/// already (`O_CREAT | O_EXCL | O_NOFOLLOW`).
pub(super) fn create_new_at(dir: &OwnedFd, name: &CStr, mode: u32) -> io::Result<File> {
    // SAFETY: `dir` is borrowed from the caller's OwnedFd, open through the call and not closed
    // here; `name` is a &CStr alive through the call, read by the kernel up to its NUL; the
    // kernel writes nothing of ours and returns a new fd.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` (>= 0) was just returned by openat: open, and referenced by nothing else in
    // this process, so the File is its only owner and closes it once.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// `unlinkat(dir, name, 0)`.
pub(super) fn unlink_at(dir: &OwnedFd, name: &CStr) -> io::Result<()> {
    // SAFETY: `dir` is borrowed from the caller's OwnedFd, open through the call and not closed
    // here; `name` is a &CStr alive through the call, read by the kernel up to its NUL; nothing
    // of ours is written.
    let r = unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `unlinkat(dir, name, AT_REMOVEDIR)`: removes an empty directory (and only an empty one).
pub(super) fn rmdir_at(dir: &OwnedFd, name: &CStr) -> io::Result<()> {
    // SAFETY: as in `unlink_at`: `dir` borrowed and open through the call, `name` a &CStr alive
    // through it and only read; nothing of ours is written.
    let r = unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `renameat(dir, from, dir, to)`: a rename within one directory.
pub(super) fn rename_at(dir: &OwnedFd, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: `dir` (both directory arguments) is borrowed from the caller's OwnedFd, open
    // through the call and not closed here; `from` and `to` are &CStrs alive through the call,
    // read by the kernel up to their NULs; nothing of ours is written.
    let r = unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The subdirectory `name` of `dir`, opened for reading; a symlink is not followed (ELOOP or
/// ENOTDIR).
pub(super) fn open_subdir_at(dir: &OwnedFd, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: `dir` is borrowed from the caller's OwnedFd, open through the call and not closed
    // here; `name` is a &CStr alive through the call, read by the kernel up to its NUL; the
    // kernel writes nothing of ours and returns a new fd.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` (>= 0) was just returned by openat: open, and referenced by nothing else in
    // this process, so the OwnedFd is its only owner and closes it once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The directory itself, opened for reading (an `O_PATH` fd cannot be fsynced).
pub(super) fn open_dir_at(dir: &OwnedFd) -> io::Result<File> {
    crate::workspace::reopen_dir(std::os::fd::AsFd::as_fd(dir)).map(File::from)
}

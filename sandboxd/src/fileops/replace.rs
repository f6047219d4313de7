//! Where a write lands (the directory entry, resolved beneath the workspace, following a final
//! symlink only while it stays inside) and how it lands (temp file, fsync, rename, fsync the
//! directory). Shared by write_file and edit_file.

use super::at;
use super::errno::{io_err, map_errno};
use super::error::FileError;
use crate::workspace::open_beneath;
use std::ffi::{CString, OsStr, OsString};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

/// Where a write lands: the directory (as an fd resolved beneath the workspace) and the entry.
pub(super) struct Target {
    pub(super) dir: OwnedFd,
    pub(super) name: OsString,
    /// Mode of the file being replaced, None when it does not exist.
    pub(super) mode: Option<u32>,
    /// The parent directories this write created, outermost first.
    pub(super) created: CreatedDirs,
}

/// Directories a write created on its way to the file, each as (its parent's fd, its name),
/// outermost first. A write that fails removes them again ([`CreatedDirs::remove`]), so a failed
/// write_file leaves no trace; directories that were there before are never touched.
#[derive(Default)]
pub(super) struct CreatedDirs(Vec<(OwnedFd, CString)>);

impl CreatedDirs {
    /// Remove the created directories, innermost first. Only empty ones go (`rmdir`): one a
    /// concurrent write has put a file in meanwhile stays, and so do its parents.
    pub(super) fn remove(self) {
        for (parent, name) in self.0.into_iter().rev() {
            if at::rmdir_at(&parent, &name).is_err() {
                return;
            }
        }
    }
}

/// Resolve the directory entry a write replaces. An existing final symlink that stays inside the
/// workspace is followed (the file it names is replaced); one that leads out is refused.
pub(super) fn target(
    ws: &OwnedFd,
    ws_path: &Path,
    rel: &Path,
    shown: &str,
    create_parents: bool,
) -> Result<Target, FileError> {
    let Some(name) = rel.file_name().map(|n| n.to_os_string()) else {
        return Err(FileError::IsDir(shown.into()));
    };
    let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
    let (dir, created) = if create_parents {
        mkdirs_beneath(ws, &parent, shown)?
    } else {
        let dir = open_beneath(ws, &parent, libc::O_PATH | libc::O_DIRECTORY)
            .map_err(|e| map_errno(e, shown, "open parent"))?;
        (dir, CreatedDirs::default())
    };
    if !is_symlink_at(&dir, &name) {
        return match regular_mode_at(&dir, &name, shown) {
            Ok(mode) => Ok(Target {
                dir,
                name,
                mode,
                created,
            }),
            Err(e) => {
                created.remove();
                Err(e)
            }
        };
    }
    // A final symlink: let the kernel follow it beneath the workspace, then replace the file it
    // names, in that file's own directory.
    let fd = open_beneath(ws, rel, libc::O_PATH).map_err(|e| match e {
        libc::ENOENT => {
            FileError::NotFound(format!("{shown} (a symlink whose target does not exist)"))
        }
        e => map_errno(e, shown, "open"),
    })?;
    let real = crate::workspace::fd_path(&fd).ok_or_else(|| FileError::Io {
        path: shown.into(),
        step: "locate",
        err: "cannot read the resolved path".into(),
    })?;
    let ws_real = std::fs::canonicalize(ws_path).unwrap_or_else(|_| ws_path.into());
    let real_rel = real
        .strip_prefix(&ws_real)
        .map_err(|_| FileError::Outside(shown.into()))?;
    let (Some(rname), rparent) = (real_rel.file_name(), real_rel.parent()) else {
        return Err(FileError::IsDir(shown.into()));
    };
    let rdir = open_beneath(
        ws,
        rparent.unwrap_or(Path::new("")),
        libc::O_PATH | libc::O_DIRECTORY,
    )
    .map_err(|e| map_errno(e, shown, "open parent"))?;
    let rname = rname.to_os_string();
    if is_symlink_at(&rdir, &rname) {
        return Err(FileError::NotFile(shown.into()));
    }
    let mode = regular_mode_at(&rdir, &rname, shown)?;
    Ok(Target {
        dir: rdir,
        name: rname,
        mode,
        created,
    })
}

/// Mode of `name` in `dir` when it is a regular file, None when it does not exist.
fn regular_mode_at(dir: &OwnedFd, name: &OsStr, shown: &str) -> Result<Option<u32>, FileError> {
    let c = CString::new(name.as_encoded_bytes()).map_err(|_| FileError::Nul)?;
    let st = match at::lstat_at(dir, &c) {
        Ok(st) => st,
        Err(e) => {
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(None),
                _ => Err(io_err(shown, "stat", e)),
            }
        }
    };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Ok(Some(st.st_mode & 0o7777)),
        libc::S_IFDIR => Err(FileError::IsDir(shown.into())),
        _ => Err(FileError::NotFile(shown.into())),
    }
}

fn is_symlink_at(dir: &OwnedFd, name: &OsStr) -> bool {
    let Ok(c) = CString::new(name.as_encoded_bytes()) else {
        return false;
    };
    at::lstat_at(dir, &c).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
}

/// Open (creating as needed) each directory of `rel` beneath the workspace, one component at a
/// time, each step resolved by the kernel beneath the previous directory fd. Returns the
/// directories it created too; when a step fails, those are removed again before it returns.
fn mkdirs_beneath(
    ws: &OwnedFd,
    rel: &Path,
    shown: &str,
) -> Result<(OwnedFd, CreatedDirs), FileError> {
    match open_beneath(ws, rel, libc::O_PATH | libc::O_DIRECTORY) {
        Ok(fd) => return Ok((fd, CreatedDirs::default())),
        Err(libc::ENOENT) => {}
        Err(e) => return Err(map_errno(e, shown, "open parent")),
    }
    let mut created = CreatedDirs::default();
    match mkdirs_from(ws, rel, shown, &mut created) {
        Ok(fd) => Ok((fd, created)),
        Err(e) => {
            created.remove();
            Err(e)
        }
    }
}

/// The walk of [`mkdirs_beneath`], noting each directory it creates in `created`.
fn mkdirs_from(
    ws: &OwnedFd,
    rel: &Path,
    shown: &str,
    created: &mut CreatedDirs,
) -> Result<OwnedFd, FileError> {
    let mut cur = open_beneath(ws, Path::new(""), libc::O_PATH | libc::O_DIRECTORY)
        .map_err(|e| map_errno(e, shown, "open workspace"))?;
    for c in rel.components() {
        let Component::Normal(n) = c else {
            return Err(FileError::Outside(shown.into()));
        };
        let (next, made) = match open_beneath(&cur, Path::new(n), libc::O_PATH | libc::O_DIRECTORY)
        {
            Ok(fd) => (fd, None),
            Err(libc::ENOENT) => {
                let cn = CString::new(n.as_encoded_bytes()).map_err(|_| FileError::Nul)?;
                let made = match at::mkdir_at(&cur, &cn, 0o755) {
                    Ok(()) => Some(cn),
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => None,
                    Err(e) => return Err(io_err(shown, "mkdir", e)),
                };
                match open_beneath(&cur, Path::new(n), libc::O_PATH | libc::O_DIRECTORY) {
                    Ok(fd) => (fd, made),
                    Err(e) => {
                        if let Some(cn) = made {
                            created.0.push((cur, cn));
                        }
                        return Err(map_errno(e, shown, "open new directory"));
                    }
                }
            }
            Err(e) => return Err(map_errno(e, shown, "open parent")),
        };
        let parent = std::mem::replace(&mut cur, next);
        if let Some(cn) = made {
            created.0.push((parent, cn));
        }
    }
    Ok(cur)
}

static TMP_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Temp file in the target's directory, fsync, rename over the target, fsync the directory.
pub(super) fn replace_atomically(t: &Target, data: &[u8], shown: &str) -> Result<(), FileError> {
    let n = TMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // The temp name keeps only the start of the file's name, so a name near NAME_MAX (255
    // bytes) still gets a temp file beside it.
    let name = t.name.to_string_lossy();
    let keep = name
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .take_while(|&end| end <= 64)
        .last()
        .unwrap_or(0);
    let tmp_name = format!(".{}.nanobot-tmp-{}-{n}", &name[..keep], std::process::id());
    let tmp_c = CString::new(tmp_name.as_bytes()).map_err(|_| FileError::Nul)?;
    let name_c = CString::new(t.name.as_encoded_bytes()).map_err(|_| FileError::Nul)?;
    let mode = t.mode.unwrap_or(0o644);
    let mut f = at::create_new_at(&t.dir, &tmp_c, mode)
        .map_err(|e| io_err(shown, "create temp file", e))?;
    let unlink_tmp = || {
        let _ = at::unlink_at(&t.dir, &tmp_c);
    };
    let written = f
        .write_all(data)
        .and_then(|_| f.set_permissions(std::fs::Permissions::from_mode(mode)))
        .and_then(|_| f.sync_all());
    if let Err(e) = written {
        unlink_tmp();
        return Err(io_err(shown, "write", e));
    }
    drop(f);
    if let Err(e) = at::rename_at(&t.dir, &tmp_c, &name_c) {
        unlink_tmp();
        return Err(io_err(shown, "rename", e));
    }
    // The rename is durable once the directory is.
    if let Ok(d) = at::open_dir_at(&t.dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(name: &str) -> (std::path::PathBuf, OwnedFd) {
        let d =
            std::env::temp_dir().join(format!("sandboxd-replace-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("old")).unwrap();
        let fd = std::fs::File::open(&d).unwrap().into();
        (d, fd)
    }

    #[test]
    fn only_empty_created_directories_are_removed() {
        let (d, fd) = ws("rmdir");
        let (dir, created) = mkdirs_beneath(&fd, Path::new("x/y/z"), "p").unwrap();
        drop(dir);
        assert_eq!(created.0.len(), 3);
        // Something else landed in x/y meanwhile: z goes, x/y stay.
        std::fs::write(d.join("x/y/other"), "o").unwrap();
        created.remove();
        assert!(!d.join("x/y/z").exists());
        assert!(d.join("x/y/other").is_file());
        let _ = std::fs::remove_dir_all(&d);
    }
}

//! list_dir: a directory's entries, sorted by name, capped.

use super::errno::{io_err, map_errno};
use super::error::FileError;
use super::limits::FileLimits;
use crate::workspace::open_beneath;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// One name in a listed directory and what it is ("file", "dir", …).
pub struct DirEntry {
    pub name: String,
    pub kind: &'static str,
}

pub fn list_dir(
    ws: &OwnedFd,
    rel: &Path,
    shown: &str,
    lim: FileLimits,
) -> Result<(Vec<DirEntry>, u32), FileError> {
    let fd = open_beneath(ws, rel, libc::O_RDONLY | libc::O_DIRECTORY)
        .map_err(|e| map_errno(e, shown, "open"))?;
    let rd = std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| io_err(shown, "read directory", e))?;
    let mut all: Vec<DirEntry> = vec![];
    for e in rd {
        let e = e.map_err(|e| io_err(shown, "read directory", e))?;
        let kind = match e.file_type() {
            Ok(t) if t.is_dir() => "dir",
            Ok(t) if t.is_file() => "file",
            Ok(t) if t.is_symlink() => "symlink",
            _ => "other",
        };
        all.push(DirEntry {
            name: e.file_name().to_string_lossy().into_owned(),
            kind,
        });
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let total = all.len() as u32;
    all.truncate(lim.list_max_entries);
    Ok((all, total))
}

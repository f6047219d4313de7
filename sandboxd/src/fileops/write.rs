//! write_file: replace (or create) a file's whole content, atomically.

use super::error::FileError;
use super::limits::FileLimits;
use super::lock::stripe;
use super::replace::{replace_atomically, target};
use std::os::fd::OwnedFd;
use std::path::Path;

pub struct WriteOut {
    pub bytes: u64,
    pub created: bool,
}

pub fn write_file(
    ws: &OwnedFd,
    ws_path: &Path,
    rel: &Path,
    shown: &str,
    content: &str,
    lim: FileLimits,
) -> Result<WriteOut, FileError> {
    if content.len() > lim.write_max_bytes {
        return Err(FileError::TooLarge {
            path: shown.into(),
            size: content.len() as u64,
            limit: lim.write_max_bytes as u64,
            hint: "split the content into several files",
        });
    }
    if rel.as_os_str().is_empty() {
        return Err(super::path::not_a_file(shown));
    }
    let t = target(ws, ws_path, rel, shown, true)?;
    let _g = stripe(&t.dir, &t.name)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let created = t.mode.is_none();
    let room = match lim.workspace_ceiling {
        Some(ceiling) => {
            super::usage::check(ws, ceiling, old_size(&t), content.len() as u64, shown)
        }
        None => Ok(()),
    };
    if let Err(e) = room.and_then(|()| replace_atomically(&t, content.as_bytes(), shown)) {
        // A failed write leaves no trace: not the temp file, nor the directories made for it.
        drop(_g);
        t.created.remove();
        return Err(e);
    }
    Ok(WriteOut {
        bytes: content.len() as u64,
        created,
    })
}

/// The size of the file a write replaces (0: none).
pub(super) fn old_size(t: &super::replace::Target) -> u64 {
    if t.mode.is_none() {
        return 0;
    }
    std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(t.name.as_os_str()))
        .ok()
        .and_then(|n| super::at::lstat_at(&t.dir, &n).ok())
        .map_or(0, |st| st.st_size.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(name: &str) -> (std::path::PathBuf, OwnedFd) {
        let d = std::env::temp_dir().join(format!("sandboxd-write-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("old")).unwrap();
        let fd = std::fs::File::open(&d).unwrap().into();
        (d, fd)
    }

    const LIM: FileLimits = FileLimits {
        workspace_ceiling: None,
        read_max_chars: 1000,
        write_max_bytes: 1 << 20,
        list_max_entries: 100,
    };

    #[test]
    fn a_failed_write_removes_the_directories_it_created_and_only_those() {
        let (d, fd) = ws("mkdirs");
        // `new/a/b` are made, then the next name is too long (ENAMETOOLONG): all three go again,
        // `old`, which was there before, stays.
        let long = "n".repeat(300);
        let rel = std::path::PathBuf::from(format!("old/new/a/b/{long}/f.txt"));
        let e = write_file(&fd, &d, &rel, "p", "x", LIM).err();
        assert_eq!(e, Some(FileError::NameTooLong("p".into())));
        assert!(d.join("old").is_dir());
        assert!(!d.join("old/new").exists(), "the created chain is removed");
        // A file name near NAME_MAX still gets its temp file beside it.
        let rel = std::path::PathBuf::from(format!("old/new/{}", "m".repeat(250)));
        write_file(&fd, &d, &rel, "p", "x", LIM).unwrap();
        assert_eq!(std::fs::read_to_string(d.join(&rel)).unwrap(), "x");
        let _ = std::fs::remove_dir_all(&d);
    }
}

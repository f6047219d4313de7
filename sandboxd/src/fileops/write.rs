//! write_file: replace (or create) a file's whole content, atomically.

use super::error::FileError;
use super::limits::Limits;
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
    lim: Limits,
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
    replace_atomically(&t, content.as_bytes(), shown)?;
    Ok(WriteOut {
        bytes: content.len() as u64,
        created: t.mode.is_none(),
    })
}

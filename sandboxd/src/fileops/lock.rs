//! The per-entry lock table: writers of one directory entry take its lock, so concurrent edits
//! of a file never lose an update.

use super::at::stat_fd;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

/// Serializes writers of one directory entry so concurrent edits never lose an update. Striped:
/// two files may share a stripe, which only costs a little waiting.
static STRIPES: [Mutex<()>; 64] = [const { Mutex::new(()) }; 64];

pub(super) fn stripe(dir: &OwnedFd, name: &std::ffi::OsStr) -> &'static Mutex<()> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if let Ok(st) = stat_fd(dir) {
        (st.st_dev, st.st_ino).hash(&mut h);
    }
    name.hash(&mut h);
    &STRIPES[(h.finish() % STRIPES.len() as u64) as usize]
}

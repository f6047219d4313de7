//! The per-entry lock table: writers of one directory entry take its lock, so concurrent edits
//! of a file never lose an update.

use super::at::file_of_ref;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

/// Serializes writers of one directory entry so concurrent edits never lose an update. Striped:
/// two files may share a stripe, which only costs a little waiting.
static STRIPES: [Mutex<()>; 64] = [const { Mutex::new(()) }; 64];

pub(super) fn stripe(dir: &OwnedFd, name: &std::ffi::OsStr) -> &'static Mutex<()> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if let Ok(md) = file_of_ref(dir).metadata() {
        (md.dev(), md.ino()).hash(&mut h);
    }
    name.hash(&mut h);
    &STRIPES[(h.finish() % STRIPES.len() as u64) as usize]
}

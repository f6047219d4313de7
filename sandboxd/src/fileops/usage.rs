//! The workspace's ceiling for file calls under the write budget (`crate::disk`: the workspace's
//! filesystem offers none): before a write, the bytes the workspace holds (the sizes of its
//! regular files, found by a walk beneath the workspace fd that follows no symlink and is bounded
//! in entries and time), and the rule: a write that would bring them past the ceiling is refused.
//! Under a btrfs qgroup the filesystem refuses by itself (EDQUOT).

use super::at::{lstat_at, open_subdir_at};
use super::error::FileError;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A walk stops (and the write is refused) past this many entries...
pub const MAX_ENTRIES: u64 = 200_000;
/// ...or after this long.
pub const MAX_TIME: Duration = Duration::from_secs(5);

/// The rule: may a file of `old` bytes become one of `new` bytes in a workspace holding `holds`
/// bytes (`old` among them) under `ceiling`? A write that does not grow the file always may (it
/// never makes things worse); one that grows it may while the total stays within the ceiling.
pub fn fits(holds: u64, ceiling: u64, old: u64, new: u64) -> bool {
    new <= old || holds.saturating_sub(old).saturating_add(new) <= ceiling
}

/// Refuse (nothing written yet) a write of `new` bytes over an entry of `old` bytes when the
/// workspace `ws` would then hold more than `ceiling`.
pub(super) fn check(
    ws: &OwnedFd,
    ceiling: u64,
    old: u64,
    new: u64,
    shown: &str,
) -> Result<(), FileError> {
    if new <= old {
        return Ok(());
    }
    let holds = held(ws, MAX_ENTRIES, MAX_TIME).map_err(|why| FileError::UsageUnknown {
        path: shown.into(),
        why,
    })?;
    if fits(holds, ceiling, old, new) {
        Ok(())
    } else {
        Err(FileError::WorkspaceFull {
            path: shown.into(),
            holds,
            ceiling,
            size: new,
        })
    }
}

/// The sum of the sizes of the regular files beneath `ws`, or why it could not be had.
pub fn held(ws: &OwnedFd, max_entries: u64, max_time: Duration) -> Result<u64, String> {
    let t0 = Instant::now();
    let mut total: u64 = 0;
    let mut entries: u64 = 0;
    // Directories still to read: their parent's fd and their name (None: the workspace itself).
    // Depth first, so few fds are open at once.
    let root = Rc::new(ws.try_clone().map_err(|e| format!("dup: {e}"))?);
    let mut todo: Vec<(Rc<OwnedFd>, Option<CString>)> = vec![(root, None)];
    while let Some((parent, name)) = todo.pop() {
        let dir = match name {
            None => parent,
            Some(n) => Rc::new(
                open_subdir_at(&parent, &n)
                    .map_err(|e| format!("opening {}: {e}", n.to_string_lossy()))?,
            ),
        };
        let rd = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))
            .map_err(|e| format!("reading a directory: {e}"))?;
        for ent in rd {
            let ent = ent.map_err(|e| format!("reading a directory: {e}"))?;
            entries += 1;
            if entries > max_entries {
                return Err(format!("it has more than {max_entries} entries"));
            }
            if t0.elapsed() > max_time {
                return Err(format!(
                    "counting took longer than {} s",
                    max_time.as_secs()
                ));
            }
            let n = CString::new(ent.file_name().as_bytes())
                .map_err(|e| format!("a name with NUL: {e}"))?;
            let st = match lstat_at(&dir, &n) {
                Ok(st) => st,
                // Removed since it was listed: it holds nothing.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(format!("stat {}: {e}", n.to_string_lossy())),
            };
            match st.st_mode & libc::S_IFMT {
                libc::S_IFREG => total = total.saturating_add(st.st_size.max(0) as u64),
                libc::S_IFDIR => todo.push((dir.clone(), Some(n))),
                _ => {}
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_write_fits_while_the_total_stays_within_the_ceiling() {
        // Three 6 MiB files under 16 MiB: the first two fit, the third does not.
        assert!(fits(0, 16 * MIB, 0, 6 * MIB));
        assert!(fits(6 * MIB, 16 * MIB, 0, 6 * MIB));
        assert!(!fits(12 * MIB, 16 * MIB, 0, 6 * MIB));
        // Exactly at the ceiling fits.
        assert!(fits(10 * MIB, 16 * MIB, 0, 6 * MIB));
    }

    #[test]
    fn an_overwrite_counts_only_the_difference() {
        // 12 MiB held, 6 of them the file: rewriting it with 6 or 10 MiB fits, 11 does not.
        assert!(fits(12 * MIB, 16 * MIB, 6 * MIB, 6 * MIB));
        assert!(fits(12 * MIB, 16 * MIB, 6 * MIB, 10 * MIB));
        assert!(!fits(12 * MIB, 16 * MIB, 6 * MIB, 11 * MIB));
    }

    #[test]
    fn shrinking_is_allowed_even_over_the_ceiling() {
        assert!(fits(20 * MIB, 16 * MIB, 8 * MIB, MIB));
        assert!(!fits(20 * MIB, 16 * MIB, 8 * MIB, 9 * MIB));
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("usage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        d
    }

    fn open(d: &std::path::Path) -> OwnedFd {
        std::fs::File::open(d).unwrap().into()
    }

    #[test]
    fn the_walk_sums_regular_files_and_follows_no_symlink() {
        let d = tmp("sum");
        std::fs::write(d.join("f"), vec![0u8; 1000]).unwrap();
        std::fs::write(d.join("a/b/g"), vec![0u8; 234]).unwrap();
        std::os::unix::fs::symlink("/usr", d.join("a/usr")).unwrap();
        assert_eq!(held(&open(&d), 100, MAX_TIME), Ok(1234));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn too_many_entries_is_an_answer_not_a_guess() {
        let d = tmp("many");
        for i in 0..10 {
            std::fs::write(d.join(format!("f{i}")), b"x").unwrap();
        }
        let e = held(&open(&d), 5, MAX_TIME).unwrap_err();
        assert!(e.contains("more than 5 entries"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}

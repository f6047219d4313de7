//! Unix file permissions as the kernel checks them for the sandbox's user: the layer under
//! Landlock and the mounts that `sandboxd explain` must account for too (`/etc/shadow` is readable
//! by Landlock's rules but not by its mode). Pure: callers pass the modes they read.
//!
//! The sandbox user has no supplementary groups (sandboxd drops them with setgroups(0) before it
//! serves, and the sandbox's user namespace denies setgroups), so its uid and primary gid decide.

/// Owner, group and mode bits of one file or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub uid: u32,
    pub gid: u32,
    /// st_mode's permission bits (0o7777 is enough).
    pub mode: u32,
}

/// What is asked of the final object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
    Exec,
}

const R: u32 = 4;
const W: u32 = 2;
const X: u32 = 1;

/// The rwx bits that apply to `(uid, gid)` on `m`: owner's, else group's, else others'.
fn bits(m: &Mode, uid: u32, gid: u32) -> u32 {
    if m.uid == uid {
        (m.mode >> 6) & 7
    } else if m.gid == gid {
        (m.mode >> 3) & 7
    } else {
        m.mode & 7
    }
}

/// Why the permissions refuse, or Ok. `parents`: the directories walked to reach the object (each
/// needs search, x); `object`: the file or directory itself. For creating, pass the parent
/// directory as `object` with `Need::Write` (creating needs w and x on it).
pub fn check(
    uid: u32,
    gid: u32,
    parents: &[(std::path::PathBuf, Mode)],
    object: &Mode,
    need: Need,
    is_dir: bool,
) -> Result<(), String> {
    for (p, m) in parents {
        if bits(m, uid, gid) & X == 0 {
            return Err(format!(
                "{} is mode {:o} owned by {}:{}: no search (x) permission for uid {uid} gid {gid}",
                p.display(),
                m.mode & 0o7777,
                m.uid,
                m.gid
            ));
        }
    }
    let have = bits(object, uid, gid);
    let want = match need {
        Need::Read if is_dir => R | X,
        Need::Read => R,
        Need::Write if is_dir => W | X,
        Need::Write => W,
        Need::Exec => X,
    };
    if have & want != want {
        return Err(format!(
            "mode {:o} owned by {}:{} gives uid {uid} gid {gid} {}, not {}",
            object.mode & 0o7777,
            object.uid,
            object.gid,
            rwx(have),
            rwx(want)
        ));
    }
    Ok(())
}

fn rwx(b: u32) -> String {
    let mut s = String::new();
    for (bit, c) in [(R, 'r'), (W, 'w'), (X, 'x')] {
        s.push(if b & bit != 0 { c } else { '-' });
    }
    s
}

/// Read a path's owner and mode from the host.
pub fn mode_of(p: &std::path::Path) -> Option<Mode> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| Mode {
        uid: m.uid(),
        gid: m.gid(),
        mode: m.mode(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(uid: u32, gid: u32, mode: u32) -> Mode {
        Mode { uid, gid, mode }
    }

    #[test]
    fn shadow_is_unreadable_and_passwd_readable() {
        let etc = vec![("/etc".into(), m(0, 0, 0o755))];
        let shadow = m(0, 42, 0o640);
        let e = check(999, 999, &etc, &shadow, Need::Read, false).unwrap_err();
        assert!(e.contains("640") && e.contains("---"), "{e}");
        assert!(check(999, 42, &etc, &shadow, Need::Read, false).is_ok());
        assert!(check(999, 999, &etc, &m(0, 0, 0o644), Need::Read, false).is_ok());
        assert!(check(999, 999, &etc, &m(0, 0, 0o644), Need::Write, false).is_err());
    }

    #[test]
    fn owner_bits_win_even_when_others_have_more() {
        // Linux checks the owner class alone when the uid matches.
        let f = m(7, 7, 0o047);
        assert!(check(7, 7, &[], &f, Need::Read, false).is_err());
        assert!(check(8, 9, &[], &f, Need::Read, false).is_ok());
    }

    #[test]
    fn parents_need_search_and_dirs_need_x() {
        let parents = vec![("/srv".into(), m(0, 0, 0o700))];
        let e = check(5, 5, &parents, &m(5, 5, 0o755), Need::Read, true).unwrap_err();
        assert!(e.contains("/srv") && e.contains("search"), "{e}");
        assert!(check(5, 5, &[], &m(5, 5, 0o600), Need::Read, true).is_err());
        assert!(check(5, 5, &[], &m(5, 5, 0o700), Need::Write, true).is_ok());
        assert!(check(5, 5, &[], &m(0, 0, 0o755), Need::Exec, false).is_ok());
    }
}

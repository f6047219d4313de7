//! Peer authentication on the Unix socket by SO_PEERCRED.

use std::os::unix::fs::MetadataExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
}

/// Which peers may connect to the socket (the `allow_uids`/`allow_gids` of the config, fixed
/// until a restart), and what the daemon knows of itself to tell a sandboxed peer from a real one.
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    pub allow_uids: Vec<u32>,
    pub allow_gids: Vec<u32>,
    /// The daemon's own uid: sandboxed commands run as it, so its peers get the namespace check.
    pub daemon_uid: u32,
    /// Inode of the daemon's user namespace.
    pub daemon_userns: Option<u64>,
}

/// SO_PEERGROUPS (asm-generic, Linux 4.13+).
const SO_PEERGROUPS: libc::c_int = 59;

/// The connecting process's supplementary groups as the kernel recorded them at connect time
/// (race-free, and readable under systemd's ProtectProc=invisible, unlike /proc/PID/status).
pub fn peer_groups(fd: std::os::fd::RawFd) -> Option<Vec<u32>> {
    let mut buf = vec![0 as libc::gid_t; 64];
    for _ in 0..2 {
        let mut len = (buf.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into our buffer and updates `len`.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                buf.as_mut_ptr() as *mut libc::c_void,
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if r == 0 {
            buf.truncate(n);
            return Some(buf);
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) {
            return None;
        }
        buf.resize(n.max(buf.len() * 2), 0);
    }
    None
}

/// Supplementary groups of a process, from /proc/PID/status: the fallback when SO_PEERGROUPS is
/// not available.
pub fn groups_of(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Groups:").map(|g| {
                    g.split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect()
                })
            })
        })
        .unwrap_or_default()
}

pub fn userns_of(pid: &str) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/user"))
        .ok()
        .map(|m| m.ino())
}

impl PeerPolicy {
    /// Ok, or the reason the peer is refused.
    pub fn check(&self, peer: Peer, groups: &[u32]) -> Result<(), String> {
        let uid_ok = if self.allow_uids.is_empty() && self.allow_gids.is_empty() {
            peer.uid == self.daemon_uid
        } else {
            self.allow_uids.contains(&peer.uid)
        };
        let gid_ok = || {
            self.allow_gids.contains(&peer.gid)
                || groups.iter().any(|g| self.allow_gids.contains(g))
        };
        if !uid_ok && !gid_ok() {
            return Err(format!(
                "uid {} (gid {}) is not in allow_uids/allow_gids",
                peer.uid, peer.gid
            ));
        }
        // Sandboxed commands run as the daemon's uid inside their own user namespace: a peer with
        // that uid must be in the daemon's namespace, or it is a sandbox trying to reach us.
        if peer.uid == self.daemon_uid {
            match (userns_of(&peer.pid.to_string()), self.daemon_userns) {
                (Some(p), Some(d)) if p == d => {}
                (Some(_), Some(_)) => {
                    return Err("the peer runs inside a sandbox (another user namespace)".into())
                }
                _ => return Err("the peer's user namespace cannot be verified".into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Peer {
        // SAFETY: getuid/getgid/getpid have no preconditions.
        unsafe {
            Peer {
                uid: libc::getuid(),
                gid: libc::getgid(),
                pid: libc::getpid(),
            }
        }
    }

    #[test]
    fn default_allows_own_uid_only() {
        let p = PeerPolicy {
            allow_uids: vec![],
            allow_gids: vec![],
            daemon_uid: me().uid,
            daemon_userns: userns_of("self"),
        };
        assert!(p.check(me(), &[]).is_ok());
        let other = Peer {
            uid: me().uid + 1,
            ..me()
        };
        assert!(p
            .check(other, &[])
            .unwrap_err()
            .contains("not in allow_uids"));
    }

    #[test]
    fn gid_allows_and_foreign_userns_is_refused() {
        let p = PeerPolicy {
            allow_uids: vec![],
            allow_gids: vec![4242],
            daemon_uid: 99999,
            daemon_userns: userns_of("self"),
        };
        let five = |gid| Peer {
            uid: 5,
            gid,
            pid: me().pid,
        };
        assert!(p.check(five(4242), &[]).is_ok());
        assert!(p.check(five(7), &[]).is_err());
        // A supplementary group (as SO_PEERGROUPS reports it) is enough.
        assert!(p.check(five(7), &[100, 4242]).is_ok());
        let p = PeerPolicy {
            allow_uids: vec![me().uid],
            allow_gids: vec![],
            daemon_uid: me().uid,
            daemon_userns: Some(1),
        };
        assert!(p.check(me(), &[]).unwrap_err().contains("inside a sandbox"));
    }
}

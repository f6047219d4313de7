//! With `markSeen: false` the mailbox keeps its unread marks, so the channel remembers which
//! messages it has handled: their UIDs, valid only with the mailbox's UIDVALIDITY, in a file
//! under ~/.nanobot/email/ written atomically (0600).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SeenUids {
    pub uid_validity: u32,
    pub uids: BTreeSet<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum SeenError {
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("{path}: not a seen-UID file ({err}); move it away to start afresh")]
    Corrupt {
        path: String,
        err: serde_json::Error,
    },
}

pub struct Store {
    path: PathBuf,
}

/// What to do with the set when the mailbox is opened.
#[derive(Debug, PartialEq)]
pub enum Opened {
    /// Same mailbox as last time (or the first run): go on.
    Same(SeenUids),
    /// The server renumbered the mailbox: the old UIDs mean nothing now.
    Renumbered(SeenUids),
}

impl Store {
    /// One file per account and mailbox.
    pub fn new(dir: &Path, account: &str) -> Store {
        let name: String = account
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "@.-_".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Store {
            path: dir.join(format!("seen-{name}.json")),
        }
    }

    pub fn open(&self, uid_validity: u32) -> Result<Opened, SeenError> {
        let shown = self.path.display().to_string();
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Opened::Same(SeenUids {
                    uid_validity,
                    uids: BTreeSet::new(),
                }))
            }
            Err(err) => return Err(SeenError::Io { path: shown, err }),
        };
        let s: SeenUids =
            serde_json::from_str(&text).map_err(|err| SeenError::Corrupt { path: shown, err })?;
        if s.uid_validity == uid_validity {
            Ok(Opened::Same(s))
        } else {
            Ok(Opened::Renumbered(SeenUids {
                uid_validity,
                uids: BTreeSet::new(),
            }))
        }
    }

    pub fn save(&self, s: &SeenUids) -> Result<(), SeenError> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let io = |err| SeenError::Io {
            path: self.path.display().to_string(),
            err,
        };
        if let Some(d) = self.path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)
                .map_err(io)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        let text = serde_json::to_vec(s).map_err(|e| io(std::io::Error::other(e)))?;
        f.write_all(&text).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

impl SeenUids {
    /// Forget UIDs that are no longer unseen (read by a person, or deleted): the set stays as
    /// small as the unread part of the mailbox.
    pub fn prune(&mut self, unseen: &[u32]) {
        let now: BTreeSet<u32> = unseen.iter().copied().collect();
        self.uids.retain(|u| now.contains(u));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_persist_per_uidvalidity() {
        let dir = std::env::temp_dir().join(format!("nanobot-seen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let st = Store::new(&dir, "bot@imap.example.com:143/INBOX");
        let Opened::Same(mut s) = st.open(7).unwrap() else {
            panic!("first open")
        };
        s.uids.extend([3, 5, 9]);
        st.save(&s).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&st.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(st.open(7).unwrap(), Opened::Same(s));
        let Opened::Renumbered(r) = st.open(8).unwrap() else {
            panic!("renumbered")
        };
        assert!(r.uids.is_empty() && r.uid_validity == 8);
        std::fs::write(&st.path, "garbage").unwrap();
        assert!(st.open(7).unwrap_err().to_string().contains("move it away"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn prune_keeps_only_still_unseen() {
        let mut s = SeenUids {
            uid_validity: 1,
            uids: [1, 2, 3].into(),
        };
        s.prune(&[2, 3, 4]);
        assert_eq!(s.uids, [2, 3].into());
    }
}

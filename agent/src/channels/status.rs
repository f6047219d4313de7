//! What the running gateway tells `nanobot channels status`: a small JSON file next to the config
//! (`gateway-status.json`, 0600), rewritten whenever a channel connects, disconnects or fails, and
//! at least every `HEARTBEAT` so a reader can tell a live gateway from a dead one's leftovers.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const FILE_NAME: &str = "gateway-status.json";
/// How often the gateway rewrites the file while nothing changes.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// A file not rewritten for this long belongs to a gateway that is gone.
pub const STALE_AFTER: Duration = Duration::from_secs(35);

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ChannelState {
    pub connected: bool,
    /// Gave up for good; the gateway runs on without this channel.
    pub failed: bool,
    pub last_error: Option<String>,
    /// Seconds since the epoch of `last_error`.
    pub last_error_at: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Snapshot {
    pub pid: u32,
    pub updated_at: u64,
    /// Set by a gateway that stopped cleanly.
    pub stopped: bool,
    pub channels: BTreeMap<String, ChannelState>,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The gateway's side: the channels' state, written through to the file on every change.
pub struct Board {
    path: Option<PathBuf>,
    snap: Mutex<Snapshot>,
}

impl Board {
    pub fn new(path: Option<PathBuf>, channels: &[String]) -> Arc<Board> {
        let snap = Snapshot {
            pid: std::process::id(),
            updated_at: now(),
            stopped: false,
            channels: channels
                .iter()
                .map(|n| (n.clone(), ChannelState::default()))
                .collect(),
        };
        let b = Arc::new(Board {
            path,
            snap: Mutex::new(snap),
        });
        b.update(|_| {});
        b
    }

    pub fn reporter(self: &Arc<Board>, channel: &str) -> Reporter {
        Reporter {
            board: self.clone(),
            channel: channel.to_string(),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        self.snap.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Rewrite the file with nothing changed, so readers see the gateway is alive.
    pub fn touch(&self) {
        self.update(|_| {});
    }

    pub fn stopped(&self) {
        self.update(|s| {
            s.stopped = true;
            for c in s.channels.values_mut() {
                c.connected = false;
            }
        });
    }

    fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        // The file is written under the lock: written outside it, a heartbeat's older copy could
        // land after a newer one (a channel shown "not connected" until the next heartbeat), and
        // two writers would share the temporary file.
        let Ok(mut s) = self.snap.lock() else { return };
        f(&mut s);
        s.updated_at = now();
        if let Some(p) = &self.path {
            if let Err(e) = write_atomic(p, &s) {
                tracing::warn!("cannot write {}: {e}", p.display());
            }
        }
    }
}

/// One channel's handle on the board.
#[derive(Clone)]
pub struct Reporter {
    board: Arc<Board>,
    channel: String,
}

impl Reporter {
    pub fn connected(&self, yes: bool) {
        let changed = self
            .board
            .snapshot()
            .channels
            .get(&self.channel)
            .is_none_or(|c| c.connected != yes);
        if changed {
            self.board.update(|s| {
                s.channels
                    .entry(self.channel.clone())
                    .or_default()
                    .connected = yes;
            });
        }
    }

    pub fn error(&self, msg: &str) {
        self.board.update(|s| {
            let c = s.channels.entry(self.channel.clone()).or_default();
            c.last_error = Some(msg.to_string());
            c.last_error_at = Some(now());
        });
    }

    /// The channel gave up for good.
    pub fn failed(&self, msg: &str) {
        self.board.update(|s| {
            let c = s.channels.entry(self.channel.clone()).or_default();
            c.connected = false;
            c.failed = true;
            c.last_error = Some(msg.to_string());
            c.last_error_at = Some(now());
        });
    }
}

fn write_atomic(path: &Path, snap: &Snapshot) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(snap).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// What a reader makes of the file.
#[derive(Debug, PartialEq)]
pub enum Seen {
    Running(Snapshot),
    /// Absent, stopped, stale or its process gone; the last snapshot when there was one.
    NotRunning(Option<Snapshot>),
    /// The file is there but cannot be read (another user's gateway): nothing is known.
    Unreadable(String),
}

pub fn read(path: &Path) -> Seen {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Seen::NotRunning(None),
        Err(e) => return Seen::Unreadable(format!("cannot read {}: {e}", path.display())),
    };
    let Ok(snap) = serde_json::from_str::<Snapshot>(&text) else {
        return Seen::NotRunning(None);
    };
    if live(&snap, now()) {
        Seen::Running(snap)
    } else {
        Seen::NotRunning(Some(snap))
    }
}

fn live(snap: &Snapshot, now: u64) -> bool {
    !snap.stopped
        && now.saturating_sub(snap.updated_at) <= STALE_AFTER.as_secs()
        && process_exists(snap.pid)
}

fn process_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists; nothing is delivered.
    let r = unsafe { libc::kill(pid, 0) };
    // EPERM: it exists but belongs to someone else (a gateway run by the service user).
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_follows_the_channels_and_goes_stale() {
        let dir = std::env::temp_dir().join(format!("nanobot-status-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(FILE_NAME);
        let b = Board::new(Some(p.clone()), &["whatsapp".into(), "telegram".into()]);
        let r = b.reporter("whatsapp");
        r.connected(true);
        r.error("bridge closed the connection");
        let Seen::Running(s) = read(&p) else {
            panic!("not running")
        };
        assert!(s.channels["whatsapp"].connected);
        assert_eq!(
            s.channels["whatsapp"].last_error.as_deref(),
            Some("bridge closed the connection")
        );
        assert!(!s.channels["telegram"].connected);
        b.reporter("telegram").failed("bad token");
        assert!(matches!(read(&p), Seen::Running(s) if s.channels["telegram"].failed));
        // Old, stopped, or from a process that is gone: not running.
        let mut s = b.snapshot();
        assert!(live(&s, s.updated_at + 5));
        assert!(!live(&s, s.updated_at + 60));
        s.pid = 0;
        assert!(!live(&s, s.updated_at));
        b.stopped();
        assert!(matches!(read(&p), Seen::NotRunning(Some(_))));
        std::fs::write(&p, "garbage").unwrap();
        assert_eq!(read(&p), Seen::NotRunning(None));
        // Unreadable (here: a directory in its place; for a real reader, another user's 0600
        // file) is not "not running": nothing is known.
        std::fs::remove_file(&p).unwrap();
        std::fs::create_dir(&p).unwrap();
        assert!(matches!(read(&p), Seen::Unreadable(e) if e.contains("cannot read")));
        std::fs::remove_file(dir.join("absent")).unwrap_err();
        assert_eq!(read(&dir.join("absent")), Seen::NotRunning(None));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! A home directory for the unprivileged test user, and `nanobot` run as that user in it: what the
//! agent, channel and first-hour tests share. Each test file adds its own environment and
//! arguments on top of [`UserHome::command`].

use crate::{bin, chown, is_root, test_ids};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// `/var/tmp/nanobot-e2e-{kind}-{tag}-{pid}`, owned by the test user (0755), removed on drop.
pub struct UserHome {
    pub dir: PathBuf,
}

impl UserHome {
    /// A home with `~/.nanobot` (0700), as `nanobot onboard` leaves it.
    pub fn new(kind: &str, tag: &str) -> UserHome {
        let h = UserHome::bare(kind, tag);
        h.make_dot();
        h
    }

    /// A home with nothing in it, as a new user's.
    pub fn bare(kind: &str, tag: &str) -> UserHome {
        let (uid, gid) = test_ids();
        let dir = PathBuf::from(format!(
            "/var/tmp/nanobot-e2e-{kind}-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        chown(&dir, uid, gid);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        UserHome { dir }
    }

    /// `~/.nanobot`.
    pub fn dot(&self) -> PathBuf {
        self.dir.join(".nanobot")
    }

    fn make_dot(&self) {
        let (uid, gid) = test_ids();
        let dot = self.dot();
        std::fs::create_dir_all(&dot).unwrap();
        chown(&dot, uid, gid);
        std::fs::set_permissions(&dot, std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    /// `~/.nanobot/config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.dot().join("config.json")
    }

    /// Write `~/.nanobot/config.json` (0600, the user's), making `~/.nanobot` when missing.
    pub fn write_config(&self, text: &str) {
        let (uid, gid) = test_ids();
        self.make_dot();
        let p = self.config_path();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        chown(&p, uid, gid);
    }

    /// `nanobot ARGS…` as the test user (never root) with this home: a clean environment with
    /// only PATH and HOME, stdin from /dev/null.
    pub fn command(&self, args: &[&str]) -> Command {
        let (uid, gid) = test_ids();
        let mut c = Command::new(bin("nanobot"));
        c.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &self.dir)
            .stdin(Stdio::null());
        if is_root() {
            c.uid(uid).gid(gid);
        }
        c
    }
}

impl Drop for UserHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

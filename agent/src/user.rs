//! Who nanobot runs as: root or not, and the home directory its defaults live under.

use std::path::PathBuf;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The entries of /etc/passwd, each split into its fields (name, password, uid, gid, …).
fn passwd() -> Vec<Vec<String>> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect()
}

/// The uid and gid of user `name`, from /etc/passwd.
pub fn lookup(name: &str) -> Option<(u32, u32)> {
    passwd()
        .into_iter()
        .find(|f| f.len() > 3 && f[0] == name)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
}

/// Whether user `name` exists on this host.
pub fn exists(name: &str) -> bool {
    passwd()
        .iter()
        .any(|f| f.first().is_some_and(|n| n == name))
}

/// This user's login name, from /etc/passwd (then $USER): for hints that name a per-user path.
pub fn name() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() }.to_string();
    passwd()
        .into_iter()
        .find(|f| f.len() > 2 && f[2] == uid)
        .map(|f| f[0].clone())
        .or_else(|| std::env::var("USER").ok())
}

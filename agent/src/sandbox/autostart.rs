//! Starting sandboxd for the user when none answers (as ssh-agent or gpg-agent would), so that
//! `nanobot exec` works on a laptop with no setup. For root, the daemon drops to the
//! `nanobot-sandbox` system user (created on first use): nothing sandboxed ever runs as root.
//! Starting one is never silent: one line on stderr says where it listens, what it serves, where
//! it logs and how to stop it, and a state file next to the socket (`Started`) lets
//! `nanobot sandbox status|stop` and a later command find out that nanobot started it.

use crate::sandbox::client::answers;
use crate::sandbox::workspace::ROOT_WORKSPACE;
use crate::user::{home, is_root, lookup};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const SANDBOX_USER: &str = "nanobot-sandbox";

/// What nanobot records about a daemon it started, in `state_path(socket)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    pub pid: u32,
    pub socket: PathBuf,
    /// The `--workspace-root`s it serves: a workspace outside them is refused.
    pub roots: Vec<PathBuf>,
    pub log: PathBuf,
    /// The user it runs commands as, when started by root.
    pub user: Option<String>,
}

/// `/run/user/1000/nanobot/sandboxd.sock` → `/run/user/1000/nanobot/sandboxd.autostart.json`.
pub fn state_path(socket: &Path) -> PathBuf {
    socket.with_extension("autostart.json")
}

/// The record for the daemon on `socket`, when nanobot started it for this user (the state file
/// is theirs) and it is still running.
pub fn started(socket: &Path) -> Option<Started> {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(state_path(socket)).ok()?.uid();
    // SAFETY: geteuid has no preconditions.
    (owner == unsafe { libc::geteuid() })
        .then(|| recorded(socket))
        .flatten()
}

/// The daemon nanobot started on `socket` for whichever user (root's on the system socket too).
pub fn recorded(socket: &Path) -> Option<Started> {
    let text = std::fs::read_to_string(state_path(socket)).ok()?;
    let s: Started = serde_json::from_str(&text).ok()?;
    (s.socket == socket && is_sandboxd(s.pid, socket)).then_some(s)
}

/// Whether `pid` is a live (not zombie) `sandboxd serve` on `socket`: a recycled pid is not.
pub fn is_sandboxd(pid: u32, socket: &Path) -> bool {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
        return false;
    };
    // The state follows the command name in parentheses, which may itself hold ") ".
    let zombie = stat
        .rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X'));
    let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let sock = socket.as_os_str().as_encoded_bytes();
    !zombie
        && args.first().is_some_and(|a| a.ends_with(b"sandboxd"))
        && args.contains(&&b"serve"[..])
        && args.contains(&sock)
}

/// Whether `workspace` lies under one of `roots`.
pub fn serves(roots: &[PathBuf], workspace: &Path) -> bool {
    roots.iter().any(|r| {
        workspace.starts_with(r) || r.canonicalize().is_ok_and(|c| workspace.starts_with(c))
    })
}

/// The line printed when a daemon was started for the user (pure).
pub fn announcement(s: &Started, created_user: bool) -> String {
    let roots: Vec<String> = s.roots.iter().map(|r| r.display().to_string()).collect();
    let who = match &s.user {
        Some(u) if created_user => {
            format!(", as the system user {u} (just created with useradd), who owns them")
        }
        Some(u) => format!(", as the system user {u}, who owns them"),
        None => String::new(),
    };
    // Root's home is closed to that user: root's default workspace is a link to ROOT_WORKSPACE.
    let who = if s.roots.iter().any(|r| r == Path::new(ROOT_WORKSPACE)) {
        format!("{who} (root's ~/.nanobot/workspace links there)")
    } else {
        who
    };
    format!(
        "nanobot: started sandboxd for you (pid {}) on {}, serving workspaces under {}{who}; log {}; stop it with: nanobot sandbox stop",
        s.pid,
        s.socket.display(),
        roots.join(", "),
        s.log.display()
    )
}

pub fn sandboxd_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("NANOBOT_SANDBOXD").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("NANOBOT_SANDBOXD is {}, which is not a file", p.display());
        }
        return Ok(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        let sib = exe.with_file_name("sandboxd");
        if sib.is_file() {
            return Ok(sib);
        }
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("sandboxd");
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("sandboxd not found next to nanobot or in PATH; install it or set NANOBOT_SANDBOXD")
}

/// The sandbox user's ids, and whether it was created now.
fn ensure_sandbox_user() -> Result<(u32, u32, bool)> {
    if let Some((uid, gid)) = lookup(SANDBOX_USER) {
        return Ok((uid, gid, false));
    }
    let st = std::process::Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            SANDBOX_USER,
        ])
        .status()
        .context("running useradd to create the nanobot-sandbox user")?;
    if !st.success() {
        bail!("useradd {SANDBOX_USER} failed ({st}); create the user yourself");
    }
    let (uid, gid) =
        lookup(SANDBOX_USER).context("nanobot-sandbox was created but cannot be found")?;
    Ok((uid, gid, true))
}

/// Start a daemon for this user on `socket`, serving workspaces under `root`, wait until it
/// answers, record it next to the socket and say so on stderr.
pub async fn start(socket: &Path, workspace: &Path) -> Result<Started> {
    let bin = sandboxd_binary()?;
    let logs = home().join(".nanobot/logs");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&logs)?;
    let log_path = logs.join("sandboxd.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)?;
    let mut cmd = std::process::Command::new(&bin);
    cmd.arg("serve").arg("--socket").arg(socket);
    let mut roots = vec![];
    let mut user = None;
    let mut created_user = false;
    if is_root() {
        let (uid, gid, created) = ensure_sandbox_user()?;
        created_user = created;
        user = Some(SANDBOX_USER.to_string());
        // The workspace belongs to the sandbox user, who runs every command in it.
        if workspace == Path::new(ROOT_WORKSPACE) {
            std::os::unix::fs::chown(workspace, Some(uid), Some(gid))?;
        }
        roots.push(workspace.to_path_buf());
        cmd.args(["--user", SANDBOX_USER, "--allow-uid", "0"]);
    } else {
        if let Some(dir) = socket.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        roots.push(home());
        if !workspace.starts_with(home()) {
            roots.push(workspace.to_path_buf());
        }
    }
    for r in &roots {
        cmd.arg("--workspace-root").arg(r);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the daemon gets its own session and outlives us.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if answers(socket).await {
            let s = Started {
                pid: child.id(),
                socket: socket.to_path_buf(),
                roots,
                log: log_path,
                user,
            };
            record(&s)?;
            eprintln!("{}", announcement(&s, created_user));
            return Ok(s);
        }
        if let Some(st) = child.try_wait()? {
            bail!(
                "sandboxd exited at start ({st}); see {}",
                log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!(
        "sandboxd did not answer on {} within 10 s; see {}",
        socket.display(),
        log_path.display()
    )
}

/// Write the state file, replaced atomically. 0644: it holds no secret, and a user who reaches
/// root's auto-started daemon should hear that nanobot started it (and that stopping it takes
/// root), not that it is a service.
fn record(s: &Started) -> Result<()> {
    let path = state_path(&s.socket);
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string_pretty(s)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o644)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(user: Option<&str>) -> Started {
        Started {
            pid: 42,
            socket: "/run/user/1000/nanobot/sandboxd.sock".into(),
            roots: vec!["/home/u".into()],
            log: "/home/u/.nanobot/logs/sandboxd.log".into(),
            user: user.map(String::from),
        }
    }

    #[test]
    fn the_announcement_says_where_what_and_how_to_stop() {
        let a = announcement(&started(None), false);
        for want in [
            "pid 42",
            "/run/user/1000/nanobot/sandboxd.sock",
            "serving workspaces under /home/u",
            "log /home/u/.nanobot/logs/sandboxd.log",
            "stop it with: nanobot sandbox stop",
        ] {
            assert!(a.contains(want), "{want:?} in {a}");
        }
        assert!(!a.contains('\n'));
        let a = announcement(&started(Some(SANDBOX_USER)), true);
        assert!(
            a.contains("as the system user nanobot-sandbox (just created with useradd)"),
            "{a}"
        );
    }

    #[test]
    fn state_file_sits_next_to_the_socket() {
        assert_eq!(
            state_path(Path::new("/run/user/1/nanobot/sandboxd.sock")),
            PathBuf::from("/run/user/1/nanobot/sandboxd.autostart.json")
        );
    }

    #[test]
    fn workspaces_outside_the_roots_are_not_served() {
        let roots = vec![PathBuf::from("/home/u")];
        assert!(serves(&roots, Path::new("/home/u/.nanobot/workspace")));
        assert!(!serves(&roots, Path::new("/home/user2")));
        assert!(!serves(&roots, Path::new("/var/tmp/p")));
    }

    #[test]
    fn a_pid_that_is_not_sandboxd_on_that_socket_is_not_ours() {
        // This test process is not `sandboxd serve`.
        assert!(!is_sandboxd(std::process::id(), Path::new("/x.sock")));
        assert!(!is_sandboxd(u32::MAX, Path::new("/x.sock")));
    }
}

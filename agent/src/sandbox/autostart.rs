//! Starting sandboxd for the user when none answers (as ssh-agent or gpg-agent would), so that
//! `nanobot exec` works on a laptop with no setup. For root, the daemon drops to the
//! `nanobot-sandbox` system user (created on first use): nothing sandboxed ever runs as root.

use crate::sandbox::client::answers;
use crate::sandbox::workspace::ROOT_WORKSPACE;
use crate::user::{home, is_root};
use anyhow::{bail, Context, Result};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const SANDBOX_USER: &str = "nanobot-sandbox";

fn sandboxd_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("NANOBOT_SANDBOXD") {
        return Ok(PathBuf::from(p));
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

fn ensure_sandbox_user() -> Result<(u32, u32)> {
    if let Some(id) = lookup(SANDBOX_USER) {
        return Ok(id);
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
    lookup(SANDBOX_USER).context("nanobot-sandbox was created but cannot be found")
}

fn lookup(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == name)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}

/// Start a daemon for this user on `socket`, serving workspaces under `root`, and wait until it
/// answers.
pub async fn start(socket: &Path, workspace: &Path) -> Result<()> {
    let bin = sandboxd_binary()?;
    let logs = home().join(".nanobot/logs");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&logs)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(logs.join("sandboxd.log"))?;
    let mut cmd = std::process::Command::new(&bin);
    cmd.arg("serve").arg("--socket").arg(socket);
    if is_root() {
        let (uid, gid) = ensure_sandbox_user()?;
        // The workspace belongs to the sandbox user, who runs every command in it.
        if workspace == Path::new(ROOT_WORKSPACE) {
            std::os::unix::fs::chown(workspace, Some(uid), Some(gid))?;
        }
        cmd.arg("--workspace-root").arg(workspace).args([
            "--user",
            SANDBOX_USER,
            "--allow-uid",
            "0",
        ]);
    } else {
        if let Some(dir) = socket.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        cmd.arg("--workspace-root").arg(home());
        if !workspace.starts_with(home()) {
            cmd.arg("--workspace-root").arg(workspace);
        }
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
            return Ok(());
        }
        if let Some(st) = child.try_wait()? {
            bail!(
                "sandboxd exited at start ({st}); see {}",
                logs.join("sandboxd.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!(
        "sandboxd did not answer on {} within 10 s; see {}",
        socket.display(),
        logs.join("sandboxd.log").display()
    )
}

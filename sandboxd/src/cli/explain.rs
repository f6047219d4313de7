//! `sandboxd explain`: a profile's effective policy, or whether one access would be allowed.

use super::config_path::config_or_default;
use crate::config::Config;
use crate::privdrop;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// Profile name
    pub profile: String,
    /// Config file (TOML). Default: /etc/nanobot/sandboxd.toml when it exists
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Workspace the command would run in (default: the first workspace root)
    #[arg(long)]
    pub workspace: Option<PathBuf>,
    /// Would the command be allowed to read this path (or write/execute it, with --write/--exec)?
    #[arg(long)]
    pub path: Option<PathBuf>,
    #[arg(long, requires = "path", conflicts_with = "exec")]
    pub write: bool,
    #[arg(long, requires = "path")]
    pub exec: bool,
    /// Would a TCP connect to this port on the host's loopback be allowed?
    #[arg(long)]
    pub connect: Option<u16>,
    /// Would connect() to this named AF_UNIX socket reach it?
    #[arg(long)]
    pub unix: Option<PathBuf>,
    /// The user commands run as, for the file-permission layer (default: the config's `user`,
    /// else the caller when not root)
    #[arg(long)]
    pub user: Option<String>,
}

/// Exit 0 when the asked access is allowed (or no question was asked), 1 when denied.
pub fn explain(a: ExplainArgs) -> Result<i32> {
    use crate::explain::{self, Want};
    let cfg = config_or_default(a.config.as_deref())?;
    let Some(p) = cfg.profiles.get(&a.profile) else {
        let known: Vec<&String> = cfg.profiles.keys().collect();
        bail!("unknown profile {:?}; available: {known:?}", a.profile);
    };
    let workspace = a
        .workspace
        .clone()
        .or_else(|| cfg.workspace_roots.first().cloned())
        .unwrap_or_else(|| PathBuf::from("/var/lib/nanobot/workspaces"));
    let abi = crate::confine::landlock::kernel_abi()
        .ok()
        .map(crate::confine::landlock::abi_from_version);
    if a.path.is_none() && a.connect.is_none() && a.unix.is_none() {
        print!(
            "{}",
            explain::describe(&cfg, &a.profile, p, abi, &workspace)
        );
        print!("{}", tenancy_of(&cfg));
        return Ok(0);
    }
    let Some(abi) = abi else {
        bail!("Landlock is not available on this kernel: every exec fails closed");
    };
    let plan = crate::confine::landlock::plan(&p.filesystem, p.network, &p.connect_ports, abi);
    let mounts = crate::confine::mounts::plan(
        &p.filesystem,
        p.limits.tmp_size_bytes,
        &crate::confine::mounts::host_probe,
    )
    .with_context(|| format!("profile {:?}: its root cannot be built", a.profile))?;
    // SAFETY: geteuid/getegid have no preconditions.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let user = match a.user.as_deref().or(cfg.user.as_deref()) {
        Some(name) => {
            let id = privdrop::lookup(name)?;
            Some((id.uid, id.gid))
        }
        None if euid != 0 => Some((euid, egid)),
        None => {
            eprintln!("note: file permissions are not checked: no sandbox user (pass --user NAME or set user in the config)");
            None
        }
    };
    let sb = explain::Sandbox {
        profile: p,
        landlock: &plan,
        mounts: &mounts,
        workspace: &workspace,
        user,
    };
    let mut all = true;
    if let Some(path) = &a.path {
        let want = if a.write {
            Want::Write
        } else if a.exec {
            Want::Exec
        } else {
            Want::Read
        };
        let d = explain::path(&sb, path, want);
        println!(
            "{} {}: {}",
            if d.allowed { "allowed" } else { "denied" },
            path.display(),
            d.reason
        );
        all &= d.allowed;
    }
    if let Some(sock) = &a.unix {
        let d = explain::unix_socket(&sb, sock);
        println!(
            "{} unix:{}: {}",
            if d.allowed { "allowed" } else { "denied" },
            sock.display(),
            d.reason
        );
        all &= d.allowed;
    }
    if let Some(port) = a.connect {
        let d = explain::connect(&plan, p.network, port);
        println!(
            "{} tcp/{port}: {}",
            if d.allowed { "allowed" } else { "denied" },
            d.reason
        );
        all &= d.allowed;
    }
    Ok(if all { 0 } else { 1 })
}

/// The tenancy a daemon with this config (and no peer options on its command line) would have.
fn tenancy_of(cfg: &Config) -> String {
    use crate::tenants;
    let roots = cfg
        .workspace_roots
        .iter()
        .map(|r| r.canonicalize().unwrap_or_else(|_| r.clone()))
        .collect();
    let mode = tenants::mode(&cfg.allow_uids, &cfg.allow_gids, &cfg.allow_groups);
    tenants::describe(&tenants::Tenancy::new(mode, roots, cfg.workspaces.clone()))
}

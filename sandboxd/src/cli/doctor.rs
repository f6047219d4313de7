//! `sandboxd doctor`: the host checks (`crate::doctor`) printed as ✓/✗ lines or JSON.

use super::config_path::config_or_default;
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// Config file (for min_landlock_abi and cgroups). Default: /etc/nanobot/sandboxd.toml when it exists
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// One JSON object instead of ✓/✗ lines
    #[arg(long)]
    pub json: bool,
    /// Also say which mechanism holds this workspace's byte ceiling (repeatable; the config's
    /// workspace roots and `[[workspaces]]` are always reported)
    #[arg(long)]
    pub workspace: Vec<PathBuf>,
}

pub fn doctor(a: DoctorArgs) -> Result<i32> {
    let cfg = config_or_default(a.config.as_deref())?;
    let private = cfg.private_network_profiles();
    let mut checks = crate::doctor::checks(cfg.min_landlock_abi, cfg.cgroups, &private);
    let mut workspaces = a.workspace.clone();
    workspaces.extend(cfg.workspace_roots.iter().cloned());
    workspaces.extend(cfg.workspaces.iter().map(|w| w.path.clone()));
    let workspace_bytes = cfg
        .profiles
        .get("default")
        .map_or(crate::policy::Limits::default().workspace_bytes, |p| {
            p.limits.workspace_bytes
        });
    checks.extend(crate::doctor::disk_checks(&workspaces, workspace_bytes));
    let ok = checks.iter().all(|c| c.ok || !c.critical);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"ok": ok, "checks": checks}))?
        );
    } else {
        for c in &checks {
            let mark = match (c.ok, c.critical) {
                (true, _) => "✓",
                (false, true) => "✗",
                (false, false) => "!",
            };
            println!("{mark} {}: {}", c.name, c.detail);
            if !c.ok {
                println!("    fix: {}", c.fix);
            }
        }
        println!(
            "\n{}",
            if ok {
                "This host can run sandboxes."
            } else {
                "sandboxd will refuse every exec here until the ✗ items are fixed."
            }
        );
    }
    Ok(if ok { 0 } else { 1 })
}

//! `nanobot status`: the config, provider, model, workspace and sandboxd this instance would use.

use crate::cli::globals::Globals;
use crate::sandbox::{autostart, client, socket};
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// sandboxd socket (default: as the agent would pick it)
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

pub async fn run(g: &Globals, a: StatusArgs) -> Result<i32> {
    let loaded = g.load()?;
    let cfg = &loaded.config;
    println!(
        "config:     {}{}",
        loaded.path.display(),
        if loaded.exists {
            ""
        } else {
            " (missing: defaults)"
        }
    );
    println!("{}", crate::cli::provider::describe(&loaded));
    match g.workspace(cfg) {
        Ok(w) => println!("workspace:  {}", w.display()),
        Err(e) => println!("workspace:  {}", crate::errors::anyhow_chain(&e)),
    }
    let (tried, found) = socket::locate(a.socket, cfg.sandbox.socket.as_deref()).await;
    match &found {
        Some(s) => match client::info(s).await {
            Some(i) => println!(
                "sandboxd:   {} (version {}, Landlock ABI {}, layers: {}{}; profiles: {})",
                s.display(),
                i.version,
                i.landlock_abi,
                i.layers_enforced.join(", "),
                if i.degraded.is_empty() {
                    String::new()
                } else {
                    format!("; DEGRADED without {}", i.degraded.join(", "))
                },
                i.profiles.join(", ")
            ),
            None => println!("sandboxd:   {} answers but Info failed", s.display()),
        },
        None => println!(
            "sandboxd:   not running (tried {}); the next `nanobot exec` or `nanobot agent` starts one for you",
            tried
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    if found
        .as_deref()
        .is_some_and(|s| autostart::started(s).is_some())
    {
        println!("            started for you by nanobot: `nanobot sandbox status` for more, `nanobot sandbox stop` stops it");
    }
    println!(
        "exec:       timeout {} s, profile {}",
        cfg.exec_timeout(),
        cfg.sandbox.profile.as_deref().unwrap_or("default")
    );
    Ok(0)
}

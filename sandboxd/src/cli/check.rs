//! `sandboxd check`: validate the config and every profile.

use super::config_path::DEFAULT_CONFIG;
use crate::config::Config;
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Config file (TOML). Default: /etc/nanobot/sandboxd.toml
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn check(a: CheckArgs) -> Result<i32> {
    let path = a.config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    match Config::load(&path) {
        Ok(c) => {
            let names: Vec<&String> = c.profiles.keys().collect();
            println!(
                "{}: ok, {} profile(s): {}",
                path.display(),
                names.len(),
                names
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(0)
        }
        Err(e) => {
            let p = e.problems();
            for line in &p {
                println!("{line}");
            }
            eprintln!("sandboxd: {} problem(s) in {}", p.len(), path.display());
            Ok(1)
        }
    }
}

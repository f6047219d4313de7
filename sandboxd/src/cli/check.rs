//! `sandboxd check`: validate the config and every profile, every problem in one run.

use super::config_path::{config_file, DEFAULT_CONFIG};
use crate::config::{Config, ConfigError};
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Config file (TOML). Default: /etc/nanobot/sandboxd.toml when it exists, else the
    /// built-in configuration (the shipped profiles) is checked
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn check(a: CheckArgs) -> Result<i32> {
    let file = config_file(a.config.as_deref());
    let (what, loaded) = match &file {
        Some(p) => (p.display().to_string(), Config::load(p)),
        None => {
            println!(
                "no config file at {DEFAULT_CONFIG}: checking the built-in configuration (the profiles of packaging/sandboxd.toml, every other key at its default)"
            );
            ("built-in configuration".to_string(), Config::built_in())
        }
    };
    Ok(report(&what, &loaded))
}

/// Print the outcome; the exit code: 0 when the config is valid, 1 otherwise.
fn report(what: &str, loaded: &Result<Config, ConfigError>) -> i32 {
    match loaded {
        Ok(c) => {
            let names: Vec<&str> = c.profiles.keys().map(String::as_str).collect();
            println!(
                "{what}: ok, {} profile(s): {}",
                names.len(),
                names.join(", ")
            );
            if c.workspace_roots.is_empty() {
                println!(
                    "note: no workspace_roots: `sandboxd serve` then needs --workspace-root DIR"
                );
            }
            0
        }
        Err(e) => {
            let p = e.problems();
            for line in &p {
                println!("{line}");
            }
            // `what` names the main file; a problem in profiles.d names its own file above.
            eprintln!(
                "sandboxd: {} problem(s) in {what} and the profiles it loads",
                p.len()
            );
            1
        }
    }
}

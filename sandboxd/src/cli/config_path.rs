//! Which config file a subcommand (and `serve`) reads.

use crate::config::Config;
use anyhow::Result;
use std::path::Path;

pub const DEFAULT_CONFIG: &str = "/etc/nanobot/sandboxd.toml";

/// The config named with --config, else /etc/nanobot/sandboxd.toml when it exists, else the
/// built-in defaults.
pub fn config_or_default(path: Option<&Path>) -> Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None if Path::new(DEFAULT_CONFIG).exists() => Config::load(Path::new(DEFAULT_CONFIG))?,
        None => {
            let mut c = Config::default();
            c.finish()?;
            c
        }
    })
}

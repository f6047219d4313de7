//! Which config file a subcommand (and `serve`) reads.

use crate::config::Config;
use anyhow::Result;
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG: &str = "/etc/nanobot/sandboxd.toml";

/// The file a subcommand reads: the one named with --config, else /etc/nanobot/sandboxd.toml
/// when it exists; `None` means the built-in configuration.
pub fn config_file(path: Option<&Path>) -> Option<PathBuf> {
    match path {
        Some(p) => Some(p.to_path_buf()),
        None if Path::new(DEFAULT_CONFIG).exists() => Some(PathBuf::from(DEFAULT_CONFIG)),
        None => None,
    }
}

/// The config named with --config, else /etc/nanobot/sandboxd.toml when it exists, else the
/// built-in one (the shipped profiles, every other key at its default).
pub fn config_or_default(path: Option<&Path>) -> Result<Config> {
    Ok(match config_file(path) {
        Some(p) => Config::load(&p)?,
        None => Config::built_in()?,
    })
}

//! The one-shot subcommands (`check`, `explain`, `doctor`): their arguments and how their results
//! are printed. `serve` lives in `daemon`.

mod check;
mod doctor;
mod explain;

pub use check::{check, CheckArgs};
pub use doctor::{doctor, DoctorArgs};
pub use explain::{explain, ExplainArgs};

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

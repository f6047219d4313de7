//! The one-shot subcommands (`check`, `explain`, `doctor`, and completions and man pages from
//! crate `nanobot-cligen`): their arguments and how their results are printed, and `config_path` (which config a
//! subcommand reads). `serve` lives in `daemon`.

mod check;
mod config_path;
mod doctor;
mod explain;

pub use check::{check, CheckArgs};
pub use config_path::{config_file, config_or_default, DEFAULT_CONFIG};
pub use doctor::{doctor, DoctorArgs};
pub use explain::{explain, ExplainArgs};
pub use nanobot_cligen::{completions, man, CompletionsArgs, ManArgs};

//! sandboxd's configuration file (TOML). Unknown keys are errors: a typo in a security setting must
//! not silently fall back to a default.
//!
//! By job: `schema` (the keys: `Config` and `Profile`, each field documented), `defaults` (what an
//! empty file means), `load` (reading the file and `profiles.d/`, TOML errors with FILE:LINE),
//! `source` (finding the line a key is written on), `validate` (every rule, all problems at
//! once), `grants` (the `[[workspaces]]` grants: checked and resolved to real paths and ids),
//! `problem` (a problem located at FILE:LINE: KEY).

mod defaults;
mod grants;
mod load;
mod problem;
mod schema;
mod source;
mod validate;

pub use grants::check_grant;
pub use problem::{ConfigError, Problem};
pub use schema::{Config, LogFormat, Profile};

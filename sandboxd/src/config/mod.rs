//! sandboxd's configuration file (TOML). Unknown keys are errors: a typo in a security setting must
//! not silently fall back to a default.
//!
//! By job: `schema` (the keys: `Config` and `Profile`, each field documented), `defaults` (what an
//! empty file means), `load` (reading the file and `profiles.d/`, TOML errors with FILE:LINE),
//! `sieve` (every key serde rejects, all at once), `source` (finding the line a key is written
//! on), `validate` (every rule, all problems at once), `must_exist` (users, groups and roots that must
//! exist on this host), `grants` (the `[[workspaces]]` grants: checked and resolved to real paths and ids),
//! `problem` (a problem located at FILE:LINE: KEY).

mod defaults;
mod grants;
mod load;
mod must_exist;
mod problem;
mod schema;
mod sieve;
mod source;
mod validate;

pub use grants::check_grant;
pub use problem::{ConfigError, Problem};
pub use schema::{Config, LogFormat, Profile};

//! The agent's file tools, run by the daemon on a workspace fd. Every path is resolved by the
//! kernel beneath the workspace (openat2 RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), and every later
//! step works on the directory fd that resolution returned, so a symlink swapped in mid-operation
//! cannot redirect it outside. Writes go to a temp file in the same directory, are fsynced and
//! renamed over the target: a crash leaves the old content or the new, never a mix.
//!
//! By job: `path` (a requested path → one relative to the workspace, lexically), `error` (what
//! can go wrong, as the messages a model reads), `errno` (a syscall's errno → that error), `limits`
//! (the caps from the config), `at` (the raw `*at` syscalls, the only unsafe code here), `lock`
//! (the per-entry lock table), `usage` (the workspace's bytes against its ceiling), `replace` (where a write lands and the atomic replace), one file per
//! operation (`read`, `write`, `edit`, `list`), and for edit: `eol` (line endings) and `similar`
//! (why old_text was not found: a whitespace-only match or the most similar region). The gRPC codes
//! of the errors are the API's business: `api/files.rs`. The children use each other directly,
//! never this file's re-exports, which are for the rest of the crate.

mod at;
mod edit;
mod eol;
mod errno;
mod error;
mod limits;
mod list;
mod lock;
mod path;
mod read;
mod replace;
mod similar;
mod usage;
mod write;

pub use edit::{edit_file, edit_text};
pub use errno::map_errno;
pub use error::FileError;
pub use limits::{FileLimits, MAX_FILE_BYTES};
pub use list::{list_dir, DirEntry};
pub use path::relative_path;
pub use read::{read_file, ReadOut};
pub use similar::closest_region;
pub use write::{write_file, WriteOut};

//! The subcommands, one file each, and the options they all share (`globals`); completions and
//! man pages come from these definitions (crate `nanobot-cligen`).

pub mod agent;
pub mod channels;
pub mod doctor;
pub mod exec;
pub mod gateway;
pub mod globals;
pub mod onboard;
pub mod provider;
pub mod sandbox;
pub mod status;
pub mod tool;

//! The subcommands, one file each, and the options they all share (`globals`); `generate`:
//! completions and man pages from these definitions.

pub mod agent;
pub mod channels;
pub mod doctor;
pub mod exec;
pub mod gateway;
pub mod generate;
pub mod globals;
pub mod onboard;
pub mod provider;
pub mod sandbox;
pub mod status;
pub mod tool;

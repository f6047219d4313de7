//! The agent's one door to sandboxd: which socket (`socket`), the gRPC client (`client`),
//! starting a per-user daemon (`autostart`), the workspace and directories in it (`workspace`),
//! one exec and its stream (`drain`), what its result means as an exit code (`outcome`), and the contract's words for how it
//! ended (`vocab`).

pub mod autostart;
pub mod client;
pub mod drain;
pub mod outcome;
pub mod socket;
pub mod vocab;
pub mod workspace;

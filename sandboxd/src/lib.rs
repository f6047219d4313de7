//! sandboxd: runs nanobot's commands confined by the kernel.

pub mod api;
pub mod auth;
pub mod cgroups;
pub mod cli;
pub mod config;
pub mod confine;
pub mod daemon;
pub mod doctor;
pub mod exec_session;
pub mod explain;
pub mod fileops;
pub mod guard;
pub mod handover;
pub mod host;
pub mod init;
pub mod launcher;
pub mod permissions;
pub mod policy;
pub mod privdrop;
pub mod rootfs;
pub mod step;
pub mod supervisor;
pub mod tenants;
pub mod vocab;
pub mod wire;
pub mod workspace;

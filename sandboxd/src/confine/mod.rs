//! Turning a policy into kernel confinement. Each layer has a pure planning function (unit-tested)
//! and an `apply` used by the sandboxed child.

pub mod bpf;
pub mod cgroup;
pub mod landlock;
pub mod mounts;
pub mod rlimits;
pub mod seccomp;
pub mod seccomp_words;

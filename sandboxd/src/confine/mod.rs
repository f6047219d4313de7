//! Turning a policy into kernel confinement, one layer per file. Each has a pure planning function
//! (unit-tested, reused by `sandboxd explain`); the layers a process puts on itself (rlimits,
//! Landlock, seccomp) also hold the kernel calls that apply the plan, which `init/` calls inside
//! the sandbox. Mount and cgroup plans are executed by `crate::rootfs` and `crate::cgroups`.

pub mod bpf;
pub mod cgroup;
pub mod landlock;
pub mod mounts;
pub mod rlimits;
pub mod seccomp;
pub mod seccomp_words;

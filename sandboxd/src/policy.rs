//! The sandbox policy as plain data. The daemon builds one per exec from the profile and the
//! request; the sandbox init turns it into namespaces, mounts, rlimits, Landlock rules and seccomp
//! filters with the pure builders in `confine::*`.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Network policy of a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// No sockets except AF_UNIX; no TCP bind/connect; abstract sockets scoped to the sandbox.
    #[default]
    None,
    /// The sandbox's own network namespace with only a loopback: local test servers work, nothing
    /// outside is reachable.
    Private,
    /// Host network, TCP only, connect only to `connect_ports` (Landlock network rules); no bind,
    /// no UDP or other socket types (seccomp).
    Ports,
    /// Host network, unrestricted.
    Full,
}

impl Network {
    pub const ALL: [Network; 4] = [
        Network::None,
        Network::Private,
        Network::Ports,
        Network::Full,
    ];
}

/// Resource limits: applied with setrlimit to the command (and inherited by its children), and
/// for the whole sandbox through its cgroup (`memory_bytes`, `pids`, `cpu_weight`:
/// `confine::cgroup`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub cpu_secs: u64,
    pub address_space_bytes: u64,
    pub file_size_bytes: u64,
    pub open_files: u64,
    /// Processes of the sandbox's user in the sandbox's own user namespace.
    pub processes: u64,
    /// Size of the private /tmp and /dev/shm (each).
    pub tmp_size_bytes: u64,
    /// Memory of the whole sandbox (every process, page cache and tmpfs included), through its
    /// cgroup: beyond it the kernel's OOM killer acts in the sandbox (`limit_hit: memory`).
    pub memory_bytes: u64,
    /// Processes and threads of the whole sandbox, through its cgroup: beyond it fork fails with
    /// EAGAIN (`limit_hit: pids`).
    pub pids: u64,
    /// CPU weight of the sandbox against the others (cgroup v2 `cpu.weight`, 1..=10000; 100 is
    /// an even share).
    pub cpu_weight: u64,
    /// The workspace's byte ceiling: a btrfs qgroup limit of the workspace's subvolume at most
    /// this large is the ceiling; elsewhere it is the write budget of one sandbox, accounted and
    /// enforced by its init (`disk.rs`, `init/budget.rs`).
    pub workspace_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu_secs: 60,
            address_space_bytes: 4 << 30,
            file_size_bytes: 1 << 30,
            open_files: 1024,
            processes: 256,
            tmp_size_bytes: 256 << 20,
            memory_bytes: 2 << 30,
            pids: 256,
            cpu_weight: 100,
            workspace_bytes: 1 << 30,
        }
    }
}

/// Filesystem grants beyond the workspace, by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FsPolicy {
    /// Directories whose content may be read and executed.
    pub read_exec: Vec<PathBuf>,
    /// Directories or files that may be read.
    pub read_only: Vec<PathBuf>,
    /// Directories or files that may be read and written.
    pub read_write: Vec<PathBuf>,
    /// Whether the workspace itself is writable.
    pub workspace_writable: bool,
    /// Private tmpfs on /tmp and /dev/shm, gone when the sandbox ends.
    pub private_tmp: bool,
    /// Named AF_UNIX sockets of the host the command may connect to (e.g. an ssh-agent's),
    /// each bound into the sandbox's root on its own. Every other host socket is absent. A socket
    /// missing when a command starts is simply not there.
    pub unix_sockets: Vec<PathBuf>,
}

impl Default for FsPolicy {
    fn default() -> Self {
        FsPolicy {
            read_exec: [
                "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
            read_only: vec![],
            read_write: vec![],
            workspace_writable: true,
            private_tmp: true,
            unix_sockets: vec![],
        }
    }
}

/// Everything the sandbox init needs to build one sandbox. Sent by the daemon over the sandbox's
/// status socket; the workspace itself travels as an already-resolved directory fd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Workspace path, for HOME and messages only; access goes through the passed fd.
    pub workspace: PathBuf,
    /// Working directory of the command, relative to the workspace (empty: the workspace). The
    /// sandbox resolves it beneath the workspace fd again (openat2 RESOLVE_BENEATH).
    #[serde(default)]
    pub cwd: PathBuf,
    /// Program and arguments; the program is looked up in the sandbox's PATH when relative.
    pub argv: Vec<String>,
    /// Complete environment of the command.
    pub env: Vec<(String, String)>,
    pub timeout_ms: u64,
    pub limits: Limits,
    pub fs: FsPolicy,
    pub network: Network,
    /// TCP ports the command may connect to with `Network::Ports`.
    #[serde(default)]
    pub connect_ports: Vec<u16>,
    /// Oldest Landlock ABI accepted; an older kernel makes the exec fail closed.
    pub min_landlock_abi: u32,
    /// Layers that may be skipped when the kernel cannot apply them (config `allow_degraded`).
    #[serde(default)]
    pub allow_degraded: Vec<String>,
    /// The sandbox's root, built from the profile (`confine::mounts::plan`); the workspace is
    /// bound over it last.
    #[serde(default)]
    pub mounts: MountPlan,
    /// The root is the one the launcher prepares its sandboxes with (`WarmShape::mounts`), which
    /// `mounts` then leaves out: most requests need no plan parsed on their way.
    #[serde(default)]
    pub mounts_warm: bool,
    /// Bytes the sandbox's processes may write to storage in total before its init kills it
    /// (`limit_hit: disk`); 0: none, the workspace's filesystem holds the ceiling (`disk.rs`).
    #[serde(default)]
    pub write_budget_bytes: u64,
}

/// Where the private temporary directories live inside the sandbox.
pub const SANDBOX_TMP: &str = "/tmp";
pub const SANDBOX_SHM: &str = "/dev/shm";
/// Device files every sandbox may use (the sandbox's own /dev, see `confine::mounts`).
pub const DEV_READ_WRITE: &[&str] = &["/dev/null"];
pub const DEV_READ_ONLY: &[&str] = &["/dev/zero", "/dev/urandom", "/dev/random", "/dev/full"];
/// Terminals: the controlling tty and the sandbox's own devpts instance (ptys made inside).
pub const DEV_TERMINALS: &[&str] = &["/dev/tty", "/dev/pts"];

/// What a pre-warmed sandbox prepares before any request: the default profile's filesystem and
/// network policy (for its Landlock ruleset) and the size of its private /tmp. A request whose
/// spec differs simply does that part itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WarmShape {
    pub fs: FsPolicy,
    pub network: Network,
    #[serde(default)]
    pub connect_ports: Vec<u16>,
    pub tmp_size_bytes: u64,
    /// The default profile's mount plan: the warm sandbox builds this root ahead of time.
    #[serde(default)]
    pub mounts: MountPlan,
    /// The daemon's workspace roots: the warm root holds their directories ahead of time, so a
    /// request only adds its workspace's last components.
    #[serde(default)]
    pub workspace_roots: Vec<PathBuf>,
}

/// One step of building the sandbox's root (planned by `confine::mounts::plan`, executed by
/// `rootfs`). Paths are as the sandbox sees them (absolute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MountOp {
    /// A fresh tmpfs. `seal`: made read-only once everything below it is in place.
    Tmpfs {
        path: PathBuf,
        size_bytes: u64,
        mode: u32,
        seal: bool,
        /// Where this comes from (a profile key or a built-in rule).
        from: String,
    },
    /// A recursive bind of the host's `source` at `path`.
    Bind {
        source: PathBuf,
        path: PathBuf,
        /// The source is a directory (else a file, device or socket: the mount point is a file).
        dir: bool,
        writable: bool,
        /// Device nodes work through it (only binds under /dev).
        devices: bool,
        /// A missing source is skipped instead of refusing the sandbox.
        optional: bool,
        /// The source must be a named AF_UNIX socket (`filesystem.unix_sockets`).
        #[serde(default)]
        socket: bool,
        from: String,
    },
    Symlink {
        path: PathBuf,
        target: PathBuf,
        from: String,
    },
    /// The sandbox's own /proc (its PID namespace).
    Proc { path: PathBuf },
    /// The sandbox's own devpts instance.
    Devpts { path: PathBuf },
    /// The request's workspace (bound from the daemon's resolved directory fd, last, over
    /// everything else).
    Workspace { path: PathBuf, writable: bool },
}

impl MountOp {
    pub fn path(&self) -> &Path {
        match self {
            MountOp::Tmpfs { path, .. }
            | MountOp::Bind { path, .. }
            | MountOp::Symlink { path, .. }
            | MountOp::Proc { path }
            | MountOp::Devpts { path }
            | MountOp::Workspace { path, .. } => path,
        }
    }
}

/// The whole root, in the order it is built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MountPlan {
    pub ops: Vec<MountOp>,
}

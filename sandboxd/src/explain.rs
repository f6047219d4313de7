//! `sandboxd explain`: a profile's effective policy in plain words, and answers to "may a command
//! read/write/execute this path, connect to this port?". Everything is computed from the same
//! builders the sandbox uses (`confine::landlock::plan`, `confine::seccomp::syscall_rules`,
//! `confine::mounts::plan`), so the explanation cannot drift from what is enforced.

use crate::config::{Config, Profile};
use crate::confine::landlock::{self, Plan, Target};
use crate::confine::mounts::{MountOp, MountPlan};
use crate::policy::Network;
use ::landlock::{AccessFs, BitFlags, ABI};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Read,
    Write,
    Exec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

fn canon(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn rights(a: BitFlags<AccessFs>) -> String {
    let names: Vec<&str> = [
        (AccessFs::ReadFile, "read"),
        (AccessFs::ReadDir, "list"),
        (AccessFs::Execute, "execute"),
        (AccessFs::WriteFile, "write"),
        (AccessFs::Truncate, "truncate"),
        (AccessFs::MakeReg, "create files"),
        (AccessFs::MakeDir, "create dirs"),
        (AccessFs::RemoveFile, "remove files"),
        (AccessFs::RemoveDir, "remove dirs"),
        (AccessFs::MakeSym, "symlinks"),
        (AccessFs::Refer, "rename across dirs"),
        (AccessFs::MakeFifo, "fifos"),
        (AccessFs::MakeSock, "sockets"),
        (AccessFs::IoctlDev, "device ioctls"),
        (AccessFs::ResolveUnix, "connect to unix sockets"),
    ]
    .iter()
    .filter(|(r, _)| a.contains(*r))
    .map(|(_, n)| *n)
    .collect();
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}

fn target_path(t: &Target, workspace: &Path) -> PathBuf {
    match t {
        Target::Workspace => workspace.to_path_buf(),
        Target::Path(p) => p.clone(),
    }
}

fn target_name(t: &Target, workspace: &Path) -> String {
    match t {
        Target::Workspace => format!("workspace {}", workspace.display()),
        Target::Path(p) => p.display().to_string(),
    }
}

/// Everything `path` needs to answer for one profile: the same plans the sandbox is built from.
pub struct Sandbox<'a> {
    pub profile: &'a Profile,
    pub landlock: &'a Plan,
    /// The profile's mount plan (`confine::mounts::plan`), without the workspace.
    pub mounts: &'a MountPlan,
    pub workspace: &'a Path,
    /// The sandbox user's uid and gid, for the file-permission layer (None: not checked).
    pub user: Option<(u32, u32)>,
}

/// The path the sandbox itself resolves `p` to: the plan's own symlinks (`/bin`, `/dev/ptmx`,
/// `/dev/fd`, ...) and, inside binds, the host's; its own `/proc` is not followed (`/proc/self`
/// is the command, not this process). A last component that does not exist stays as written.
fn sandbox_canon(mounts: &MountPlan, p: &Path) -> PathBuf {
    sandbox_canon_at(mounts, p, 0)
}

fn sandbox_canon_at(mounts: &MountPlan, p: &Path, depth: u32) -> PathBuf {
    use crate::confine::mounts::{host_probe, normalize, resolve, HostKind};
    let probe = |q: &Path| -> HostKind {
        let link = mounts.ops.iter().find_map(|o| match o {
            MountOp::Symlink { path, target, .. } if path == q => Some(target.clone()),
            _ => None,
        });
        if let Some(t) = link {
            return HostKind::Symlink(t);
        }
        match mounts.covering(q) {
            Some(MountOp::Bind { .. }) | Some(MountOp::Workspace { .. }) => host_probe(q),
            Some(_) => HostKind::Dir,
            None if q == Path::new("/") || mounts.is_mount_parent(q) => HostKind::Dir,
            None => HostKind::Missing,
        }
    };
    let p = normalize(p);
    if let Some(r) = resolve(&p, &probe) {
        return r;
    }
    let Some(parent) = p.parent().and_then(|d| resolve(d, &probe)) else {
        return p;
    };
    match (probe(&p), p.file_name()) {
        // A dangling link: what it points to (absent, most likely) is the answer.
        (HostKind::Symlink(t), _) if depth < 8 => {
            sandbox_canon_at(mounts, &parent.join(t), depth + 1)
        }
        (_, Some(n)) => parent.join(n),
        _ => p,
    }
}

/// Answers the sandbox's own /proc gives whatever Landlock says: the command's own open files,
/// and the other processes' private entries (closed by the kernel's ptrace rules).
fn proc_answer(target: &Path, want: Want) -> Option<Decision> {
    let rel = target.strip_prefix("/proc").ok()?;
    let mut c = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    let who = c.next()?;
    let what = c.next().unwrap_or_default();
    if who == "self" || who == "thread-self" {
        if what == "fd" && c.next().is_some() {
            return Some(Decision {
                allowed: want != Want::Exec,
                reason: "the command's own open file (stdin /dev/null, stdout and stderr pipes to sandboxd): usable as opened".into(),
            });
        }
        return None;
    }
    let private = [
        "environ",
        "fd",
        "fdinfo",
        "maps",
        "smaps",
        "mem",
        "root",
        "cwd",
        "exe",
        "auxv",
        "stack",
        "syscall",
        "pagemap",
        "map_files",
        "io",
        "personality",
    ];
    (who.chars().all(|ch| ch.is_ascii_digit()) && private.contains(&what.as_str())).then(|| {
        Decision {
            allowed: false,
            reason: format!(
                "denied by the kernel's ptrace rules: /proc/{who}/{what} of another process (the sandbox's init, pid 1, is not dumpable)"
            ),
        }
    })
}

/// What the sandbox's root has at a path, from the mount plan.
struct Seen {
    what: String,
    writable: bool,
    /// The host's own file (a bind): its Unix permissions apply as on the host.
    host: Option<PathBuf>,
    /// The sandbox's own fresh tmpfs: empty when the command starts.
    fresh: bool,
}

fn seen(mounts: &MountPlan, target: &Path) -> Option<Seen> {
    let s = match mounts.covering(target) {
        None if target == Path::new("/") || mounts.is_mount_parent(target) => Seen {
            what: "the sandbox's own root (read-only; this directory only leads to a mount)".into(),
            writable: false,
            host: None,
            fresh: false,
        },
        None => return None,
        Some(MountOp::Bind {
            path,
            writable,
            from,
            ..
        }) => Seen {
            what: format!(
                "a {} bind of the host's {} ({from})",
                if *writable { "read-write" } else { "read-only" },
                path.display()
            ),
            writable: *writable,
            host: Some(path.clone()),
            fresh: false,
        },
        Some(MountOp::Workspace { path, writable }) => Seen {
            what: format!(
                "the workspace {} ({})",
                path.display(),
                if *writable { "read-write" } else { "read-only" }
            ),
            writable: *writable,
            host: Some(path.clone()),
            fresh: false,
        },
        Some(MountOp::Tmpfs {
            path, seal, from, ..
        }) => Seen {
            what: format!("{}: the sandbox's own tmpfs ({from})", path.display()),
            writable: !seal,
            host: None,
            fresh: !seal && target != path,
        },
        Some(MountOp::Proc { .. }) => Seen {
            what: "the sandbox's own /proc (its PID namespace only)".into(),
            writable: false,
            host: None,
            fresh: false,
        },
        Some(MountOp::Devpts { .. }) => Seen {
            what: "the sandbox's own devpts instance (its pseudo-terminals only)".into(),
            writable: true,
            host: None,
            fresh: false,
        },
        Some(MountOp::Symlink { .. }) => return None,
    };
    Some(s)
}

/// Would the command be allowed `want` on `path`? In the order the kernel decides: is the path in
/// the sandbox's root at all (mount plan), do Landlock's rules grant it (creating a file needs
/// "create files" on the parent), is its mount writable, and do the file's Unix permissions let
/// the sandbox user in.
pub fn path(sb: &Sandbox, path: &Path, want: Want) -> Decision {
    let p = sb.profile;
    let plan = sb.landlock;
    let ws = canon(sb.workspace);
    let mounts = sb
        .mounts
        .with_workspace(&ws, p.filesystem.workspace_writable);
    let target = sandbox_canon(&mounts, path);
    if let Some(d) = proc_answer(&target, want) {
        return d;
    }
    let Some(seen) = seen(&mounts, &target) else {
        return Decision {
            allowed: false,
            reason: format!(
                "denied: {} is absent from the sandbox's root: no profile path (filesystem.read_exec, read_only, read_write, unix_sockets) and not the workspace",
                target.display()
            ),
        };
    };
    let exists = !seen.fresh && target.exists();
    // What Landlock checks, and on which object.
    let (object, need) = match want {
        Want::Read if exists && target.is_dir() => {
            (target.clone(), BitFlags::from(AccessFs::ReadDir))
        }
        Want::Read => (target.clone(), AccessFs::ReadFile.into()),
        Want::Exec => (target.clone(), AccessFs::Execute.into()),
        Want::Write if exists && !target.is_dir() => (target.clone(), AccessFs::WriteFile.into()),
        Want::Write if exists => (target.clone(), AccessFs::MakeReg.into()),
        Want::Write => (
            target
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| "/".into()),
            AccessFs::MakeReg.into(),
        ),
    };
    let need = need & plan.handled_fs;
    let mut granted = BitFlags::<AccessFs>::empty();
    let mut by = vec![];
    for r in &plan.rules {
        let t = canon(&target_path(&r.target, &ws));
        if object.starts_with(&t) && !(r.access & need).is_empty() {
            granted |= r.access;
            by.push(format!(
                "{} ({})",
                target_name(&r.target, &ws),
                rights(r.access)
            ));
        }
    }
    let verb = match want {
        Want::Read => "read",
        Want::Write if exists => "write",
        Want::Write => "create",
        Want::Exec => "execute",
    };
    if !granted.contains(need) {
        return Decision {
            allowed: false,
            reason: format!(
                "denied by Landlock: no rule grants {} on {} or a parent (it is {})",
                rights(need),
                object.display(),
                seen.what
            ),
        };
    }
    // Device nodes (/dev/null) are writable on a read-only mount; files and directories are not.
    let is_device = {
        use std::os::unix::fs::FileTypeExt;
        std::fs::metadata(&target)
            .map(|m| m.file_type().is_char_device() || m.file_type().is_block_device())
            .unwrap_or(false)
    };
    if want == Want::Write && !is_device && !seen.writable {
        return Decision {
            allowed: false,
            reason: format!(
                "denied by the mount layer: {} is {}, read-only in the sandbox (Landlock would allow it by {})",
                target.display(),
                seen.what,
                by.join(", ")
            ),
        };
    }
    if let (Some(bind), Some((uid, gid))) = (&seen.host, sb.user) {
        if let Err(why) = file_permissions(bind, &object, want, exists, uid, gid) {
            return Decision {
                allowed: false,
                reason: format!("denied (file permissions): {why}"),
            };
        }
    }
    let fresh = if seen.fresh {
        " (in the sandbox's own empty tmpfs: only what the command creates there)"
    } else {
        ""
    };
    Decision {
        allowed: true,
        reason: format!(
            "{verb} allowed by Landlock rule {} on {}{fresh}",
            by.join(" and "),
            seen.what
        ),
    }
}

/// Would connect() to the named AF_UNIX socket at `path` reach it? It must be in the sandbox's
/// root (the workspace, the private /tmp, or a socket a profile grants by path), Landlock must
/// grant RESOLVE_UNIX where the kernel handles it (ABI 9+), and the socket file's mode must let the
/// sandbox user write.
pub fn unix_socket(sb: &Sandbox, path: &Path) -> Decision {
    let ws = canon(sb.workspace);
    let mounts = sb
        .mounts
        .with_workspace(&ws, sb.profile.filesystem.workspace_writable);
    let target = sandbox_canon(&mounts, path);
    let Some(seen) = seen(&mounts, &target) else {
        return Decision {
            allowed: false,
            reason: format!(
                "denied: {} is absent from the sandbox's root (grant a host socket with filesystem.unix_sockets)",
                target.display()
            ),
        };
    };
    if seen.fresh {
        return Decision {
            allowed: true,
            reason: format!(
                "allowed for sockets the command creates there: {} (the host's are not in it)",
                seen.what
            ),
        };
    }
    let landlock = if sb.landlock.handled_fs.contains(AccessFs::ResolveUnix) {
        let by: Vec<String> = sb
            .landlock
            .rules
            .iter()
            .filter(|r| {
                r.access.contains(AccessFs::ResolveUnix)
                    && target.starts_with(canon(&target_path(&r.target, &ws)))
            })
            .map(|r| target_name(&r.target, &ws))
            .collect();
        if by.is_empty() {
            return Decision {
                allowed: false,
                reason: format!(
                    "denied by Landlock: no rule grants connecting (RESOLVE_UNIX) on {} or a parent",
                    target.display()
                ),
            };
        }
        format!("Landlock grants RESOLVE_UNIX by {}", by.join(", "))
    } else {
        "Landlock on this kernel (ABI < 9) does not restrict connect(); the root decides".into()
    };
    if let (Some(bind), Some((uid, gid))) = (&seen.host, sb.user) {
        if let Err(why) = file_permissions(bind, &target, Want::Write, true, uid, gid) {
            return Decision {
                allowed: false,
                reason: format!("denied (file permissions): {why}"),
            };
        }
    }
    Decision {
        allowed: true,
        reason: format!("connect allowed: {}; {landlock}", seen.what),
    }
}

/// The host file's Unix permissions for the sandbox user, walking from the bind's root (what
/// lies above it in the sandbox is its own root) down to `object`.
fn file_permissions(
    bind: &Path,
    object: &Path,
    want: Want,
    exists: bool,
    uid: u32,
    gid: u32,
) -> Result<(), String> {
    use crate::permissions::{check, mode_of, Need};
    let mut parents = vec![];
    let mut cur = bind.to_path_buf();
    let rel = object.strip_prefix(bind).unwrap_or(Path::new(""));
    for c in rel.components() {
        if let Some(m) = mode_of(&cur) {
            parents.push((cur.clone(), m));
        }
        cur.push(c);
    }
    let Some(m) = mode_of(object) else {
        return Ok(());
    };
    let need = match want {
        Want::Read => Need::Read,
        Want::Exec => Need::Exec,
        Want::Write => Need::Write,
    };
    // Creating: w and x on the parent directory (`object` is the parent then).
    let is_dir = object.is_dir() && (exists || want == Want::Write);
    check(uid, gid, &parents, &m, need, is_dir)
}

/// Would a TCP connect to `port` be allowed? `host`: where to (None: the host's loopback).
pub fn connect(plan: &Plan, network: Network, host: Option<&str>, port: u16) -> Decision {
    let loopback = host.is_none_or(|h| {
        h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
    });
    match network {
        Network::None => Decision {
            allowed: false,
            reason: "denied: network = \"none\": seccomp refuses every socket but AF_UNIX (EAFNOSUPPORT), and Landlock handles TCP connect with no port allowed".into(),
        },
        Network::Private if loopback => Decision {
            allowed: false,
            reason: format!("denied: network = \"private\": the sandbox has its own network namespace with only a loopback; the host's port {port} does not exist there (servers the command starts itself are reachable)"),
        },
        Network::Private => Decision {
            allowed: false,
            reason: format!("denied: network = \"private\": the sandbox's own network namespace has only a loopback, so {} is unreachable", host.unwrap_or_default()),
        },
        Network::Ports if plan.handled_net.is_empty() => Decision {
            allowed: true,
            reason: "allowed: this kernel's Landlock (ABI < 4) cannot restrict TCP; the ports profile then fails closed only if min_landlock_abi requires ABI 4".into(),
        },
        Network::Ports if plan.net_rules.contains(&port) => Decision {
            allowed: true,
            reason: format!("allowed by Landlock: connect_ports lists {port} (to any host)"),
        },
        Network::Ports => Decision {
            allowed: false,
            reason: format!("denied by Landlock: connect_ports ({:?}) does not list {port}", plan.net_rules),
        },
        Network::Full => Decision {
            allowed: true,
            reason: "allowed: network = \"full\" (the host network, unrestricted)".into(),
        },
    }
}

fn size(b: u64) -> String {
    if b >= 1 << 30 && b.is_multiple_of(1 << 30) {
        format!("{} GiB", b >> 30)
    } else if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
        format!("{} MiB", b >> 20)
    } else {
        format!("{b} bytes")
    }
}

/// The sandbox's root, one line per mount plan step.
fn describe_root(mp: &MountPlan, p: &Profile) -> String {
    let mut s = String::from(
        "  root: a fresh tmpfs holding only these (everything else of the host is absent):\n",
    );
    for op in &mp.ops {
        let line = match op {
            MountOp::Tmpfs { path, from, .. } if path == Path::new("/") => {
                format!("/: {from}, read-only once built")
            }
            MountOp::Tmpfs {
                path,
                size_bytes,
                seal,
                from,
                ..
            } => format!(
                "{}: tmpfs of {} ({from}){}",
                path.display(),
                size(*size_bytes),
                if *seal { ", read-only once built" } else { "" }
            ),
            MountOp::Bind {
                source,
                devices: true,
                optional,
                ..
            } if source.starts_with("/dev") => format!(
                "{}: the host's device node{}",
                source.display(),
                if *optional { ", if present" } else { "" }
            ),
            MountOp::Bind {
                source,
                writable,
                from,
                optional,
                ..
            } => format!(
                "{}: {} bind of the host's ({from}){}",
                source.display(),
                if *writable { "read-write" } else { "read-only" },
                if *optional { ", if present" } else { "" }
            ),
            MountOp::Symlink { path, target, from } => {
                format!("{} -> {} ({from})", path.display(), target.display())
            }
            MountOp::Proc { path } => format!("{}: the sandbox's own proc", path.display()),
            MountOp::Devpts { path } => format!(
                "{}: the sandbox's own devpts instance (newinstance: its ptys only)",
                path.display()
            ),
            MountOp::Workspace { path, writable } => format!(
                "{}: the workspace, {} (bound last)",
                path.display(),
                if *writable { "read-write" } else { "read-only" }
            ),
        };
        s.push_str(&format!("    {line}\n"));
    }
    let _ = p;
    s
}

/// The sandbox-wide ceilings: the mechanism this host offers (`cgroups::probe`) and the control
/// files the profile's limits become (`confine::cgroup::plan`), or that there are none.
pub fn describe_cgroup(
    mode: crate::confine::cgroup::CgroupMode,
    available: &crate::cgroups::Available,
    l: &crate::policy::Limits,
) -> String {
    use crate::cgroups::Available;
    use crate::confine::cgroup::{plan, CgroupMode, Version};
    let version = match (mode, available) {
        (CgroupMode::Off, _) => Err("off in the config (cgroups = \"off\")".to_string()),
        (_, Available::V2 { .. }) => Ok(Version::V2),
        (_, Available::V1 { .. }) => Ok(Version::V1),
        (_, Available::None(why)) => Err(why.clone()),
    };
    let mut s = format!(
        "  whole sandbox: memory {}, {} processes, CPU weight {}\n",
        size(l.memory_bytes),
        l.pids,
        l.cpu_weight
    );
    match version {
        Ok(v) => {
            s.push_str(&format!(
                "  cgroup ({}): its own per sandbox, removed with it; the OOM killer acts at the memory ceiling (limit_hit: memory), fork fails with EAGAIN at the process ceiling (limit_hit: pids):\n",
                match v {
                    Version::V1 => "v1 memory and pids controllers; the CPU weight needs v2",
                    Version::V2 => "v2, delegated",
                }
            ));
            for w in plan(l, v).writes {
                s.push_str(&format!(
                    "    {} = {}  (limits.{}{})\n",
                    w.file,
                    w.value,
                    w.from,
                    if w.optional {
                        ", where the kernel has it"
                    } else {
                        ""
                    }
                ));
            }
        }
        Err(why) => {
            let why = if mode == CgroupMode::Required {
                format!("{why}; cgroups = \"required\": sandboxd serve refuses to start")
            } else {
                why
            };
            s.push_str(&format!(
                "  cgroup: NONE — {}\n",
                crate::cgroups::degraded_note(&why)
            ));
        }
    }
    s
}

/// The whole profile in plain words. `abi`: this kernel's Landlock ABI, or the errno that
/// stopped us asking (`host::landlock_abi`).
pub fn describe(
    cfg: &Config,
    name: &str,
    p: &Profile,
    abi: Result<ABI, i32>,
    workspace: &Path,
) -> String {
    let mut s = format!("profile {name:?}\n");
    s.push_str(&match (
        p.grant_uids.is_empty() && p.grant_gids.is_empty(),
        &p.grant_uids,
        &p.grant_gids,
    ) {
        (true, _, _) => "  granted to: every peer the daemon accepts\n".into(),
        (false, u, g) => format!("  granted to: uids {u:?}, gids {g:?}\n"),
    });
    match abi {
        Ok(abi) => {
            let plan = landlock::plan(&p.filesystem, p.network, &p.connect_ports, abi);
            s.push_str(&format!(
                "  Landlock (ABI {}): every filesystem right is handled; allowed:\n",
                abi as i32
            ));
            for r in &plan.rules {
                s.push_str(&format!(
                    "    {}: {}{}\n",
                    target_name(&r.target, workspace),
                    rights(r.access),
                    if r.optional { " (if present)" } else { "" }
                ));
            }
            if !plan.handled_net.is_empty() {
                s.push_str(&format!(
                    "    TCP bind: none; TCP connect: {}\n",
                    if plan.net_rules.is_empty() {
                        "none".to_string()
                    } else {
                        format!("ports {:?}", plan.net_rules)
                    }
                ));
            }
            if !plan.scopes.is_empty() {
                let mut v = vec![];
                if plan.scopes.contains(::landlock::Scope::AbstractUnixSocket) {
                    v.push("abstract unix sockets");
                }
                if plan.scopes.contains(::landlock::Scope::Signal) {
                    v.push("signals");
                }
                s.push_str(&format!(
                    "    scoped to the sandbox (nothing outside reachable): {}\n",
                    v.join(", ")
                ));
            }
        }
        Err(errno) => s.push_str(&format!(
            "  Landlock: {} (execs fail closed unless allow_degraded lists it)\n",
            crate::host::landlock_unavailable_message(errno)
        )),
    }
    match crate::confine::mounts::plan(
        &p.filesystem,
        p.limits.tmp_size_bytes,
        &crate::confine::mounts::host_probe,
    ) {
        Ok(mp) => s.push_str(&describe_root(
            &mp.with_workspace(workspace, p.filesystem.workspace_writable),
            p,
        )),
        Err(e) => s.push_str(&format!("  root: cannot be built: {e}\n")),
    }
    s.push_str("  namespaces: user, PID (own /proc), mount, IPC");
    s.push_str(if p.network == Network::Private {
        ", network\n"
    } else {
        "\n"
    });
    s.push_str(&format!(
        "  network: {}\n",
        match p.network {
            Network::None => "none — only AF_UNIX sockets; no TCP; abstract sockets scoped".to_string(),
            Network::Private => "private — own network namespace with loopback only".to_string(),
            Network::Ports => format!(
                "ports — host network, TCP connect to {:?} only, no bind; only AF_UNIX and TCP sockets (no UDP, so no DNS over UDP)",
                p.connect_ports
            ),
            Network::Full => "full — host network, unrestricted".to_string(),
        }
    ));
    s.push_str("  seccomp:\n");
    for l in crate::confine::seccomp_words::summary(p.network) {
        s.push_str(&format!("    {l}\n"));
    }
    let l = &p.limits;
    s.push_str(&format!(
        "  limits: timeout {} s (requests may ask up to {} s), output {} per stream, CPU {} s, address space {}, file size {}, open files {}, processes {}\n",
        p.timeout_secs, p.max_timeout_secs, size(p.output_limit_bytes), l.cpu_secs,
        size(l.address_space_bytes), size(l.file_size_bytes), l.open_files, l.processes
    ));
    s.push_str(&describe_cgroup(cfg.cgroups, &crate::cgroups::probe(), l));
    s.push_str(&disk_line(workspace, l.workspace_bytes));
    let set: Vec<String> = p.env_set.iter().map(|(k, v)| format!("{k}={v}")).collect();
    s.push_str(&format!(
        "  environment: PATH, HOME and PWD (the workspace), LANG, TERM{}; requests may pass: {}\n",
        if set.is_empty() {
            String::new()
        } else {
            format!(", {}", set.join(", "))
        },
        if p.env_pass.is_empty() {
            "nothing".to_string()
        } else {
            p.env_pass.join(", ")
        }
    ));
    s.push_str(&format!(
        "  guard: built-in patterns {}; deny_patterns {:?}; allow_patterns {:?}\n",
        if cfg.guard_defaults { "on" } else { "off" },
        cfg.deny_patterns,
        cfg.allow_patterns
    ));
    s
}

/// The workspace's byte ceiling (`limits.workspace_bytes`) and the mechanism that holds it for
/// this workspace (`disk.rs`).
fn disk_line(workspace: &Path, workspace_bytes: u64) -> String {
    let fs = crate::disk::probe_path(workspace);
    format!(
        "  workspace ceiling: workspace_bytes {}; in force for {}: {}\n",
        size(workspace_bytes),
        workspace.display(),
        crate::disk::decide(&fs, workspace_bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_for(p: &Profile) -> Plan {
        landlock::plan(&p.filesystem, p.network, &p.connect_ports, ABI::V7)
    }

    #[test]
    fn answers_follow_the_rules() {
        let p = Profile::default();
        let plan = plan_for(&p);
        let ws = std::env::temp_dir();
        let d = |path: &str, w| path_decision(&plan, &p, &ws, Path::new(path), w);
        assert!(d("/usr/bin", Want::Read).allowed);
        assert!(d("/etc", Want::Read).allowed);
        assert!(!d("/etc/hostname-nb-new", Want::Write).allowed);
        let root = d("/root", Want::Read);
        assert!(!root.allowed && root.reason.contains("absent"), "{root:?}");
        let run = d("/run", Want::Read);
        assert!(!run.allowed && run.reason.contains("absent"), "{run:?}");
        let w = d("/usr/bin/true", Want::Write);
        assert!(!w.allowed && w.reason.contains("Landlock"), "{w:?}");
        let ws_new = ws.join(format!("nb-explain-{}.txt", std::process::id()));
        assert!(d(&ws_new.to_string_lossy(), Want::Write).allowed);
        // Landlock lets /etc be read, the file's mode does not (nobody is not in shadow's group).
        if Path::new("/etc/shadow").exists() {
            let sh = d("/etc/shadow", Want::Read);
            assert!(
                !sh.allowed && sh.reason.starts_with("denied (file permissions)"),
                "{sh:?}"
            );
        }
        // The sandbox's own ptys.
        assert!(d("/dev/pts", Want::Read).allowed);
        assert!(d("/dev/tty", Want::Write).allowed);
    }

    fn path_decision(plan: &Plan, p: &Profile, ws: &Path, q: &Path, w: Want) -> Decision {
        let mounts = crate::confine::mounts::plan(
            &p.filesystem,
            p.limits.tmp_size_bytes,
            &crate::confine::mounts::host_probe,
        )
        .unwrap();
        let sb = Sandbox {
            profile: p,
            landlock: plan,
            mounts: &mounts,
            workspace: ws,
            user: Some((65534, 65534)),
        };
        path(&sb, q, w)
    }

    #[test]
    fn the_cgroup_plan_or_its_absence_is_shown() {
        use crate::cgroups::Available;
        use crate::confine::cgroup::CgroupMode;
        let l = crate::policy::Limits {
            memory_bytes: 128 << 20,
            pids: 32,
            ..Default::default()
        };
        let v1 = Available::V1 {
            memory: "/m".into(),
            pids: "/p".into(),
        };
        let s = describe_cgroup(CgroupMode::Auto, &v1, &l);
        assert!(s.contains("memory.limit_in_bytes = 134217728"), "{s}");
        assert!(s.contains("pids.max = 32  (limits.pids)"), "{s}");
        let s = describe_cgroup(CgroupMode::Off, &v1, &l);
        assert!(s.contains("NONE") && s.contains("per process only"), "{s}");
        let none = Available::None("nothing mounted".into());
        let s = describe_cgroup(CgroupMode::Required, &none, &l);
        assert!(s.contains("refuses to start"), "{s}");
    }

    #[test]
    fn ports_answers() {
        let p = Profile {
            network: Network::Ports,
            connect_ports: vec![443],
            ..Profile::default()
        };
        let plan = plan_for(&p);
        assert!(connect(&plan, p.network, None, 443).allowed);
        assert!(connect(&plan, p.network, Some("192.0.2.1"), 443).allowed);
        assert!(!connect(&plan, p.network, None, 80).allowed);
        assert!(!connect(&plan_for(&Profile::default()), Network::None, None, 443).allowed);
        let private = Profile {
            network: Network::Private,
            ..Profile::default()
        };
        let d = connect(&plan_for(&private), private.network, Some("::1"), 8080);
        assert!(
            !d.allowed && d.reason.contains("port 8080 does not exist there"),
            "{d:?}"
        );
        let d = connect(&plan_for(&private), private.network, Some("192.0.2.1"), 80);
        assert!(
            !d.allowed && d.reason.contains("192.0.2.1 is unreachable"),
            "{d:?}"
        );
    }
}

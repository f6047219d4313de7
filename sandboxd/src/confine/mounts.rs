//! Policy → mount plan: the root a sandbox sees, built from its profile instead of the host's.
//!
//! `plan` is pure: it turns a profile's filesystem policy (and what the host has at those paths,
//! asked through a `probe`) into an ordered list of `MountOp`s. The sandbox init executes the list
//! (`crate::rootfs`) on a fresh tmpfs and pivots into it; `sandboxd explain` reads the same list to
//! say whether a path is there at all, and how. Whatever no operation names is simply absent:
//! host `/run`, `/home`, `/root`, `/var/lib`, other tenants' workspaces and every named socket
//! in them.

// The plan's data types live with the rest of the policy data (they travel in `SandboxSpec`).
use crate::policy::{FsPolicy, SANDBOX_SHM, SANDBOX_TMP};
pub use crate::policy::{MountOp, MountPlan};
use std::path::{Component, Path, PathBuf};

/// What the host has at a path (`lstat`, not following a final symlink).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKind {
    Missing,
    Dir,
    /// A regular file or a device node.
    File,
    /// A named AF_UNIX socket.
    Socket,
    /// A symlink, with its target as written.
    Symlink(PathBuf),
}

/// Device nodes bound from the host into the sandbox's own /dev, with their Landlock rights
/// decided in `confine::landlock` (`/dev/tty` is the controlling terminal of whoever opens it: the
/// sandbox's own pseudo-terminal, never the host's).
pub const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// The sandbox's own devpts instance (`newinstance`): ptys made inside are the only ones there.
pub const DEV_PTS: &str = "/dev/pts";

/// Symlinks every /dev has.
pub const DEV_LINKS: &[(&str, &str)] = &[
    ("/dev/ptmx", "pts/ptmx"),
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
];

/// Size of the root tmpfs: it holds only directories, symlinks and mount points.
pub const SMALL_TMPFS_BYTES: u64 = 1 << 20;

/// Lexical normalisation: `.` dropped, `..` taken back (never above `/`). Pure.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The path a symlink at `link` with target `target` points to, lexically.
fn link_target(link: &Path, target: &Path) -> PathBuf {
    if target.is_absolute() {
        normalize(target)
    } else {
        normalize(&link.parent().unwrap_or(Path::new("/")).join(target))
    }
}

/// Follow symlinks in every component of `p` with `probe`, as the kernel would (at most 40).
/// None when the path does not exist or loops.
pub fn resolve(p: &Path, probe: &dyn Fn(&Path) -> HostKind) -> Option<PathBuf> {
    let mut todo: Vec<PathBuf> = normalize(p)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(PathBuf::from(s)),
            _ => None,
        })
        .rev()
        .collect();
    let mut cur = PathBuf::from("/");
    let mut links = 0;
    while let Some(name) = todo.pop() {
        let next = cur.join(&name);
        match probe(&next) {
            HostKind::Missing => return None,
            HostKind::Symlink(t) => {
                links += 1;
                if links > 40 {
                    return None;
                }
                let t = link_target(&next, &t);
                for c in t
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(s) => Some(PathBuf::from(s)),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                {
                    todo.push(c);
                }
                cur = PathBuf::from("/");
            }
            _ => cur = next,
        }
    }
    Some(cur)
}

/// Why a profile cannot be turned into a root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountPlanError {
    #[error("{key}: {path} is inside {inside}, which the sandbox builds itself")]
    Reserved {
        key: &'static str,
        path: PathBuf,
        inside: &'static str,
    },
    #[error("{key}: {path} would show the host's whole root")]
    WholeRoot { key: &'static str, path: PathBuf },
    #[error("{key}: {path} does not exist")]
    Missing { key: &'static str, path: PathBuf },
    #[error("{key}: {path} is not a socket")]
    NotSocket { key: &'static str, path: PathBuf },
}

impl MountPlanError {
    /// The profile key the problem is under (`filesystem.read_only`, ...).
    pub fn key(&self) -> &'static str {
        match self {
            MountPlanError::Reserved { key, .. }
            | MountPlanError::WholeRoot { key, .. }
            | MountPlanError::Missing { key, .. }
            | MountPlanError::NotSocket { key, .. } => key,
        }
    }

    /// The message without the key.
    pub fn detail(&self) -> String {
        let full = self.to_string();
        full.strip_prefix(&format!("{}: ", self.key()))
            .unwrap_or(&full)
            .to_string()
    }
}

/// Paths a profile may not name, nor reach through a symlink: the sandbox's own /proc and /dev
/// (the host's would bring every process, device and terminal of the host with them).
pub fn reserved(path: &Path) -> Option<&'static str> {
    let p = normalize(path);
    ["/proc", "/dev"].into_iter().find(|r| p.starts_with(r))
}

/// A named path (as written, or as it resolves) that may not be bound: `/` or a reserved tree.
fn forbidden(n: &Named, p: &Path) -> Result<(), MountPlanError> {
    if p == Path::new("/") {
        return Err(MountPlanError::WholeRoot {
            key: n.key,
            path: n.path.clone(),
        });
    }
    match reserved(p) {
        Some(inside) => Err(MountPlanError::Reserved {
            key: n.key,
            path: n.path.clone(),
            inside,
        }),
        None => Ok(()),
    }
}

struct Named {
    key: &'static str,
    path: PathBuf,
    writable: bool,
    optional: bool,
    socket: bool,
}

/// Build the mount plan for a filesystem policy. `tmp_size_bytes` sizes the private /tmp and
/// /dev/shm. `probe` says what the host has at a path (`host_probe` in the daemon, a table in
/// tests). The workspace is not part of it: `with_workspace` appends it per request.
///
/// Order: the root tmpfs, /proc, /dev (devices, devpts, links), the private /tmp and /dev/shm,
/// then the profile's paths parents first, then granted sockets. A named path that is a symlink
/// is recreated as that symlink and its target bound; a path already visible read-only through
/// a named parent is bound again only when it must be writable.
pub fn plan(
    fs: &FsPolicy,
    tmp_size_bytes: u64,
    probe: &dyn Fn(&Path) -> HostKind,
) -> Result<MountPlan, MountPlanError> {
    let mut ops = vec![
        MountOp::Tmpfs {
            path: "/".into(),
            size_bytes: SMALL_TMPFS_BYTES,
            mode: 0o755,
            seal: true,
            from: "the sandbox's own root".into(),
        },
        MountOp::Proc {
            path: "/proc".into(),
        },
    ];
    // /dev is a directory of the root tmpfs (sealed with it) holding the device binds below.
    for d in DEVICES {
        ops.push(MountOp::Bind {
            source: d.into(),
            path: d.into(),
            dir: false,
            writable: true,
            devices: true,
            optional: true,
            socket: false,
            from: "the sandbox's own /dev".into(),
        });
    }
    ops.push(MountOp::Devpts {
        path: DEV_PTS.into(),
    });
    for (l, t) in DEV_LINKS {
        ops.push(MountOp::Symlink {
            path: l.into(),
            target: t.into(),
            from: "the sandbox's own /dev".into(),
        });
    }
    if fs.private_tmp {
        for p in [SANDBOX_TMP, SANDBOX_SHM] {
            ops.push(MountOp::Tmpfs {
                path: p.into(),
                size_bytes: tmp_size_bytes,
                mode: 0o1777,
                seal: false,
                from: "filesystem.private_tmp".into(),
            });
        }
    }

    let mut named = vec![];
    for (key, paths, writable, optional) in [
        ("filesystem.read_exec", &fs.read_exec, false, true),
        ("filesystem.read_only", &fs.read_only, false, false),
        ("filesystem.read_write", &fs.read_write, true, false),
    ] {
        for p in paths {
            named.push(Named {
                key,
                path: normalize(p),
                writable,
                optional,
                socket: false,
            });
        }
    }
    for p in &fs.unix_sockets {
        named.push(Named {
            key: "filesystem.unix_sockets",
            path: normalize(p),
            writable: true,
            optional: false,
            socket: true,
        });
    }
    for n in &named {
        forbidden(n, &n.path)?;
    }

    // Symlinks named directly (e.g. /bin -> usr/bin on merged-/usr systems) are recreated; what
    // gets bound is always the resolved path, so no bind lands on a symlink.
    let mut links: Vec<(PathBuf, PathBuf, &'static str)> = vec![];
    let mut binds: Vec<(PathBuf, &Named, HostKind)> = vec![];
    for n in &named {
        if let HostKind::Symlink(t) = probe(&n.path) {
            if resolve(n.path.parent().unwrap_or(Path::new("/")), probe).as_deref()
                == n.path.parent()
            {
                links.push((n.path.clone(), t, n.key));
            }
        }
        let Some(real) = resolve(&n.path, probe) else {
            if n.socket {
                // Not there now: bound if it is when a command starts (the plan is made once per
                // configuration load, sockets come and go).
                binds.push((n.path.clone(), n, HostKind::Socket));
                continue;
            }
            if n.optional {
                continue;
            }
            return Err(MountPlanError::Missing {
                key: n.key,
                path: n.path.clone(),
            });
        };
        // What a name leads to is what gets bound: check that too (a symlink to / or /proc).
        forbidden(n, &real)?;
        let kind = probe(&real);
        if n.socket && kind != HostKind::Socket {
            return Err(MountPlanError::NotSocket {
                key: n.key,
                path: n.path.clone(),
            });
        }
        binds.push((real, n, kind));
    }
    // Parents first; for one path, the writable grant wins.
    binds.sort_by(|a, b| {
        (a.0.components().count(), &a.0, !a.1.writable).cmp(&(
            b.0.components().count(),
            &b.0,
            !b.1.writable,
        ))
    });
    let mut bound: Vec<(PathBuf, bool)> = vec![];
    for (real, n, kind) in binds {
        // The innermost bind already covering this path, if any.
        let cover = bound
            .iter()
            .filter(|(p, _)| real.starts_with(p))
            .max_by_key(|(p, _)| p.components().count());
        if let Some((_, w)) = cover {
            if *w == n.writable && !n.socket {
                continue;
            }
        }
        bound.push((real.clone(), n.writable));
        ops.push(MountOp::Bind {
            source: real.clone(),
            path: real.clone(),
            dir: kind == HostKind::Dir,
            writable: n.writable && !n.socket,
            devices: false,
            // A socket that went away is simply not there (nothing more is reachable).
            optional: n.socket,
            socket: n.socket,
            from: n.key.into(),
        });
    }
    // A link inside a bound directory is the host's own already.
    links.sort();
    links.dedup();
    for (path, target, key) in links {
        if !bound.iter().any(|(b, _)| path.starts_with(b)) {
            ops.push(MountOp::Symlink {
                path,
                target,
                from: key.into(),
            });
        }
    }
    Ok(MountPlan { ops })
}

impl MountPlan {
    /// The plan with the request's workspace bound last, over everything else.
    pub fn with_workspace(&self, path: &Path, writable: bool) -> MountPlan {
        let mut p = self.clone();
        p.ops.push(MountOp::Workspace {
            path: normalize(path),
            writable,
        });
        p
    }

    /// The operation that decides what the sandbox sees at `path` (a path with its symlinks
    /// already resolved): the last-applied one at or above it. None: only the root tmpfs, i.e.
    /// the path is absent (or is an empty directory leading to a mount point).
    pub fn covering(&self, path: &Path) -> Option<&MountOp> {
        let path = normalize(path);
        self.ops
            .iter()
            .rev()
            .filter(|op| !matches!(op, MountOp::Symlink { .. }))
            .filter(|op| op.path() != Path::new("/"))
            .find(|op| path.starts_with(op.path()))
    }

    /// True when `path` is a directory the root tmpfs holds only to reach a mount point.
    pub fn is_mount_parent(&self, path: &Path) -> bool {
        let path = normalize(path);
        self.ops
            .iter()
            .any(|op| op.path() != path && op.path().starts_with(&path))
    }
}

/// Ask the host what is at `path` (lstat). Used by the daemon and `explain`; tests pass tables.
pub fn host_probe(path: &Path) -> HostKind {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Err(_) => HostKind::Missing,
        Ok(m) if m.file_type().is_symlink() => std::fs::read_link(path)
            .map(HostKind::Symlink)
            .unwrap_or(HostKind::Missing),
        Ok(m) if m.is_dir() => HostKind::Dir,
        Ok(m) if m.file_type().is_socket() => HostKind::Socket,
        Ok(_) => HostKind::File,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A merged-/usr host: /bin, /lib, /lib64 and /sbin are links into /usr.
    fn host() -> HashMap<PathBuf, HostKind> {
        let mut h: HashMap<PathBuf, HostKind> = HashMap::new();
        for d in [
            "/usr",
            "/usr/bin",
            "/usr/lib",
            "/usr/sbin",
            "/etc",
            "/dev",
            "/run",
            "/run/user",
            "/opt",
            "/opt/tool",
            "/opt/tool/cache",
            "/srv",
        ] {
            h.insert(d.into(), HostKind::Dir);
        }
        for (l, t) in [
            ("/bin", "usr/bin"),
            ("/lib", "usr/lib"),
            ("/sbin", "usr/sbin"),
            ("/lib64", "/usr/lib"),
            ("/opt/latest", "tool"),
        ] {
            h.insert(l.into(), HostKind::Symlink(t.into()));
        }
        for f in ["/dev/null", "/dev/zero", "/dev/tty", "/etc/passwd"] {
            h.insert(f.into(), HostKind::File);
        }
        h.insert("/run/user/agent.sock".into(), HostKind::Socket);
        h
    }

    fn probe_of(h: &HashMap<PathBuf, HostKind>) -> impl Fn(&Path) -> HostKind + '_ {
        |p: &Path| h.get(p).cloned().unwrap_or(HostKind::Missing)
    }

    fn binds(p: &MountPlan) -> Vec<(String, bool)> {
        p.ops
            .iter()
            .filter_map(|o| match o {
                MountOp::Bind {
                    path,
                    writable,
                    devices: false,
                    ..
                } => Some((path.display().to_string(), *writable)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn default_profile_binds_system_dirs_and_recreates_usr_links() {
        let h = host();
        let p = plan(&FsPolicy::default(), 1 << 20, &probe_of(&h)).unwrap();
        assert_eq!(
            binds(&p),
            vec![("/etc".to_string(), false), ("/usr".to_string(), false)]
        );
        let links: Vec<_> = p
            .ops
            .iter()
            .filter_map(|o| match o {
                MountOp::Symlink { path, target, .. } => {
                    Some((path.display().to_string(), target.display().to_string()))
                }
                _ => None,
            })
            .collect();
        for want in [
            ("/bin", "usr/bin"),
            ("/lib64", "/usr/lib"),
            ("/dev/ptmx", "pts/ptmx"),
        ] {
            assert!(
                links.contains(&(want.0.to_string(), want.1.to_string())),
                "{links:?}"
            );
        }
        // The first op is the root tmpfs; /proc, /dev, devpts and the private /tmp are ours.
        assert!(
            matches!(&p.ops[0], MountOp::Tmpfs { path, seal: true, .. } if path == Path::new("/"))
        );
        assert!(p.ops.contains(&MountOp::Proc {
            path: "/proc".into()
        }));
        assert!(p.ops.contains(&MountOp::Devpts {
            path: "/dev/pts".into()
        }));
        for absent in [
            "/run",
            "/run/user/agent.sock",
            "/home/u",
            "/root",
            "/var/lib",
            "/srv",
        ] {
            assert!(p.covering(Path::new(absent)).is_none(), "{absent}");
        }
        assert!(matches!(
            p.covering(Path::new("/tmp/x")),
            Some(MountOp::Tmpfs { from, .. }) if from == "filesystem.private_tmp"
        ));
        assert!(matches!(
            p.covering(Path::new("/usr/bin/sh")),
            Some(MountOp::Bind {
                writable: false,
                ..
            })
        ));
    }

    #[test]
    fn nested_paths_are_bound_only_where_writability_changes() {
        let h = host();
        let fs = FsPolicy {
            read_exec: vec!["/opt".into(), "/usr".into()],
            read_only: vec!["/opt/tool".into(), "/opt/latest".into()],
            read_write: vec!["/opt/tool/cache".into()],
            private_tmp: false,
            ..FsPolicy::default()
        };
        let p = plan(&fs, 1 << 20, &probe_of(&h)).unwrap();
        assert_eq!(
            binds(&p),
            vec![
                ("/opt".to_string(), false),
                ("/usr".to_string(), false),
                ("/opt/tool/cache".to_string(), true)
            ]
        );
        // A link inside a bound dir is the host's own; nothing is created for it.
        assert!(!p.ops.iter().any(
            |o| matches!(o, MountOp::Symlink { path, .. } if path == Path::new("/opt/latest"))
        ));
        assert!(p.covering(Path::new("/tmp")).is_none());
        let ws = p.with_workspace(Path::new("/srv/ws/"), true);
        assert!(matches!(
            ws.covering(Path::new("/srv/ws/a")),
            Some(MountOp::Workspace { writable: true, .. })
        ));
        assert!(ws.is_mount_parent(Path::new("/srv")));
        assert!(ws.covering(Path::new("/srv/other")).is_none());
    }

    #[test]
    fn sockets_are_bound_one_by_one_and_must_be_sockets() {
        let h = host();
        let fs = FsPolicy {
            unix_sockets: vec!["/run/user/agent.sock".into()],
            ..FsPolicy::default()
        };
        let p = plan(&fs, 1 << 20, &probe_of(&h)).unwrap();
        assert!(p.ops.contains(&MountOp::Bind {
            source: "/run/user/agent.sock".into(),
            path: "/run/user/agent.sock".into(),
            dir: false,
            writable: false,
            devices: false,
            optional: true,
            socket: true,
            from: "filesystem.unix_sockets".into(),
        }));
        assert!(p.covering(Path::new("/run/user/other.sock")).is_none());
        // A socket missing now is still planned, as optional: bound when it exists.
        let later = FsPolicy {
            unix_sockets: vec!["/run/user/later.sock".into()],
            ..FsPolicy::default()
        };
        let p = plan(&later, 1 << 20, &probe_of(&h)).unwrap();
        assert!(matches!(
            p.covering(Path::new("/run/user/later.sock")),
            Some(MountOp::Bind {
                optional: true,
                dir: false,
                ..
            })
        ));
        let bad = FsPolicy {
            unix_sockets: vec!["/etc/passwd".into()],
            ..FsPolicy::default()
        };
        assert!(matches!(
            plan(&bad, 1 << 20, &probe_of(&h)),
            Err(MountPlanError::NotSocket { .. })
        ));
    }

    #[test]
    fn reserved_missing_and_root_paths_are_refused() {
        let h = host();
        let with = |ro: &str| FsPolicy {
            read_only: vec![ro.into()],
            ..FsPolicy::default()
        };
        assert!(matches!(
            plan(&with("/proc/1"), 1, &probe_of(&h)),
            Err(MountPlanError::Reserved { .. })
        ));
        assert!(matches!(
            plan(&with("/"), 1, &probe_of(&h)),
            Err(MountPlanError::WholeRoot { .. })
        ));
        assert!(matches!(
            plan(&with("/nonexistent"), 1, &probe_of(&h)),
            Err(MountPlanError::Missing { .. })
        ));
        // Through a symlink too, and the host's /dev.
        let mut l = h.clone();
        l.insert("/proc".into(), HostKind::Dir);
        l.insert("/opt/proclink".into(), HostKind::Symlink("/proc".into()));
        l.insert("/opt/rootlink".into(), HostKind::Symlink("../..".into()));
        assert!(matches!(
            plan(&with("/opt/proclink"), 1, &probe_of(&l)),
            Err(MountPlanError::Reserved {
                inside: "/proc",
                ..
            })
        ));
        assert!(matches!(
            plan(&with("/opt/rootlink"), 1, &probe_of(&l)),
            Err(MountPlanError::WholeRoot { .. })
        ));
        assert!(matches!(
            plan(&with("/dev"), 1, &probe_of(&l)),
            Err(MountPlanError::Reserved { inside: "/dev", .. })
        ));
        // read_exec entries are optional (/lib32 on most hosts).
        let fs = FsPolicy {
            read_exec: vec!["/lib32".into(), "/usr".into()],
            ..FsPolicy::default()
        };
        assert!(plan(&fs, 1, &probe_of(&h)).is_ok());
    }

    #[test]
    fn resolve_follows_links_like_the_kernel() {
        let h = host();
        let r = |p: &str| resolve(Path::new(p), &probe_of(&h));
        assert_eq!(r("/bin"), Some("/usr/bin".into()));
        assert_eq!(r("/lib64"), Some("/usr/lib".into()));
        assert_eq!(r("/opt/latest/cache"), Some("/opt/tool/cache".into()));
        assert_eq!(r("/opt/../etc/passwd"), Some("/etc/passwd".into()));
        assert_eq!(r("/nope"), None);
        let mut l = h.clone();
        l.insert("/loop".into(), HostKind::Symlink("/loop".into()));
        assert_eq!(resolve(Path::new("/loop"), &probe_of(&l)), None);
    }
}

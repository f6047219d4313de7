//! The sandboxes' cgroups on the host: which interface this host offers (`probe`), the daemon's
//! subtree prepared while it is still root (`prepare`), and one cgroup per sandbox created with the
//! profile's plan (`confine::cgroup::plan`), the sandbox's init moved into it (v2) or moving
//! itself into it (v1, `Entry`) before the command starts, read after the command ended and removed with the sandbox, or on v1 emptied and kept
//! for the next one (`SandboxCgroup`, `Pool`).
//!
//! Layout. v1 (the `memory` and `pids` hierarchies): `<own>/sandboxd/d<daemon pid>/slot-<n>` in
//! each, `<own>` being the daemon's cgroup in that hierarchy; `sandboxd/` is root's and
//! `d<pid>` the daemon user's, so the dropped daemon creates and removes its sandboxes' cgroups
//! and nothing above them. A `d<pid>` whose daemon is gone is removed at the next start. v2 (a
//! delegated subtree, systemd `Delegate=yes`): the daemon moves itself to `<own>/daemon` (a
//! cgroup with children may hold no process) and creates its sandboxes in `<own>/sandboxes`
//! (`sb-<init pid>`).
//!
//! Reuse (v1). Making and removing a memcg is most of what a per-sandbox cgroup costs, so on v1
//! a sandbox's cgroups (`slot-<n>`) are not removed when it ended but kept, emptied and reset, for
//! the next sandbox with the same plan (`Pool`, at most `POOL_MAX` idle). Reset: the peak
//! (`memory.max_usage_in_bytes`) and `memory.failcnt` are zeroed; `oom_kill` and pids `max`
//! cannot be, so they are recorded and each sandbox is told the difference. Memory still charged
//! to the cgroup (page cache of earlier sandboxes) is reclaimed with `memory.force_empty` when
//! above `RESIDUE_MAX`; a slot still above it, or with any process in it, or any file that
//! cannot be read or written, is removed instead (and a fresh one made for the next sandbox).
//! v2's `memory.peak` is reset per open file only, so v2 sandboxes keep a cgroup each.

use crate::confine::cgroup::{self, CgroupMode, Controller, Usage, Version};
use crate::policy::Limits;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Idle reusable sandbox cgroups kept at most (more are removed).
pub const POOL_MAX: usize = 8;

/// Memory (bytes) still charged to an emptied cgroup that a reused one may carry: above it the
/// cgroup is emptied with `memory.force_empty`, and removed if that does not bring it below.
pub const RESIDUE_MAX: u64 = 1 << 20;

/// What the host offers, before anything is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Available {
    /// cgroup v2 with the memory and pids controllers in the daemon's own cgroup, delegated.
    V2 { own: PathBuf },
    /// The v1 memory and pids hierarchies: the daemon's own cgroup in each.
    V1 { memory: PathBuf, pids: PathBuf },
    /// Neither: why.
    None(String),
}

/// The mechanism in force for this daemon's sandboxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    /// The directory sandboxes are created in.
    V2 { base: PathBuf },
    /// The directories sandboxes are created in, one per hierarchy.
    V1 { memory: PathBuf, pids: PathBuf },
    /// No per-sandbox cgroup: why (rlimits only).
    None(String),
}

/// The daemon's cgroups, prepared at start.
#[derive(Debug, Clone)]
pub struct Cgroups {
    pub mode: CgroupMode,
    pub mechanism: Mechanism,
    /// The idle v1 sandbox cgroups, ready for reuse.
    pool: Arc<Pool>,
}

/// Reusable (v1) sandbox cgroups not in use, and the number the next new one gets.
#[derive(Debug, Default)]
pub struct Pool {
    idle: Mutex<Vec<SandboxCgroup>>,
    next: AtomicU64,
}

impl Pool {
    /// An idle cgroup whose limits are `writes` (the most recently returned one).
    fn take(&self, writes: &[cgroup::Write]) -> Option<SandboxCgroup> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let i = idle.iter().rposition(|c| c.writes == writes)?;
        Some(idle.remove(i))
    }

    /// Keep `c` for reuse; the oldest idle one is given back when the pool is full, to be removed.
    fn put(&self, c: SandboxCgroup) -> Option<SandboxCgroup> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.push(c);
        (idle.len() > POOL_MAX).then(|| idle.remove(0))
    }

    fn drain(&self) -> Vec<SandboxCgroup> {
        std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Where a mounted hierarchy's root is, and which part of the cgroup tree it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub root: String,
    pub mountpoint: PathBuf,
}

/// The cgroup mounts of a mountinfo text: v2 (`cgroup2`), and each v1 hierarchy by controller.
pub fn parse_mounts(mountinfo: &str) -> (Option<Mount>, Vec<(Vec<String>, Mount)>) {
    let mut v2 = None;
    let mut v1 = vec![];
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = pre.split(' ').collect();
        let g: Vec<&str> = post.split(' ').collect();
        if f.len() < 5 || g.len() < 3 {
            continue;
        }
        let m = Mount {
            root: unescape(f[3]),
            mountpoint: PathBuf::from(unescape(f[4])),
        };
        match g[0] {
            "cgroup2" if v2.is_none() => v2 = Some(m),
            "cgroup" => {
                let ctl = g[2].split(',').map(String::from).collect();
                v1.push((ctl, m));
            }
            _ => {}
        }
    }
    (v2, v1)
}

/// Mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The process's cgroup path in the v2 hierarchy and in the v1 hierarchy of `controller`, from
/// a /proc/PID/cgroup text.
pub fn own_path(proc_cgroup: &str, controller: Option<&str>) -> Option<String> {
    proc_cgroup.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let (_, ctl, path) = (it.next()?, it.next()?, it.next()?);
        let hit = match controller {
            None => ctl.is_empty(),
            Some(c) => ctl.split(',').any(|x| x == c),
        };
        hit.then(|| path.to_string())
    })
}

/// The directory of cgroup `path` under a mount (None: the mount does not show it).
pub fn dir_of(m: &Mount, path: &str) -> Option<PathBuf> {
    let rel = if m.root == "/" {
        path
    } else {
        path.strip_prefix(m.root.as_str())?
    };
    let rel = rel.trim_start_matches('/');
    Some(if rel.is_empty() {
        m.mountpoint.clone()
    } else {
        m.mountpoint.join(rel)
    })
}

/// Which interface this host offers the daemon (as seen by the calling process).
pub fn probe() -> Available {
    let (Some(mountinfo), Some(own)) = (
        crate::host::read("/proc/self/mountinfo"),
        crate::host::read("/proc/self/cgroup"),
    ) else {
        return Available::None("/proc/self/mountinfo or /proc/self/cgroup is unreadable".into());
    };
    let (v2, v1) = parse_mounts(&mountinfo);
    let mut why_not_v2 = "cgroup v2 is not mounted".to_string();
    if let (Some(m), Some(p)) = (&v2, own_path(&own, None)) {
        if let Some(dir) = dir_of(m, &p) {
            let ctl = crate::host::read(&dir.join("cgroup.controllers").to_string_lossy())
                .unwrap_or_default();
            let has = |c: &str| ctl.split_whitespace().any(|x| x == c);
            if !(has("memory") && has("pids")) {
                why_not_v2 = format!(
                    "cgroup v2 at {} offers no memory and pids controllers here",
                    dir.display()
                );
            } else if !delegated(&dir) {
                // What to do is `host::cgroups_fix`, shown beside this by doctor and Info.
                why_not_v2 = format!("cgroup v2 {} is not delegated to sandboxd", dir.display());
            } else {
                return Available::V2 { own: dir };
            }
        }
    }
    let find = |c: &str| {
        let (_, m) = v1.iter().find(|(ctl, _)| ctl.iter().any(|x| x == c))?;
        dir_of(m, &own_path(&own, Some(c))?)
    };
    match (find("memory"), find("pids")) {
        (Some(memory), Some(pids)) => Available::V1 { memory, pids },
        (m, p) => Available::None(format!(
            "{why_not_v2}, and the cgroup v1 {} hierarchy is not mounted",
            match (m, p) {
                (None, None) => "memory and pids",
                (None, _) => "memory",
                _ => "pids",
            }
        )),
    }
}

/// Whether the v2 cgroup `dir` was delegated to us: systemd marks a delegated cgroup with the
/// `trusted.delegate` (or, for user managers, `user.delegate`) xattr; without systemd, a
/// cgroup owned by a non-root daemon was given to it.
fn delegated(dir: &Path) -> bool {
    let has_xattr = |name: &std::ffi::CStr| {
        let Ok(p) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: `p` is a CString owned by this closure and `name` a &CStr the caller keeps
        // (static names), both alive through the call and read by the kernel up to their NULs;
        // the value buffer is null with size 0, so the kernel writes nothing and only returns
        // the value's length (or -1).
        unsafe { libc::getxattr(p.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
    };
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    has_xattr(c"trusted.delegate")
        || has_xattr(c"user.delegate")
        || (euid != 0
            && std::fs::metadata(dir)
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == euid)
                .unwrap_or(false))
}

fn ctx(what: &str, p: &Path, e: io::Error) -> String {
    format!("{what} {}: {e}", p.display())
}

fn mkdir(p: &Path) -> Result<(), String> {
    match std::fs::create_dir(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(ctx("creating", p, e)),
    }
}

fn chown(p: &Path, owner: Option<(u32, u32)>) -> Result<(), String> {
    match owner {
        Some((u, g)) => {
            std::os::unix::fs::chown(p, Some(u), Some(g)).map_err(|e| ctx("chown", p, e))
        }
        None => Ok(()),
    }
}

/// Remove the sandbox cgroups (`sb-*`, and the reusable `slot-*`) under `dir` that hold no
/// process, then `dir` itself when `and_dir`. What still holds processes stays (EBUSY).
fn remove_empty(dir: &Path, and_dir: bool) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let n = e.file_name();
            if n.as_bytes().starts_with(b"sb-") || n.as_bytes().starts_with(b"slot-") {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
    if and_dir {
        let _ = std::fs::remove_dir(dir);
    }
}

/// The per-daemon directory of a v1 hierarchy: `<own>/sandboxd/d<pid>`, made while root and
/// given to `owner`; the leftovers of daemons that are gone are removed first.
fn prepare_v1(own: &Path, owner: Option<(u32, u32)>) -> Result<PathBuf, String> {
    let base = own.join("sandboxd");
    mkdir(&base)?;
    if let Ok(rd) = std::fs::read_dir(&base) {
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix('d'))
                .and_then(|n| n.parse::<libc::pid_t>().ok())
            else {
                continue;
            };
            // SAFETY: kill with signal 0 only checks whether the process exists.
            let alive = unsafe { libc::kill(pid, 0) } == 0
                || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
            // SAFETY: getpid has no preconditions.
            if !alive || pid == unsafe { libc::getpid() } {
                remove_empty(&e.path(), true);
            }
        }
    }
    // SAFETY: getpid has no preconditions.
    let mine = base.join(format!("d{}", unsafe { libc::getpid() }));
    mkdir(&mine)?;
    chown(&mine, owner)?;
    Ok(mine)
}

/// The v2 layout in a delegated cgroup: ourselves in `<own>/daemon`, the controllers enabled
/// for `<own>/sandboxes` and its children, both given to `owner` with `<own>/cgroup.procs` (a
/// move between two cgroups needs write access to their common parent's).
fn prepare_v2(own: &Path, owner: Option<(u32, u32)>) -> Result<PathBuf, String> {
    let leaf = own.join("daemon");
    mkdir(&leaf)?;
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() }.to_string();
    write(&leaf.join("cgroup.procs"), &me)?;
    let ctl =
        crate::host::read(&own.join("cgroup.controllers").to_string_lossy()).unwrap_or_default();
    let mut enable = vec!["+memory", "+pids"];
    if ctl.split_whitespace().any(|c| c == "cpu") {
        enable.push("+cpu");
    }
    let enable = enable.join(" ");
    write(&own.join("cgroup.subtree_control"), &enable)?;
    let base = own.join("sandboxes");
    mkdir(&base)?;
    remove_empty(&base, false);
    write(&base.join("cgroup.subtree_control"), &enable)?;
    for p in [
        base.clone(),
        base.join("cgroup.procs"),
        base.join("cgroup.subtree_control"),
        own.join("cgroup.procs"),
        leaf.join("cgroup.procs"),
    ] {
        chown(&p, owner)?;
    }
    Ok(base)
}

fn write(p: &Path, v: &str) -> Result<(), String> {
    std::fs::write(p, v).map_err(|e| ctx(&format!("writing {v:?} to"), p, e))
}

/// A directory of ours, open as O_PATH, to reach its files with one path component.
fn open_dir(p: &Path) -> Option<OwnedFd> {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a NUL-terminated path alive for the call; openat only reads it.
    let fd = unsafe {
        libc::openat(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    // SAFETY: a non-negative openat result is a new fd that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `name` in the directory `dir` (an O_PATH fd), opened for reading or writing.
fn open_at(dir: &OwnedFd, name: &str, write: bool) -> io::Result<std::fs::File> {
    let c =
        std::ffi::CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // O_TRUNC as `fs::write` has it: kernfs ignores it, a plain file (the tests) needs it.
    let flags = if write {
        libc::O_WRONLY | libc::O_TRUNC
    } else {
        libc::O_RDONLY
    } | libc::O_CLOEXEC
        | libc::O_NOFOLLOW;
    // SAFETY: `dir` is an open fd and `c` a NUL-terminated name, both alive for the call.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a non-negative openat result is a new fd that nothing else owns.
    Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// The whole text of a small kernel file, without the size query (`statx`) that
/// `fs::read_to_string` makes first: cgroup files report size 0 anyway.
fn read_small(mut f: std::fs::File) -> io::Result<String> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(out).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

impl Cgroups {
    /// Prepare the daemon's subtree (while still root when started as root; `owner` is the user
    /// it drops to). `Required` without a mechanism is an error: the daemon does not start.
    pub fn prepare(mode: CgroupMode, owner: Option<(u32, u32)>) -> Result<Cgroups, String> {
        let mechanism = match mode {
            CgroupMode::Off => Mechanism::None("off in the config (cgroups = \"off\")".into()),
            _ => match probe() {
                Available::V2 { own } => match prepare_v2(&own, owner) {
                    Ok(base) => Mechanism::V2 { base },
                    Err(e) => Mechanism::None(format!("preparing the cgroup v2 subtree: {e}")),
                },
                Available::V1 { memory, pids } => {
                    match (prepare_v1(&memory, owner), prepare_v1(&pids, owner)) {
                        (Ok(memory), Ok(pids)) => Mechanism::V1 { memory, pids },
                        (Err(e), _) | (_, Err(e)) => Mechanism::None(format!(
                            "preparing the cgroup v1 subtree: {e}{}",
                            if owner.is_none() {
                                " (start sandboxd as root with --user, or delegate a cgroup v2 subtree)"
                            } else {
                                ""
                            }
                        )),
                    }
                }
                Available::None(why) => Mechanism::None(why),
            },
        };
        if let (CgroupMode::Required, Mechanism::None(why)) = (mode, &mechanism) {
            return Err(format!(
                "cgroups = \"required\" but sandboxes cannot get their own cgroup: {why}; {}",
                crate::host::cgroups_fix()
            ));
        }
        Ok(Cgroups {
            mode,
            mechanism,
            pool: Arc::default(),
        })
    }

    /// No cgroups at all (tests, and the daemon before `prepare`).
    pub fn none(why: &str) -> Cgroups {
        Cgroups {
            mode: CgroupMode::Off,
            mechanism: Mechanism::None(why.into()),
            pool: Arc::default(),
        }
    }

    pub fn version(&self) -> Option<Version> {
        match self.mechanism {
            Mechanism::V1 { .. } => Some(Version::V1),
            Mechanism::V2 { .. } => Some(Version::V2),
            Mechanism::None(_) => None,
        }
    }

    /// One line for logs, `Info` and `doctor`.
    pub fn describe(&self) -> String {
        match &self.mechanism {
            Mechanism::V2 { base } => format!(
                "cgroup v2: one cgroup per sandbox under {} (memory, pids, cpu weight)",
                base.display()
            ),
            Mechanism::V1 { memory, pids } => format!(
                "cgroup v1: one cgroup per sandbox under {} and {} (memory, pids)",
                memory.display(),
                pids.display()
            ),
            Mechanism::None(why) => format!("none: {why}"),
        }
    }

    /// The `degraded` entry every result and Info carry when sandboxes get no cgroup: the note,
    /// then what to do (`host::cgroups_fix`).
    pub fn degraded(&self) -> Option<String> {
        match &self.mechanism {
            Mechanism::None(why) => Some(format!(
                "{}; {}",
                degraded_note(why),
                crate::host::cgroups_fix()
            )),
            _ => None,
        }
    }

    /// Remove this daemon's own directories (at exit; what still holds processes stays).
    pub fn cleanup(&self) {
        for mut c in self.pool.drain() {
            c.pool = None;
            c.remove();
        }
        match &self.mechanism {
            Mechanism::V1 { memory, pids } => {
                remove_empty(memory, true);
                remove_empty(pids, true);
            }
            Mechanism::V2 { base } => remove_empty(base, false),
            Mechanism::None(_) => {}
        }
    }

    /// Create (v1: or reuse) the cgroup of the sandbox whose init is host pid `pid` and write the
    /// profile's limits; then move the init into it (v2), or open what the init moves itself in
    /// with (v1, `Entry::ByItself`). On error nothing is left behind; the error names the step.
    pub fn create(
        &self,
        pid: u32,
        limits: &Limits,
    ) -> Result<Option<(SandboxCgroup, Entry)>, (String, io::Error)> {
        let version = match self.mechanism {
            Mechanism::None(_) => return Ok(None),
            Mechanism::V2 { .. } => Version::V2,
            Mechanism::V1 { .. } => Version::V1,
        };
        let plan = cgroup::plan(limits, version);
        if version == Version::V1 {
            while let Some(mut c) = self.pool.take(&plan.writes) {
                if let Ok(fds) = c.tasks_files() {
                    c.pool = Some(self.pool.clone());
                    return Ok(Some((c, Entry::ByItself(fds))));
                }
                // Fail closed: a slot that cannot take the init is not used again.
                c.remove();
            }
        }
        let dirs = match &self.mechanism {
            Mechanism::None(_) => return Ok(None),
            Mechanism::V2 { base } => vec![(None, base.join(format!("sb-{pid}")))],
            Mechanism::V1 { memory, pids } => {
                let n = format!("slot-{}", self.pool.next.fetch_add(1, Ordering::Relaxed));
                vec![
                    (Some(Controller::Memory), memory.join(&n)),
                    (Some(Controller::Pids), pids.join(&n)),
                ]
            }
        };
        let mut cg = SandboxCgroup {
            version,
            dirs: vec![],
            fds: vec![],
            writes: vec![],
            base: Usage::default(),
            pool: None,
        };
        for (c, d) in dirs {
            if let Err(e) = std::fs::create_dir(&d) {
                // A leftover of a sandbox whose init had the same pid: it is empty by now.
                if e.kind() != io::ErrorKind::AlreadyExists
                    || std::fs::remove_dir(&d).is_err()
                    || std::fs::create_dir(&d).is_err()
                {
                    cg.remove();
                    return Err((format!("cgroup: mkdir {}", d.display()), e));
                }
            }
            cg.fds.push(open_dir(&d));
            cg.dirs.push((c, d));
        }
        for w in &plan.writes {
            let Some(i) = cg.index(w.controller) else {
                continue; // v1: no cpu hierarchy is used
            };
            let path = cg.dirs[i].1.join(w.file);
            if let Err(e) = cg.write_file(i, w.file, &w.value) {
                if w.optional && e.kind() == io::ErrorKind::NotFound {
                    continue;
                }
                cg.remove();
                return Err((
                    format!("cgroup: write {} to {}", w.value, path.display()),
                    e,
                ));
            }
        }
        let entered = match version {
            Version::V1 => cg.tasks_files().map(Entry::ByItself),
            Version::V2 => cg.enter(pid).map(|()| Entry::Moved),
        };
        let entry = match entered {
            Ok(e) => e,
            Err((path, e)) => {
                let step = format!("cgroup: move the sandbox's init into {}", path.display());
                cg.remove();
                return Err((step, e));
            }
        };
        cg.writes = plan.writes;
        if version == Version::V1 {
            cg.pool = Some(self.pool.clone());
        }
        Ok(Some((cg, entry)))
    }
}

/// How a sandbox's init gets into its cgroup.
#[derive(Debug)]
pub enum Entry {
    /// The daemon moved it (v2: `cgroup.procs` of the new cgroup).
    Moved,
    /// v1: the init moves itself, before it starts the command, by writing `0` to each of these
    /// `tasks` files (opened here, for write, by the daemon that owns the cgroup), and starts
    /// nothing if it cannot. A thread moving itself takes no machine-wide lock; moving another
    /// process takes `cgroup_threadgroup_rwsem` for writing, which waits for an RCU grace period
    /// whenever no move happened in the last few milliseconds: 5-12 ms per exec on a 2-core
    /// machine, for every exec that does not follow another one closely (every `nanobot exec`).
    ByItself(Vec<std::os::fd::OwnedFd>),
}

/// The `degraded` entry for a sandbox without a cgroup.
pub fn degraded_note(why: &str) -> String {
    format!("cgroups: {why}; memory and processes are limited per process only (rlimits address_space_bytes, processes), not for the sandbox as a whole")
}

/// One sandbox's cgroup (a directory per v1 hierarchy, one on v2).
#[derive(Debug)]
pub struct SandboxCgroup {
    version: Version,
    dirs: Vec<(Option<Controller>, PathBuf)>,
    /// The directories open as O_PATH, index for index with `dirs` (missing: reached by path).
    /// Each file is then one path component away instead of the six to eight of its absolute
    /// path under /sys/fs/cgroup, each revalidated by kernfs; a sandbox reads and writes about
    /// sixteen of them.
    fds: Vec<Option<OwnedFd>>,
    /// The limits written (a reused cgroup serves only a sandbox with the same).
    writes: Vec<cgroup::Write>,
    /// The counters that cannot be reset, as they were when the sandbox got the cgroup.
    base: Usage,
    /// Where the emptied cgroup goes back to (None: removed instead).
    pool: Option<Arc<Pool>>,
}

/// Why an emptied cgroup is not reused, from its files' text (None: it may be).
pub fn unfit(
    procs: &[Option<String>],
    pids_current: Option<&str>,
    usage: Option<u64>,
) -> Option<String> {
    if let Some(p) = procs
        .iter()
        .find(|p| p.as_deref().is_none_or(|t| !t.trim().is_empty()))
    {
        return Some(format!("processes in it: {p:?}"));
    }
    match pids_current.and_then(|s| s.trim().parse::<u64>().ok()) {
        Some(0) => {}
        n => return Some(format!("pids.current {n:?}")),
    }
    match usage {
        Some(u) if u <= RESIDUE_MAX => None,
        u => Some(format!("memory still charged to it: {u:?}")),
    }
}

impl SandboxCgroup {
    /// The index in `dirs` of the directory holding `c`'s files (None: not used on this
    /// version).
    fn index(&self, c: Controller) -> Option<usize> {
        self.dirs
            .iter()
            .position(|(k, _)| k.is_none() || *k == Some(c))
    }

    /// `file` of directory `i`, through its fd when it has one.
    fn open(&self, i: usize, file: &str, write: bool) -> io::Result<std::fs::File> {
        match self.fds.get(i).and_then(Option::as_ref) {
            Some(dir) => open_at(dir, file, write),
            None => std::fs::OpenOptions::new()
                .read(!write)
                .write(write)
                .truncate(write)
                .open(self.dirs[i].1.join(file)),
        }
    }

    fn read_file(&self, i: usize, file: &str) -> io::Result<String> {
        read_small(self.open(i, file, false)?)
    }

    fn write_file(&self, i: usize, file: &str, v: &str) -> io::Result<()> {
        use std::io::Write;
        self.open(i, file, true)?.write_all(v.as_bytes())
    }

    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|(_, d)| d.as_path())
    }

    fn read(&self, c: Controller, file: &str) -> Option<String> {
        self.read_file(self.index(c)?, file).ok()
    }

    /// What the kernel counted, including what earlier sandboxes in a reused cgroup left.
    fn counters(&self) -> Usage {
        let [a, b, c] = cgroup::usage_files(self.version).map(|(ctl, f)| self.read(ctl, f));
        Usage::parse(a.as_deref(), b.as_deref(), c.as_deref())
    }

    /// What the kernel counted for the sandbox.
    pub fn usage(&self) -> Usage {
        self.counters().since(self.base)
    }

    /// Each hierarchy's `tasks` file, open for writing: what the init moves itself in with.
    fn tasks_files(&self) -> Result<Vec<OwnedFd>, (PathBuf, io::Error)> {
        (0..self.dirs.len())
            .map(|i| {
                self.open(i, "tasks", true)
                    .map(Into::into)
                    .map_err(|e| (self.dirs[i].1.join("tasks"), e))
            })
            .collect()
    }

    /// Never reuse this cgroup: the init could not move itself into it.
    pub fn discard(&mut self) {
        self.pool = None;
    }

    /// Move `pid` into the cgroup (every hierarchy's).
    fn enter(&self, pid: u32) -> Result<(), (PathBuf, io::Error)> {
        for (i, (_, d)) in self.dirs.iter().enumerate() {
            self.write_file(i, "cgroup.procs", &pid.to_string())
                .map_err(|e| (d.join("cgroup.procs"), e))?;
        }
        Ok(())
    }

    /// Make an emptied v1 cgroup like a new one with the same limits: the peak and failure
    /// count zeroed, memory still charged to it reclaimed, the counters that cannot be reset
    /// recorded. Err: why it is not fit for reuse.
    fn reset(&mut self, procs: &[Option<String>]) -> Result<(), String> {
        let usage = || {
            self.read(Controller::Memory, "memory.usage_in_bytes")
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        let pids = self.read(Controller::Pids, "pids.current");
        let mut u = usage();
        if u.is_some_and(|u| u > RESIDUE_MAX) {
            let _ = self.write(Controller::Memory, "memory.force_empty", "0");
            u = usage();
        }
        if let Some(why) = unfit(procs, pids.as_deref(), u) {
            return Err(why);
        }
        self.write(Controller::Memory, "memory.max_usage_in_bytes", "0")?;
        self.write(Controller::Memory, "memory.failcnt", "0")?;
        self.base = self.counters();
        Ok(())
    }

    fn write(&self, c: Controller, file: &str, v: &str) -> Result<(), String> {
        let i = self.index(c).ok_or_else(|| format!("no {c:?} directory"))?;
        self.write_file(i, file, v)
            .map_err(|e| ctx(&format!("writing {v:?} to"), &self.dirs[i].1.join(file), e))
    }

    /// Done with the cgroup: back to the pool when it is empty and fit for reuse, else removed;
    /// false while a process is still in it (the init is exiting).
    pub fn remove(&mut self) -> bool {
        if let Some(pool) = self.pool.clone() {
            let procs: Vec<_> = (0..self.dirs.len())
                .map(|i| self.read_file(i, "cgroup.procs").ok())
                .collect();
            if procs.iter().flatten().any(|t| !t.trim().is_empty()) {
                return false; // the init is exiting
            }
            self.pool = None;
            match self.reset(&procs) {
                Ok(()) => {
                    let c = SandboxCgroup {
                        version: self.version,
                        dirs: std::mem::take(&mut self.dirs),
                        fds: std::mem::take(&mut self.fds),
                        writes: std::mem::take(&mut self.writes),
                        base: self.base,
                        pool: None,
                    };
                    if let Some(mut old) = pool.put(c) {
                        old.remove();
                    }
                    return true;
                }
                Err(why) => {
                    tracing::debug!(dirs = ?self.dirs, "a sandbox cgroup is removed rather than reused: {why}")
                }
            }
        }
        self.remove_dirs()
    }

    fn remove_dirs(&mut self) -> bool {
        self.fds.clear();
        self.dirs.retain(|(_, d)| match std::fs::remove_dir(d) {
            Ok(()) => false,
            Err(e) => e.kind() != io::ErrorKind::NotFound,
        });
        self.dirs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 1 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
";

    const PROC_CGROUP: &str = "\
8:pids:/
4:memory:/process_api/abc
1:cpu,cpuacct:/
0::/
";

    #[test]
    fn the_hierarchies_and_our_place_in_them_are_read_from_proc() {
        let (v2, v1) = parse_mounts(MOUNTINFO);
        let v2 = v2.unwrap();
        assert_eq!(v2.mountpoint, Path::new("/sys/fs/cgroup/unified"));
        let mem = &v1
            .iter()
            .find(|(c, _)| c.contains(&"memory".into()))
            .unwrap()
            .1;
        assert_eq!(
            dir_of(mem, &own_path(PROC_CGROUP, Some("memory")).unwrap()).unwrap(),
            Path::new("/sys/fs/cgroup/memory/process_api/abc")
        );
        let cpu = &v1
            .iter()
            .find(|(c, _)| c.contains(&"cpuacct".into()))
            .unwrap()
            .1;
        assert_eq!(cpu.mountpoint, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(own_path(PROC_CGROUP, Some("pids")).as_deref(), Some("/"));
        assert_eq!(own_path(PROC_CGROUP, Some("cpuacct")).as_deref(), Some("/"));
        assert_eq!(own_path(PROC_CGROUP, None).as_deref(), Some("/"));
        assert_eq!(own_path(PROC_CGROUP, Some("blkio")), None);
        // A mount of a subtree (as in a container) shows only what is beneath its root.
        let sub = Mount {
            root: "/a".into(),
            mountpoint: "/sys/fs/cgroup".into(),
        };
        assert_eq!(dir_of(&sub, "/a/b").unwrap(), Path::new("/sys/fs/cgroup/b"));
        assert_eq!(dir_of(&sub, "/a").unwrap(), Path::new("/sys/fs/cgroup"));
        assert_eq!(dir_of(&sub, "/c"), None);
        assert_eq!(unescape("/a\\040b"), "/a b");
    }

    /// A v1 sandbox cgroup of plain files in a temporary directory, as an emptied one reads.
    fn fake(name: &str, usage: &str) -> (PathBuf, SandboxCgroup, Arc<Pool>) {
        let root = std::env::temp_dir().join(format!("sbd-cg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (m, p) = (root.join("memory"), root.join("pids"));
        std::fs::create_dir_all(&m).unwrap();
        std::fs::create_dir_all(&p).unwrap();
        for (d, f, v) in [
            (&m, "cgroup.procs", ""),
            (&p, "cgroup.procs", ""),
            (&p, "pids.current", "0\n"),
            (&m, "memory.usage_in_bytes", usage),
            (&m, "memory.max_usage_in_bytes", "9999\n"),
            (&m, "memory.failcnt", "3\n"),
            (
                &m,
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            ),
            (&p, "pids.events", "max 5\n"),
        ] {
            std::fs::write(d.join(f), v).unwrap();
        }
        let pool = Arc::new(Pool::default());
        // Reached through their fds, as `create` leaves them (the others here go by path).
        let cg = SandboxCgroup {
            version: Version::V1,
            fds: vec![open_dir(&m), open_dir(&p)],
            dirs: vec![(Some(Controller::Memory), m), (Some(Controller::Pids), p)],
            writes: cgroup::plan(&Limits::default(), Version::V1).writes,
            base: Usage::default(),
            pool: Some(pool.clone()),
        };
        (root, cg, pool)
    }

    #[test]
    fn an_emptied_v1_cgroup_is_reset_and_reused_and_reports_only_the_new_counts() {
        let (root, mut cg, pool) = fake("reuse", "4096\n");
        // Still holding the exiting init: not yet.
        std::fs::write(root.join("memory/cgroup.procs"), "42\n").unwrap();
        assert!(!cg.remove());
        assert!(cg.pool.is_some() && pool.idle.lock().unwrap().is_empty());
        std::fs::write(root.join("memory/cgroup.procs"), "").unwrap();
        assert!(cg.remove());
        let m = root.join("memory");
        let read = |f: &str| std::fs::read_to_string(m.join(f)).unwrap();
        assert_eq!(
            (
                read("memory.max_usage_in_bytes").as_str(),
                read("memory.failcnt").as_str()
            ),
            ("0", "0")
        );
        // Only a sandbox with the same limits gets it.
        let other = Limits {
            pids: 7,
            ..Limits::default()
        };
        assert!(pool
            .take(&cgroup::plan(&other, Version::V1).writes)
            .is_none());
        let c = pool
            .take(&cgroup::plan(&Limits::default(), Version::V1).writes)
            .unwrap();
        assert_eq!((c.base.oom_kills, c.base.pids_max_hits), (2, 5));
        // The counters that cannot be reset count from where the sandbox found them.
        std::fs::write(m.join("memory.oom_control"), "oom_kill 3\n").unwrap();
        std::fs::write(m.join("memory.max_usage_in_bytes"), "8192\n").unwrap();
        let u = c.usage();
        assert_eq!(
            (u.peak_bytes, u.oom_kills, u.pids_max_hits),
            (Some(8192), 1, 0)
        );
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn a_cgroup_with_memory_still_charged_or_a_process_is_not_reused() {
        // force_empty (a plain file here) reclaims nothing: removed, not pooled.
        let (root, mut cg, pool) = fake("residue", "2097152\n");
        cg.remove();
        assert!(cg.pool.is_none() && pool.idle.lock().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(root);
        let empty = [Some(String::new()), Some("\n".into())];
        assert_eq!(unfit(&empty, Some("0\n"), Some(RESIDUE_MAX)), None);
        assert!(unfit(&empty, Some("0"), Some(RESIDUE_MAX + 1)).is_some());
        assert!(unfit(&empty, Some("0"), None).is_some());
        assert!(unfit(&empty, Some("1"), Some(0)).is_some());
        assert!(unfit(&empty, None, Some(0)).is_some());
        assert!(unfit(
            &[Some("7\n".into()), Some(String::new())],
            Some("0"),
            Some(0)
        )
        .is_some());
        assert!(unfit(&[None, Some(String::new())], Some("0"), Some(0)).is_some());
    }

    #[test]
    fn the_pool_keeps_at_most_pool_max_idle_cgroups_the_oldest_given_back() {
        let pool = Pool::default();
        let w = cgroup::plan(&Limits::default(), Version::V1).writes;
        let mk = |i: usize| SandboxCgroup {
            fds: vec![],
            version: Version::V1,
            dirs: vec![(None, PathBuf::from(format!("/nonexistent/slot-{i}")))],
            writes: w.clone(),
            base: Usage::default(),
            pool: None,
        };
        for i in 0..POOL_MAX {
            assert!(pool.put(mk(i)).is_none());
        }
        let out = pool.put(mk(POOL_MAX)).unwrap();
        assert_eq!(out.dirs[0].1, Path::new("/nonexistent/slot-0"));
        // The most recently returned is handed out first.
        let c = pool.take(&w).unwrap();
        assert_eq!(
            c.dirs[0].1,
            PathBuf::from(format!("/nonexistent/slot-{POOL_MAX}"))
        );
        assert_eq!(pool.drain().len(), POOL_MAX - 1);
    }

    /// On v1 the daemon moves no process: the init gets each hierarchy's `tasks` file and writes
    /// itself in. A pooled slot whose `tasks` cannot be opened is not used (removed instead).
    #[test]
    fn a_v1_init_moves_itself_in_with_the_tasks_files_it_is_given() {
        use std::io::Write;
        let (root, mut cg, _) = fake("self-entry", "4096\n");
        for c in ["memory", "pids"] {
            std::fs::write(root.join(c).join("tasks"), "").unwrap();
        }
        let cgroups = Cgroups {
            mode: CgroupMode::Auto,
            mechanism: Mechanism::V1 {
                memory: root.join("none-m"),
                pids: root.join("none-p"),
            },
            pool: Arc::new(Pool::default()),
        };
        cg.pool = None;
        // A pooled slot without a `tasks` file is not used; the good one is.
        let broken = SandboxCgroup {
            fds: vec![],
            version: Version::V1,
            dirs: vec![(None, root.join("broken"))],
            writes: cg.writes.clone(),
            base: Usage::default(),
            pool: None,
        };
        std::fs::create_dir_all(root.join("broken")).unwrap();
        assert!(cgroups.pool.put(cg).is_none());
        assert!(cgroups.pool.put(broken).is_none());
        let (got, entry) = cgroups.create(4242, &Limits::default()).unwrap().unwrap();
        assert!(!root.join("broken").exists());
        let Entry::ByItself(files) = entry else {
            panic!("v1 must hand the init its tasks files")
        };
        assert_eq!(files.len(), 2);
        for f in files {
            std::fs::File::from(f).write_all(b"0").unwrap();
        }
        for c in ["memory", "pids"] {
            assert_eq!(
                std::fs::read_to_string(root.join(c).join("tasks")).unwrap(),
                "0"
            );
            // Nothing was written to cgroup.procs by the daemon.
            assert!(!std::fs::read_to_string(root.join(c).join("cgroup.procs"))
                .unwrap_or_default()
                .contains("4242"));
        }
        assert!(got.pool.is_some());
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn without_cgroups_every_result_says_so() {
        let c = Cgroups::none("off in the config");
        let d = c.degraded().unwrap();
        assert!(
            d.starts_with("cgroups: off in the config")
                && d.contains("rlimits")
                && d.ends_with(crate::host::cgroups_fix()),
            "{d}"
        );
        assert_eq!(c.version(), None);
        assert!(c.create(1, &Limits::default()).unwrap().is_none());
    }
}

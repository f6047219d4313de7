//! Stage 0, ahead of the request: the setup every sandbox shares (identity maps, a private mount
//! namespace pivoted into a staging tmpfs) and, for a warm sandbox, the default profile's whole
//! root and its Landlock ruleset.

use crate::confine;
use crate::confine::mounts::MountPlan;
use crate::policy::WarmShape;
use crate::rootfs;
use crate::step::StepError;
use crate::vocab::Layer;
use std::path::Path;

/// What `prepare` has done ahead of the request.
pub(super) struct Prepared {
    /// Our pid as the host sees it.
    pub host_pid: u32,
    /// The mount namespace being built.
    pub stage: rootfs::Stage,
    /// The plan of the root already built (a warm sandbox), if any.
    pub mounts: Option<MountPlan>,
    /// The launcher's warm plan, which a spec with `mounts_warm` means.
    pub warm_plan: Option<MountPlan>,
    /// The Landlock ruleset of the warm shape, without the workspace rule.
    pub landlock: Option<(WarmShape, landlock::ABI, landlock::RulesetCreated)>,
}

/// The setup every sandbox shares, whatever the request: identity maps and a private mount
/// namespace pivoted into a staging tmpfs (the host's root beneath it, for binding from); with a
/// warm `shape`, also the default profile's whole root and its Landlock ruleset.
pub(super) fn prepare(
    uid: libc::uid_t,
    gid: libc::gid_t,
    shape: Option<&WarmShape>,
) -> Result<Prepared, StepError> {
    // SAFETY: resetting a disposition inherited from the launcher (which ignores SIGCHLD).
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    // Read from the host's /proc before ours covers it.
    let host_pid: u32 = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0);

    // Map the daemon's own uid/gid to themselves: the command keeps an unprivileged identity and
    // holds capabilities over nothing but this sandbox's own namespaces.
    // The maps are writable only while we are dumpable (the launcher is not, so that nobody reads
    // its memory); we go back to non-dumpable right after.
    // SAFETY: PR_SET_DUMPABLE takes an integer and touches no memory of ours; it only changes
    // who may ptrace or read /proc of this process, which is the point (see above).
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) };
    write_file("/proc/self/setgroups", "deny", Layer::Namespaces)?;
    write_file(
        "/proc/self/uid_map",
        &format!("{uid} {uid} 1\n"),
        Layer::Namespaces,
    )?;
    write_file(
        "/proc/self/gid_map",
        &format!("{gid} {gid} 1\n"),
        Layer::Namespaces,
    )?;
    // SAFETY: PR_SET_DUMPABLE takes an integer and passes no memory; it only changes whether
    // this process's /proc files and core dumps are open to others.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0) };

    rootfs::mount("", Path::new("/"), "", libc::MS_REC | libc::MS_PRIVATE, "")?;
    let mut prepared = Prepared {
        host_pid,
        stage: rootfs::Stage::open()?,
        mounts: None,
        warm_plan: shape.map(|s| s.mounts.clone()),
        landlock: None,
    };
    if let Some(shape) = shape.filter(|s| !s.mounts.ops.is_empty()) {
        prepared.stage.build(&shape.mounts)?;
        prepared.stage.make_dirs(&shape.workspace_roots);
        prepared.stage.settle()?;
        prepared.mounts = Some(shape.mounts.clone());
        // Best effort: if this fails, the request builds the ruleset itself and reports why.
        if let (Ok(v), Ok(root)) = (crate::host::landlock_abi(), prepared.stage.root_fd()) {
            let abi = confine::landlock::abi_from_version(v);
            let plan = confine::landlock::plan(&shape.fs, shape.network, &shape.connect_ports, abi);
            if let Ok(r) = confine::landlock::create(&plan, &root) {
                prepared.landlock = Some((shape.clone(), abi, r));
            }
        }
    }
    super::memory::populate_memory();
    Ok(prepared)
}

fn write_file(path: &str, data: &str, layer: Layer) -> Result<(), StepError> {
    std::fs::write(path, data).map_err(|e| StepError::io(layer, format!("write {path}"), e))
}

/// Nice value of a warm sandbox while it builds its root.
pub(super) const PREPARE_NICE: libc::c_int = 10;

/// setpriority on ourselves. `only_if_reversible`: do it only when RLIMIT_NICE lets us return to
/// nice 0 afterwards. True when the priority was changed.
pub(super) fn set_nice(nice: libc::c_int, only_if_reversible: bool) -> bool {
    if only_if_reversible {
        // SAFETY: rlimit is two integers: all-zero bytes are a valid value.
        let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: getrlimit writes one rlimit into `lim`, a local alive for the call.
        if unsafe { libc::getrlimit(libc::RLIMIT_NICE, &mut lim) } != 0 || lim.rlim_cur < 20 {
            return false;
        }
    }
    // SAFETY: setpriority takes integers only (who 0: the calling process) and touches no memory.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) == 0 }
}

//! Inside the sandbox. `init_main` runs as PID 1 of the sandbox's fresh namespaces (cloned by the
//! launcher, single-threaded): it maps the user, mounts the private /proc, /tmp and /dev/shm, forks
//! the command, reaps every process, enforces the timeout and reports the result. The command child
//! then applies, in this order: session, fds, working directory, rlimits, no_new_privs, Landlock,
//! seccomp, exec. Any failure is reported as {layer, step, errno} and nothing runs.
//!
//! Stages, one file each: `prepare` (ahead of the request: identity maps, staging mount namespace,
//! a warm root and ruleset; `memory` prefaults pages), then for the request (`init`): read the
//! spec → `netns` (private network) → `root` (build or reuse the root, bind the workspace, seal)
//! → `supervise` armed (SIGCHLD signalfd) → `rules` (the Landlock ruleset) → enter the root →
//! report Ready and wait for the daemon's go (never started without it) → `child` (spawn; the
//! child confines itself and execs) → report Started → `supervise` (wait,
//! kill, reap) → report Exited.

mod budget;
mod child;
mod memory;
mod netns;
mod prepare;
mod root;
mod rules;
mod supervise;

use crate::handover::{self, ExecFds};
use crate::policy::{Network, SandboxSpec, WarmShape};
use crate::step::StepError;
use crate::vocab::Layer;
use crate::wire::{self, Report};
use prepare::{prepare, set_nice, Prepared, PREPARE_NICE};
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// A cold start: the launcher cloned us for a request already in hand. `uid`/`gid`: the daemon's
/// outside, mapped to themselves inside.
///
/// # Safety
/// The caller must be a fresh single-threaded process (the child of the launcher's
/// `clone_init`) that stays single-threaded: the command is started with
/// CLONE_VM|CLONE_VFORK (`child::spawn_command`), a child that allocates in memory it shares with
/// this process, which is sound only when no other thread can run in that memory meanwhile.
/// The fds in `fds` must be this process's own, owned by `fds` alone.
pub(crate) unsafe fn init_main(
    fds: ExecFds,
    uid: libc::uid_t,
    gid: libc::gid_t,
    shape: Option<&WarmShape>,
) -> ! {
    let prepared = prepare(uid, gid, None).map(|mut p| {
        p.warm_plan = shape.map(|s| s.mounts.clone());
        p
    });
    // SAFETY: single-threaded, per this function's contract.
    unsafe { finish(fds, prepared) }
}

/// A warm start: the launcher cloned us ahead of time. Do the part of the setup that does not
/// depend on the request, then wait on `ctl` for the request's fds (EOF: the launcher is gone).
///
/// # Safety
/// The caller must be a fresh single-threaded process (the child of the launcher's
/// `clone_init`) that stays single-threaded: the command is started with
/// CLONE_VM|CLONE_VFORK (`child::spawn_command`), a child that allocates in memory it shares with
/// this process, which is sound only when no other thread can run in that memory meanwhile.
pub(crate) unsafe fn warm_main(
    ctl: OwnedFd,
    uid: libc::uid_t,
    gid: libc::gid_t,
    shape: Option<&WarmShape>,
) -> ! {
    // Building the next root is work for spare CPU: at a lower priority it does not slow the
    // command running beside it. Only where RLIMIT_NICE lets us come back to normal (the daemon
    // raises it when started as root); the request then runs at normal priority again.
    let deprioritized = set_nice(PREPARE_NICE, true);
    let prepared = prepare(uid, gid, shape);
    let fds = loop {
        match handover::recv_fds(ctl.as_raw_fd()) {
            Ok(Some(fds)) => break fds,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            // SAFETY: _exit ends the process at once without unwinding or running destructors,
            // so no Rust invariant is left half-kept; this warm init has started nothing (no
            // child, no command) that its exit would leave behind.
            _ => unsafe { libc::_exit(0) },
        }
    };
    drop(ctl);
    if deprioritized {
        set_nice(0, false);
    }
    let Some(fds) = ExecFds::from_batch(fds) else {
        // SAFETY: _exit ends the process without unwinding or running destructors, so no Rust
        // invariant is left half-kept; this init has started no child or command yet.
        unsafe { libc::_exit(1) }
    };
    // SAFETY: single-threaded, per this function's contract.
    unsafe { finish(fds, prepared) }
}

/// Run the request and report its result on the status socket, then exit.
///
/// # Safety
/// Single-threaded process, as for [`init_main`].
unsafe fn finish(fds: ExecFds, prepared: Result<Prepared, StepError>) -> ! {
    let ExecFds {
        status,
        stdout,
        stderr,
        workspace,
    } = fds;
    let mut status = File::from(status);
    // What was prepared stays open until _exit, after the final report: among it is the detached
    // clone of the host's tree (`rootfs::Stage`), and closing that unmounts its ~20 mounts and
    // waits for an expedited RCU grace period (50-300 µs), which used to delay every result.
    let (result, _kept) = match prepared {
        Ok(mut p) => {
            // SAFETY: single-threaded, per this function's contract.
            let r = unsafe { init(&mut status, stdout, stderr, workspace, &mut p) };
            (r, Some(p))
        }
        Err(e) => (Err(e), None),
    };
    let code = match result {
        Ok(report) => {
            let _ = wire::write_frame(&mut status, &report);
            0
        }
        Err(e) => {
            let _ = wire::write_frame(&mut status, &e.report());
            1
        }
    };
    // SAFETY: _exit is always safe; it skips atexit handlers inherited from the daemon.
    unsafe { libc::_exit(code) }
}

/// One request, stage by stage (see the module header). Returns the final report; a failed stage
/// returns the step that failed and nothing runs.
///
/// # Safety
/// Single-threaded process, as for [`init_main`] (it starts the command: `child::spawn_command`).
unsafe fn init(
    status: &mut File,
    stdout: OwnedFd,
    stderr: OwnedFd,
    handed_workspace: OwnedFd,
    prepared: &mut Prepared,
) -> Result<Report, StepError> {
    let spec = read_spec(status, prepared)?;
    let started = Instant::now();
    if spec.network == Network::Private {
        netns::private_network()?;
    }
    let workspace = root::build(prepared, &spec, &handed_workspace)?;
    // Rules are opened inside the new root before entering it (RESOLVE_IN_ROOT), so they name
    // exactly what the command will see.
    let new_root = prepared.stage.root_fd()?;
    // Block SIGCHLD before the fork so no exit is missed; signalfd reports it.
    let sigfd = supervise::sigchld_fd()?;
    let (err_r, err_w) = child::report_pipe()?;
    let (degraded, ruleset) = rules::ruleset(&spec, &mut prepared.landlock, &new_root, &workspace)?;
    let cwd = root::open_cwd(&workspace, &spec)?;
    drop(new_root);
    prepared.stage.enter()?;

    // The write budget counts from here: the init is in the root, whose /proc is the sandbox's.
    let budget = budget::Budget::new(spec.write_budget_bytes);
    await_go(status, prepared.host_pid)?;
    // SAFETY: single-threaded, per this function's contract.
    let child = unsafe {
        child::spawn_command(&child::ChildArgs {
            spec: &spec,
            ruleset: std::cell::Cell::new(ruleset),
            stdout: &stdout,
            stderr: &stderr,
            cwd: &cwd,
            err_w: &err_w,
        })
    }?;
    drop((err_w, stdout, stderr, workspace, cwd));

    let mut acc = supervise::ReapedUsage::default();
    // The child reports a setup failure, or the pipe closes on a successful exec.
    if let Some(report) = child::setup_report(&err_r) {
        supervise::reap_all(&mut acc);
        return report;
    }
    let _ = wire::write_frame(
        status,
        &Report::Started {
            pid: prepared.host_pid,
            degraded,
        },
    );
    let deadline = started + Duration::from_millis(spec.timeout_ms);
    Ok(supervise::supervise(
        status, &sigfd, child, deadline, acc, budget,
    ))
}

/// Report `Ready` and wait for the daemon's go. The daemon sends it only while it still waits for
/// this request, once the sandbox's cgroup is set up: it has moved us into it (v2), or the go
/// carries its `tasks` files and we move ourselves in (v1), so every process forked from here on
/// is in it. Once the daemon has given up (guard timeout, client gone, shutdown) it has closed
/// its end, and we read EOF: the command is never started.
fn await_go(status: &mut File, pid: u32) -> Result<(), StepError> {
    wire::write_frame(status, &Report::Ready { pid })
        .map_err(|e| StepError::io(Layer::Launcher, "report ready", e))?;
    loop {
        match handover::recv_byte(status.as_raw_fd()) {
            Ok(Some((wire::GO, cgroup_files))) => return enter_cgroups(cgroup_files),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            _ => {
                return Err(StepError::new(
                    Layer::Launcher,
                    "wait for the go",
                    libc::ECANCELED,
                    "sandboxd gave up on this request before it started; the command was not run",
                ))
            }
        }
    }
}

/// Move ourselves into the sandbox's cgroup: `0` written to each hierarchy's `tasks` file moves
/// the writing thread, which is the whole init (single-threaded). Any failure: nothing runs.
fn enter_cgroups(files: Vec<OwnedFd>) -> Result<(), StepError> {
    use std::io::Write;
    for f in files {
        File::from(f)
            .write_all(b"0")
            .map_err(|e| StepError::io(Layer::Rlimits, wire::ENTER_CGROUP, e))?;
    }
    Ok(())
}

/// The request's spec, from the status socket; a spec naming the launcher's warm mount plan gets
/// that plan.
fn read_spec(status: &mut File, prepared: &mut Prepared) -> Result<SandboxSpec, StepError> {
    let mut spec: SandboxSpec = wire::read_frame(status)
        .map_err(|e| StepError::io(Layer::Launcher, "read sandbox spec", e))?;
    if spec.mounts_warm {
        spec.mounts = prepared.warm_plan.take().ok_or_else(|| {
            StepError::new(
                Layer::Launcher,
                "read sandbox spec",
                libc::EINVAL,
                "the spec names the launcher's warm mount plan, which this sandbox was not given",
            )
        })?;
    }
    Ok(spec)
}

//! The exec session: the daemon side of one exec, from an admitted request to its `ExecResult`.
//! Makes the pipes, hands the launcher the fds, sends the spec, streams output with a cap, and
//! turns the sandbox's reports into the final result. Dropping the status socket (client gone,
//! shutdown) makes the sandbox init kill everything it runs. (The command itself is spawned
//! inside the sandbox, by `init::child`.)

use crate::cgroups::{Cgroups, Entry, SandboxCgroup};
use crate::confine::cgroup::Usage;
use crate::handover;
use crate::launcher::Launcher;
use crate::policy::SandboxSpec;
use crate::supervisor::Supervisor;
use crate::vocab::{Layer, LimitHit};
use crate::wire::{self, Report};
use nanobot_proto::pb::{exec_event::Event, ExecEvent, ExecResult};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tonic::Status;

pub type EventTx = mpsc::Sender<Result<ExecEvent, Status>>;

pub struct ExecParams {
    pub spec: SandboxSpec,
    pub workspace_fd: OwnedFd,
    pub output_cap: u64,
    pub profile: String,
    /// The daemon's cgroups: each sandbox gets its own, or every result says it had none.
    pub cgroups: Arc<Cgroups>,
}

/// How the exec ended, for the audit log.
pub enum Outcome {
    Done(Box<ExecResult>),
    /// No launcher to run it: the message says what happened (gRPC UNAVAILABLE).
    Unavailable(String),
    ClientGone,
    Shutdown,
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut p = [0; 2];
    // SAFETY: pipe2 writes two c_ints into `p`, a local array of two, alive through the call.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so p[0] and p[1] are two new open fds that nothing else in this
    // process refers to: each OwnedFd is the only owner of its fd and closes it once.
    Ok(unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) })
}

/// The result of an exec the sandbox refused: `layer` failed at `step` with `errno`.
pub fn refused(layer: Layer, step: &str, errno: i32, message: String, profile: &str) -> ExecResult {
    let mut r = ExecResult {
        exit_code: -1,
        refused: true,
        refused_reason: format!("sandbox refused: {layer} layer failed: {message}"),
        failed_step: step.into(),
        errno,
        profile: profile.into(),
        ..Default::default()
    };
    layer.set_refused(&mut r);
    r
}

async fn read_report(s: &mut tokio::net::UnixStream) -> io::Result<Report> {
    let len = s.read_u32_le().await? as usize;
    if len > wire::MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "report too large",
        ));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await?;
    wire::decode(&body)
}

/// Most bytes of a truncated stream's end kept and sent with the result.
pub const TAIL_BYTES: usize = 4096;

/// What one output stream amounted to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pumped {
    /// Bytes the command wrote in all.
    pub total: u64,
    /// Whether anything was not streamed.
    pub truncated: bool,
    /// The last bytes past the streamed head (at most `TAIL_BYTES`, never more than the cap).
    pub tail: Vec<u8>,
    /// The stream's last bytes, streamed or not (at most `END_BYTES`): what a shell said last,
    /// as evidence of how its child ended (`limit_hit`).
    pub end: Vec<u8>,
}

/// Most bytes of a stream's very end kept for `Pumped::end`.
pub const END_BYTES: usize = 256;

/// The end of everything past the cap, in bounded memory: a ring of the last `cap` bytes.
#[derive(Debug)]
pub struct Tail {
    ring: std::collections::VecDeque<u8>,
    cap: usize,
}

impl Tail {
    pub fn new(cap: usize) -> Tail {
        Tail {
            ring: std::collections::VecDeque::with_capacity(cap),
            cap,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        if self.cap == 0 {
            return;
        }
        let data = &data[data.len().saturating_sub(self.cap)..];
        let excess = (self.ring.len() + data.len()).saturating_sub(self.cap);
        self.ring.drain(..excess);
        self.ring.extend(data);
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.ring.into()
    }
}

/// Forward one output stream, streaming at most `cap` bytes byte-exact, keeping the end of the
/// rest in a ring and draining it so the command never blocks on a full pipe and our memory stays
/// bounded. Counts every byte the command wrote.
async fn pump(
    fd: OwnedFd,
    cap: u64,
    tx: EventTx,
    stdout: bool,
    mut started: watch::Receiver<bool>,
) -> Pumped {
    let Ok(mut rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        return Pumped::default();
    };
    // The `started` event goes first; wait for it (or for the exec to end without starting).
    let _ = started.wait_for(|s| *s).await;
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent: u64 = 0;
    let mut out = Pumped::default();
    let mut tail = Tail::new(TAIL_BYTES.min(usize::try_from(cap).unwrap_or(usize::MAX)));
    let mut end = Tail::new(END_BYTES);
    loop {
        let n = match rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        out.total += n as u64;
        end.push(&buf[..n]);
        let room = cap.saturating_sub(sent) as usize;
        let keep = n.min(room);
        if n > room {
            out.truncated = true;
            tail.push(&buf[keep..n]);
        }
        if keep > 0 {
            sent += keep as u64;
            let data = buf[..keep].to_vec();
            let ev = if stdout {
                Event::Stdout(data)
            } else {
                Event::Stderr(data)
            };
            if tx.send(Ok(ExecEvent { event: Some(ev) })).await.is_err() {
                break;
            }
        }
    }
    out.tail = tail.into_vec();
    out.end = end.into_vec();
    out
}

/// How one attempt at an exec ended.
enum Attempt {
    Done(Outcome),
    /// A prepared sandbox's copy of the host no longer matched the workspace (mounted or
    /// replaced since it was made). Nothing ran; worth one try in a sandbox created now.
    Stale(Box<ExecResult>),
    /// The launcher holding the request died before a sandbox took it. Nothing ran.
    LauncherLost(Box<ExecResult>, libc::pid_t),
}

/// One exec: handed to the supervised launcher, retried once from scratch when a prepared
/// sandbox was stale or the launcher died with the request (in both cases before the command
/// could start: a sandbox starts it only on the daemon's go, `wire::GO`).
pub async fn run(
    launchers: Arc<Supervisor>,
    p: ExecParams,
    tx: EventTx,
    mut shutdown: watch::Receiver<bool>,
) -> Outcome {
    let t0 = Instant::now();
    let mut launcher = match launchers.current() {
        Ok(l) => l,
        Err(why) => return Outcome::Unavailable(why),
    };
    let mut tag = handover::TAG_ANY;
    let mut retried = false;
    let outcome = loop {
        match attempt(&launcher, &p, tag, &tx, &mut shutdown).await {
            Attempt::Done(o) => break o,
            Attempt::Stale(r) if !retried => {
                tracing::warn!(workspace = %p.spec.workspace.display(), "{}: the prepared sandbox is discarded; retrying once from scratch", r.refused_reason);
                tag = handover::TAG_COLD;
                retried = true;
            }
            Attempt::LauncherLost(r, pid) if !retried => match launchers.after_loss(pid).await {
                Some(Ok(l)) => {
                    tracing::warn!("the sandbox launcher died holding a request; retrying it once");
                    launcher = l;
                    retried = true;
                }
                Some(Err(why)) => break Outcome::Unavailable(why),
                None => break Outcome::Done(r),
            },
            Attempt::Stale(r) | Attempt::LauncherLost(r, _) => break Outcome::Done(r),
        }
    };
    match outcome {
        Outcome::Done(mut r) => {
            r.duration_ms = t0.elapsed().as_millis() as u64;
            Outcome::Done(r)
        }
        o => o,
    }
}

/// Whether a broken launcher socket means the launcher is gone.
fn launcher_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPIPE | libc::ECONNRESET | libc::ECONNREFUSED | libc::ENOTCONN)
    )
}

async fn attempt(
    launcher: &Launcher,
    p: &ExecParams,
    tag: u8,
    tx: &EventTx,
    shutdown: &mut watch::Receiver<bool>,
) -> Attempt {
    let t0 = Instant::now();
    let profile = p.profile.as_str();
    let refusal = |layer: Layer, step: &str, e: &io::Error| {
        Box::new(refused(
            layer,
            step,
            e.raw_os_error().unwrap_or(0),
            e.to_string(),
            profile,
        ))
    };
    let fail = |layer: Layer, step: &str, e: io::Error| {
        Attempt::Done(Outcome::Done(refusal(layer, step, &e)))
    };
    let (out_r, out_w) = match pipe() {
        Ok(p) => p,
        Err(e) => return fail(Layer::Launcher, "pipe2", e),
    };
    let (err_r, err_w) = match pipe() {
        Ok(p) => p,
        Err(e) => return fail(Layer::Launcher, "pipe2", e),
    };
    let (status_ours, status_theirs) = match std::os::unix::net::UnixStream::pair() {
        Ok(p) => p,
        Err(e) => return fail(Layer::Launcher, "socketpair", e),
    };
    let status_theirs: OwnedFd = status_theirs.into();
    let spec_bytes = match wire::encode(&p.spec) {
        Ok(b) => b,
        Err(e) => return fail(Layer::Launcher, "encode spec", e),
    };
    // Queue the spec before the sandbox exists, so it never waits for it; whatever does not fit
    // in the socket buffer follows below.
    let _ = status_ours.set_nonblocking(true);
    let sent = match std::io::Write::write(&mut &status_ours, &spec_bytes) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return fail(Layer::Launcher, "send spec", e),
    };
    let handed = handover::ExecFdsRef {
        status: &status_theirs,
        stdout: &out_w,
        stderr: &err_w,
        workspace: &p.workspace_fd,
    };
    if let Err(e) = launcher.launch(&handed, tag) {
        let r = refusal(Layer::Launcher, "hand over to launcher", &e);
        if launcher_gone(&e) {
            return Attempt::LauncherLost(r, launcher.pid);
        }
        return Attempt::Done(Outcome::Done(r));
    }
    // The workspace fd stays with us for a retry.
    drop((status_theirs, out_w, err_w));
    let mut status = match tokio::net::UnixStream::from_std(status_ours) {
        Ok(s) => s,
        Err(e) => return fail(Layer::Launcher, "register status socket", e),
    };
    if let Err(e) = status.write_all(&spec_bytes[sent..]).await {
        // The launcher closes the socket after reporting that it could not create the sandbox
        // (clone failed): that report names the layer, the broken pipe does not.
        let early = tokio::time::timeout(Duration::from_secs(1), read_report(&mut status)).await;
        if let Ok(Ok(Report::Failed {
            layer,
            step,
            errno,
            message,
        })) = early
        {
            return Attempt::Done(Outcome::Done(Box::new(refused(
                layer, &step, errno, message, profile,
            ))));
        }
        if launcher_gone(&e) {
            return Attempt::LauncherLost(refusal(Layer::Launcher, "send spec", &e), launcher.pid);
        }
        return fail(Layer::Launcher, "send spec", e);
    }

    let (started_tx, started_rx) = watch::channel(false);
    let out_task = tokio::spawn(pump(
        out_r,
        p.output_cap,
        tx.clone(),
        true,
        started_rx.clone(),
    ));
    let err_task = tokio::spawn(pump(err_r, p.output_cap, tx.clone(), false, started_rx));
    let abort = |out: &tokio::task::JoinHandle<Pumped>, err: &tokio::task::JoinHandle<Pumped>| {
        out.abort();
        err.abort();
    };

    // The sandbox enforces its own deadline; this one only guards against a wedged launcher or
    // init: until the go, for the setup; after it, for the command.
    let guard = Duration::from_millis(p.spec.timeout_ms) + Duration::from_secs(10);
    let mut deadline = t0 + guard;
    // Whether the sandbox was told to start the command. Until then nothing runs, and giving up
    // (closing our end) means it never will.
    let mut went = false;
    let result: ExecResult;
    let mut kind: fn(Box<ExecResult>, libc::pid_t) -> Attempt =
        |r, _| Attempt::Done(Outcome::Done(r));
    let mut degraded = vec![];
    // The sandbox's cgroup, made on Ready (the init's pid), before the go; removed once the
    // sandbox is gone, whichever way this function returns.
    let mut cg = CgroupGuard(None);
    let mut disk_over = false;
    loop {
        let report = tokio::select! {
            r = read_report(&mut status) => r,
            _ = tx.closed() => { abort(&out_task, &err_task); return Attempt::Done(Outcome::ClientGone); }
            _ = shutdown.wait_for(|s| *s) => { abort(&out_task, &err_task); return Attempt::Done(Outcome::Shutdown); }
            _ = tokio::time::sleep_until(deadline.into()) => {
                let message = if went {
                    format!("sandbox init did not report in time ({} s after the go); the sandbox is told to kill the command", guard.as_secs())
                } else {
                    format!("sandbox init did not report in time ({} s): the launcher or the sandbox is stuck; the request was given up and the command will not run", guard.as_secs())
                };
                result = refused(Layer::Launcher, "sandbox init", libc::ETIMEDOUT, message, profile);
                break;
            }
        };
        match report {
            Ok(Report::Ready { pid }) => {
                let mut entry = Entry::Moved;
                if cg.0.is_none() {
                    match p.cgroups.create(pid, &p.spec.limits) {
                        Ok(Some((c, e))) => {
                            cg.0 = Some(c);
                            entry = e;
                        }
                        Ok(None) => {}
                        Err((step, e)) => {
                            result = refused(
                                Layer::Rlimits,
                                &step,
                                e.raw_os_error().unwrap_or(0),
                                format!("the sandbox's cgroup could not be set up ({step}): {e}"),
                                profile,
                            );
                            break;
                        }
                    }
                }
                // The one place the command is let start; a sandbox whose request we gave up on
                // reads EOF here instead and exits. On v1 the go carries the cgroup files the
                // init moves itself in with before it starts anything.
                if send_go(&mut status, entry).await.is_ok() {
                    went = true;
                    deadline = Instant::now() + guard;
                }
            }
            Ok(Report::Started { pid, degraded: d }) => {
                degraded = d;
                let _ = tx
                    .send(Ok(ExecEvent {
                        event: Some(Event::Started(nanobot_proto::pb::Started { pid })),
                    }))
                    .await;
                let _ = started_tx.send(true);
            }
            Ok(Report::Failed {
                layer,
                step,
                errno,
                message,
            }) => {
                if !went && layer == Layer::Mounts && step == crate::rootfs::VERIFY_WORKSPACE {
                    kind = |r, _| Attempt::Stale(r);
                }
                if step == wire::ENTER_CGROUP {
                    if let Some(c) = cg.0.as_mut() {
                        c.discard();
                    }
                }
                result = refused(layer, &step, errno, message, profile);
                break;
            }
            Ok(Report::Exited {
                code,
                signal,
                timed_out,
                maxrss_kb,
                cpu_us,
                disk_over: over,
                written_bytes,
                disk_unreadable,
            }) => {
                if let Some(why) = disk_unreadable {
                    tracing::warn!(workspace = %p.spec.workspace.display(), "sandbox killed: its write counters could not be read, so its write budget fails closed (limit_hit disk): {why}");
                } else if over {
                    tracing::warn!(workspace = %p.spec.workspace.display(), written_bytes, budget = p.spec.write_budget_bytes, "sandbox killed: it wrote more than its write budget (limit_hit disk)");
                }
                disk_over = over;
                result = ExecResult {
                    exit_code: code,
                    signal,
                    timed_out,
                    peak_rss_kb: maxrss_kb,
                    cpu_time_ms: cpu_us / 1000,
                    profile: profile.to_string(),
                    ..Default::default()
                };
                break;
            }
            Err(e) => {
                if !went {
                    // No sandbox answered: the launcher may have died with the request queued.
                    kind = Attempt::LauncherLost;
                }
                result = refused(
                    Layer::Launcher,
                    "sandbox init",
                    e.raw_os_error().unwrap_or(0),
                    format!("sandbox init ended without a result: {e}"),
                    profile,
                );
                break;
            }
        }
    }
    // Closed before the result is logged or sent: a sandbox still waiting for the go never gets it.
    drop(status);
    // Every process of the sandbox but its init is dead once it reported: the counters are final.
    let usage = cg.0.as_ref().map(SandboxCgroup::usage);
    // Reset and pooled (or removed) in the background, off the result's path: about ten cgroup
    // file reads and writes (`SandboxCgroup::remove`).
    drop(cg);
    let _ = started_tx.send(true);
    let mut r = result;
    let (o, e) = if went {
        // Every process of the sandbox is dead once init reported, so the pipes reach EOF at
        // once; the bound only protects against a writer we do not know of, and the pumps are
        // stopped after it: they hold the client's stream open.
        let grace = Duration::from_secs(2);
        let (oa, ea) = (out_task.abort_handle(), err_task.abort_handle());
        let (o, e) = tokio::join!(
            tokio::time::timeout(grace, out_task),
            tokio::time::timeout(grace, err_task)
        );
        oa.abort();
        ea.abort();
        (o.ok().and_then(Result::ok), e.ok().and_then(Result::ok))
    } else {
        // The command never started: there is no output, only pipes a stuck process may hold.
        abort(&out_task, &err_task);
        (None, None)
    };
    r.stdout_truncated = o.as_ref().is_some_and(|p| p.truncated);
    r.stderr_truncated = e.as_ref().is_some_and(|p| p.truncated);
    let (o, e) = (o.unwrap_or_default(), e.unwrap_or_default());
    (r.stdout_bytes, r.stdout_tail) = (o.total, o.tail);
    let stderr_end = e.end;
    (r.stderr_bytes, r.stderr_tail) = (e.total, e.tail);
    r.duration_ms = t0.elapsed().as_millis() as u64;
    r.timeout_secs = (p.spec.timeout_ms / 1000) as u32;
    r.degraded = degraded;
    r.degraded.extend(p.cgroups.degraded());
    r.peak_memory_bytes = usage.and_then(|u| u.peak_bytes).unwrap_or(0);
    let hit = match usage.and_then(cgroup_hit) {
        Some(h) if !r.timed_out => Some(h),
        _ if disk_over => Some(LimitHit::Disk),
        _ => limit_hit(
            &r,
            crate::shell::shell_command(&p.spec.argv).is_some(),
            p.spec.limits.cpu_secs,
            &stderr_end,
        ),
    };
    // The OOM killer may pick the init itself (tmpfs pages stay charged once the command's
    // processes are gone, and those prefer to die: oom_score_adj 1000): the command ran, so this
    // is the memory ceiling, not a refusal a client could take for "never ran".
    if r.refused && went && hit == Some(LimitHit::Memory) {
        r.refused = false;
        r.refused_layer.clear();
        r.refused_layer_kind = 0;
        r.refused_reason.clear();
        r.failed_step.clear();
        r.errno = 0;
        r.exit_code = -1;
        r.signal = libc::SIGKILL;
    }
    LimitHit::set(hit, &mut r);
    kind(Box::new(r), launcher.pid)
}

/// Tell the sandbox to start: the go byte, with the `tasks` files it moves itself in with when
/// `entry` says so (in the same message, so it cannot start without them).
async fn send_go(status: &mut tokio::net::UnixStream, entry: Entry) -> std::io::Result<()> {
    let fds = match entry {
        Entry::ByItself(fds) if !fds.is_empty() => fds,
        _ => return status.write_all(&[wire::GO]).await,
    };
    let raw: Vec<std::os::fd::RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    loop {
        status.writable().await?;
        match status.try_io(tokio::io::Interest::WRITABLE, || {
            crate::handover::send_fds(status.as_raw_fd(), &raw, wire::GO)
        }) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// A sandbox's cgroup until it is removed (or, v1, reset and pooled for reuse:
/// `SandboxCgroup::remove`): the init exits just after its last report, and the cgroup can go
/// once it has. Dropped, it goes in the background as soon as it can, never delaying the result
/// (waiting for the init's exit measured 2-3 ms per exec; the reset alone ~10 file operations).
struct CgroupGuard(Option<SandboxCgroup>);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        let Some(mut c) = self.0.take() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            let _ = c.remove();
            return;
        };
        rt.spawn(async move {
            // The init kills and reaps everything before it exits; a minute is far more than that.
            let t0 = Instant::now();
            let mut wait = Duration::from_millis(1);
            while t0.elapsed() < Duration::from_secs(60) {
                if c.remove() {
                    return;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_millis(50));
            }
            let dirs: Vec<String> = c.dirs().map(|d| d.display().to_string()).collect();
            tracing::warn!(?dirs, "a sandbox's cgroup still holds processes a minute after it ended; left in place (removed at the next start)");
        });
    }
}

/// The limit the sandbox's cgroup says it ran into: the OOM killer acted in it (`memory`), or a
/// fork was refused at its process ceiling (`pids`). Both are the kernel's own counts, never
/// guessed from an exit status.
pub fn cgroup_hit(u: Usage) -> Option<LimitHit> {
    if u.oom_kills > 0 {
        Some(LimitHit::Memory)
    } else if u.pids_max_hits > 0 {
        Some(LimitHit::Pids)
    } else {
        None
    }
}

/// Which profile limit ended or cut the command, only when there is evidence that it did: an exit
/// status alone is no evidence, since any command can `exit 152` or `kill -XCPU $$`.
///
/// - `cpu_secs`: the command died of SIGXCPU (or, under `sh -c`, the shell exited 128+SIGXCPU
///   for its child) *and* the sandbox's processes used the CPU budget, `cpu_secs` (the kernel
///   only sends SIGXCPU once a process has used it). Half the budget counts: the rusage totals
///   the init reads lag the kernel's own CPU clock (883 ms reported for a 1 s SIGXCPU was seen
///   on a loaded machine), while a `kill -XCPU $$` uses next to none.
/// - `file_size_bytes`: the command itself died of SIGXFSZ, or under `sh -c` the shell exited
///   128+SIGXFSZ *and* said at the end of stderr (`stderr_end`, the stream's last bytes) that
///   its child died of it ("File size limit exceeded", as dash and bash report a child killed by
///   that signal).
pub fn limit_hit(
    r: &ExecResult,
    via_shell: bool,
    cpu_secs: u64,
    stderr_end: &[u8],
) -> Option<LimitHit> {
    let via_shell_exit = |sig: i32| via_shell && r.signal == 0 && r.exit_code == 128 + sig;
    let budget_ms = cpu_secs.saturating_mul(1000);
    let used_cpu_budget = cpu_secs > 0 && r.cpu_time_ms.saturating_mul(2) >= budget_ms;
    let shell_said = |words: &[u8]| stderr_end.windows(words.len()).any(|w| w == words);
    if r.timed_out {
        Some(LimitHit::TimeoutSecs)
    } else if (r.signal == libc::SIGXCPU || via_shell_exit(libc::SIGXCPU)) && used_cpu_budget {
        Some(LimitHit::CpuSecs)
    } else if r.signal == libc::SIGXFSZ
        || (via_shell_exit(libc::SIGXFSZ) && shell_said(b"File size limit exceeded"))
    {
        Some(LimitHit::FileSizeBytes)
    } else if r.stdout_truncated || r.stderr_truncated {
        Some(LimitHit::OutputLimitBytes)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_hit_names_the_limit_the_kernel_or_the_cap_reports() {
        let r = |f: fn(&mut ExecResult)| {
            let mut r = ExecResult::default();
            f(&mut r);
            r
        };
        assert_eq!(limit_hit(&r(|_| {}), true, 1, b""), None);
        let timed_out = r(|r| {
            r.timed_out = true;
            r.stdout_truncated = true;
        });
        assert_eq!(
            limit_hit(&timed_out, false, 1, &timed_out.stderr_tail),
            Some(LimitHit::TimeoutSecs)
        );
        // SIGXCPU after the command used its CPU budget (1 s).
        let xcpu = r(|r| {
            r.signal = libc::SIGXCPU;
            r.cpu_time_ms = 1010;
        });
        assert_eq!(
            limit_hit(&xcpu, false, 1, &xcpu.stderr_tail),
            Some(LimitHit::CpuSecs)
        );
        assert_eq!(
            limit_hit(&xcpu, true, 1, &xcpu.stderr_tail),
            Some(LimitHit::CpuSecs)
        );
        // Under `sh -c` the shell reports its child's signal as 128+N; an argv command's own
        // exit code 128+N is just its code. The evidence for SIGXFSZ is the shell's own report
        // of the signal at the end of stderr (here put in `stderr_tail` to be passed as that).
        let xfsz_via_shell = r(|r| {
            r.exit_code = 128 + libc::SIGXFSZ;
            r.stderr_tail = b"File size limit exceeded\n".to_vec();
        });
        assert_eq!(
            limit_hit(&xfsz_via_shell, true, 1, &xfsz_via_shell.stderr_tail),
            Some(LimitHit::FileSizeBytes)
        );
        assert_eq!(
            limit_hit(&xfsz_via_shell, false, 1, &xfsz_via_shell.stderr_tail),
            None
        );
        let cut = r(|r| r.stderr_truncated = true);
        assert_eq!(
            limit_hit(&cut, false, 1, &cut.stderr_tail),
            Some(LimitHit::OutputLimitBytes)
        );
        let mut done = cut.clone();
        LimitHit::set(limit_hit(&cut, false, 1, &cut.stderr_tail), &mut done);
        assert_eq!(done.limit_hit, "output_limit_bytes");
    }

    #[test]
    fn an_exit_status_alone_is_no_limit_hit() {
        let r = |f: &dyn Fn(&mut ExecResult)| {
            let mut r = ExecResult::default();
            f(&mut r);
            r
        };
        // `exit 152`, `exit 153` under sh -c: no signal, no CPU used, nothing said.
        for code in [128 + libc::SIGXCPU, 128 + libc::SIGXFSZ] {
            let plain = r(&|r| r.exit_code = code);
            assert_eq!(
                limit_hit(&plain, true, 1, &plain.stderr_tail),
                None,
                "exit {code}"
            );
            // Still nothing when the output was cut: then that is the limit hit.
            let cut = r(&|r| {
                r.exit_code = code;
                r.stdout_truncated = true;
            });
            assert_eq!(
                limit_hit(&cut, true, 1, &cut.stderr_tail),
                Some(LimitHit::OutputLimitBytes),
                "exit {code}"
            );
        }
        // `kill -XCPU $$`: the signal, but far from the 60 s budget.
        let sent = r(&|r| {
            r.signal = libc::SIGXCPU;
            r.cpu_time_ms = 3;
        });
        assert_eq!(limit_hit(&sent, true, 60, &sent.stderr_tail), None);
        // ...and `exit 152` after real work that did not reach the budget either.
        let busy = r(&|r| {
            r.exit_code = 128 + libc::SIGXCPU;
            r.cpu_time_ms = 20_000;
        });
        assert_eq!(limit_hit(&busy, true, 60, &busy.stderr_tail), None);
        // At least half the budget.
        for (used, budget, hit) in [
            (30_000, 60, true),
            (29_999, 60, false),
            (883, 1, true),
            (500, 1, true),
            (499, 1, false),
            (5_000, 0, false),
        ] {
            let x = r(&|r| {
                r.exit_code = 128 + libc::SIGXCPU;
                r.cpu_time_ms = used;
            });
            assert_eq!(
                limit_hit(&x, true, budget, &x.stderr_tail) == Some(LimitHit::CpuSecs),
                hit,
                "{used} ms of {budget} s"
            );
        }
        // A shell that exited 153 without saying its child died of SIGXFSZ.
        let quiet = r(&|r| {
            r.exit_code = 128 + libc::SIGXFSZ;
            r.stderr_tail = b"some other error\n".to_vec();
        });
        assert_eq!(limit_hit(&quiet, true, 1, &quiet.stderr_tail), None);
        // The command itself killed by SIGXFSZ: the kernel's signal (file size is the only
        // limit that sends it).
        let xfsz = r(&|r| r.signal = libc::SIGXFSZ);
        assert_eq!(
            limit_hit(&xfsz, false, 1, &xfsz.stderr_tail),
            Some(LimitHit::FileSizeBytes)
        );
    }

    #[test]
    fn the_cgroups_counts_name_memory_or_pids() {
        assert_eq!(cgroup_hit(Usage::default()), None);
        let oom = Usage {
            peak_bytes: Some(128 << 20),
            oom_kills: 1,
            pids_max_hits: 3,
        };
        assert_eq!(cgroup_hit(oom), Some(LimitHit::Memory));
        let forks = Usage {
            pids_max_hits: 1,
            ..Usage::default()
        };
        assert_eq!(cgroup_hit(forks), Some(LimitHit::Pids));
    }

    #[test]
    fn tail_keeps_the_last_bytes_in_bounded_memory() {
        let mut t = Tail::new(4);
        t.push(b"ab");
        t.push(b"cde");
        assert_eq!(t.into_vec(), b"bcde");
        let mut t = Tail::new(4);
        t.push(b"0123456789");
        t.push(b"x");
        assert_eq!(t.into_vec(), b"789x");
        let mut t = Tail::new(0);
        t.push(b"abc");
        assert!(t.into_vec().is_empty());
        let mut t = Tail::new(8);
        t.push(b"abc");
        assert_eq!(t.into_vec(), b"abc");
    }
}

//! The gRPC service: request validation, limits, auth, audit log, and the Info RPC.

use crate::auth::{self, Peer};
use crate::config::{Config, Profile};
use crate::confine::mounts::MountPlan;
use crate::fileops::{self, FileError};
use crate::launcher::Launcher;
use crate::policy::SandboxSpec;
use crate::spawn::{self, ExecParams, Outcome};
use crate::tenants::{self, Tenancy};
use crate::workspace::Roots;
use nanobot_proto::pb::{
    self, exec_event::Event, sandbox_server::Sandbox, DirEntry, EditFileRequest, EditFileResponse,
    ExecEvent, ExecRequest, ExecResult, InfoRequest, InfoResponse, ListDirRequest, ListDirResponse,
    ReadFileRequest, ReadFileResponse, WriteFileRequest, WriteFileResponse,
};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// What SIGHUP replaces as a whole: a request works from one snapshot from start to end.
pub struct Live {
    pub cfg: Config,
    /// One guard per profile: the global patterns plus the profile's own.
    pub guards: HashMap<String, crate::guard::Guard>,
    /// Who may use which workspace: the mode follows the peer policy in force (fixed until a
    /// restart), the grants follow the config (reloaded by SIGHUP).
    pub tenancy: Tenancy,
    /// Each profile's mount plan (`confine::mounts::plan`), made once per load from what the
    /// host has then; the error says why a profile's root cannot be built.
    pub mounts: HashMap<String, Result<MountPlan, String>>,
}

impl Live {
    pub fn new(cfg: Config, auth: &auth::Policy, roots: &Roots) -> Result<Live, String> {
        let mut guards = HashMap::new();
        for (name, p) in &cfg.profiles {
            let (deny, allow) = cfg.patterns_for(p);
            let g = crate::guard::Guard::new(cfg.guard_defaults, &deny, &allow)
                .map_err(|e| format!("profiles.{name}: {e}"))?;
            guards.insert(name.clone(), g);
        }
        let tenancy = Tenancy::new(
            tenants::mode(&auth.allow_uids, &auth.allow_gids, &[]),
            roots.0.iter().map(|r| r.path.clone()).collect(),
            cfg.workspaces.clone(),
        );
        let mounts = cfg
            .profiles
            .iter()
            .map(|(name, p)| {
                let plan = crate::confine::mounts::plan(
                    &p.filesystem,
                    p.limits.tmp_size_bytes,
                    &crate::confine::mounts::host_probe,
                )
                .map_err(|e| e.to_string());
                (name.clone(), plan)
            })
            .collect();
        Ok(Live {
            cfg,
            guards,
            tenancy,
            mounts,
        })
    }
}

pub struct State {
    pub live: std::sync::RwLock<Arc<Live>>,
    pub roots: Roots,
    pub launcher: Arc<Launcher>,
    pub total: Arc<Semaphore>,
    pub per_peer: Mutex<HashMap<u32, usize>>,
    pub shutdown: watch::Receiver<bool>,
    pub auth: auth::Policy,
    /// The concurrency ceiling the semaphore was made with (fixed until restart).
    pub max_concurrent: usize,
}

impl State {
    pub fn live(&self) -> Arc<Live> {
        match self.live.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Swap in a new configuration (SIGHUP). Requests already running keep the one they began
    /// with.
    pub fn replace(&self, cfg: Config) -> Result<(), String> {
        let new = Arc::new(Live::new(cfg, &self.auth, &self.roots)?);
        match self.live.write() {
            Ok(mut g) => *g = new,
            Err(p) => *p.into_inner() = new,
        }
        Ok(())
    }
}

/// Who is on the other end of a connection, read once when it is accepted.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub peer: Option<Peer>,
    /// Supplementary groups (SO_PEERGROUPS; /proc as a fallback).
    pub groups: Arc<Vec<u32>>,
}

/// An accepted connection carrying its `PeerInfo` to every request on it.
pub struct PeerConn {
    inner: tokio::net::UnixStream,
    info: PeerInfo,
}

impl PeerConn {
    pub fn new(inner: tokio::net::UnixStream) -> PeerConn {
        use std::os::fd::AsRawFd;
        let peer = inner.peer_cred().ok().map(|c| Peer {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid().unwrap_or(0),
        });
        let groups = auth::peer_groups(inner.as_raw_fd())
            .or_else(|| peer.map(|p| auth::groups_of(p.pid)))
            .unwrap_or_default();
        PeerConn {
            inner,
            info: PeerInfo {
                peer,
                groups: Arc::new(groups),
            },
        }
    }
}

impl tonic::transport::server::Connected for PeerConn {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl tokio::io::AsyncRead for PeerConn {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for PeerConn {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

pub fn peer_info<T>(req: &Request<T>) -> Option<PeerInfo> {
    req.extensions().get::<PeerInfo>().cloned()
}

pub fn peer_of<T>(req: &Request<T>) -> Option<Peer> {
    peer_info(req)?.peer
}

/// Interceptor for every service on the socket.
pub fn authenticate(
    policy: auth::Policy,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |req: Request<()>| {
        let info = peer_info(&req);
        let groups = info.as_ref().map(|i| i.groups.clone()).unwrap_or_default();
        let Some(peer) = info.and_then(|i| i.peer) else {
            tracing::warn!("Access denied: peer credentials unavailable");
            return Err(Status::permission_denied(
                "Access denied: peer credentials unavailable",
            ));
        };
        match policy.check(peer, &groups) {
            Ok(()) => Ok(req),
            Err(why) => {
                tracing::warn!(peer_uid = peer.uid, peer_gid = peer.gid, peer_pid = peer.pid, reason = %why, "Access denied: uid={} pid={}: {why}", peer.uid, peer.pid);
                Err(Status::permission_denied(format!("Access denied: {why}")))
            }
        }
    }
}

/// May this peer use the workspace the kernel resolved to `real`? `gids`: primary and
/// supplementary. Called after `Roots::resolve`, before anything runs or is written.
fn authorize_workspace(
    live: &Live,
    op: &'static str,
    peer: Peer,
    gids: &[u32],
    real: &Path,
) -> Result<(), Status> {
    if live.tenancy.single() {
        return Ok(());
    }
    let name = crate::privdrop::user_name(peer.uid);
    tenants::authorize(&live.tenancy, peer.uid, name.as_deref(), gids, real).map_err(|e| {
        tracing::warn!(op, peer_uid = peer.uid, peer_pid = peer.pid, workspace = %real.display(), "Access denied: {e}");
        Status::permission_denied(format!("Access denied: {e}"))
    })
}

/// Releases a per-peer slot when the exec ends.
struct PeerSlot {
    state: Arc<State>,
    uid: u32,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.state.per_peer.lock() {
            if let Some(n) = m.get_mut(&self.uid) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&self.uid);
                }
            }
        }
    }
}

#[derive(Clone)]
pub struct Service(pub Arc<State>);

fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// Longest `cwd` accepted, in bytes (PATH_MAX).
pub const MAX_CWD_BYTES: usize = 4096;

/// Resolve an exec's `cwd` beneath the already-resolved workspace (openat2 RESOLVE_BENEATH: the
/// kernel refuses an absolute path, a `..` or a symlink that leads out). Returns the directory
/// relative to the workspace, as the kernel found it; the sandbox resolves it again beneath its
/// own workspace fd. It never changes which workspace the sandbox gets.
pub fn resolve_cwd(ws_fd: &OwnedFd, workspace: &Path, cwd: &str) -> Result<PathBuf, Status> {
    if cwd.is_empty() {
        return Ok(PathBuf::new());
    }
    if has_nul(cwd) {
        return Err(Status::invalid_argument("cwd contains a NUL byte"));
    }
    if cwd.len() > MAX_CWD_BYTES {
        return Err(Status::invalid_argument(format!(
            "cwd is {} bytes, more than {MAX_CWD_BYTES}",
            cwd.len()
        )));
    }
    let ws = workspace.display();
    let rel = Path::new(cwd);
    if rel.is_absolute() {
        return Err(Status::invalid_argument(format!(
            "cwd {cwd:?} is an absolute path; it must be relative to the workspace {ws}"
        )));
    }
    let fd = crate::workspace::open_beneath(ws_fd, rel, libc::O_PATH | libc::O_DIRECTORY).map_err(
        |errno| {
            Status::invalid_argument(match errno {
                libc::EXDEV | libc::ELOOP => {
                    format!("cwd {cwd:?} escapes the workspace {ws} through '..' or a symlink")
                }
                libc::ENOENT => format!("cwd {cwd:?} does not exist in the workspace {ws}"),
                libc::ENOTDIR => format!("cwd {cwd:?} is not a directory"),
                e => format!(
                    "cwd {cwd:?} cannot be opened: {}",
                    std::io::Error::from_raw_os_error(e)
                ),
            })
        },
    )?;
    // The path the kernel found, so PWD names the real directory; the relative path as given
    // when the kernel's path does not lie beneath the workspace's (it is resolved again anyway).
    Ok(crate::workspace::fd_path(&fd)
        .and_then(|real| real.strip_prefix(workspace).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| rel.to_path_buf()))
}

/// Merge a request into its profile. Request fields can only tighten the profile. `cwd` is the
/// working directory relative to the workspace, from `resolve_cwd`.
pub fn build_spec(
    cfg: &Config,
    profile: &Profile,
    req: &ExecRequest,
    workspace: std::path::PathBuf,
    cwd: PathBuf,
    mounts: MountPlan,
) -> Result<(SandboxSpec, u64), Status> {
    let argv: Vec<String> = match (req.command.is_empty(), req.argv.is_empty()) {
        (false, true) => crate::spawn::shell_argv(&req.command),
        (true, false) if req.argv[0].is_empty() => {
            return Err(Status::invalid_argument(
                "command is empty: argv[0], the program to run, is an empty string",
            ))
        }
        (true, false) => req.argv.clone(),
        (true, true) => {
            return Err(Status::invalid_argument(
                "command is empty: set `command` (run with sh -c) or `argv`",
            ))
        }
        (false, false) => {
            return Err(Status::invalid_argument(
                "set either `command` or `argv`, not both",
            ))
        }
    };
    let size: usize = argv.iter().map(|a| a.len()).sum();
    if size > cfg.max_command_bytes {
        return Err(Status::invalid_argument(format!(
            "command is {size} bytes, more than max_command_bytes={}",
            cfg.max_command_bytes
        )));
    }
    if argv.iter().any(|a| has_nul(a)) {
        return Err(Status::invalid_argument("command contains a NUL byte"));
    }
    let timeout_secs = match req.timeout_secs {
        0 => profile.timeout_secs,
        t => t.min(profile.max_timeout_secs),
    };
    let output_cap = match req.max_output_bytes {
        0 => profile.output_limit_bytes,
        n => n.min(profile.output_limit_bytes),
    };
    let ws = workspace.to_string_lossy().into_owned();
    let pwd = if cwd.as_os_str().is_empty() {
        ws.clone()
    } else {
        workspace.join(&cwd).to_string_lossy().into_owned()
    };
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("HOME".into(), ws),
        ("PWD".into(), pwd),
        ("LANG".into(), "C.UTF-8".into()),
        ("TERM".into(), "dumb".into()),
    ];
    if profile.filesystem.private_tmp {
        env.push(("TMPDIR".into(), crate::policy::SANDBOX_TMP.into()));
    }
    let mut set = |k: &str, v: &str| {
        env.retain(|(ek, _)| ek != k);
        env.push((k.into(), v.into()));
    };
    for (k, v) in &profile.env_set {
        set(k, v);
    }
    let mut names: Vec<&String> = req.env.keys().collect();
    names.sort();
    for k in names {
        let v = &req.env[k];
        if !profile.env_pass.contains(k) {
            return Err(Status::invalid_argument(format!(
                "environment variable {k} is not allowed by this profile (env_pass: {})",
                profile.env_pass.join(", ")
            )));
        }
        if has_nul(k) || has_nul(v) || k.contains('=') || k.is_empty() {
            return Err(Status::invalid_argument(format!(
                "invalid environment variable name or value for {k:?}"
            )));
        }
        set(k, v);
    }
    let spec = SandboxSpec {
        mounts,
        mounts_warm: false,
        workspace,
        cwd,
        argv,
        env,
        timeout_ms: u64::from(timeout_secs) * 1000,
        limits: profile.limits.clone(),
        fs: profile.filesystem.clone(),
        network: profile.network,
        connect_ports: profile.connect_ports.clone(),
        min_landlock_abi: cfg.min_landlock_abi,
        allow_degraded: cfg.allow_degraded.clone(),
    };
    Ok((spec, output_cap))
}

#[tonic::async_trait]
impl Sandbox for Service {
    type ExecStream = ReceiverStream<Result<ExecEvent, Status>>;

    async fn exec(&self, req: Request<ExecRequest>) -> Result<Response<Self::ExecStream>, Status> {
        let state = self.0.clone();
        let live = state.live();
        let info = peer_info(&req);
        let peer_groups = info.as_ref().map(|i| i.groups.clone()).unwrap_or_default();
        let peer = info.and_then(|i| i.peer).unwrap_or(Peer {
            uid: u32::MAX,
            gid: u32::MAX,
            pid: 0,
        });
        let req = req.into_inner();
        let pname = if req.profile.is_empty() {
            "default".to_string()
        } else {
            req.profile.clone()
        };
        let Some(profile) = live.cfg.profiles.get(&pname) else {
            let known: Vec<&String> = live.cfg.profiles.keys().collect();
            return Err(Status::not_found(format!(
                "unknown profile {pname:?}; available: {known:?}"
            )));
        };
        let mut gids: Vec<u32> = peer_groups.to_vec();
        gids.push(peer.gid);
        if !profile.granted(peer.uid, &gids) {
            tracing::warn!(op = "exec", peer_uid = peer.uid, peer_pid = peer.pid, profile = %pname, "Access denied: profile {pname:?} is not granted to uid {}", peer.uid);
            return Err(Status::permission_denied(format!(
                "profile {pname:?} is not granted to uid {} (its grant_uids/grant_gids)",
                peer.uid
            )));
        }
        let (workspace, ws_fd) = state
            .roots
            .resolve(&req.workspace)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // Whose workspace it is comes first: nothing about another tenant's directories (not
        // even whether a cwd exists there) is answered.
        authorize_workspace(&live, "exec", peer, &gids, &workspace)?;
        let cwd = resolve_cwd(&ws_fd, &workspace, &req.cwd).inspect_err(|st| {
            tracing::warn!(op = "exec", peer_uid = peer.uid, peer_pid = peer.pid, workspace = %workspace.display(), cwd = %req.cwd, profile = %pname, command = %req.command, "exec refused: {}", st.message());
        })?;
        let cwd_log = cwd.display().to_string();
        let mounts = match live.mounts.get(&pname) {
            Some(Ok(m)) => m.clone(),
            Some(Err(e)) => {
                return Err(Status::failed_precondition(format!(
                    "profile {pname:?}: its root cannot be built: {e}"
                )))
            }
            None => return Err(Status::internal(format!("no mount plan for {pname:?}"))),
        };
        let (mut spec, output_cap) =
            build_spec(&live.cfg, profile, &req, workspace.clone(), cwd, mounts)?;
        if spec.mounts == state.launcher.warm_mounts {
            spec.mounts = MountPlan::default();
            spec.mounts_warm = true;
        }
        let guard = live
            .guards
            .get(&pname)
            .ok_or_else(|| Status::internal(format!("no guard for profile {pname:?}")))?;
        if let Some(b) = guard.check(&req.command) {
            tracing::warn!(op = "exec", peer_uid = peer.uid, peer_pid = peer.pid, workspace = %workspace.display(), profile = %pname, command = %req.command, pattern = %b.pattern, matched = %b.matched, "blocked by safety guard: pattern {:?} matched {:?}", b.pattern, b.matched);
            let r = ExecResult {
                exit_code: -1,
                profile: pname.clone(),
                refused: true,
                refused_layer: "guard".into(),
                refused_reason: format!(
                    "Command blocked by safety guard: pattern {:?} matched {:?}",
                    b.pattern, b.matched
                ),
                blocked: true,
                blocked_pattern: b.pattern,
                ..Default::default()
            };
            let (tx, rx) = mpsc::channel(1);
            let _ = tx
                .send(Ok(ExecEvent {
                    event: Some(Event::Result(r)),
                }))
                .await;
            return Ok(Response::new(ReceiverStream::new(rx)));
        }

        let Ok(permit) = state.total.clone().try_acquire_owned() else {
            return Err(Status::resource_exhausted(format!(
                "sandboxd already runs max_concurrent={} sandboxes; retry later",
                state.max_concurrent
            )));
        };
        {
            let mut m = state
                .per_peer
                .lock()
                .map_err(|_| Status::internal("state lock poisoned"))?;
            let n = m.entry(peer.uid).or_insert(0);
            if *n >= live.cfg.max_concurrent_per_peer {
                return Err(Status::resource_exhausted(format!(
                    "uid {} already runs max_concurrent_per_peer={} sandboxes; retry later",
                    peer.uid, live.cfg.max_concurrent_per_peer
                )));
            }
            *n += 1;
        }
        let slot = PeerSlot {
            state: state.clone(),
            uid: peer.uid,
        };
        if !state.launcher.alive() {
            return Err(Status::unavailable(
                "sandbox launcher process is gone; restart sandboxd",
            ));
        }

        let (tx, rx) = mpsc::channel(32);
        let command = if req.command.is_empty() {
            req.argv.join(" ")
        } else {
            req.command.clone()
        };
        tokio::spawn(async move {
            let _permit = permit;
            let _slot = slot;
            let t0 = Instant::now();
            let params = ExecParams {
                spec,
                workspace_fd: ws_fd,
                output_cap,
                profile: pname.clone(),
            };
            let outcome = spawn::run(
                state.launcher.clone(),
                params,
                tx.clone(),
                state.shutdown.clone(),
            )
            .await;
            let ws = workspace.display().to_string();
            let ms = t0.elapsed().as_millis() as u64;
            match outcome {
                Outcome::Done(r) => {
                    if r.refused {
                        tracing::error!(op = "exec", peer_uid = peer.uid, peer_pid = peer.pid, workspace = %ws, cwd = %cwd_log, profile = %pname, command = %command, refused_layer = %r.refused_layer, step = %r.failed_step, errno = r.errno, duration_ms = ms, "exec refused: {}", r.refused_reason);
                    } else if !r.degraded.is_empty() {
                        tracing::warn!(op = "exec", peer_uid = peer.uid, peer_pid = peer.pid, workspace = %ws, cwd = %cwd_log, profile = %pname, command = %command, exit_code = r.exit_code, signal = r.signal, timed_out = r.timed_out, degraded = ?r.degraded, duration_ms = ms, "exec finished DEGRADED");
                    } else {
                        tracing::info!(op = "exec", peer_uid = peer.uid, peer_pid = peer.pid, workspace = %ws, cwd = %cwd_log, profile = %pname, command = %command, exit_code = r.exit_code, signal = r.signal, timed_out = r.timed_out, stdout_truncated = r.stdout_truncated, stderr_truncated = r.stderr_truncated, duration_ms = ms, "exec finished");
                    }
                    let _ = tx
                        .send(Ok(ExecEvent {
                            event: Some(Event::Result(*r)),
                        }))
                        .await;
                }
                Outcome::ClientGone => {
                    tracing::warn!(op = "exec", peer_uid = peer.uid, peer_pid = peer.pid, workspace = %ws, profile = %pname, command = %command, duration_ms = ms, "client disconnected; sandbox killed");
                }
                Outcome::Shutdown => {
                    tracing::warn!(op = "exec", peer_uid = peer.uid, workspace = %ws, command = %command, duration_ms = ms, "sandboxd shutting down; sandbox killed");
                    let _ = tx
                        .send(Err(Status::unavailable(
                            "sandboxd is shutting down; the command was killed",
                        )))
                        .await;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn read_file(
        &self,
        req: Request<ReadFileRequest>,
    ) -> Result<Response<ReadFileResponse>, Status> {
        let (peer, r) = split(req);
        let op = FileOp::start(&self.0, "read_file", peer, &r.workspace, &r.path)?;
        let lim = self.0.limits();
        op.run(move |ws, _ws_path, rel, shown| {
            let o = fileops::read_file(ws, rel, shown, r.offset, r.limit, lim)?;
            Ok(ReadFileResponse {
                content: o.content,
                truncated: o.truncated,
                note: o.note,
                total_lines: o.total_lines,
                path: rel.display().to_string(),
            })
        })
        .await
    }

    async fn write_file(
        &self,
        req: Request<WriteFileRequest>,
    ) -> Result<Response<WriteFileResponse>, Status> {
        let (peer, r) = split(req);
        let op = FileOp::start(&self.0, "write_file", peer, &r.workspace, &r.path)?;
        let lim = self.0.limits();
        op.run(move |ws, ws_path, rel, shown| {
            let o = fileops::write_file(ws, ws_path, rel, shown, &r.content, lim)?;
            Ok(WriteFileResponse {
                bytes_written: o.bytes,
                created: o.created,
                path: rel.display().to_string(),
            })
        })
        .await
    }

    async fn edit_file(
        &self,
        req: Request<EditFileRequest>,
    ) -> Result<Response<EditFileResponse>, Status> {
        let (peer, r) = split(req);
        let op = FileOp::start(&self.0, "edit_file", peer, &r.workspace, &r.path)?;
        let lim = self.0.limits();
        op.run(move |ws, ws_path, rel, shown| {
            let n = fileops::edit_file(ws, ws_path, rel, shown, &r.old_text, &r.new_text, lim)?;
            Ok(EditFileResponse {
                path: rel.display().to_string(),
                bytes_written: n,
            })
        })
        .await
    }

    async fn list_dir(
        &self,
        req: Request<ListDirRequest>,
    ) -> Result<Response<ListDirResponse>, Status> {
        let (peer, r) = split(req);
        let op = FileOp::start(&self.0, "list_dir", peer, &r.workspace, &r.path)?;
        let lim = self.0.limits();
        op.run(move |ws, _ws_path, rel, shown| {
            let (entries, total) = fileops::list_dir(ws, rel, shown, lim)?;
            Ok(ListDirResponse {
                truncated: (entries.len() as u32) < total,
                total,
                path: rel.display().to_string(),
                entries: entries
                    .into_iter()
                    .map(|e| DirEntry {
                        is_dir: e.kind == "dir",
                        name: e.name,
                        kind: e.kind.into(),
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn info(&self, _req: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        Ok(Response::new(info(&self.0.live().cfg)))
    }
}

/// What this host and configuration enforce.
pub fn info(cfg: &Config) -> InfoResponse {
    let mut layers = vec!["rlimits".to_string(), "no_new_privs".to_string()];
    let mut problems = vec![];
    let mut degraded = vec![];
    let abi = match crate::confine::landlock::detect(cfg.min_landlock_abi) {
        Ok(_) => {
            layers.push("landlock".into());
            crate::confine::landlock::kernel_abi().unwrap_or(0) as u32
        }
        Err(e) => {
            if cfg.allow_degraded.iter().any(|l| l == "landlock") {
                degraded.push(format!("landlock: {e}"));
            } else {
                problems.push(format!("landlock: {e}"));
            }
            crate::confine::landlock::kernel_abi().unwrap_or(0).max(0) as u32
        }
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if status.contains("Seccomp:") {
        layers.push("seccomp".into());
    } else {
        problems.push("seccomp: the kernel does not support seccomp filters".into());
    }
    let userns = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if userns > 0 {
        layers.push("namespaces".into());
    } else {
        problems.push("namespaces: user.max_user_namespaces is 0".into());
    }
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    pb::InfoResponse {
        version: env!("CARGO_PKG_VERSION").into(),
        landlock_abi: abi,
        layers_enforced: layers,
        profiles: cfg.profiles.keys().cloned().collect(),
        degraded,
        problems,
        uid,
        gid,
    }
}

/// The peer, its gids (supplementary and primary) and the request.
fn split<T>(req: Request<T>) -> ((Peer, Vec<u32>), T) {
    let info = peer_info(&req);
    let mut gids: Vec<u32> = info.as_ref().map(|i| i.groups.to_vec()).unwrap_or_default();
    let peer = info.and_then(|i| i.peer).unwrap_or(Peer {
        uid: u32::MAX,
        gid: u32::MAX,
        pid: 0,
    });
    gids.push(peer.gid);
    ((peer, gids), req.into_inner())
}

impl State {
    fn limits(&self) -> fileops::Limits {
        let live = self.live();
        fileops::Limits {
            read_max_chars: live.cfg.read_max_chars,
            write_max_bytes: live.cfg.write_max_bytes,
            list_max_entries: live.cfg.list_max_entries,
        }
    }
}

/// One file operation: workspace and path resolved, run off the async threads, audited.
struct FileOp {
    op: &'static str,
    peer: Peer,
    path: String,
    ws_path: PathBuf,
    ws_fd: std::os::fd::OwnedFd,
    rel: Result<PathBuf, FileError>,
    t0: Instant,
}

impl FileOp {
    fn start(
        state: &State,
        op: &'static str,
        (peer, gids): (Peer, Vec<u32>),
        workspace: &str,
        path: &str,
    ) -> Result<FileOp, Status> {
        let t0 = Instant::now();
        let (ws_path, ws_fd) = state.roots.resolve(workspace).map_err(|e| {
            tracing::warn!(
                op,
                peer_uid = peer.uid,
                peer_pid = peer.pid,
                workspace,
                path,
                outcome = "invalid_workspace",
                "{op} refused: {e}"
            );
            Status::invalid_argument(e.to_string())
        })?;
        authorize_workspace(&state.live(), op, peer, &gids, &ws_path)?;
        let rel = fileops::relative_path(&ws_path, path);
        Ok(FileOp {
            op,
            peer,
            path: path.to_string(),
            ws_path,
            ws_fd,
            rel,
            t0,
        })
    }

    async fn run<T: Send + 'static>(
        self,
        f: impl FnOnce(&std::os::fd::OwnedFd, &Path, &Path, &str) -> Result<T, FileError>
            + Send
            + 'static,
    ) -> Result<Response<T>, Status> {
        let FileOp {
            op,
            peer,
            path,
            ws_path,
            ws_fd,
            rel,
            t0,
        } = self;
        let shown = path.clone();
        let ws2 = ws_path.clone();
        let res = match rel {
            Err(e) => Err(e),
            Ok(rel) => tokio::task::spawn_blocking(move || f(&ws_fd, &ws2, &rel, &shown))
                .await
                .unwrap_or_else(|e| {
                    Err(FileError::Io {
                        path: path.clone(),
                        step: "worker",
                        err: e.to_string(),
                    })
                }),
        };
        let ms = t0.elapsed().as_millis() as u64;
        let ws = ws_path.display().to_string();
        match res {
            Ok(v) => {
                tracing::info!(op, peer_uid = peer.uid, peer_pid = peer.pid, workspace = %ws, path = %path, outcome = "ok", duration_ms = ms, "{op} path={path}");
                Ok(Response::new(v))
            }
            Err(e) => {
                let outside = matches!(e, FileError::Outside(_) | FileError::HardLink(_));
                if outside {
                    tracing::warn!(op, peer_uid = peer.uid, peer_pid = peer.pid, workspace = %ws, path = %path, outcome = "outside_workspace", duration_ms = ms, "{op} path={path}: Access denied: {e}");
                } else {
                    tracing::info!(op, peer_uid = peer.uid, peer_pid = peer.pid, workspace = %ws, path = %path, outcome = "error", error = %e, duration_ms = ms, "{op} path={path} failed: {e}");
                }
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn cwd_resolves_beneath_the_workspace_and_names_itself_when_refused() {
        let base = std::env::temp_dir().join(format!("sandboxd-cwd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let ws = base.join("ws");
        std::fs::create_dir_all(ws.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(base.join("other")).unwrap();
        std::fs::write(ws.join("file"), b"x").unwrap();
        symlink(base.join("other"), ws.join("link")).unwrap();
        symlink("sub", ws.join("in-link")).unwrap();
        let ws = ws.canonicalize().unwrap();
        let fd: OwnedFd = std::fs::File::open(&ws).unwrap().into();
        let ok = |c: &str| resolve_cwd(&fd, &ws, c).unwrap();
        let refused = |c: &str| {
            let st = resolve_cwd(&fd, &ws, c).unwrap_err();
            assert_eq!(st.code(), tonic::Code::InvalidArgument, "{c}: {st:?}");
            assert!(st.message().starts_with("cwd"), "{c}: {}", st.message());
            st.message().to_string()
        };

        // Positive controls: the workspace itself, subdirectories, a symlink that stays inside,
        // a `..` that stays inside.
        assert_eq!(ok(""), PathBuf::new());
        assert_eq!(ok("."), PathBuf::new());
        assert_eq!(ok("sub"), PathBuf::from("sub"));
        assert_eq!(ok("sub/deeper/"), PathBuf::from("sub/deeper"));
        assert_eq!(ok("in-link"), PathBuf::from("sub"));
        assert_eq!(ok("sub/deeper/.."), PathBuf::from("sub"));
        // The outside directory exists and the link to it works outside the resolver.
        assert!(ws.join("link").is_dir());

        assert!(refused("/etc").contains("absolute path"));
        assert!(refused(&ws.join("sub").to_string_lossy()).contains("absolute path"));
        assert!(refused("../other").contains("escapes the workspace"));
        assert!(refused("sub/../..").contains("escapes the workspace"));
        assert!(refused("link").contains("escapes the workspace"));
        assert!(refused("link/..").contains("escapes the workspace"));
        assert!(refused("missing").contains("does not exist"));
        assert!(refused("file").contains("not a directory"));
        assert!(refused("a\0b").contains("NUL"));
        assert!(refused(&"a/".repeat(MAX_CWD_BYTES)).contains("more than 4096"));
        std::fs::remove_dir_all(&base).unwrap();
    }
}

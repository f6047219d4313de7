//! `sandboxd serve`. Everything up to starting the launcher runs single-threaded: the privilege
//! drop and the launcher fork must happen before the tokio runtime creates threads.

pub mod accept;
mod goaway;
mod health;
mod reload;
mod systemd;
mod trim;

use crate::api::{self, Service, State};
use crate::cli::config_or_default;
use crate::config::{Config, LogFormat};
use crate::launcher::Launcher;
use crate::supervisor::{Slot, Supervisor};
use crate::workspace::Roots;
use crate::{auth, privdrop};
use anyhow::{bail, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Config file (TOML). Default: /etc/nanobot/sandboxd.toml when it exists.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Socket path (ignored when systemd passes a listening socket).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Directory beneath which requests may name workspaces; repeatable.
    #[arg(long = "workspace-root")]
    pub workspace_roots: Vec<PathBuf>,
    /// User to drop to when started as root.
    #[arg(long)]
    pub user: Option<String>,
    /// Peer uid allowed to connect; repeatable (default: the daemon's own uid).
    #[arg(long = "allow-uid")]
    pub allow_uids: Vec<u32>,
    /// Peer gid allowed to connect; repeatable.
    #[arg(long = "allow-gid")]
    pub allow_gids: Vec<u32>,
    /// Group that owns the socket.
    #[arg(long)]
    pub socket_group: Option<String>,
    /// Grant a workspace to a user, as a `[[workspaces]]` table would: USER:PATH; repeatable.
    #[arg(long = "grant", value_name = "USER:PATH")]
    pub grants: Vec<String>,
    /// Log format on stderr: text or json.
    #[arg(long)]
    pub log_format: Option<String>,
}

fn load_config(a: &ServeArgs) -> Result<Config> {
    let mut cfg = config_or_default(a.config.as_deref())?;
    if let Some(s) = &a.socket {
        cfg.socket = s.clone();
    }
    for r in &a.workspace_roots {
        if !cfg.workspace_roots.contains(r) {
            cfg.workspace_roots.push(r.clone());
        }
    }
    if a.user.is_some() {
        cfg.user = a.user.clone();
    }
    if a.socket_group.is_some() {
        cfg.socket_group = a.socket_group.clone();
    }
    cfg.allow_uids.extend(&a.allow_uids);
    cfg.allow_gids.extend(&a.allow_gids);
    for g in &cfg.allow_groups {
        let gid = privdrop::lookup_group(g)
            .with_context(|| format!("allow_groups: group {g:?} does not exist"))?;
        cfg.allow_gids.push(gid);
    }
    for arg in &a.grants {
        // A user name never contains ':' (it separates the passwd fields), a path may.
        let Some((user, path)) = arg.split_once(':') else {
            bail!("--grant {arg:?}: expected USER:PATH");
        };
        let mut g = crate::tenants::WorkspaceGrant {
            path: path.into(),
            users: vec![user.into()],
            ..Default::default()
        };
        let problems = crate::config::check_grant(&cfg.workspace_roots, &mut g);
        if let Some((key, msg)) = problems.first() {
            bail!("--grant {arg:?}: {key}: {msg}");
        }
        cfg.workspaces.push(g);
    }
    match a.log_format.as_deref() {
        None => {}
        Some("json") => cfg.log_format = LogFormat::Json,
        Some("text") => cfg.log_format = LogFormat::Text,
        Some(o) => bail!("--log-format must be text or json, not {o:?}"),
    }
    Ok(cfg)
}

fn init_logging(fmt: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SANDBOXD_LOG")
        .unwrap_or_else(|_| "info".into());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour only on a terminal: journald and log files get plain text operators can grep.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match fmt {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.init(),
    }
}

fn bind(path: &Path) -> Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "another sandboxd is already listening on {}",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing stale socket {}", path.display()))?;
    }
    let l = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(l)
}

/// Serve, phase by phase: load config → open roots → bind (as root) → drop privileges → fork
/// launcher → runtime → run. Every phase before the runtime runs single-threaded.
///
/// # Safety
/// Call from a single-threaded process (main, before anything starts a thread): the phases
/// before the runtime change the environment (socket activation) and rely on no other thread
/// running.
pub unsafe fn serve(a: ServeArgs) -> Result<()> {
    let cfg = load_config(&a)?;
    init_logging(cfg.log_format);
    // Before anything opens files: systemd's default soft limit (1,024) is easily reached.
    accept::raise_nofile();
    if cfg.workspace_roots.is_empty() {
        bail!("no workspace root configured: pass --workspace-root DIR or set workspace_roots in the config");
    }
    // SAFETY: single-threaded (this function's contract; nothing above starts a thread).
    let activated = unsafe { systemd::activated_listener() };
    let target = target_user(&cfg)?;
    let roots = open_roots(&cfg, target.as_ref(), activated.is_some())?;
    let socket_gid = socket_group(&cfg)?;
    let bound = match (&target, &activated) {
        (Some(t), None) => Some(bind_as_root(&cfg, t, socket_gid)?),
        _ => None,
    };
    // While still root: the sandboxes' cgroup subtree, given to the user we drop to.
    let cgroups = Arc::new(
        crate::cgroups::Cgroups::prepare(cfg.cgroups, target.as_ref().map(|t| (t.uid, t.gid)))
            .map_err(anyhow::Error::msg)?,
    );
    drop_privileges(target.as_ref())?;
    let (listener, owned_path) = listener(&cfg, activated, bound, socket_gid)?;
    // As the user the sandboxes run as, and while single-threaded: the thorough probes, whose
    // findings Info reports (`host::AtStart`).
    // A SIGCHLD ignored by whoever started us (inherited across execve) would make the probes'
    // waitpid fail with ECHILD and report a problem that is not there.
    // SAFETY: setting a signal's disposition to the default involves no handler and no memory;
    // still single-threaded here.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    let at_start = crate::host::AtStart::probe();
    let launcher = fork_launcher(&cfg, &roots)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let reload = Box::new(move || load_config(&a));
    let r = rt.block_on(run(
        cfg,
        reload,
        roots,
        launcher,
        listener,
        owned_path.clone(),
        HostAtStart {
            cgroups: cgroups.clone(),
            probes: at_start,
        },
    ));
    cgroups.cleanup();
    if let Some(p) = owned_path {
        let _ = std::fs::remove_file(p);
    }
    r
}

/// The user to drop to: started as root, the configured one (which must exist); else nobody.
fn target_user(cfg: &Config) -> Result<Option<privdrop::Identity>> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    Ok(match (&cfg.user, root) {
        (Some(u), true) => Some(privdrop::lookup(u)?),
        (None, true) => return Err(privdrop::PrivError::NoUser.into()),
        (_, false) => None,
    })
}

/// Open the roots while we may still traverse to them; as root, also make the socket's
/// directory (owned by the daemon's user) unless systemd passed the socket.
fn open_roots(cfg: &Config, target: Option<&privdrop::Identity>, activated: bool) -> Result<Roots> {
    let roots = Roots::open(&cfg.workspace_roots)?;
    if let (Some(t), false) = (target, activated) {
        if let Some(dir) = cfg.socket.parent() {
            if !dir.exists() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
                std::os::unix::fs::chown(dir, Some(t.uid), Some(t.gid))?;
            }
        }
    }
    Ok(roots)
}

fn socket_group(cfg: &Config) -> Result<Option<libc::gid_t>> {
    Ok(match &cfg.socket_group {
        Some(g) => Some(
            privdrop::lookup_group(g)
                .with_context(|| format!("socket_group {g:?} does not exist"))?,
        ),
        None => None,
    })
}

/// Bind before dropping root when started as root: the socket then goes to the daemon's user and
/// the socket group, which the dropped user (no supplementary groups) could not do.
fn bind_as_root(
    cfg: &Config,
    t: &privdrop::Identity,
    socket_gid: Option<libc::gid_t>,
) -> Result<UnixListener> {
    let l = bind(&cfg.socket)?;
    std::os::unix::fs::chown(&cfg.socket, Some(t.uid), socket_gid)
        .with_context(|| format!("giving {} to {}", cfg.socket.display(), t.name))?;
    Ok(l)
}

/// Become `target` for good (when started as root); never serve as root.
fn drop_privileges(target: Option<&privdrop::Identity>) -> Result<()> {
    if let Some(t) = target {
        // Lets a warm sandbox build its root at a lower priority and come back to normal for the
        // request (init::warm_main): nice 0 at best, never above normal. Commands get 0.
        let nice = libc::rlimit {
            rlim_cur: 20,
            rlim_max: 20,
        };
        // SAFETY: setrlimit reads the struct we pass; failure only forgoes the lower priority.
        if unsafe { libc::setrlimit(libc::RLIMIT_NICE, &nice) } != 0 {
            // Raising a hard limit needs CAP_SYS_RESOURCE, which some containers withhold.
            tracing::info!(
                error = %std::io::Error::last_os_error(),
                "prepared sandboxes build their roots at normal priority: RLIMIT_NICE cannot be \
                 raised (needs CAP_SYS_RESOURCE)"
            );
        }
        privdrop::drop_to(t)?;
        tracing::info!(user = %t.name, uid = t.uid, gid = t.gid, "dropped root privileges");
    }
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        bail!("refusing to serve as root");
    }
    Ok(())
}

/// The socket to serve on: systemd's, the one bound as root, or bound now; with the path to
/// remove at exit when it is ours.
fn listener(
    cfg: &Config,
    activated: Option<UnixListener>,
    bound: Option<UnixListener>,
    socket_gid: Option<libc::gid_t>,
) -> Result<(UnixListener, Option<PathBuf>)> {
    Ok(match (activated, bound) {
        (Some(l), _) => (l, None),
        (None, Some(l)) => (l, Some(cfg.socket.clone())),
        (None, None) => {
            let l = bind(&cfg.socket)?;
            if let Some(gid) = socket_gid {
                std::os::unix::fs::chown(&cfg.socket, None, Some(gid))
                    .with_context(|| format!("giving {} to group {gid}", cfg.socket.display()))?;
            }
            (l, Some(cfg.socket.clone()))
        }
    })
}

/// The shape the launcher prepares warm sandboxes for: the default profile's.
fn warm_shape(cfg: &Config, roots: &Roots) -> crate::policy::WarmShape {
    cfg.profiles
        .get("default")
        .map(|p| crate::policy::WarmShape {
            fs: p.filesystem.clone(),
            network: p.network,
            connect_ports: p.connect_ports.clone(),
            tmp_size_bytes: p.limits.tmp_size_bytes,
            // A default profile whose root cannot be planned gets no warm root; its execs say why.
            mounts: crate::confine::mounts::plan(
                &p.filesystem,
                p.limits.tmp_size_bytes,
                &crate::confine::mounts::host_probe,
            )
            .unwrap_or_default(),
            workspace_roots: roots.0.iter().map(|r| r.path.clone()).collect(),
        })
        .unwrap_or_default()
}

/// Fork the launcher while still single-threaded, and start its supervisor (`supervisor.rs`),
/// which reaps it and starts the next one from its own thread.
fn fork_launcher(cfg: &Config, roots: &Roots) -> Result<Arc<Supervisor>> {
    let warm = warm_shape(cfg, roots);
    let first = Launcher::start(&warm).context("starting the sandbox launcher")?;
    let sup = Supervisor::new(first, warm);
    sup.spawn()
        .context("starting the sandbox launcher's supervisor")?;
    Ok(sup)
}

/// The health status follows the launcher: NOT_SERVING while there is none. A restart waits
/// until NOT_SERVING is published (`Supervisor::published_down`), so every watcher
/// (`grpc.health.v1.Health/Watch`) sees it even when the replacement is up a millisecond later.
async fn follow_launcher(sup: Arc<Supervisor>, health: health::Health) {
    let mut slot = sup.subscribe();
    loop {
        let up = matches!(*slot.borrow_and_update(), Slot::Up(_));
        health.set(up);
        if !up {
            sup.published_down();
        }
        if slot.changed().await.is_err() {
            return;
        }
    }
}

/// What the start-up, before the runtime, prepared on and found out about this host: the
/// sandboxes' cgroups (as root) and the thorough probes (single-threaded), which Info reports.
struct HostAtStart {
    cgroups: Arc<crate::cgroups::Cgroups>,
    probes: crate::host::AtStart,
}

async fn run(
    cfg: Config,
    reload: Box<dyn Fn() -> Result<Config> + Send>,
    roots: Roots,
    launcher: Arc<Supervisor>,
    listener: UnixListener,
    path: Option<PathBuf>,
    host: HostAtStart,
) -> Result<()> {
    let HostAtStart {
        cgroups,
        probes: at_start,
    } = host;
    use tokio::signal::unix::{signal, SignalKind};
    listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(listener)?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    // SAFETY: getuid has no preconditions.
    let daemon_uid = unsafe { libc::getuid() };
    let auth_policy = auth::PeerPolicy {
        allow_uids: cfg.allow_uids.clone(),
        allow_gids: cfg.allow_gids.clone(),
        daemon_uid,
        daemon_userns: auth::userns_of("self"),
    };
    let info = api::info(&cfg, &cgroups, &at_start);
    let snapshot =
        api::ConfigSnapshot::new(cfg.clone(), &auth_policy, &roots).map_err(anyhow::Error::msg)?;
    let state = Arc::new(State {
        sandbox_slots: Arc::new(tokio::sync::Semaphore::new(cfg.max_concurrent)),
        per_peer: Mutex::new(Default::default()),
        shutdown: shutdown_rx,
        auth: auth_policy.clone(),
        roots,
        launcher,
        max_concurrent: cfg.max_concurrent,
        snapshot: std::sync::RwLock::new(Arc::new(snapshot)),
        cgroups: cgroups.clone(),
        at_start,
    });
    let max = cfg.max_request_bytes;
    let svc = nanobot_proto::pb::sandbox_server::SandboxServer::new(Service(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(4 << 20);
    let health = health::Health::new(shutdown_tx.subscribe());
    tokio::spawn(follow_launcher(state.launcher.clone(), health.clone()));
    tokio::spawn(trim::run());
    let shutdown_health = health.clone();
    let mut launcher_slot = state.launcher.subscribe();
    let intercept = api::authenticate(auth_policy);
    let soft_nofile = accept::nofile().map(|(soft, _)| soft);
    let (max_total, max_per_uid) = accept::effective_caps(
        cfg.max_connections,
        cfg.max_connections_per_uid,
        soft_nofile,
    );
    if (max_total, max_per_uid) != (cfg.max_connections, cfg.max_connections_per_uid) {
        tracing::warn!(
            max_connections = max_total,
            max_connections_per_uid = max_per_uid,
            open_files = soft_nofile,
            "the open-file limit ({}) allows fewer connections than configured: max_connections={max_total} (configured {}), max_connections_per_uid={max_per_uid} (configured {}); raise LimitNOFILE=",
            soft_nofile.unwrap_or(0),
            cfg.max_connections,
            cfg.max_connections_per_uid,
        );
    }
    let conns = api::conns::ConnShared::new(
        api::conns::ConnLimits::new(max_total, max_per_uid),
        api::conns::ConnTimeouts {
            handshake: std::time::Duration::from_secs(cfg.handshake_timeout_secs),
            idle: std::time::Duration::from_secs(cfg.idle_timeout_secs),
        },
    );

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let tx = shutdown_tx.clone();
    let reload_state = state.clone();
    let shutdown = async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => reload::reload_on_hup(&reload_state, &reload),
                // The supervisor gave up on the launcher (its log line says why): exit non-zero.
                _ = launcher_slot.wait_for(|s| matches!(s, Slot::Failed(_))) => break,
            }
        }
        tracing::info!("shutting down: no new connections, killing running sandboxes");
        // Watchers learn it before their connections close.
        shutdown_health.set(false);
        let _ = tx.send(true);
    };
    tracing::info!(
        socket = %path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "systemd socket".into()),
        roots = %state.roots.describe(),
        landlock_abi = info.landlock_abi,
        layers = ?info.layers_enforced,
        problems = ?info.problems,
        max_connections = max_total,
        max_connections_per_uid = max_per_uid,
        handshake_timeout_secs = cfg.handshake_timeout_secs,
        idle_timeout_secs = cfg.idle_timeout_secs,
        "sandboxd serving"
    );
    tracing::info!(cgroups = %cgroups.describe(), "sandbox cgroups");
    for d in &info.degraded {
        tracing::warn!(layer = %d, "running DEGRADED: commands run without {d}");
    }
    systemd::notify_ready();
    let serve = tonic::transport::Server::builder()
        .layer(api::in_flight::InFlightLayer)
        .layer(tonic::service::InterceptorLayer::new(intercept))
        .add_service(health.server())
        .add_service(svc)
        .serve_with_incoming_shutdown(accept::incoming(listener, conns), shutdown);
    let mut rx = shutdown_tx.subscribe();
    tokio::pin!(serve);
    tokio::select! {
        r = &mut serve => r?,
        _ = async { let _ = rx.wait_for(|s| *s).await; tokio::time::sleep(std::time::Duration::from_secs(5)).await } => {
            tracing::warn!("connections did not close within 5 s of shutdown; exiting anyway");
        }
    }
    // Give the exec tasks a moment to see the shutdown and kill their sandboxes.
    let t0 = std::time::Instant::now();
    while state.sandbox_slots.available_permits() < state.max_concurrent
        && t0.elapsed().as_secs() < 3
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    if let Err(why) = state.launcher.current() {
        tracing::error!("sandboxd stopped: {why}");
        bail!("{why}");
    }
    tracing::info!("sandboxd stopped");
    Ok(())
}

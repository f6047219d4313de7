//! sandboxd command line. Everything up to starting the launcher runs single-threaded: the
//! privilege drop and the launcher fork must happen before the tokio runtime creates threads.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use sandboxd::config::{Config, LogFormat};
use sandboxd::launcher::Launcher;
use sandboxd::server::{self, Service, State};
use sandboxd::workspace::Roots;
use sandboxd::{auth, privdrop};
use std::os::fd::FromRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const DEFAULT_CONFIG: &str = "/etc/nanobot/sandboxd.toml";

#[derive(Parser)]
#[command(
    name = "sandboxd",
    version,
    about = "Runs nanobot's commands confined by Landlock, seccomp, namespaces and rlimits"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the gRPC API on a Unix socket.
    Serve(ServeArgs),
    /// Validate the config and every profile; non-zero exit on any problem.
    Check(CheckArgs),
    /// Print a profile's effective policy, or whether one access would be allowed and why.
    Explain(ExplainArgs),
    /// Check that this host can run sandboxes: Landlock, seccomp, user namespaces, cgroups.
    Doctor(DoctorArgs),
}

#[derive(clap::Args)]
struct DoctorArgs {
    /// Config file (for min_landlock_abi). Default: /etc/nanobot/sandboxd.toml when it exists
    #[arg(long)]
    config: Option<PathBuf>,
    /// One JSON object instead of ✓/✗ lines
    #[arg(long)]
    json: bool,
}

/// The config named with --config, else /etc/nanobot/sandboxd.toml when it exists, else the
/// built-in defaults.
fn config_or_default(path: Option<&Path>) -> Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None if Path::new(DEFAULT_CONFIG).exists() => Config::load(Path::new(DEFAULT_CONFIG))?,
        None => {
            let mut c = Config::default();
            c.finish()?;
            c
        }
    })
}

fn doctor(a: DoctorArgs) -> Result<i32> {
    let min = config_or_default(a.config.as_deref())?.min_landlock_abi;
    let checks = sandboxd::doctor::checks(min);
    let ok = checks.iter().all(|c| c.ok || !c.critical);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"ok": ok, "checks": checks}))?
        );
    } else {
        for c in &checks {
            let mark = match (c.ok, c.critical) {
                (true, _) => "✓",
                (false, true) => "✗",
                (false, false) => "!",
            };
            println!("{mark} {}: {}", c.name, c.detail);
            if !c.ok {
                println!("    fix: {}", c.fix);
            }
        }
        println!(
            "\n{}",
            if ok {
                "This host can run sandboxes."
            } else {
                "sandboxd will refuse every exec here until the ✗ items are fixed."
            }
        );
    }
    Ok(if ok { 0 } else { 1 })
}

#[derive(clap::Args)]
struct ExplainArgs {
    /// Profile name
    profile: String,
    /// Config file (TOML). Default: /etc/nanobot/sandboxd.toml when it exists
    #[arg(long)]
    config: Option<PathBuf>,
    /// Workspace the command would run in (default: the first workspace root)
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// Would the command be allowed to read this path (or write/execute it, with --write/--exec)?
    #[arg(long)]
    path: Option<PathBuf>,
    #[arg(long, requires = "path", conflicts_with = "exec")]
    write: bool,
    #[arg(long, requires = "path")]
    exec: bool,
    /// Would a TCP connect to this port on the host's loopback be allowed?
    #[arg(long)]
    connect: Option<u16>,
    /// Would connect() to this named AF_UNIX socket reach it?
    #[arg(long)]
    unix: Option<PathBuf>,
    /// The user commands run as, for the file-permission layer (default: the config's `user`,
    /// else the caller when not root)
    #[arg(long)]
    user: Option<String>,
}

/// Exit 0 when the asked access is allowed (or no question was asked), 1 when denied.
fn explain(a: ExplainArgs) -> Result<i32> {
    use sandboxd::explain::{self, Want};
    let cfg = config_or_default(a.config.as_deref())?;
    let Some(p) = cfg.profiles.get(&a.profile) else {
        let known: Vec<&String> = cfg.profiles.keys().collect();
        bail!("unknown profile {:?}; available: {known:?}", a.profile);
    };
    let workspace = a
        .workspace
        .clone()
        .or_else(|| cfg.workspace_roots.first().cloned())
        .unwrap_or_else(|| PathBuf::from("/var/lib/nanobot/workspaces"));
    let abi = sandboxd::confine::landlock::kernel_abi()
        .ok()
        .map(sandboxd::confine::landlock::abi_from_version);
    if a.path.is_none() && a.connect.is_none() && a.unix.is_none() {
        print!(
            "{}",
            explain::describe(&cfg, &a.profile, p, abi, &workspace)
        );
        print!("{}", tenancy_of(&cfg));
        return Ok(0);
    }
    let Some(abi) = abi else {
        bail!("Landlock is not available on this kernel: every exec fails closed");
    };
    let plan = sandboxd::confine::landlock::plan(&p.filesystem, p.network, &p.connect_ports, abi);
    let mounts = sandboxd::confine::mounts::plan(
        &p.filesystem,
        p.limits.tmp_size_bytes,
        &sandboxd::confine::mounts::host_probe,
    )
    .with_context(|| format!("profile {:?}: its root cannot be built", a.profile))?;
    // SAFETY: geteuid/getegid have no preconditions.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let user = match a.user.as_deref().or(cfg.user.as_deref()) {
        Some(name) => {
            let id = privdrop::lookup(name)?;
            Some((id.uid, id.gid))
        }
        None if euid != 0 => Some((euid, egid)),
        None => {
            eprintln!("note: file permissions are not checked: no sandbox user (pass --user NAME or set user in the config)");
            None
        }
    };
    let sb = explain::Sandbox {
        profile: p,
        landlock: &plan,
        mounts: &mounts,
        workspace: &workspace,
        user,
    };
    let mut all = true;
    if let Some(path) = &a.path {
        let want = if a.write {
            Want::Write
        } else if a.exec {
            Want::Exec
        } else {
            Want::Read
        };
        let d = explain::path(&sb, path, want);
        println!(
            "{} {}: {}",
            if d.allowed { "allowed" } else { "denied" },
            path.display(),
            d.reason
        );
        all &= d.allowed;
    }
    if let Some(sock) = &a.unix {
        let d = explain::unix_socket(&sb, sock);
        println!(
            "{} unix:{}: {}",
            if d.allowed { "allowed" } else { "denied" },
            sock.display(),
            d.reason
        );
        all &= d.allowed;
    }
    if let Some(port) = a.connect {
        let d = explain::connect(&plan, p.network, port);
        println!(
            "{} tcp/{port}: {}",
            if d.allowed { "allowed" } else { "denied" },
            d.reason
        );
        all &= d.allowed;
    }
    Ok(if all { 0 } else { 1 })
}

/// The tenancy a daemon with this config (and no peer options on its command line) would have.
fn tenancy_of(cfg: &Config) -> String {
    use sandboxd::tenants;
    let roots = cfg
        .workspace_roots
        .iter()
        .map(|r| r.canonicalize().unwrap_or_else(|_| r.clone()))
        .collect();
    let mode = tenants::mode(&cfg.allow_uids, &cfg.allow_gids, &cfg.allow_groups);
    tenants::describe(&tenants::Tenancy::new(mode, roots, cfg.workspaces.clone()))
}

#[derive(clap::Args)]
struct CheckArgs {
    /// Config file (TOML). Default: /etc/nanobot/sandboxd.toml
    #[arg(long)]
    config: Option<PathBuf>,
}

fn check(a: CheckArgs) -> Result<i32> {
    let path = a.config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    match Config::load(&path) {
        Ok(c) => {
            let names: Vec<&String> = c.profiles.keys().collect();
            println!(
                "{}: ok, {} profile(s): {}",
                path.display(),
                names.len(),
                names
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(0)
        }
        Err(e) => {
            let p = e.problems();
            for line in &p {
                println!("{line}");
            }
            eprintln!("sandboxd: {} problem(s) in {}", p.len(), path.display());
            Ok(1)
        }
    }
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Config file (TOML). Default: /etc/nanobot/sandboxd.toml when it exists.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Socket path (ignored when systemd passes a listening socket).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Directory beneath which requests may name workspaces; repeatable.
    #[arg(long = "workspace-root")]
    workspace_roots: Vec<PathBuf>,
    /// User to drop to when started as root.
    #[arg(long)]
    user: Option<String>,
    /// Peer uid allowed to connect; repeatable (default: the daemon's own uid).
    #[arg(long = "allow-uid")]
    allow_uids: Vec<u32>,
    /// Peer gid allowed to connect; repeatable.
    #[arg(long = "allow-gid")]
    allow_gids: Vec<u32>,
    /// Group that owns the socket.
    #[arg(long)]
    socket_group: Option<String>,
    /// Grant a workspace to a user, as a `[[workspaces]]` table would: USER:PATH; repeatable.
    #[arg(long = "grant", value_name = "USER:PATH")]
    grants: Vec<String>,
    /// Log format on stderr: text or json.
    #[arg(long)]
    log_format: Option<String>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__launcher") {
        // The warm shape comes in the environment, not on the command line: every sandbox init
        // is a copy of the launcher, and its command line is readable inside the sandbox.
        let warm = std::env::var(sandboxd::launcher::WARM_ENV).unwrap_or_default();
        sandboxd::launcher::launcher_entry(args.get(2).map(String::as_str).unwrap_or("0"), &warm);
    }
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Serve(a) => serve(a).map(|()| 0),
        Cmd::Check(a) => check(a),
        Cmd::Explain(a) => explain(a),
        Cmd::Doctor(a) => doctor(a),
    };
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("sandboxd: error: {e:#}");
            std::process::exit(1);
        }
    }
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
        let mut g = sandboxd::tenants::WorkspaceGrant {
            path: path.into(),
            users: vec![user.into()],
            ..Default::default()
        };
        let problems = sandboxd::config::check_grant(&cfg.workspace_roots, &mut g);
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

/// A listening socket passed by systemd (LISTEN_FDS), if any.
fn activated_listener() -> Option<UnixListener> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let n: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || n < 1 {
        return None;
    }
    // Not for our children: the launcher and every sandbox must never hold the listening socket.
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    // SAFETY: fstat/fcntl on fd 3 with a valid stat buffer; no memory is shared.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(3, &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            eprintln!("sandboxd: LISTEN_FDS is set but fd 3 is not a socket; binding the configured socket instead");
            return None;
        }
        libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    // SAFETY: systemd's protocol hands us fd 3 as an open listening socket we now own.
    Some(unsafe { UnixListener::from_raw_fd(3) })
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

fn notify_ready() {
    let Ok(addr) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let msg = format!("READY=1\nMAINPID={}\nSTATUS=serving", std::process::id());
    let r = if let Some(name) = addr.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(msg.as_bytes(), &a))
    } else {
        sock.send_to(msg.as_bytes(), &addr)
    };
    if let Err(e) = r {
        tracing::warn!("sd_notify failed: {e}");
    }
}

fn serve(a: ServeArgs) -> Result<()> {
    let cfg = load_config(&a)?;
    init_logging(cfg.log_format);
    if cfg.workspace_roots.is_empty() {
        bail!("no workspace root configured: pass --workspace-root DIR or set workspace_roots in the config");
    }
    let activated = activated_listener();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let target = match (&cfg.user, root) {
        (Some(u), true) => Some(privdrop::lookup(u)?),
        (None, true) => return Err(privdrop::PrivError::NoUser.into()),
        (_, false) => None,
    };
    // Open the roots while we may still traverse to them.
    let roots = Roots::open(&cfg.workspace_roots)?;
    if let (Some(t), None) = (&target, &activated) {
        if let Some(dir) = cfg.socket.parent() {
            if !dir.exists() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
                std::os::unix::fs::chown(dir, Some(t.uid), Some(t.gid))?;
            }
        }
    }
    let socket_gid = match &cfg.socket_group {
        Some(g) => Some(
            privdrop::lookup_group(g)
                .with_context(|| format!("socket_group {g:?} does not exist"))?,
        ),
        None => None,
    };
    // Bind before dropping root when started as root: the socket then goes to the daemon's
    // user and the socket group, which the dropped user (no supplementary groups) could not do.
    let mut bound = None;
    if let (Some(t), None) = (&target, &activated) {
        let l = bind(&cfg.socket)?;
        std::os::unix::fs::chown(&cfg.socket, Some(t.uid), socket_gid)
            .with_context(|| format!("giving {} to {}", cfg.socket.display(), t.name))?;
        bound = Some(l);
    }
    if let Some(t) = &target {
        // Lets a warm sandbox build its root at a lower priority and come back to normal for the
        // request (init::warm_main): nice 0 at best, never above normal. Commands get 0.
        let nice = libc::rlimit {
            rlim_cur: 20,
            rlim_max: 20,
        };
        // SAFETY: setrlimit reads the struct we pass; failure only forgoes the lower priority.
        unsafe { libc::setrlimit(libc::RLIMIT_NICE, &nice) };
        privdrop::drop_to(t)?;
        tracing::info!(user = %t.name, uid = t.uid, gid = t.gid, "dropped root privileges");
    }
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        bail!("refusing to serve as root");
    }
    let (listener, owned_path) = match (activated, bound) {
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
    };
    let warm = cfg
        .profiles
        .get("default")
        .map(|p| sandboxd::policy::WarmShape {
            fs: p.filesystem.clone(),
            network: p.network,
            connect_ports: p.connect_ports.clone(),
            tmp_size_bytes: p.limits.tmp_size_bytes,
            // A default profile whose root cannot be planned gets no warm root; its execs say why.
            mounts: sandboxd::confine::mounts::plan(
                &p.filesystem,
                p.limits.tmp_size_bytes,
                &sandboxd::confine::mounts::host_probe,
            )
            .unwrap_or_default(),
            workspace_roots: roots.0.iter().map(|r| r.path.clone()).collect(),
        })
        .unwrap_or_default();
    let launcher = Arc::new(Launcher::start(&warm).context("starting the sandbox launcher")?);

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
    ));
    if let Some(p) = owned_path {
        let _ = std::fs::remove_file(p);
    }
    r
}

/// SIGHUP: load the config again; swap it in only if it is valid, else keep serving the old one.
fn reload_on_hup(state: &State, reload: &dyn Fn() -> Result<Config>) {
    match reload() {
        Ok(new) => {
            let old = state.live().cfg.clone();
            let fixed = [
                ("socket", old.socket != new.socket),
                ("user", old.user != new.user),
                (
                    "workspace_roots",
                    old.workspace_roots != new.workspace_roots,
                ),
                ("allow_uids", old.allow_uids != new.allow_uids),
                ("allow_gids", old.allow_gids != new.allow_gids),
                ("max_concurrent", old.max_concurrent != new.max_concurrent),
                (
                    "max_request_bytes",
                    old.max_request_bytes != new.max_request_bytes,
                ),
            ];
            for (k, changed) in fixed {
                if changed {
                    tracing::warn!(
                        key = k,
                        "config reload: {k} changed; it takes effect only after a restart"
                    );
                }
            }
            let names: Vec<String> = new.profiles.keys().cloned().collect();
            match state.replace(new) {
                Ok(()) => {
                    tracing::info!(profiles = ?names, "config reloaded (SIGHUP); running commands keep the profile they started with")
                }
                Err(e) => tracing::error!(
                    "config reload rejected, keeping the current configuration: {e}"
                ),
            }
        }
        Err(e) => {
            for line in format!("{e:#}").lines() {
                tracing::error!(
                    "config reload rejected, keeping the current configuration: {line}"
                );
            }
        }
    }
}

async fn run(
    cfg: Config,
    reload: Box<dyn Fn() -> Result<Config> + Send>,
    roots: Roots,
    launcher: Arc<Launcher>,
    listener: UnixListener,
    path: Option<PathBuf>,
) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(listener)?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    // SAFETY: getuid has no preconditions.
    let daemon_uid = unsafe { libc::getuid() };
    let auth_policy = auth::Policy {
        allow_uids: cfg.allow_uids.clone(),
        allow_gids: cfg.allow_gids.clone(),
        daemon_uid,
        daemon_userns: auth::userns_of("self"),
    };
    let info = server::info(&cfg);
    let live = server::Live::new(cfg.clone(), &auth_policy, &roots).map_err(anyhow::Error::msg)?;
    let state = Arc::new(State {
        total: Arc::new(tokio::sync::Semaphore::new(cfg.max_concurrent)),
        per_peer: Mutex::new(Default::default()),
        shutdown: shutdown_rx,
        auth: auth_policy.clone(),
        roots,
        launcher,
        max_concurrent: cfg.max_concurrent,
        live: std::sync::RwLock::new(Arc::new(live)),
    });
    let max = cfg.max_request_bytes;
    let svc = nanobot_proto::pb::sandbox_server::SandboxServer::new(Service(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(4 << 20);
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<nanobot_proto::pb::sandbox_server::SandboxServer<Service>>()
        .await;
    let intercept = server::authenticate(auth_policy);

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
                _ = hup.recv() => reload_on_hup(&reload_state, &reload),
            }
        }
        tracing::info!("shutting down: no new connections, killing running sandboxes");
        let _ = tx.send(true);
    };
    tracing::info!(
        socket = %path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "systemd socket".into()),
        roots = %state.roots.describe(),
        landlock_abi = info.landlock_abi,
        layers = ?info.layers_enforced,
        problems = ?info.problems,
        "sandboxd serving"
    );
    for d in &info.degraded {
        tracing::warn!(layer = %d, "running DEGRADED: commands run without {d} (allowed by allow_degraded)");
    }
    notify_ready();
    let serve = tonic::transport::Server::builder()
        .layer(tonic::service::InterceptorLayer::new(intercept))
        .add_service(health)
        .add_service(svc)
        .serve_with_incoming_shutdown(
            tokio_stream::StreamExt::map(
                tokio_stream::wrappers::UnixListenerStream::new(listener),
                |r| r.map(server::PeerConn::new),
            ),
            shutdown,
        );
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
    while state.total.available_permits() < state.max_concurrent && t0.elapsed().as_secs() < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tracing::info!("sandboxd stopped");
    Ok(())
}

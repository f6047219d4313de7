//! Harness for the end-to-end tests: starts the real sandboxd (as an unprivileged user when the
//! tests run as root) and runs the real nanobot binary or talks gRPC to the daemon.

use std::os::fd::IntoRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const TEST_USER: &str = "nanobot-e2e";

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Directory holding the workspace's binaries (target/debug).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe path");
    let dir = exe.parent().expect("deps dir");
    if dir.ends_with("deps") {
        dir.parent().expect("target dir").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --workspace` before the tests",
        p.display()
    );
    p
}

/// (uid, gid) the daemon and the sandboxes run as.
pub fn test_ids() -> (u32, u32) {
    static IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *IDS.get_or_init(|| {
        if !is_root() {
            // SAFETY: getuid/getgid have no preconditions.
            return unsafe { (libc::getuid(), libc::getgid()) };
        }
        if lookup(TEST_USER).is_none() {
            let _ = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    TEST_USER,
                ])
                .status();
        }
        lookup(TEST_USER).expect("could not create the test user")
    })
}

pub fn lookup(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == name)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}

pub fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown");
}

pub struct Daemon {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub root: PathBuf,
    pub ws: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    /// The NOTIFY_SOCKET the daemon reports readiness to, when asked for.
    pub notify: Option<std::os::unix::net::UnixDatagram>,
}

#[derive(Default, Clone)]
pub struct Opts {
    pub config: Option<String>,
    pub env: Vec<(String, String)>,
    pub extra_args: Vec<String>,
    /// Program (and arguments) the daemon is started through, e.g. a seccomp wrapper.
    pub wrap: Vec<PathBuf>,
    /// Hand the daemon its listening socket as systemd does (LISTEN_FDS, fd 3).
    pub socket_activated: bool,
    /// Give the daemon a NOTIFY_SOCKET, as systemd's Type=notify does.
    pub notify: bool,
    /// More directories beneath the root (created, owned by the sandbox user) granted to the
    /// harness's peers like `ws`.
    pub grant: Vec<String>,
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Daemon {
    pub fn start() -> Daemon {
        Self::start_with(Opts::default())
    }

    pub fn start_with(o: Opts) -> Daemon {
        let (uid, gid) = test_ids();
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Under /var/tmp, not /tmp, so the sandbox's private /tmp does not hide it.
        let dir = PathBuf::from(format!("/var/tmp/nanobot-e2e-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        let ws = root.join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        for p in [&dir, &root, &ws] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
            chown(p, uid, gid);
        }
        let socket = dir.join("sandboxd.sock");
        let log = dir.join("sandboxd.log");
        let mut cmd = match o.wrap.split_first() {
            Some((w, rest)) => {
                let mut c = Command::new(w);
                c.args(rest).arg(bin("sandboxd"));
                c
            }
            None if o.socket_activated => {
                // LISTEN_PID must be the daemon's own pid: let a shell set it, then exec.
                let mut c = Command::new("/bin/sh");
                c.arg("-c")
                    .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
                    .arg(bin("sandboxd"));
                c
            }
            None => Command::new(bin("sandboxd")),
        };
        cmd.arg("serve")
            .arg("--socket")
            .arg(&socket)
            .arg("--workspace-root")
            .arg(&root);
        if let Some(c) = &o.config {
            let cfg = dir.join("sandboxd.toml");
            std::fs::write(&cfg, c).unwrap();
            cmd.arg("--config").arg(&cfg);
        }
        if is_root() {
            cmd.args([
                "--user",
                TEST_USER,
                "--allow-uid",
                "0",
                "--allow-uid",
                &uid.to_string(),
            ]);
            // Two peers make the daemon multi-tenant (see sandboxd/src/tenants.rs): grant the
            // harness's workspace `ws` of each root to both, and nothing else.
            let mut roots = vec![root.clone()];
            let mut it = o.extra_args.iter();
            while let Some(a) = it.next() {
                if a == "--workspace-root" {
                    roots.extend(it.next().map(PathBuf::from));
                }
            }
            let mut granted: Vec<PathBuf> = roots.iter().map(|r| r.join("ws")).collect();
            for g in &o.grant {
                let p = root.join(g);
                std::fs::create_dir_all(&p).unwrap();
                chown(&p, uid, gid);
                granted.push(p);
            }
            for r in granted.iter().filter(|w| w.is_dir()) {
                for user in ["root", TEST_USER] {
                    cmd.arg("--grant").arg(format!("{user}:{}", r.display()));
                }
            }
        }
        cmd.args(&o.extra_args);
        cmd.env_clear().env("PATH", "/usr/bin:/bin");
        for (k, v) in &o.env {
            cmd.env(k, v);
        }
        let mut notify = None;
        if o.notify {
            let p = dir.join("notify.sock");
            let n = std::os::unix::net::UnixDatagram::bind(&p).unwrap();
            n.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
            cmd.env("NOTIFY_SOCKET", &p);
            notify = Some(n);
        }
        let mut listen_fd = None;
        if o.socket_activated {
            let l = std::os::unix::net::UnixListener::bind(&socket).unwrap();
            std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
            let fd = l.into_raw_fd();
            listen_fd = Some(fd);
            // SAFETY: dup2 in the child between fork and exec only touches fd numbers.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::dup2(fd, 3) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let logf = std::fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf);
        let child = cmd.spawn().expect("start sandboxd");
        if let Some(fd) = listen_fd {
            // SAFETY: our copy of the listening socket; the daemon holds its own now.
            unsafe { libc::close(fd) };
        }
        let d = Daemon {
            child: Some(child),
            dir,
            root,
            ws,
            socket,
            log,
            notify,
        };
        let t0 = Instant::now();
        // The socket is bound before the daemon drops root and starts serving: wait for both,
        // so a test that signals the daemon meets its handlers, not the default action.
        while !d.socket.exists()
            || std::os::unix::net::UnixStream::connect(&d.socket).is_err()
            || !d.log_text().contains("sandboxd serving")
        {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "sandboxd did not start: {}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `nanobot exec` against this daemon, as the calling user.
    pub fn nanobot(&self, args: &[&str], command: &str) -> Output {
        self.nanobot_cmd(args, command)
            .output()
            .expect("run nanobot")
    }

    pub fn nanobot_cmd(&self, args: &[&str], command: &str) -> Command {
        let mut c = Command::new(bin("nanobot"));
        c.arg("exec")
            .arg("--socket")
            .arg(&self.socket)
            .arg("--workspace")
            .arg(&self.ws)
            .args(args)
            .arg("--")
            .arg(command);
        c.stdin(Stdio::null());
        c
    }

    /// Copy the escape probe into the workspace (the only place besides system dirs the sandbox
    /// may execute from) and return its in-sandbox command.
    pub fn install_probe(&self) -> String {
        self.install(&bin("escape-probe"), "probe");
        "./probe".into()
    }

    /// Copy a program into the workspace, owned by the sandbox's user. Copied by `cp`, not by
    /// this multi-threaded process: a write fd opened here could be inherited by another test
    /// thread's fork and make the copy "text busy" when run.
    pub fn install(&self, program: &Path, name: &str) -> PathBuf {
        let (uid, gid) = test_ids();
        let dst = self.ws.join(name);
        let st = Command::new("cp").arg(program).arg(&dst).status().unwrap();
        assert!(st.success(), "cp {}", program.display());
        chown(&dst, uid, gid);
        dst
    }

    /// Run a command outside any sandbox as the sandbox's user: the positive control.
    pub fn unsandboxed(&self, program: &Path, args: &[&str]) -> Output {
        let (uid, gid) = test_ids();
        let mut c = Command::new(program);
        c.args(args).current_dir(&self.ws).stdin(Stdio::null());
        if is_root() {
            c.uid(uid).gid(gid);
        }
        c.output().expect("run unsandboxed")
    }

    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        // SAFETY: signalling our own child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = c.kill();
                return c.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Pids whose command line contains `marker`.
pub fn pids_with(marker: &str) -> Vec<i32> {
    let mut v = vec![];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(c) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            if String::from_utf8_lossy(&c).contains(marker) {
                v.push(pid);
            }
        }
    }
    v
}

/// Address of an abstract unix socket and its length, for bind/connect.
pub fn abstract_addr(name: &str) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: sockaddr_un is a C struct of an integer family and a byte array: every bit
    // pattern, all-zero included, is a valid value, and all-zero is what an abstract address
    // needs (sun_path starts with a NUL byte).
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as u16;
    for (i, b) in name.bytes().enumerate() {
        sa.sun_path[i + 1] = b as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + 1 + name.len()) as libc::socklen_t;
    (sa, len)
}

/// Run a command as a non-root user (for peer-auth tests); only possible as root.
pub fn as_user(c: &mut Command, uid: u32, gid: u32) {
    c.uid(uid).gid(gid);
}

pub mod docs;
pub mod home;
pub use home::UserHome;
pub mod llm;
pub mod grpc {
    use hyper_util::rt::TokioIo;
    use nanobot_proto::pb::{
        exec_event::Event, sandbox_client::SandboxClient, ExecRequest, ExecResult,
    };
    use std::path::{Path, PathBuf};
    use tonic::transport::{Channel, Endpoint};

    pub fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    }

    pub async fn client(socket: &Path) -> SandboxClient<Channel> {
        SandboxClient::new(channel(socket).await)
    }

    pub async fn channel(socket: &Path) -> Channel {
        let p: PathBuf = socket.to_path_buf();
        Endpoint::from_static("http://sandboxd.invalid")
            .connect_with_connector(tower::service_fn(move |_| {
                let p = p.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(p).await?))
                }
            }))
            .await
            .expect("connect")
    }

    pub fn req(ws: &Path, command: &str) -> ExecRequest {
        ExecRequest {
            workspace: ws.to_string_lossy().into_owned(),
            command: command.into(),
            ..Default::default()
        }
    }

    /// Everything one exec produced, in order.
    #[derive(Debug, Default)]
    pub struct Run {
        pub events: Vec<&'static str>,
        pub stdout: Vec<u8>,
        pub stderr: Vec<u8>,
        pub pid: u32,
        pub result: Option<ExecResult>,
    }

    pub async fn exec(
        c: &mut SandboxClient<Channel>,
        r: ExecRequest,
    ) -> Result<Run, tonic::Status> {
        let mut s = c.exec(r).await?.into_inner();
        let mut run = Run::default();
        while let Some(ev) = s.message().await? {
            match ev.event {
                Some(Event::Started(st)) => {
                    run.events.push("started");
                    run.pid = st.pid;
                }
                Some(Event::Stdout(d)) => {
                    run.events.push("stdout");
                    run.stdout.extend(d);
                }
                Some(Event::Stderr(d)) => {
                    run.events.push("stderr");
                    run.stderr.extend(d);
                }
                Some(Event::Result(r)) => {
                    run.events.push("result");
                    run.result = Some(r);
                }
                None => {}
            }
        }
        Ok(run)
    }
}

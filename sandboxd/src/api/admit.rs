//! Exec admission: which profile, whether the peer is granted it and the workspace, the spec the
//! request may run with (it can only tighten its profile), the safety guard, and the
//! concurrency slots. The decisions are plain functions over data; `admit` runs them in order.

use super::state::{ConfigSnapshot, State};
use crate::auth::Peer;
use crate::config::{Config, Profile};
use crate::confine::mounts::MountPlan;
use crate::policy::SandboxSpec;
use crate::shown::{shown, status};
use crate::tenants;
use crate::vocab::Layer;
use nanobot_proto::pb::{ExecRequest, ExecResult};
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tonic::{Code, Status};

/// May this peer use the workspace the kernel resolved to `real`? `gids`: primary and
/// supplementary. Called after `Roots::resolve`, before anything runs or is written.
pub(super) fn authorize_workspace(
    snapshot: &ConfigSnapshot,
    op: &'static str,
    peer: Peer,
    gids: &[u32],
    real: &Path,
) -> Result<(), Status> {
    if snapshot.tenancy.single() {
        return Ok(());
    }
    let name = crate::privdrop::user_name(peer.uid);
    tenants::authorize(&snapshot.tenancy, peer.uid, name.as_deref(), gids, real).map_err(|e| {
        tracing::warn!(op, peer_uid = peer.uid, peer_pid = peer.pid, workspace = %real.display(), "Access denied: {e}");
        Status::permission_denied(format!("Access denied: {e}"))
    })
}

/// Releases a per-peer slot when the exec ends.
pub(super) struct PeerSlot {
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
    // Echoed bounded (`crate::shown`): a status message is an HTTP/2 header.
    let cwd_shown = shown(cwd);
    let cwd = &*cwd_shown;
    if rel.is_absolute() {
        return Err(status(
            Code::InvalidArgument,
            format!("cwd {cwd:?} is an absolute path; it must be relative to the workspace {ws}"),
        ));
    }
    let fd = crate::workspace::open_beneath(ws_fd, rel, libc::O_PATH | libc::O_DIRECTORY).map_err(
        |errno| {
            status(
                Code::InvalidArgument,
                match errno {
                    libc::EXDEV | libc::ELOOP => {
                        format!("cwd {cwd:?} escapes the workspace {ws} through '..' or a symlink")
                    }
                    libc::ENOENT => format!("cwd {cwd:?} does not exist in the workspace {ws}"),
                    libc::ENOTDIR => format!("cwd {cwd:?} is not a directory"),
                    e => format!(
                        "cwd {cwd:?} cannot be opened: {}",
                        std::io::Error::from_raw_os_error(e)
                    ),
                },
            )
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
        (false, true) => crate::shell::shell_argv(&req.command),
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
            return Err(status(
                Code::InvalidArgument,
                format!(
                    "environment variable {} is not allowed by this profile (env_pass: {})",
                    shown(k),
                    profile.env_pass.join(", ")
                ),
            ));
        }
        if has_nul(k) || has_nul(v) || k.contains('=') || k.is_empty() {
            return Err(status(
                Code::InvalidArgument,
                format!(
                    "invalid environment variable name or value for {:?}",
                    shown(k)
                ),
            ));
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
        write_budget_bytes: profile.limits.workspace_bytes,
    };
    Ok((spec, output_cap))
}

/// An exec admitted to run, with what it holds while it runs.
pub(super) struct Admitted {
    pub spec: SandboxSpec,
    pub output_cap: u64,
    pub profile: String,
    /// The workspace as the kernel resolved it.
    pub workspace: PathBuf,
    pub ws_fd: OwnedFd,
    /// The working directory relative to the workspace, for the audit log.
    pub cwd_log: String,
    pub permit: tokio::sync::OwnedSemaphorePermit,
    pub slot: PeerSlot,
}

pub(super) enum Admission {
    Run(Box<Admitted>),
    /// The safety guard blocked the command: this result is the answer and nothing runs.
    Blocked(Box<ExecResult>),
}

/// Decide on one exec, in order: profile, grant, workspace (resolved, then whose it is), cwd,
/// the profile's root, the spec, the guard, the global and per-peer slots, the launcher.
pub(super) fn admit(
    state: &Arc<State>,
    peer: Peer,
    gids: &[u32],
    req: &ExecRequest,
) -> Result<Admission, Status> {
    let snapshot = state.snapshot();
    let pname = profile_name(req);
    let profile = find_profile(&snapshot.cfg, &pname)?;
    if !profile.granted(peer.uid, gids) {
        tracing::warn!(op = "exec", peer_uid = peer.uid, peer_pid = peer.pid, profile = %pname, "Access denied: profile {pname:?} is not granted to uid {}", peer.uid);
        return Err(status(
            Code::PermissionDenied,
            format!(
                "profile {:?} is not granted to uid {} (its grant_uids/grant_gids)",
                shown(&pname),
                peer.uid
            ),
        ));
    }
    let (workspace, ws_fd) = state
        .roots
        .resolve(&req.workspace)
        .map_err(|e| status(Code::InvalidArgument, e.to_string()))?;
    // Whose workspace it is comes first: nothing about another tenant's directories (not
    // even whether a cwd exists there) is answered.
    authorize_workspace(&snapshot, "exec", peer, gids, &workspace)?;
    let cwd = resolve_cwd(&ws_fd, &workspace, &req.cwd).inspect_err(|st| {
        tracing::warn!(op = "exec", peer_uid = peer.uid, peer_pid = peer.pid, workspace = %workspace.display(), cwd = %req.cwd, profile = %pname, command = %req.command, "exec refused: {}", st.message());
    })?;
    let cwd_log = cwd.display().to_string();
    let mounts = mount_plan(&snapshot.mounts, &pname)?;
    let (mut spec, output_cap) =
        build_spec(&snapshot.cfg, profile, req, workspace.clone(), cwd, mounts)?;
    use_warm_mounts(&mut spec, state.launcher.warm_mounts());
    // The workspace's filesystem may hold its byte ceiling; else the sandbox's write budget does.
    spec.write_budget_bytes = crate::disk::decide(
        &crate::disk::probe(ws_fd.as_fd()),
        profile.limits.workspace_bytes,
    )
    .write_budget();
    let guard = snapshot
        .guards
        .get(&pname)
        .ok_or_else(|| Status::internal(format!("no guard for profile {pname:?}")))?;
    // The guard reads what will run: the shell's command line, or an argv as the shell would
    // spell it, so `argv: ["rm", "-rf", "/"]` meets the same patterns as `rm -rf /`.
    let line = match crate::shell::shell_command(&spec.argv) {
        Some(c) => c.to_string(),
        None => crate::guard::command_line(&spec.argv),
    };
    if let Some(b) = guard.check(&line) {
        tracing::warn!(op = "exec", peer_uid = peer.uid, peer_pid = peer.pid, workspace = %workspace.display(), profile = %pname, command = %line, pattern = %b.pattern, matched = %b.matched, "blocked by safety guard: pattern {:?} matched {:?}", b.pattern, b.matched);
        return Ok(Admission::Blocked(Box::new(guard_refusal(&pname, b))));
    }

    let Ok(permit) = state.sandbox_slots.clone().try_acquire_owned() else {
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
        take_peer_slot(&mut m, peer.uid, snapshot.cfg.max_concurrent_per_peer)?;
    }
    let slot = PeerSlot {
        state: state.clone(),
        uid: peer.uid,
    };
    // While the launcher is being replaced (or the daemon is giving up), say what happened.
    state.launcher.current().map_err(Status::unavailable)?;
    Ok(Admission::Run(Box::new(Admitted {
        spec,
        output_cap,
        profile: pname,
        workspace,
        ws_fd,
        cwd_log,
        permit,
        slot,
    })))
}

/// The profile a request names; "default" when it names none.
pub fn profile_name(req: &ExecRequest) -> String {
    if req.profile.is_empty() {
        "default".to_string()
    } else {
        req.profile.clone()
    }
}

pub fn find_profile<'a>(cfg: &'a Config, pname: &str) -> Result<&'a Profile, Status> {
    cfg.profiles.get(pname).ok_or_else(|| {
        let known: Vec<&String> = cfg.profiles.keys().collect();
        status(
            Code::NotFound,
            format!("unknown profile {:?}; available: {known:?}", shown(pname)),
        )
    })
}

/// The profile's mount plan, made when the config was loaded.
pub fn mount_plan(
    plans: &HashMap<String, Result<MountPlan, String>>,
    pname: &str,
) -> Result<MountPlan, Status> {
    match plans.get(pname) {
        Some(Ok(m)) => Ok(m.clone()),
        Some(Err(e)) => Err(Status::failed_precondition(format!(
            "profile {pname:?}: its root cannot be built: {e}"
        ))),
        None => Err(Status::internal(format!("no mount plan for {pname:?}"))),
    }
}

/// A spec whose plan is the one the launcher's sandboxes were prepared with says so instead of
/// carrying it (`SandboxSpec::mounts_warm`).
pub fn use_warm_mounts(spec: &mut SandboxSpec, warm: &MountPlan) {
    if spec.mounts == *warm {
        spec.mounts = MountPlan::default();
        spec.mounts_warm = true;
    }
}

/// The result of a command the safety guard blocked.
pub fn guard_refusal(pname: &str, b: crate::guard::Blocked) -> ExecResult {
    let mut r = ExecResult {
        exit_code: -1,
        profile: pname.to_string(),
        refused: true,
        refused_reason: format!(
            "Command blocked by safety guard: pattern {:?} matched {:?}",
            b.pattern,
            shown(&b.matched)
        ),
        blocked: true,
        blocked_pattern: b.pattern,
        ..Default::default()
    };
    Layer::Guard.set_refused(&mut r);
    r
}

/// Count one more running exec for `uid`, unless it already runs `max`.
pub fn take_peer_slot(
    running: &mut HashMap<u32, usize>,
    uid: u32,
    max: usize,
) -> Result<(), Status> {
    let n = running.entry(uid).or_insert(0);
    if *n >= max {
        return Err(Status::resource_exhausted(format!(
            "uid {uid} already runs max_concurrent_per_peer={max} sandboxes; retry later"
        )));
    }
    *n += 1;
    Ok(())
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

    fn req(command: &str) -> ExecRequest {
        ExecRequest {
            command: command.into(),
            ..Default::default()
        }
    }

    fn spec_for(profile: &Profile, r: &ExecRequest) -> Result<(SandboxSpec, u64), Status> {
        build_spec(
            &Config::default(),
            profile,
            r,
            "/ws".into(),
            PathBuf::new(),
            MountPlan::default(),
        )
    }

    #[test]
    fn a_request_can_only_tighten_its_profile() {
        let profile = Profile::default();
        // Nothing asked: the profile's own defaults.
        let (s, cap) = spec_for(&profile, &req("true")).unwrap();
        assert_eq!(s.timeout_ms, u64::from(profile.timeout_secs) * 1000);
        assert_eq!(cap, profile.output_limit_bytes);
        // Asking for less is granted.
        let mut r = req("true");
        r.timeout_secs = 5;
        r.max_output_bytes = 100;
        let (s, cap) = spec_for(&profile, &r).unwrap();
        assert_eq!(s.timeout_ms, 5000);
        assert_eq!(cap, 100);
        // Asking for more is clamped to the profile's ceiling, not refused.
        r.timeout_secs = profile.max_timeout_secs + 1000;
        r.max_output_bytes = profile.output_limit_bytes * 10;
        let (s, cap) = spec_for(&profile, &r).unwrap();
        assert_eq!(s.timeout_ms, u64::from(profile.max_timeout_secs) * 1000);
        assert_eq!(cap, profile.output_limit_bytes);
        // Everything else is the profile's and cannot be asked for: limits (memory included),
        // filesystem, network.
        assert_eq!(s.limits, profile.limits);
        assert_eq!(s.fs, profile.filesystem);
        assert_eq!(s.network, profile.network);
        assert_eq!(s.connect_ports, profile.connect_ports);
        assert!(!s.mounts_warm);
    }

    #[test]
    fn environment_only_from_env_pass_and_set_by_the_profile_last_wins() {
        let mut profile = Profile {
            env_pass: vec!["FOO".into()],
            ..Default::default()
        };
        profile.env_set.insert("LANG".into(), "de_DE.UTF-8".into());
        let mut r = req("true");
        r.env.insert("FOO".into(), "1".into());
        let (s, _) = spec_for(&profile, &r).unwrap();
        let get = |k: &str| {
            s.env
                .iter()
                .find(|(ek, _)| ek == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("FOO"), Some("1"));
        assert_eq!(get("LANG"), Some("de_DE.UTF-8"));
        assert_eq!(get("HOME"), Some("/ws"));
        assert_eq!(get("PWD"), Some("/ws"));
        r.env.insert("SECRET".into(), "x".into());
        let st = spec_for(&profile, &r).unwrap_err();
        assert_eq!(st.code(), tonic::Code::InvalidArgument);
        assert!(st
            .message()
            .contains("SECRET is not allowed by this profile"));
    }

    #[test]
    fn the_command_is_one_of_command_or_argv() {
        let p = Profile::default();
        let (s, _) = spec_for(&p, &req("echo hi")).unwrap();
        assert_eq!(s.argv, ["/bin/sh", "-c", "--", "echo hi"]);
        let argv = |v: &[&str]| ExecRequest {
            argv: v.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert_eq!(
            spec_for(&p, &argv(&["ls", "-l"])).unwrap().0.argv,
            ["ls", "-l"]
        );
        let msg = |r: &ExecRequest| spec_for(&p, r).unwrap_err().message().to_string();
        assert!(msg(&req("")).contains("set `command` (run with sh -c) or `argv`"));
        assert!(msg(&argv(&["", "x"])).contains("argv[0], the program to run, is an empty string"));
        let mut both = argv(&["ls"]);
        both.command = "ls".into();
        assert!(msg(&both).contains("not both"));
        assert!(msg(&req("a\0b")).contains("NUL"));
        let big = "x".repeat(Config::default().max_command_bytes + 1);
        assert!(msg(&req(&big)).contains("more than max_command_bytes"));
    }

    #[test]
    fn admission_pieces() {
        assert_eq!(profile_name(&req("x")), "default");
        let named = ExecRequest {
            profile: "net".into(),
            ..Default::default()
        };
        assert_eq!(profile_name(&named), "net");
        let cfg = Config::default();
        let st = find_profile(&cfg, "nope").unwrap_err();
        assert_eq!(st.code(), tonic::Code::NotFound);
        assert!(st
            .message()
            .starts_with("unknown profile \"nope\"; available: "));

        let mut plans = HashMap::new();
        plans.insert("a".to_string(), Ok(MountPlan::default()));
        plans.insert("b".to_string(), Err("no /usr".to_string()));
        assert!(mount_plan(&plans, "a").is_ok());
        let e = mount_plan(&plans, "b").unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert_eq!(
            e.message(),
            "profile \"b\": its root cannot be built: no /usr"
        );
        assert_eq!(
            mount_plan(&plans, "c").unwrap_err().code(),
            tonic::Code::Internal
        );

        let (mut s, _) = spec_for(&Profile::default(), &req("true")).unwrap();
        let mut warm = MountPlan::default();
        warm.ops.push(crate::confine::mounts::MountOp::Proc {
            path: "/proc".into(),
        });
        use_warm_mounts(&mut s, &warm);
        assert!(!s.mounts_warm, "another plan travels in full");
        s.mounts = warm.clone();
        use_warm_mounts(&mut s, &warm);
        assert!(s.mounts_warm && s.mounts == MountPlan::default());

        let r = guard_refusal(
            "default",
            crate::guard::Blocked {
                pattern: "rm -rf".into(),
                matched: "rm -rf /".into(),
            },
        );
        assert!(r.refused && r.blocked && r.exit_code == -1);
        assert_eq!(r.refused_layer, "guard");
        assert_eq!(r.refused_layer_kind(), nanobot_proto::pb::Layer::Guard);
        assert_eq!(r.blocked_pattern, "rm -rf");
        assert_eq!(
            r.refused_reason,
            "Command blocked by safety guard: pattern \"rm -rf\" matched \"rm -rf /\""
        );

        let mut running = HashMap::new();
        take_peer_slot(&mut running, 7, 2).unwrap();
        take_peer_slot(&mut running, 7, 2).unwrap();
        let e = take_peer_slot(&mut running, 7, 2).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            e.message(),
            "uid 7 already runs max_concurrent_per_peer=2 sandboxes; retry later"
        );
        take_peer_slot(&mut running, 8, 2).unwrap();
        assert_eq!(running[&7], 2);
    }
}

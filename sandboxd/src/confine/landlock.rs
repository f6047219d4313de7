//! Policy → Landlock rules. `plan` is pure and unit-tested; the rest talks to the kernel:
//! `detect` (the ABI, probed by `crate::host`), `create` and `add_workspace` open the paths and
//! build the ruleset (the init, `init/rules.rs` and `init/prepare.rs`), `restrict` enforces it on
//! the calling thread (the command, `init/child.rs`).

use crate::policy::{
    FsPolicy, Network, DEV_READ_ONLY, DEV_READ_WRITE, DEV_TERMINALS, SANDBOX_SHM, SANDBOX_TMP,
};
use crate::workspace::open_rule_path;
use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, Ruleset,
    RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;

/// What a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The workspace directory, passed in as an fd so no path is resolved twice.
    Workspace,
    Path(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub target: Target,
    pub access: BitFlags<AccessFs>,
    /// A missing system path is skipped (e.g. /lib32 on most hosts); anything else must exist.
    pub optional: bool,
}

/// The full plan: what is handled (denied unless a rule grants it) and the grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub abi: ABI,
    pub handled_fs: BitFlags<AccessFs>,
    pub handled_net: BitFlags<AccessNet>,
    /// TCP ports the sandbox may connect to (when `handled_net` is set).
    pub net_rules: Vec<u16>,
    pub scopes: BitFlags<Scope>,
    pub rules: Vec<Rule>,
}

/// Rights that only make sense on files (the kernel rejects directory rights on a file rule).
pub fn file_rights(abi: ABI) -> BitFlags<AccessFs> {
    AccessFs::from_file(abi)
}

pub fn read_exec(_abi: ABI) -> BitFlags<AccessFs> {
    AccessFs::Execute | AccessFs::ReadFile | AccessFs::ReadDir
}

pub fn read_only(_abi: ABI) -> BitFlags<AccessFs> {
    AccessFs::ReadFile | AccessFs::ReadDir
}

/// Everything the ABI handles except creating device nodes and device ioctls.
pub fn read_write(abi: ABI) -> BitFlags<AccessFs> {
    AccessFs::from_all(abi) & !(AccessFs::MakeChar | AccessFs::MakeBlock | AccessFs::IoctlDev)
}

/// Map the kernel's ABI number to the crate's enum. Newer kernels are used at the newest ABI this
/// build knows.
pub fn abi_from_version(v: i32) -> ABI {
    match v {
        i32::MIN..=0 => ABI::Unsupported,
        1 => ABI::V1,
        2 => ABI::V2,
        3 => ABI::V3,
        4 => ABI::V4,
        5 => ABI::V5,
        6 => ABI::V6,
        7 => ABI::V7,
        8 => ABI::V8,
        9 => ABI::V9,
        _ => ABI::V10,
    }
}

/// Build the rule plan for a sandbox. Pure: touches no file.
pub fn plan(fs: &FsPolicy, network: Network, connect_ports: &[u16], abi: ABI) -> Plan {
    let handled_fs = AccessFs::from_all(abi);
    let file = file_rights(abi);
    let mut rules = Vec::new();
    let mut push = |target: Target, access: BitFlags<AccessFs>, optional: bool| {
        let access = access & handled_fs;
        if !access.is_empty() {
            rules.push(Rule {
                target,
                access,
                optional,
            });
        }
    };
    let ws = if fs.workspace_writable {
        read_write(abi)
    } else {
        read_only(abi) | AccessFs::Execute
    };
    push(Target::Workspace, ws, false);
    for p in &fs.read_exec {
        push(Target::Path(p.clone()), read_exec(abi), true);
    }
    for p in &fs.read_only {
        push(Target::Path(p.clone()), read_only(abi), false);
    }
    for p in &fs.read_write {
        push(Target::Path(p.clone()), read_write(abi), false);
    }
    for d in DEV_READ_WRITE {
        push(
            Target::Path(d.into()),
            (AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate) & file,
            false,
        );
    }
    for d in DEV_READ_ONLY {
        push(Target::Path(d.into()), AccessFs::ReadFile.into(), true);
    }
    // The sandbox's own /dev (a tmpfs of device binds and links) may be listed.
    push(Target::Path("/dev".into()), AccessFs::ReadDir.into(), true);
    // The controlling terminal and the sandbox's own ptys: read, write and terminal ioctls
    // (tcsetattr, TIOCGPTN; TIOCSTI and TIOCLINUX stay refused by seccomp).
    for d in DEV_TERMINALS {
        let tty = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev;
        let access = if *d == "/dev/tty" {
            tty & file
        } else {
            tty | AccessFs::ReadDir
        };
        push(Target::Path(d.into()), access, true);
    }
    // Granted host sockets: connect() is a Landlock right only from ABI 9 (RESOLVE_UNIX), where
    // every other socket is then refused by Landlock as well as absent from the root.
    for s in &fs.unix_sockets {
        push(Target::Path(s.clone()), file & AccessFs::ResolveUnix, true);
    }
    // The sandbox's own /proc (a fresh mount for its PID namespace): readable, never writable.
    push(Target::Path("/proc".into()), read_only(abi), false);
    if fs.private_tmp {
        push(Target::Path(SANDBOX_TMP.into()), read_write(abi), false);
        push(Target::Path(SANDBOX_SHM.into()), read_write(abi), true);
    }
    // None: no TCP at all. Ports: TCP connect to the listed ports only, never bind. Private has
    // its own network namespace (nothing outside to reach) and Full is the host's, unrestricted.
    let handled_net = match network {
        Network::None | Network::Ports if abi >= ABI::V4 => AccessNet::from_all(abi),
        _ => BitFlags::EMPTY,
    };
    let net_rules = if network == Network::Ports && abi >= ABI::V4 {
        let mut p = connect_ports.to_vec();
        p.sort_unstable();
        p.dedup();
        p
    } else {
        vec![]
    };
    let scopes = if abi >= ABI::V6 {
        match network {
            // Abstract sockets belong to a network namespace: on the host's, keep the sandbox
            // from reaching the host's (D-Bus, X11, …); in its own there is nothing else anyway.
            Network::None | Network::Private | Network::Ports => Scope::from_all(abi),
            // With the host network unrestricted the sandbox may still not signal outside itself.
            Network::Full => Scope::Signal.into(),
        }
    } else {
        BitFlags::EMPTY
    };
    Plan {
        abi,
        handled_fs,
        handled_net,
        net_rules,
        scopes,
        rules,
    }
}

/// Why Landlock could not be enforced.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error(
        "the kernel offers Landlock ABI {have}, the profile requires at least {need}; {}",
        crate::host::landlock_too_old_fix()
    )]
    TooOld { have: i32, need: u32 },
    #[error("{}", crate::host::landlock_unavailable_message(libc::EPERM))]
    Filtered,
    #[error("{}", crate::host::landlock_unavailable_message(*.0))]
    Unavailable(i32),
    #[error("cannot open {path} for a Landlock rule: {err}")]
    Open { path: String, err: std::io::Error },
    #[error("Landlock ruleset: {0}")]
    Ruleset(#[from] landlock::RulesetError),
    #[error("Landlock was only {0:?}, the sandbox requires full enforcement")]
    NotFullyEnforced(RulesetStatus),
}

impl LandlockError {
    pub fn errno(&self) -> i32 {
        match self {
            LandlockError::TooOld { .. } => libc::EOPNOTSUPP,
            LandlockError::Filtered => libc::EPERM,
            LandlockError::Unavailable(e) => *e,
            LandlockError::Open { err, .. } => err.raw_os_error().unwrap_or(libc::EIO),
            LandlockError::Ruleset(_) => libc::EINVAL,
            LandlockError::NotFullyEnforced(_) => libc::EOPNOTSUPP,
        }
    }
}

/// Detect the ABI to use, failing closed with a message naming the cause.
pub fn detect(min_abi: u32) -> Result<ABI, LandlockError> {
    let v = match crate::host::landlock_abi() {
        Ok(v) => v,
        Err(libc::EPERM) => return Err(LandlockError::Filtered),
        Err(e) => return Err(LandlockError::Unavailable(e)),
    };
    if v < min_abi as i32 || v < 1 {
        return Err(LandlockError::TooOld {
            have: v,
            need: min_abi.max(1),
        });
    }
    Ok(abi_from_version(v))
}

/// Create the ruleset of `plan` with every rule but the workspace's (`add_workspace` adds those;
/// `restrict` enforces it, in the command's process): all of it is known before a request
/// arrives, so a pre-warmed sandbox builds it ahead of time. Every requested right is a hard
/// requirement: a kernel that cannot give one makes this fail rather than silently weaken the
/// sandbox.
///
/// `root`: the sandbox's root being built; paths are resolved inside it, absolute symlinks
/// included, as the command will resolve them.
pub fn create(plan: &Plan, root: &OwnedFd) -> Result<RulesetCreated, LandlockError> {
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(plan.handled_fs)?;
    if !plan.handled_net.is_empty() {
        ruleset = ruleset.handle_access(plan.handled_net)?;
    }
    if !plan.scopes.is_empty() {
        ruleset = ruleset.scope(plan.scopes)?;
    }
    let mut created = ruleset.create()?;
    for port in &plan.net_rules {
        created = created.add_rule(NetPort::new(*port, AccessNet::ConnectTcp))?;
    }
    for rule in &plan.rules {
        if let Target::Path(p) = &rule.target {
            match open_rule_path(root, p) {
                Ok(fd) => created = created.add_rule(PathBeneath::new(fd, rule.access))?,
                Err(libc::ENOENT) if rule.optional => {}
                Err(e) => {
                    return Err(LandlockError::Open {
                        path: p.display().to_string(),
                        err: std::io::Error::from_raw_os_error(e),
                    });
                }
            }
        }
    }
    Ok(created)
}

/// Add the workspace rules of `plan` to a ruleset from `create`.
pub fn add_workspace(
    mut created: RulesetCreated,
    plan: &Plan,
    workspace: BorrowedFd<'_>,
) -> Result<RulesetCreated, LandlockError> {
    for rule in &plan.rules {
        if let Target::Workspace = rule.target {
            created = created.add_rule(PathBeneath::new(workspace, rule.access))?;
        }
    }
    Ok(created)
}

/// Enforce a ruleset on the calling thread, and refuse anything short of full enforcement.
pub fn restrict(created: RulesetCreated) -> Result<(), LandlockError> {
    // no_new_privs is set separately (earlier) so that its failure is reported as its own layer.
    let status = created.restrict_self()?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        return Err(LandlockError::NotFullyEnforced(status.ruleset));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_for<'a>(plan: &'a Plan, path: &str) -> Option<&'a Rule> {
        plan.rules
            .iter()
            .find(|r| r.target == Target::Path(path.into()))
    }

    #[test]
    fn workspace_is_read_write_without_device_nodes() {
        let p = plan(&FsPolicy::default(), Network::None, &[], ABI::V7);
        let ws = p
            .rules
            .iter()
            .find(|r| r.target == Target::Workspace)
            .unwrap();
        assert!(ws
            .access
            .contains(AccessFs::WriteFile | AccessFs::Truncate | AccessFs::Refer));
        assert!(ws
            .access
            .contains(AccessFs::Execute | AccessFs::MakeDir | AccessFs::RemoveFile));
        assert!(!ws
            .access
            .intersects(AccessFs::MakeChar | AccessFs::MakeBlock | AccessFs::IoctlDev));
    }

    #[test]
    fn readonly_workspace_grants_no_write_right() {
        let fs = FsPolicy {
            workspace_writable: false,
            ..FsPolicy::default()
        };
        let p = plan(&fs, Network::None, &[], ABI::V7);
        let ws = p
            .rules
            .iter()
            .find(|r| r.target == Target::Workspace)
            .unwrap();
        assert!(!ws.access.intersects(AccessFs::from_write(ABI::V7)));
    }

    #[test]
    fn system_dirs_are_read_exec_only() {
        let p = plan(&FsPolicy::default(), Network::None, &[], ABI::V7);
        for d in ["/usr", "/etc", "/bin", "/lib"] {
            let r = rule_for(&p, d).unwrap();
            assert_eq!(
                r.access,
                AccessFs::Execute | AccessFs::ReadFile | AccessFs::ReadDir,
                "{d}"
            );
        }
    }

    #[test]
    fn no_rule_for_host_shared_dirs() {
        let p = plan(&FsPolicy::default(), Network::None, &[], ABI::V7);
        for d in ["/", "/var/tmp", "/home", "/root", "/run", "/var"] {
            assert!(rule_for(&p, d).is_none(), "{d} must not be granted");
        }
        // /tmp and /dev/shm are granted only because they are the sandbox's private tmpfs.
        let fs = FsPolicy {
            private_tmp: false,
            ..FsPolicy::default()
        };
        let p = plan(&fs, Network::None, &[], ABI::V7);
        assert!(rule_for(&p, "/tmp").is_none());
        assert!(rule_for(&p, "/dev/shm").is_none());
    }

    #[test]
    fn dev_null_can_be_truncated_but_not_executed() {
        let p = plan(&FsPolicy::default(), Network::None, &[], ABI::V7);
        let r = rule_for(&p, "/dev/null").unwrap();
        assert_eq!(
            r.access,
            AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate
        );
        assert_eq!(
            rule_for(&p, "/dev/urandom").unwrap().access,
            AccessFs::ReadFile
        );
    }

    #[test]
    fn handled_rights_cover_truncate_refer_ioctl_and_network() {
        let p = plan(&FsPolicy::default(), Network::None, &[], ABI::V7);
        assert!(p
            .handled_fs
            .contains(AccessFs::Truncate | AccessFs::Refer | AccessFs::IoctlDev));
        assert_eq!(p.handled_net, AccessNet::BindTcp | AccessNet::ConnectTcp);
        assert_eq!(p.scopes, Scope::AbstractUnixSocket | Scope::Signal);
    }

    #[test]
    fn full_network_handles_no_net_right_but_scopes_signals() {
        let p = plan(&FsPolicy::default(), Network::Full, &[], ABI::V7);
        assert!(p.handled_net.is_empty());
        assert_eq!(p.scopes, BitFlags::from(Scope::Signal));
    }

    #[test]
    fn ports_allow_connect_to_the_listed_ports_only_and_never_bind() {
        let p = plan(
            &FsPolicy::default(),
            Network::Ports,
            &[8080, 443, 8080],
            ABI::V7,
        );
        assert_eq!(p.handled_net, AccessNet::BindTcp | AccessNet::ConnectTcp);
        assert_eq!(p.net_rules, vec![443, 8080]);
        assert_eq!(p.scopes, Scope::from_all(ABI::V7));
        // Ports listed for another mode grant nothing.
        assert!(plan(&FsPolicy::default(), Network::None, &[443], ABI::V7)
            .net_rules
            .is_empty());
        let private = plan(&FsPolicy::default(), Network::Private, &[], ABI::V7);
        assert!(private.handled_net.is_empty());
        assert_eq!(private.scopes, Scope::from_all(ABI::V7));
    }

    #[test]
    fn older_abi_handles_only_what_it_knows() {
        let p = plan(&FsPolicy::default(), Network::None, &[], ABI::V3);
        assert!(p.handled_fs.contains(AccessFs::Truncate));
        assert!(!p.handled_fs.contains(AccessFs::IoctlDev));
        assert!(p.handled_net.is_empty());
        assert!(p.scopes.is_empty());
        for r in &p.rules {
            assert!(
                p.handled_fs.contains(r.access),
                "rule {r:?} grants an unhandled right"
            );
        }
    }

    #[test]
    fn abi_numbers_map() {
        assert_eq!(abi_from_version(-1), ABI::Unsupported);
        assert_eq!(abi_from_version(7), ABI::V7);
        assert_eq!(abi_from_version(99), ABI::V10);
    }
}

//! Policy → seccomp filters. The maps are built by pure functions and unit-tested; the filters are
//! installed last, just before exec, by the sandboxed child.
//!
//! Several filters are stacked because seccompiler gives one action per filter, and the kernel runs
//! all of them, keeping the most restrictive answer:
//! 1. an x32 guard (seccompiler checks the architecture but not the x32 bit),
//! 2. the deny list (EPERM),
//! 3. clone3 → ENOSYS, so libc falls back to clone(), whose flags we can inspect,
//! 4. socket families other than AF_UNIX → EAFNOSUPPORT when the network is off.

use crate::policy::Network;
use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("building seccomp filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    #[error("compiling seccomp filter: {0}")]
    Compile(#[from] seccompiler::Error),
}

pub type Map = BTreeMap<i64, Vec<SeccompRule>>;

/// Syscalls no sandboxed command needs and that widen the kernel surface or break confinement.
pub const DENIED: &[(&str, i64)] = &[
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("acct", libc::SYS_acct),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("reboot", libc::SYS_reboot),
    ("syslog", libc::SYS_syslog),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ("quotactl", libc::SYS_quotactl),
    ("personality", libc::SYS_personality),
    ("uselib", libc::SYS_uselib),
    ("vhangup", libc::SYS_vhangup),
    ("fanotify_init", libc::SYS_fanotify_init),
];

/// Namespace flags clone() must not carry.
pub const CLONE_NS_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// Terminal ioctls that push input into a tty or control the console.
pub const DENIED_IOCTLS: &[u64] = &[libc::TIOCSTI, libc::TIOCLINUX];

fn cond(arg: u8, op: SeccompCmpOp, v: u64) -> Result<SeccompCondition, SeccompError> {
    // Dword: the kernel truncates these arguments (int / unsigned int) to 32 bits, so we compare
    // the low 32 bits only; garbage in the high half cannot slip past the filter.
    Ok(SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, v)?)
}

/// Rules answered with EPERM.
pub fn deny_map() -> Result<Map, SeccompError> {
    let mut m: Map = DENIED.iter().map(|(_, nr)| (*nr, vec![])).collect();
    let clone_rules = CLONE_NS_FLAGS
        .iter()
        .map(|f| {
            Ok(SeccompRule::new(vec![cond(
                0,
                SeccompCmpOp::MaskedEq(*f),
                *f,
            )?])?)
        })
        .collect::<Result<Vec<_>, SeccompError>>()?;
    m.insert(libc::SYS_clone, clone_rules);
    let ioctl_rules = DENIED_IOCTLS
        .iter()
        .map(|req| Ok(SeccompRule::new(vec![cond(1, SeccompCmpOp::Eq, *req)?])?))
        .collect::<Result<Vec<_>, SeccompError>>()?;
    m.insert(libc::SYS_ioctl, ioctl_rules);
    Ok(m)
}

/// Rules answered with EAFNOSUPPORT: any socket that is not AF_UNIX when the network is off.
pub fn socket_map(network: Network) -> Result<Map, SeccompError> {
    let mut m = Map::new();
    if network == Network::None {
        let not_unix = || -> Result<Vec<SeccompRule>, SeccompError> {
            Ok(vec![SeccompRule::new(vec![cond(
                0,
                SeccompCmpOp::Ne,
                libc::AF_UNIX as u64,
            )?])?])
        };
        m.insert(libc::SYS_socket, not_unix()?);
        m.insert(libc::SYS_socketpair, not_unix()?);
    }
    Ok(m)
}

fn arch() -> TargetArch {
    #[cfg(target_arch = "aarch64")]
    {
        TargetArch::aarch64
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        TargetArch::x86_64
    }
}

fn compile(map: Map, action: SeccompAction) -> Result<BpfProgram, SeccompError> {
    let f = SeccompFilter::new(map, SeccompAction::Allow, action, arch())?;
    Ok(f.try_into()?)
}

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// Bit that marks the x32 ABI in the syscall number on x86_64.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// A filter that kills the process on any x32 syscall. The architecture check in the main filters
/// already kills i386 (`int 0x80`) calls, whose AUDIT_ARCH differs; x32 shares AUDIT_ARCH_X86_64.
pub fn x32_guard() -> BpfProgram {
    let nr_offset = 0u32; // offsetof(struct seccomp_data, nr)
    vec![
        sock_filter {
            code: BPF_LD_W_ABS,
            jt: 0,
            jf: 0,
            k: nr_offset,
        },
        sock_filter {
            code: BPF_JSET_K,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_KILL_PROCESS,
        },
        sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ]
}

/// Every filter for a sandbox, in installation order.
pub fn build(network: Network) -> Result<Vec<BpfProgram>, SeccompError> {
    let mut progs = Vec::new();
    if cfg!(target_arch = "x86_64") {
        progs.push(x32_guard());
    }
    progs.push(compile(
        deny_map()?,
        SeccompAction::Errno(libc::EPERM as u32),
    )?);
    let clone3: Map = [(libc::SYS_clone3, vec![])].into_iter().collect();
    progs.push(compile(clone3, SeccompAction::Errno(libc::ENOSYS as u32))?);
    let sockets = socket_map(network)?;
    if !sockets.is_empty() {
        progs.push(compile(
            sockets,
            SeccompAction::Errno(libc::EAFNOSUPPORT as u32),
        )?);
    }
    Ok(progs)
}

/// The filters of one network mode, or why they could not be compiled.
type Prebuilt = (Network, Result<Vec<BpfProgram>, String>);
static PREBUILT: std::sync::OnceLock<Vec<Prebuilt>> = std::sync::OnceLock::new();

/// Compile the filters of every network mode once, in the launcher, before any sandbox exists.
pub fn prebuild() {
    PREBUILT.get_or_init(|| {
        [Network::None, Network::Full]
            .into_iter()
            .map(|n| (n, build(n).map_err(|e| e.to_string())))
            .collect()
    });
}

/// The filters for `network`, compiled by `prebuild`.
pub fn prebuilt(network: Network) -> Result<&'static [BpfProgram], String> {
    prebuild();
    let all = PREBUILT.get().ok_or("seccomp filters were not compiled")?;
    match all.iter().find(|(n, _)| *n == network) {
        Some((_, Ok(p))) => Ok(p),
        Some((_, Err(e))) => Err(e.clone()),
        None => Err(format!("no seccomp filter for network mode {network:?}")),
    }
}

/// Install the filters on the calling thread. Requires no_new_privs.
pub fn apply(progs: &[BpfProgram]) -> Result<(), SeccompError> {
    for p in progs {
        seccompiler::apply_filter(p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_map_covers_the_threat_model() {
        let m = deny_map().unwrap();
        for nr in [
            libc::SYS_ptrace,
            libc::SYS_process_vm_readv,
            libc::SYS_process_vm_writev,
            libc::SYS_mount,
            libc::SYS_umount2,
            libc::SYS_pivot_root,
            libc::SYS_chroot,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_bpf,
            libc::SYS_perf_event_open,
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_request_key,
            libc::SYS_userfaultfd,
            libc::SYS_io_uring_setup,
            libc::SYS_io_uring_enter,
            libc::SYS_io_uring_register,
            libc::SYS_kexec_load,
            libc::SYS_kexec_file_load,
            libc::SYS_init_module,
            libc::SYS_finit_module,
            libc::SYS_delete_module,
            libc::SYS_open_by_handle_at,
            libc::SYS_fsopen,
            libc::SYS_move_mount,
        ] {
            let rules = m
                .get(&nr)
                .unwrap_or_else(|| panic!("syscall {nr} not denied"));
            assert!(
                rules.is_empty(),
                "syscall {nr} must be denied unconditionally"
            );
        }
        // Ordinary syscalls stay allowed.
        for nr in [
            libc::SYS_read,
            libc::SYS_execve,
            libc::SYS_openat,
            libc::SYS_wait4,
        ] {
            assert!(!m.contains_key(&nr));
        }
    }

    #[test]
    fn clone_and_ioctl_are_conditional() {
        let m = deny_map().unwrap();
        assert_eq!(m[&libc::SYS_clone].len(), CLONE_NS_FLAGS.len());
        assert_eq!(m[&libc::SYS_ioctl].len(), 2);
    }

    #[test]
    fn sockets_only_filtered_without_network() {
        assert!(socket_map(Network::None)
            .unwrap()
            .contains_key(&libc::SYS_socket));
        assert!(socket_map(Network::Full).unwrap().is_empty());
    }

    #[test]
    fn all_filters_compile() {
        let progs = build(Network::None).unwrap();
        assert_eq!(
            progs.len(),
            if cfg!(target_arch = "x86_64") { 4 } else { 3 }
        );
        for p in &progs {
            assert!(!p.is_empty() && p.len() < 4096);
        }
        assert_eq!(build(Network::Full).unwrap().len(), progs.len() - 1);
    }

    #[test]
    fn x32_guard_tests_the_x32_bit_and_kills() {
        let g = x32_guard();
        assert_eq!(g[1].k, 0x4000_0000);
        assert_eq!(g[2].k, libc::SECCOMP_RET_KILL_PROCESS);
        assert_eq!(g[3].k, libc::SECCOMP_RET_ALLOW);
    }
}

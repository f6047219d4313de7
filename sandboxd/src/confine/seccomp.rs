//! Policy → one seccomp filter. The filter is plain data (`bpf::SyscallRules`) built by pure
//! functions and unit-tested; `confine::bpf` compiles it (checked instruction by instruction
//! against the rules and against
//! seccompiler's own compiler), and the sandboxed child installs it last, just before exec.
//!
//! What the filter answers, by syscall:
//! - another architecture (i386 through `int 0x80`) or an x32 number: kill the process;
//! - the deny list, clone() with a namespace flag, TIOCSTI/TIOCLINUX: EPERM;
//! - clone3: ENOSYS, so libc falls back to clone(), whose flags a filter can inspect;
//! - socket families other than AF_UNIX when the network is off: EAFNOSUPPORT;
//! - everything else: allowed (Landlock, namespaces and rlimits confine it).

use crate::confine::bpf::{self, Action, ArgRule, BpfError, Cmp, Cond, SyscallRules};
use crate::policy::Network;
use seccompiler::BpfProgram;

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

/// Namespace flags clone() must not carry, with their names (`sandboxd explain` shows them).
pub const CLONE_NS_FLAGS: &[(&str, u64)] = &[
    ("CLONE_NEWNS", libc::CLONE_NEWNS as u64),
    ("CLONE_NEWCGROUP", libc::CLONE_NEWCGROUP as u64),
    ("CLONE_NEWUTS", libc::CLONE_NEWUTS as u64),
    ("CLONE_NEWIPC", libc::CLONE_NEWIPC as u64),
    ("CLONE_NEWUSER", libc::CLONE_NEWUSER as u64),
    ("CLONE_NEWPID", libc::CLONE_NEWPID as u64),
    ("CLONE_NEWNET", libc::CLONE_NEWNET as u64),
];

/// Terminal ioctls that push input into a tty or control the console, with their names.
pub const DENIED_IOCTLS: &[(&str, u64)] =
    &[("TIOCSTI", libc::TIOCSTI), ("TIOCLINUX", libc::TIOCLINUX)];

/// Rules for one syscall that always answer `action`.
fn always(action: Action) -> Vec<ArgRule> {
    vec![ArgRule {
        when: vec![],
        action,
    }]
}

const EPERM: Action = Action::Errno(libc::EPERM as u16);

/// The whole filter, as rules per syscall, for a sandbox with this network mode.
pub fn syscall_rules(network: Network) -> SyscallRules {
    let mut p = SyscallRules::default();
    for (_, nr) in DENIED {
        p.rules.insert(*nr as u32, always(EPERM));
    }
    let clone_rules = CLONE_NS_FLAGS
        .iter()
        .map(|(_, f)| ArgRule {
            when: vec![Cond {
                arg: 0,
                cmp: Cmp::MaskedEq {
                    mask: *f as u32,
                    value: *f as u32,
                },
            }],
            action: EPERM,
        })
        .collect();
    p.rules.insert(libc::SYS_clone as u32, clone_rules);
    let ioctl_rules = DENIED_IOCTLS
        .iter()
        .map(|(_, req)| ArgRule {
            when: vec![Cond {
                arg: 1,
                cmp: Cmp::Eq(*req as u32),
            }],
            action: EPERM,
        })
        .collect();
    p.rules.insert(libc::SYS_ioctl as u32, ioctl_rules);
    p.rules.insert(
        libc::SYS_clone3 as u32,
        always(Action::Errno(libc::ENOSYS as u16)),
    );
    // fallocate takes disk blocks without writing a page, so the write budget (init/budget.rs)
    // would never see them: it is "not supported", and glibc's posix_fallocate falls back to
    // writing the blocks, which counts.
    p.rules.insert(
        libc::SYS_fallocate as u32,
        always(Action::Errno(libc::EOPNOTSUPP as u16)),
    );
    // `prctl(PR_SET_DUMPABLE, 0)` succeeds without effect (errno 0): a non-dumpable process's
    // /proc/PID/io is unreadable to the init, whose write budget must count every process
    // (init/budget.rs); ssh, ssh-agent and gpg-agent make themselves non-dumpable and would
    // otherwise end the sandbox. Every process that could ptrace it is the same sandbox's.
    p.rules.insert(
        libc::SYS_prctl as u32,
        vec![ArgRule {
            when: vec![
                Cond {
                    arg: 0,
                    cmp: Cmp::Eq(libc::PR_SET_DUMPABLE as u32),
                },
                Cond {
                    arg: 1,
                    cmp: Cmp::Eq(0),
                },
            ],
            action: Action::Errno(0),
        }],
    );
    let no_af = Action::Errno(libc::EAFNOSUPPORT as u16);
    let unix_only = || {
        vec![ArgRule {
            when: vec![Cond {
                arg: 0,
                cmp: Cmp::Ne(libc::AF_UNIX as u32),
            }],
            action: no_af,
        }]
    };
    match network {
        Network::None => {
            p.rules.insert(libc::SYS_socket as u32, unix_only());
            p.rules.insert(libc::SYS_socketpair as u32, unix_only());
        }
        // Landlock's network rules cover TCP only: anything else (UDP, raw, SCTP, MPTCP, netlink,
        // packet) would pass them, so only AF_UNIX and plain TCP sockets can be made.
        Network::Ports => {
            let allow = |when: Vec<Cond>| ArgRule {
                when,
                action: Action::Allow,
            };
            let family = |f: i32| Cond {
                arg: 0,
                cmp: Cmp::Eq(f as u32),
            };
            let stream = Cond {
                arg: 1,
                cmp: Cmp::MaskedEq {
                    mask: 0xf,
                    value: libc::SOCK_STREAM as u32,
                },
            };
            let proto = |n: i32| Cond {
                arg: 2,
                cmp: Cmp::Eq(n as u32),
            };
            let mut rules = vec![allow(vec![family(libc::AF_UNIX)])];
            for f in [libc::AF_INET, libc::AF_INET6] {
                for pr in [0, libc::IPPROTO_TCP] {
                    rules.push(allow(vec![family(f), stream, proto(pr)]));
                }
            }
            rules.push(ArgRule {
                when: vec![],
                action: no_af,
            });
            p.rules.insert(libc::SYS_socket as u32, rules);
            p.rules.insert(libc::SYS_socketpair as u32, unix_only());
        }
        Network::Private | Network::Full => {}
    }
    p
}

/// The filter for a sandbox, compiled.
pub fn build(network: Network) -> Result<BpfProgram, BpfError> {
    bpf::compile(&syscall_rules(network))
}

/// The filter of one network mode, or why it could not be compiled.
type Prebuilt = (Network, Result<BpfProgram, String>);
static PREBUILT: std::sync::OnceLock<Vec<Prebuilt>> = std::sync::OnceLock::new();

/// Compile the filter of every network mode once, in the launcher, before any sandbox exists.
pub fn prebuild() {
    PREBUILT.get_or_init(|| {
        Network::ALL
            .into_iter()
            .map(|n| (n, build(n).map_err(|e| e.to_string())))
            .collect()
    });
}

/// The filter for `network`, compiled by `prebuild`.
pub fn prebuilt(network: Network) -> Result<&'static BpfProgram, String> {
    prebuild();
    let all = PREBUILT.get().ok_or("seccomp filter was not compiled")?;
    match all.iter().find(|(n, _)| *n == network) {
        Some((_, Ok(p))) => Ok(p),
        Some((_, Err(e))) => Err(e.clone()),
        None => Err(format!("no seccomp filter for network mode {network:?}")),
    }
}

/// Install the filter on the calling thread. Requires no_new_privs.
pub fn apply(prog: &BpfProgram) -> Result<(), seccompiler::Error> {
    seccompiler::apply_filter(prog)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpf::{emulate, AUDIT_ARCH};
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };
    use std::collections::BTreeMap;

    fn decide(p: &SyscallRules, nr: i64) -> Option<&Vec<ArgRule>> {
        p.rules.get(&(nr as u32))
    }

    #[test]
    fn deny_list_covers_the_threat_model() {
        let p = syscall_rules(Network::None);
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
            assert_eq!(
                decide(&p, nr),
                Some(&always(EPERM)),
                "syscall {nr} must be denied unconditionally"
            );
        }
        for nr in [
            libc::SYS_read,
            libc::SYS_execve,
            libc::SYS_openat,
            libc::SYS_wait4,
        ] {
            assert_eq!(p.decide(nr as u32, &[0; 6]), Action::Allow);
        }
    }

    #[test]
    fn clone_ioctl_and_sockets_are_conditional() {
        let p = syscall_rules(Network::None);
        let clone = libc::SYS_clone as u32;
        assert_eq!(p.rules[&clone].len(), CLONE_NS_FLAGS.len());
        let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64;
        assert_eq!(p.decide(clone, &[flags, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(
            p.decide(clone, &[libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
            Action::Allow
        );
        let ioctl = libc::SYS_ioctl as u32;
        assert_eq!(p.decide(ioctl, &[0, libc::TIOCSTI, 0, 0, 0, 0]), EPERM);
        assert_eq!(
            p.decide(ioctl, &[0, libc::TIOCGWINSZ, 0, 0, 0, 0]),
            Action::Allow
        );
        let socket = libc::SYS_socket as u32;
        let inet = [libc::AF_INET as u64, 1, 0, 0, 0, 0];
        let unix = [libc::AF_UNIX as u64, 1, 0, 0, 0, 0];
        assert_eq!(
            p.decide(socket, &inet),
            Action::Errno(libc::EAFNOSUPPORT as u16)
        );
        assert_eq!(p.decide(socket, &unix), Action::Allow);
        let full = syscall_rules(Network::Full);
        assert_eq!(full.decide(socket, &inet), Action::Allow);
        assert_eq!(full.decide(clone, &[flags, 0, 0, 0, 0, 0]), EPERM);
    }

    /// Syscalls whose rules all give one (non-allow) action: what one seccompiler filter per
    /// action can express. Mixed rules (allow these, deny the rest) are checked against
    /// `SyscallRules::decide` only.
    fn single_action(rules: &[ArgRule]) -> bool {
        rules
            .iter()
            .all(|r| r.action == rules[0].action && r.action != Action::Allow)
    }

    /// The same policy compiled by seccompiler, one linear filter per action, as the kernel would
    /// stack them.
    fn seccompiler_reference(p: &SyscallRules) -> Vec<BpfProgram> {
        let mut by_action: BTreeMap<u32, BTreeMap<i64, Vec<SeccompRule>>> = BTreeMap::new();
        for (nr, rules) in p.rules.iter().filter(|(_, r)| single_action(r)) {
            for r in rules {
                let conds: Vec<SeccompCondition> = r
                    .when
                    .iter()
                    .map(|c| {
                        let (op, v) = match c.cmp {
                            Cmp::Eq(v) => (SeccompCmpOp::Eq, v),
                            Cmp::Ne(v) => (SeccompCmpOp::Ne, v),
                            Cmp::MaskedEq { mask, value } => {
                                (SeccompCmpOp::MaskedEq(u64::from(mask)), value)
                            }
                        };
                        SeccompCondition::new(c.arg, SeccompCmpArgLen::Dword, op, u64::from(v))
                            .unwrap()
                    })
                    .collect();
                let entry = by_action
                    .entry(r.action.ret())
                    .or_default()
                    .entry(i64::from(*nr))
                    .or_default();
                if !conds.is_empty() {
                    entry.push(SeccompRule::new(conds).unwrap());
                }
            }
        }
        let arch = if cfg!(target_arch = "aarch64") {
            TargetArch::aarch64
        } else {
            TargetArch::x86_64
        };
        by_action
            .into_iter()
            .map(|(ret, map)| {
                let action = SeccompAction::Errno(ret & libc::SECCOMP_RET_DATA);
                SeccompFilter::new(map, SeccompAction::Allow, action, arch)
                    .unwrap()
                    .try_into()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn binary_search_filter_agrees_with_seccompiler() {
        for network in Network::ALL {
            let p = syscall_rules(network);
            let ours = build(network).unwrap();
            let reference = seccompiler_reference(&p);
            let mut argsets: Vec<[u64; 6]> = vec![[0; 6], [u64::MAX; 6]];
            for (_, f) in CLONE_NS_FLAGS {
                argsets.push([*f | libc::SIGCHLD as u64, 0, 0, 0, 0, 0]);
            }
            for (_, req) in DENIED_IOCTLS {
                argsets.push([1, *req, 0, 0, 0, 0]);
                argsets.push([1, *req | 0xffff_ffff_0000_0000, 0, 0, 0, 0]);
            }
            for fam in [
                libc::AF_UNIX,
                libc::AF_INET,
                libc::AF_INET6,
                libc::AF_NETLINK,
            ] {
                for (ty, pr) in [(1, 0), (2, 0), (1, 6), (1, 262), (0x80001, 0)] {
                    argsets.push([fam as u64, ty, pr, 0, 0, 0]);
                }
            }
            for nr in 0..512u32 {
                for args in &argsets {
                    let got = emulate(&ours, AUDIT_ARCH, nr, args).unwrap();
                    // The kernel keeps the most restrictive answer of stacked filters: the lowest
                    // action as a signed number.
                    assert_eq!(
                        got,
                        p.decide(nr, args).ret(),
                        "{network:?} syscall {nr} args {args:x?}"
                    );
                    if p.rules.get(&nr).is_some_and(|r| !single_action(r)) {
                        continue;
                    }
                    let want = reference
                        .iter()
                        .map(|f| emulate(f, AUDIT_ARCH, nr, args).unwrap())
                        .min_by_key(|r| *r as i32)
                        .unwrap_or(libc::SECCOMP_RET_ALLOW);
                    assert_eq!(got, want, "{network:?} syscall {nr} args {args:x?}");
                }
            }
        }
    }

    #[test]
    fn ports_mode_allows_plain_tcp_and_unix_only() {
        let p = syscall_rules(Network::Ports);
        let socket = libc::SYS_socket as u32;
        let call =
            |f: i32, t: i32, pr: i32| p.decide(socket, &[f as u64, t as u64, pr as u64, 0, 0, 0]);
        let no = Action::Errno(libc::EAFNOSUPPORT as u16);
        assert_eq!(call(libc::AF_INET, libc::SOCK_STREAM, 0), Action::Allow);
        assert_eq!(
            call(
                libc::AF_INET6,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                libc::IPPROTO_TCP
            ),
            Action::Allow
        );
        assert_eq!(call(libc::AF_UNIX, libc::SOCK_DGRAM, 0), Action::Allow);
        assert_eq!(call(libc::AF_INET, libc::SOCK_DGRAM, 0), no);
        assert_eq!(call(libc::AF_INET, libc::SOCK_RAW, 1), no);
        assert_eq!(call(libc::AF_INET, libc::SOCK_STREAM, 262), no); // IPPROTO_MPTCP
        assert_eq!(
            call(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_SCTP),
            no
        );
        assert_eq!(call(libc::AF_NETLINK, libc::SOCK_RAW, 0), no);
        assert_eq!(call(libc::AF_PACKET, libc::SOCK_RAW, 0), no);
        assert_eq!(
            syscall_rules(Network::Private).decide(socket, &[libc::AF_INET as u64, 2, 0, 0, 0, 0]),
            Action::Allow
        );
    }

    #[test]
    fn one_short_filter() {
        let prog = build(Network::None).unwrap();
        // A search tree: every syscall number is answered within a few dozen instructions.
        assert!(prog.len() < 300, "{} instructions", prog.len());
    }
}

#[cfg(test)]
mod layout {
    use super::*;
    use bpf::{compile, compile_with, run, AUDIT_ARCH};

    /// Instructions and mean path over native syscall numbers, per leaf size, for the real
    /// policy. Run with --nocapture to see the figures; asserts the chosen layout is the cheapest
    /// path.
    #[test]
    fn layout_cost() {
        let p = syscall_rules(Network::None);
        let mut best = (usize::MAX, 0);
        for leaf in 1..=6 {
            let prog = compile_with(&p, leaf, true).unwrap();
            let total: usize = (0..512)
                .map(|nr| run(&prog, AUDIT_ARCH, nr, &[0; 6]).unwrap().1)
                .sum();
            println!(
                "leaf {leaf}: {} insns, {total} steps over 512 numbers",
                prog.len()
            );
            best = best.min((total, leaf));
        }
        let chosen = compile(&p).unwrap();
        let chosen_total: usize = (0..512)
            .map(|nr| run(&chosen, AUDIT_ARCH, nr, &[0; 6]).unwrap().1)
            .sum();
        assert!(chosen_total <= best.0 + 512, "leaf {} is cheaper", best.1);
    }
}

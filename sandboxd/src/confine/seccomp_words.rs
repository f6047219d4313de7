//! The seccomp filter's rules in plain words for `sandboxd explain`: syscalls, flags, ioctls,
//! socket families and errnos by name (from the same tables the filter is built from), hex only
//! for a value no table names.

use super::bpf::{Action, ArgRule, Cmp, Cond};
use super::seccomp::{self, CLONE_NS_FLAGS, DENIED, DENIED_IOCTLS};
use crate::policy::Network;

/// Syscalls the filter has rules for beyond the deny list.
const SYSCALLS: &[(&str, i64)] = &[
    ("clone", libc::SYS_clone),
    ("clone3", libc::SYS_clone3),
    ("ioctl", libc::SYS_ioctl),
    ("socket", libc::SYS_socket),
    ("socketpair", libc::SYS_socketpair),
    ("prctl", libc::SYS_prctl),
    ("fallocate", libc::SYS_fallocate),
];

const FAMILIES: &[(&str, u64)] = &[
    ("AF_UNIX", libc::AF_UNIX as u64),
    ("AF_INET", libc::AF_INET as u64),
    ("AF_INET6", libc::AF_INET6 as u64),
];
const TYPES: &[(&str, u64)] = &[
    ("SOCK_STREAM", libc::SOCK_STREAM as u64),
    ("SOCK_DGRAM", libc::SOCK_DGRAM as u64),
];
const PROTOCOLS: &[(&str, u64)] = &[
    ("0 (the family's default)", 0),
    ("IPPROTO_TCP", libc::IPPROTO_TCP as u64),
];
const PRCTL_OPTIONS: &[(&str, u64)] = &[("PR_SET_DUMPABLE", libc::PR_SET_DUMPABLE as u64)];
const NUMBERS: &[(&str, u64)] = &[("0", 0)];

fn syscall_name(nr: u32) -> String {
    DENIED
        .iter()
        .chain(SYSCALLS)
        .find(|(_, n)| *n as u32 == nr)
        .map_or_else(|| format!("syscall {nr}"), |(s, _)| s.to_string())
}

/// An argument's name and the table naming its values.
fn arg_of(nr: u32, arg: u8) -> (String, &'static [(&'static str, u64)]) {
    let nr = i64::from(nr);
    match (nr, arg) {
        (libc::SYS_clone, 0) => ("flags".into(), CLONE_NS_FLAGS),
        (libc::SYS_ioctl, 1) => ("request".into(), DENIED_IOCTLS),
        (libc::SYS_socket | libc::SYS_socketpair, 0) => ("family".into(), FAMILIES),
        (libc::SYS_socket | libc::SYS_socketpair, 1) => ("type".into(), TYPES),
        (libc::SYS_socket | libc::SYS_socketpair, 2) => ("protocol".into(), PROTOCOLS),
        (libc::SYS_prctl, 0) => ("option".into(), PRCTL_OPTIONS),
        (libc::SYS_prctl, 1) => ("its value".into(), NUMBERS),
        (_, n) => (format!("argument {n}"), &[]),
    }
}

fn value_name(table: &[(&str, u64)], v: u32) -> String {
    table
        .iter()
        .find(|(_, x)| *x as u32 == v)
        .map_or_else(|| format!("{v:#x}"), |(s, _)| s.to_string())
}

fn errno_name(e: u16) -> String {
    match i32::from(e) {
        0 => "returns 0 without effect".into(),
        libc::EPERM => "EPERM".into(),
        libc::ENOSYS => "ENOSYS".into(),
        libc::EAFNOSUPPORT => "EAFNOSUPPORT".into(),
        libc::EOPNOTSUPP => "EOPNOTSUPP".into(),
        n => format!("errno {n}"),
    }
}

fn action_name(a: Action) -> String {
    match a {
        Action::Allow => "allowed".into(),
        Action::Errno(e) => errno_name(e),
        Action::KillProcess => "kills the process".into(),
    }
}

/// How one condition reads, without its value: "flags has", "family is not", ….
fn verb(nr: u32, c: &Cond) -> (String, u32) {
    let (arg, _) = arg_of(nr, c.arg);
    match c.cmp {
        Cmp::Eq(v) => (format!("{arg} is"), v),
        Cmp::Ne(v) => (format!("{arg} is not"), v),
        Cmp::MaskedEq { mask, value } if mask == value => (format!("{arg} has"), value),
        // The socket type's low bits, SOCK_NONBLOCK and SOCK_CLOEXEC aside.
        Cmp::MaskedEq { mask: 0xf, value } => (format!("{arg} is"), value),
        Cmp::MaskedEq { mask, value } => (format!("{arg} masked with {mask:#x} is"), value),
    }
}

fn cond_words(nr: u32, c: &Cond) -> String {
    let (v, value) = verb(nr, c);
    format!("{v} {}", value_name(arg_of(nr, c.arg).1, value))
}

/// "a, b or c".
fn either(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// One syscall's rules as one line: rules with the same action that test the same argument the
/// same way are read together ("flags has CLONE_NEWNS or CLONE_NEWUSER → EPERM").
fn rules_words(nr: u32, rules: &[ArgRule]) -> String {
    let mut parts: Vec<String> = vec![];
    let mut i = 0;
    while i < rules.len() {
        let r = &rules[i];
        match r.when.as_slice() {
            [] => {
                parts.push(if parts.is_empty() {
                    format!("always {}", action_name(r.action))
                } else {
                    format!("otherwise {}", action_name(r.action))
                });
                i += 1;
            }
            [c] => {
                let (v, _) = verb(nr, c);
                let mut values = vec![];
                while let Some(n) = rules.get(i) {
                    match n.when.as_slice() {
                        [d] if n.action == r.action && d.arg == c.arg && verb(nr, d).0 == v => {
                            values.push(value_name(arg_of(nr, d.arg).1, verb(nr, d).1));
                            i += 1;
                        }
                        _ => break,
                    }
                }
                parts.push(format!(
                    "{v} {} → {}",
                    either(&values),
                    action_name(r.action)
                ));
            }
            conds => {
                let w: Vec<String> = conds.iter().map(|c| cond_words(nr, c)).collect();
                parts.push(format!("{} → {}", w.join(" and "), action_name(r.action)));
                i += 1;
            }
        }
    }
    format!("{}: {}", syscall_name(nr), parts.join("; "))
}

/// The filter for a sandbox with this network mode, one line per kind of rule.
pub fn summary(network: Network) -> Vec<String> {
    let pol = seccomp::syscall_rules(network);
    let mut eperm = vec![];
    let mut other = vec![];
    for (nr, rules) in &pol.rules {
        match rules.as_slice() {
            [r] if r.when.is_empty() && r.action == Action::Errno(libc::EPERM as u16) => {
                eperm.push(syscall_name(*nr))
            }
            _ => other.push(rules_words(*nr, rules)),
        }
    }
    let mut out = vec![
        "other architectures (int 0x80) and x32 syscalls kill the process".to_string(),
        format!("EPERM: {}", eperm.join(", ")),
    ];
    out.extend(other);
    out.push("everything else: allowed (Landlock, namespaces and rlimits confine it)".into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_reads_in_words_without_hex_or_numbers() {
        for network in Network::ALL {
            let lines = summary(network);
            // The first line names the i386 entry, `int 0x80`; no rule is shown in hex.
            let all = lines[1..].join("\n");
            assert!(!all.contains("0x"), "{network:?}: {all}");
            assert!(!all.contains("syscall "), "{network:?}: {all}");
            assert!(!all.contains("errno "), "{network:?}: {all}");
            assert!(!all.contains("argument "), "{network:?}: {all}");
            let clone = lines.iter().find(|l| l.starts_with("clone:")).unwrap();
            for (name, _) in CLONE_NS_FLAGS {
                assert!(clone.contains(name), "{clone}");
            }
            assert_eq!(
                clone,
                "clone: flags has CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID or CLONE_NEWNET → EPERM"
            );
            assert!(
                lines.contains(&"ioctl: request is TIOCSTI or TIOCLINUX → EPERM".to_string()),
                "{all}"
            );
            assert!(all.contains("prctl: option is PR_SET_DUMPABLE and its value is 0 → returns 0 without effect"), "{all}");
            assert!(all.contains("fallocate: always EOPNOTSUPP"), "{all}");
            assert!(all.contains("clone3: always ENOSYS"), "{all}");
        }
        let none = summary(Network::None).join("\n");
        assert!(
            none.contains("socket: family is not AF_UNIX → EAFNOSUPPORT"),
            "{none}"
        );
        let ports = summary(Network::Ports).join("\n");
        assert!(
            ports.contains(
                "family is AF_INET6 and type is SOCK_STREAM and protocol is IPPROTO_TCP → allowed"
            ),
            "{ports}"
        );
        assert!(ports.contains("; otherwise EAFNOSUPPORT"), "{ports}");
    }

    #[test]
    fn an_unknown_value_falls_back_to_hex() {
        let r = ArgRule {
            when: vec![Cond {
                arg: 1,
                cmp: Cmp::Eq(0x5401),
            }],
            action: Action::Errno(libc::EPERM as u16),
        };
        assert_eq!(
            rules_words(libc::SYS_ioctl as u32, &[r]),
            "ioctl: request is 0x5401 → EPERM"
        );
    }
}

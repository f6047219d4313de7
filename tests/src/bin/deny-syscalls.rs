//! Runs a program the way a container runtime with a restrictive seccomp profile would, to prove
//! that sandboxd then refuses execs naming the missing layer instead of running unconfined.
//!
//! Usage: deny-syscalls landlock|userns|netns PROGRAM [ARGS...]
//!   landlock: the Landlock syscalls fail with EPERM (systemd-nspawn, Docker's default profile)
//!   userns:   clone/unshare with CLONE_NEWUSER fail with EPERM
//!   netns:    clone/unshare with CLONE_NEWNET fail with EPERM (systemd's RestrictNamespaces=~net)

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;

fn die(msg: String) -> ! {
    eprintln!("deny-syscalls: {msg}");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, prog, rest @ ..] = args.as_slice() else {
        die("usage: deny-syscalls landlock|userns|netns PROGRAM [ARGS...]".into())
    };
    let rules: BTreeMap<i64, Vec<SeccompRule>> = match mode.as_str() {
        "landlock" => [
            libc::SYS_landlock_create_ruleset,
            libc::SYS_landlock_add_rule,
            libc::SYS_landlock_restrict_self,
        ]
        .into_iter()
        .map(|nr| (nr, vec![]))
        .collect(),
        "userns" | "netns" => {
            let flag = if mode == "userns" {
                libc::CLONE_NEWUSER
            } else {
                libc::CLONE_NEWNET
            } as u64;
            let cond = SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )
            .unwrap_or_else(|e| die(format!("condition: {e}")));
            let rule = SeccompRule::new(vec![cond]).unwrap_or_else(|e| die(format!("rule: {e}")));
            [libc::SYS_clone, libc::SYS_unshare]
                .into_iter()
                .map(|nr| (nr, vec![rule.clone()]))
                .collect()
        }
        m => die(format!("unknown mode {m:?}")),
    };
    let arch = if cfg!(target_arch = "aarch64") {
        TargetArch::aarch64
    } else {
        TargetArch::x86_64
    };
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .and_then(BpfProgram::try_from)
    .unwrap_or_else(|e| die(format!("building the filter: {e}")));
    if let Err(e) = seccompiler::apply_filter(&filter) {
        die(format!("installing the filter: {e}"));
    }
    let e = std::process::Command::new(prog).args(rest).exec();
    die(format!("exec {prog}: {e}"))
}

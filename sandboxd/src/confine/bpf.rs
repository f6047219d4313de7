//! A seccomp policy (plain data) compiled to one classic-BPF program laid out as a binary search
//! over the syscall numbers.
//!
//! Why not seccompiler's compiler: it emits a linear chain of comparisons, one filter per action.
//! When a filter is attached the kernel emulates it once for every syscall number of every
//! architecture to fill its action cache, so attach time grows with chain length × filters; with
//! our ~50 rules in four filters that was ~190 µs of every exec. A search tree answers each
//! syscall number in a handful of instructions and one filter carries every action.
//! seccompiler still installs the program and is the reference the tests compare against.

use seccompiler::{sock_filter, BpfProgram};
use std::collections::BTreeMap;

/// What the filter answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Action {
    Allow,
    Errno(u16),
    KillProcess,
}

impl Action {
    pub fn ret(self) -> u32 {
        match self {
            Action::Allow => libc::SECCOMP_RET_ALLOW,
            Action::Errno(e) => libc::SECCOMP_RET_ERRNO | u32::from(e),
            Action::KillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        }
    }
}

/// A comparison on the low 32 bits of a syscall argument. The arguments we test are `int` or
/// `unsigned int` in the kernel (which ignores the high half), so garbage there cannot slip past.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Cmp {
    Eq(u32),
    Ne(u32),
    /// `(arg & mask) == value`
    MaskedEq {
        mask: u32,
        value: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Cond {
    pub arg: u8,
    pub cmp: Cmp,
}

impl Cond {
    pub fn matches(&self, args: &[u64; 6]) -> bool {
        let v = args[usize::from(self.arg)] as u32;
        match self.cmp {
            Cmp::Eq(x) => v == x,
            Cmp::Ne(x) => v != x,
            Cmp::MaskedEq { mask, value } => v & mask == value,
        }
    }
}

/// One rule for a syscall: `action` when every condition on its arguments holds (an empty list
/// always holds).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ArgRule {
    pub when: Vec<Cond>,
    pub action: Action,
}

/// The seccomp filter as data, before it is compiled to BPF: per syscall number, rules tried in
/// order; the first that holds decides, else `default`. `seccomp::syscall_rules` builds it,
/// `compile` turns it into the program, `decide` answers for one call (tests, `explain`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyscallRules {
    pub rules: BTreeMap<u32, Vec<ArgRule>>,
    pub default: Option<Action>,
}

impl SyscallRules {
    fn default_action(&self) -> Action {
        self.default.unwrap_or(Action::Allow)
    }

    /// The answer for one native syscall, straight from the data: what the program must agree
    /// with (tests) and what `explain` can print.
    pub fn decide(&self, nr: u32, args: &[u64; 6]) -> Action {
        self.rules
            .get(&nr)
            .and_then(|rules| {
                rules
                    .iter()
                    .find(|r| r.when.iter().all(|c| c.matches(args)))
            })
            .map_or(self.default_action(), |r| r.action)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("seccomp program needs a conditional jump of {0} instructions (max 255)")]
    JumpTooFar(usize),
    #[error("seccomp program has {0} instructions (max {max})", max = MAX_INSNS)]
    TooLong(usize),
    #[error("seccomp condition on argument {0} (syscalls have 6)")]
    BadArg(u8),
}

/// BPF_MAXINSNS in the kernel.
pub const MAX_INSNS: usize = 4096;

#[cfg(target_arch = "x86_64")]
pub const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
pub const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64

/// Bit that marks the x32 ABI in the syscall number on x86_64. x32 shares AUDIT_ARCH_X86_64, so
/// the architecture check alone does not stop it.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// struct seccomp_data offsets.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg_low(arg: u8) -> u32 {
    // Little-endian: the low word of args[i] comes first.
    16 + 8 * arg as u32
}

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// Keys per leaf of the search tree, compared one after another. Two gave the fewest
/// instructions emulated per syscall number (what attach time grows with) for our policy; see
/// the `layout_cost` test in `seccomp.rs`.
const LEAF: usize = 2;

/// Instructions with jump targets as labels, resolved into offsets at the end.
#[derive(Default)]
struct Asm {
    code: Vec<Insn>,
    labels: Vec<Option<usize>>,
}

#[derive(Clone, Copy)]
enum Target {
    Next,
    Label(usize),
}

enum Insn {
    Ld(u32),
    And(u32),
    Ret(u32),
    Jump {
        code: u16,
        k: u32,
        jt: Target,
        jf: Target,
    },
    Ja(usize),
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn bind(&mut self, l: usize) {
        self.labels[l] = Some(self.code.len());
    }
    fn push(&mut self, i: Insn) {
        self.code.push(i);
    }
    fn jump(&mut self, code: u16, k: u32, jt: Target, jf: Target) {
        self.push(Insn::Jump { code, k, jt, jf });
    }

    fn finish(self) -> Result<BpfProgram, BpfError> {
        if self.code.len() > MAX_INSNS {
            return Err(BpfError::TooLong(self.code.len()));
        }
        let at = |l: usize| self.labels[l].unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(self.code.len());
        for (pc, insn) in self.code.iter().enumerate() {
            let rel = |t: Target| -> Result<u8, BpfError> {
                match t {
                    Target::Next => Ok(0),
                    Target::Label(l) => {
                        let d = at(l).wrapping_sub(pc + 1);
                        u8::try_from(d).map_err(|_| BpfError::JumpTooFar(d))
                    }
                }
            };
            let f = |code, jt, jf, k| sock_filter { code, jt, jf, k };
            out.push(match *insn {
                Insn::Ld(off) => f(LD_W_ABS, 0, 0, off),
                Insn::And(m) => f(AND_K, 0, 0, m),
                Insn::Ret(k) => f(RET_K, 0, 0, k),
                Insn::Jump { code, k, jt, jf } => f(code, rel(jt)?, rel(jf)?, k),
                Insn::Ja(l) => {
                    let d = at(l).wrapping_sub(pc + 1);
                    let k = u32::try_from(d).map_err(|_| BpfError::JumpTooFar(d))?;
                    f(JA, 0, 0, k)
                }
            });
        }
        Ok(out)
    }
}

/// Compile `policy` for the native architecture: other architectures (i386 through `int 0x80`)
/// and x32 syscall numbers kill the process; native numbers go through the search tree.
pub fn compile(policy: &SyscallRules) -> Result<BpfProgram, BpfError> {
    // Direct jumps between tree nodes keep every path short; a tree too large for 8-bit offsets
    // falls back to a conditional hop over an unconditional 32-bit jump.
    match compile_with(policy, LEAF, true) {
        Err(BpfError::JumpTooFar(_)) => compile_with(policy, LEAF, false),
        r => r,
    }
}

pub(super) fn compile_with(
    policy: &SyscallRules,
    leaf: usize,
    short: bool,
) -> Result<BpfProgram, BpfError> {
    let mut a = Asm::default();
    // Kill sits right after the two checks, so the 8-bit jumps to it stay short whatever the
    // size of the tree.
    let (kill, native) = (a.label(), a.label());
    a.push(Insn::Ld(OFF_ARCH));
    a.jump(JEQ_K, AUDIT_ARCH, Target::Next, Target::Label(kill));
    a.push(Insn::Ld(OFF_NR));
    if cfg!(target_arch = "x86_64") {
        a.jump(
            JSET_K,
            X32_SYSCALL_BIT,
            Target::Label(kill),
            Target::Label(native),
        );
    }
    a.bind(kill);
    a.push(Insn::Ret(Action::KillProcess.ret()));
    a.bind(native);
    let keys: Vec<u32> = policy.rules.keys().copied().collect();
    let mut blocks = vec![];
    tree(&mut a, policy, &keys, &mut blocks, leaf, short);
    // Rules with argument checks come after the tree, so each leaf stays a short run of compares.
    for (nr, label) in blocks {
        a.bind(label);
        block(&mut a, &policy.rules[&nr], policy.default_action())?;
    }
    a.finish()
}

/// A search over sorted `keys` with the syscall number in A. Unconditional rules answer in place;
/// syscalls with argument checks jump to a block emitted later (collected in `blocks`).
fn tree(
    a: &mut Asm,
    policy: &SyscallRules,
    keys: &[u32],
    blocks: &mut Vec<(u32, usize)>,
    leaf: usize,
    short: bool,
) {
    if keys.len() <= leaf {
        for &k in keys {
            let next = a.label();
            a.jump(JEQ_K, k, Target::Next, Target::Label(next));
            match policy.rules[&k].as_slice() {
                [only] if only.when.is_empty() => a.push(Insn::Ret(only.action.ret())),
                _ => {
                    let block = a.label();
                    a.push(Insn::Ja(block));
                    blocks.push((k, block));
                }
            }
            a.bind(next);
        }
        a.push(Insn::Ret(policy.default_action().ret()));
        return;
    }
    let mid = keys.len() / 2;
    let (left, right) = (a.label(), a.label());
    if short {
        a.jump(JGE_K, keys[mid], Target::Label(right), Target::Next);
    } else {
        a.jump(JGE_K, keys[mid], Target::Next, Target::Label(left));
        a.push(Insn::Ja(right));
    }
    a.bind(left);
    tree(a, policy, &keys[..mid], blocks, leaf, short);
    a.bind(right);
    tree(a, policy, &keys[mid..], blocks, leaf, short);
}

/// The rules of one syscall: each condition loads its argument and falls through on a match; the
/// first rule whose conditions all hold returns its action.
fn block(a: &mut Asm, rules: &[ArgRule], default: Action) -> Result<(), BpfError> {
    for r in rules {
        let next = a.label();
        for c in &r.when {
            if c.arg > 5 {
                return Err(BpfError::BadArg(c.arg));
            }
            a.push(Insn::Ld(off_arg_low(c.arg)));
            match c.cmp {
                Cmp::Eq(v) => a.jump(JEQ_K, v, Target::Next, Target::Label(next)),
                Cmp::Ne(v) => a.jump(JEQ_K, v, Target::Label(next), Target::Next),
                Cmp::MaskedEq { mask, value } => {
                    a.push(Insn::And(mask));
                    a.jump(JEQ_K, value, Target::Next, Target::Label(next));
                }
            }
        }
        a.push(Insn::Ret(r.action.ret()));
        a.bind(next);
    }
    a.push(Insn::Ret(default.ret()));
    Ok(())
}

/// Run a classic-BPF seccomp program on one syscall, as the kernel would. For tests and for
/// checking compiled programs against the policy they came from.
pub fn emulate(prog: &[sock_filter], arch: u32, nr: u32, args: &[u64; 6]) -> Option<u32> {
    run(prog, arch, nr, args).map(|(ret, _)| ret)
}

/// The answer and the number of instructions executed to reach it.
pub(super) fn run(
    prog: &[sock_filter],
    arch: u32,
    nr: u32,
    args: &[u64; 6],
) -> Option<(u32, usize)> {
    let word = |off: u32| -> Option<u32> {
        Some(match off {
            OFF_NR => nr,
            OFF_ARCH => arch,
            8 | 12 => 0, // instruction pointer
            o if (16..64).contains(&o) && o % 4 == 0 => {
                let i = ((o - 16) / 8) as usize;
                if (o - 16) % 8 == 0 {
                    args[i] as u32
                } else {
                    (args[i] >> 32) as u32
                }
            }
            _ => return None,
        })
    };
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    let mut steps = 0usize;
    // Classic BPF only jumps forward, so this ends within prog.len() steps.
    while let Some(i) = prog.get(pc) {
        pc += 1;
        steps += 1;
        let class = u32::from(i.code) & 0x07;
        let op = u32::from(i.code) & 0xf0;
        match class {
            libc::BPF_LD => acc = word(i.k)?,
            libc::BPF_ALU if op == libc::BPF_AND => acc &= i.k,
            libc::BPF_RET => return Some((i.k, steps)),
            libc::BPF_JMP => {
                let taken = match op {
                    libc::BPF_JA => {
                        pc += i.k as usize;
                        continue;
                    }
                    libc::BPF_JEQ => acc == i.k,
                    libc::BPF_JGE => acc >= i.k,
                    libc::BPF_JGT => acc > i.k,
                    libc::BPF_JSET => acc & i.k != 0,
                    _ => return None,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syscall_rules(keys: impl IntoIterator<Item = u32>) -> SyscallRules {
        SyscallRules {
            rules: keys
                .into_iter()
                .map(|k| {
                    (
                        k,
                        vec![ArgRule {
                            when: vec![],
                            action: Action::Errno(k as u16 % 100 + 1),
                        }],
                    )
                })
                .collect(),
            default: None,
        }
    }

    fn check_all(p: &SyscallRules, prog: &[sock_filter]) {
        let argsets: [[u64; 6]; 4] = [
            [0; 6],
            [u64::MAX; 6],
            [1, 2, 3, 4, 5, 6],
            [0x1_0000_0001, 0x5401, 0x5412, 0x2000_0000, 0, 0],
        ];
        for nr in 0..600 {
            for args in &argsets {
                assert_eq!(
                    emulate(prog, AUDIT_ARCH, nr, args),
                    Some(p.decide(nr, args).ret()),
                    "syscall {nr} args {args:?}"
                );
            }
        }
    }

    #[test]
    fn search_tree_agrees_with_the_policy_for_every_size() {
        for n in 0..70u32 {
            let p = syscall_rules((0..n).map(|i| i * 7 + 3));
            let prog = compile(&p).unwrap();
            check_all(&p, &prog);
        }
    }

    #[test]
    fn large_trees_use_long_jumps() {
        let p = syscall_rules(0..500);
        let prog = compile(&p).unwrap();
        assert!(prog.len() > 255);
        check_all(&p, &prog);
    }

    #[test]
    fn argument_rules_in_order_then_default() {
        let mut p = SyscallRules::default();
        p.rules.insert(
            56,
            vec![
                ArgRule {
                    when: vec![Cond {
                        arg: 0,
                        cmp: Cmp::MaskedEq {
                            mask: 0x2000_0000,
                            value: 0x2000_0000,
                        },
                    }],
                    action: Action::Errno(1),
                },
                ArgRule {
                    when: vec![
                        Cond {
                            arg: 1,
                            cmp: Cmp::Eq(0x5412),
                        },
                        Cond {
                            arg: 2,
                            cmp: Cmp::Ne(3),
                        },
                    ],
                    action: Action::Errno(2),
                },
            ],
        );
        let prog = compile(&p).unwrap();
        check_all(&p, &prog);
        let run = |args: [u64; 6]| emulate(&prog, AUDIT_ARCH, 56, &args);
        assert_eq!(
            run([0x2000_0000, 0, 0, 0, 0, 0]),
            Some(Action::Errno(1).ret())
        );
        assert_eq!(run([0, 0x5412, 4, 0, 0, 0]), Some(Action::Errno(2).ret()));
        assert_eq!(run([0, 0x5412, 3, 0, 0, 0]), Some(libc::SECCOMP_RET_ALLOW));
        // Only the low word counts.
        assert_eq!(
            run([0, 0xffff_0000_0000_5412, 0, 0, 0, 0]),
            Some(Action::Errno(2).ret())
        );
    }

    #[test]
    fn foreign_arch_and_x32_are_killed() {
        let p = syscall_rules([1, 2, 3]);
        let prog = compile(&p).unwrap();
        const AUDIT_ARCH_I386: u32 = 0x4000_0003;
        assert_eq!(
            emulate(&prog, AUDIT_ARCH_I386, 1, &[0; 6]),
            Some(libc::SECCOMP_RET_KILL_PROCESS)
        );
        if cfg!(target_arch = "x86_64") {
            assert_eq!(
                emulate(&prog, AUDIT_ARCH, X32_SYSCALL_BIT | 39, &[0; 6]),
                Some(libc::SECCOMP_RET_KILL_PROCESS)
            );
        }
    }

    #[test]
    fn bad_argument_index_is_an_error() {
        let mut p = SyscallRules::default();
        p.rules.insert(
            1,
            vec![ArgRule {
                when: vec![Cond {
                    arg: 6,
                    cmp: Cmp::Eq(0),
                }],
                action: Action::Errno(1),
            }],
        );
        assert!(matches!(compile(&p), Err(BpfError::BadArg(6))));
    }
}

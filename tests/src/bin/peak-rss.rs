//! Runs a program and prints its wall time and its own peak RSS, measured from a process small
//! enough not to count. A child's `ru_maxrss` includes the resident memory of the address space
//! it was forked with (the kernel keeps the high-water mark across execve), so a benchmark that
//! forks its subject directly reports its own RSS whenever that is the larger: the agent bench
//! did. Spawned from this process, the figure is the larger of the subject's and this small
//! process's own (~2 MiB: what `/bin/true` reads), so it is the subject's for anything bigger.
//!
//! Usage: peak-rss PROGRAM [ARGS...]
//! stdout: `<wall µs> <peak RSS KiB> <exit code>` (exit code 128+N for a signal N); the
//! program's stdin, stdout and stderr are /dev/null. Exit 2 when it cannot be started.

use std::process::{Command, Stdio};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((prog, rest)) = args.split_first() else {
        eprintln!("usage: peak-rss PROGRAM [ARGS...]");
        std::process::exit(2)
    };
    let t0 = Instant::now();
    let child = match Command::new(prog)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("peak-rss: cannot start {prog}: {e}");
            std::process::exit(2)
        }
    };
    let mut st = 0;
    // SAFETY: rusage is a C struct of integers and timevals: all-zero bytes are a valid value;
    // wait4 overwrites it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `child` is our own child, not reaped by anyone else (Child::wait is never called);
    // wait4 writes one c_int into `st` and one rusage into `ru`, locals alive for the call.
    let r = unsafe { libc::wait4(child.id() as i32, &mut st, 0, &mut ru) };
    let wall = t0.elapsed();
    if r < 0 {
        eprintln!("peak-rss: wait4: {}", std::io::Error::last_os_error());
        std::process::exit(2)
    }
    let code = if libc::WIFSIGNALED(st) {
        128 + libc::WTERMSIG(st)
    } else {
        libc::WEXITSTATUS(st)
    };
    println!("{} {} {code}", wall.as_micros(), ru.ru_maxrss.max(0));
}

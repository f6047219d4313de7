//! What an exec result means for whoever ran it: the exit code `nanobot exec` (and `nanobot tool
//! exec`) reports, as documented and as the shell would (124 timeout, 125 refused or incomplete,
//! 126/127 a program not executable / not found, 128+N a signal).

use nanobot_proto::pb::{ExecResult, Layer};

/// The exit codes of `nanobot exec` (and of `nanobot tool exec`), as `--help` words them; a
/// macro so `concat!` can build each `--help` text from it.
macro_rules! exec_exit_codes {
    () => {
        "the command's own code, 128+N when killed by signal N, 124 on timeout, 125 when it did \
         not run (the sandbox refused or failed, the command was blocked or empty, nanobot could \
         not use the config, the workspace or the sandbox) or when the sandbox cut its output at \
         the profile's output_limit_bytes (the result is incomplete), 126/127 from the shell when \
         a program is not executable / not found"
    };
}
pub(crate) use exec_exit_codes;

pub const EXIT_TIMEOUT: i32 = 124;
pub const EXIT_REFUSED: i32 = 125;
/// The program was found but could not be executed (EACCES, ENOEXEC), as in the shell.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// The program was not found, as in the shell.
pub const EXIT_NOT_FOUND: i32 = 127;

/// When `program` (argv mode only: in shell mode the program is `/bin/sh`, and failing to run it
/// is the sandbox's failure) could not be run because it is missing or not executable, that is
/// the command's own failure, not a refusal: the shell's exit code (127 not found, 126 found but
/// not executable) and the message to print. Every other refusal stays 125.
pub fn program_failure(r: &ExecResult, program: Option<&str>) -> Option<(i32, String)> {
    let program = program?;
    if !r.refused || super::vocab::layer(r) != Layer::Exec || !r.failed_step.starts_with("execve") {
        return None;
    }
    match r.errno {
        libc::ENOENT if program.contains('/') => Some((
            EXIT_NOT_FOUND,
            format!("{program}: No such file or directory"),
        )),
        libc::ENOENT => Some((EXIT_NOT_FOUND, format!("{program}: command not found"))),
        libc::EACCES => Some((
            EXIT_CANNOT_EXECUTE,
            format!("{program}: cannot execute: Permission denied (not an executable file, or not executable in this sandbox)"),
        )),
        libc::ENOEXEC => Some((
            EXIT_CANNOT_EXECUTE,
            format!("{program}: cannot execute: Exec format error (not a binary or a script with #!)"),
        )),
        _ => None,
    }
}

/// The sandbox cut stdout or stderr at the profile's `output_limit_bytes`: the copy the caller
/// got is incomplete (the rest was drained and dropped).
pub fn truncated(r: &ExecResult) -> bool {
    r.stdout_truncated || r.stderr_truncated
}

/// Exit code for a result, as documented: the command's code, 128+N for signal N, 124 for a
/// timeout, 125 when the sandbox refused, or when it cut the output at the profile's
/// `output_limit_bytes` (whatever the command's own code: the output is incomplete); in argv mode
/// (`program` set) 127 / 126 when the program is not found / not executable, as the shell
/// reports them.
pub fn exit_code(r: &ExecResult, program: Option<&str>) -> i32 {
    if let Some((code, _)) = program_failure(r, program) {
        code
    } else if r.refused {
        EXIT_REFUSED
    } else if r.timed_out {
        EXIT_TIMEOUT
    } else if truncated(r) {
        EXIT_REFUSED
    } else if r.signal != 0 {
        128 + r.signal
    } else if r.exit_code == 0 && super::vocab::limit_hit(r) == nanobot_proto::pb::LimitHit::Disk {
        // The write budget caught writes of processes that had already ended: the command
        // "succeeded", but the workspace went past its ceiling; a script must not read success.
        EXIT_REFUSED
    } else {
        r.exit_code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(layer: &str, step: &str, errno: i32) -> ExecResult {
        ExecResult {
            exit_code: -1,
            refused: true,
            refused_layer: layer.into(),
            failed_step: step.into(),
            errno,
            ..Default::default()
        }
    }

    #[test]
    fn a_disk_limit_hit_after_the_command_ended_is_no_success() {
        let mut r = ExecResult {
            limit_hit: "disk".into(),
            ..Default::default()
        };
        assert_eq!(exit_code(&r, None), EXIT_REFUSED);
        r.signal = libc::SIGKILL;
        assert_eq!(exit_code(&r, None), 128 + libc::SIGKILL);
        r.signal = 0;
        r.exit_code = 3;
        assert_eq!(exit_code(&r, None), 3);
    }

    #[test]
    fn missing_or_unexecutable_program_exits_like_the_shell_in_argv_mode() {
        let r = refusal("exec", "execve", libc::ENOENT);
        assert_eq!(exit_code(&r, Some("nosuchprog")), 127);
        assert_eq!(
            program_failure(&r, Some("nosuchprog")).map(|f| f.1),
            Some("nosuchprog: command not found".into())
        );
        let r = refusal("exec", "execve /etc/passwd", libc::EACCES);
        assert_eq!(exit_code(&r, Some("/etc/passwd")), 126);
        let r = refusal("exec", "execve ./junk", libc::ENOEXEC);
        assert_eq!(exit_code(&r, Some("./junk")), 126);
        // Shell mode: failing to run /bin/sh is the sandbox's failure.
        assert_eq!(exit_code(&r, None), EXIT_REFUSED);
        // Other layers, other errnos and other exec steps stay refusals.
        for r in [
            refusal("landlock", "landlock_restrict_self", libc::EACCES),
            refusal("seccomp", "seccomp(SECCOMP_SET_MODE_FILTER)", libc::ENOENT),
            refusal("exec", "execve x", libc::E2BIG),
            refusal("exec", "prepare exec", libc::EINVAL),
        ] {
            assert_eq!(exit_code(&r, Some("x")), EXIT_REFUSED, "{r:?}");
        }
        let ok = ExecResult {
            exit_code: 3,
            ..Default::default()
        };
        assert_eq!(exit_code(&ok, Some("x")), 3);
    }
}

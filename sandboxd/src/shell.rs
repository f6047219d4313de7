//! The shell form of a command, `/bin/sh -c -- COMMAND`, part of building the spec: admission
//! (`api::admit`) builds it from a request's command line and reads the line back out of an argv
//! for the guard; the exec session only asks whether a shell stands between the sandbox and the
//! command (`limit_hit`); the sandbox's init asks whether an argv is exactly one `shell_argv`
//! built (`shell_line`), to skip the shell for a line that is only a program's path.

/// The argv a shell command line runs as: `/bin/sh -c -- COMMAND`. The `--` ends the shell's
/// options, so a command line that starts with `-` (`-x`) is run as a command, never taken as an
/// option of the shell.
pub fn shell_argv(command: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), "--".into(), command.into()]
}

/// The command line of a shell argv: `[/bin/sh, -c, --, CMD, …]` as `shell_argv` builds it, or
/// `[/bin/sh, -c, CMD, …]` as older clients send it in `argv`. None for any other argv.
pub fn shell_command(argv: &[String]) -> Option<&str> {
    match argv {
        [sh, c, dd, cmd, ..] if sh == "/bin/sh" && c == "-c" && dd == "--" => Some(cmd),
        [sh, c, cmd, ..] if sh == "/bin/sh" && c == "-c" => Some(cmd),
        _ => None,
    }
}

/// The command line of an argv that is exactly what `shell_argv` builds (`/bin/sh -c -- LINE`,
/// nothing more); None for anything else, including the older `[/bin/sh, -c, CMD]` form and a
/// shell argv with extra arguments (`$0`, `$1`, …), which the shell itself must see.
pub fn shell_line(argv: &[String]) -> Option<&str> {
    match argv {
        [_, _, _, line] if *argv == shell_argv(line)[..] => Some(line),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_argv_ends_the_shells_options_and_both_forms_are_recognised() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(shell_argv("-x"), v(&["/bin/sh", "-c", "--", "-x"]));
        assert_eq!(shell_command(&shell_argv("-x")), Some("-x"));
        assert_eq!(shell_command(&shell_argv("--")), Some("--"));
        assert_eq!(
            shell_command(&v(&["/bin/sh", "-c", "echo hi"])),
            Some("echo hi")
        );
        assert_eq!(
            shell_command(&v(&["/bin/sh", "-c", "echo $0", "zero"])),
            Some("echo $0")
        );
        assert_eq!(shell_command(&v(&["/bin/sh", "-c"])), None);
        assert_eq!(shell_command(&v(&["/bin/bash", "-c", "x"])), None);
        assert_eq!(shell_command(&v(&["ls", "-c", "x"])), None);
    }

    #[test]
    fn shell_line_reads_back_only_what_shell_argv_builds() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for line in ["/bin/true", "-x", "--", "", "echo hi"] {
            assert_eq!(shell_line(&shell_argv(line)), Some(line));
        }
        assert_eq!(shell_line(&v(&["/bin/sh", "-c", "/bin/true"])), None);
        assert_eq!(shell_line(&v(&["/bin/sh", "-c", "--", "x", "zero"])), None);
        assert_eq!(shell_line(&v(&["/bin/bash", "-c", "--", "x"])), None);
        assert_eq!(shell_line(&v(&["/bin/sh", "-x", "--", "x"])), None);
        assert_eq!(shell_line(&v(&["/bin/true"])), None);
    }
}

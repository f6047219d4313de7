//! The shell form of a command, `/bin/sh -c -- COMMAND`, part of building the spec: admission
//! (`api::admit`) builds it from a request's command line and reads the line back out of an argv
//! for the guard; the exec session only asks whether a shell stands between the sandbox and the
//! command (`limit_hit`).

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
}

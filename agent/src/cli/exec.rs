//! `nanobot exec`: run one command through sandboxd and mirror its result in our exit code.

use crate::cli::globals::Globals;
use crate::sandbox::drain::{self, Failed, Finished, Mirrored};
use crate::sandbox::outcome::{exit_code, program_failure, truncated, EXIT_REFUSED};
use crate::sandbox::socket;
use crate::sandbox::vocab;
use crate::sandbox::workspace::relative_cwd;
use crate::text::{count, invalid_utf8_bytes, thousands};
use crate::tools::exec_format::Stream;
use anyhow::Result;
use nanobot_proto::pb::{ExecRequest, ExecResult, LimitHit};
use std::io::Write;
use std::path::PathBuf;

/// The exit codes, for `nanobot exec --help` (the same list as `nanobot tool --help` and the
/// README).
pub const EXIT_CODES: &str = concat!(
    "Exit codes: ",
    crate::sandbox::outcome::exec_exit_codes!(),
    ". With --json, `exit` is this code and `exit_code` the command's own."
);

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// sandboxd socket (default: $NANOBOT_SANDBOX_SOCKET, $XDG_RUNTIME_DIR/nanobot/sandboxd.sock, /run/nanobot/sandboxd.sock)
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Timeout in seconds (the profile's maximum still applies)
    #[arg(long)]
    pub timeout: Option<u32>,
    /// Sandbox profile
    #[arg(long)]
    pub profile: Option<String>,
    /// Print one JSON result object instead of streaming output; also when the command did not
    /// run (`refused` true, `refused_layer` "request" when sandboxd refused the request, "sandbox"
    /// when it failed without a result, "nanobot" when nanobot could not ask; `refused_reason`;
    /// `exit` 125). A program that could not be run (argv mode) is the command's own failure:
    /// `refused` false, the message in `error`, `exit` 126 or 127
    #[arg(long)]
    pub json: bool,
    /// Directory to run in: relative to the workspace, or an absolute path inside it. It never
    /// changes the workspace; sandboxd refuses one that leads out (`..`, a symlink)
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Run a single COMMAND argument as a shell command line (`/bin/sh -c`), the default; with
    /// several arguments they are joined with spaces into one command line
    #[arg(long, conflicts_with = "no_shell")]
    pub shell: bool,
    /// Run a single COMMAND argument as a program, without a shell
    #[arg(long)]
    pub no_shell: bool,
    /// What to run. One argument is a shell command line run with `/bin/sh -c`
    /// (`nanobot exec -- 'make && make test'`). Several arguments are a program and its arguments,
    /// executed directly without a shell, each passed exactly as given, spaces, quotes and empty
    /// arguments included (`nanobot exec -- /bin/sh -c 'echo hi'`). `--shell` and `--no-shell`
    /// override the choice
    #[arg(
        trailing_var_arg = true,
        required = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

/// What the request runs: `(command, argv)`, exactly one of them set. One argument is a shell
/// command line, several are a program and its arguments; `--shell` / `--no-shell` override.
pub fn command_or_argv(a: &ExecArgs) -> (String, Vec<String>) {
    let shell = if a.shell {
        true
    } else if a.no_shell {
        false
    } else {
        a.command.len() == 1
    };
    if shell {
        (a.command.join(" "), vec![])
    } else {
        (String::new(), a.command.clone())
    }
}

/// Why the command is empty, in the CLI's terms, if it is: a shell command line that is empty or
/// only whitespace (it would run nothing), or an empty program name.
pub fn empty_command(command: &str, argv: &[String]) -> Option<&'static str> {
    match argv.first() {
        None if command.trim().is_empty() => Some("the command is empty"),
        Some(p) if p.is_empty() => {
            Some("the command is empty: the program (the first argument) is an empty string")
        }
        _ => None,
    }
}

/// What to write to a stream after its streamed head when the daemon cut it: the kept tail, so
/// the end of the output is seen. Where bytes were dropped between head and tail, first a newline
/// (if the head did not end with one) and a `... (N bytes omitted) ...` line with the daemon's
/// count; where none were, the tail alone, which continues the head byte for byte.
pub fn after_cut(head: Mirrored, tail: &[u8], total: u64) -> Vec<u8> {
    let gap = total.saturating_sub(head.bytes + tail.len() as u64);
    let mut out = vec![];
    if gap > 0 {
        if head.last.is_some_and(|b| b != b'\n') {
            out.push(b'\n');
        }
        out.extend_from_slice(format!("... ({} omitted) ...\n", count(gap, "byte")).as_bytes());
    }
    out.extend_from_slice(tail);
    out
}

/// Lossy text of `b`, and how many invalid UTF-8 bytes were replaced.
fn lossy(b: &[u8]) -> (String, usize) {
    (
        String::from_utf8_lossy(b).into_owned(),
        invalid_utf8_bytes(b),
    )
}

/// A stream's streamed head and kept tail as `--json` text: a character the daemon's cap split
/// is left out (or moved whole into the tail), never replaced; other invalid bytes are.
fn stream_text(head: &[u8], tail: &[u8], total: u64) -> ((String, usize), (String, usize)) {
    let st = Stream::new(head.to_vec(), tail.to_vec(), total);
    let (h, t) = st.whole_chars();
    (lossy(h), lossy(&t))
}

/// The command did not run: say why on stderr and, with `--json`, print the one result object
/// `--help` promises (`refused`, `refused_layer`, `refused_reason`, `exit` 125). `layer` is
/// "request" when sandboxd refused the request itself, "sandbox" when the exec failed without a
/// result, "nanobot" when nanobot refused or failed before asking.
fn refuse(json: bool, layer: &str, prefix: &str, reason: &str) -> i32 {
    eprintln!("nanobot: {prefix}{reason}");
    if json {
        let r = ExecResult {
            exit_code: -1,
            refused: true,
            refused_layer: layer.into(),
            refused_reason: reason.into(),
            ..Default::default()
        };
        println!("{}", json_result(&[], &[], &r, 0, EXIT_REFUSED, None));
    }
    EXIT_REFUSED
}

pub async fn run(g: &Globals, a: ExecArgs) -> Result<i32> {
    match run_exec(g, &a).await {
        // Whatever stopped nanobot before the command ran, `--json` still prints one object.
        Err(e) if a.json => Ok(refuse(
            true,
            "nanobot",
            "",
            &crate::errors::anyhow_chain(&e),
        )),
        r => r,
    }
}

async fn run_exec(g: &Globals, a: &ExecArgs) -> Result<i32> {
    let (command, argv) = command_or_argv(a);
    if let Some(why) = empty_command(&command, &argv) {
        return Ok(refuse(a.json, "nanobot", "", why));
    }
    let cfg = g.load()?.config;
    let workspace = g.workspace(&cfg)?;
    let cwd = match relative_cwd(&workspace, a.cwd.as_deref().unwrap_or(""), "--cwd") {
        Ok(c) => c,
        Err(e) => return Ok(refuse(a.json, "nanobot", "", &e.to_string())),
    };
    let (_socket, mut client) =
        socket::connect(a.socket.clone(), cfg.sandbox.socket.as_deref(), &workspace).await?;
    let program = argv.first().cloned();
    let req = ExecRequest {
        workspace: workspace.to_string_lossy().into_owned(),
        cwd,
        command,
        argv,
        timeout_secs: a.timeout.unwrap_or(0),
        profile: a
            .profile
            .clone()
            .or(cfg.sandbox.profile.clone())
            .unwrap_or_default(),
        ..Default::default()
    };
    let output = if a.json {
        drain::OutputMode::Collect
    } else {
        drain::OutputMode::Mirror
    };
    let Finished {
        pid,
        stdout: out,
        stderr: err,
        mirrored,
        result: r,
    } = match drain::run(&mut client, req, output).await {
        Ok(f) => f,
        Err(Failed::Request(st)) => {
            return Ok(refuse(a.json, "request", "sandbox refused: ", st.message()));
        }
        Err(Failed::Stream(st)) => {
            return Ok(refuse(a.json, "sandbox", "sandbox failed: ", st.message()));
        }
        Err(Failed::Gone { started, .. }) => {
            let sentence = drain::gone(started);
            return Ok(refuse(a.json, "sandbox", "", sentence));
        }
    };
    let failure = program_failure(&r, program.as_deref());
    let code = exit_code(&r, program.as_deref());
    if a.json {
        let error = failure.map(|(_, msg)| msg);
        println!(
            "{}",
            json_result(&out, &err, &r, pid, code, error.as_deref())
        );
    } else if let Some((_, msg)) = failure {
        eprintln!("nanobot: {msg}");
    } else if r.refused {
        eprintln!("nanobot: {}", r.refused_reason);
    } else {
        // The end of a cut stream, after its head, on the same stream.
        if r.stdout_truncated {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(&after_cut(mirrored[0], &r.stdout_tail, r.stdout_bytes));
            let _ = o.flush();
        }
        if r.stderr_truncated {
            let _ = std::io::stderr().write_all(&after_cut(
                mirrored[1],
                &r.stderr_tail,
                r.stderr_bytes,
            ));
        }
        for d in &r.degraded {
            eprintln!("nanobot: warning: sandbox ran DEGRADED, without {d}");
        }
        match vocab::limit_hit(&r) {
            // A limit newer than this client: its name is all there is to say.
            LimitHit::Unspecified if !r.limit_hit.is_empty() => {
                eprintln!("nanobot: limit hit: {}", r.limit_hit)
            }
            LimitHit::Unspecified | LimitHit::OutputLimitBytes => {}
            LimitHit::TimeoutSecs => eprintln!(
                "nanobot: limit hit: timeout_secs: the command timed out after {} s and was killed",
                r.timeout_secs
            ),
            LimitHit::CpuSecs => eprintln!(
                "nanobot: limit hit: cpu_secs: the command used up its CPU time and was killed (SIGXCPU)"
            ),
            LimitHit::FileSizeBytes => eprintln!(
                "nanobot: limit hit: file_size_bytes: the command wrote past the largest file allowed (SIGXFSZ)"
            ),
            LimitHit::Memory => eprintln!(
                "nanobot: limit hit: memory: the sandbox reached its memory ceiling (limits.memory_bytes) and the kernel's OOM killer killed a process in it"
            ),
            LimitHit::Pids => eprintln!(
                "nanobot: limit hit: pids: the sandbox reached its process ceiling (limits.pids); a fork failed with EAGAIN"
            ),
            LimitHit::Disk => eprintln!(
                "nanobot: limit hit: disk: the sandbox wrote more than its profile's workspace_bytes and was killed"
            ),
        }
        if truncated(&r) {
            eprintln!("nanobot: {}", truncation_note(&r, code));
        }
    }
    Ok(code)
}

/// The `--json` result object: the command's result, its output as text (invalid UTF-8 replaced
/// and said so) and `exit`, the code nanobot exits with. `error` is a program that could not be
/// run (argv mode): the command's own failure, so not `refused`, whatever the daemon's result
/// says; its message goes in `error`.
fn json_result(
    out: &[u8],
    err: &[u8],
    r: &ExecResult,
    pid: u32,
    code: i32,
    error: Option<&str>,
) -> serde_json::Value {
    let ((stdout, stdout_bad), (stdout_tail, stdout_tail_bad)) =
        stream_text(out, &r.stdout_tail, r.stdout_bytes);
    let ((stderr, stderr_bad), (stderr_tail, stderr_tail_bad)) =
        stream_text(err, &r.stderr_tail, r.stderr_bytes);
    let mut notes = vec![];
    for (n, what) in [
        (stdout_bad, "stdout"),
        (stderr_bad, "stderr"),
        (stdout_tail_bad, "stdout_tail"),
        (stderr_tail_bad, "stderr_tail"),
    ] {
        if n > 0 {
            notes.push(format!(
                "{} replaced with U+FFFD in {what}",
                count(n as u64, "invalid UTF-8 byte")
            ));
        }
    }
    let (refused, refused_layer, refused_reason) = match error {
        Some(_) => (false, "", ""),
        None => (
            r.refused,
            r.refused_layer.as_str(),
            r.refused_reason.as_str(),
        ),
    };
    serde_json::json!({
        "exit_code": r.exit_code, "signal": r.signal, "timed_out": r.timed_out,
        "stdout": stdout, "stderr": stderr,
        "stdout_truncated": r.stdout_truncated, "stderr_truncated": r.stderr_truncated,
        "stdout_bytes": r.stdout_bytes, "stderr_bytes": r.stderr_bytes,
        "stdout_tail": stdout_tail, "stderr_tail": stderr_tail,
        "stdout_invalid_utf8_bytes": stdout_bad + stdout_tail_bad,
        "stderr_invalid_utf8_bytes": stderr_bad + stderr_tail_bad,
        "notes": notes,
        "duration_ms": r.duration_ms, "peak_rss_kb": r.peak_rss_kb, "peak_memory_bytes": r.peak_memory_bytes, "cpu_time_ms": r.cpu_time_ms,
        "profile": r.profile, "refused": refused, "refused_layer": refused_layer,
        "refused_reason": refused_reason, "error": error, "failed_step": r.failed_step, "errno": r.errno,
        "degraded": r.degraded, "timeout_secs": r.timeout_secs, "limit_hit": r.limit_hit, "pid": pid, "exit": code,
    })
}

/// The stderr line for a stream the sandbox cut: the sizes the command really wrote, and why the
/// exit code is not the command's own.
pub fn truncation_note(r: &ExecResult, code: i32) -> String {
    let mut s = format!(
        "limit hit: output_limit_bytes: output truncated at the profile's limit (the command \
         wrote {} to stdout, {} to stderr)",
        count(r.stdout_bytes, "byte"),
        thousands(r.stderr_bytes)
    );
    if code == EXIT_REFUSED && !r.timed_out {
        let own = if r.signal != 0 {
            format!("it was killed by signal {}", r.signal)
        } else {
            format!("its own exit code was {}", r.exit_code)
        };
        s.push_str(&format!(
            "; exit code {EXIT_REFUSED} because the output is incomplete ({own})"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::outcome::EXIT_TIMEOUT;

    #[test]
    fn a_cut_streams_tail_follows_its_head() {
        let head = |bytes, last| Mirrored {
            bytes,
            last: Some(last),
        };
        // Bytes dropped: a newline (the head stopped mid-line), the real count, the tail.
        assert_eq!(
            after_cut(head(10_240, b'2'), b"99\n2400\n", 10_893),
            b"\n... (645 bytes omitted) ...\n99\n2400\n"
        );
        // The head ended a line: no extra newline; one byte: singular.
        assert_eq!(
            after_cut(head(4, b'\n'), b"z\n", 7),
            b"... (1 byte omitted) ...\nz\n"
        );
        // Nothing dropped: the tail continues the head byte for byte.
        assert_eq!(after_cut(head(10_240, b'2'), b"2\n", 10_242), b"2\n");
        // Nothing streamed (an older daemon, say): no newline before the marker.
        assert_eq!(
            after_cut(Mirrored::default(), b"", 1_500),
            b"... (1,500 bytes omitted) ...\n"
        );
    }

    #[test]
    fn empty_and_blank_commands_are_empty_in_the_clis_words() {
        let empty = |c: &str, argv: &[&str]| {
            empty_command(c, &argv.iter().map(|a| a.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(empty("", &[]), Some("the command is empty"));
        assert_eq!(empty("  \t\n", &[]), Some("the command is empty"));
        assert!(empty("", &["", "x"]).is_some_and(|m| m.starts_with("the command is empty")));
        assert_eq!(empty("true", &[]), None);
        assert_eq!(
            empty("", &["  ", "x"]),
            None,
            "a program named by spaces runs (127)"
        );
    }

    #[test]
    fn a_program_that_cannot_run_is_no_refusal_in_json() {
        let r = ExecResult {
            exit_code: -1,
            refused: true,
            refused_layer: "exec".into(),
            refused_reason: "execve /tmp: Permission denied".into(),
            failed_step: "execve /tmp".into(),
            errno: libc::EACCES,
            ..Default::default()
        };
        let (code, msg) = program_failure(&r, Some("/tmp")).unwrap();
        let v = json_result(&[], &[], &r, 1, code, Some(&msg));
        assert_eq!(v["refused"], false);
        assert_eq!(v["refused_layer"], "");
        assert_eq!(v["exit"], 126);
        assert!(v["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("/tmp: cannot execute"));
        // A real refusal stays one, with no error.
        let v = json_result(&[], &[], &r, 1, EXIT_REFUSED, None);
        assert_eq!(v["refused"], true);
        assert!(v["error"].is_null());
    }

    #[test]
    fn a_truncated_output_exits_125_whatever_the_commands_own_code() {
        let cut = |exit_code: i32, signal: i32| ExecResult {
            exit_code,
            signal,
            stdout_truncated: true,
            stdout_bytes: 190_490,
            stderr_bytes: 1,
            limit_hit: "output_limit_bytes".into(),
            ..Default::default()
        };
        assert_eq!(exit_code(&cut(0, 0), None), EXIT_REFUSED);
        assert_eq!(exit_code(&cut(3, 0), Some("x")), EXIT_REFUSED);
        assert_eq!(exit_code(&cut(-1, 13), None), EXIT_REFUSED);
        let err_cut = ExecResult {
            stderr_truncated: true,
            ..Default::default()
        };
        assert_eq!(exit_code(&err_cut, None), EXIT_REFUSED);
        // A timeout still says timeout.
        let late = ExecResult {
            timed_out: true,
            ..cut(-1, 9)
        };
        assert_eq!(exit_code(&late, None), EXIT_TIMEOUT);
        assert_eq!(
            truncation_note(&cut(0, 0), EXIT_REFUSED),
            "limit hit: output_limit_bytes: output truncated at the profile's limit (the command \
             wrote 190,490 bytes to stdout, 1 to stderr); exit code 125 because the output is \
             incomplete (its own exit code was 0)"
        );
        assert!(
            truncation_note(&cut(-1, 13), EXIT_REFUSED).ends_with("(it was killed by signal 13)")
        );
        // Not cut: the command's own code.
        let whole = ExecResult {
            exit_code: 0,
            stdout_bytes: 10,
            ..Default::default()
        };
        assert_eq!(exit_code(&whole, None), 0);
    }
}

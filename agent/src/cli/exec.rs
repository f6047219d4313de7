//! `nanobot exec`: run one command through sandboxd and mirror its result in our exit code.

use anyhow::{Context, Result};
use nanobot_proto::pb::{exec_event::Event, ExecRequest, ExecResult};
use std::io::Write;
use std::path::PathBuf;

pub const EXIT_TIMEOUT: i32 = 124;
pub const EXIT_REFUSED: i32 = 125;
/// The program was found but could not be executed (EACCES, ENOEXEC), as in the shell.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// The program was not found, as in the shell.
pub const EXIT_NOT_FOUND: i32 = 127;

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
    /// Print one JSON result object instead of streaming output
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

/// Lossy text of `b`, and how many invalid UTF-8 bytes were replaced.
fn lossy(b: &[u8]) -> (String, usize) {
    (
        String::from_utf8_lossy(b).into_owned(),
        crate::tools::invalid_utf8_bytes(b),
    )
}

/// When `program` (argv mode only: in shell mode the program is `/bin/sh`, and failing to run it
/// is the sandbox's failure) could not be run because it is missing or not executable, that is
/// the command's own failure, not a refusal: the shell's exit code (127 not found, 126 found but
/// not executable) and the message to print. Every other refusal stays 125.
pub fn program_failure(r: &ExecResult, program: Option<&str>) -> Option<(i32, String)> {
    let program = program?;
    if !r.refused || r.refused_layer != "exec" || !r.failed_step.starts_with("execve") {
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
    } else {
        r.exit_code
    }
}

/// ~/.nanobot/workspace, for root too.
pub fn default_workspace() -> PathBuf {
    crate::autostart::home().join(".nanobot/workspace")
}

/// Create the default workspace on first use. Root's home is 0700, which the unprivileged sandbox
/// user cannot traverse, so for root ~/.nanobot/workspace is made a symlink to
/// /var/lib/nanobot/workspace (owned by the sandbox user when the daemon starts); the resolved
/// path is what the daemon sees. A real directory there is left alone: sandboxd will then say it
/// cannot reach it.
fn create_default_workspace(ws: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if std::fs::symlink_metadata(ws).is_ok() {
        return Ok(());
    }
    if let Some(dir) = ws.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    if crate::autostart::is_root() {
        let target = std::path::Path::new(crate::autostart::ROOT_WORKSPACE);
        std::fs::create_dir_all(target)
            .with_context(|| format!("creating workspace {}", target.display()))?;
        std::os::unix::fs::symlink(target, ws)
            .with_context(|| format!("linking {} to {}", ws.display(), target.display()))?;
        return Ok(());
    }
    std::fs::create_dir_all(ws).with_context(|| format!("creating workspace {}", ws.display()))
}

/// Pick the socket: explicit, then the environment, then the first default that answers; start a
/// per-user daemon when none does.
pub async fn resolve_socket(
    explicit: Option<PathBuf>,
    workspace: &std::path::Path,
) -> Result<PathBuf> {
    if let Some(s) = explicit {
        return Ok(s);
    }
    if let Some(s) = std::env::var_os("NANOBOT_SANDBOX_SOCKET").filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(s));
    }
    for s in crate::autostart::default_sockets() {
        if crate::autostart::answers(&s).await {
            return Ok(s);
        }
    }
    let own = crate::autostart::per_user_socket();
    crate::autostart::start(&own, workspace)
        .await
        .context("no sandboxd answered and starting one failed")?;
    Ok(own)
}

/// The workspace to use: the one given, or the default (created on first use), canonicalized
/// when this user can see it. When it cannot (the agent and sandboxd are different users and the
/// workspaces belong to sandboxd's), the absolute path goes to sandboxd as given: sandboxd
/// resolves it beneath its roots without following symlinks out, which is the check that counts.
pub fn resolve_workspace(given: Option<&std::path::Path>) -> Result<PathBuf> {
    let workspace = given.map(PathBuf::from).unwrap_or_else(default_workspace);
    if given.is_none() {
        create_default_workspace(&workspace)?;
    }
    match workspace.canonicalize() {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            std::path::absolute(&workspace)
                .with_context(|| format!("workspace {}", workspace.display()))
        }
        Err(e) => Err(e).with_context(|| format!("workspace {}", workspace.display())),
    }
}

pub async fn run(g: &crate::instance::Globals, a: ExecArgs) -> Result<i32> {
    let cfg = g.load()?.config;
    let workspace = g.workspace(&cfg)?;
    let cwd = match crate::tools::relative_cwd(&workspace, a.cwd.as_deref().unwrap_or(""), "--cwd")
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nanobot: {e}");
            return Ok(EXIT_REFUSED);
        }
    };
    let (_socket, mut client) =
        crate::instance::connect(a.socket.clone(), &cfg, &workspace).await?;
    let (command, argv) = command_or_argv(&a);
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
    let mut stream = match client.exec(req).await {
        Ok(s) => s.into_inner(),
        Err(st) => {
            eprintln!("nanobot: sandbox refused: {}", st.message());
            return Ok(EXIT_REFUSED);
        }
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut pid = 0;
    let mut result = None;
    loop {
        match stream.message().await {
            Ok(Some(ev)) => match ev.event {
                Some(Event::Started(s)) => pid = s.pid,
                Some(Event::Stdout(d)) if a.json => out.extend_from_slice(&d),
                Some(Event::Stderr(d)) if a.json => err.extend_from_slice(&d),
                Some(Event::Stdout(d)) => {
                    let mut o = std::io::stdout().lock();
                    let _ = o.write_all(&d);
                    let _ = o.flush();
                }
                Some(Event::Stderr(d)) => {
                    let _ = std::io::stderr().write_all(&d);
                }
                Some(Event::Result(r)) => result = Some(r),
                None => {}
            },
            Ok(None) => break,
            Err(st) => {
                eprintln!("nanobot: sandbox failed: {}", st.message());
                return Ok(EXIT_REFUSED);
            }
        }
    }
    let Some(r) = result else {
        eprintln!("nanobot: sandbox failed: the stream ended without a result");
        return Ok(EXIT_REFUSED);
    };
    let failure = program_failure(&r, program.as_deref());
    let code = exit_code(&r, program.as_deref());
    if a.json {
        let (stdout, stdout_bad) = lossy(&out);
        let (stderr, stderr_bad) = lossy(&err);
        let (stdout_tail, stdout_tail_bad) = lossy(&r.stdout_tail);
        let (stderr_tail, stderr_tail_bad) = lossy(&r.stderr_tail);
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
                    crate::tools::count(n as u64, "invalid UTF-8 byte")
                ));
            }
        }
        let v = serde_json::json!({
            "exit_code": r.exit_code, "signal": r.signal, "timed_out": r.timed_out,
            "stdout": stdout, "stderr": stderr,
            "stdout_truncated": r.stdout_truncated, "stderr_truncated": r.stderr_truncated,
            "stdout_bytes": r.stdout_bytes, "stderr_bytes": r.stderr_bytes,
            "stdout_tail": stdout_tail, "stderr_tail": stderr_tail,
            "stdout_invalid_utf8_bytes": stdout_bad + stdout_tail_bad,
            "stderr_invalid_utf8_bytes": stderr_bad + stderr_tail_bad,
            "notes": notes,
            "duration_ms": r.duration_ms, "peak_rss_kb": r.peak_rss_kb, "cpu_time_ms": r.cpu_time_ms,
            "profile": r.profile, "refused": r.refused, "refused_layer": r.refused_layer,
            "refused_reason": r.refused_reason, "failed_step": r.failed_step, "errno": r.errno,
            "degraded": r.degraded, "timeout_secs": r.timeout_secs, "limit_hit": r.limit_hit, "pid": pid, "exit": code,
        });
        println!("{v}");
    } else if let Some((_, msg)) = failure {
        eprintln!("nanobot: {msg}");
    } else if r.refused {
        eprintln!("nanobot: {}", r.refused_reason);
    } else {
        for d in &r.degraded {
            eprintln!("nanobot: warning: sandbox ran DEGRADED, without {d}");
        }
        match r.limit_hit.as_str() {
            "" => {}
            "timeout_secs" => eprintln!(
                "nanobot: limit hit: timeout_secs: the command timed out after {} s and was killed",
                r.timeout_secs
            ),
            "output_limit_bytes" => {}
            "cpu_secs" => eprintln!(
                "nanobot: limit hit: cpu_secs: the command used up its CPU time and was killed (SIGXCPU)"
            ),
            "file_size_bytes" => eprintln!(
                "nanobot: limit hit: file_size_bytes: the command wrote past the largest file allowed (SIGXFSZ)"
            ),
            other => eprintln!("nanobot: limit hit: {other}"),
        }
        if truncated(&r) {
            eprintln!("nanobot: {}", truncation_note(&r, code));
        }
    }
    Ok(code)
}

/// The stderr line for a stream the sandbox cut: the sizes the command really wrote, and why the
/// exit code is not the command's own.
pub fn truncation_note(r: &ExecResult, code: i32) -> String {
    use crate::tools::{count, thousands};
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

//! The agent's tools (exec, read_file, write_file, edit_file, list_dir) as the model sees them:
//! every one is a sandboxd call, and every result is text formatted the way the Python nanobot
//! formats it, so prompts written for it keep working. `nanobot tool NAME JSON` runs one of them.

use crate::audit::AuditLog;
use nanobot_proto::pb::{
    exec_event::Event, sandbox_client::SandboxClient, EditFileRequest, ExecRequest, ListDirRequest,
    ReadFileRequest, WriteFileRequest,
};
use serde_json::Value;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;
use tonic::transport::Channel;

/// Output longer than this is cut for the model, as upstream does.
pub const MAX_EXEC_OUTPUT: usize = 10_000;
pub const TOOLS: &[&str] = &["exec", "read_file", "write_file", "edit_file", "list_dir"];

pub struct Ctx {
    pub client: SandboxClient<Channel>,
    pub workspace: PathBuf,
    /// Seconds sent with each exec (`execConfig.timeout`); sandboxd's profile maximum still wins.
    pub timeout: u32,
    pub profile: String,
    pub log: AuditLog,
    /// `restrictToWorkspace`: refuse a `working_dir` outside the workspace here, without asking
    /// sandboxd. When false it is sent and sandboxd refuses it; nothing runs outside either way.
    pub restrict: bool,
}

/// What the model gets back: the text, and whether it is an error; and the exit code of
/// `nanobot tool` for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub text: String,
    pub is_error: bool,
    /// For exec, the code `nanobot exec` would exit with for the same result (the command's own,
    /// 128+N, 124, 125 when the sandbox refused, failed or cut the output, 126, 127); for the
    /// other tools 0, or 1 for an error result.
    pub code: i32,
}

fn ok(text: String) -> Output {
    Output {
        text,
        is_error: false,
        code: 0,
    }
}

fn err(text: impl std::fmt::Display) -> Output {
    Output {
        text: format!("Error: {text}"),
        is_error: true,
        code: 1,
    }
}

fn arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, Output> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| err(format!("missing string argument '{name}'")))
}

/// `.` dropped and `..` taking back the component before it, lexically. None when a `..` climbs
/// above the start of a relative path (`..` at `/` stays at `/`, as the kernel does).
fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out: Vec<Component> = vec![];
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => return None,
            },
            c => out.push(c),
        }
    }
    Some(out.iter().map(|c| c.as_os_str()).collect())
}

/// A working directory as sandboxd's `cwd`, relative to the workspace: a relative `dir` is taken
/// inside the workspace, an absolute one must lie inside it and becomes the rest of the path.
/// Checked lexically, by components (the agent may not be able to see the workspace; sandboxd's
/// openat2 RESOLVE_BENEATH is the check that counts, symlinks included): a `..` that leaves the
/// workspace or an absolute path outside it is refused with an error naming `what`. It never
/// changes the workspace.
pub fn relative_cwd(workspace: &Path, dir: &str, what: &str) -> Result<String, String> {
    if dir.contains('\0') {
        return Err(format!("{what} contains a NUL byte"));
    }
    let outside = || {
        format!(
            "{what} {dir} is outside the workspace {}",
            workspace.display()
        )
    };
    let p = Path::new(dir);
    let rel = if p.is_absolute() {
        let (Some(ws), Some(abs)) = (normalize(workspace), normalize(p)) else {
            return Err(outside());
        };
        abs.strip_prefix(&ws).map_err(|_| outside())?.to_path_buf()
    } else {
        normalize(p).ok_or_else(outside)?
    };
    Ok(rel.to_string_lossy().into_owned())
}

fn num(args: &Value, name: &str) -> Result<u32, Output> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| err(format!("argument '{name}' must be a non-negative integer"))),
    }
}

impl Ctx {
    fn ws(&self) -> String {
        self.workspace.to_string_lossy().into_owned()
    }

    /// Log a failed call in the words operators grep for.
    fn log_status(&self, what: &str, st: &tonic::Status) {
        if st.code() == tonic::Code::PermissionDenied {
            self.log
                .line("WARN", &format!("{what}: Access denied: {}", st.message()));
        } else {
            self.log
                .line("WARN", &format!("{what}: error: {}", st.message()));
        }
    }

    pub async fn call(&mut self, name: &str, args: &Value) -> Output {
        let r = match name {
            // An exec that did not run (bad arguments, refused, blocked, the sandbox failed) is
            // what `nanobot exec` reports as 125.
            "exec" => self.exec(args).await.map_err(|e| Output {
                code: crate::exec::EXIT_REFUSED,
                ..e
            }),
            "read_file" => self.read_file(args).await,
            "write_file" => self.write_file(args).await,
            "edit_file" => self.edit_file(args).await,
            "list_dir" => self.list_dir(args).await,
            other => Err(err(format!(
                "unknown tool '{other}'; available: {}",
                TOOLS.join(", ")
            ))),
        };
        r.unwrap_or_else(|e| e)
    }

    async fn exec(&mut self, args: &Value) -> Result<Output, Output> {
        let command = arg(args, "command")?.to_string();
        let wd = match args.get("working_dir") {
            None | Some(Value::Null) => "",
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(err("argument 'working_dir' must be a string")),
        };
        let what = format!("ExecTool: command={command:?}");
        // The working directory is only ever a directory inside the workspace, which stays the
        // agent's own: sandboxd resolves `cwd` beneath it and the kernel confines the command.
        let cwd = match relative_cwd(&self.workspace, wd, "working_dir") {
            Ok(c) => c,
            Err(e) if self.restrict => {
                self.log
                    .line("WARN", &format!("{what}: Access denied: {e}"));
                return Err(err(e));
            }
            // restrictToWorkspace false: ask anyway; sandboxd refuses what leads out.
            Err(_) => wd.to_string(),
        };
        let t0 = Instant::now();
        let req = ExecRequest {
            workspace: self.ws(),
            cwd,
            command: command.clone(),
            timeout_secs: self.timeout,
            profile: self.profile.clone(),
            ..Default::default()
        };
        let mut stream = match self.client.exec(req).await {
            Ok(s) => s.into_inner(),
            Err(st) => {
                self.log_status(&what, &st);
                if st.code() == tonic::Code::InvalidArgument && st.message().starts_with("cwd") {
                    return Err(err(format!(
                        "working_dir {wd} refused by sandboxd: {}",
                        st.message()
                    )));
                }
                return Err(err(st.message()));
            }
        };
        let (mut out, mut errb, mut result) = (Vec::new(), Vec::new(), None);
        loop {
            match stream.message().await {
                Ok(Some(ev)) => match ev.event {
                    Some(Event::Stdout(d)) => out.extend(d),
                    Some(Event::Stderr(d)) => errb.extend(d),
                    Some(Event::Result(r)) => result = Some(r),
                    _ => {}
                },
                Ok(None) => break,
                Err(st) => {
                    self.log_status(&what, &st);
                    return Err(err(st.message()));
                }
            }
        }
        let ms = t0.elapsed().as_millis();
        let Some(r) = result else {
            self.log.line(
                "WARN",
                &format!("{what} error=\"no result\" duration={ms}ms"),
            );
            return Err(err("sandboxd ended the exec without a result"));
        };
        if r.blocked {
            self.log.line(
                "WARN",
                &format!(
                    "{what} blocked by safety guard: pattern={:?} duration={ms}ms",
                    r.blocked_pattern
                ),
            );
            return Err(err(format!(
                "Command blocked by safety guard (dangerous pattern detected: {})",
                r.blocked_pattern
            )));
        }
        if r.refused {
            self.log.line(
                "WARN",
                &format!(
                    "{what} refused layer={} reason={:?} duration={ms}ms",
                    r.refused_layer, r.refused_reason
                ),
            );
            return Err(err(format!("sandbox refused: {}", r.refused_reason)));
        }
        self.log.line(
            "INFO",
            &format!(
                "{what} exit={} signal={} timed_out={} duration={ms}ms",
                r.exit_code, r.signal, r.timed_out
            ),
        );
        let code = crate::exec::exit_code(&r, None);
        let text = format_exec(
            &Stream::new(out, r.stdout_tail, r.stdout_bytes),
            &Stream::new(errb, r.stderr_tail, r.stderr_bytes),
            &Ending {
                exit_code: r.exit_code,
                signal: r.signal,
                timed_out: r.timed_out,
                timeout_secs: r.timeout_secs,
                limit_hit: r.limit_hit,
                sandbox_truncated: r.stdout_truncated || r.stderr_truncated,
            },
        );
        Ok(Output {
            text,
            is_error: r.timed_out,
            code,
        })
    }

    async fn read_file(&mut self, args: &Value) -> Result<Output, Output> {
        let path = arg(args, "path")?.to_string();
        let req = ReadFileRequest {
            workspace: self.ws(),
            path: path.clone(),
            offset: num(args, "offset")?,
            limit: num(args, "limit")?,
        };
        match self.client.read_file(req).await {
            Ok(r) => {
                let r = r.into_inner();
                self.log.line("INFO", &format!("read_file path={path}"));
                let mut text = r.content;
                if r.truncated {
                    let sep = if text.ends_with('\n') { "\n" } else { "\n\n" };
                    text.push_str(&format!("{sep}{}", r.note));
                }
                Ok(ok(text))
            }
            Err(st) => {
                self.log_status(&format!("read_file path={path}"), &st);
                Err(err(st.message()))
            }
        }
    }

    async fn write_file(&mut self, args: &Value) -> Result<Output, Output> {
        let path = arg(args, "path")?.to_string();
        let content = arg(args, "content")?.to_string();
        let req = WriteFileRequest {
            workspace: self.ws(),
            path: path.clone(),
            content,
        };
        match self.client.write_file(req).await {
            Ok(r) => {
                let r = r.into_inner();
                self.log.line(
                    "INFO",
                    &format!("write_file path={path} bytes={}", r.bytes_written),
                );
                Ok(ok(format!(
                    "Successfully wrote {} to {path}",
                    count(r.bytes_written, "byte")
                )))
            }
            Err(st) => {
                self.log_status(&format!("write_file path={path}"), &st);
                Err(err(st.message()))
            }
        }
    }

    async fn edit_file(&mut self, args: &Value) -> Result<Output, Output> {
        let path = arg(args, "path")?.to_string();
        let req = EditFileRequest {
            workspace: self.ws(),
            path: path.clone(),
            old_text: arg(args, "old_text")?.to_string(),
            new_text: arg(args, "new_text")?.to_string(),
        };
        match self.client.edit_file(req).await {
            Ok(_) => {
                self.log.line("INFO", &format!("edit_file path={path}"));
                Ok(ok(format!("Successfully edited {path}")))
            }
            Err(st) => {
                self.log_status(&format!("edit_file path={path}"), &st);
                Err(err(st.message()))
            }
        }
    }

    async fn list_dir(&mut self, args: &Value) -> Result<Output, Output> {
        let path = args
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or(".")
            .to_string();
        let req = ListDirRequest {
            workspace: self.ws(),
            path: path.clone(),
        };
        match self.client.list_dir(req).await {
            Ok(r) => {
                let r = r.into_inner();
                self.log.line("INFO", &format!("list_dir path={path}"));
                if r.entries.is_empty() {
                    return Ok(ok(format!("Directory {path} is empty")));
                }
                let mut lines: Vec<String> = r
                    .entries
                    .iter()
                    .map(|e| {
                        let icon = if e.is_dir { "📁" } else { "📄" };
                        format!("{icon} {}", e.name)
                    })
                    .collect();
                if r.truncated {
                    let more = u64::from(r.total).saturating_sub(r.entries.len() as u64);
                    lines.push(format!(
                        "... ({} not shown)",
                        count_as(more, "more entry", "more entries")
                    ));
                }
                Ok(ok(lines.join("\n")))
            }
            Err(st) => {
                self.log_status(&format!("list_dir path={path}"), &st);
                Err(err(st.message()))
            }
        }
    }
}

/// One output stream as received: the streamed head, the tail the daemon kept past its cap and
/// the number of bytes the command really wrote (the bytes in between were dropped).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stream {
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
    pub total: u64,
}

impl Stream {
    pub fn new(head: Vec<u8>, tail: Vec<u8>, total: u64) -> Stream {
        // An older daemon does not count: then what arrived is all we know of.
        let total = total.max((head.len() + tail.len()) as u64);
        Stream { head, tail, total }
    }

    /// Bytes dropped between the head and the tail.
    pub fn gap(&self) -> u64 {
        self.total
            .saturating_sub((self.head.len() + self.tail.len()) as u64)
    }

    fn is_blank(&self) -> bool {
        self.total == 0
            || (self.gap() == 0
                && self
                    .head
                    .iter()
                    .chain(&self.tail)
                    .all(u8::is_ascii_whitespace))
    }

    /// Room this stream takes when shown whole (with a gap marker if the daemon cut it).
    fn full_len(&self) -> usize {
        let marker = if self.gap() > 0 { MARKER_ROOM } else { 0 };
        self.head.len() + self.tail.len() + marker
    }
}

/// Room kept for the `... (N bytes omitted) ...` line.
const MARKER_ROOM: usize = 64;

/// Invalid UTF-8 bytes in `b`, each replaced by U+FFFD in the lossy text.
pub fn invalid_utf8_bytes(b: &[u8]) -> usize {
    b.utf8_chunks().map(|c| c.invalid().len()).sum()
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// A stream as text in at most `budget` characters: its head and its tail, with the real number
/// of bytes left out in between. Returns the text, the bytes left out and the invalid UTF-8 bytes
/// replaced.
fn render(st: &Stream, budget: usize) -> (String, u64, usize) {
    let joined;
    let (known, h): (&[u8], usize) = if st.gap() == 0 {
        joined = [st.head.as_slice(), st.tail.as_slice()].concat();
        (&joined, joined.len())
    } else if st.head.is_empty() {
        (&st.tail, 0)
    } else if st.tail.is_empty() {
        (&st.head, st.head.len())
    } else {
        joined = [st.head.as_slice(), st.tail.as_slice()].concat();
        (&joined, st.head.len())
    };
    if st.gap() == 0 && known.len() <= budget {
        return (
            String::from_utf8_lossy(known).into_owned(),
            0,
            invalid_utf8_bytes(known),
        );
    }
    // Which part of `known` may serve as head and as tail.
    let (h_max, t_max) = if st.gap() == 0 {
        (known.len(), known.len())
    } else {
        (h, known.len() - h)
    };
    let avail = budget.saturating_sub(MARKER_ROOM);
    let mut tk = t_max.min(avail / 2);
    let mut hk = h_max.min(avail - tk);
    tk = t_max.min(avail - hk);
    // Cut on character boundaries, so the cut itself makes no invalid bytes.
    for _ in 0..3 {
        if hk > 0 && hk < known.len() && is_continuation(known[hk]) {
            hk -= 1;
        }
        let start = known.len() - tk;
        if tk > 0 && start > 0 && is_continuation(known[start]) {
            tk -= 1;
        }
    }
    let (head, tail) = (&known[..hk], &known[known.len() - tk..]);
    let omitted = st.total.saturating_sub((hk + tk) as u64);
    let text = format!(
        "{}\n... ({} omitted) ...\n{}",
        String::from_utf8_lossy(head),
        count(omitted, "byte"),
        String::from_utf8_lossy(tail)
    );
    (
        text,
        omitted,
        invalid_utf8_bytes(head) + invalid_utf8_bytes(tail),
    )
}

/// How the command ended, for the model.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ending {
    pub exit_code: i32,
    pub signal: i32,
    pub timed_out: bool,
    pub timeout_secs: u32,
    /// sandboxd's `limit_hit`.
    pub limit_hit: String,
    /// The daemon cut a stream at the profile's output limit.
    pub sandbox_truncated: bool,
}

/// `190,490`: every count in a tool result is written this way.
pub fn thousands(n: u64) -> String {
    let digits: Vec<char> = n.to_string().chars().rev().collect();
    let groups: Vec<String> = digits
        .chunks(3)
        .map(|g| g.iter().rev().collect())
        .rev()
        .collect();
    groups.join(",")
}

/// `1 byte`, `2 bytes`, `10,100 bytes`: a count (as `thousands` writes it) and its unit, in the
/// singular for one and with an `s` otherwise.
pub fn count(n: u64, unit: &str) -> String {
    count_as(n, unit, &format!("{unit}s"))
}

/// `count` for a unit whose plural is not `unit` + `s`: `1 entry`, `2 entries`.
pub fn count_as(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// A rendered stream: its text, the bytes left out and the invalid UTF-8 bytes replaced.
type Rendered = (String, u64, usize);

/// The notes after the ending: what was cut (`shown`, `total` and `omitted` bytes per stream),
/// the sandbox's limit, and invalid UTF-8 bytes replaced (per stream).
fn notes(
    cuts: [(&str, u64, u64, u64); 2],
    sandbox_truncated: bool,
    bad: [usize; 2],
) -> Vec<String> {
    let mut cut = vec![];
    for (name, shown, total, omitted) in cuts {
        if omitted > 0 {
            cut.push(format!(
                "{name}: {} of {} shown, {} omitted",
                thousands(shown),
                count(total, "byte"),
                thousands(omitted)
            ));
        }
    }
    if sandbox_truncated {
        cut.push("the sandbox's output limit (output_limit_bytes) was hit".into());
    }
    let mut parts = vec![];
    if !cut.is_empty() {
        parts.push(format!("(output truncated: {})", cut.join("; ")));
    }
    for (bad, name) in bad.into_iter().zip(["stdout", "stderr"]) {
        if bad > 0 {
            parts.push(format!(
                "({} replaced with U+FFFD in {name})",
                count(bad as u64, "invalid UTF-8 byte")
            ));
        }
    }
    parts
}

/// stdout, then a `STDERR:` section, then how the command ended (`Exit code: N` when not 0, the
/// signal, the timeout or the limit hit), then a note on what was cut and on replaced bytes. At
/// most `MAX_EXEC_OUTPUT` characters: output that fits whole (with the notes it needs) is shown
/// whole; longer output keeps each stream's head and tail, and the end (stderr's tail, the ending,
/// the notes) is always there.
pub fn format_exec(stdout: &Stream, stderr: &Stream, end: &Ending) -> String {
    let mut ending = vec![];
    if end.timed_out {
        ending.push(format!(
            "Error: Command timed out after {}",
            count(u64::from(end.timeout_secs), "second")
        ));
    } else if end.signal != 0 {
        ending.push(format!("Killed by signal {}", end.signal));
    } else if end.exit_code != 0 {
        ending.push(format!("Exit code: {}", end.exit_code));
    }
    match end.limit_hit.as_str() {
        "" | "timeout_secs" | "output_limit_bytes" => {}
        l => ending.push(format!("Limit hit: {l}")),
    }
    let show_err = !stderr.is_blank();
    let assemble = |out: &Rendered, err: &Rendered| {
        let mut parts = vec![];
        if stdout.total > 0 {
            parts.push(out.0.clone());
        }
        if show_err {
            parts.push(format!("STDERR:\n{}", err.0));
        }
        parts.extend(ending.iter().cloned());
        parts.extend(notes(
            [
                ("stdout", stdout.total - out.1, stdout.total, out.1),
                ("stderr", stderr.total - err.1, stderr.total, err.1),
            ],
            end.sandbox_truncated,
            [out.2, err.2],
        ));
        if parts.is_empty() {
            "(no output)".to_string()
        } else {
            parts.join("\n")
        }
    };
    let nothing: Rendered = (String::new(), 0, 0);
    // Whole, with exactly the notes that needs (the daemon's own cut, replaced bytes), when it
    // fits: no room is kept for notes that are not there.
    let whole_err = if show_err {
        render(stderr, usize::MAX)
    } else {
        nothing.clone()
    };
    let whole = assemble(&render(stdout, usize::MAX), &whole_err);
    if whole.chars().count() <= MAX_EXEC_OUTPUT {
        return whole;
    }
    // It must be cut: keep room for the longest notes a cut can produce (every shown stream cut,
    // counts as wide as the totals, as many replaced bytes as the stream has bytes).
    let may_be_bad = |st: &Stream| {
        if invalid_utf8_bytes(&st.head) + invalid_utf8_bytes(&st.tail) > 0 {
            st.head.len() + st.tail.len()
        } else {
            0
        }
    };
    let err_total = if show_err { stderr.total } else { 0 };
    let notes_room = notes(
        [
            ("stdout", stdout.total, stdout.total, stdout.total),
            ("stderr", err_total, err_total, err_total),
        ],
        end.sandbox_truncated,
        [
            may_be_bad(stdout),
            if show_err { may_be_bad(stderr) } else { 0 },
        ],
    )
    .iter()
    .map(|l| l.len() + 1)
    .sum::<usize>();
    let header = if show_err { "STDERR:\n".len() + 1 } else { 0 };
    let fixed = ending.iter().map(|l| l.len() + 1).sum::<usize>() + notes_room + header + 1;
    let avail = MAX_EXEC_OUTPUT.saturating_sub(fixed);
    let (out_len, err_len) = (
        stdout.full_len(),
        if show_err { stderr.full_len() } else { 0 },
    );
    let (out_budget, err_budget) = if out_len + err_len <= avail {
        (out_len.max(avail - err_len), err_len)
    } else {
        let e = err_len.min((avail / 4).max(avail.saturating_sub(out_len)));
        (avail - e, e)
    };
    let err = if show_err {
        render(stderr, err_budget)
    } else {
        nothing
    };
    assemble(&render(stdout, out_budget), &err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_dir_is_a_directory_inside_the_workspace() {
        let ws = Path::new("/home/u/ws");
        let cwd = |d: &str| relative_cwd(ws, d, "working_dir");
        // Relative: inside the workspace, normalised.
        assert_eq!(cwd(""), Ok("".into()));
        assert_eq!(cwd("."), Ok("".into()));
        assert_eq!(cwd("sub"), Ok("sub".into()));
        assert_eq!(cwd("./sub/deeper/"), Ok("sub/deeper".into()));
        assert_eq!(cwd("sub/../other"), Ok("other".into()));
        assert_eq!(cwd("sub/.."), Ok("".into()));
        // Absolute inside: the rest of the path.
        assert_eq!(cwd("/home/u/ws"), Ok("".into()));
        assert_eq!(cwd("/home/u/ws/"), Ok("".into()));
        assert_eq!(cwd("/home/u/ws/sub"), Ok("sub".into()));
        assert_eq!(cwd("/home/u/ws/./a/../sub"), Ok("sub".into()));
        assert_eq!(cwd("/home/u/../u/ws/sub"), Ok("sub".into()));
        // Outside: refused, naming working_dir and the workspace.
        let outside = |d: &str| format!("working_dir {d} is outside the workspace /home/u/ws");
        for d in [
            "/home/u",
            "/home/u/other",
            "/home/u/ws2",
            "/home/u/wsx/sub",
            "/",
            "/etc",
            "/home/u/ws/..",
            "/home/u/ws/sub/../../other",
        ] {
            assert_eq!(cwd(d), Err(outside(d)), "{d}");
        }
        for d in [
            "..",
            "../other",
            "sub/../..",
            "./../ws/sub",
            "a/b/../../../x",
        ] {
            assert_eq!(cwd(d), Err(outside(d)), "{d}");
        }
        assert_eq!(cwd("a\0b"), Err("working_dir contains a NUL byte".into()));
        // A workspace given with `..` or a trailing slash compares by its normal form.
        assert_eq!(
            relative_cwd(Path::new("/home/u/x/../ws/"), "/home/u/ws/sub", "cwd"),
            Ok("sub".into())
        );
        assert_eq!(
            relative_cwd(Path::new("/home/u/ws"), "/home/u", "--cwd"),
            Err("--cwd /home/u is outside the workspace /home/u/ws".into())
        );
    }

    fn plain(s: &str) -> Stream {
        Stream::new(s.as_bytes().to_vec(), vec![], 0)
    }

    fn code(c: i32) -> Ending {
        Ending {
            exit_code: c,
            ..Default::default()
        }
    }

    #[test]
    fn exec_results_read_like_upstream() {
        assert_eq!(format_exec(&plain(""), &plain(""), &code(0)), "(no output)");
        assert_eq!(format_exec(&plain("hi\n"), &plain(""), &code(0)), "hi\n");
        assert_eq!(
            format_exec(&plain("a\n"), &plain("bad\n"), &code(2)),
            "a\n\nSTDERR:\nbad\n\nExit code: 2"
        );
        assert_eq!(
            format_exec(
                &plain(""),
                &plain(""),
                &Ending {
                    signal: 9,
                    ..code(-1)
                }
            ),
            "Killed by signal 9"
        );
    }

    /// The example: `yes x | head -c 10100; echo boom >&2; exit 3` lost its stderr, its
    /// exit code and every note to the 10 000-character cut.
    #[test]
    fn long_output_keeps_head_tail_stderr_exit_code_and_a_note() {
        let out = format!("{}END", "x".repeat(10_097));
        let s = format_exec(&plain(&out), &plain("boom\n"), &code(3));
        assert!(s.chars().count() <= MAX_EXEC_OUTPUT, "{}", s.len());
        assert!(s.starts_with("xxxx"));
        assert!(
            s.ends_with(
                "xxxEND\nSTDERR:\nboom\n\nExit code: 3\n\
                 (output truncated: stdout: 9,796 of 10,100 bytes shown, 304 omitted)"
            ),
            "{}",
            &s[s.len() - 200..]
        );
        assert!(s.contains("xxx\n... (304 bytes omitted) ...\nxxx"));
    }

    #[test]
    fn the_dropped_amount_is_what_the_command_wrote() {
        // The daemon streamed 10 240 bytes, kept a 4 096-byte tail and counted 300 000 000.
        let st = Stream::new(vec![b'h'; 10_240], vec![b't'; 4_096], 300_000_000);
        let e = Stream::new(b"warn\n".to_vec(), vec![], 5);
        let end = Ending {
            signal: 15,
            sandbox_truncated: true,
            limit_hit: "output_limit_bytes".into(),
            exit_code: -1,
            ..Default::default()
        };
        let s = format_exec(&st, &e, &end);
        assert!(s.chars().count() <= MAX_EXEC_OUTPUT);
        assert!(s.starts_with("hhh"));
        let shown_h = s.chars().take_while(|c| *c == 'h').count();
        let before_err = &s[..s.find("\nSTDERR:").unwrap_or(0)];
        let shown_t = before_err.chars().rev().take_while(|c| *c == 't').count();
        assert!(shown_h > 4_000 && shown_t > 2_000, "{shown_h} {shown_t}");
        let omitted = 300_000_000 - (shown_h + shown_t) as u64;
        assert!(
            s.contains(&format!(
                "h\n... ({} bytes omitted) ...\nt",
                thousands(omitted)
            )),
            "{omitted}"
        );
        assert!(
            s.contains("tttt\nSTDERR:\nwarn\n\nKilled by signal 15\n(output truncated: stdout: "),
            "{}",
            &s[s.len() - 300..]
        );
        assert!(
            s.contains("of 300,000,000 bytes shown"),
            "{}",
            &s[s.len() - 300..]
        );
        assert!(s.ends_with("the sandbox's output limit (output_limit_bytes) was hit)"));
        // Timeouts and limits end the text too, with the output before them.
        let end = Ending {
            timed_out: true,
            timeout_secs: 5,
            limit_hit: "timeout_secs".into(),
            exit_code: -1,
            signal: 9,
            ..Default::default()
        };
        let s = format_exec(&plain("partial\n"), &plain(""), &end);
        assert_eq!(s, "partial\n\nError: Command timed out after 5 seconds");
        let end = Ending {
            signal: 24,
            limit_hit: "cpu_secs".into(),
            ..Default::default()
        };
        assert_eq!(
            format_exec(&plain(""), &plain(""), &end),
            "Killed by signal 24\nLimit hit: cpu_secs"
        );
    }

    #[test]
    fn long_stderr_keeps_its_tail_and_stdout_its_head_and_tail() {
        let out = format!("OUTHEAD{}OUTTAIL", "o".repeat(20_000));
        let err = format!("ERRHEAD{}ERRTAIL\n", "e".repeat(20_000));
        let s = format_exec(&plain(&out), &plain(&err), &code(1));
        assert!(s.chars().count() <= MAX_EXEC_OUTPUT, "{}", s.len());
        for part in [
            "OUTHEAD",
            "OUTTAIL",
            "ERRHEAD",
            "ERRTAIL\n\nExit code: 1\n(output truncated",
        ] {
            assert!(s.contains(part), "{part}");
        }
        assert!(s.contains("stderr: "), "{}", &s[s.len() - 300..]);
    }

    #[test]
    fn every_shape_of_output_fits_and_ends_with_the_ending() {
        let sizes = [
            0usize, 1, 100, 4_999, 5_000, 9_000, 9_999, 10_000, 10_001, 15_000, 40_000,
        ];
        for &o in &sizes {
            for &e in &sizes {
                for gap in [0u64, 1, 1 << 40] {
                    let head = |n: usize, c: u8| vec![c; n.min(10_240)];
                    let tail = |n: usize, c: u8| {
                        if gap > 0 {
                            vec![c; n.min(4_096)]
                        } else {
                            vec![]
                        }
                    };
                    let total = |n: usize| if gap > 0 { n as u64 + gap } else { n as u64 };
                    let st = Stream::new(head(o, b'o'), tail(o, b'p'), total(o));
                    let er = Stream::new(head(e, b'e'), tail(e, b'f'), total(e));
                    let end = Ending {
                        exit_code: 3,
                        sandbox_truncated: gap > 0,
                        ..Default::default()
                    };
                    let s = format_exec(&st, &er, &end);
                    assert!(
                        s.chars().count() <= MAX_EXEC_OUTPUT,
                        "{o} {e} {gap}: {}",
                        s.len()
                    );
                    let at = s.rfind("Exit code: 3").unwrap_or(0);
                    let after = &s[at..];
                    let noted = after.starts_with("Exit code: 3\n(output truncated: ")
                        && after.ends_with(')')
                        && after.lines().count() == 2;
                    assert!(after == "Exit code: 3" || noted, "{o} {e} {gap}: {after}");
                    if gap > 0 || o + e > MAX_EXEC_OUTPUT {
                        assert!(noted, "{o} {e} {gap}: {after}");
                    }
                }
            }
        }
    }

    /// Output that fits the cap whole, with the notes it needs, is never cut: no room is kept
    /// for notes that are not there.
    #[test]
    fn output_that_fits_is_shown_whole() {
        for n in [9_700, 9_990, MAX_EXEC_OUTPUT] {
            let out = "y".repeat(n);
            assert_eq!(format_exec(&plain(&out), &plain(""), &code(0)), out, "{n}");
        }
        // With an exit code and stderr: whole when it all fits.
        let out = "y".repeat(9_900);
        let s = format_exec(&plain(&out), &plain("e\n"), &code(1));
        assert_eq!(s, format!("{out}\nSTDERR:\ne\n\nExit code: 1"));
        // One character more than the cap: cut, with its note, within the cap.
        let out = "y".repeat(MAX_EXEC_OUTPUT + 1);
        let s = format_exec(&plain(&out), &plain(""), &code(0));
        assert!(s.chars().count() <= MAX_EXEC_OUTPUT);
        assert!(s.ends_with(" omitted)"), "{}", &s[s.len() - 100..]);
        // Invalid bytes that fit: whole, with the note.
        let mut bytes = vec![b'z'; 9_900];
        bytes.push(0xff);
        let s = format_exec(&Stream::new(bytes, vec![], 0), &plain(""), &code(0));
        assert!(
            s.ends_with("z\u{fffd}\n(1 invalid UTF-8 byte replaced with U+FFFD in stdout)"),
            "{}",
            &s[s.len() - 100..]
        );
    }

    #[test]
    fn counts_read_in_english_with_one_number_format() {
        assert_eq!(count(0, "byte"), "0 bytes");
        assert_eq!(count(1, "byte"), "1 byte");
        assert_eq!(count(190_490, "byte"), "190,490 bytes");
        assert_eq!(count_as(1, "more entry", "more entries"), "1 more entry");
        assert_eq!(
            count_as(1_000, "more entry", "more entries"),
            "1,000 more entries"
        );
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
        let end = Ending {
            timed_out: true,
            timeout_secs: 1,
            exit_code: -1,
            signal: 9,
            ..Default::default()
        };
        assert_eq!(
            format_exec(&plain(""), &plain(""), &end),
            "Error: Command timed out after 1 second"
        );
        // One byte dropped by the daemon: singular, and every count with separators.
        let st = Stream::new(vec![b'a'; 10_240], vec![b'b'; 4_096], 14_337);
        let end = Ending {
            sandbox_truncated: true,
            ..Default::default()
        };
        let s = format_exec(&st, &plain(""), &end);
        assert!(s.contains(" bytes omitted) ...\n"), "{s}");
        assert!(s.contains(" of 14,337 bytes shown, "), "{s}");
        let st = Stream::new(b"ab".to_vec(), b"c".to_vec(), 4);
        let s = format_exec(&st, &plain(""), &end);
        assert_eq!(
            s,
            "ab\n... (1 byte omitted) ...\nc\n(output truncated: stdout: 3 of 4 bytes shown, 1 \
             omitted; the sandbox's output limit (output_limit_bytes) was hit)"
        );
        let st = Stream::new(vec![b'x'; 20_000], vec![], 0);
        let s = format_exec(&st, &plain(""), &code(0));
        let marker = s.split("\n... (").nth(1).unwrap_or("");
        assert!(marker.starts_with("10,"), "{marker}");
    }

    #[test]
    fn invalid_utf8_is_replaced_and_said_so() {
        let st = Stream::new(b"a\xffb\xfe\n".to_vec(), vec![], 0);
        let s = format_exec(&st, &plain(""), &code(0));
        assert_eq!(
            s,
            "a\u{fffd}b\u{fffd}\n\n(2 invalid UTF-8 bytes replaced with U+FFFD in stdout)"
        );
        // Cutting never splits a character into replaced bytes.
        let long = "é".repeat(8_000);
        let s = format_exec(&plain(&long), &plain(""), &code(0));
        assert!(
            !s.contains('\u{fffd}') && !s.contains("invalid UTF-8"),
            "{}",
            &s[s.len() - 200..]
        );
        assert!(s.chars().count() <= MAX_EXEC_OUTPUT);
    }
}

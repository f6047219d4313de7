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

/// What the model gets back: the text, and whether it is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub text: String,
    pub is_error: bool,
}

fn ok(text: String) -> Output {
    Output {
        text,
        is_error: false,
    }
}

fn err(text: impl std::fmt::Display) -> Output {
    Output {
        text: format!("Error: {text}"),
        is_error: true,
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
            "exec" => self.exec(args).await,
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
        if r.timed_out {
            return Err(err(format!(
                "Command timed out after {} seconds",
                r.timeout_secs
            )));
        }
        Ok(ok(format_exec(
            &String::from_utf8_lossy(&out),
            &String::from_utf8_lossy(&errb),
            r.exit_code,
            r.signal,
            r.stdout_truncated || r.stderr_truncated,
        )))
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
                    "Successfully wrote {} bytes to {path}",
                    r.bytes_written
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
                    lines.push(format!(
                        "... ({} more entries not shown)",
                        r.total as usize - r.entries.len()
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

/// stdout, then a `STDERR:` section, then `Exit code: N` when it is not 0; cut at 10 000
/// characters with a note, as upstream.
pub fn format_exec(stdout: &str, stderr: &str, code: i32, signal: i32, truncated: bool) -> String {
    let mut parts = vec![];
    if !stdout.is_empty() {
        parts.push(stdout.to_string());
    }
    if !stderr.trim().is_empty() {
        parts.push(format!("STDERR:\n{stderr}"));
    }
    if signal != 0 {
        parts.push(format!("Killed by signal {signal}"));
    } else if code != 0 {
        parts.push(format!("Exit code: {code}"));
    }
    let mut s = if parts.is_empty() {
        "(no output)".to_string()
    } else {
        parts.join("\n")
    };
    if truncated {
        s.push_str("\n(output truncated by the sandbox's output limit)");
    }
    let n = s.chars().count();
    if n > MAX_EXEC_OUTPUT {
        let cut: String = s.chars().take(MAX_EXEC_OUTPUT).collect();
        s = format!("{cut}\n... (truncated, {} more chars)", n - MAX_EXEC_OUTPUT);
    }
    s
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

    #[test]
    fn exec_results_read_like_upstream() {
        assert_eq!(format_exec("", "", 0, 0, false), "(no output)");
        assert_eq!(format_exec("hi\n", "", 0, 0, false), "hi\n");
        assert_eq!(
            format_exec("a\n", "bad\n", 2, 0, false),
            "a\n\nSTDERR:\nbad\n\nExit code: 2"
        );
        let long = "x".repeat(12_000);
        let s = format_exec(&long, "", 0, 0, false);
        assert!(
            s.ends_with("... (truncated, 2000 more chars)"),
            "{}",
            &s[s.len() - 60..]
        );
    }
}

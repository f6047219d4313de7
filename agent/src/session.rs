//! Conversation history, one JSONL file per session key under ~/.nanobot/sessions/. Lines are only
//! ever appended: `/new` appends a marker, and loading keeps what follows the last one.

use crate::provider::message::{Message, ToolCall};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Session {
    pub path: PathBuf,
    pub messages: Vec<Message>,
}

/// A file name for a session key: anything but [A-Za-z0-9._-] becomes `_`.
pub fn file_name(key: &str) -> String {
    let s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.');
    format!("{}.jsonl", if s.is_empty() { "_" } else { s })
}

/// The result of the tool call that was running when the process ended mid-turn (Ctrl-C in
/// `agent -m`, SIGTERM, SIGHUP, a crash): it was saved, its result was not.
pub const INTERRUPTED_TOOL: &str =
    "Error: the turn was interrupted before this tool call finished (it was running; no result \
     was saved, so it may or may not have completed).";
/// The result of a tool call that the interrupted turn never started.
pub const INTERRUPTED_NOT_RUN: &str =
    "Error: not run: the turn was interrupted before this tool call started.";
/// The result of the exec that was running when the user pressed Ctrl-C.
pub const CANCELLED_EXEC: &str =
    "Error: cancelled by the user (Ctrl-C) while this command was running; the command was killed.";
/// The result of another tool that was running when the user pressed Ctrl-C.
pub const CANCELLED_TOOL: &str =
    "Error: cancelled by the user (Ctrl-C) while this tool call was running; no result was \
     received, so it may or may not have taken effect.";
/// The result of a tool call that the cancelled turn never started.
pub const CANCELLED_NOT_RUN: &str =
    "Error: not run: the user cancelled the turn (Ctrl-C) before this tool call started.";

/// Why a turn ended with tool calls that have no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The user pressed Ctrl-C in the interactive agent; a running exec was killed.
    CtrlC,
    /// The process ended mid-turn; we do not know how the running call ended.
    Interrupted,
}

/// What an open tool call gets as its result. The agent runs a message's tool calls one after
/// another and saves each result as it comes, so the first call without a result was the one
/// running (`running`), and the ones after it never started.
pub fn open_call_result(call: &ToolCall, running: bool, cut: Cut) -> &'static str {
    match (cut, running) {
        (Cut::CtrlC, true) if call.name == "exec" => CANCELLED_EXEC,
        (Cut::CtrlC, true) => CANCELLED_TOOL,
        (Cut::CtrlC, false) => CANCELLED_NOT_RUN,
        (Cut::Interrupted, true) => INTERRUPTED_TOOL,
        (Cut::Interrupted, false) => INTERRUPTED_NOT_RUN,
    }
}

/// Results for the calls of `calls` that `answered` lacks, in order: the first one was running
/// when the turn was cut, the others never started (see `open_call_result`).
pub fn open_call_results(calls: &[ToolCall], answered: &[&str], cut: Cut) -> Vec<Message> {
    calls
        .iter()
        .filter(|c| !answered.contains(&c.id.as_str()))
        .enumerate()
        .map(|(i, c)| Message::tool_result(c, open_call_result(c, i == 0, cut).into()))
        .collect()
}

/// Give every tool call without a result a synthetic one (`open_call_results`), placed right
/// after the results its assistant message does have, so each request is well formed (providers
/// reject an unanswered tool call). Returns how many were added.
pub fn answer_open_calls(messages: &mut Vec<Message>) -> usize {
    let mut added = 0;
    let mut i = 0;
    while i < messages.len() {
        if messages[i].role != "assistant" || messages[i].tool_calls.is_empty() {
            i += 1;
            continue;
        }
        // The results that follow this assistant message.
        let mut end = i + 1;
        while end < messages.len() && messages[end].role == "tool" {
            end += 1;
        }
        let answered: Vec<&str> = messages[i + 1..end]
            .iter()
            .filter_map(|m| m.tool_call_id.as_deref())
            .collect();
        let missing = open_call_results(&messages[i].tool_calls, &answered, Cut::Interrupted);
        let n = missing.len();
        messages.splice(end..end, missing);
        added += n;
        i = end + n;
    }
    added
}

impl Session {
    /// Load (or start) the session `key` in `dir`. Unreadable lines are skipped and counted in
    /// the returned warnings, never fatal: history is a convenience, not a contract. A tool call
    /// saved without its result (the process died mid-turn) gets `INTERRUPTED_TOOL` as result.
    pub fn load(dir: &Path, key: &str) -> std::io::Result<(Session, Vec<String>)> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let path = dir.join(file_name(key));
        let mut messages = vec![];
        let mut warnings = vec![];
        if let Ok(text) = std::fs::read_to_string(&path) {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Value>(line) {
                    Ok(v) if v.get("event").and_then(Value::as_str) == Some("new") => {
                        messages.clear()
                    }
                    Ok(v) => match serde_json::from_value::<Message>(v) {
                        Ok(m) => messages.push(m),
                        Err(e) => warnings.push(format!("{}:{}: {e}", path.display(), i + 1)),
                    },
                    Err(e) => warnings.push(format!("{}:{}: {e}", path.display(), i + 1)),
                }
            }
        }
        answer_open_calls(&mut messages);
        Ok((Session { path, messages }, warnings))
    }

    fn append_line(&self, v: &Value) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        let mut line = serde_json::to_vec(v)?;
        line.push(b'\n');
        // One write per line: O_APPEND keeps concurrent writers' lines whole.
        f.write_all(&line)
    }

    pub fn push(&mut self, m: Message) -> std::io::Result<()> {
        let mut v = serde_json::to_value(&m)?;
        v["ts"] = Value::String(crate::audit::timestamp());
        self.messages.push(m);
        self.append_line(&v)
    }

    /// Start over: the file keeps the old turns, loading ignores them.
    pub fn clear(&mut self) -> std::io::Result<()> {
        self.messages.clear();
        self.append_line(&serde_json::json!({"event": "new", "ts": crate::audit::timestamp()}))
    }

    /// The last `max` messages, cut so the window starts at a user turn (never at a tool result
    /// whose call was cut off).
    pub fn window(&self, max: usize) -> &[Message] {
        let start = self.messages.len().saturating_sub(max);
        let from = self.messages[start..]
            .iter()
            .position(|m| m.role == "user")
            .map_or(self.messages.len(), |i| start + i);
        &self.messages[from..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        // A pid recurs across runs (and containers): start from an empty directory, and make
        // the name unlikely to recur at all.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let d = std::env::temp_dir().join(format!(
            "nanobot-sess-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn appends_and_reloads_and_new_clears() {
        let d = dir();
        let (mut s, _) = Session::load(&d, "cli:default").unwrap();
        s.push(Message::text("user", "a")).unwrap();
        s.push(Message::text("assistant", "b")).unwrap();
        let (s2, w) = Session::load(&d, "cli:default").unwrap();
        assert!(w.is_empty());
        assert_eq!(s2.messages.len(), 2);
        let before = std::fs::read_to_string(&s.path).unwrap();
        s.clear().unwrap();
        s.push(Message::text("user", "c")).unwrap();
        let after = std::fs::read_to_string(&s.path).unwrap();
        assert!(after.starts_with(&before), "the file is only appended to");
        let (s3, _) = Session::load(&d, "cli:default").unwrap();
        assert_eq!(s3.messages, vec![Message::text("user", "c")]);
        assert!(s.path.ends_with("cli_default.jsonl"));
    }

    #[test]
    fn corrupt_lines_are_skipped_with_a_warning() {
        let d = dir();
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("k.jsonl"),
            "{\"role\":\"user\",\"content\":\"x\"}\nnot json\n",
        )
        .unwrap();
        let (s, w) = Session::load(&d, "k").unwrap();
        assert_eq!(s.messages.len(), 1);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn window_starts_at_a_user_turn() {
        let d = dir();
        let (mut s, _) = Session::load(&d, "w").unwrap();
        for m in [
            Message::text("user", "1"),
            Message::text("assistant", "2"),
            Message::text("tool", "3"),
            Message::text("user", "4"),
            Message::text("assistant", "5"),
        ] {
            s.push(m).unwrap();
        }
        assert_eq!(s.window(3)[0].content.as_deref(), Some("4"));
        assert_eq!(s.window(10).len(), 5);
    }

    #[test]
    fn tool_calls_without_results_are_answered_on_load() {
        use crate::provider::ToolCall;
        let call = |id: &str| ToolCall {
            id: id.into(),
            name: "exec".into(),
            arguments: "{}".into(),
        };
        let asks = |ids: &[&str]| Message {
            role: "assistant".into(),
            content: None,
            tool_calls: ids.iter().map(|i| call(i)).collect(),
            tool_call_id: None,
            name: None,
        };
        let d = dir();
        let (mut s, _) = Session::load(&d, "open").unwrap();
        // An interrupted turn in the middle, with one of three results, then one at the end.
        for m in [
            Message::text("user", "go"),
            asks(&["a", "b", "x"]),
            Message::tool_result(&call("a"), "ok".into()),
            Message::text("user", "again"),
            asks(&["c"]),
        ] {
            s.push(m).unwrap();
        }
        let (s2, w) = Session::load(&d, "open").unwrap();
        assert!(w.is_empty());
        let shape: Vec<_> = s2
            .messages
            .iter()
            .map(|m| (m.role.as_str(), m.tool_call_id.as_deref()))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("user", None),
                ("assistant", None),
                ("tool", Some("a")),
                ("tool", Some("b")),
                ("tool", Some("x")),
                ("user", None),
                ("assistant", None),
                ("tool", Some("c")),
            ]
        );
        // b was running when the turn was cut; x, after it, never started.
        assert_eq!(s2.messages[3].content.as_deref(), Some(INTERRUPTED_TOOL));
        assert_eq!(s2.messages[4].content.as_deref(), Some(INTERRUPTED_NOT_RUN));
        assert_eq!(s2.messages[7].content.as_deref(), Some(INTERRUPTED_TOOL));
        assert_eq!(s2.messages[2].content.as_deref(), Some("ok"));
        // A complete history is left alone.
        let mut full = s2.messages.clone();
        assert_eq!(answer_open_calls(&mut full), 0);
        assert_eq!(full, s2.messages);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn hostile_keys_stay_in_the_directory() {
        assert_eq!(file_name("../../etc/passwd"), "_.._etc_passwd.jsonl");
        assert_eq!(file_name(""), "_.jsonl");
    }
}

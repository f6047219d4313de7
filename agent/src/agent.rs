//! The agent loop: system prompt from the workspace (read through sandboxd), the session's
//! history, then up to `maxToolIterations` rounds of model call → tool calls → tool results.
//! A tool failure goes back to the model as text; only a provider failure ends a turn.

use crate::provider::{Message, Provider, ProviderError, ToolSpec};
use crate::session::Session;
use crate::tools::Ctx;
use nanobot_proto::pb::ReadFileRequest;
use serde_json::json;

/// Files read from the workspace into the system prompt, in this order.
pub const BOOTSTRAP_FILES: &[&str] = &["AGENTS.md", "SOUL.md", "USER.md", "TOOLS.md"];
pub const MEMORY_FILE: &str = "memory/MEMORY.md";
/// Messages of history sent with each call.
pub const HISTORY_WINDOW: usize = 50;

pub fn tool_specs() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "exec",
            description: "Execute a shell command in the workspace (confined by the kernel: no access outside the workspace, no network unless the profile allows it) and return its output.",
            parameters: json!({"type": "object", "properties": {
                "command": {"type": "string", "description": "The shell command to execute"},
                "working_dir": {"type": "string", "description": "Optional directory to run in: relative to the workspace, or an absolute path inside it (the workspace itself never changes)"}
            }, "required": ["command"]}),
        },
        ToolSpec {
            name: "read_file",
            description: "Read a text file in the workspace.",
            parameters: json!({"type": "object", "properties": {
                "path": {"type": "string", "description": "The file path to read"},
                "offset": {"type": "integer", "description": "First line to read (1-based)"},
                "limit": {"type": "integer", "description": "Number of lines to read"}
            }, "required": ["path"]}),
        },
        ToolSpec {
            name: "write_file",
            description: "Write content to a file in the workspace, creating parent directories.",
            parameters: json!({"type": "object", "properties": {
                "path": {"type": "string", "description": "The file path to write to"},
                "content": {"type": "string", "description": "The content to write"}
            }, "required": ["path", "content"]}),
        },
        ToolSpec {
            name: "edit_file",
            description: "Edit a file by replacing old_text, which must occur exactly once, with new_text.",
            parameters: json!({"type": "object", "properties": {
                "path": {"type": "string", "description": "The file path to edit"},
                "old_text": {"type": "string", "description": "The exact text to find and replace"},
                "new_text": {"type": "string", "description": "The text to replace it with"}
            }, "required": ["path", "old_text", "new_text"]}),
        },
        ToolSpec {
            name: "list_dir",
            description: "List the contents of a directory in the workspace.",
            parameters: json!({"type": "object", "properties": {
                "path": {"type": "string", "description": "The directory path to list"}
            }, "required": ["path"]}),
        },
    ]
}

pub struct Agent {
    pub provider: Provider,
    pub ctx: Ctx,
    pub max_tokens: u32,
    pub temperature: f32,
    pub max_iterations: u32,
}

/// The end of a turn: the answer, and whether the loop gave up at `maxToolIterations`.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    /// True when the rounds ran out before the model gave a final answer.
    pub gave_up: bool,
}

/// What the agent is doing, for the spinner.
pub trait Progress {
    fn update(&self, what: &str);
}

impl Progress for () {
    fn update(&self, _: &str) {}
}

impl Agent {
    async fn read_optional(&mut self, path: &str) -> Option<String> {
        let req = ReadFileRequest {
            workspace: self.ctx.workspace.to_string_lossy().into_owned(),
            path: path.into(),
            offset: 0,
            limit: 0,
        };
        match self.ctx.client.read_file(req).await {
            Ok(r) => Some(r.into_inner().content),
            Err(st) if st.code() == tonic::Code::NotFound => None,
            Err(st) => {
                tracing::warn!("reading {path} for the system prompt: {}", st.message());
                None
            }
        }
    }

    pub async fn system_prompt(&mut self) -> String {
        let ws = self.ctx.workspace.display().to_string();
        let mut s = format!(
            "# nanobot\n\nYou are nanobot, a helpful AI assistant. You can run shell commands and \
             read, write, edit and list files, all inside your workspace: {ws}. Commands run \
             confined by the kernel (sandboxd): paths outside the workspace are not reachable, so \
             do not try to work around that.\n\nCurrent time: {}\n",
            crate::audit::timestamp()
        );
        for f in BOOTSTRAP_FILES {
            if let Some(text) = self.read_optional(f).await {
                s.push_str(&format!("\n## {f}\n\n{}\n", text.trim_end()));
            }
        }
        if let Some(mem) = self.read_optional(MEMORY_FILE).await {
            if !mem.trim().is_empty() {
                s.push_str(&format!("\n## Memory\n\n{}\n", mem.trim_end()));
            }
        }
        s
    }

    /// One user message in, the final answer out. Every step is appended to the session.
    pub async fn turn(
        &mut self,
        session: &mut Session,
        text: &str,
        progress: &(dyn Progress + Sync),
    ) -> Result<Answer, ProviderError> {
        let system = self.system_prompt().await;
        keep(session, Message::text("user", text));
        let specs = tool_specs();
        for _ in 0..self.max_iterations {
            progress.update("thinking");
            let mut msgs = vec![Message::text("system", system.clone())];
            msgs.extend_from_slice(session.window(HISTORY_WINDOW));
            // Never send a tool call without its result (history written by a process that died).
            crate::session::answer_open_calls(&mut msgs);
            let reply = self
                .provider
                .chat(&msgs, &specs, self.max_tokens, self.temperature)
                .await?;
            if reply.tool_calls.is_empty() {
                let answer = reply.content.unwrap_or_default();
                keep(session, Message::text("assistant", answer.clone()));
                return Ok(Answer {
                    text: answer,
                    gave_up: false,
                });
            }
            keep(
                session,
                Message {
                    role: "assistant".into(),
                    content: reply.content.clone(),
                    tool_calls: reply.tool_calls.clone(),
                    tool_call_id: None,
                    name: None,
                },
            );
            for call in &reply.tool_calls {
                progress.update(&describe(call));
                let out = match serde_json::from_str::<serde_json::Value>(&call.arguments) {
                    Ok(args) if args.is_object() => self.ctx.call(&call.name, &args).await.text,
                    _ => format!(
                        "Error: the arguments of {} are not a JSON object: {}",
                        call.name, call.arguments
                    ),
                };
                keep(session, Message::tool_result(call, out));
            }
        }
        let answer = gave_up_text(self.max_iterations);
        keep(session, Message::text("assistant", answer.clone()));
        Ok(Answer {
            text: answer,
            gave_up: true,
        })
    }
}

/// "1 round", "3 rounds".
pub fn rounds(n: u32) -> String {
    crate::tools::count(u64::from(n), "round")
}

/// The answer when `maxToolIterations` rounds passed without a final answer.
pub fn gave_up_text(max_iterations: u32) -> String {
    format!(
        "I stopped after {} of tool calls (agents.defaults.maxToolIterations) without a final \
         answer.",
        rounds(max_iterations)
    )
}

/// What the session gets for a tool call cut short by Ctrl-C.
pub const CANCELLED_TOOL: &str = "Error: cancelled by the user (Ctrl-C); the command was killed.";
/// What the session gets as the answer of a turn cut short by Ctrl-C.
pub const CANCELLED_TURN: &str = "(The user cancelled this turn with Ctrl-C.)";

/// Close a turn that was dropped mid-way (Ctrl-C): every tool call of the last assistant message
/// that has no result gets one saying it was cancelled, and an assistant note ends the turn, so
/// the next request is well formed (each tool call answered, roles alternating).
pub fn close_cancelled(session: &mut Session) {
    let msgs = &session.messages;
    let mut missing = vec![];
    if let Some(i) = msgs
        .iter()
        .rposition(|m| m.role == "assistant" || m.role == "user")
    {
        if msgs[i].role == "assistant" {
            let answered: Vec<&str> = msgs[i + 1..]
                .iter()
                .filter_map(|m| m.tool_call_id.as_deref())
                .collect();
            missing = msgs[i]
                .tool_calls
                .iter()
                .filter(|c| !answered.contains(&c.id.as_str()))
                .cloned()
                .collect();
        }
    }
    for call in &missing {
        keep(session, Message::tool_result(call, CANCELLED_TOOL.into()));
    }
    keep(session, Message::text("assistant", CANCELLED_TURN));
}

/// Append to the session; a full disk must not lose the answer, so failure is only logged.
fn keep(session: &mut Session, m: Message) {
    if let Err(e) = session.push(m) {
        tracing::warn!("cannot append to {}: {e}", session.path.display());
    }
}

/// `exec: ls -la` — what the spinner shows while a tool runs.
pub fn describe(call: &crate::provider::ToolCall) -> String {
    let args: serde_json::Value = serde_json::from_str(&call.arguments).unwrap_or_default();
    let detail = ["command", "path"]
        .iter()
        .find_map(|k| args.get(*k).and_then(|v| v.as_str()))
        .unwrap_or("");
    let detail: String = detail.chars().take(60).collect();
    if detail.is_empty() {
        call.name.clone()
    } else {
        format!("{}: {detail}", call.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ToolCall;

    #[test]
    fn rounds_are_counted_in_english() {
        assert_eq!(rounds(1), "1 round");
        assert_eq!(rounds(2), "2 rounds");
        assert!(gave_up_text(1).contains("after 1 round of"));
    }

    #[test]
    fn a_cancelled_turn_answers_each_open_tool_call() {
        let d = std::env::temp_dir().join(format!("nanobot-cancel-{}", std::process::id()));
        let (mut s, _) = Session::load(&d, "c").unwrap();
        let call = |id: &str| ToolCall {
            id: id.into(),
            name: "exec".into(),
            arguments: "{}".into(),
        };
        s.push(Message::text("user", "go")).unwrap();
        s.push(Message {
            role: "assistant".into(),
            content: None,
            tool_calls: vec![call("a"), call("b")],
            tool_call_id: None,
            name: None,
        })
        .unwrap();
        s.push(Message::tool_result(&call("a"), "ok".into()))
            .unwrap();
        close_cancelled(&mut s);
        let tail: Vec<_> = s.messages[3..]
            .iter()
            .map(|m| (m.role.as_str(), m.tool_call_id.as_deref()))
            .collect();
        assert_eq!(tail, vec![("tool", Some("b")), ("assistant", None)]);
        // Cancelled while the model was thinking: only the note.
        s.push(Message::text("user", "again")).unwrap();
        close_cancelled(&mut s);
        assert_eq!(s.messages.len(), 7);
        assert_eq!(s.messages[6].content.as_deref(), Some(CANCELLED_TURN));
        let _ = std::fs::remove_dir_all(&d);
    }
}

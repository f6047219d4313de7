//! The agent loop: system prompt from the workspace (read through sandboxd), the session's
//! history, then up to `maxToolIterations` rounds of model call → tool calls → tool results.
//! A tool failure goes back to the model as text; only a provider failure ends a turn.

use crate::provider::{Message, Provider, ProviderError};
use crate::session::Session;
use crate::tools::Ctx;
use nanobot_proto::pb::ReadFileRequest;

/// Files read from the workspace into the system prompt, in this order.
pub const BOOTSTRAP_FILES: &[&str] = &["AGENTS.md", "SOUL.md", "USER.md", "TOOLS.md"];
pub const MEMORY_FILE: &str = "memory/MEMORY.md";
/// Messages of history sent with each call.
pub const HISTORY_WINDOW: usize = 50;

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
        let specs = crate::tools::specs();
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
                    Ok(args) if args.is_object() => {
                        crate::tools::call(&mut self.ctx, &call.name, &args)
                            .await
                            .text
                    }
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
    crate::text::count(u64::from(n), "round")
}

/// The answer when `maxToolIterations` rounds passed without a final answer.
pub fn gave_up_text(max_iterations: u32) -> String {
    format!(
        "I stopped after {} of tool calls (agents.defaults.maxToolIterations) without a final \
         answer.",
        rounds(max_iterations)
    )
}

/// What the session gets as the answer of a turn cut short by Ctrl-C.
pub const CANCELLED_TURN: &str = "(The user cancelled this turn with Ctrl-C.)";

/// What a Ctrl-C interrupted, as `close_cancelled` found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// No tool call was open: the turn was waiting for the model (or preparing its request).
    WaitingForModel,
    /// A tool call was running (`tool` names it); `not_run` more calls never started.
    Tool { tool: String, not_run: usize },
}

impl Cancelled {
    /// The line the user reads after Ctrl-C, saying exactly what happened.
    pub fn describe(&self) -> String {
        match self {
            Cancelled::WaitingForModel => {
                "Cancelled (Ctrl-C) while waiting for the model; no command was running.".into()
            }
            Cancelled::Tool { tool, not_run } => {
                let mut s = if tool == "exec" {
                    "Cancelled (Ctrl-C): the running command was killed".to_string()
                } else {
                    format!(
                        "Cancelled (Ctrl-C) while {tool} was running; it may or may not have \
                         taken effect"
                    )
                };
                if *not_run > 0 {
                    s.push_str(&format!(
                        "; {} not run",
                        crate::text::count(*not_run as u64, "more tool call")
                    ));
                }
                s.push('.');
                s
            }
        }
    }
}

/// Close a turn that was dropped mid-way (Ctrl-C): every tool call of the last assistant message
/// that has no result gets one saying what happened to it (the running one cancelled, an exec
/// killed; the ones after it not run), and an assistant note ends the turn, so the next request
/// is well formed (each tool call answered, roles alternating). Returns what was interrupted.
pub fn close_cancelled(session: &mut Session) -> Cancelled {
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
            missing = crate::session::open_call_results(
                &msgs[i].tool_calls,
                &answered,
                crate::session::Cut::CtrlC,
            );
        }
    }
    let what = match missing.first() {
        None => Cancelled::WaitingForModel,
        Some(m) => Cancelled::Tool {
            tool: m.name.clone().unwrap_or_default(),
            not_run: missing.len() - 1,
        },
    };
    for m in missing {
        keep(session, m);
    }
    keep(session, Message::text("assistant", CANCELLED_TURN));
    what
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
        assert_eq!(
            close_cancelled(&mut s),
            Cancelled::Tool {
                tool: "exec".into(),
                not_run: 0
            }
        );
        let tail: Vec<_> = s.messages[3..]
            .iter()
            .map(|m| (m.role.as_str(), m.tool_call_id.as_deref()))
            .collect();
        assert_eq!(tail, vec![("tool", Some("b")), ("assistant", None)]);
        assert_eq!(
            s.messages[3].content.as_deref(),
            Some(crate::session::CANCELLED_EXEC)
        );
        // Cancelled while the model was thinking: only the note, and no command was killed.
        s.push(Message::text("user", "again")).unwrap();
        let what = close_cancelled(&mut s);
        assert_eq!(what, Cancelled::WaitingForModel);
        assert!(what.describe().contains("while waiting for the model"));
        assert!(!what.describe().contains("killed"), "{}", what.describe());
        assert_eq!(s.messages.len(), 7);
        assert_eq!(s.messages[6].content.as_deref(), Some(CANCELLED_TURN));
        // Three calls, Ctrl-C during the first: it was killed, the other two never ran.
        s.push(Message::text("user", "three")).unwrap();
        s.push(Message {
            role: "assistant".into(),
            content: None,
            tool_calls: vec![call("c"), call("d"), call("e")],
            tool_call_id: None,
            name: None,
        })
        .unwrap();
        let what = close_cancelled(&mut s);
        assert_eq!(
            what,
            Cancelled::Tool {
                tool: "exec".into(),
                not_run: 2
            }
        );
        assert_eq!(
            what.describe(),
            "Cancelled (Ctrl-C): the running command was killed; 2 more tool calls not run."
        );
        let results: Vec<_> = s.messages[9..12]
            .iter()
            .map(|m| (m.tool_call_id.as_deref(), m.content.as_deref()))
            .collect();
        assert_eq!(
            results,
            vec![
                (Some("c"), Some(crate::session::CANCELLED_EXEC)),
                (Some("d"), Some(crate::session::CANCELLED_NOT_RUN)),
                (Some("e"), Some(crate::session::CANCELLED_NOT_RUN)),
            ]
        );
        // Another tool running: not said to be killed.
        let t = Cancelled::Tool {
            tool: "write_file".into(),
            not_run: 1,
        };
        assert_eq!(
            t.describe(),
            "Cancelled (Ctrl-C) while write_file was running; it may or may not have taken \
             effect; 1 more tool call not run."
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}

//! What a chat with a model is made of, whichever provider serves it: messages (the shape the
//! sessions store), tool calls, the tools offered, and a reply.

use serde::{Deserialize, Serialize};

/// One message of a conversation, in the shape the sessions store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    pub fn text(role: &str, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: Some(content.into()),
            tool_calls: vec![],
            tool_call_id: None,
            name: None,
        }
    }
    pub fn tool_result(call: &ToolCall, content: String) -> Message {
        Message {
            role: "tool".into(),
            content: Some(content),
            tool_calls: vec![],
            tool_call_id: Some(call.id.clone()),
            name: Some(call.name.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as the model wrote them (JSON text, possibly invalid).
    pub arguments: String,
}

/// A tool as offered to the model.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub parameters: serde_json::Value,
}

/// What one model call answered.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
}

/// A tool list for the request tests (the real one, `crate::tools::specs`, depends on this
/// module).
#[cfg(test)]
pub(crate) fn sample_specs() -> Vec<ToolSpec> {
    vec![ToolSpec {
        name: "exec",
        description: "Execute a shell command in the workspace and return its output.",
        parameters: serde_json::json!({"type": "object", "properties": {
            "command": {"type": "string", "description": "The shell command to execute"}
        }, "required": ["command"]}),
    }]
}

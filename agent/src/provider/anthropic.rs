//! Anthropic Messages API wire format: the system prompt apart, tool calls as `tool_use` blocks,
//! tool results as `tool_result` blocks in a user turn.

use crate::provider::message::{Message, Reply, ToolCall, ToolSpec};
use serde_json::{json, Value};

pub fn request(
    model: &str,
    messages: &[Message],
    tools: &[ToolSpec],
    max_tokens: u32,
    temperature: f32,
) -> Value {
    let system: Vec<&str> = messages
        .iter()
        .filter(|m| m.role == "system")
        .filter_map(|m| m.content.as_deref())
        .collect();
    let mut out: Vec<Value> = vec![];
    for m in messages.iter().filter(|m| m.role != "system") {
        let (role, blocks) = match m.role.as_str() {
            "assistant" => {
                let mut b = vec![];
                if let Some(t) = m.content.as_deref().filter(|t| !t.is_empty()) {
                    b.push(json!({"type": "text", "text": t}));
                }
                for c in &m.tool_calls {
                    let input: Value =
                        serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
                    b.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
                }
                ("assistant", b)
            }
            "tool" => (
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id,
                    "content": m.content.clone().unwrap_or_default(),
                })],
            ),
            _ => (
                "user",
                vec![json!({"type": "text", "text": m.content.clone().unwrap_or_default()})],
            ),
        };
        // Consecutive turns of one role are merged: the API wants them alternating.
        match out.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(a) = last["content"].as_array_mut() {
                    a.extend(blocks);
                }
            }
            _ => out.push(json!({"role": role, "content": blocks})),
        }
    }
    let mut body = json!({
        "model": model,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "messages": out,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if !tools.is_empty() {
        body["tools"] = tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
    }
    body
}

pub fn reply(v: &Value) -> Result<Reply, String> {
    if v.get("type").and_then(Value::as_str) == Some("error") {
        return Err(format!("error in response: {}", v["error"]));
    }
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| "no content array in the response".to_string())?;
    let mut text = String::new();
    let mut tool_calls = vec![];
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: b
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .into(),
                name: b
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or("tool_use block without a name")?
                    .into(),
                arguments: b.get("input").cloned().unwrap_or(json!({})).to_string(),
            }),
            _ => {}
        }
    }
    Ok(Reply {
        content: (!text.is_empty()).then_some(text),
        tool_calls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_results_become_user_blocks_and_merge() {
        let c1 = ToolCall {
            id: "t1".into(),
            name: "exec".into(),
            arguments: "{\"command\":\"ls\"}".into(),
        };
        let c2 = ToolCall {
            id: "t2".into(),
            name: "list_dir".into(),
            arguments: "{\"path\":\".\"}".into(),
        };
        let msgs = vec![
            Message::text("system", "be brief"),
            Message::text("user", "hi"),
            Message {
                role: "assistant".into(),
                content: Some("looking".into()),
                tool_calls: vec![c1.clone(), c2.clone()],
                tool_call_id: None,
                name: None,
            },
            Message::tool_result(&c1, "a".into()),
            Message::tool_result(&c2, "b".into()),
        ];
        let body = request(
            "claude",
            &msgs,
            &crate::provider::message::sample_specs(),
            100,
            0.2,
        );
        assert_eq!(body["system"], "be brief");
        let m = body["messages"].as_array().unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[1]["content"][1]["type"], "tool_use");
        assert_eq!(m[1]["content"][1]["input"]["command"], "ls");
        assert_eq!(m[2]["role"], "user");
        assert_eq!(m[2]["content"][1]["tool_use_id"], "t2");
        assert!(body["tools"][0]["input_schema"].is_object());
        let r = reply(&json!({"content": [
            {"type": "text", "text": "ok"},
            {"type": "tool_use", "id": "u", "name": "read_file", "input": {"path": "x"}}
        ]}))
        .unwrap();
        assert_eq!(r.content.as_deref(), Some("ok"));
        assert_eq!(r.tool_calls[0].arguments, "{\"path\":\"x\"}");
    }
}

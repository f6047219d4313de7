//! OpenAI Chat Completions wire format (also OpenRouter, DeepSeek, Groq, Gemini, vLLM, Ollama).

use crate::provider::message::{Message, Reply, ToolCall, ToolSpec};
use serde_json::{json, Value};

pub fn request(
    model: &str,
    messages: &[Message],
    tools: &[ToolSpec],
    max_tokens: u32,
    temperature: f32,
) -> Value {
    let msgs: Vec<Value> = messages.iter().map(message).collect();
    let mut body = json!({
        "model": model,
        "messages": msgs,
        "max_tokens": max_tokens,
        "temperature": temperature,
    });
    if !tools.is_empty() {
        body["tools"] = tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters}})
            })
            .collect();
        body["tool_choice"] = json!("auto");
    }
    body
}

fn message(m: &Message) -> Value {
    let mut v = json!({"role": m.role, "content": m.content});
    if !m.tool_calls.is_empty() {
        v["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| {
                json!({"id": c.id, "type": "function",
                       "function": {"name": c.name, "arguments": c.arguments}})
            })
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = json!(id);
    }
    if let (Some(n), "tool") = (&m.name, m.role.as_str()) {
        v["name"] = json!(n);
    }
    v
}

pub fn reply(v: &Value) -> Result<Reply, String> {
    if let Some(e) = v.get("error") {
        return Err(format!("error in response: {e}"));
    }
    let msg = v
        .pointer("/choices/0/message")
        .ok_or_else(|| format!("no choices[0].message in {}", short(v)))?;
    let content = msg
        .get("content")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from);
    let mut tool_calls = vec![];
    for (i, c) in msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let f = c.get("function").unwrap_or(&Value::Null);
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("tool call {i} has no function name"))?;
        // Some servers send the arguments as an object rather than a string.
        let arguments = match f.get("arguments") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => "{}".into(),
        };
        let id = c
            .get("id")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| format!("call_{i}"));
        tool_calls.push(ToolCall {
            id,
            name: name.into(),
            arguments,
        });
    }
    Ok(Reply {
        content,
        tool_calls,
    })
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    s.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_of_a_tool_call() {
        let call = ToolCall {
            id: "c1".into(),
            name: "exec".into(),
            arguments: "{\"command\":\"ls\"}".into(),
        };
        let msgs = vec![
            Message::text("system", "s"),
            Message::text("user", "u"),
            Message {
                role: "assistant".into(),
                content: None,
                tool_calls: vec![call.clone()],
                tool_call_id: None,
                name: None,
            },
            Message::tool_result(&call, "out".into()),
        ];
        let tools = crate::provider::message::sample_specs();
        let body = request("m", &msgs, &tools, 10, 0.5);
        assert_eq!(
            body["messages"][2]["tool_calls"][0]["function"]["name"],
            "exec"
        );
        assert_eq!(body["messages"][3]["tool_call_id"], "c1");
        assert_eq!(body["tools"][0]["type"], "function");
        let r = reply(&json!({"choices": [{"message": {"content": null, "tool_calls": [
            {"id": "x", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"a\"}"}}
        ]}}]}))
        .unwrap();
        assert_eq!(r.tool_calls[0].name, "read_file");
        assert_eq!(r.tool_calls[0].arguments, "{\"path\":\"a\"}");
        assert!(r.content.is_none());
        assert!(reply(&json!({"error": {"message": "x"}})).is_err());
    }
}

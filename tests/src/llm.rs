//! A scripted LLM server on 127.0.0.1 for agent tests: each request gets the next scripted
//! response (OpenAI or Anthropic JSON, or an error status), and every request is recorded.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Scripted {
    /// Time the "model" takes before answering.
    pub delay_ms: u64,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

pub fn ok(body: Value) -> Scripted {
    Scripted {
        delay_ms: 0,
        status: 200,
        headers: vec![],
        body: body.to_string(),
    }
}

pub fn status(code: u16, headers: &[(&str, &str)], body: &str) -> Scripted {
    Scripted {
        delay_ms: 0,
        status: code,
        headers: headers
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        body: body.into(),
    }
}

/// An OpenAI chat completion that calls tools: (name, arguments).
pub fn openai_tools(calls: &[(&str, Value)]) -> Scripted {
    let tc: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, (n, a))| {
            json!({"id": format!("call_{i}_{n}"), "type": "function",
                   "function": {"name": n, "arguments": a.to_string()}})
        })
        .collect();
    ok(
        json!({"id": "x", "object": "chat.completion", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": null, "tool_calls": tc},
        "finish_reason": "tool_calls"}]}),
    )
}

pub fn openai_text(text: &str) -> Scripted {
    ok(
        json!({"id": "x", "object": "chat.completion", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}),
    )
}

pub fn anthropic_tools(calls: &[(&str, Value)]) -> Scripted {
    let blocks: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, (n, a))| json!({"type": "tool_use", "id": format!("toolu_{i}"), "name": n, "input": a}))
        .collect();
    ok(
        json!({"id": "msg", "type": "message", "role": "assistant", "content": blocks,
              "stop_reason": "tool_use"}),
    )
}

pub fn anthropic_text(text: &str) -> Scripted {
    ok(json!({"id": "msg", "type": "message", "role": "assistant",
              "content": [{"type": "text", "text": text}], "stop_reason": "end_turn"}))
}

pub struct Server {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Server {
    pub fn start(script: Vec<Scripted>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let requests = Arc::new(Mutex::new(vec![]));
        let rec = requests.clone();
        let script = Arc::new(Mutex::new(std::collections::VecDeque::from(script)));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let Some(r) = read_request(&mut conn) else {
                    continue;
                };
                rec.lock().unwrap().push(r);
                let resp = script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or_else(|| status(500, &[], "{\"error\": \"script exhausted\"}"));
                std::thread::sleep(std::time::Duration::from_millis(resp.delay_ms));
                let mut head = format!(
                    "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                    resp.status,
                    resp.body.len()
                );
                for (k, v) in &resp.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(resp.body.as_bytes());
            }
        });
        Server { port, requests }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn read_request(conn: &mut std::net::TcpStream) -> Option<Recorded> {
    let mut r = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = vec![];
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some(Recorded {
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}

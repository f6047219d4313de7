//! Telegram channel: long-polls getUpdates, answers allowed senders through the agent, one
//! session per chat (`telegram:CHAT_ID`). `channels.telegram.apiBase` points elsewhere (a test
//! server, a Bot API proxy); the default is https://api.telegram.org.

use crate::channels::status::Reporter;
use crate::channels::{allowed, deny, split_text, Inbox};
use crate::config::ChannelConfig;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Telegram's message size limit, in characters.
const MAX_TEXT: usize = 4096;

/// What the config lacks for this channel.
pub fn problems(c: &ChannelConfig) -> Vec<String> {
    if c.extra
        .get("token")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        vec!["channels.telegram.token is not set".into()]
    } else {
        vec![]
    }
}

pub async fn run<I: Inbox>(c: ChannelConfig, inbox: Arc<I>, report: Reporter) -> Result<()> {
    let token = c
        .extra
        .get("token")
        .and_then(Value::as_str)
        .context("channels.telegram.token is not set")?
        .to_string();
    let base = c
        .extra
        .get("apiBase")
        .and_then(Value::as_str)
        .unwrap_or("https://api.telegram.org")
        .trim_end_matches('/')
        .to_string();
    let poll = c
        .extra
        .get("pollTimeout")
        .and_then(Value::as_u64)
        .unwrap_or(30);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(poll + 15))
        .build()
        .context("building the HTTP client")?;
    let url = |method: &str| format!("{base}/bot{token}/{method}");
    let mut offset: i64 = 0;
    let mut backoff = Duration::from_secs(1);
    loop {
        let r = http
            .post(url("getUpdates"))
            .json(&json!({"offset": offset, "timeout": poll, "allowed_updates": ["message"]}))
            .send()
            .await;
        let body: Value = match r {
            Ok(resp) if resp.status().is_success() => resp.json().await.unwrap_or(Value::Null),
            Ok(resp) if resp.status().as_u16() == 401 || resp.status().as_u16() == 404 => {
                anyhow::bail!(
                    "telegram rejected the bot token (HTTP {}): check channels.telegram.token",
                    resp.status().as_u16()
                )
            }
            Ok(resp) => {
                tracing::warn!("telegram getUpdates: HTTP {}", resp.status());
                report.error(&format!("getUpdates: HTTP {}", resp.status()));
                Value::Null
            }
            Err(e) => {
                tracing::warn!("telegram getUpdates: {e}");
                report.error(&format!("getUpdates: {e}"));
                Value::Null
            }
        };
        let Some(updates) = body.get("result").and_then(Value::as_array) else {
            report.connected(false);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
            continue;
        };
        backoff = Duration::from_secs(1);
        report.connected(true);
        for u in updates {
            if let Some(id) = u.get("update_id").and_then(Value::as_i64) {
                offset = offset.max(id + 1);
            }
            let Some(m) = u.get("message") else { continue };
            let Some(text) = m.get("text").and_then(Value::as_str) else {
                continue;
            };
            let chat = m.pointer("/chat/id").and_then(Value::as_i64).unwrap_or(0);
            let from = m.get("from").cloned().unwrap_or(Value::Null);
            let mut ids = vec![];
            if let Some(i) = from.get("id").and_then(Value::as_i64) {
                ids.push(i.to_string());
            }
            if let Some(n) = from.get("username").and_then(Value::as_str) {
                ids.push(n.to_string());
            }
            if !allowed(&c, &ids) {
                deny(
                    inbox.log(),
                    "telegram",
                    &format!("{ids:?}"),
                    "not in channels.telegram.allowFrom",
                );
                continue;
            }
            let reply = inbox.handle(&format!("telegram:{chat}"), text).await;
            for part in split_text(&reply, MAX_TEXT) {
                let r = http
                    .post(url("sendMessage"))
                    .json(&json!({"chat_id": chat, "text": part}))
                    .send()
                    .await;
                if let Err(e) = r {
                    tracing::warn!("telegram sendMessage: {e}");
                }
            }
        }
    }
}

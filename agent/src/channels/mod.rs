//! Chat channels: which exist, what each needs in the config, who may talk through them, and
//! `Inbox`, what a channel needs from the agent behind it (`nanobot gateway` provides it). Every
//! enabled channel must name who may talk to the agent: an empty `allowFrom` refuses to start
//! (the Python version lets everyone in); `["*"]` says "everyone" explicitly.

pub mod status;
pub mod telegram;
pub mod whatsapp;

use crate::audit::AuditLog;
use crate::config::{ChannelConfig, Config};
use anyhow::{bail, Result};
use std::future::Future;

/// The agent behind the channels, as a channel sees it.
pub trait Inbox: Send + Sync + 'static {
    /// One message in (`session_key` names the conversation), the reply out; failures come back
    /// as a short apology the user sees.
    fn handle(&self, session_key: &str, text: &str) -> impl Future<Output = String> + Send;
    /// Where a channel logs what operators grep for (`Access denied`).
    fn log(&self) -> &AuditLog;
}

pub const CHANNELS: &[&str] = &["telegram", "whatsapp"];

/// What an enabled channel still lacks in the config, each problem naming its key. A new channel
/// adds one arm here (and one in `nanobot gateway`'s dispatch).
pub fn channel_problems(name: &str, c: &ChannelConfig) -> Vec<String> {
    match name {
        "telegram" => telegram::problems(c),
        "whatsapp" => whatsapp::problems(c),
        _ => vec![],
    }
}

/// What an enabled channel's settings risk without being wrong (printed, never fatal).
pub fn channel_warnings(name: &str, c: &ChannelConfig) -> Vec<String> {
    match name {
        "whatsapp" => whatsapp::warnings(c),
        _ => vec![],
    }
}

/// The one log line every channel writes for a refused sender, in the words operators grep for.
pub fn deny(log: &AuditLog, channel: &str, sender: &str, why: &str) {
    log.line(
        "WARN",
        &format!("Access denied for sender {sender} on channel {channel}: {why}"),
    );
}

/// A reply cut on character boundaries into pieces of at most `max` characters.
pub fn split_text(s: &str, max: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    chars.chunks(max).map(|c| c.iter().collect()).collect()
}

/// Check every enabled channel before anything starts; all problems at once.
pub fn check_channels(cfg: &Config) -> Result<Vec<(String, ChannelConfig)>> {
    let mut problems = vec![];
    let mut enabled = vec![];
    for (name, c) in cfg.channels.iter().filter(|(_, c)| c.enabled) {
        if !CHANNELS.contains(&name.as_str()) {
            problems.push(format!(
                "channels.{name}: this version supports {}; disable it or remove it",
                CHANNELS.join(", ")
            ));
            continue;
        }
        if c.allow_from.is_empty() {
            problems.push(format!(
                "channels.{name}.allowFrom is empty: list the user ids allowed to talk to the agent (or [\"*\"] for everyone, which the security guide advises against)"
            ));
        }
        problems.extend(channel_problems(name, c));
        enabled.push((name.clone(), c.clone()));
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    if enabled.is_empty() {
        bail!(
            "no channel is enabled: set channels.<name>.enabled = true (supported: {})",
            CHANNELS.join(", ")
        );
    }
    Ok(enabled)
}

/// Whether `sender` (id or username) may talk to the agent on this channel.
pub fn allowed(c: &ChannelConfig, ids: &[String]) -> bool {
    c.allow_from
        .iter()
        .any(|a| a == "*" || ids.iter().any(|i| i == a || format!("@{i}") == *a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chan(allow: &[&str]) -> ChannelConfig {
        ChannelConfig {
            enabled: true,
            allow_from: allow.iter().map(|s| s.to_string()).collect(),
            extra: [("token".to_string(), serde_json::json!("t"))].into(),
        }
    }

    #[test]
    fn empty_allow_from_refuses_to_start() {
        let mut c = Config::default();
        c.channels.insert("telegram".into(), chan(&[]));
        let e = check_channels(&c).unwrap_err().to_string();
        assert!(e.contains("channels.telegram.allowFrom is empty"), "{e}");
        c.channels.insert("telegram".into(), chan(&["42"]));
        assert_eq!(check_channels(&c).unwrap().len(), 1);
        c.channels.insert("irc".into(), chan(&["x"]));
        assert!(check_channels(&c)
            .unwrap_err()
            .to_string()
            .contains("channels.irc"));
    }

    #[test]
    fn long_replies_are_split_on_characters() {
        let s = "é".repeat(5000);
        let c = split_text(&s, 4096);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].chars().count(), 4096);
    }

    #[test]
    fn allow_from_matches_ids_and_usernames() {
        let c = chan(&["42", "@alice"]);
        assert!(allowed(&c, &["42".into()]));
        assert!(allowed(&c, &["7".into(), "alice".into()]));
        assert!(!allowed(&c, &["7".into(), "mallory".into()]));
        assert!(allowed(&chan(&["*"]), &["anyone".into()]));
    }
}

//! Chat channels: what they share — `Inbox`, what a channel needs from the agent behind it
//! (`nanobot gateway` provides it), who may talk through them, the refusal log line, reply
//! splitting. Which channels exist and what each needs in the config: `registry`.

pub mod email;
pub mod registry;
pub mod status;
pub mod telegram;
pub mod whatsapp;

use crate::audit::AuditLog;
use crate::config::ChannelConfig;
use std::future::Future;

/// The agent behind the channels, as a channel sees it.
pub trait Inbox: Send + Sync + 'static {
    /// One message in (`session_key` names the conversation), the reply out; failures come back
    /// as a short apology the user sees.
    fn handle(&self, session_key: &str, text: &str) -> impl Future<Output = String> + Send;
    /// Where a channel logs what operators grep for (`Access denied`).
    fn log(&self) -> &AuditLog;
}

/// The one log line every channel writes for a refused sender, in the words operators grep for.
/// The sender is as the peer gave it (a whole From header, a bridge's JID), so it is cut: a
/// refused sender must not be able to rotate the audit log's history away with one long line.
pub fn deny(log: &AuditLog, channel: &str, sender: &str, why: &str) {
    log.line(
        "WARN",
        &format!(
            "Access denied for sender {} on channel {channel}: {why}",
            shown(sender)
        ),
    );
}

/// At most this many characters of a text a peer chose go into a log line or the status file.
pub const MAX_SHOWN_CHARS: usize = 300;

/// `s` for a log line: control characters as spaces, cut at `MAX_SHOWN_CHARS`.
pub fn shown(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_SHOWN_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().nth(MAX_SHOWN_CHARS).is_some() {
        out.push_str("… (cut)");
    }
    out
}

/// A reply cut on character boundaries into pieces of at most `max` characters.
pub fn split_text(s: &str, max: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    chars.chunks(max).map(|c| c.iter().collect()).collect()
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
    fn refusal_lines_are_bounded_whatever_the_sender_sends() {
        let dir = std::env::temp_dir().join(format!("nanobot-deny-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let log = AuditLog::new(dir.join("nanobot.log"));
        let huge = format!("a@b.test,\r\n {}", "x".repeat(10 << 20));
        deny(
            &log,
            "email",
            &huge,
            "From does not hold exactly one address",
        );
        let text = std::fs::read_to_string(dir.join("nanobot.log")).unwrap();
        assert!(text.len() < 1000, "{} bytes logged", text.len());
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("Access denied for sender a@b.test,"),
            "{text}"
        );
        assert!(text.contains("(cut) on channel email"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
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

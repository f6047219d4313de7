//! `channels.email`: the guide's keys, their defaults, and every check that can be made before a
//! connection is opened. All problems are reported at once, each naming its key.

use crate::config::ChannelConfig;
use serde::Deserialize;
use std::time::Duration;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// TLS from the first byte (`smtpUseSsl`, port 465).
    Implicit,
    /// STARTTLS, required (`smtpUseTls`, port 587).
    StartTls,
    /// No TLS: only to a server on this machine.
    Plain,
}

#[derive(Debug, Clone)]
pub struct Imap {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub mailbox: String,
    /// Implicit TLS; without it STARTTLS is used, and plain text only to a loopback server.
    pub use_ssl: bool,
}

#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    /// Both set or both empty (no AUTH).
    pub username: String,
    pub password: String,
    pub security: SmtpSecurity,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub imap: Imap,
    /// None when `autoReplyEnabled` is false: nothing is ever sent.
    pub smtp: Option<Smtp>,
    pub from_address: String,
    pub poll_interval: Duration,
    pub mark_seen: bool,
    pub max_body_chars: usize,
    pub subject_prefix: String,
    pub allow_from: Vec<String>,
    /// The authserv-id whose `Authentication-Results` must vouch for the From domain, when
    /// `requireAuthenticationResults` is set.
    pub authserv_id: Option<String>,
}

/// The keys as written in config.json (`enabled` and `allowFrom` are read by `ChannelConfig`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    consent_granted: bool,
    #[serde(default)]
    imap_host: String,
    imap_port: Option<u16>,
    #[serde(default)]
    imap_username: String,
    #[serde(default)]
    imap_password: String,
    imap_mailbox: Option<String>,
    imap_use_ssl: Option<bool>,
    #[serde(default)]
    smtp_host: String,
    smtp_port: Option<u16>,
    #[serde(default)]
    smtp_username: String,
    #[serde(default)]
    smtp_password: String,
    smtp_use_tls: Option<bool>,
    smtp_use_ssl: Option<bool>,
    #[serde(default)]
    from_address: String,
    auto_reply_enabled: Option<bool>,
    poll_interval_seconds: Option<u64>,
    mark_seen: Option<bool>,
    max_body_chars: Option<u64>,
    subject_prefix: Option<String>,
    #[serde(default)]
    require_authentication_results: bool,
    #[serde(default)]
    authserv_id: String,
}

pub const DEFAULT_POLL_SECONDS: u64 = 30;
pub const DEFAULT_MAX_BODY_CHARS: u64 = 12_000;
const MAX_POLL_SECONDS: u64 = 86_400;
const MAX_BODY_CHARS_LIMIT: u64 = 1_000_000;

/// The settings, or every problem found (each a line naming its key).
pub fn parse(c: &ChannelConfig) -> Result<Settings, Vec<String>> {
    let obj = serde_json::Value::Object(c.extra.clone().into_iter().collect());
    let raw: Raw = match serde_path_to_error::deserialize(obj) {
        Ok(r) => r,
        Err(e) => {
            let key = e.path().to_string();
            let msg = e.inner().to_string();
            return Err(vec![if key == "." {
                format!("channels.email: {msg}")
            } else {
                format!("channels.email.{key}: {msg}")
            }]);
        }
    };
    let mut problems = vec![];
    if !raw.consent_granted {
        problems.push(
            "channels.email.consentGranted is not true: the mailbox owner must agree that the agent reads this mailbox and answers from it; until it is set nothing is read or sent"
                .to_string(),
        );
    }
    let mut need = |key: &str, v: &str| {
        if v.trim().is_empty() {
            problems.push(format!("channels.email.{key} is not set"));
        }
    };
    need("imapHost", &raw.imap_host);
    need("imapUsername", &raw.imap_username);
    need("imapPassword", &raw.imap_password);
    let auto_reply = raw.auto_reply_enabled.unwrap_or(true);
    let use_ssl = raw.smtp_use_ssl.unwrap_or(false);
    let use_tls = raw.smtp_use_tls.unwrap_or(!use_ssl);
    let security = match (use_ssl, use_tls) {
        (true, true) => {
            problems.push("channels.email: smtpUseSsl (TLS from the start, port 465) and smtpUseTls (STARTTLS, port 587) are both true; choose one".into());
            SmtpSecurity::Implicit
        }
        (true, false) => SmtpSecurity::Implicit,
        (false, true) => SmtpSecurity::StartTls,
        (false, false) => SmtpSecurity::Plain,
    };
    let from_address = if raw.from_address.trim().is_empty() && raw.smtp_username.contains('@') {
        raw.smtp_username.trim().to_string()
    } else {
        raw.from_address.trim().to_string()
    };
    let smtp = if auto_reply {
        if raw.smtp_host.trim().is_empty() {
            problems.push("channels.email.smtpHost is not set (needed to answer; set autoReplyEnabled to false to only read)".into());
        }
        if raw.smtp_username.is_empty() != raw.smtp_password.is_empty() {
            problems.push(
                "channels.email: set both smtpUsername and smtpPassword, or neither (no SMTP AUTH)"
                    .into(),
            );
        }
        if security == SmtpSecurity::Plain && !is_loopback(&raw.smtp_host) {
            problems.push(format!(
                "channels.email: smtpUseTls and smtpUseSsl are both false, so the password and every reply would cross the network to {} in clear; plain SMTP is allowed only to a server on this machine (127.0.0.1, ::1, localhost)",
                raw.smtp_host
            ));
        }
        if !is_address(&from_address) {
            problems.push(format!(
                "channels.email.fromAddress {from_address:?} is not an email address (it is the From of every reply)"
            ));
        }
        Some(Smtp {
            host: raw.smtp_host.trim().to_string(),
            port: raw.smtp_port.unwrap_or(match security {
                SmtpSecurity::Implicit => 465,
                SmtpSecurity::StartTls => 587,
                SmtpSecurity::Plain => 25,
            }),
            username: raw.smtp_username.clone(),
            password: raw.smtp_password.clone(),
            security,
        })
    } else {
        None
    };
    for (key, port) in [("imapPort", raw.imap_port), ("smtpPort", raw.smtp_port)] {
        if port == Some(0) {
            problems.push(format!("channels.email.{key}: 0 is not a port"));
        }
    }
    let poll = raw.poll_interval_seconds.unwrap_or(DEFAULT_POLL_SECONDS);
    if !(1..=MAX_POLL_SECONDS).contains(&poll) {
        problems.push(format!(
            "channels.email.pollIntervalSeconds: {poll} is out of range: allowed are 1 to {MAX_POLL_SECONDS}"
        ));
    }
    let max_body = raw.max_body_chars.unwrap_or(DEFAULT_MAX_BODY_CHARS);
    if !(1..=MAX_BODY_CHARS_LIMIT).contains(&max_body) {
        problems.push(format!(
            "channels.email.maxBodyChars: {max_body} is out of range: allowed are 1 to {MAX_BODY_CHARS_LIMIT}"
        ));
    }
    let mailbox = raw.imap_mailbox.unwrap_or_else(|| "INBOX".into());
    if mailbox.is_empty() || mailbox.chars().any(|c| c.is_control()) {
        problems.push(format!(
            "channels.email.imapMailbox {mailbox:?} is not a mailbox name"
        ));
    }
    let mut allow_from = vec![];
    for a in &c.allow_from {
        let a = a.trim();
        if a == "*" || is_address(a) {
            allow_from.push(a.to_ascii_lowercase());
        } else {
            problems.push(format!(
                "channels.email.allowFrom: {a:?} is not an email address (allowFrom matches the sender's address, never a display name)"
            ));
        }
    }
    let authserv_id = if raw.require_authentication_results {
        if raw.authserv_id.trim().is_empty() {
            problems.push("channels.email.authservId is not set: requireAuthenticationResults trusts only the Authentication-Results header your receiving server adds, named by its authserv-id (e.g. \"mx.example.com\")".into());
        }
        Some(raw.authserv_id.trim().to_ascii_lowercase())
    } else {
        None
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Settings {
        imap: Imap {
            host: raw.imap_host.trim().to_string(),
            port: raw
                .imap_port
                .unwrap_or(if raw.imap_use_ssl.unwrap_or(true) {
                    993
                } else {
                    143
                }),
            username: raw.imap_username,
            password: raw.imap_password,
            mailbox,
            use_ssl: raw.imap_use_ssl.unwrap_or(true),
        },
        smtp,
        from_address,
        poll_interval: Duration::from_secs(poll),
        mark_seen: raw.mark_seen.unwrap_or(true),
        max_body_chars: usize::try_from(max_body).unwrap_or(usize::MAX),
        subject_prefix: raw.subject_prefix.unwrap_or_else(|| "Re: ".into()),
        allow_from,
        authserv_id,
    })
}

/// `local@domain` with no spaces or angle brackets: the bare address, not a display form.
pub fn is_address(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>\",;".contains(c))
}

/// A host on this machine, where plain text crosses no network.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chan(extra: serde_json::Value, allow: &[&str]) -> ChannelConfig {
        ChannelConfig {
            enabled: true,
            allow_from: allow.iter().map(|s| s.to_string()).collect(),
            extra: extra
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    fn good() -> serde_json::Value {
        json!({"consentGranted": true, "imapHost": "imap.example.com", "imapUsername": "bot",
               "imapPassword": "pw", "smtpHost": "smtp.example.com", "smtpUsername": "bot@example.com",
               "smtpPassword": "pw"})
    }

    #[test]
    fn defaults_follow_the_guide() {
        let s = parse(&chan(good(), &["Alice@Example.com"])).unwrap();
        assert_eq!(s.imap.port, 993);
        assert!(s.imap.use_ssl);
        assert_eq!(s.imap.mailbox, "INBOX");
        let smtp = s.smtp.unwrap();
        assert_eq!((smtp.port, smtp.security), (587, SmtpSecurity::StartTls));
        assert_eq!(s.from_address, "bot@example.com");
        assert_eq!(s.poll_interval, Duration::from_secs(30));
        assert!(s.mark_seen);
        assert_eq!(s.max_body_chars, 12_000);
        assert_eq!(s.subject_prefix, "Re: ");
        assert_eq!(s.allow_from, vec!["alice@example.com"]);
        assert!(s.authserv_id.is_none());
    }

    #[test]
    fn every_problem_names_its_key() {
        let e = parse(&chan(
            json!({"imapPort": 0, "smtpUseSsl": true, "smtpUseTls": true,
                                   "pollIntervalSeconds": 0, "maxBodyChars": 0,
                                   "requireAuthenticationResults": true}),
            &["Alice <alice@example.com>"],
        ))
        .unwrap_err()
        .join("\n");
        for key in [
            "consentGranted is not true",
            "imapHost is not set",
            "imapUsername is not set",
            "imapPassword is not set",
            "smtpHost is not set",
            "smtpUseSsl",
            "imapPort: 0",
            "pollIntervalSeconds: 0 is out of range",
            "maxBodyChars: 0 is out of range",
            "allowFrom: \"Alice <alice@example.com>\" is not an email address",
            "authservId is not set",
            "fromAddress",
        ] {
            assert!(e.contains(key), "{key} missing from:\n{e}");
        }
    }

    #[test]
    fn wrong_types_and_unknown_keys_are_named() {
        let mut v = good();
        v["imapPort"] = json!("993");
        let e = parse(&chan(v, &["a@b"])).unwrap_err().join("\n");
        assert!(e.contains("channels.email.imapPort"), "{e}");
        let mut v = good();
        v["imapPasword"] = json!("x");
        let e = parse(&chan(v, &["a@b"])).unwrap_err().join("\n");
        assert!(e.contains("imapPasword"), "{e}");
    }

    #[test]
    fn plain_smtp_only_to_this_machine() {
        let mut v = good();
        v["smtpUseTls"] = json!(false);
        let e = parse(&chan(v.clone(), &["a@b"])).unwrap_err().join("\n");
        assert!(e.contains("in clear"), "{e}");
        v["smtpHost"] = json!("127.0.0.1");
        let s = parse(&chan(v, &["a@b"])).unwrap();
        let smtp = s.smtp.unwrap();
        assert_eq!((smtp.port, smtp.security), (25, SmtpSecurity::Plain));
    }

    #[test]
    fn read_only_needs_no_smtp() {
        let v = json!({"consentGranted": true, "imapHost": "h", "imapUsername": "u",
                       "imapPassword": "p", "autoReplyEnabled": false});
        let s = parse(&chan(v, &["*"])).unwrap();
        assert!(s.smtp.is_none());
    }

    #[test]
    fn addresses_and_loopback() {
        assert!(is_address("a@b.c"));
        assert!(!is_address("a@"));
        assert!(!is_address("Alice <a@b>"));
        assert!(!is_address("alice"));
        assert!(is_loopback("127.0.0.1") && is_loopback("::1") && is_loopback("[::1]"));
        assert!(is_loopback("localhost") && !is_loopback("mail.example.com"));
    }
}

//! The answer to one message: threaded to it (`In-Reply-To`, `References`), addressed to the
//! checked From address (never Reply-To, which would let a sender route the agent's words to a
//! third party), marked `Auto-Submitted: auto-replied` (RFC 3834) so other robots do not answer
//! it, and sent over SMTP.

use super::settings::{Smtp, SmtpSecurity};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Mail, Tokio1Executor};
use mail_parser::Message;
use std::time::Duration;

/// At most this many ids are carried over from the original's References.
const MAX_REFERENCES: usize = 30;
const SMTP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("address {0:?}: {1}")]
    Address(String, lettre::address::AddressError),
    #[error("building the reply: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("SMTP {host}:{port}: {err}")]
    Smtp {
        host: String,
        port: u16,
        err: lettre::transport::smtp::Error,
    },
}

/// The headers that tie a reply to its original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threading {
    pub subject: String,
    pub in_reply_to: Option<String>,
    pub references: Option<String>,
}

pub fn threading(m: &Message<'_>, prefix: &str) -> Threading {
    let original = m.subject().unwrap_or("").trim();
    let subject = reply_subject(original, prefix);
    let id = m.message_id().and_then(clean_id);
    let mut refs: Vec<String> = match m.references() {
        mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
        mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => vec![],
    }
    .iter()
    .filter_map(|r| clean_id(r))
    .collect();
    if let Some(id) = &id {
        refs.push(id.clone());
    }
    let skip = refs.len().saturating_sub(MAX_REFERENCES);
    let refs: Vec<String> = refs.into_iter().skip(skip).collect();
    Threading {
        subject,
        in_reply_to: id,
        references: (!refs.is_empty()).then(|| refs.join(" ")),
    }
}

/// `prefix` + subject, unless the subject already starts with it ("Re: Re: " never happens).
pub fn reply_subject(original: &str, prefix: &str) -> String {
    let p = prefix.trim();
    let starts = original
        .get(..p.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(p));
    let s = if !p.is_empty() && starts {
        original.to_string()
    } else {
        format!("{prefix}{original}")
    };
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_SUBJECT_CHARS)
        .collect()
}

/// A reply's subject is cut here: the original's length is the sender's to choose.
const MAX_SUBJECT_CHARS: usize = 250;

/// `<id>` for a message id, or None when it holds anything that does not belong in a header.
fn clean_id(id: &str) -> Option<String> {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    let ok = !id.is_empty()
        && id.len() <= 250
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>');
    ok.then(|| format!("<{id}>"))
}

pub fn build(from: &str, to: &str, t: &Threading, text: &str) -> Result<Mail, ReplyError> {
    let mailbox = |a: &str| {
        a.parse::<Mailbox>()
            .map_err(|e| ReplyError::Address(a.to_string(), e))
    };
    let mut b = Mail::builder()
        .message_id(Some(new_message_id(from)))
        .from(mailbox(from)?)
        .to(mailbox(to)?)
        .subject(t.subject.clone());
    if let Some(id) = &t.in_reply_to {
        b = b.in_reply_to(id.clone());
    }
    if let Some(r) = &t.references {
        b = b.references(r.clone());
    }
    if let Ok(name) = HeaderName::new_from_ascii("Auto-Submitted".into()) {
        b = b.raw_header(HeaderValue::new(name, "auto-replied".into()));
    }
    Ok(b.body(text.to_string())?)
}

/// `<time.pid.n@domain-of-from>`: unique, and naming no host (lettre's default would put this
/// machine's hostname into every reply).
fn new_message_id(from: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let domain = from
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("nanobot.invalid");
    format!(
        "<{t:x}.{:x}.{}.nanobot@{domain}>",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub struct Sender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    host: String,
    port: u16,
}

impl Sender {
    pub fn new(s: &Smtp) -> Result<Sender, ReplyError> {
        let err = |err| ReplyError::Smtp {
            host: s.host.clone(),
            port: s.port,
            err,
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
            .port(s.port)
            .timeout(Some(SMTP_TIMEOUT));
        b = match s.security {
            SmtpSecurity::Implicit => b.tls(Tls::Wrapper(
                TlsParameters::new(s.host.clone()).map_err(err)?,
            )),
            SmtpSecurity::StartTls => b.tls(Tls::Required(
                TlsParameters::new(s.host.clone()).map_err(err)?,
            )),
            SmtpSecurity::Plain => b.tls(Tls::None),
        };
        if !s.username.is_empty() {
            b = b.credentials(Credentials::new(s.username.clone(), s.password.clone()));
        }
        Ok(Sender {
            transport: b.build(),
            host: s.host.clone(),
            port: s.port,
        })
    }

    pub async fn send(&self, mail: Mail) -> Result<(), ReplyError> {
        self.transport
            .send(mail)
            .await
            .map(drop)
            .map_err(|err| ReplyError::Smtp {
                host: self.host.clone(),
                port: self.port,
                err,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    #[test]
    fn subjects_get_one_prefix() {
        assert_eq!(reply_subject("Hello", "Re: "), "Re: Hello");
        assert_eq!(reply_subject("Re: Hello", "Re: "), "Re: Hello");
        assert_eq!(reply_subject("RE: Hello", "Re: "), "RE: Hello");
        assert_eq!(reply_subject("Reply later", "Re: "), "Re: Reply later");
        assert_eq!(reply_subject("", "Re: "), "Re: ");
        assert_eq!(reply_subject("a\r\nBcc: x", "Re: "), "Re: aBcc: x");
        assert_eq!(reply_subject("Hello", ""), "Hello");
        assert_eq!(reply_subject("Hello", "Re:\r\n "), "Re: Hello");
        // A sender's megabyte subject is not echoed back whole.
        let long = reply_subject(&"s".repeat(1 << 20), "Re: ");
        assert!(long.chars().count() <= MAX_SUBJECT_CHARS, "{}", long.len());
        assert!(long.starts_with("Re: sss"));
    }

    #[test]
    fn replies_thread_to_the_original() {
        let raw = "From: a@b\r\nSubject: Plan\r\nMessage-ID: <m2@example.com>\r\nReferences: <m0@example.com>\r\n <m1@example.com>\r\n\r\nhi";
        let m = MessageParser::default().parse(raw.as_bytes()).unwrap();
        let t = threading(&m, "Re: ");
        assert_eq!(t.subject, "Re: Plan");
        assert_eq!(t.in_reply_to.as_deref(), Some("<m2@example.com>"));
        assert_eq!(
            t.references.as_deref(),
            Some("<m0@example.com> <m1@example.com> <m2@example.com>")
        );
        let mail = build("bot@example.com", "a@example.com", &t, "answer").unwrap();
        let text = String::from_utf8(mail.formatted()).unwrap();
        assert!(text.contains("In-Reply-To: <m2@example.com>"), "{text}");
        assert!(
            text.contains("References: <m0@example.com> <m1@example.com> <m2@example.com>"),
            "{text}"
        );
        assert!(text.contains("Auto-Submitted: auto-replied"), "{text}");
        assert!(text.contains("To: a@example.com"), "{text}");
        assert!(text.contains("Message-ID: <"), "{text}");
        assert!(text.contains(".nanobot@example.com>"), "{text}");
        let again = build("bot@example.com", "a@example.com", &t, "answer").unwrap();
        let id = |m: &Mail| {
            let f = String::from_utf8(m.formatted()).unwrap();
            f.lines()
                .find(|l| l.starts_with("Message-ID:"))
                .unwrap()
                .to_string()
        };
        assert_ne!(id(&mail), id(&again));
    }

    #[test]
    fn without_ids_there_is_nothing_to_thread_to() {
        let m = MessageParser::default()
            .parse(b"From: a@b\r\nSubject: x\r\n\r\nhi" as &[u8])
            .unwrap();
        let t = threading(&m, "Re: ");
        assert_eq!((t.in_reply_to, t.references), (None, None));
    }

    #[test]
    fn odd_ids_are_dropped_and_references_are_bounded() {
        assert_eq!(clean_id("<a b@c>"), None);
        assert_eq!(clean_id("x@y").as_deref(), Some("<x@y>"));
        let refs: String = (0..100).map(|i| format!("<r{i}@x> ")).collect();
        let raw = format!("From: a@b\r\nMessage-ID: <last@x>\r\nReferences: {refs}\r\n\r\nhi");
        let m = MessageParser::default().parse(raw.as_bytes()).unwrap();
        let t = threading(&m, "Re: ");
        let r = t.references.unwrap();
        assert_eq!(r.split(' ').count(), MAX_REFERENCES);
        assert!(r.ends_with("<last@x>"));
    }
}

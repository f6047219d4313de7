//! What the agent reads of a message: the plain-text body (HTML converted to text when there is
//! no plain part), capped at `maxBodyChars`, and the names of attachments, whose contents are
//! never handed on.

use mail_parser::{Message, MimeHeaders};

/// The prompt for one message: who, subject, body, attachments.
/// Everything besides the body is bounded too (`maxBodyChars` caps only the body): a sender
/// could otherwise fill the model's context with a huge subject or thousands of attachments.
pub fn prompt(m: &Message<'_>, sender: &str, max_chars: usize) -> String {
    let subject = short(
        m.subject().unwrap_or("(no subject)").trim(),
        MAX_SUBJECT_CHARS,
    );
    let mut out = format!("Email from {sender}\nSubject: {subject}\n\n");
    out.push_str(&capped(&text(m), max_chars));
    let names = attachments(m);
    if !names.is_empty() {
        out.push_str("\n\n[Attachments, not opened: ");
        out.push_str(
            &names
                .iter()
                .take(MAX_ATTACHMENTS)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        );
        if names.len() > MAX_ATTACHMENTS {
            out.push_str(&format!(" and {} more", names.len() - MAX_ATTACHMENTS));
        }
        out.push(']');
    }
    out
}

const MAX_SUBJECT_CHARS: usize = 200;
/// Attachments named in the prompt; the rest are counted.
const MAX_ATTACHMENTS: usize = 20;
const MAX_NAME_CHARS: usize = 100;

/// The first `max` characters, with "…" when there were more.
fn short(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// Every text body part in order: text/plain as is, text/html converted (mail-parser fills the
/// text bodies with HTML parts only when a message has no plain alternative).
pub fn text(m: &Message<'_>) -> String {
    let parts: Vec<String> = (0..m.text_body_count())
        .filter_map(|i| m.body_text(i))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    parts.join("\n\n")
}

/// The first `max` characters, and a note saying how much was left out.
pub fn capped(s: &str, max: usize) -> String {
    let total = s.chars().count();
    if total <= max {
        return s.to_string();
    }
    let kept: String = s.chars().take(max).collect();
    format!("{kept}\n\n[Body cut at {max} of {total} characters (channels.email.maxBodyChars).]")
}

/// "name (type, N bytes)" for each attachment.
pub fn attachments(m: &Message<'_>) -> Vec<String> {
    m.attachments()
        .map(|a| {
            let name = a
                .attachment_name()
                .map(|n| short(&n.replace(|c: char| c.is_control(), " "), MAX_NAME_CHARS))
                .unwrap_or_else(|| "unnamed".into());
            let ty = a
                .content_type()
                .map(|t| match t.subtype() {
                    Some(s) => format!("{}/{s}", t.ctype()),
                    None => t.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into());
            format!("{name} ({ty}, {} bytes)", a.len())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn parse(raw: &str) -> Message<'_> {
        MessageParser::default().parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn plain_text_is_preferred_over_html() {
        let raw = "From: a@b\r\nSubject: Hi\r\nContent-Type: multipart/alternative; boundary=X\r\n\r\n--X\r\nContent-Type: text/plain\r\n\r\nplain words\r\n--X\r\nContent-Type: text/html\r\n\r\n<p>html words</p>\r\n--X--\r\n";
        let m = parse(raw);
        assert_eq!(text(&m), "plain words");
    }

    #[test]
    fn html_only_is_converted_to_text() {
        let raw = "From: a@b\r\nContent-Type: text/html\r\n\r\n<html><body><p>Hello <b>there</b> &amp; welcome</p><script>x()</script></body></html>\r\n";
        let t = text(&parse(raw));
        assert!(t.contains("Hello there & welcome"), "{t}");
        assert!(!t.contains("<p>") && !t.contains("<b>"), "{t}");
    }

    #[test]
    fn long_bodies_are_cut_with_a_note() {
        let c = capped(&"é".repeat(50), 10);
        assert!(c.starts_with(&"é".repeat(10)));
        assert!(!c.starts_with(&"é".repeat(11)));
        assert!(c.contains("cut at 10 of 50 characters"), "{c}");
        assert_eq!(capped("short", 10), "short");
    }

    #[test]
    fn attachments_are_named_not_read() {
        let raw = "From: a@b\r\nSubject: report\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--X\r\nContent-Type: application/pdf; name=\"q3.pdf\"\r\nContent-Disposition: attachment; filename=\"q3.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nU0VDUkVULUFUVEFDSE1FTlQ=\r\n--X--\r\n";
        let m = parse(raw);
        let p = prompt(&m, "a@b", 1000);
        assert!(p.contains("Subject: report"), "{p}");
        assert!(p.contains("see attached"), "{p}");
        assert!(p.contains("q3.pdf (application/pdf, 17 bytes)"), "{p}");
        assert!(!p.contains("SECRET-ATTACHMENT"), "{p}");
    }

    #[test]
    fn deeply_nested_and_many_part_mime_is_bounded() {
        // A hostile sender's MIME bomb, as large as a fetch may be (imap::MAX_FETCH_BYTES).
        let mut deep = String::from("From: a@b\r\nSubject: bomb\r\n");
        let depth = 20_000;
        for i in 0..depth {
            deep.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"
            ));
        }
        deep.push_str("Content-Type: text/plain\r\n\r\ndeep words\r\n");
        let mut wide =
            String::from("From: a@b\r\nContent-Type: multipart/mixed; boundary=W\r\n\r\n");
        while wide.len() < 10 << 20 {
            wide.push_str("--W\r\nContent-Type: application/x; name=a\r\n\r\nx\r\n");
        }
        wide.push_str("--W--\r\n");
        let long_subject = format!(
            "From: a@b\r\nSubject: {}\r\nContent-Type: multipart/mixed; boundary=W\r\n\r\n--W\r\nContent-Type: application/x; name=\"{}\"\r\n\r\nx\r\n--W--\r\n",
            "s".repeat(5 << 20),
            "n".repeat(4 << 20)
        );
        for raw in [deep, wide, long_subject] {
            let started = std::time::Instant::now();
            let p = MessageParser::default()
                .parse(raw.as_bytes())
                .map(|m| prompt(&m, "a@b", 4000))
                .unwrap_or_default();
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "{:?}",
                started.elapsed()
            );
            assert!(p.len() < 1 << 20, "{} bytes of prompt", p.len());
        }
    }
}

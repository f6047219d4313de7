//! The bridge protocol of the Python nanobot, so an existing bridge keeps working: JSON text
//! frames. Client → bridge: `{"type":"auth","token"}` first, then `{"type":"send","to","text"}`.
//! Bridge → client: `message`, `status`, `qr`, `error`, `sent`. Fields the bridge leaves out or
//! sends with another type read as empty; unknown types are ignored.

use serde_json::{json, Value};

/// The largest frame accepted from the bridge; the WebSocket layer enforces it too.
pub const MAX_FRAME: usize = 1 << 20;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    #[error("frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("frame is not JSON: {0}")]
    NotJson(String),
    #[error("frame is not an object with a string \"type\"")]
    NoType,
}

/// A WhatsApp message as the bridge reports it. `sender` is the chat to answer (a person's JID,
/// or a group's `…@g.us`); `pn` the sender's phone JID when `sender` is a privacy id (`…@lid`).
/// In a group, `participant`/`participantPn` say who wrote (sent by nanobot's bridge; the
/// Python bridge leaves them out).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatMessage {
    pub id: String,
    pub sender: String,
    pub pn: String,
    pub content: String,
    pub is_group: bool,
    pub participant: String,
    pub participant_pn: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Message(ChatMessage),
    Status(String),
    Qr(String),
    Error(String),
    Sent(String),
    Other(String),
}

pub fn parse(text: &str) -> Result<Incoming, FrameError> {
    if text.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(text.len()));
    }
    let v: Value = serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
    let ty = v
        .get("type")
        .and_then(Value::as_str)
        .ok_or(FrameError::NoType)?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    Ok(match ty {
        "message" => Incoming::Message(ChatMessage {
            id: s("id"),
            sender: s("sender"),
            pn: s("pn"),
            content: s("content"),
            is_group: v.get("isGroup").and_then(Value::as_bool).unwrap_or(false),
            participant: s("participant"),
            participant_pn: s("participantPn"),
        }),
        "status" => Incoming::Status(s("status")),
        "qr" => Incoming::Qr(s("qr")),
        "error" => Incoming::Error(s("error")),
        "sent" => Incoming::Sent(s("to")),
        other => Incoming::Other(other.to_string()),
    })
}

pub fn auth(token: &str) -> String {
    json!({"type": "auth", "token": token}).to_string()
}

pub fn send(to: &str, text: &str) -> String {
    json!({"type": "send", "to": to, "text": text}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_frames_parse() {
        let m = parse(r#"{"type":"message","id":"A1","sender":"1234567890@s.whatsapp.net","pn":"","content":"hi","timestamp":1700000000,"isGroup":false}"#).unwrap();
        assert_eq!(
            m,
            Incoming::Message(ChatMessage {
                id: "A1".into(),
                sender: "1234567890@s.whatsapp.net".into(),
                content: "hi".into(),
                ..Default::default()
            })
        );
        // Baileys' timestamps can be objects; nulls and wrong types read as empty.
        let m = parse(r#"{"type":"message","sender":"g@g.us","pn":null,"content":5,"timestamp":{"low":1},"isGroup":true,"participant":"1@s.whatsapp.net"}"#).unwrap();
        let Incoming::Message(m) = m else { panic!() };
        assert!(m.is_group && m.pn.is_empty() && m.content.is_empty());
        assert_eq!(m.participant, "1@s.whatsapp.net");
        assert_eq!(
            parse(r#"{"type":"status","status":"connected"}"#).unwrap(),
            Incoming::Status("connected".into())
        );
        assert_eq!(
            parse(r#"{"type":"qr","qr":"2@abc"}"#).unwrap(),
            Incoming::Qr("2@abc".into())
        );
        assert_eq!(
            parse(r#"{"type":"sent","to":"x"}"#).unwrap(),
            Incoming::Sent("x".into())
        );
        assert_eq!(
            parse(r#"{"type":"later"}"#).unwrap(),
            Incoming::Other("later".into())
        );
    }

    #[test]
    fn garbage_and_oversize_frames_are_errors() {
        assert!(matches!(parse("not json"), Err(FrameError::NotJson(_))));
        assert!(matches!(parse("{\"type\":"), Err(FrameError::NotJson(_))));
        assert_eq!(parse("[1,2]"), Err(FrameError::NoType));
        assert_eq!(parse("{\"type\":7}"), Err(FrameError::NoType));
        assert_eq!(parse("\"message\""), Err(FrameError::NoType));
        let big = format!(
            "{{\"type\":\"message\",\"content\":\"{}\"}}",
            "a".repeat(MAX_FRAME)
        );
        assert_eq!(parse(&big), Err(FrameError::TooLarge(big.len())));
    }

    #[test]
    fn client_frames_are_json_with_escaping() {
        let v: Value = serde_json::from_str(&send("1@s.whatsapp.net", "a \"q\"\n")).unwrap();
        assert_eq!(
            v,
            json!({"type": "send", "to": "1@s.whatsapp.net", "text": "a \"q\"\n"})
        );
        let v: Value = serde_json::from_str(&auth("t\"k")).unwrap();
        assert_eq!(v, json!({"type": "auth", "token": "t\"k"}));
    }
}

//! WhatsApp channel: a WebSocket client of the bridge (packaging/whatsapp-bridge, or the Python
//! nanobot's), which speaks WhatsApp Web. One session per chat (`whatsapp:JID`); replies go to
//! the chat the message came from. Dropped connections are retried with capped backoff; a token
//! the bridge refuses is fatal for this channel.
//!
//! Groups: off unless `allowGroups` is true, since a reply is seen by every member. Then the
//! bridge must name who wrote (`participant`/`participantPn`, which nanobot's bridge sends) and
//! that person must be in `allowFrom`; the group's own id never counts.

pub mod bridge;
pub mod frames;
pub mod number;

use crate::channels::status::Reporter;
use crate::channels::{deny, shown, split_text, Inbox};
use crate::config::ChannelConfig;
use bridge::{BridgeError, Endpoint, Ws};
use frames::{ChatMessage, Incoming};
use futures_util::{SinkExt, StreamExt};
use number::AllowList;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite;

/// Characters per WhatsApp message we send; longer replies go out in several.
const MAX_TEXT: usize = 4096;
/// Messages waiting for the agent; more are dropped (with a log line) rather than queued forever.
const MAX_PENDING: usize = 16;
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A connection that lasted this long was healthy: the next retry starts from `MIN_BACKOFF`.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// Without a close frame this soon after auth, the bridge took the token.
const AUTH_SETTLE: Duration = Duration::from_secs(2);
/// A bridge that hangs (its process stopped, its event loop stuck) keeps the socket open and
/// says nothing: pinged this often, it is given up when nothing, not even a pong, came for
/// `SILENT_AFTER`, and the gateway reconnects instead of showing "connected" forever.
const PING_EVERY: Duration = Duration::from_secs(10);
const SILENT_AFTER: Duration = Duration::from_secs(25);

/// `channels.whatsapp`, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoint: Endpoint,
    pub token: String,
    pub allow: AllowList,
    pub allow_groups: bool,
}

fn str_key<'a>(c: &'a ChannelConfig, key: &str) -> Option<&'a str> {
    c.extra.get(key).and_then(Value::as_str)
}

/// Where the bridge is and the token, checked (enough for `nanobot channels login`).
pub fn bridge_settings(c: &ChannelConfig) -> Result<(Endpoint, String), Vec<String>> {
    let mut problems = vec![];
    let url = str_key(c, "bridgeUrl").unwrap_or(bridge::DEFAULT_URL);
    let endpoint = Endpoint::parse(url).map_err(|e| problems.push(e.to_string()));
    let token = str_key(c, "bridgeToken").unwrap_or("").to_string();
    let unix = matches!(endpoint, Ok(Endpoint::Unix(_)));
    if token == bridge::EXAMPLE_TOKEN {
        problems.push(format!(
            "channels.whatsapp.bridgeToken is the security guide's example value {:?}: generate a secret (openssl rand -hex 32) and give the bridge the same one",
            bridge::EXAMPLE_TOKEN
        ));
    } else if token.is_empty() && !unix {
        problems.push(
            "channels.whatsapp.bridgeToken is not set: the bridge needs a shared secret (openssl rand -hex 32), e.g. \"${WHATSAPP_BRIDGE_TOKEN}\"; only a unix:/PATH bridgeUrl may go without"
                .into(),
        );
    }
    match endpoint {
        Ok(ep) if problems.is_empty() => Ok((ep, token)),
        _ => Err(problems),
    }
}

pub fn settings(c: &ChannelConfig) -> Result<Settings, Vec<String>> {
    let mut problems = vec![];
    let bridge = bridge_settings(c).map_err(|p| problems.extend(p));
    let allow = AllowList::new(&c.allow_from).map_err(|bad| {
        problems.push(format!(
            "channels.whatsapp.allowFrom: {} {} not a phone number with country code (e.g. \"+1234567890\")",
            bad.iter().map(|b| format!("{b:?}")).collect::<Vec<_>>().join(", "),
            if bad.len() == 1 { "is" } else { "are" }
        ))
    });
    let allow_groups = match c.extra.get("allowGroups") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            problems.push("channels.whatsapp.allowGroups must be true or false".into());
            false
        }
    };
    match (bridge, allow) {
        (Ok((endpoint, token)), Ok(allow)) if problems.is_empty() => Ok(Settings {
            endpoint,
            token,
            allow,
            allow_groups,
        }),
        _ => Err(problems),
    }
}

/// What the config lacks for this channel (an empty `allowFrom` is checked for every channel).
pub fn problems(c: &ChannelConfig) -> Vec<String> {
    settings(c).err().unwrap_or_default()
}

pub fn warnings(c: &ChannelConfig) -> Vec<String> {
    match Endpoint::parse(str_key(c, "bridgeUrl").unwrap_or(bridge::DEFAULT_URL)) {
        Ok(ep) if !ep.is_local() => vec![format!(
            "channels.whatsapp.bridgeUrl {ep} is not on this host: the bridge token and every message cross the network unencrypted"
        )],
        _ => vec![],
    }
}

/// What to do with one incoming message.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Answer in this chat.
    Answer {
        chat: String,
    },
    Deny {
        sender: String,
        why: &'static str,
    },
    Ignore,
}

pub fn judge(s: &Settings, m: &ChatMessage) -> Verdict {
    if m.sender.is_empty() || m.content.trim().is_empty() {
        return Verdict::Ignore;
    }
    let chat = m.sender.clone();
    if !m.is_group {
        return if s.allow.allows(&[&m.pn, &m.sender]) {
            Verdict::Answer { chat }
        } else {
            Verdict::Deny {
                sender: who(&[&m.pn, &m.sender]),
                why: "not in channels.whatsapp.allowFrom",
            }
        };
    }
    let author = who(&[&m.participant_pn, &m.participant]);
    if !s.allow_groups {
        return Verdict::Deny {
            sender: format!("{author} in group {}", m.sender),
            why: "group messages are off (channels.whatsapp.allowGroups)",
        };
    }
    if m.participant.is_empty() && m.participant_pn.is_empty() {
        return Verdict::Deny {
            sender: format!("(unknown) in group {}", m.sender),
            why: "the bridge does not say who wrote in the group",
        };
    }
    if s.allow.allows(&[&m.participant_pn, &m.participant]) {
        Verdict::Answer { chat }
    } else {
        Verdict::Deny {
            sender: format!("{author} in group {}", m.sender),
            why: "not in channels.whatsapp.allowFrom",
        }
    }
}

/// The ids a sender was reported under, for the log.
fn who(ids: &[&str]) -> String {
    let ids: Vec<&str> = ids.iter().copied().filter(|i| !i.is_empty()).collect();
    if ids.is_empty() {
        "(unknown)".into()
    } else {
        ids.join(" / ")
    }
}

pub async fn run<I: Inbox>(
    c: ChannelConfig,
    inbox: Arc<I>,
    report: Reporter,
) -> anyhow::Result<()> {
    let s = settings(&c).map_err(|p| anyhow::anyhow!("{}", p.join("\n")))?;
    // Replies outlive a connection: written to the next one when the bridge was away.
    let (tx, mut rx) = mpsc::channel::<(String, String)>(MAX_PENDING * 4);
    let pending = Arc::new(Semaphore::new(MAX_PENDING));
    let mut backoff = MIN_BACKOFF;
    loop {
        let started = Instant::now();
        let e = connection(&s, &inbox, &report, &tx, &mut rx, &pending).await;
        report.connected(false);
        if e.is_fatal() {
            report.failed(&e.to_string());
            return Err(e.into());
        }
        if started.elapsed() >= HEALTHY_AFTER {
            backoff = MIN_BACKOFF;
        }
        report.error(&e.to_string());
        tracing::warn!(
            channel = "whatsapp",
            "{e}; reconnecting in {} s",
            backoff.as_secs()
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection to the bridge, until it ends; the error says how.
async fn connection<I: Inbox>(
    s: &Settings,
    inbox: &Arc<I>,
    report: &Reporter,
    tx: &mpsc::Sender<(String, String)>,
    rx: &mut mpsc::Receiver<(String, String)>,
    pending: &Arc<Semaphore>,
) -> BridgeError {
    let ws: Ws = match bridge::connect(&s.endpoint, &s.token).await {
        Ok(ws) => ws,
        Err(e) => return e,
    };
    let (mut sink, mut stream) = ws.split();
    let settle = tokio::time::sleep(AUTH_SETTLE);
    tokio::pin!(settle);
    let mut authed = false;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if heard.elapsed() >= SILENT_AFTER {
                    return BridgeError::Silent(SILENT_AFTER.as_secs());
                }
                let frame = tungstenite::Message::Ping(Vec::new().into());
                match tokio::time::timeout(PING_EVERY, sink.send(frame)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return e.into(),
                    Err(_) => return BridgeError::Silent(heard.elapsed().as_secs()),
                }
            }
            _ = &mut settle, if !authed => {
                authed = true;
                report.connected(true);
            }
            out = rx.recv() => {
                let Some((to, text)) = out else { return BridgeError::Dropped };
                for part in split_text(&text, MAX_TEXT) {
                    let frame = tungstenite::Message::text(frames::send(&to, &part));
                    // A bridge that stopped reading would hold this send (and the pings) forever.
                    match tokio::time::timeout(SILENT_AFTER, sink.send(frame)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::warn!(channel = "whatsapp", "reply to {to} lost: {e}");
                            return e.into();
                        }
                        Err(_) => {
                            tracing::warn!(channel = "whatsapp", "reply to {to} lost: the bridge stopped reading");
                            return BridgeError::Silent(SILENT_AFTER.as_secs());
                        }
                    }
                }
            }
            frame = stream.next() => {
                if matches!(frame, Some(Ok(_))) {
                    heard = Instant::now();
                }
                let text = match frame {
                    None => return BridgeError::Dropped,
                    Some(Err(e)) => return e.into(),
                    Some(Ok(tungstenite::Message::Close(f))) => return bridge::closed(f.as_ref()),
                    Some(Ok(tungstenite::Message::Text(t))) => t,
                    Some(Ok(tungstenite::Message::Binary(b))) => {
                        tracing::warn!(channel = "whatsapp", "ignored a binary frame of {} bytes from the bridge", b.len());
                        continue;
                    }
                    Some(Ok(_)) => continue,
                };
                if !authed {
                    authed = true;
                    report.connected(true);
                }
                match frames::parse(text.as_str()) {
                    Ok(Incoming::Message(m)) => dispatch(s, inbox, tx, pending, m),
                    Ok(Incoming::Status(st)) => {
                        tracing::info!(channel = "whatsapp", "bridge status: {}", shown(&st));
                    }
                    Ok(Incoming::Qr(_)) => {
                        report.error("WhatsApp is not linked: run nanobot channels login whatsapp");
                        tracing::warn!(channel = "whatsapp", "the bridge waits for a QR scan: run nanobot channels login whatsapp");
                    }
                    Ok(Incoming::Error(e)) => {
                        let e = shown(&e);
                        report.error(&format!("bridge: {e}"));
                        tracing::warn!(channel = "whatsapp", "bridge error: {e}");
                    }
                    Ok(Incoming::Sent(_)) | Ok(Incoming::Other(_)) => {}
                    Err(e) => tracing::warn!(channel = "whatsapp", "ignored a frame from the bridge: {e}"),
                }
            }
        }
    }
}

fn dispatch<I: Inbox>(
    s: &Settings,
    inbox: &Arc<I>,
    tx: &mpsc::Sender<(String, String)>,
    pending: &Arc<Semaphore>,
    m: ChatMessage,
) {
    let chat = match judge(s, &m) {
        Verdict::Answer { chat } => chat,
        Verdict::Deny { sender, why } => {
            deny(inbox.log(), "whatsapp", &sender, why);
            return;
        }
        Verdict::Ignore => return,
    };
    let Ok(permit) = pending.clone().try_acquire_owned() else {
        inbox.log().line(
            "WARN",
            &format!("whatsapp: {MAX_PENDING} messages already wait for the agent; dropped one from {chat}"),
        );
        return;
    };
    let (inbox, tx) = (inbox.clone(), tx.clone());
    tokio::spawn(async move {
        let reply = inbox.handle(&format!("whatsapp:{chat}"), &m.content).await;
        drop(permit);
        if tx.send((chat, reply)).await.is_err() {
            tracing::warn!(
                channel = "whatsapp",
                "reply dropped: the channel has stopped"
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chan(extra: Value, allow: &[&str]) -> ChannelConfig {
        ChannelConfig {
            enabled: true,
            allow_from: allow.iter().map(|s| s.to_string()).collect(),
            extra: serde_json::from_value(extra).unwrap(),
        }
    }

    #[test]
    fn the_token_is_mandatory_and_not_the_example() {
        let p = problems(&chan(json!({}), &["+1234567890"]));
        assert!(p[0].contains("bridgeToken is not set"), "{p:?}");
        let p = problems(&chan(
            json!({"bridgeToken": "your-secret-token-here"}),
            &["+1234567890"],
        ));
        assert!(p[0].contains("example value"), "{p:?}");
        assert!(problems(&chan(json!({"bridgeToken": "s3cret"}), &["+1234567890"])).is_empty());
        // A Unix socket is guarded by file permissions instead; still never the example.
        let unix = json!({"bridgeUrl": "unix:/run/b.sock"});
        assert!(problems(&chan(unix, &["+1234567890"])).is_empty());
        let p = problems(&chan(
            json!({"bridgeUrl": "unix:/run/b.sock", "bridgeToken": "your-secret-token-here"}),
            &["+1"],
        ));
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[1].contains("\"+1\" is not a phone number"), "{p:?}");
        let p = problems(&chan(
            json!({"bridgeToken": "t", "bridgeUrl": "http://x"}),
            &["+1234567890"],
        ));
        assert!(p[0].contains("bridgeUrl"), "{p:?}");
    }

    #[test]
    fn a_remote_bridge_warns() {
        let c = chan(
            json!({"bridgeToken": "t", "bridgeUrl": "ws://10.0.0.2:3001"}),
            &["+1234567890"],
        );
        assert!(warnings(&c)[0].contains("unencrypted"));
        assert!(warnings(&chan(json!({"bridgeToken": "t"}), &["+1"])).is_empty());
    }

    fn msg(sender: &str, pn: &str, group: bool, participant: &str) -> ChatMessage {
        ChatMessage {
            sender: sender.into(),
            pn: pn.into(),
            content: "hi".into(),
            is_group: group,
            participant: participant.into(),
            ..Default::default()
        }
    }

    #[test]
    fn judging_senders_and_groups() {
        let mut s = settings(&chan(json!({"bridgeToken": "t"}), &["+1234567890"])).unwrap();
        let answer = |c: &str| Verdict::Answer { chat: c.into() };
        let jid = "1234567890@s.whatsapp.net";
        assert_eq!(judge(&s, &msg(jid, "", false, "")), answer(jid));
        // A privacy id with the phone number beside it.
        assert_eq!(judge(&s, &msg("99@lid", jid, false, "")), answer("99@lid"));
        assert!(matches!(
            judge(&s, &msg("11234567890@s.whatsapp.net", "", false, "")),
            Verdict::Deny { .. }
        ));
        // Groups are off by default, even for an allowed author.
        let g = "120363@g.us";
        assert!(matches!(
            judge(&s, &msg(g, "", true, jid)),
            Verdict::Deny { why, .. } if why.contains("allowGroups")
        ));
        s.allow_groups = true;
        assert_eq!(judge(&s, &msg(g, "", true, jid)), answer(g));
        assert!(matches!(
            judge(&s, &msg(g, "", true, "5550001111@s.whatsapp.net")),
            Verdict::Deny { .. }
        ));
        // The Python bridge does not name the author: refused, whoever the group is.
        assert!(matches!(
            judge(&s, &msg(g, "", true, "")),
            Verdict::Deny { why, .. } if why.contains("does not say")
        ));
        let mut empty = msg(jid, "", false, "");
        empty.content = "  ".into();
        assert_eq!(judge(&s, &empty), Verdict::Ignore);
    }
}

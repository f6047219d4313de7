//! Email channel: reads the mailbox over IMAP (IDLE where offered, else every
//! `pollIntervalSeconds`), hands each unseen message from an allowed sender to the agent, and
//! answers over SMTP in the same thread. One session per sender address (`email:ADDRESS`), like
//! one per chat elsewhere. Nothing is read or sent without `consentGranted`.
//!
//! Each message is handled at most once: it is marked handled (\Seen, or the seen-UID file with
//! `markSeen: false`) before the agent sees it, so a crash mid-turn never runs its tools twice.

pub mod body;
pub mod capped;
pub mod imap;
pub mod reply;
pub mod seen;
pub mod sender;
pub mod settings;

use crate::channels::status::Reporter;
use crate::channels::Inbox;
use crate::config::ChannelConfig;
use anyhow::{anyhow, Result};
use mail_parser::MessageParser;
use settings::Settings;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connection that stayed open this long was healthy: the next reconnect starts from 1 s.
/// Counting from login instead would let a server that drops every session right after login
/// draw a login (and the password) every second.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// Problems with `channels.email`, each naming its key (empty when it can start).
pub fn check(c: &ChannelConfig) -> Vec<String> {
    settings::parse(c).err().unwrap_or_default()
}

/// Run the channel until a fault retrying cannot fix (wrong password, missing mailbox).
/// `state_dir` holds the seen-UID file (`markSeen: false`).
/// `report` tells `nanobot channels status` whether the mailbox is open and the last error.
pub async fn run<I: Inbox>(
    c: ChannelConfig,
    state_dir: PathBuf,
    inbox: Arc<I>,
    report: Reporter,
) -> Result<()> {
    let s = settings::parse(&c).map_err(|p| anyhow!(p.join("\n")))?;
    let smtp = s.smtp.as_ref().map(reply::Sender::new).transpose()?;
    let account = format!(
        "{}@{}:{}/{}",
        s.imap.username, s.imap.host, s.imap.port, s.imap.mailbox
    );
    let store = seen::Store::new(&state_dir, &account);
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut ch = Channel {
            s: &s,
            smtp: smtp.as_ref(),
            store: &store,
            inbox: inbox.as_ref(),
            seen: None,
            report: &report,
        };
        let mut opened = None;
        let e = match ch.serve(&mut opened).await {
            Ok(never) => match never {},
            Err(e) => e,
        };
        report.connected(false);
        if e.fatal {
            return Err(anyhow!("channels.email: {}", e.msg));
        }
        if opened.is_some_and(|t: Instant| t.elapsed() >= HEALTHY_AFTER) {
            backoff = Duration::from_secs(1);
        }
        report.error(&e.msg);
        inbox.log().line(
            "WARN",
            &format!("email: {} (reconnecting in {} s)", e.msg, backoff.as_secs()),
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(300));
    }
}

/// Why a connection ended.
struct Stop {
    msg: String,
    fatal: bool,
}

impl From<imap::ImapError> for Stop {
    fn from(e: imap::ImapError) -> Stop {
        Stop {
            fatal: e.is_fatal(),
            msg: bounded(e.to_string()),
        }
    }
}

/// Server errors may quote what the server sent (a parse error quotes all of it): the log gets
/// the first `MAX_ERROR_CHARS` characters.
const MAX_ERROR_CHARS: usize = 300;

fn bounded(msg: String) -> String {
    if msg.chars().count() <= MAX_ERROR_CHARS {
        return msg;
    }
    let head: String = msg.chars().take(MAX_ERROR_CHARS).collect();
    format!("{head}… (cut)")
}

impl From<seen::SeenError> for Stop {
    fn from(e: seen::SeenError) -> Stop {
        Stop {
            fatal: true,
            msg: e.to_string(),
        }
    }
}

enum Never {}

struct Channel<'a, I: Inbox> {
    s: &'a Settings,
    smtp: Option<&'a reply::Sender>,
    store: &'a seen::Store,
    inbox: &'a I,
    /// The handled UIDs when `markSeen` is false.
    seen: Option<seen::SeenUids>,
    report: &'a Reporter,
}

impl<I: Inbox> Channel<'_, I> {
    /// One connection: open, then handle unseen mail and wait, until the connection fails.
    /// `opened` is set once the mailbox is open.
    async fn serve(&mut self, opened: &mut Option<Instant>) -> Result<Never, Stop> {
        let host = &self.s.imap.host;
        let mut conn = imap::open(&self.s.imap).await?;
        let (uid_validity, idle) = (conn.uid_validity, conn.idle);
        *opened = Some(Instant::now());
        self.report.connected(true);
        self.inbox.log().line(
            "INFO",
            &format!(
                "email: reading {} on {host} ({})",
                self.s.imap.mailbox,
                if idle {
                    "IDLE".to_string()
                } else {
                    format!("polling every {} s", self.s.poll_interval.as_secs())
                }
            ),
        );
        if !self.s.mark_seen {
            self.seen = Some(match self.store.open(uid_validity)? {
                seen::Opened::Same(s) => s,
                seen::Opened::Renumbered(mut s) => {
                    // Old UIDs mean nothing now; re-running every unread request would repeat
                    // its tool calls, so what is unread now counts as handled.
                    let now = conn.unseen().await?;
                    self.inbox.log().line(
                        "WARN",
                        &format!(
                            "email: mailbox {} was renumbered (UIDVALIDITY {uid_validity}); its {} unread messages are left unanswered",
                            self.s.imap.mailbox,
                            now.len()
                        ),
                    );
                    s.uids.extend(now);
                    self.store.save(&s)?;
                    s
                }
            });
        }
        loop {
            let mut uids = conn.unseen().await?;
            if let Some(seen) = &mut self.seen {
                seen.prune(&uids);
                uids.retain(|u| !seen.uids.contains(u));
            }
            for uid in uids {
                let Some((raw, size)) = conn.fetch(uid).await? else {
                    continue;
                };
                // Handled before the agent sees it: at most once.
                if let Some(seen) = &mut self.seen {
                    seen.uids.insert(uid);
                    self.store.save(seen)?;
                } else {
                    conn.mark_seen(uid).await?;
                }
                self.handle(uid, &raw, size).await;
            }
            conn = conn.wait(self.s.poll_interval).await?;
        }
    }

    async fn handle(&self, uid: u32, raw: &[u8], size: u32) {
        let log = self.inbox.log();
        let Some(m) = MessageParser::default().parse(raw) else {
            log.line(
                "WARN",
                &format!("email: message UID {uid} is not a mail message; skipped"),
            );
            return;
        };
        let who = match sender::check(&m, &self.s.allow_from, self.s.authserv_id.as_deref()) {
            Ok(a) => a,
            Err((who, why)) => {
                crate::channels::deny(log, "email", &who, &why.to_string());
                return;
            }
        };
        if who.eq_ignore_ascii_case(&self.s.from_address) {
            log.line(
                "INFO",
                &format!("email: UID {uid} is from {who}, our own address; not answered"),
            );
            return;
        }
        if let Some(kind) = automatic(&m) {
            log.line(
                "INFO",
                &format!("email: UID {uid} from {who} is automatic mail ({kind}); not answered"),
            );
            return;
        }
        let mut text = body::prompt(&m, &who, self.s.max_body_chars);
        if size > imap::MAX_FETCH_BYTES {
            text.push_str(&format!(
                "\n\n[Only the first {} of {size} bytes of this message were read.]",
                imap::MAX_FETCH_BYTES
            ));
        }
        let answer = self.inbox.handle(&format!("email:{who}"), &text).await;
        let Some(smtp) = self.smtp else {
            log.line(
                "INFO",
                &format!("email: answered UID {uid} from {who} in the session only (autoReplyEnabled is false)"),
            );
            return;
        };
        let t = reply::threading(&m, &self.s.subject_prefix);
        let sent = match reply::build(&self.s.from_address, &who, &t, &answer) {
            Ok(mail) => smtp.send(mail).await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(()) => log.line("INFO", &format!("email: replied to {who} (UID {uid})")),
            Err(e) => log.line(
                "ERROR",
                &format!(
                    "email: the reply to {who} (UID {uid}) was not sent: {}",
                    bounded(e.to_string())
                ),
            ),
        }
    }
}

/// Mail no person wrote (RFC 3834 Auto-Submitted, bulk/list Precedence): answering it invites
/// loops with other robots.
fn automatic(m: &mail_parser::Message<'_>) -> Option<String> {
    let h = |name: &str| {
        m.header_raw(name)
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
    };
    if let Some(a) = h("Auto-Submitted").filter(|a| a != "no") {
        return Some(format!("Auto-Submitted: {a}"));
    }
    if let Some(p) = h("Precedence").filter(|p| ["bulk", "list", "junk"].contains(&p.as_str())) {
        return Some(format!("Precedence: {p}"));
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_errors_are_logged_bounded() {
        assert_eq!(super::bounded("short".into()), "short");
        let b = super::bounded("é".repeat(10_000));
        assert!(b.chars().count() < 320 && b.ends_with("(cut)"), "{b}");
    }

    #[test]
    fn robots_are_not_answered() {
        let p = |raw: &'static str| {
            mail_parser::MessageParser::default()
                .parse(raw.as_bytes())
                .unwrap()
        };
        assert!(super::automatic(&p("Auto-Submitted: auto-replied\r\n\r\nx")).is_some());
        assert!(super::automatic(&p("Precedence: bulk\r\n\r\nx")).is_some());
        assert!(super::automatic(&p("Auto-Submitted: no\r\n\r\nx")).is_none());
        assert!(super::automatic(&p("Subject: hi\r\n\r\nx")).is_none());
    }
}

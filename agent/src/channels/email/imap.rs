//! The IMAP side: connect (TLS from the start, or STARTTLS, or plain text only to this machine),
//! log in, select the mailbox, list unseen messages, fetch one (bounded), mark it seen, and wait
//! for news with IDLE where the server offers it.

use super::capped::{Budget, Capped};
use super::settings::{is_loopback, Imap};
use futures_util::TryStreamExt;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// Messages are read up to this many bytes; the rest (usually attachments) is never fetched.
pub const MAX_FETCH_BYTES: u32 = 10 << 20;
/// The most the server may send in one answer: a fetched message and its framing.
const MAX_ANSWER_BYTES: u64 = MAX_FETCH_BYTES as u64 + (1 << 20);
/// Any single exchange with the server that takes longer is a dead connection.
const IO_TIMEOUT: Duration = Duration::from_secs(120);

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Io for T {}
pub type ImapSession = async_imap::Session<Box<dyn Io>>;

/// A logged-in session on the selected mailbox.
pub struct Conn {
    session: ImapSession,
    /// Reset before each exchange.
    budget: Budget,
    host: String,
    pub uid_validity: u32,
    pub idle: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("connecting to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("TLS with {0}: {1}")]
    Tls(String, std::io::Error),
    #[error("{0} is not a valid TLS server name")]
    ServerName(String),
    #[error("{0} refused STARTTLS and is not on this machine: refusing to send the password in clear (set imapUseSsl to true and use port 993)")]
    NoStartTls(String),
    #[error("the IMAP server refused the login for {user}: {msg} (check channels.email.imapUsername and imapPassword)")]
    Login { user: String, msg: String },
    #[error("the IMAP server cannot take the login for {user} now: {msg}")]
    LoginLater { user: String, msg: String },
    #[error(
        "the IMAP server cannot open mailbox {mailbox:?}: {msg} (check channels.email.imapMailbox)"
    )]
    Mailbox { mailbox: String, msg: String },
    #[error("IMAP: {0}")]
    Protocol(#[from] async_imap::error::Error),
    #[error("IMAP server at {0} did not answer within {1:?}")]
    Timeout(String, Duration),
}

impl ImapError {
    /// Wrong credentials or mailbox: retrying cannot help, the operator must fix the config.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ImapError::Login { .. } | ImapError::Mailbox { .. })
    }
}

async fn timed<T, E: Into<ImapError>>(
    host: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(IO_TIMEOUT, f).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(ImapError::Timeout(host.to_string(), IO_TIMEOUT)),
    }
}

fn tls_connector() -> Result<tokio_rustls::TlsConnector, std::io::Error> {
    let mut roots = rustls::RootCertStore::empty();
    // SSL_CERT_FILE / SSL_CERT_DIR are honoured, as for every rustls-native-certs user.
    for cert in rustls_native_certs::load_native_certs().certs {
        // A malformed system certificate is skipped; the others still verify.
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn tls(host: &str, io: Box<dyn Io>) -> Result<Box<dyn Io>, ImapError> {
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|_| ImapError::ServerName(host.to_string()))?;
    let c = tls_connector().map_err(|e| ImapError::Tls(host.to_string(), e))?;
    let s = timed(host, async {
        c.connect(name, io)
            .await
            .map_err(|e| ImapError::Tls(host.to_string(), e))
    })
    .await?;
    Ok(Box::new(s))
}

/// Log in and select the mailbox.
pub async fn open(s: &Imap) -> Result<Conn, ImapError> {
    let host = s.host.as_str();
    let tcp = timed(host, async {
        TcpStream::connect((host, s.port))
            .await
            .map_err(|e| ImapError::Connect(format!("{host}:{}", s.port), e))
    })
    .await?;
    let budget = Budget::new(MAX_ANSWER_BYTES);
    let mut io: Box<dyn Io> = Box::new(Capped::new(tcp, budget.clone()));
    if s.use_ssl {
        io = tls(host, io).await?;
    }
    let mut client = async_imap::Client::new(io);
    // The greeting.
    timed(host, async {
        client
            .read_response()
            .await
            .map_err(async_imap::error::Error::from)
    })
    .await?;
    if !s.use_ssl {
        let r = timed(host, client.run_command_and_check_ok("STARTTLS", None)).await;
        match r {
            Ok(()) => {
                let io = tls(host, client.into_inner()).await?;
                client = async_imap::Client::new(io);
            }
            Err(ImapError::Protocol(
                async_imap::error::Error::Bad(_) | async_imap::error::Error::No(_),
            )) if is_loopback(host) => {}
            Err(ImapError::Protocol(
                async_imap::error::Error::Bad(_) | async_imap::error::Error::No(_),
            )) => return Err(ImapError::NoStartTls(host.to_string())),
            Err(e) => return Err(e),
        }
    }
    let mut session = match timed(host, async {
        Ok::<_, ImapError>(client.login(&s.username, &s.password).await)
    })
    .await?
    {
        Ok(session) => session,
        Err((async_imap::error::Error::No(msg), _)) if passing(&msg) => {
            return Err(ImapError::LoginLater {
                user: s.username.clone(),
                msg,
            })
        }
        Err((async_imap::error::Error::No(msg), _)) => {
            return Err(ImapError::Login {
                user: s.username.clone(),
                msg,
            })
        }
        Err((e, _)) => return Err(e.into()),
    };
    let mailbox = match timed(host, async {
        Ok::<_, ImapError>(session.select(&s.mailbox).await)
    })
    .await?
    {
        Ok(m) => m,
        Err(async_imap::error::Error::No(msg)) => {
            return Err(ImapError::Mailbox {
                mailbox: s.mailbox.clone(),
                msg,
            })
        }
        Err(e) => return Err(e.into()),
    };
    budget.reset();
    let caps = timed(host, session.capabilities()).await?;
    Ok(Conn {
        session,
        budget,
        host: host.to_string(),
        uid_validity: mailbox.uid_validity.unwrap_or(0),
        idle: caps.has_str("IDLE"),
    })
}

impl Conn {
    /// UIDs of the messages without \Seen, oldest first.
    pub async fn unseen(&mut self) -> Result<Vec<u32>, ImapError> {
        self.budget.reset();
        let set = timed(&self.host, self.session.uid_search("UNSEEN")).await?;
        let mut v: Vec<u32> = set.into_iter().collect();
        v.sort_unstable();
        drain(&mut self.session);
        Ok(v)
    }

    /// The message's bytes (at most `MAX_FETCH_BYTES`) and its full size, without setting
    /// \Seen. None when the message is gone (expunged meanwhile).
    pub async fn fetch(&mut self, uid: u32) -> Result<Option<(Vec<u8>, u32)>, ImapError> {
        self.budget.reset();
        let query = format!("(UID RFC822.SIZE BODY.PEEK[]<0.{MAX_FETCH_BYTES}>)");
        let session = &mut self.session;
        let fetches: Vec<_> = timed(&self.host, async {
            session
                .uid_fetch(uid.to_string(), &query)
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        drain(&mut self.session);
        Ok(fetches
            .iter()
            .find(|f| f.uid == Some(uid))
            .and_then(|f| Some((f.body()?.to_vec(), f.size.unwrap_or(0)))))
    }

    pub async fn mark_seen(&mut self, uid: u32) -> Result<(), ImapError> {
        self.budget.reset();
        let session = &mut self.session;
        timed(&self.host, async {
            session
                .uid_store(uid.to_string(), "+FLAGS.SILENT (\\Seen)")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        drain(&mut self.session);
        Ok(())
    }

    /// Wait until the server reports a change (IDLE) or `wait` passes; without IDLE just
    /// sleep, then NOOP so a dead connection shows.
    pub async fn wait(self, wait: Duration) -> Result<Conn, ImapError> {
        let Conn {
            mut session,
            budget,
            host,
            uid_validity,
            idle,
        } = self;
        budget.reset();
        if idle {
            let mut h = session.idle();
            timed(&host, h.init()).await?;
            let (fut, _stop) = h.wait_with_timeout(wait);
            fut.await?;
            budget.reset();
            session = timed(&host, h.done()).await?;
        } else {
            tokio::time::sleep(wait).await;
            timed(&host, session.noop()).await?;
        }
        drain(&mut session);
        Ok(Conn {
            session,
            budget,
            host,
            uid_validity,
            idle,
        })
    }
}

/// Whether a refused login says the refusal passes (RFC 5530 response codes: a backend down,
/// the mailbox in use, a connection limit), so the credentials are not what is wrong.
fn passing(msg: &str) -> bool {
    let m = msg.to_ascii_uppercase();
    ["UNAVAILABLE", "INUSE", "LIMIT"]
        .iter()
        .any(|code| m.contains(&format!("[{code}")) || m.contains(&format!("{code}\"")))
}

/// Unsolicited responses (EXISTS, EXPUNGE, …) are queued by async-imap; we search afresh
/// each round instead, so they are dropped.
fn drain(session: &mut ImapSession) {
    while session.unsolicited_responses.try_recv().is_ok() {}
}

//! Reaching the bridge: where it listens (`ws://host:port` or `unix:/path`), connecting with a
//! time limit and a frame-size cap, authenticating, and what its close codes mean (4001: no auth
//! in time, 4003: wrong token — both fatal, retrying cannot fix them).

use super::frames::{self, MAX_FRAME};
use futures_util::SinkExt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

pub const DEFAULT_URL: &str = "ws://127.0.0.1:3001";
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The security guide's example token: a config still holding it has no secret at all.
pub const EXAMPLE_TOKEN: &str = "your-secret-token-here";

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("channels.whatsapp.bridgeUrl {0:?}: {1}")]
    BadUrl(String, String),
    #[error("cannot connect to the WhatsApp bridge at {0}: {1}")]
    Connect(String, String),
    #[error("the WhatsApp bridge at {0} did not complete the WebSocket handshake within {1} s")]
    ConnectTimeout(String, u64),
    #[error(
        "the WhatsApp bridge refused channels.whatsapp.bridgeToken (close code 4003): it differs \
         from the bridge's BRIDGE_TOKEN; set both to the same secret"
    )]
    BadToken,
    #[error(
        "the WhatsApp bridge closed the connection because nanobot did not authenticate in time \
         (close code 4001)"
    )]
    AuthTimeout,
    #[error("the WhatsApp bridge closed the connection (code {0}{1})")]
    Closed(u16, String),
    #[error("the WhatsApp bridge connection ended without a close frame")]
    Dropped,
    #[error("the WhatsApp bridge sent nothing, not even an answer to a ping, for {0} s")]
    Silent(u64),
    #[error("WhatsApp bridge connection: {0}")]
    Ws(#[from] tungstenite::Error),
}

impl BridgeError {
    /// Errors that no reconnect can fix: the gateway gives this channel up.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            BridgeError::BadToken | BridgeError::AuthTimeout | BridgeError::BadUrl(..)
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    Tcp {
        host: String,
        port: u16,
        url: String,
    },
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp { url, .. } => f.write_str(url),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, BridgeError> {
        let bad = |why: &str| BridgeError::BadUrl(url.to_string(), why.to_string());
        if let Some(p) = url.strip_prefix("unix:") {
            let p = PathBuf::from(p);
            if !p.is_absolute() {
                return Err(bad(
                    "a Unix socket needs an absolute path: unix:/run/…/bridge.sock",
                ));
            }
            return Ok(Endpoint::Unix(p));
        }
        if url.starts_with("wss://") {
            return Err(bad(
                "wss:// is not supported: run the bridge on this host and use ws://127.0.0.1:PORT or unix:/PATH",
            ));
        }
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| bad("expected ws://HOST:PORT or unix:/PATH"))?;
        let authority = rest.split('/').next().unwrap_or("");
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in host"))?;
            (h.to_string(), p.strip_prefix(':').unwrap_or(""))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p),
                None => (authority.to_string(), ""),
            }
        };
        if host.is_empty() || host.contains('@') {
            return Err(bad("expected ws://HOST:PORT"));
        }
        let port = if port.is_empty() {
            80
        } else {
            port.parse::<u16>()
                .map_err(|_| bad("the port is not a number from 1 to 65535"))?
        };
        Ok(Endpoint::Tcp {
            host,
            port,
            url: url.to_string(),
        })
    }

    /// Traffic that never leaves the host: the token can travel unencrypted.
    pub fn is_local(&self) -> bool {
        match self {
            Endpoint::Unix(_) => true,
            Endpoint::Tcp { host, .. } => {
                host.eq_ignore_ascii_case("localhost")
                    || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
        }
    }
}

pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}
pub type Ws = WebSocketStream<Box<dyn Transport>>;

pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME))
}

/// Connect, and send the auth frame first. Success says nothing about the token yet: the bridge
/// answers a wrong one by closing with 4003.
pub async fn connect(ep: &Endpoint, token: &str) -> Result<Ws, BridgeError> {
    let shown = ep.to_string();
    let attempt = async {
        let (stream, request): (Box<dyn Transport>, String) = match ep {
            Endpoint::Tcp { host, port, url } => {
                let s = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| BridgeError::Connect(shown.clone(), e.to_string()))?;
                (Box::new(s), url.clone())
            }
            Endpoint::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(|e| BridgeError::Connect(shown.clone(), e.to_string()))?;
                (Box::new(s), "ws://localhost/".to_string())
            }
        };
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config()))
                .await
                .map_err(|e| BridgeError::Connect(shown.clone(), e.to_string()))?;
        ws.send(Message::text(frames::auth(token))).await?;
        Ok(ws)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| BridgeError::ConnectTimeout(shown.clone(), CONNECT_TIMEOUT.as_secs()))?
}

/// What a close frame from the bridge means.
pub fn closed(frame: Option<&CloseFrame>) -> BridgeError {
    match frame {
        Some(f) => match u16::from(f.code) {
            4003 => BridgeError::BadToken,
            4001 => BridgeError::AuthTimeout,
            code if f.reason.is_empty() => BridgeError::Closed(code, String::new()),
            code => BridgeError::Closed(code, format!(": {}", f.reason.as_str())),
        },
        None => BridgeError::Closed(1005, String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_urls() {
        let ep = Endpoint::parse(DEFAULT_URL).unwrap();
        assert_eq!(
            ep,
            Endpoint::Tcp {
                host: "127.0.0.1".into(),
                port: 3001,
                url: DEFAULT_URL.into()
            }
        );
        assert!(ep.is_local());
        assert!(Endpoint::parse("ws://localhost:3001/").unwrap().is_local());
        assert!(Endpoint::parse("ws://[::1]:3001").unwrap().is_local());
        assert!(!Endpoint::parse("ws://192.168.1.5:3001").unwrap().is_local());
        assert!(!Endpoint::parse("ws://bridge.example:3001")
            .unwrap()
            .is_local());
        let u = Endpoint::parse("unix:/run/nanobot-whatsapp-bridge/bridge.sock").unwrap();
        assert!(u.is_local());
        for bad in [
            "http://127.0.0.1:3001",
            "wss://127.0.0.1:3001",
            "ws://:3001",
            "ws://127.0.0.1:99999",
            "ws://user@127.0.0.1:3001",
            "unix:relative.sock",
            "",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    /// A bridge on a Unix socket: the handshake works over it and the auth frame comes first.
    #[tokio::test]
    async fn connects_over_a_unix_socket_and_authenticates_first() {
        use futures_util::StreamExt;
        let dir = std::env::temp_dir().join(format!("nanobot-wa-unix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bridge.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(s).await.unwrap();
            match ws.next().await {
                Some(Ok(Message::Text(t))) => t.to_string(),
                other => format!("{other:?}"),
            }
        });
        let ep = Endpoint::parse(&format!("unix:{}", path.display())).unwrap();
        let _ws = connect(&ep, "").await.unwrap();
        assert_eq!(server.await.unwrap(), r#"{"token":"","type":"auth"}"#);
        let missing = Endpoint::Unix(dir.join("absent.sock"));
        let Err(e) = connect(&missing, "t").await else {
            panic!("connected to a socket that does not exist")
        };
        let e = e.to_string();
        assert!(
            e.starts_with("cannot connect to the WhatsApp bridge at unix:"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn close_codes_4001_and_4003_are_fatal() {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
        let f = |code: u16| CloseFrame {
            code: CloseCode::from(code),
            reason: "why".into(),
        };
        assert!(matches!(closed(Some(&f(4003))), BridgeError::BadToken));
        assert!(closed(Some(&f(4003))).is_fatal());
        assert!(closed(Some(&f(4001))).is_fatal());
        let e = closed(Some(&f(1001)));
        assert!(!e.is_fatal());
        assert_eq!(
            e.to_string(),
            "the WhatsApp bridge closed the connection (code 1001: why)"
        );
        assert!(!BridgeError::Dropped.is_fatal());
    }
}

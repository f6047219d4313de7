//! Who is calling: peer credentials read once per connection (SO_PEERCRED, SO_PEERGROUPS) and
//! carried to every request, and the interceptor that admits or refuses the peer (`auth::PeerPolicy`).
//! A connection also holds its place under the connection caps and is closed when its
//! handshake or idleness deadline passes (`conns`).

use super::authority::AuthorityFix;
use super::conns::{Activity, Cap, ConnShared, ConnSlot, Deadlines, Expired, Verdict};
use crate::auth::{self, Peer};
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Status};

/// Who is on the other end of a connection, read once when it is accepted.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub peer: Option<Peer>,
    /// Supplementary groups (SO_PEERGROUPS; /proc as a fallback).
    pub groups: Arc<Vec<u32>>,
    /// The requests in flight on the connection (kept by `in_flight::InFlightLayer`).
    pub activity: Arc<Activity>,
}

/// An accepted connection carrying its `PeerInfo` to every request on it.
pub struct PeerConn {
    inner: tokio::net::UnixStream,
    info: PeerInfo,
    /// Makes any `:authority` acceptable to h2 (see `authority`).
    authority: AuthorityFix,
    /// What h2 has yet to read: bytes the client sent, as `authority` passed or rewrote them.
    pending: Vec<u8>,
    taken: usize,
    /// Its place under the connection caps, given back when the connection is dropped.
    _slot: ConnSlot,
    shared: Arc<ConnShared>,
    deadlines: Deadlines,
    /// Wakes the connection when its next deadline is due.
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
}

/// A connection refused by a cap: it is closed at once.
#[derive(Debug)]
pub struct Refused {
    pub peer: Option<Peer>,
    pub cap: Cap,
    /// The connection, for the caller to tell the client why before closing it.
    pub stream: tokio::net::UnixStream,
}

impl PeerConn {
    /// Take a place under the caps for a connection just accepted, or say which cap refuses it
    /// (and hand the stream back). Needs a tokio runtime (the deadline timer).
    pub fn new(
        inner: tokio::net::UnixStream,
        shared: &Arc<ConnShared>,
    ) -> Result<PeerConn, Refused> {
        use std::os::fd::AsRawFd;
        let peer = inner.peer_cred().ok().map(|c| Peer {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid().unwrap_or(0),
        });
        let slot = match shared.limits.try_take(peer.map(|p| p.uid)) {
            Ok(slot) => slot,
            Err(cap) => {
                return Err(Refused {
                    peer,
                    cap,
                    stream: inner,
                })
            }
        };
        let groups = auth::peer_groups(inner.as_raw_fd())
            .or_else(|| peer.map(|p| auth::groups_of(p.pid)))
            .unwrap_or_default();
        let now = Instant::now();
        Ok(PeerConn {
            inner,
            info: PeerInfo {
                peer,
                groups: Arc::new(groups),
                activity: Arc::default(),
            },
            authority: AuthorityFix::default(),
            pending: Vec::new(),
            taken: 0,
            _slot: slot,
            shared: shared.clone(),
            deadlines: Deadlines::new(now),
            timer: Box::pin(tokio::time::sleep_until(
                (now + shared.timeouts.handshake).into(),
            )),
        })
    }

    /// With no bytes to read: `Some(error)` when a deadline has passed and the connection is to
    /// be closed; else `None`, the timer armed to wake the task at the next deadline.
    fn expired(&mut self, cx: &mut std::task::Context<'_>) -> Option<std::io::Error> {
        use std::future::Future;
        // Each round either closes, or arms a timer that is not yet due; a timer that fired
        // moves the verdict on. Bounded anyway, against a clock that steps back.
        for _ in 0..4 {
            let now = Instant::now();
            let in_flight = self.info.activity.in_flight();
            if let Some(ended) = self.info.activity.last_ended() {
                self.deadlines.last_activity = self.deadlines.last_activity.max(ended);
            }
            match self.deadlines.check(&self.shared.timeouts, in_flight, now) {
                Verdict::Close(why) => return Some(self.close(why, now)),
                Verdict::Wait(at) => {
                    let at = tokio::time::Instant::from_std(at);
                    if self.timer.deadline() != at {
                        self.timer.as_mut().reset(at);
                    }
                    if self.timer.as_mut().poll(cx).is_pending() {
                        return None;
                    }
                }
            }
        }
        None
    }

    fn close(&self, why: Expired, now: Instant) -> std::io::Error {
        let uid = self.info.peer.map(|p| p.uid);
        let open = self.shared.limits.open();
        let msg = match why {
            Expired::Handshake => {
                let t = self.shared.timeouts.handshake.as_secs();
                if let Some(held) = self.shared.handshake_warn.ready(now) {
                    tracing::warn!(
                        peer_uid = uid,
                        connections = open,
                        more = held,
                        "closing a connection that did not finish the HTTP/2 handshake within \
                         handshake_timeout_secs={t} ({held} more since the last such warning)"
                    );
                }
                format!("no HTTP/2 handshake within {t} s")
            }
            Expired::Idle => {
                let t = self.shared.timeouts.idle.as_secs();
                if let Some(held) = self.shared.idle_log.ready(now) {
                    tracing::info!(
                        peer_uid = uid,
                        connections = open,
                        more = held,
                        "closing a connection idle for idle_timeout_secs={t} ({held} more since \
                         the last such message)"
                    );
                }
                format!("idle for {t} s")
            }
        };
        std::io::Error::new(std::io::ErrorKind::TimedOut, msg)
    }
}

impl tonic::transport::server::Connected for PeerConn {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl tokio::io::AsyncRead for PeerConn {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = &mut *self;
        loop {
            if this.taken < this.pending.len() {
                let n = buf.remaining().min(this.pending.len() - this.taken);
                buf.put_slice(&this.pending[this.taken..this.taken + n]);
                this.taken += n;
                return Poll::Ready(Ok(()));
            }
            this.pending.clear();
            this.taken = 0;
            let mut chunk = [0u8; 16 * 1024];
            let mut raw = tokio::io::ReadBuf::new(&mut chunk);
            match std::pin::Pin::new(&mut this.inner).poll_read(cx, &mut raw) {
                Poll::Ready(Ok(())) if raw.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    this.deadlines.last_activity = Instant::now();
                    let fed = this.authority.feed(raw.filled(), &mut this.pending);
                    this.deadlines.handshake_done = this.authority.handshake_done();
                    if let Err(e) = fed {
                        tracing::warn!(
                            peer_uid = this.info.peer.map(|p| p.uid),
                            "closing a connection: {e}"
                        );
                        return Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            e,
                        )));
                    }
                }
                Poll::Pending => {
                    return match this.expired(cx) {
                        Some(e) => Poll::Ready(Err(e)),
                        None => Poll::Pending,
                    };
                }
                other => return other,
            }
        }
    }
}

impl tokio::io::AsyncWrite for PeerConn {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = r {
            if n > 0 {
                self.deadlines.last_activity = Instant::now();
            }
        }
        r
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

pub fn peer_info<T>(req: &Request<T>) -> Option<PeerInfo> {
    req.extensions().get::<PeerInfo>().cloned()
}

pub fn peer_of<T>(req: &Request<T>) -> Option<Peer> {
    peer_info(req)?.peer
}

/// Interceptor for every service on the socket.
pub fn authenticate(
    policy: auth::PeerPolicy,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |req: Request<()>| {
        let info = peer_info(&req);
        let groups = info.as_ref().map(|i| i.groups.clone()).unwrap_or_default();
        let Some(peer) = info.and_then(|i| i.peer) else {
            tracing::warn!("Access denied: peer credentials unavailable");
            return Err(Status::permission_denied(
                "Access denied: peer credentials unavailable",
            ));
        };
        match policy.check(peer, &groups) {
            Ok(()) => Ok(req),
            Err(why) => {
                tracing::warn!(peer_uid = peer.uid, peer_gid = peer.gid, peer_pid = peer.pid, reason = %why, "Access denied: uid={} pid={}: {why}", peer.uid, peer.pid);
                Err(Status::permission_denied(format!("Access denied: {why}")))
            }
        }
    }
}

/// The peer, its gids (supplementary and primary) and the request.
pub(super) fn split<T>(req: Request<T>) -> ((Peer, Vec<u32>), T) {
    let info = peer_info(&req);
    let mut gids: Vec<u32> = info.as_ref().map(|i| i.groups.to_vec()).unwrap_or_default();
    let peer = info.and_then(|i| i.peer).unwrap_or(Peer {
        uid: u32::MAX,
        gid: u32::MAX,
        pid: 0,
    });
    gids.push(peer.gid);
    ((peer, gids), req.into_inner())
}

//! Who is calling: peer credentials read once per connection (SO_PEERCRED, SO_PEERGROUPS) and
//! carried to every request, and the interceptor that admits or refuses the peer (`auth::PeerPolicy`).

use super::authority::AuthorityFix;
use crate::auth::{self, Peer};
use std::sync::Arc;
use tonic::{Request, Status};

/// Who is on the other end of a connection, read once when it is accepted.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub peer: Option<Peer>,
    /// Supplementary groups (SO_PEERGROUPS; /proc as a fallback).
    pub groups: Arc<Vec<u32>>,
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
}

impl PeerConn {
    pub fn new(inner: tokio::net::UnixStream) -> PeerConn {
        use std::os::fd::AsRawFd;
        let peer = inner.peer_cred().ok().map(|c| Peer {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid().unwrap_or(0),
        });
        let groups = auth::peer_groups(inner.as_raw_fd())
            .or_else(|| peer.map(|p| auth::groups_of(p.pid)))
            .unwrap_or_default();
        PeerConn {
            inner,
            info: PeerInfo {
                peer,
                groups: Arc::new(groups),
            },
            authority: AuthorityFix::default(),
            pending: Vec::new(),
            taken: 0,
        }
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
                    if let Err(e) = this.authority.feed(raw.filled(), &mut this.pending) {
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
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
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

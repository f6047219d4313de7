//! Accepting connections without starving: the open-file limit raised at start, connection caps
//! derived from it, and an accept loop that backs off (and says so, at warn) when the process is
//! out of file descriptors or memory instead of retrying at once, and closes connections over a
//! cap as soon as they are accepted.

use crate::api::conns::{Backoff, Cap, ConnShared, WarnEvery, WARN_PERIOD};
use crate::api::{PeerConn, Refused};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// First and longest pause after a failed accept.
pub const BACKOFF_MIN: Duration = Duration::from_millis(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The open-file limit, (soft, hard).
pub fn nofile() -> Option<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass, which lives across the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return None;
    }
    Some((r.rlim_cur, r.rlim_max))
}

/// Raise the soft open-file limit to the hard one (systemd's default soft limit is 1,024) and
/// log both. Any process may raise its soft limit up to its hard one.
pub fn raise_nofile() {
    let Some((soft, hard)) = nofile() else {
        tracing::warn!(
            "cannot read the open-file limit: {}",
            std::io::Error::last_os_error()
        );
        return;
    };
    if soft >= hard {
        tracing::info!(soft, hard, "open-file limit: {soft}");
        return;
    }
    let r = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct we pass, which lives across the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } != 0 {
        tracing::warn!(
            soft,
            hard,
            "cannot raise the open-file limit from {soft} to {hard}: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    tracing::info!(
        soft = hard,
        hard,
        "open-file limit raised from {soft} to {hard}"
    );
}

/// The connection caps in force: the configured ones, with the total at most half the soft
/// open-file limit (the other half is for the sandboxes' pipes and the daemon's own files), and
/// the per-uid cap at most the total.
pub fn effective_caps(
    max_total: usize,
    max_per_uid: usize,
    soft_nofile: Option<u64>,
) -> (usize, usize) {
    let fd_bound = soft_nofile
        .map(|s| usize::try_from(s / 2).unwrap_or(usize::MAX).max(1))
        .unwrap_or(usize::MAX);
    let total = max_total.min(fd_bound);
    (total, max_per_uid.min(total))
}

/// Whether an accept error means the process (or system) is out of a resource: retrying at once
/// would spin.
pub fn out_of_resources(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// The connections to serve: accepted by a task of their own, each with its place under the
/// caps. Ends (and drops the listener) when the receiver is dropped.
pub fn incoming(
    listener: tokio::net::UnixListener,
    shared: Arc<ConnShared>,
) -> tokio_stream::wrappers::ReceiverStream<Result<PeerConn, std::io::Error>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(accept_loop(listener, shared, tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: tokio::net::UnixListener,
    shared: Arc<ConnShared>,
    tx: mpsc::Sender<Result<PeerConn, std::io::Error>>,
) {
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    let exhausted = WarnEvery::new(WARN_PERIOD);
    let failed = WarnEvery::new(WARN_PERIOD);
    // One limiter per cap: a flood held by one cap does not hide the other's refusals.
    let capped_total = WarnEvery::new(WARN_PERIOD);
    let capped_per_uid = WarnEvery::new(WARN_PERIOD);
    loop {
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, _)) => {
                backoff.reset();
                match PeerConn::new(stream, &shared) {
                    Ok(conn) => {
                        if tx.send(Ok(conn)).await.is_err() {
                            return;
                        }
                    }
                    Err(Refused { peer, cap, stream }) => {
                        super::goaway::refuse(
                            stream,
                            &super::goaway::reason(
                                cap,
                                peer.map(|p| p.uid),
                                shared.limits.max_total,
                                shared.limits.max_per_uid,
                            ),
                        );
                        let limiter = match cap {
                            Cap::Total => &capped_total,
                            Cap::PerUid => &capped_per_uid,
                        };
                        if let Some(held) = limiter.ready(Instant::now()) {
                            let (total, per_uid) =
                                (shared.limits.max_total, shared.limits.max_per_uid);
                            let uid = peer.map(|p| p.uid);
                            let who = uid.map_or("a peer without credentials".to_string(), |u| {
                                format!("uid {u}")
                            });
                            let open_for = uid.map_or(0, |u| shared.limits.open_for(u));
                            tracing::warn!(
                                peer_uid = uid,
                                peer_pid = peer.map(|p| p.pid),
                                cap = cap.key(),
                                connections = shared.limits.open(),
                                connections_of_uid = open_for,
                                more = held,
                                "closed a new connection from {who}: {} reached (max_connections={total}, max_connections_per_uid={per_uid}; {open_for} open from {who}) ({held} more refused since the last such warning)",
                                cap.key()
                            );
                        }
                    }
                }
            }
            Err(e) => {
                let delay = backoff.next_delay();
                let (limiter, what) = if out_of_resources(&e) {
                    (&exhausted, "out of resources")
                } else {
                    (&failed, "failed")
                };
                if let Some(held) = limiter.ready(Instant::now()) {
                    tracing::warn!(
                        error = %e,
                        connections = shared.limits.open(),
                        open_files = nofile().map(|(soft, _)| soft),
                        retry_ms = delay.as_millis() as u64,
                        more = held,
                        "accepting a connection {what}: {e}; retrying in {} ms, serving the {} open connections meanwhile; if this recurs, raise LimitNOFILE= or lower max_connections ({held} more since the last such warning)",
                        delay.as_millis(),
                        shared.limits.open()
                    );
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_follow_the_open_file_limit() {
        assert_eq!(effective_caps(512, 64, Some(65_536)), (512, 64));
        assert_eq!(effective_caps(512, 64, Some(1_024)), (512, 64));
        assert_eq!(effective_caps(512, 64, Some(256)), (128, 64));
        assert_eq!(effective_caps(512, 64, Some(64)), (32, 32));
        assert_eq!(effective_caps(512, 64, Some(1)), (1, 1));
        assert_eq!(effective_caps(512, 64, None), (512, 64));
    }

    #[test]
    fn resource_errors_are_told_apart() {
        for e in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert!(out_of_resources(&std::io::Error::from_raw_os_error(e)));
        }
        for e in [libc::ECONNABORTED, libc::EINVAL, libc::EPERM] {
            assert!(!out_of_resources(&std::io::Error::from_raw_os_error(e)));
        }
    }

    #[tokio::test]
    async fn over_cap_connections_are_closed_at_once_and_the_rest_served() {
        use crate::api::conns::{ConnLimits, ConnTimeouts};
        use tokio::io::AsyncReadExt;
        use tokio_stream::StreamExt;
        let dir = std::env::temp_dir().join(format!("sandboxd-accept-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let l = tokio::net::UnixListener::bind(&path).unwrap();
        let shared = ConnShared::new(
            ConnLimits::new(10, 2),
            ConnTimeouts {
                handshake: Duration::from_secs(60),
                idle: Duration::from_secs(60),
            },
        );
        let mut inc = incoming(l, shared.clone());
        let mut clients = vec![];
        for _ in 0..3 {
            clients.push(tokio::net::UnixStream::connect(&path).await.unwrap());
        }
        let a = inc.next().await.unwrap().unwrap();
        let b = inc.next().await.unwrap().unwrap();
        // The third is over the per-uid cap of 2: told why (SETTINGS + GOAWAY once its request
        // is in), closed, never handed on.
        use tokio::io::AsyncWriteExt;
        let request = [
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
            &[0, 0, 0, 0x4, 0, 0, 0, 0, 0],
            &[0, 0, 1, 0x1, 0x4, 0, 0, 0, 1, 0x82],
        ]
        .concat();
        clients[2].write_all(&request).await.unwrap();
        let mut got = vec![];
        tokio::time::timeout(Duration::from_secs(5), clients[2].read_to_end(&mut got))
            .await
            .expect("the over-cap connection is closed at once")
            .unwrap();
        assert_eq!(got[12], 0x7, "a GOAWAY follows the SETTINGS frame: {got:?}");
        assert!(
            String::from_utf8_lossy(&got).contains("max_connections_per_uid=2"),
            "{got:?}"
        );
        let mut buf = [0u8; 1];
        assert_eq!(shared.limits.open(), 2);
        // The held ones are still open.
        let r = tokio::time::timeout(Duration::from_millis(200), clients[0].read(&mut buf)).await;
        assert!(r.is_err(), "a connection under the cap stays open: {r:?}");
        drop((a, b));
        assert_eq!(shared.limits.open(), 0);
        let _c = tokio::net::UnixStream::connect(&path).await.unwrap();
        assert!(
            inc.next().await.unwrap().is_ok(),
            "a place freed is taken again"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

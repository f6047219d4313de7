//! Telling a client refused by a connection cap why, in HTTP/2's own words: the server's SETTINGS
//! preface and a GOAWAY with ENHANCE_YOUR_CALM and a one-line reason, written without waiting.
//! Without them the client's first write fails and it reports "Broken pipe", which says nothing
//! about the cap. Standard clients show the code (tonic/h2: "ENHANCE_YOUR_CALM"; grpcio prints the
//! reason as well).

use crate::api::conns::Cap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// HTTP/2 error code ENHANCE_YOUR_CALM (RFC 9113 §7): "excessive load".
pub const ENHANCE_YOUR_CALM: u32 = 0xb;
/// The reason is one line for a log, well inside one frame (16 KiB minimum frame size).
const MAX_REASON: usize = 512;

/// The reason sent to the client: which cap, its value, what to do.
pub fn reason(cap: Cap, uid: Option<u32>, max_total: usize, max_per_uid: usize) -> String {
    let who = uid.map_or("this peer".to_string(), |u| format!("uid {u}"));
    match cap {
        Cap::Total => format!(
            "sandboxd refused the connection: max_connections={max_total} connections are open; \
             retry later, or the operator raises max_connections in sandboxd.toml"
        ),
        Cap::PerUid => format!(
            "sandboxd refused the connection: {who} already has max_connections_per_uid=\
             {max_per_uid} connections open; close idle ones, or the operator raises \
             max_connections_per_uid in sandboxd.toml"
        ),
    }
}

/// The bytes a refused connection gets: an empty SETTINGS frame (the server preface) and a
/// GOAWAY naming no stream (last stream id 0: nothing was or will be processed).
pub fn frames(reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let debug = &reason.as_bytes()[..cut];
    let mut out = Vec::with_capacity(9 + 9 + 8 + debug.len());
    // SETTINGS: length 0, type 0x4, no flags, stream 0.
    out.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    let len = (8 + debug.len()) as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[0x7, 0]);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
    out.extend_from_slice(debug);
    out
}

/// How many refused connections may wait at once for their client to read the GOAWAY; more are
/// closed at once (their clients then see only a closed connection). Bounded so that a flood of
/// refused connections cannot hold more than this many extra descriptors.
const MAX_LINGERING: usize = 64;
/// How long a refused connection waits for its client to read the GOAWAY and close.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// Send the frames, then keep the connection until the client closes it (at most `LINGER`):
/// a client answers the SETTINGS with an ACK before it handles the GOAWAY, and if that write
/// fails it reports the broken pipe instead of the reason.
pub fn refuse(stream: tokio::net::UnixStream, reason: &str) {
    if LINGERING.fetch_add(1, Ordering::Relaxed) >= MAX_LINGERING {
        LINGERING.fetch_sub(1, Ordering::Relaxed);
        let _ = stream.try_write(&frames(reason));
        return;
    }
    let bytes = frames(reason);
    tokio::spawn(async move {
        let _ = tokio::time::timeout(LINGER, linger(stream, &bytes)).await;
        LINGERING.fetch_sub(1, Ordering::Relaxed);
    });
}

async fn linger(mut stream: tokio::net::UnixStream, bytes: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream.write_all(bytes).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    // Read (and drop) what the client sends until it closes: at most 64 KiB.
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match stream.read(&mut sink).await {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_a_settings_preface_and_a_goaway() {
        let f = frames("why");
        assert_eq!(&f[..9], &[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        // GOAWAY header: length 8 + 3, type 7, flags 0, stream 0.
        assert_eq!(&f[9..18], &[0, 0, 11, 7, 0, 0, 0, 0, 0]);
        assert_eq!(&f[18..22], &[0, 0, 0, 0], "last stream id 0");
        assert_eq!(&f[22..26], &[0, 0, 0, 0xb], "ENHANCE_YOUR_CALM");
        assert_eq!(&f[26..], b"why");
    }

    #[test]
    fn a_long_reason_is_cut_on_a_character_boundary() {
        let f = frames(&"é".repeat(1000));
        let debug = &f[26..];
        assert!(debug.len() <= MAX_REASON);
        assert!(std::str::from_utf8(debug).is_ok());
        let len = u32::from_be_bytes([0, f[9], f[10], f[11]]) as usize;
        assert_eq!(len, 8 + debug.len());
    }

    #[test]
    fn the_reason_names_the_cap_and_its_value() {
        let r = reason(Cap::PerUid, Some(1000), 512, 64);
        assert!(
            r.contains("uid 1000") && r.contains("max_connections_per_uid=64"),
            "{r}"
        );
        let r = reason(Cap::Total, None, 512, 64);
        assert!(r.contains("max_connections=512"), "{r}");
    }
}

//! Telling a client refused by a connection cap why, in HTTP/2's own words: the server's SETTINGS
//! preface and, once the client's first request is in, a GOAWAY with ENHANCE_YOUR_CALM and a
//! one-line reason.
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

/// An empty SETTINGS frame (length 0, type 0x4, no flags, stream 0): the server preface.
pub const SETTINGS: [u8; 9] = [0, 0, 0, 0x4, 0, 0, 0, 0, 0];

/// A GOAWAY naming no stream (last stream id 0: nothing was or will be processed) with
/// ENHANCE_YOUR_CALM and `reason` (cut to `MAX_REASON` bytes on a character boundary) as its
/// debug data.
pub fn goaway(reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let debug = &reason.as_bytes()[..cut];
    let mut out = Vec::with_capacity(9 + 8 + debug.len());
    let len = (8 + debug.len()) as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[0x7, 0]);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
    out.extend_from_slice(debug);
    out
}

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// HTTP/2 frame type HEADERS: a request.
const HEADERS: u8 = 0x1;

/// Whether the bytes a client sent so far hold the start of a HEADERS frame (its first
/// request), read past the preface and the whole frames before it (SETTINGS, WINDOW_UPDATE…).
///
/// Why wait for it: a GOAWAY that reaches the client before it sent its request ends the
/// connection with no stream to fail, and the client (hyper) then reports only "connection
/// closed"; a GOAWAY that arrives after the request fails that request with the GOAWAY's code.
///
/// Resumable: `cursor` is where the next whole frame starts (0 before the preface was seen) and
/// moves past every whole frame read, so each byte is parsed once however the client splits its
/// writes (re-parsing from the start on each read would be quadratic in a flood of tiny frames).
fn scan(sent: &[u8], cursor: &mut usize) -> bool {
    if *cursor == 0 {
        if !sent.starts_with(PREFACE) {
            return false;
        }
        *cursor = PREFACE.len();
    }
    while let Some(rest) = sent.get(*cursor..).filter(|r| r.len() >= 9) {
        if rest[3] == HEADERS {
            return true;
        }
        let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        if rest.len() < 9 + len {
            return false;
        }
        *cursor += 9 + len;
    }
    false
}

/// How many refused connections may wait at once for their client; more are closed at once
/// after one try to write SETTINGS + GOAWAY (their clients may then see only a closed
/// connection). Bounded so that a flood of refused connections cannot hold more than this many
/// extra descriptors.
const MAX_LINGERING: usize = 64;
/// How long a refused connection waits for its client's first request before the GOAWAY is
/// sent anyway (a client that sends nothing, or waits for something else).
const WAIT_FOR_REQUEST: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a refused connection is kept in all: waiting for the request, then for the client to
/// read the GOAWAY and close.
const LINGER: std::time::Duration = std::time::Duration::from_secs(3);
/// The most a refused client may send before its GOAWAY; more is not read.
const MAX_READ: usize = 64 << 10;
static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// Tell the client why, in order: SETTINGS at once (some clients, grpc-go, send no request
/// before the server's preface), then GOAWAY once the client's first request is in (or after
/// `WAIT_FOR_REQUEST`), then keep the connection until the client closes it (at most `LINGER`
/// in all): a client answers the SETTINGS with an ACK, and if that write failed it would report
/// the broken pipe instead of the reason.
pub fn refuse(stream: tokio::net::UnixStream, reason: &str) {
    let away = goaway(reason);
    if LINGERING.fetch_add(1, Ordering::Relaxed) >= MAX_LINGERING {
        LINGERING.fetch_sub(1, Ordering::Relaxed);
        let _ = stream.try_write(&[&SETTINGS[..], &away].concat());
        return;
    }
    tokio::spawn(async move {
        let _ = tokio::time::timeout(LINGER, linger(stream, &away)).await;
        LINGERING.fetch_sub(1, Ordering::Relaxed);
    });
}

async fn linger(mut stream: tokio::net::UnixStream, away: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream.write_all(&SETTINGS).await.is_err() {
        return;
    }
    let mut sent = Vec::new();
    let mut chunk = [0u8; 4096];
    let wait = tokio::time::sleep(WAIT_FOR_REQUEST);
    tokio::pin!(wait);
    let mut cursor = 0;
    while !scan(&sent, &mut cursor) && sent.len() < MAX_READ {
        tokio::select! {
            _ = &mut wait => break,
            r = stream.read(&mut chunk) => match r {
                Ok(n) if n > 0 => sent.extend_from_slice(&chunk[..n]),
                _ => return,
            },
        }
    }
    if stream.write_all(away).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    // Read (and drop) what the client sends until it closes: at most 64 KiB more.
    for _ in 0..16 {
        match stream.read(&mut chunk).await {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frames_are_a_settings_preface_and_a_goaway() {
        let f = [&SETTINGS[..], &goaway("why")].concat();
        assert_eq!(&f[..9], &[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        // GOAWAY header: length 8 + 3, type 7, flags 0, stream 0.
        assert_eq!(&f[9..18], &[0, 0, 11, 7, 0, 0, 0, 0, 0]);
        assert_eq!(&f[18..22], &[0, 0, 0, 0], "last stream id 0");
        assert_eq!(&f[22..26], &[0, 0, 0, 0xb], "ENHANCE_YOUR_CALM");
        assert_eq!(&f[26..], b"why");
    }

    #[test]
    fn a_long_reason_is_cut_on_a_character_boundary() {
        let f = [&SETTINGS[..], &goaway(&"é".repeat(1000))].concat();
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

    #[test]
    fn scanning_in_pieces_sees_what_scanning_at_once_sees_and_parses_each_frame_once() {
        let settings = [0, 0, 6, 0x4, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0];
        let empty = [0, 0, 0, 0x8, 0, 0, 0, 0, 0];
        let headers = [0, 0, 1, 0x1, 0x4, 0, 0, 0, 1, 0x82];
        let mut all = [PREFACE, &settings].concat();
        for _ in 0..100 {
            all.extend_from_slice(&empty);
        }
        all.extend_from_slice(&headers);
        let mut cursor = 0;
        for end in 0..all.len() {
            let seen = scan(&all[..end], &mut cursor);
            assert_eq!(seen, scan(&all[..end], &mut 0), "at {end}");
            assert!(cursor <= end.max(PREFACE.len()), "never past what was sent");
        }
        assert!(scan(&all, &mut cursor));
        assert_eq!(
            cursor,
            all.len() - headers.len(),
            "stops at the HEADERS frame"
        );
    }

    #[test]
    fn a_request_is_seen_only_after_the_preface_and_whole_frames_before_it() {
        let settings = [0, 0, 6, 0x4, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0];
        let window = [0, 0, 4, 0x8, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        let headers = [0, 0, 3, 0x1, 0x4, 0, 0, 0, 1, 0x82, 0x86, 0x84];
        let all = [PREFACE, &settings, &window, &headers].concat();
        let request_seen = |sent: &[u8]| scan(sent, &mut 0);
        assert!(request_seen(&all));
        assert!(
            !request_seen(&all[..PREFACE.len() + 15 + 13 + 3]),
            "header cut"
        );
        assert!(!request_seen(&[PREFACE, &settings, &window].concat()));
        assert!(!request_seen(&headers), "no preface: not HTTP/2");
        assert!(!request_seen(&all[..10]));
        // A frame whose length runs past what was sent is not skipped over.
        let mut long = [PREFACE, &settings].concat();
        long[PREFACE.len() + 2] = 200;
        assert!(!request_seen(&[&long[..], &headers].concat()));
    }
}

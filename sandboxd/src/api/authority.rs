//! Any `:authority` a gRPC client sends over the Unix socket is accepted.
//!
//! Standard gRPC clients (grpcio, grpc-core based ones) name a `unix:/run/x.sock` target's
//! authority after the path (`run%2Fx.sock`), which the `http` crate, and so h2 under tonic,
//! rejects as a malformed request: the client sees an opaque `RST_STREAM` with PROTOCOL_ERROR.
//! On a Unix socket the authority means nothing (peers are authenticated by `SO_PEERCRED`), so
//! this rewrites an authority h2 would refuse to `localhost` before h2 reads the bytes.
//!
//! It is sans-IO: [`AuthorityFix::feed`] takes the bytes the client sent and appends what h2
//! should read. Frames other than HEADERS/CONTINUATION pass through untouched as they arrive.
//! Header blocks are HPACK-decoded with the client's dynamic table. While no block needed a
//! change they are forwarded as they were, so h2's decoder keeps the client's table; from the
//! first rewritten block on, each block is re-encoded with an encoder of our own, after a table
//! size update to 0 that empties h2's table so both start from the same empty state.
//!
//! Bounds: a header block is at most [`MAX_BLOCK`] bytes encoded and [`MAX_DECODED`] decoded
//! (h2 itself refuses lists above 16 KiB); beyond, or on bytes that are not HTTP/2, `feed`
//! returns an error and the connection is closed.

use std::borrow::Cow;

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The largest frame payload every HTTP/2 peer accepts (SETTINGS_MAX_FRAME_SIZE's minimum).
const MAX_FRAME: usize = 16_384;
/// The HPACK dynamic table size h2 advertises (the protocol default; tonic does not change it).
const TABLE_SIZE: usize = 4_096;
/// The largest header block accepted, encoded, in bytes.
pub const MAX_BLOCK: usize = 256 * 1024;
/// The largest header list accepted, decoded (names + values + 32 per field, as RFC 7541 counts).
pub const MAX_DECODED: usize = 64 * 1024;
/// What an authority h2 would refuse becomes.
pub const LOCALHOST: &[u8] = b"localhost";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthorityError {
    #[error("a header block is larger than {MAX_BLOCK} bytes")]
    BlockTooLarge,
    #[error("a header list decodes to more than {MAX_DECODED} bytes")]
    ListTooLarge,
    #[error("a header block does not decode as HPACK: {0}")]
    Hpack(String),
    #[error("a CONTINUATION frame was expected on stream {0}")]
    ContinuationExpected(u32),
    #[error("a HEADERS frame's padding or priority is longer than the frame")]
    BadPadding,
}

enum State {
    /// Bytes of the preface still to pass.
    Preface(usize),
    /// Collecting a frame header.
    Header,
    /// Passing `left` bytes of a frame's payload through.
    Payload { left: usize },
    /// Collecting a HEADERS or CONTINUATION payload of `len` bytes.
    Block { len: usize },
}

/// The rewriter for one connection, client → server direction.
pub struct AuthorityFix {
    state: State,
    /// The frame header or header-block payload being collected.
    buf: Vec<u8>,
    /// The header block so far: stream, END_STREAM, fragments.
    block: Option<(u32, u8, Vec<u8>)>,
    /// The client's HPACK table, as the client's encoder keeps it.
    decoder: loona_hpack::Decoder<'static>,
    /// Set once a block was re-encoded: h2's table then follows `encoder`, not the client's.
    encoder: Option<loona_hpack::Encoder<'static>>,
    /// Set once the preface passed and a first frame header was read: the handshake is done.
    framed: bool,
}

impl Default for AuthorityFix {
    fn default() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(TABLE_SIZE);
        AuthorityFix {
            state: State::Preface(PREFACE.len()),
            buf: Vec::new(),
            block: None,
            decoder,
            encoder: None,
            framed: false,
        }
    }
}

/// Whether h2 accepts `value` as an `:authority`.
pub fn acceptable(value: &[u8]) -> bool {
    tonic::codegen::http::uri::Authority::try_from(value).is_ok()
}

impl AuthorityFix {
    /// Consume what the client sent; append to `out` what h2 should read instead.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), AuthorityError> {
        while !input.is_empty() {
            match &mut self.state {
                State::Preface(left) => {
                    let n = (*left).min(input.len());
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    *left -= n;
                    if *left == 0 {
                        self.state = State::Header;
                    }
                }
                State::Payload { left } => {
                    let n = (*left).min(input.len());
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    *left -= n;
                    if *left == 0 {
                        self.state = State::Header;
                    }
                }
                State::Header => {
                    let n = (FRAME_HEADER - self.buf.len()).min(input.len());
                    self.buf.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if self.buf.len() == FRAME_HEADER {
                        self.frame_header(out)?;
                    }
                }
                State::Block { len } => {
                    let n = (*len - self.buf.len()).min(input.len());
                    self.buf.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if self.buf.len() == *len {
                        self.block_payload(out)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether the client sent the whole preface and a first frame header (the HTTP/2
    /// handshake's share a client owes before the connection counts as established).
    pub fn handshake_done(&self) -> bool {
        self.framed
    }

    fn frame_header(&mut self, out: &mut Vec<u8>) -> Result<(), AuthorityError> {
        self.framed = true;
        let h = &self.buf;
        let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
        let kind = h[3];
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        if let Some((expected, _, _)) = &self.block {
            if kind != CONTINUATION || stream != *expected {
                return Err(AuthorityError::ContinuationExpected(*expected));
            }
        }
        if kind == HEADERS || (kind == CONTINUATION && self.block.is_some()) {
            let collected = self.block.as_ref().map_or(0, |b| b.2.len());
            if collected + len > MAX_BLOCK {
                return Err(AuthorityError::BlockTooLarge);
            }
            // The header stays in `buf`'s first 9 bytes until the payload is complete.
            self.state = State::Block {
                len: FRAME_HEADER + len,
            };
            if len == 0 {
                self.block_payload(out)?;
            }
        } else {
            out.extend_from_slice(h);
            self.buf.clear();
            self.state = if len == 0 {
                State::Header
            } else {
                State::Payload { left: len }
            };
        }
        Ok(())
    }

    fn block_payload(&mut self, out: &mut Vec<u8>) -> Result<(), AuthorityError> {
        let frame = std::mem::take(&mut self.buf);
        self.state = State::Header;
        let (kind, flags) = (frame[3], frame[4]);
        let stream = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let mut payload = &frame[FRAME_HEADER..];
        if kind == HEADERS {
            if flags & PADDED != 0 {
                let (&pad, rest) = payload.split_first().ok_or(AuthorityError::BadPadding)?;
                let keep = rest
                    .len()
                    .checked_sub(usize::from(pad))
                    .ok_or(AuthorityError::BadPadding)?;
                payload = &rest[..keep];
            }
            if flags & PRIORITY != 0 {
                // Stream dependency and weight: h2 does not use them; they are dropped.
                payload = payload.get(5..).ok_or(AuthorityError::BadPadding)?;
            }
            self.block = Some((stream, flags & END_STREAM, Vec::new()));
        }
        let Some((_, end_stream, fragments)) = &mut self.block else {
            return Err(AuthorityError::ContinuationExpected(stream));
        };
        fragments.extend_from_slice(payload);
        if flags & END_HEADERS == 0 {
            return Ok(());
        }
        let end_stream = *end_stream;
        let fragments = std::mem::take(fragments);
        self.block = None;
        let block = self.rewrite(fragments)?;
        write_block(out, stream, end_stream, &block);
        Ok(())
    }

    /// The header block h2 should decode in place of `block`.
    fn rewrite(&mut self, block: Vec<u8>) -> Result<Vec<u8>, AuthorityError> {
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut size = 0usize;
        let mut changed = false;
        let decoder = &mut self.decoder;
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decoder.decode_with_cb(&block, |name: Cow<[u8]>, value: Cow<[u8]>| {
                size += name.len() + value.len() + 32;
                if size > MAX_DECODED {
                    return;
                }
                if name.as_ref() == b":authority" && !acceptable(&value) {
                    changed = true;
                    fields.push((name.into_owned(), LOCALHOST.to_vec()));
                } else {
                    fields.push((name.into_owned(), value.into_owned()));
                }
            })
        }));
        match decoded {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(AuthorityError::Hpack(format!("{e:?}"))),
            Err(_) => return Err(AuthorityError::Hpack("the decoder failed".into())),
        }
        if size > MAX_DECODED {
            return Err(AuthorityError::ListTooLarge);
        }
        if !changed && self.encoder.is_none() {
            return Ok(block);
        }
        let mut encoded = Vec::with_capacity(block.len() + 16);
        let encoder = match &mut self.encoder {
            Some(e) => e,
            None => {
                // h2's table holds what the client's blocks put there; empty it, then allow it
                // to grow again, so it matches a new encoder's empty table (RFC 7541 §4.4, §6.3).
                encoded.push(0x20);
                encoded.extend_from_slice(&loona_hpack::encoder::encode_integer(TABLE_SIZE, 5));
                if let Some(first) = encoded.get_mut(1) {
                    *first |= 0x20;
                }
                self.encoder.insert(loona_hpack::Encoder::new())
            }
        };
        for (n, v) in &fields {
            encoder
                .encode_header_into((n, v), &mut encoded)
                .map_err(|e| AuthorityError::Hpack(e.to_string()))?;
        }
        Ok(encoded)
    }
}

/// A header block as a HEADERS frame and as many CONTINUATION frames as it needs.
fn write_block(out: &mut Vec<u8>, stream: u32, end_stream: u8, block: &[u8]) {
    let mut chunks = block.chunks(MAX_FRAME).peekable();
    let mut kind = HEADERS;
    let mut flags = end_stream;
    if chunks.peek().is_none() {
        frame(out, HEADERS, end_stream | END_HEADERS, stream, &[]);
        return;
    }
    while let Some(chunk) = chunks.next() {
        if chunks.peek().is_none() {
            flags |= END_HEADERS;
        }
        frame(out, kind, flags, stream, chunk);
        kind = CONTINUATION;
        flags = 0;
    }
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len();
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authority: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![
            (b":method".to_vec(), b"POST".to_vec()),
            (b":scheme".to_vec(), b"http".to_vec()),
            (b":path".to_vec(), b"/grpc.health.v1.Health/Check".to_vec()),
            (b":authority".to_vec(), authority.to_vec()),
            (b"content-type".to_vec(), b"application/grpc".to_vec()),
            (b"te".to_vec(), b"trailers".to_vec()),
        ]
    }

    fn encode(e: &mut loona_hpack::Encoder, h: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        e.encode(h.iter().map(|(n, v)| (n.as_slice(), v.as_slice())))
    }

    /// Parse the frames in `bytes` (after the preface), decode every header block with one
    /// decoder, as h2 does; return (stream, end_stream, headers) and the other frames.
    type Decoded = (u32, bool, Vec<(Vec<u8>, Vec<u8>)>);
    fn server_view(bytes: &[u8]) -> (Vec<Decoded>, Vec<(u8, Vec<u8>)>) {
        assert!(bytes.starts_with(PREFACE));
        let mut b = &bytes[PREFACE.len()..];
        let mut d = loona_hpack::Decoder::new();
        let (mut blocks, mut others) = (vec![], vec![]);
        let mut pending: Option<(u32, bool, Vec<u8>)> = None;
        while !b.is_empty() {
            let len = (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]);
            let (kind, flags) = (b[3], b[4]);
            let stream = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
            let payload = &b[9..9 + len];
            b = &b[9 + len..];
            match kind {
                HEADERS => {
                    assert_eq!(flags & (PADDED | PRIORITY), 0);
                    pending = Some((stream, flags & END_STREAM != 0, payload.to_vec()));
                }
                CONTINUATION => pending.as_mut().unwrap().2.extend_from_slice(payload),
                _ => others.push((kind, payload.to_vec())),
            }
            if (kind == HEADERS || kind == CONTINUATION) && flags & END_HEADERS != 0 {
                assert!(len <= MAX_FRAME);
                let (s, e, block) = pending.take().unwrap();
                blocks.push((s, e, d.decode(&block).unwrap()));
            }
        }
        (blocks, others)
    }

    fn run(bytes: &[u8], chunk: usize) -> Result<Vec<u8>, AuthorityError> {
        let mut fix = AuthorityFix::default();
        let mut out = vec![];
        for c in bytes.chunks(chunk) {
            fix.feed(c, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn what_h2_refuses_is_recognised() {
        assert!(acceptable(b"localhost"));
        assert!(acceptable(b"[::1]:50051"));
        assert!(acceptable(b"sandboxd.sock"));
        assert!(!acceptable(b"tmp%2Fg1%2Fs.sock"));
        assert!(!acceptable(b"/run/nanobot/sandboxd.sock"));
        assert!(!acceptable(b""));
    }

    #[test]
    fn a_unix_path_authority_becomes_localhost_and_the_tables_stay_in_step() {
        // What grpcio sends for unix:/tmp/g1/s.sock, then the same authority again from the
        // client's dynamic table, then a request whose authority was fine all along.
        let mut client = loona_hpack::Encoder::new();
        let mut wire = PREFACE.to_vec();
        frame(&mut wire, 0x4, 0, 0, &[]); // SETTINGS
        let reqs = [
            headers(b"tmp%2Fg1%2Fs.sock"),
            headers(b"tmp%2Fg1%2Fs.sock"),
            headers(b"localhost"),
        ];
        for (i, h) in reqs.iter().enumerate() {
            let block = encode(&mut client, h);
            let stream = 1 + 2 * i as u32;
            frame(&mut wire, HEADERS, END_HEADERS, stream, &block);
            frame(&mut wire, 0x0, END_STREAM, stream, b"\0\0\0\0\0"); // DATA
        }
        for chunk in [1, 7, 4096] {
            let out = run(&wire, chunk).unwrap();
            let (blocks, others) = server_view(&out);
            assert_eq!(blocks.len(), 3);
            for (i, (stream, end, h)) in blocks.iter().enumerate() {
                assert_eq!((*stream, *end), (1 + 2 * i as u32, false));
                assert_eq!(h, &headers(b"localhost"), "request {i}, chunk {chunk}");
            }
            assert_eq!(others.len(), 4, "SETTINGS and three DATA frames pass");
            assert_eq!(others[1], (0x0, b"\0\0\0\0\0".to_vec()));
        }
    }

    #[test]
    fn blocks_that_need_nothing_pass_as_they_were() {
        let mut client = loona_hpack::Encoder::new();
        let mut wire = PREFACE.to_vec();
        for i in 0..3u32 {
            let block = encode(&mut client, &headers(b"localhost"));
            frame(
                &mut wire,
                HEADERS,
                END_HEADERS | END_STREAM,
                1 + 2 * i,
                &block,
            );
        }
        assert_eq!(run(&wire, 5).unwrap(), wire);
    }

    #[test]
    fn padding_priority_and_continuations_are_understood() {
        let mut client = loona_hpack::Encoder::new();
        let mut h = headers(b"run%2Fx.sock");
        // A big header forces CONTINUATION frames on the way out too.
        h.push((b"x-big".to_vec(), vec![b'a'; 40_000]));
        let block = encode(&mut client, &h);
        let mut wire = PREFACE.to_vec();
        let (first, rest) = block.split_at(100);
        let mut payload = vec![3u8]; // pad length
        payload.extend_from_slice(&[0, 0, 0, 0, 16]); // priority
        payload.extend_from_slice(first);
        payload.extend_from_slice(&[0, 0, 0]);
        frame(
            &mut wire,
            HEADERS,
            PADDED | PRIORITY | END_STREAM,
            5,
            &payload,
        );
        let mut chunks = rest.chunks(10_000).peekable();
        while let Some(c) = chunks.next() {
            let flags = if chunks.peek().is_none() {
                END_HEADERS
            } else {
                0
            };
            frame(&mut wire, CONTINUATION, flags, 5, c);
        }
        let (blocks, _) = server_view(&run(&wire, 333).unwrap());
        let mut want = h.clone();
        want[3].1 = LOCALHOST.to_vec();
        assert_eq!(blocks, vec![(5, true, want)]);
    }

    #[test]
    fn hostile_blocks_are_refused_with_bounded_memory() {
        // Not HPACK.
        let mut wire = PREFACE.to_vec();
        frame(
            &mut wire,
            HEADERS,
            END_HEADERS,
            1,
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        );
        assert!(matches!(run(&wire, 64), Err(AuthorityError::Hpack(_))));
        // A block that never ends grows no further than MAX_BLOCK.
        let mut wire = PREFACE.to_vec();
        frame(&mut wire, HEADERS, 0, 1, &[0x82]);
        for _ in 0..20 {
            frame(&mut wire, CONTINUATION, 0, 1, &[0x82; MAX_FRAME]);
        }
        assert_eq!(run(&wire, 4096), Err(AuthorityError::BlockTooLarge));
        // A small block that references a big table entry many times (a decompression bomb).
        let mut client = loona_hpack::Encoder::new();
        let mut wire = PREFACE.to_vec();
        let big = vec![(b"x-big".to_vec(), vec![b'a'; 3_000])];
        frame(
            &mut wire,
            HEADERS,
            END_HEADERS,
            1,
            &encode(&mut client, &big),
        );
        let mut bomb = vec![];
        for _ in 0..100 {
            bomb.extend(encode(&mut client, &big));
        }
        frame(&mut wire, HEADERS, END_HEADERS, 3, &bomb);
        assert_eq!(run(&wire, 4096), Err(AuthorityError::ListTooLarge));
        // Another frame in the middle of a header block.
        let mut wire = PREFACE.to_vec();
        frame(&mut wire, HEADERS, 0, 1, &[0x82]);
        frame(&mut wire, 0x0, 0, 1, b"x");
        assert_eq!(run(&wire, 1), Err(AuthorityError::ContinuationExpected(1)));
        // Padding longer than the frame.
        let mut wire = PREFACE.to_vec();
        frame(&mut wire, HEADERS, PADDED | END_HEADERS, 1, &[9, 0x82]);
        assert_eq!(run(&wire, 1), Err(AuthorityError::BadPadding));
    }

    #[test]
    fn the_handshake_is_done_after_the_preface_and_a_first_frame_header() {
        let mut f = AuthorityFix::default();
        let mut out = vec![];
        f.feed(&PREFACE[..10], &mut out).unwrap();
        assert!(!f.handshake_done());
        f.feed(&PREFACE[10..], &mut out).unwrap();
        assert!(
            !f.handshake_done(),
            "the preface alone is not the handshake"
        );
        // An empty SETTINGS frame, its header in two pieces.
        let settings = [0u8, 0, 0, 4, 0, 0, 0, 0, 0];
        f.feed(&settings[..5], &mut out).unwrap();
        assert!(!f.handshake_done());
        f.feed(&settings[5..], &mut out).unwrap();
        assert!(f.handshake_done());
        assert_eq!(out, [PREFACE, &settings[..]].concat());
    }
}

//! Request text echoed back in an error, bounded. A gRPC status message travels in an HTTP/2
//! header (`grpc-message`, percent-encoded), and clients refuse header lists past a few kB (hyper:
//! 16 KiB), so a message that echoed a 15 kB path unbounded never arrived: the client saw an
//! HTTP/2 protocol error instead of the reason. Every echo of request text (a path, a workspace,
//! a cwd, a line of old_text, a command) goes through [`shown`], and every status message through
//! [`message`], which bounds the whole.

use std::borrow::Cow;

/// Characters of one echoed request field kept before it is cut.
pub const SHOWN_CHARS: usize = 200;

/// Bytes a status message may take once percent-encoded as `grpc-message`.
pub const MESSAGE_ENCODED_BYTES: usize = 8 * 1024;

/// `s` when it is short; otherwise its first [`SHOWN_CHARS`] characters (cut on a character
/// boundary), "…" and its size: `/aaaa…aaa… (15,000 bytes)`.
pub fn shown(s: &str) -> Cow<'_, str> {
    shown_max(s, SHOWN_CHARS)
}

/// Whether `s` came out of [`shown`] cut (an uncut one has at most [`SHOWN_CHARS`] characters).
pub fn was_cut(s: &str) -> bool {
    s.chars().nth(SHOWN_CHARS).is_some()
}

/// [`shown`] with another bound, in characters.
pub fn shown_max(s: &str, max_chars: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max_chars) {
        None => Cow::Borrowed(s),
        Some((cut, _)) => Cow::Owned(format!(
            "{}… ({} bytes)",
            &s[..cut],
            thousands(s.len() as u64)
        )),
    }
}

/// A status message bounded to [`MESSAGE_ENCODED_BYTES`] once percent-encoded (a byte outside
/// printable ASCII, or `%`, takes three): cut on a character boundary with a note saying how long
/// it was. The reason comes first in every message, so the cut keeps it.
pub fn message(s: &str) -> Cow<'_, str> {
    let note_room = 64;
    let mut cost = 0;
    for (i, c) in s.char_indices() {
        cost += encoded_len(c);
        if cost > MESSAGE_ENCODED_BYTES - note_room {
            return Cow::Owned(format!(
                "{}… (message cut: {} bytes in all)",
                &s[..i],
                thousands(s.len() as u64)
            ));
        }
    }
    Cow::Borrowed(s)
}

/// A status with the message bounded by [`message`].
pub fn status(code: tonic::Code, msg: impl AsRef<str>) -> tonic::Status {
    tonic::Status::new(code, message(msg.as_ref()).into_owned())
}

/// Bytes `c` takes in a `grpc-message` header (gRPC percent-encodes bytes outside 0x20..=0x7E
/// and `%`).
fn encoded_len(c: char) -> usize {
    if c.is_ascii() && (' '..='~').contains(&c) && c != '%' {
        1
    } else {
        3 * c.len_utf8()
    }
}

/// `22,488,890`: a count as every message sandboxd writes for people and models spells it.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_shown_whole_long_text_cut_with_its_size() {
        assert_eq!(shown("a/b.txt"), "a/b.txt");
        let exact = "x".repeat(SHOWN_CHARS);
        assert_eq!(shown(&exact), exact.as_str());
        let long = "/".to_string() + &"a".repeat(14_999);
        let s = shown(&long);
        assert_eq!(
            s,
            format!("/{}… (15,000 bytes)", "a".repeat(SHOWN_CHARS - 1))
        );
        // Cut on a character boundary, never inside one.
        let wide = "é".repeat(1000);
        let s = shown(&wide);
        assert!(s.starts_with(&"é".repeat(SHOWN_CHARS)), "{s}");
        assert!(s.ends_with("… (2,000 bytes)"), "{s}");
        assert!(was_cut(&s) && !was_cut(&exact) && !was_cut("a"));
    }

    #[test]
    fn a_message_fits_a_header_once_encoded() {
        let fine = "p: outside the workspace";
        assert_eq!(message(fine), fine);
        for unit in ["a", "é", "%", "\n", "😀"] {
            let big = format!("x: outside the workspace {}", unit.repeat(40_000));
            let m = message(&big);
            let enc: usize = m.chars().map(encoded_len).sum();
            assert!(enc <= MESSAGE_ENCODED_BYTES, "{unit}: {enc}");
            assert!(m.starts_with("x: outside the workspace"), "{unit}");
            assert!(
                m.ends_with(&format!(
                    "… (message cut: {} bytes in all)",
                    thousands(big.len() as u64)
                )),
                "{unit}"
            );
        }
    }
}

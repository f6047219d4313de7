//! How numbers are written in everything nanobot prints: `190,490`, `1 byte`, `2 bytes`,
//! `1 more entry`, and how many bytes of a stream are not valid UTF-8.

/// `190,490`: every count in a tool result is written this way.
pub fn thousands(n: u64) -> String {
    let digits: Vec<char> = n.to_string().chars().rev().collect();
    let groups: Vec<String> = digits
        .chunks(3)
        .map(|g| g.iter().rev().collect())
        .rev()
        .collect();
    groups.join(",")
}

/// `1 byte`, `2 bytes`, `10,100 bytes`: a count (as `thousands` writes it) and its unit, in the
/// singular for one and with an `s` otherwise.
pub fn count(n: u64, unit: &str) -> String {
    count_as(n, unit, &format!("{unit}s"))
}

/// `count` for a unit whose plural is not `unit` + `s`: `1 entry`, `2 entries`.
pub fn count_as(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// Invalid UTF-8 bytes in `b`, each replaced by U+FFFD in the lossy text.
pub fn invalid_utf8_bytes(b: &[u8]) -> usize {
    b.utf8_chunks().map(|c| c.invalid().len()).sum()
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// How many bytes at the end of `b` (0 to 3) begin a UTF-8 character and stop before it is
/// complete: what a cut in the middle of a character leaves at the end of the part before the
/// cut. Bytes that begin no valid character are not counted: they are invalid wherever the cut is.
pub fn split_char_at_end(b: &[u8]) -> usize {
    for back in 1..=b.len().min(3) {
        let start = b.len() - back;
        if !is_continuation(b[start]) {
            return match std::str::from_utf8(&b[start..]) {
                Err(e) if e.valid_up_to() == 0 && e.error_len().is_none() => back,
                _ => 0,
            };
        }
    }
    0
}

/// How many continuation bytes begin `b` (0 to 3): what a cut in the middle of a character leaves
/// at the start of the part after the cut.
pub fn split_char_at_start(b: &[u8]) -> usize {
    b.iter()
        .take(3)
        .take_while(|&&x| is_continuation(x))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_in_english_with_one_number_format() {
        assert_eq!(count(0, "byte"), "0 bytes");
        assert_eq!(count(1, "byte"), "1 byte");
        assert_eq!(count(190_490, "byte"), "190,490 bytes");
        assert_eq!(count_as(1, "more entry", "more entries"), "1 more entry");
        assert_eq!(
            count_as(1_000, "more entry", "more entries"),
            "1,000 more entries"
        );
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn a_character_split_by_a_cut_is_found_at_either_side() {
        let euro = "€".as_bytes(); // E2 82 AC
        assert_eq!(split_char_at_end(b""), 0);
        assert_eq!(split_char_at_end(b"ab"), 0);
        assert_eq!(split_char_at_end(euro), 0);
        assert_eq!(split_char_at_end(&euro[..1]), 1);
        assert_eq!(split_char_at_end(&euro[..2]), 2);
        assert_eq!(split_char_at_end("a😀".as_bytes()), 0);
        assert_eq!(split_char_at_end(&"a😀".as_bytes()[..4]), 3);
        // Bytes no character begins with are invalid, not split.
        assert_eq!(split_char_at_end(b"a\xff"), 0);
        assert_eq!(split_char_at_end(b"a\xe0\x80"), 0);
        assert_eq!(split_char_at_end(b"a\x80"), 0);
        assert_eq!(split_char_at_start(b""), 0);
        assert_eq!(split_char_at_start(euro), 0);
        assert_eq!(split_char_at_start(&euro[1..]), 2);
        assert_eq!(split_char_at_start(&euro[2..]), 1);
        assert_eq!(split_char_at_start(b"\x80\x80\x80\x80a"), 3);
    }
}

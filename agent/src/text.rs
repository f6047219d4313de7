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
}

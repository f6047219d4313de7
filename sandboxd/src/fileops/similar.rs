//! Why old_text was not found: a match once whitespace is ignored (with the exact lines), or the
//! region of the file most similar to it (never claimed 100% similar).

use super::error::{line_span, FileError};
use crate::shown::{shown, shown_max};

/// Why `old` (normalized) is not in `text` (normalized): whitespace only, or how close it got.
/// Neither message ever gives a percentage for a miss that is only whitespace or line endings.
pub(super) fn not_found(text: &str, old: &str, shown: &str) -> FileError {
    // Every place old_text matches once whitespace is ignored is named (up to a few), so the
    // model never fixes the first one when it meant another.
    const NAMED: usize = 4;
    let found = whitespace_only_matches(text, old);
    if let Some(&(first, last)) = found.first() {
        let others = found[1..found.len().min(NAMED)].to_vec();
        return FileError::WhitespaceOnly {
            path: shown.into(),
            first,
            last,
            more: found.len() - 1 - others.len(),
            others,
            detail: whitespace_detail(text, old, first, last),
        };
    }
    let closest = if old.chars().all(char::is_whitespace) {
        "old_text is only whitespace and line endings, and the file does not have them like that; \
         include the text around them."
            .to_string()
    } else {
        closest_region(text, old)
    };
    FileError::TextNotFound {
        path: shown.into(),
        closest: lone_cr_note(old) + &closest,
    }
}

/// A hint when `old` (normalized) still holds a `\r`: it is not part of a line ending, which is
/// easy to write by accident (half of a `\r\n`) and invisible in the file's text.
fn lone_cr_note(old: &str) -> String {
    if old.contains('\r') {
        "old_text contains a lone \\r (a carriage return not followed by \\n), which is not a \
         line ending in this file; drop it, or end the line with \\n. "
            .into()
    } else {
        String::new()
    }
}

/// The 1-based lines of `text` (first, last) of every place `old` matches once all whitespace is
/// removed from both, overlapping ones included, in file order; each span once.
fn whitespace_only_matches(text: &str, old: &str) -> Vec<(usize, usize)> {
    let squeezed_old: String = old.chars().filter(|c| !c.is_whitespace()).collect();
    if squeezed_old.is_empty() {
        return vec![];
    }
    let mut squeezed = String::with_capacity(text.len());
    let mut line_starts = vec![0usize];
    for c in text.chars() {
        if c == '\n' {
            line_starts.push(squeezed.len());
        } else if !c.is_whitespace() {
            squeezed.push(c);
        }
    }
    let mut found: Vec<(usize, usize)> = vec![];
    let mut from = 0;
    while let Some(at) = squeezed.get(from..).and_then(|s| s.find(&squeezed_old)) {
        let pos = from + at;
        let last_byte = pos + squeezed_old.len() - 1;
        let first = line_starts.partition_point(|&s| s <= pos);
        let last = line_starts.partition_point(|&s| s <= last_byte);
        if found.last() != Some(&(first, last)) {
            found.push((first, last));
        }
        // On at the next character: overlapping places count too.
        from = pos + squeezed[pos..].chars().next().map_or(1, char::len_utf8);
    }
    found
}

/// The file's lines `first..=last`, numbered, and the first line where `old` differs from them.
fn whitespace_detail(text: &str, old: &str, first: usize, last: usize) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let region = lines
        .get(first.saturating_sub(1)..last.min(lines.len()))
        .unwrap_or(&[]);
    let old_lines: Vec<&str> = old
        .split('\n')
        .skip_while(|l| l.trim().is_empty())
        .collect();
    let diff = region
        .iter()
        .zip(old_lines.iter())
        .enumerate()
        .find(|(_, (f, o))| f != o);
    let mut s = match diff {
        Some((i, (f, o))) => format!(
            "First difference, line {}: the file has {:?}, old_text has {:?}.",
            first + i,
            shown(f),
            shown(o)
        ),
        None => "The lines are the same; old_text differs in blank lines or a final newline."
            .to_string(),
    };
    s.push(' ');
    s.push_str(&lone_cr_note(old));
    s.push_str("The file's text there is:\n");
    for (i, l) in region.iter().enumerate() {
        s.push_str(&format!("{:>6}\t{}\n", first + i, shown_max(l, LINE_CHARS)));
    }
    s
}

/// Characters of one quoted line of the file kept in a message (the message is an HTTP/2
/// header; `crate::shown`).
const LINE_CHARS: usize = 1000;

/// The region of `text` most like `needle`, to show the model what the file really says.
pub fn closest_region(text: &str, needle: &str) -> String {
    closest_region_counted(text, needle).0
}

/// What finding the closest region cost: line pairs compared by fingerprint, and the windows
/// compared exactly (with their Levenshtein cells). Both are bounded whatever the file's size.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Work {
    pairs: u64,
    exact: u64,
    cells: u64,
}

/// Line pairs the prefilter may compare (more only when the file has more lines than this).
const PAIR_BUDGET: u64 = 24_000_000;
/// Levenshtein cells for the exact comparison of the best candidates.
const CELL_BUDGET: u64 = 12_000_000;
/// Needle lines the prefilter compares each window with, at most.
const SAMPLED_LINES: usize = 32;
/// Windows compared exactly, at most.
const EXACT_WINDOWS: u64 = 48;
/// Characters of a window and of the needle compared exactly.
const EXACT_CHARS: usize = 2000;

/// [`closest_region`], and what it cost. Every window of the file is scored cheaply: each of up
/// to [`SAMPLED_LINES`] needle lines against the window's line at that place (or one line off,
/// for a dropped or added line), by the overlap of their character trigrams (a 256-bit set, so
/// a pair costs a few instructions). Only the best-scoring windows, as many as [`CELL_BUDGET`]
/// allows (and at most [`EXACT_WINDOWS`]), are then compared exactly (normalized Levenshtein on their first [`EXACT_CHARS`]
/// characters), and the best of those is shown.
fn closest_region_counted(text: &str, needle: &str) -> (String, Work) {
    let mut work = Work::default();
    let lines: Vec<&str> = text.lines().collect();
    let want: Vec<&str> = needle.lines().collect();
    let n = want.len().max(1);
    if lines.is_empty() {
        return ("The file is empty.".into(), work);
    }
    let windows = lines.len().saturating_sub(n) + 1;

    // A line's fingerprint: its trimmed text's trigrams hashed into 256 bits, and a hash of the
    // whole trimmed line (equal lines are sure to score 1, whatever the bits collide on).
    let print = |line: &str| -> ([u64; 4], u64) {
        let t: Vec<char> = line.trim().chars().collect();
        let mut bits = [0u64; 4];
        let mut whole: u64 = 0xcbf2_9ce4_8422_2325;
        for &c in &t {
            whole = (whole ^ c as u64).wrapping_mul(0x100_0000_01b3);
        }
        let mut set = |h: u64| {
            let b = (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize;
            bits[b >> 6] |= 1 << (b & 63);
        };
        if t.len() < 3 {
            for &c in &t {
                set(c as u64);
            }
        }
        for g in t.windows(3) {
            set((g[0] as u64) << 42 ^ (g[1] as u64) << 21 ^ g[2] as u64);
        }
        (bits, whole)
    };
    let file_prints: Vec<([u64; 4], u64)> = lines.iter().map(|l| print(l)).collect();
    let sim = |a: &([u64; 4], u64), b: &([u64; 4], u64)| -> f64 {
        if a.1 == b.1 {
            return 1.0;
        }
        let (mut and, mut or) = (0u32, 0u32);
        for i in 0..4 {
            and += (a.0[i] & b.0[i]).count_ones();
            or += (a.0[i] | b.0[i]).count_ones();
        }
        if or == 0 {
            0.0
        } else {
            and as f64 / or as f64
        }
    };

    // Which needle lines to compare, evenly spread, fewer when the file is huge; and whether
    // the budget allows looking one line off too.
    let per_window = (PAIR_BUDGET / windows as u64).max(1) as usize;
    let shifts = n > 1 && per_window >= 3;
    let m = (if shifts { per_window / 3 } else { per_window })
        .clamp(1, SAMPLED_LINES)
        .min(want.len().max(1));
    let sampled: Vec<(usize, ([u64; 4], u64))> = (0..m)
        .map(|k| {
            let i = k * n / m;
            (i, print(want.get(i).copied().unwrap_or("")))
        })
        .collect();
    let mut scored: Vec<(f64, usize)> = Vec::with_capacity(windows);
    for start in 0..windows {
        let mut score = 0.0;
        for (i, p) in &sampled {
            let at = start + i;
            let Some(here) = file_prints.get(at) else {
                continue;
            };
            work.pairs += 1;
            let mut best = sim(here, p);
            if shifts && best < 1.0 {
                for other in [at.checked_sub(1), Some(at + 1)].into_iter().flatten() {
                    if let Some(f) = file_prints.get(other) {
                        work.pairs += 1;
                        // An aligned line wins a tie, so the window starts where it should.
                        best = best.max(0.9 * sim(f, p));
                    }
                }
            }
            score += best;
        }
        scored.push((score, start));
    }
    // Best first; among equals, the earlier window.
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));

    let needle_cmp: String = needle.chars().take(EXACT_CHARS).collect();
    let needle_chars = needle_cmp.chars().count().max(1) as u64;
    let window_text = |start: usize| -> String {
        let end = (start + n).min(lines.len());
        lines[start..end]
            .join("\n")
            .chars()
            .take(EXACT_CHARS)
            .collect()
    };
    let mut best = (-1.0f64, 0usize);
    for &(_, start) in &scored {
        let cand = window_text(start);
        let cells = cand.chars().count().max(1) as u64 * needle_chars;
        // The first candidate is always compared; the others while the budget lasts.
        if work.exact >= EXACT_WINDOWS || (work.exact > 0 && work.cells + cells > CELL_BUDGET) {
            break;
        }
        work.exact += 1;
        work.cells += cells;
        let score = strsim::normalized_levenshtein(&cand, &needle_cmp);
        if score > best.0 {
            best = (score, start);
        }
    }
    let (score, start) = best;
    // Never claim 100%: this is only called when the text was not found, and rounding (or the
    // 2000-character cut) must not make a near miss look like an exact match.
    let percent = ((score * 100.0).floor() as u32).min(99);
    if score < 0.3 {
        return (
            "No similar text found; read the file again before editing.".into(),
            work,
        );
    }
    let end = (start + n).min(lines.len());
    let mut s = format!(
        "The most similar text ({percent}% similar) is at {}:\n",
        line_span(start + 1, end)
    );
    for (i, l) in lines[start..end].iter().enumerate() {
        s.push_str(&format!(
            "{:>6}\t{}\n",
            start + 1 + i,
            shown_max(l, LINE_CHARS)
        ));
    }
    (s, work)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_region_points_at_the_similar_lines() {
        let text = "fn main() {\n    println!(\"hello\");\n}\n";
        let s = closest_region(text, "    println!(\"helo\");");
        assert!(s.contains("is at line 2:\n"), "{s}");
        assert!(s.contains("println!(\"hello\")"), "{s}");
        let s = closest_region(text, "something entirely different and long enough");
        assert!(s.starts_with("No similar text"), "{s}");
    }

    #[test]
    fn closest_region_searches_the_whole_file() {
        // Past line 5,000: once only the first 5,000 windows were searched (and line 651 shown).
        let text: String = (1..=8000)
            .map(|i| format!("row number {i} has value {}\n", i * 7))
            .collect();
        let (s, work) = closest_region_counted(&text, "row number 6500 has valeu 45500\n");
        assert!(s.contains("is at line 6,500:\n"), "{s}");
        assert!(
            s.contains("  6500\trow number 6500 has value 45500\n"),
            "{s}"
        );
        assert!(work.exact <= EXACT_WINDOWS, "{work:?}");
        // A block of lines near the end, one of them changed, one dropped.
        let needle = "row number 7801 has value 54607\nrow number 7802 has value 54614\n\
                      row number 7803 has value 99999\nrow number 7805 has value 54635\n";
        let s = closest_region(&text, needle);
        assert!(s.contains("is at lines 7,801-7,804:\n"), "{s}");
    }

    #[test]
    fn a_large_miss_costs_a_bounded_amount_of_work() {
        // A 2,100-character old_text that is nowhere in a 6,000-line file: once 5,000 exact
        // comparisons of 2,000 by 2,000 characters (36 s); now a few, whatever the file's size.
        let text: String = (0..6000)
            .map(|i| format!("    let value_{i} = compute({i}, \"label {i}\");\n"))
            .collect();
        let needle: String = (0..80)
            .map(|k| format!("fn unrelated_{k}(x: u32) -> u32 {{ x * {k} }}\n"))
            .collect::<String>()
            .chars()
            .take(2100)
            .collect();
        assert_eq!(needle.chars().count(), 2100);
        let (_, work) = closest_region_counted(&text, &needle);
        assert!(work.exact <= EXACT_WINDOWS, "{work:?}");
        assert!(work.cells <= CELL_BUDGET + 2000 * 2000, "{work:?}");
        assert!(work.pairs <= PAIR_BUDGET, "{work:?}");
        // Ten times the file: the same bound on exact comparisons.
        let big = text.repeat(10);
        let (_, work) = closest_region_counted(&big, &needle);
        assert!(work.exact <= EXACT_WINDOWS, "{work:?}");
        assert!(work.cells <= CELL_BUDGET + 2000 * 2000, "{work:?}");
        assert!(work.pairs <= PAIR_BUDGET, "{work:?}");
    }

    #[test]
    fn every_whitespace_only_candidate_is_named() {
        let text = "if x:\n    a()\nb()\n\nif x:\n\ta()\n";
        let e = not_found(text, "if x:\n  a()\n", "f");
        let m = e.to_string();
        assert!(
            matches!(
                &e,
                FileError::WhitespaceOnly { first: 1, last: 2, others, more: 0, .. }
                    if others == &[(5, 6)]
            ),
            "{m}"
        );
        assert!(
            m.contains("matches lines 1-2 and lines 5-6 if whitespace is ignored"),
            "{m}"
        );
        assert!(m.contains("must match exactly one of them"), "{m}");
        // Many: the first few, then how many more.
        let text = "x = 1\n".repeat(7);
        let m = not_found(&text, "x  = 1", "f").to_string();
        assert!(
            m.contains("matches line 1, line 2, line 3, line 4 and 3 more places if"),
            "{m}"
        );
        // Overlapping places count: "aa" in "a a a" is at two places on line 1... one span.
        let m = not_found("a a a\n", "aa", "f").to_string();
        assert!(m.contains("matches line 1 if whitespace"), "{m}");
        assert!(!m.contains("one of them"), "{m}");
        let m = not_found("a\na\na\n", "aa", "f").to_string();
        assert!(m.contains("matches lines 1-2 and lines 2-3 if"), "{m}");
    }
}

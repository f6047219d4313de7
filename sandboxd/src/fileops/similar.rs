//! Why old_text was not found: a match once whitespace is ignored (with the exact lines), or the
//! region of the file most similar to it (never claimed 100% similar).

use super::error::{line_span, FileError};

/// Why `old` (normalized) is not in `text` (normalized): whitespace only, or how close it got.
/// Neither message ever gives a percentage for a miss that is only whitespace or line endings.
pub(super) fn not_found(text: &str, old: &str, shown: &str) -> FileError {
    if let Some((first, last)) = whitespace_only_match(text, old) {
        return FileError::WhitespaceOnly {
            path: shown.into(),
            first,
            last,
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

/// The 1-based lines of `text` that `old` matches once all whitespace is removed from both.
fn whitespace_only_match(text: &str, old: &str) -> Option<(usize, usize)> {
    let squeezed_old: String = old.chars().filter(|c| !c.is_whitespace()).collect();
    if squeezed_old.is_empty() {
        return None;
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
    let pos = squeezed.find(&squeezed_old)?;
    let last_byte = pos + squeezed_old.len() - 1;
    let first = line_starts.partition_point(|&s| s <= pos);
    let last = line_starts.partition_point(|&s| s <= last_byte);
    Some((first, last))
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
            "First difference, line {}: the file has {f:?}, old_text has {o:?}.",
            first + i
        ),
        None => "The lines are the same; old_text differs in blank lines or a final newline."
            .to_string(),
    };
    s.push(' ');
    s.push_str(&lone_cr_note(old));
    s.push_str("The file's text there is:\n");
    for (i, l) in region.iter().enumerate() {
        s.push_str(&format!("{:>6}\t{l}\n", first + i));
    }
    s
}

/// The region of `text` most like `needle`, to show the model what the file really says.
pub fn closest_region(text: &str, needle: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let want: Vec<&str> = needle.lines().collect();
    let n = want.len().max(1);
    if lines.is_empty() {
        return "The file is empty.".into();
    }
    let needle_cmp: String = needle.chars().take(2000).collect();
    let mut best = (0.0f64, 0usize);
    let windows = lines.len().saturating_sub(n) + 1;
    for start in 0..windows.min(5000) {
        let end = (start + n).min(lines.len());
        let cand: String = lines[start..end].join("\n").chars().take(2000).collect();
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
        return "No similar text found; read the file again before editing.".into();
    }
    let end = (start + n).min(lines.len());
    let mut s = format!(
        "The most similar text ({percent}% similar) is at {}:\n",
        line_span(start + 1, end)
    );
    for (i, l) in lines[start..end].iter().enumerate() {
        s.push_str(&format!("{:>6}\t{l}\n", start + 1 + i));
    }
    s
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
}

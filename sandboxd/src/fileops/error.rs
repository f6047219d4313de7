//! What can go wrong in a file operation, worded for the model that asked: each message names the
//! path and, where it can, what to do instead.

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FileError {
    #[error("path contains a NUL byte")]
    Nul,
    #[error("path is empty: give the path of a file in the workspace")]
    Empty,
    #[error("{0}: outside the workspace")]
    Outside(String),
    #[error("{0}: outside the workspace (a hard link: the same file may be reachable outside, so it is not read)")]
    HardLink(String),
    #[error("{0}: no such file or directory")]
    NotFound(String),
    #[error("{0}: is a directory, not a file")]
    IsDir(String),
    #[error("{0}: not a regular file")]
    NotFile(String),
    #[error("{0}: not a directory")]
    NotDir(String),
    #[error("{path}: too large ({}, the limit is {}); {hint}", plural(*.size, "byte"), thousands(*.limit))]
    TooLarge {
        path: String,
        size: u64,
        limit: u64,
        hint: &'static str,
    },
    #[error("{path}: binary file (contains NUL bytes); {op} only works on UTF-8 text")]
    Binary { path: String, op: &'static str },
    #[error("{0}: not valid UTF-8 text")]
    InvalidUtf8(String),
    #[error("{path}: offset {offset} is past the end of the file ({})", plural(*.lines as u64, "line"))]
    Offset {
        path: String,
        offset: u32,
        lines: usize,
    },
    #[error("old_text is empty; give the exact text to replace")]
    EmptyOldText,
    #[error("old_text is only a byte order mark (U+FEFF); edit_file keeps a file's BOM as it is, so give the text to replace (write_file rewrites a file without it)")]
    BomOnlyOldText,
    #[error("{path}: old_text not found. {closest}")]
    TextNotFound { path: String, closest: String },
    #[error("{path}: old_text is in the file only with a \\r that is the first half of a \\r\\n line ending there, and edit_file matches whole line endings; drop that \\r (a line ending in old_text may be written as \\n). Nothing was written.")]
    SplitsLineEnding { path: String },
    #[error("{path}: old_text not found exactly, but it matches {} if whitespace is ignored (line endings are already ignored){}. Nothing was written. {detail}", spans(*.first, *.last, .others, *.more), one_of(.others))]
    WhitespaceOnly {
        path: String,
        /// The first candidate, whose lines `detail` shows.
        first: usize,
        last: usize,
        /// The next candidates, (first, last) each, up to a few; `more` counts the rest.
        others: Vec<(usize, usize)>,
        more: usize,
        detail: String,
    },
    #[error("{path}: old_text occurs {count} times; include more surrounding lines so it occurs exactly once. Nothing was written.")]
    NotUnique { path: String, count: usize },
    #[error("{path}: permission denied")]
    Denied { path: String },
    #[error("{0}: a name in the path is too long (at most 255 bytes a name, 4,096 a path)")]
    NameTooLong(String),
    #[error("{path}: {step}: {}; nothing was written and the file is as it was", if *.quota { "the disk quota is used up (EDQUOT)" } else { "no space left on the filesystem (ENOSPC)" })]
    NoSpace {
        path: String,
        step: &'static str,
        /// EDQUOT (the owner's quota) rather than ENOSPC (the filesystem).
        quota: bool,
    },
    #[error("{path}: the workspace holds {holds} bytes of its {ceiling}-byte ceiling (workspace_bytes); this write of {size} bytes would exceed it; nothing was written")]
    WorkspaceFull {
        path: String,
        holds: u64,
        ceiling: u64,
        size: u64,
    },
    #[error("{path}: the workspace's usage could not be determined ({why}), so a write that grows it is refused under its ceiling (workspace_bytes); nothing was written")]
    UsageUnknown { path: String, why: String },
    #[error("{path}: {step}: the file would be larger than the filesystem or sandboxd's file size limit allows (EFBIG); nothing was written")]
    FileTooBig { path: String, step: &'static str },
    #[error("{path}: {step}: the filesystem is read-only (EROFS)")]
    ReadOnly { path: String, step: &'static str },
    #[error("{path}: {step}: busy (a mount point or a file in use); nothing was written")]
    Busy { path: String, step: &'static str },
    #[error("{path}: {step}: already exists")]
    Exists { path: String, step: &'static str },
    /// A condition that passes: sandboxd is short of fds or memory, or the path changed while the
    /// kernel resolved it (EAGAIN). Retrying may succeed.
    #[error("{path}: {step}: {err}; try again")]
    Transient {
        path: String,
        step: &'static str,
        err: String,
    },
    #[error("{path}: {step}: {err}")]
    Io {
        path: String,
        step: &'static str,
        err: String,
    },
}

/// `22,488,890`: every number in a message the model reads is written this way (a value it
/// must pass back, like `offset=1200`, is not).
pub(super) use crate::shown::thousands;

/// `n` and the noun, singular for one: "1 line", "2 lines", "17,957 lines".
pub(super) fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", thousands(n))
    }
}

/// "line 3" or "lines 3-5".
pub(super) fn line_span(first: usize, last: usize) -> String {
    if first == last {
        format!("line {}", thousands(first as u64))
    } else {
        format!(
            "lines {}-{}",
            thousands(first as u64),
            thousands(last as u64)
        )
    }
}

/// "lines 1-2", "lines 1-2 and 5-6", "lines 1-2, 5-6 and 9-10 and 3 more places".
fn spans(first: usize, last: usize, others: &[(usize, usize)], more: usize) -> String {
    let mut s = line_span(first, last);
    for (i, &(f, l)) in others.iter().enumerate() {
        s.push_str(if i + 1 == others.len() && more == 0 {
            " and "
        } else {
            ", "
        });
        s.push_str(&line_span(f, l));
    }
    if more > 0 {
        let places = if more == 1 { "place" } else { "places" };
        s.push_str(&format!(" and {} more {places}", thousands(more as u64)));
    }
    s
}

/// For several whitespace-only candidates: that old_text must pick one of them.
fn one_of(others: &[(usize, usize)]) -> &'static str {
    if others.is_empty() {
        ""
    } else {
        "; old_text must match exactly one of them, so copy the exact text of the one to change \
         (with a surrounding line if needed to tell them apart)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(22_488_890), "22,488,890");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(plural(17_957, "line"), "17,957 lines");
        assert_eq!(line_span(1, 1163), "lines 1-1,163");
        let e = FileError::TooLarge {
            path: "f".into(),
            size: 22_488_890,
            limit: 16_777_216,
            hint: "h",
        };
        assert!(
            e.to_string()
                .contains("(22,488,890 bytes, the limit is 16,777,216)"),
            "{e}"
        );
        let e = FileError::Offset {
            path: "f".into(),
            offset: 30000,
            lines: 17957,
        };
        assert!(
            e.to_string()
                .ends_with("offset 30000 is past the end of the file (17,957 lines)"),
            "{e}"
        );
    }

    #[test]
    fn several_spans_are_all_named() {
        assert_eq!(spans(1, 2, &[], 0), "lines 1-2");
        assert_eq!(spans(1, 2, &[(5, 6)], 0), "lines 1-2 and lines 5-6");
        assert_eq!(
            spans(1, 2, &[(5, 6), (9, 9)], 2),
            "lines 1-2, lines 5-6, line 9 and 2 more places"
        );
    }
}

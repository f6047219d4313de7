//! What can go wrong in a file operation, worded for the model that asked: each message names the
//! path and, where it can, what to do instead.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FileError {
    #[error("path contains a NUL byte")]
    Nul,
    #[error("path is empty")]
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
    #[error("{path}: too large ({}, the limit is {limit}); {hint}", plural(*.size, "byte"))]
    TooLarge {
        path: String,
        size: u64,
        limit: u64,
        hint: &'static str,
    },
    #[error("{0}: binary file (contains NUL bytes); read_file only reads UTF-8 text")]
    Binary(String),
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
    #[error("{path}: old_text not found exactly, but it matches {} if whitespace is ignored (line endings are already ignored). Nothing was written. {detail}", line_span(*.first, *.last))]
    WhitespaceOnly {
        path: String,
        first: usize,
        last: usize,
        detail: String,
    },
    #[error("{path}: old_text occurs {count} times; include more surrounding lines so it occurs exactly once. Nothing was written.")]
    NotUnique { path: String, count: usize },
    #[error("{path}: permission denied")]
    Denied { path: String },
    #[error("{path}: {step}: {err}")]
    Io {
        path: String,
        step: &'static str,
        err: String,
    },
}

/// `n` and the noun, singular for one: "1 line", "2 lines".
pub(super) fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// "line 3" or "lines 3-5".
pub(super) fn line_span(first: usize, last: usize) -> String {
    if first == last {
        format!("line {first}")
    } else {
        format!("lines {first}-{last}")
    }
}

//! read_file: a UTF-8 text file, a window of its lines, cut at the character cap with a note
//! saying how to read on.

use super::at::file_of;
use super::errno::{io_err, map_errno};
use super::error::{line_span, plural, FileError};
use super::limits::{FileLimits, MAX_FILE_BYTES};
use crate::workspace::open_beneath;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Open a regular file beneath the workspace for reading, refusing hard links and huge files.
pub(super) fn open_text(ws: &OwnedFd, rel: &Path, shown: &str) -> Result<Vec<u8>, FileError> {
    let fd = open_beneath(ws, rel, libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK)
        .map_err(|e| map_errno(e, shown, "open"))?;
    let mut f = file_of(fd);
    let md = f.metadata().map_err(|e| io_err(shown, "stat", e))?;
    if md.is_dir() {
        return Err(FileError::IsDir(shown.into()));
    }
    if !md.is_file() {
        return Err(FileError::NotFile(shown.into()));
    }
    if md.nlink() > 1 {
        return Err(FileError::HardLink(shown.into()));
    }
    if md.len() > MAX_FILE_BYTES {
        return Err(FileError::TooLarge {
            path: shown.into(),
            size: md.len(),
            limit: MAX_FILE_BYTES,
            hint: "use exec with head, sed -n or grep to read parts of it",
        });
    }
    let mut buf = Vec::with_capacity(md.len() as usize);
    Read::by_ref(&mut f)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_err(shown, "read", e))?;
    Ok(buf)
}

/// The file as text; `op` (read_file, edit_file) is named when it is binary.
pub(super) fn decode(buf: Vec<u8>, shown: &str, op: &'static str) -> Result<String, FileError> {
    if buf[..buf.len().min(8192)].contains(&0) {
        return Err(FileError::Binary {
            path: shown.into(),
            op,
        });
    }
    String::from_utf8(buf).map_err(|_| FileError::InvalidUtf8(shown.into()))
}

/// Bytes per `tail -c +N | head -c` chunk the long-line note suggests: well inside what one exec
/// result shows (10,000 characters) and the default profile's output limit (10,240 bytes), so
/// each chunk arrives whole. Bytes, not characters: `head -c` counts bytes.
const CHUNK: usize = 8000;

pub struct ReadOut {
    pub content: String,
    pub truncated: bool,
    pub note: String,
    pub total_lines: u32,
}

pub fn read_file(
    ws: &OwnedFd,
    rel: &Path,
    shown: &str,
    offset: u32,
    limit: u32,
    lim: FileLimits,
) -> Result<ReadOut, FileError> {
    if rel.as_os_str().is_empty() {
        return Err(super::path::not_a_file(shown));
    }
    let text = decode(open_text(ws, rel, shown)?, shown, "read_file")?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let total = lines.len();
    let first = offset.max(1) as usize;
    if first > total.max(1) {
        return Err(FileError::Offset {
            path: shown.into(),
            offset,
            lines: total,
        });
    }
    let end = if limit == 0 {
        total
    } else {
        (first - 1 + limit as usize).min(total)
    };
    let selected: String = lines[(first - 1).min(total)..end].concat();
    let chars = selected.chars().count();
    if chars <= lim.read_max_chars {
        return Ok(ReadOut {
            content: selected,
            truncated: false,
            note: String::new(),
            total_lines: total as u32,
        });
    }
    // Cut at the cap, on a line boundary when there is one, and say how to read on.
    let cut_byte = selected
        .char_indices()
        .nth(lim.read_max_chars)
        .map(|(i, _)| i)
        .unwrap_or(selected.len());
    let thousands = |n: usize| super::error::thousands(n as u64);
    let (content, note) = match selected[..cut_byte].rfind('\n') {
        Some(nl) => {
            let content = selected[..nl + 1].to_string();
            let next = first + content.matches('\n').count();
            let note = format!(
                "[truncated: showing {} of {} ({} of {}); read on with offset={next}]",
                plural(content.chars().count() as u64, "character"),
                thousands(chars),
                line_span(first, next - 1),
                thousands(total)
            );
            (content, note)
        }
        None => {
            // The window's first line alone is longer than the cap: its rest cannot be paged to
            // with offset (a line is the unit), so say so, and where exactly the rest starts.
            let content = selected[..cut_byte].to_string();
            let line = lines[first - 1];
            let line_chars = line.strip_suffix('\n').unwrap_or(line).chars().count();
            let rest_at: usize =
                lines[..first - 1].iter().map(|l| l.len()).sum::<usize>() + cut_byte;
            // The path as requested; the workspace-relative one when errors show it cut.
            let rel_text;
            let shown = if crate::shown::was_cut(shown) {
                rel_text = rel.to_string_lossy();
                &*rel_text
            } else {
                shown
            };
            let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+,@%=:".contains(c);
            let path = if !shown.is_empty() && shown.chars().all(safe) && !shown.starts_with('-') {
                shown.to_string()
            } else if shown.starts_with('-') {
                format!("./{}", shown.replace('\'', "'\\''"))
            } else {
                format!("'{}'", shown.replace('\'', "'\\''"))
            };
            let after = if first < total {
                format!("read on after it with offset={}", first + 1)
            } else {
                "it is the last line".to_string()
            };
            let note = format!(
                "[truncated: line {} is {} long, more than read_file shows at once, and was cut \
                 after its first {}; read_file cannot page within a line. To see the rest of it, \
                 use exec in chunks that fit its result: `tail -c +{} {path} | head -c {CHUNK}` \
                 prints the next {} bytes from where this stops, then +{}, +{} and so on (a \
                 multi-byte character may be split at a chunk's edge); {after}]",
                thousands(first),
                plural(line_chars as u64, "character"),
                plural(content.chars().count() as u64, "character"),
                rest_at + 1,
                thousands(CHUNK),
                rest_at + 1 + CHUNK,
                rest_at + 1 + 2 * CHUNK,
            );
            (content, note)
        }
    };
    Ok(ReadOut {
        content,
        truncated: true,
        note,
        total_lines: total as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_file_names_the_operation_called() {
        for op in ["read_file", "edit_file"] {
            let e = decode(vec![b'a', 0, b'b'], "b.dat", op).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("b.dat: binary file (contains NUL bytes); {op} only works on UTF-8 text")
            );
        }
    }
}

//! Line endings for edit_file: matching with `\r\n` (and a classic-Mac `\r`) as `\n`, and
//! writing the new text in the style of the lines it replaces.

/// A view of some text with its line endings turned into `\n`, remembering where each `\r\n` was
/// so offsets can be mapped back to the original.
pub(super) struct Normalized {
    pub(super) text: String,
    /// Offsets in `text` of the `\n`s that were `\r\n` in the original, ascending.
    crlf_at: Vec<usize>,
}

impl Normalized {
    /// `\r\n` always becomes `\n`; a lone `\r` only when `cr_is_newline` (a classic-Mac file
    /// with no `\n` at all), so a stray `\r` inside a line of an LF file is left alone.
    pub(super) fn new(s: &str, cr_is_newline: bool) -> Normalized {
        let b = s.as_bytes();
        let mut text = String::with_capacity(s.len());
        let mut crlf_at = vec![];
        let (mut last, mut i) = (0, 0);
        while i < b.len() {
            if b[i] == b'\r' {
                let crlf = b.get(i + 1) == Some(&b'\n');
                if crlf || cr_is_newline {
                    // '\r' is ASCII, so these are char boundaries.
                    text.push_str(&s[last..i]);
                    if crlf {
                        crlf_at.push(text.len());
                    }
                    text.push('\n');
                    i += if crlf { 2 } else { 1 };
                    last = i;
                    continue;
                }
            }
            i += 1;
        }
        text.push_str(&s[last..]);
        Normalized { text, crlf_at }
    }

    /// The original offset of normalized offset `n` (each earlier `\r\n` is one byte longer).
    pub(super) fn orig(&self, n: usize) -> usize {
        n + self.crlf_at.partition_point(|&j| j < n)
    }
}

/// The line ending a bare `\n` of `new_text` is written with: a classic-Mac file gets `\r`;
/// otherwise the style of the first of `scopes` (narrowest first: the text actually replaced,
/// the whole lines of the file it lies in, the whole matched region, the file) that has more of
/// one ending than the other, so editing the CRLF part of a mixed file keeps it CRLF, even when
/// the replaced text is inside one line; when none decides, `\n`.
fn line_ending_for(scopes: &[&str], cr_is_newline: bool) -> &'static str {
    if cr_is_newline {
        return "\r";
    }
    for s in scopes {
        let lf = s.matches('\n').count();
        let crlf = s.matches("\r\n").count();
        let lf = lf - crlf;
        if crlf != lf {
            return if crlf > lf { "\r\n" } else { "\n" };
        }
    }
    "\n"
}

/// The whole lines of `file` that bytes `from..to` (not empty) lie in, each with its ending: from
/// the start of the first one's line to the end of the last one's line ending.
fn enclosing_lines(file: &str, from: usize, to: usize) -> &str {
    let start = file[..from].rfind('\n').map_or(0, |i| i + 1);
    let end = if file.as_bytes()[to - 1] == b'\n' {
        to
    } else {
        file[to..].find('\n').map_or(file.len(), |i| to + i + 1)
    };
    &file[start..end]
}

/// One line of some text: its content and its line ending (`""` for a last line without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Line<'a> {
    body: &'a str,
    eol: &'a str,
}

impl Line<'_> {
    fn len(&self) -> usize {
        self.body.len() + self.eol.len()
    }
}

/// Split `s` into lines at `\r\n`, `\n` and, when `cr_is_newline`, a lone `\r`; a lone `\r`
/// otherwise stays inside its line. Concatenating the lines gives `s` back exactly.
fn split_lines(s: &str, cr_is_newline: bool) -> Vec<Line<'_>> {
    let b = s.as_bytes();
    let mut out = vec![];
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        let eol_len = match b[i] {
            b'\n' => 1,
            b'\r' if b.get(i + 1) == Some(&b'\n') => 2,
            b'\r' if cr_is_newline => 1,
            _ => 0,
        };
        if eol_len == 0 {
            i += 1;
            continue;
        }
        // '\r' and '\n' are ASCII, so these are char boundaries.
        out.push(Line {
            body: &s[start..i],
            eol: &s[i..i + eol_len],
        });
        i += eol_len;
        start = i;
    }
    if start < s.len() {
        out.push(Line {
            body: &s[start..],
            eol: "",
        });
    }
    out
}

/// Whether the caller left a line of `old_text` as it was in `new_text`: the same content, and
/// the same ending, where an ending the caller did not choose (see [`restyle`]) equals any.
fn same_line(old: &Line, new: &Line, crlf_chosen: bool) -> bool {
    old.body == new.body
        && match new.eol {
            "" => old.eol.is_empty(),
            "\r\n" if crlf_chosen => old.eol == "\r\n",
            _ => !old.eol.is_empty(),
        }
}

/// The bytes that replace `region`, bytes `start..end` of `file` (the matched text, as it is in
/// the file; `old` is how the caller wrote it, equal to `region` once line endings are
/// normalized): `new`, with line endings decided line by line.
///
/// * Lines at the start and end of `new` that the caller left as they were in `old` (see
///   [`same_line`]) are written as the region's own bytes: an edit changes only the lines it
///   really changes, so in a mixed file every untouched line keeps its ending.
/// * In the lines that do change, a bare `\n` (what a model writes when it does not think about
///   line endings) takes the ending of the line it replaces when they are as many new lines as
///   replaced ones; otherwise the style of the text it replaces, else of the file's lines that text
///   lies in (so replacing a word inside a CRLF line gives CRLF), else of the whole region, else
///   of the file ([`line_ending_for`]). A `\r\n` is the caller's choice, written as it is, when
///   `old` has no `\r\n`; when `old` was itself written with `\r\n`, the caller was only writing
///   in the style they assumed, and it is treated like a bare `\n`. A lone `\r` is a line ending
///   only in a classic-Mac file (and then already the file's style); elsewhere it is text.
pub(super) fn restyle(
    file: &str,
    (start, end): (usize, usize),
    old: &str,
    new: &str,
    cr_is_newline: bool,
) -> String {
    let region = &file[start..end];
    let crlf_chosen = !old.contains("\r\n");
    let region_lines = split_lines(region, cr_is_newline);
    let old_lines = split_lines(old, cr_is_newline);
    let new_lines = split_lines(new, cr_is_newline);
    // Normalized, `old` and `region` are equal, so their lines correspond one to one; should they
    // not, nothing is treated as kept.
    let most = if old_lines.len() == region_lines.len() {
        old_lines.len().min(new_lines.len())
    } else {
        0
    };
    let head = old_lines
        .iter()
        .zip(&new_lines)
        .take(most)
        .take_while(|(o, n)| same_line(o, n, crlf_chosen))
        .count();
    let tail = old_lines
        .iter()
        .rev()
        .zip(new_lines.iter().rev())
        .take(most - head)
        .take_while(|(o, n)| same_line(o, n, crlf_chosen))
        .count();
    let head_bytes: usize = region_lines[..head].iter().map(Line::len).sum();
    let tail_bytes: usize = region_lines[region_lines.len() - tail..]
        .iter()
        .map(Line::len)
        .sum();
    let replaced = &region[head_bytes..region.len() - tail_bytes];
    // The file's lines the replaced text lies in; none when nothing is replaced (new lines
    // inserted between kept ones follow the region).
    let lines = if replaced.is_empty() {
        ""
    } else {
        enclosing_lines(file, start + head_bytes, end - tail_bytes)
    };
    let style = line_ending_for(&[replaced, lines, region, file], cr_is_newline);
    // Line for line (as many new lines as replaced ones), each new line takes the ending of the
    // line it replaces, so a replaced block that mixes endings keeps each line's own.
    let changed = &new_lines[head..new_lines.len() - tail];
    let replaced_lines = &region_lines[head..region_lines.len() - tail];
    let line_for_line = changed.len() == replaced_lines.len();
    let mut out = String::with_capacity(region.len() + new.len() * 2);
    out.push_str(&region[..head_bytes]);
    for (i, l) in changed.iter().enumerate() {
        out.push_str(l.body);
        out.push_str(match l.eol {
            "" => "",
            "\r\n" if crlf_chosen => "\r\n",
            _ if line_for_line && !replaced_lines[i].eol.is_empty() => replaced_lines[i].eol,
            _ => style,
        });
    }
    out.push_str(&region[region.len() - tail_bytes..]);
    out
}

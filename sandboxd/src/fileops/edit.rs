//! edit_file: replace the one occurrence of old_text, ignoring line endings when matching and
//! keeping the file's own where the caller did not choose one (`eol`); a miss says why
//! (`similar`).

use super::eol::{restyle, Normalized};
use super::error::FileError;
use super::limits::FileLimits;
use super::lock::stripe;
use super::read::{decode, open_text};
use super::replace::{replace_atomically, target};
use super::similar::not_found;
use std::os::fd::OwnedFd;
use std::path::Path;

/// Replace the one occurrence of `old` in the file with `new`, atomically, keeping the file's mode;
/// concurrent edits of one file are serialized. Line endings are handled by [`edit_text`].
pub fn edit_file(
    ws: &OwnedFd,
    ws_path: &Path,
    rel: &Path,
    shown: &str,
    old: &str,
    new: &str,
    lim: FileLimits,
) -> Result<u64, FileError> {
    if old.is_empty() {
        return Err(FileError::EmptyOldText);
    }
    if rel.as_os_str().is_empty() {
        return Err(super::path::not_a_file(shown));
    }
    let t = target(ws, ws_path, rel, shown, false)?;
    if t.mode.is_none() {
        return Err(FileError::NotFound(shown.into()));
    }
    let _g = stripe(&t.dir, &t.name)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    // Read under the lock, through the resolved directory, so the text we edit is what we replace.
    let text = decode(
        open_text(&t.dir, Path::new(&t.name), shown)?,
        shown,
        "edit_file",
    )?;
    let out = edit_text(&text, old, new, shown)?;
    if out.len() > lim.write_max_bytes.max(text.len()) {
        return Err(FileError::TooLarge {
            path: shown.into(),
            size: out.len() as u64,
            limit: lim.write_max_bytes as u64,
            hint: "the edited file would exceed the write limit",
        });
    }
    if let Some(ceiling) = lim.workspace_ceiling {
        let old = super::write::old_size(&t);
        super::usage::check(ws, ceiling, old, out.len() as u64, shown)?;
    }
    replace_atomically(&t, out.as_bytes(), shown)?;
    Ok(out.len() as u64)
}

/// A UTF-8 byte order mark.
const BOM: char = '\u{feff}';

/// The edit itself, on text: find `old` exactly once and replace it with `new`. Only the
/// replaced text changes: every byte before and after the match is written back as it was.
///
/// Line endings do not count when matching: `\r\n` (and, in a file with no `\n` at all, `\r`)
/// match `\n`, so an `old_text` written with `\n` finds its lines in a CRLF file and vice versa.
/// When the normalized text occurs more than once (a mixed file), an exact byte match that
/// occurs once still picks it.
///
/// Line endings of `new` (see [`restyle`]): only endings the caller chose are written as given.
/// A bare `\n` is written in the style of the lines it replaces (a CRLF file stays CRLF, an LF
/// file stays LF, a mixed file keeps each part's style). A `\r\n` in `new` is the caller's
/// choice and is written as it is, even into an LF file, unless `old` was written with `\r\n`
/// too (then it was only the style the caller assumed, and it is treated like `\n`). Lines that
/// `new` leaves as they were in `old` keep the file's exact bytes.
///
/// A UTF-8 byte order mark at the start of the file is not text: it is ignored when matching (as
/// is one at the start of `old`) and always kept. A BOM at the start of `new` is dropped when
/// `old` started with one or the edit starts at the beginning of a file that has one, so the
/// file never gains a second one; edit_file neither adds nor removes the file's BOM that way.
///
/// When the text is only missing because of whitespace (indentation, tabs, trailing spaces,
/// blank lines, a final newline, a stray `\r`), the error says so and shows the exact lines.
pub fn edit_text(text: &str, old: &str, new: &str, shown: &str) -> Result<String, FileError> {
    let (bom, body) = match text.strip_prefix(BOM) {
        Some(rest) => (&text[..BOM.len_utf8()], rest),
        None => ("", text),
    };
    let old_bom = old.starts_with(BOM);
    let old = old.strip_prefix(BOM).unwrap_or(old);
    if old.is_empty() {
        return Err(if old_bom {
            FileError::BomOnlyOldText
        } else {
            FileError::EmptyOldText
        });
    }
    let cr_is_newline = !body.contains('\n') && body.contains('\r');
    let nt = Normalized::new(body, cr_is_newline);
    let no = Normalized::new(old, cr_is_newline).text;
    // Overlapping occurrences count: `x\nx` is twice in `x\nx\nx\n`, and replacing the first
    // would be a guess.
    let mut found = occurrences(&nt.text, &no);
    let Some(s) = found.next() else {
        // The exact bytes are there, yet not once line endings are whole: old_text holds the
        // `\r` of a `\r\n` without its `\n` (a match that splits a line ending).
        if occurrences(body, old).next().is_some() {
            return Err(FileError::SplitsLineEnding { path: shown.into() });
        }
        return Err(not_found(&nt.text, &no, shown));
    };
    let count = found.count() + 1;
    let (start, end) = if count == 1 {
        (nt.orig(s), nt.orig(s + no.len()))
    } else {
        // Ambiguous once line endings are ignored (a mixed file): the exact bytes may still pick
        // one, as long as that match does not split a "\r\n".
        let mut exact = occurrences(body, old);
        match (exact.next(), exact.next()) {
            (Some(s), None) if !splits_crlf(body, s) && !splits_crlf(body, s + old.len()) => {
                (s, s + old.len())
            }
            _ => {
                return Err(FileError::NotUnique {
                    path: shown.into(),
                    count,
                })
            }
        }
    };
    let new = match new.strip_prefix(BOM) {
        Some(rest) if old_bom || (!bom.is_empty() && start == 0) => rest,
        _ => new,
    };
    let replacement = restyle(body, (start, end), old, new, cr_is_newline);
    let mut out = String::with_capacity(text.len() - (end - start) + replacement.len());
    out.push_str(bom);
    out.push_str(&body[..start]);
    out.push_str(&replacement);
    out.push_str(&body[end..]);
    Ok(out)
}

/// The byte offsets of every occurrence of `needle` in `hay`, overlapping ones included: each
/// search starts one character after the previous match's start.
fn occurrences<'a>(hay: &'a str, needle: &'a str) -> impl Iterator<Item = usize> + 'a {
    let mut from = 0;
    std::iter::from_fn(move || {
        let at = from + hay.get(from..)?.find(needle)?;
        from = at + hay[at..].chars().next().map_or(1, char::len_utf8);
        Some(at)
    })
}

/// Whether byte offset `at` falls between the '\r' and the '\n' of a "\r\n".
fn splits_crlf(text: &str, at: usize) -> bool {
    let b = text.as_bytes();
    at > 0 && b.get(at - 1) == Some(&b'\r') && b.get(at) == Some(&b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fileops::similar::closest_region;

    fn edit(text: &str, old: &str, new: &str) -> Result<String, FileError> {
        edit_text(text, old, new, "f")
    }

    #[test]
    fn crlf_file_matches_lf_old_text_and_stays_crlf() {
        // The reported case: a CRLF file, a two-line old_text written with \n.
        let text = "line one\r\nline two\r\nline three\r\n";
        let out = edit(text, "line one\nline two", "first\nsecond\nthird").unwrap();
        assert_eq!(out, "first\r\nsecond\r\nthird\r\nline three\r\n");
        // new_text written with \r\n is written back the same way.
        let out = edit(text, "line two\n", "2\r\n").unwrap();
        assert_eq!(out, "line one\r\n2\r\nline three\r\n");
        // Exact CRLF old_text still works.
        let out = edit(text, "one\r\nline", "1\nLINE").unwrap();
        assert_eq!(out, "line 1\r\nLINE two\r\nline three\r\n");
        // An old_text starting at a line's \n takes the \r with it: no dangling \r.
        let out = edit(text, "\nline two", "\nTWO").unwrap();
        assert_eq!(out, "line one\r\nTWO\r\nline three\r\n");
    }

    #[test]
    fn lf_file_matches_crlf_old_text_and_stays_lf() {
        let text = "a\nb\nc\n";
        assert_eq!(edit(text, "a\r\nb\r\n", "x\r\ny\r\n").unwrap(), "x\ny\nc\n");
        // A stray \r inside a line of an LF file is not a line ending.
        let text = "progress\r50%\nend\n";
        assert_eq!(edit(text, "progress\r50%", "done").unwrap(), "done\nend\n");
        assert!(matches!(
            edit(text, "progress\n50%", "done"),
            Err(FileError::WhitespaceOnly { .. })
        ));
    }

    #[test]
    fn cr_only_file_matches_and_stays_cr() {
        let text = "one\rtwo\rthree\r";
        assert_eq!(edit(text, "one\ntwo\n", "1\n2\n").unwrap(), "1\r2\rthree\r");
        assert_eq!(edit(text, "two\r\nthree", "x\ny").unwrap(), "one\rx\ry\r");
    }

    #[test]
    fn trailing_newline_differences() {
        // No final newline in the file: a match on the last line works, the edit keeps that.
        let text = "a\r\nb";
        assert_eq!(edit(text, "a\nb", "x\ny").unwrap(), "x\r\ny");
        // old_text ending in a newline the file lacks: whitespace only, said so.
        let e = edit(text, "a\nb\n", "x").unwrap_err();
        let m = e.to_string();
        assert!(
            matches!(
                e,
                FileError::WhitespaceOnly {
                    first: 1,
                    last: 2,
                    ..
                }
            ),
            "{m}"
        );
        assert!(m.contains("blank lines or a final newline"), "{m}");
        assert!(!m.contains("100%"), "{m}");
        // A trailing newline in the file is kept when old_text stops before it.
        assert_eq!(edit("a\r\nb\r\n", "a\nb", "c").unwrap(), "c\r\n");
    }

    #[test]
    fn mixed_files_follow_the_region_then_its_lines_then_the_majority() {
        // Region has CRLF: the new lines are CRLF.
        let text = "a\r\nb\r\nc\nd\n";
        assert_eq!(edit(text, "a\nb", "1\n2").unwrap(), "1\r\n2\r\nc\nd\n");
        // Region has LF: the new lines are LF.
        assert_eq!(edit(text, "c\nd", "3\n4").unwrap(), "a\r\nb\r\n3\n4\n");
        // No line ending in the region: the ending of the line it lies in (#13 review: once the
        // file's majority, which put LF inside a CRLF block).
        assert_eq!(edit(text, "c", "5\n6").unwrap(), "a\r\nb\r\n5\n6\nd\n");
        let text = "a\r\nb\r\nc\n";
        assert_eq!(edit(text, "c", "5\n6").unwrap(), "a\r\nb\r\n5\n6\n");
        let text = "a\r\nb\r\nc\nd\ne\n";
        assert_eq!(edit(text, "b", "1\n2").unwrap(), "a\r\n1\r\n2\r\nc\nd\ne\n");
        assert_eq!(edit(text, "d", "1\n2").unwrap(), "a\r\nb\r\nc\n1\n2\ne\n");
        // Inside a line, on either side of a kept part, and over two lines that tie.
        assert_eq!(
            edit("x\nab\r\ny\n", "b", "B\nC").unwrap(),
            "x\naB\r\nC\r\ny\n"
        );
        assert_eq!(
            edit("p\r\nq\nr\nk\r\n", "q\nr\nk", "q\nr\nK\nL").unwrap(),
            "p\r\nq\nr\nK\r\nL\r\n"
        );
        // As many new lines as replaced ones: each keeps the ending of the line it replaces
        // (#13 review: a replaced block that mixed endings was made all one style).
        assert_eq!(
            edit(
                "one\r\ntwo\r\nthree\nfour\nfive\n",
                "one\ntwo\nthree\n",
                "ONE\nTWO\nTHREE\n"
            )
            .unwrap(),
            "ONE\r\nTWO\r\nTHREE\nfour\nfive\n"
        );
        assert_eq!(
            edit("one\r\ntwo\nthree\n", "one\ntwo\n", "ONE\nTWO\n").unwrap(),
            "ONE\r\nTWO\nthree\n"
        );
        assert_eq!(
            edit("a\nb\r\nc\n", "a\nb\nc", "A\nB\nC").unwrap(),
            "A\nB\r\nC\n"
        );
        // Fewer or more lines: one style for the block, as above (a tie goes to the file's).
        assert_eq!(
            edit("one\r\ntwo\nthree\n", "one\ntwo\n", "X\n").unwrap(),
            "X\nthree\n"
        );
        // A last line without an ending decides nothing: the region, then the file.
        assert_eq!(
            edit("a\r\nb\r\nc\nz", "z", "1\n2").unwrap(),
            "a\r\nb\r\nc\n1\r\n2"
        );
        // Ambiguous once endings are ignored, but the exact bytes pick one.
        let text = "x\r\ny\nx\ny\n";
        assert_eq!(edit(text, "x\ny", "z").unwrap(), "x\r\ny\nz\n");
        assert_eq!(edit(text, "x\r\ny", "z").unwrap(), "z\nx\ny\n");
        assert_eq!(
            edit("x\r\ny\nx\r\ny\n", "x\ny", "z"),
            Err(FileError::NotUnique {
                path: "f".into(),
                count: 2
            })
        );
    }

    #[test]
    fn whitespace_only_mismatch_says_so() {
        let text = "def f():\r\n\treturn 1\r\n\r\ndef g():\r\n    pass\r\n";
        let e = edit(text, "def f():\n    return 1\n", "x").unwrap_err();
        let m = e.to_string();
        assert!(
            matches!(
                e,
                FileError::WhitespaceOnly {
                    first: 1,
                    last: 2,
                    ..
                }
            ),
            "{m}"
        );
        assert!(
            m.contains("matches lines 1-2 if whitespace is ignored"),
            "{m}"
        );
        assert!(m.contains("line endings are already ignored"), "{m}");
        assert!(
            m.contains(r#"line 2: the file has "\treturn 1", old_text has "    return 1""#),
            "{m}"
        );
        assert!(m.contains("     2\t\treturn 1\n"), "{m}");
        assert!(!m.contains('%'), "{m}");
        // Its gRPC code (FailedPrecondition) is checked where the code is chosen, in api/files.rs.
    }

    #[test]
    fn not_found_never_claims_100_percent() {
        // Differs past the 2000-character comparison window: once reported as 100% similar.
        let long = "x".repeat(2500);
        let text = format!("{long}a\n");
        let e = edit(&text, &format!("{long}b"), "y").unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, FileError::TextNotFound { .. }), "{m}");
        assert!(m.contains("99% similar"), "{m}");
        // A one-character typo in a long line rounds to 100% without the cap.
        let line = "y".repeat(300);
        let m = edit(&format!("{line}\n"), &format!("{}z", &line[1..]), "q")
            .unwrap_err()
            .to_string();
        assert!(m.contains("most similar text (99% similar)"), "{m}");
        assert!(!m.contains("100%"), "{m}");
    }

    #[test]
    fn crlf_the_caller_wrote_is_kept_bare_lf_follows_the_file() {
        // An LF file: a \r\n in new_text was chosen, and is written as it is...
        let text = "a\nb\nc\n";
        assert_eq!(edit(text, "b", "p\r\nq").unwrap(), "a\np\r\nq\nc\n");
        assert_eq!(edit(text, "a\nb", "x\r\ny").unwrap(), "x\r\ny\nc\n");
        // A caller who wrote old_text with \r\n too only assumed the file was CRLF: its \r\n in
        // new_text is no choice, and the file stays LF.
        assert_eq!(edit(text, "a\r\nb\r\n", "x\r\ny\r\n").unwrap(), "x\ny\nc\n");
        // ...while its bare \n, in the same new_text, still takes the file's style.
        assert_eq!(edit(text, "b\n", "p\r\nq\n").unwrap(), "a\np\r\nq\nc\n");
        // A CRLF file: bare \n becomes \r\n, a written \r\n stays, so both give CRLF.
        let text = "a\r\nb\r\nc\r\n";
        assert_eq!(
            edit(text, "b\n", "p\r\nq\nr\n").unwrap(),
            "a\r\np\r\nq\r\nr\r\nc\r\n"
        );
        // A classic-Mac file: bare \n becomes \r; a written \r\n stays.
        assert_eq!(edit("a\rb\r", "a", "x\ny\r\nz").unwrap(), "x\ry\r\nz\rb\r");
        // A lone \r in new_text is not a line ending outside a classic-Mac file: kept as is.
        assert_eq!(edit("a\nb\n", "a", "x\ry").unwrap(), "x\ry\nb\n");
    }

    #[test]
    fn an_edit_changes_only_the_lines_it_changes() {
        // Mixed endings; old_text spans most of the file and new_text changes one line.
        let text = "one\r\ntwo\nthree\r\nfour\nfive\r\nsix\n";
        let out = edit(
            text,
            "one\ntwo\nthree\nfour\nfive\n",
            "one\ntwo\nTHREE\nfour\nfive\n",
        )
        .unwrap();
        assert_eq!(out, "one\r\ntwo\nTHREE\r\nfour\nfive\r\nsix\n");
        // Every byte outside the changed line is the file's.
        let at = text.find("three").unwrap();
        assert_eq!(out[..at], text[..at]);
        assert_eq!(out[at + 5..], text[at + 5..]);
        // The same with old_text written in CRLF throughout, and with the LF line changed.
        let out = edit(
            text,
            "one\r\ntwo\r\nthree\r\nfour\r\n",
            "one\r\nTWO\r\nthree\r\nfour\r\n",
        )
        .unwrap();
        assert_eq!(out, "one\r\nTWO\nthree\r\nfour\nfive\r\nsix\n");
        // A \r\n chosen for one kept line changes just that line's ending.
        let out = edit(text, "one\ntwo\nthree\n", "one\ntwo\r\nthree\n").unwrap();
        assert_eq!(out, "one\r\ntwo\r\nthree\r\nfour\nfive\r\nsix\n");
        // A line inserted between kept lines takes the style of the file (here a tie: LF).
        let out = edit(text, "two\nthree", "two\nnew\nthree").unwrap();
        assert_eq!(out, "one\r\ntwo\nnew\nthree\r\nfour\nfive\r\nsix\n");
        // Replaced lines take the style of the lines they replace, not the region's majority.
        let text = "a\r\nb\r\nc\nd\r\n";
        let out = edit(text, "a\nb\nc\nd\n", "a\nb\nC\nC2\nd\n").unwrap();
        assert_eq!(out, "a\r\nb\r\nC\nC2\nd\r\n");
        // Deleting a line keeps the others' bytes.
        let out = edit(text, "b\nc\nd", "b\nd").unwrap();
        assert_eq!(out, "a\r\nb\r\nd\r\n");
        // A last line without an ending stays without one.
        let out = edit("x\r\ny\nz", "y\nz", "Y\nz").unwrap();
        assert_eq!(out, "x\r\nY\nz");
    }

    #[test]
    fn a_bom_is_ignored_when_matching_and_always_kept() {
        let text = "\u{feff}first\r\nsecond\r\n";
        // old_text with the BOM (new_text copied it too): one BOM, CRLF kept.
        let out = edit(text, "\u{feff}first\n", "\u{feff}1st\n").unwrap();
        assert_eq!(out, "\u{feff}1st\r\nsecond\r\n");
        // old_text with the BOM, new_text without: the BOM stays.
        assert_eq!(
            edit(text, "\u{feff}first", "1st").unwrap(),
            "\u{feff}1st\r\nsecond\r\n"
        );
        // old_text without it, new_text with it: still one BOM.
        assert_eq!(
            edit(text, "first", "\u{feff}1st").unwrap(),
            "\u{feff}1st\r\nsecond\r\n"
        );
        // Plain first-line and whole-file edits keep it.
        assert_eq!(
            edit(text, "first\nsecond\n", "only\n").unwrap(),
            "\u{feff}only\r\n"
        );
        // No BOM in the file: an old_text BOM is ignored and none is added by copying it...
        assert_eq!(edit("a\nb\n", "\u{feff}a", "\u{feff}x").unwrap(), "x\nb\n");
        // ...but one written at the start of new_text alone is the caller's and is kept.
        assert_eq!(edit("a\nb\n", "a", "\u{feff}x").unwrap(), "\u{feff}x\nb\n");
        // A BOM is never a match for whitespace, and a BOM alone is no old_text.
        assert_eq!(edit(text, "\u{feff}", "x"), Err(FileError::BomOnlyOldText));
        assert!(matches!(
            edit(text, "\u{feff}first\nsecond\n\n", "x"),
            Err(FileError::WhitespaceOnly { first: 1, .. })
        ));
    }

    #[test]
    fn a_lone_cr_miss_is_explained_and_never_100_percent() {
        // In the file byte for byte, but only as half of a line ending: said so, never "not
        // found exactly".
        for (text, old) in [
            ("a\r\nb\r\n", "a\r"),
            ("one\r\ntwo\r\n", "one\r"),
            ("one\r\ntwo\r\n", "one\r\ntwo\r"),
            ("x\none\r\n", "one\r"),
        ] {
            let e = edit(text, old, "x").unwrap_err();
            let m = e.to_string();
            assert!(
                matches!(e, FileError::SplitsLineEnding { .. }),
                "{old:?}: {m}"
            );
            assert!(!m.contains("not found"), "{old:?}: {m}");
            assert!(m.contains("first half of a \\r\\n"), "{old:?}: {m}");
        }
        for (text, old) in [
            ("a\nb\n", "a\r"),
            ("a\r\nb\r\n", "a\nb\r"),
            ("alpha beta\r\ngamma\r\n", "alpha beta\r\r\ngamma"),
            ("a\nb\n", "a\n\r"),
        ] {
            let e = edit(text, old, "x").unwrap_err();
            let m = e.to_string();
            assert!(matches!(e, FileError::WhitespaceOnly { .. }), "{m}");
            assert!(m.contains("lone \\r"), "{old:?}: {m}");
            assert!(!m.contains('%'), "{old:?}: {m}");
            assert!(!m.contains("lines 1-1"), "{old:?}: {m}");
        }
        // Only whitespace, and not in the file like that: said, without a similarity.
        for old in ["\r", " \t", "\r\r"] {
            let e = edit("a\nb\n", old, "x").unwrap_err();
            let m = e.to_string();
            assert!(matches!(e, FileError::TextNotFound { .. }), "{m}");
            assert!(
                m.contains("only whitespace and line endings"),
                "{old:?}: {m}"
            );
            assert!(!m.contains('%'), "{old:?}: {m}");
        }
        // A real miss with a lone \r: the hint, and at most 99%.
        let m = edit("alpha beta gamma\n", "alpha beta gamme\r", "x")
            .unwrap_err()
            .to_string();
        assert!(m.contains("lone \\r") && m.contains("% similar"), "{m}");
        assert!(!m.contains("100%"), "{m}");
    }

    #[test]
    fn messages_count_in_the_singular_for_one() {
        let m = edit("a\nb\n", "  a", "x").unwrap_err().to_string();
        assert!(m.contains("matches line 1 if whitespace"), "{m}");
        let m = closest_region("abc\ndef\n", "abd");
        assert!(m.contains("is at line 1:\n"), "{m}");
        let m = closest_region("abc\ndef\n", "abc\ndeg");
        assert!(m.contains("is at lines 1-2:\n"), "{m}");
        let e = FileError::Offset {
            path: "f".into(),
            offset: 5,
            lines: 1,
        };
        assert!(e.to_string().ends_with("(1 line)"), "{e}");
        let e = FileError::TooLarge {
            path: "f".into(),
            size: 1,
            limit: 0,
            hint: "h",
        };
        assert!(e.to_string().contains("(1 byte, the limit is 0)"), "{e}");
        let e = FileError::TooLarge {
            path: "f".into(),
            size: 2,
            limit: 1,
            hint: "h",
        };
        assert!(e.to_string().contains("(2 bytes, the limit is 1)"), "{e}");
    }

    #[test]
    fn overlapping_occurrences_are_not_unique() {
        let not_unique = |count| {
            Err(FileError::NotUnique {
                path: "f".into(),
                count,
            })
        };
        // Once each of these replaced the first occurrence ("x\nx\nx\n" became "y\nx\n").
        assert_eq!(edit("x\nx\nx\n", "x\nx", "y"), not_unique(2));
        assert_eq!(edit("    }\n}\n}\n", "}\n}\n", "}\n"), not_unique(2));
        assert_eq!(edit("aaa", "aa", "b"), not_unique(2));
        assert_eq!(edit("aaaa", "aa", "b"), not_unique(3));
        assert_eq!(edit("ééé", "éé", "e"), not_unique(2));
        // In CRLF files too, and the exact bytes do not pick one of overlapping matches.
        assert_eq!(edit("x\r\nx\r\nx\r\n", "x\nx", "y"), not_unique(2));
        assert_eq!(edit("x\r\nx\r\nx\n", "x\r\nx", "y"), not_unique(2));
        // One occurrence, overlapping nothing, still works.
        assert_eq!(edit("x\nx\ny\n", "x\ny", "z").unwrap(), "x\nz\n");
        assert_eq!(edit("aab", "ab", "c").unwrap(), "ac");
        let m = edit("x\nx\nx\n", "x\nx", "y").unwrap_err().to_string();
        assert!(m.contains("old_text occurs 2 times"), "{m}");
    }
}

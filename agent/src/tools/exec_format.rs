//! The exec result as text for the model, formatted the way the Python nanobot formats it (so
//! prompts written for it keep working) and cut to `MAX_EXEC_OUTPUT` characters: stdout, a
//! `STDERR:` section, how the command ended, and notes on what was cut or replaced.

use crate::text::{count, invalid_utf8_bytes, split_char_at_end, split_char_at_start, thousands};
use nanobot_proto::pb::LimitHit;
use std::borrow::Cow;

/// Output longer than this is cut for the model, as upstream does.
pub const MAX_EXEC_OUTPUT: usize = 10_000;

/// One output stream as received: the streamed head, the tail the daemon kept past its cap and
/// the number of bytes the command really wrote (the bytes in between were dropped).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stream {
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
    pub total: u64,
}

impl Stream {
    pub fn new(head: Vec<u8>, tail: Vec<u8>, total: u64) -> Stream {
        // An older daemon does not count: then what arrived is all we know of.
        let total = total.max((head.len() + tail.len()) as u64);
        Stream { head, tail, total }
    }

    /// Bytes dropped between the head and the tail.
    pub fn gap(&self) -> u64 {
        self.total
            .saturating_sub((self.head.len() + self.tail.len()) as u64)
    }

    fn is_blank(&self) -> bool {
        self.total == 0
            || (self.gap() == 0
                && self
                    .head
                    .iter()
                    .chain(&self.tail)
                    .all(u8::is_ascii_whitespace))
    }

    /// The head and the tail as text can show them. Where the daemon dropped bytes between them
    /// (a gap), its cut may have split a character at the end of the head and at the start of
    /// the tail: those partial bytes are not invalid data but part of what was omitted, so they
    /// are left out (and counted as omitted). With no gap, a character split between head and
    /// tail moves whole into the tail. Invalid bytes anywhere else stay, to be replaced and
    /// reported.
    pub fn whole_chars(&self) -> (&[u8], Cow<'_, [u8]>) {
        let split = split_char_at_end(&self.head);
        let head = &self.head[..self.head.len() - split];
        if self.gap() > 0 {
            (
                head,
                Cow::Borrowed(&self.tail[split_char_at_start(&self.tail)..]),
            )
        } else if split > 0 && !self.tail.is_empty() {
            (
                head,
                Cow::Owned([&self.head[head.len()..], &self.tail[..]].concat()),
            )
        } else {
            (&self.head, Cow::Borrowed(&self.tail))
        }
    }

    /// Invalid UTF-8 bytes the text of this stream replaces.
    fn invalid_bytes(&self) -> usize {
        let (h, t) = self.whole_chars();
        if self.gap() == 0 {
            invalid_utf8_bytes(&[h, &t[..]].concat())
        } else {
            invalid_utf8_bytes(h) + invalid_utf8_bytes(&t)
        }
    }

    /// Room this stream takes when shown whole (with a gap marker if the daemon cut it).
    fn full_len(&self) -> usize {
        let marker = if self.gap() > 0 { MARKER_ROOM } else { 0 };
        self.head.len() + self.tail.len() + marker
    }
}

/// Room kept for the `... (N bytes omitted) ...` line.
const MARKER_ROOM: usize = 64;

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// A stream as text in at most `budget` characters: its head and its tail, with the real number
/// of bytes left out in between. Returns the text, the bytes left out and the invalid UTF-8 bytes
/// replaced.
fn render(st: &Stream, budget: usize) -> (String, u64, usize) {
    let (h, t) = st.whole_chars();
    let joined;
    // Where head and tail are cut from: with no gap, one run of text (head and tail side by side)
    // both are cut from; with a gap, the head from the first run and the tail from the second.
    let (hr, tr): (&[u8], &[u8]) = if st.gap() == 0 {
        joined = [h, &t[..]].concat();
        if joined.len() <= budget {
            return (
                String::from_utf8_lossy(&joined).into_owned(),
                0,
                invalid_utf8_bytes(&joined),
            );
        }
        (&joined, &joined)
    } else {
        (h, &t[..])
    };
    let avail = budget.saturating_sub(MARKER_ROOM);
    let mut tk = tr.len().min(avail / 2);
    let mut hk = hr.len().min(avail - tk);
    tk = tr.len().min(avail - hk);
    // Cut on character boundaries, so the cut itself makes no invalid bytes. A run kept whole
    // needs no cut (its ends were made whole by `whole_chars`).
    for _ in 0..3 {
        if hk > 0 && hk < hr.len() && is_continuation(hr[hk]) {
            hk -= 1;
        }
        let start = tr.len() - tk;
        if tk > 0 && start > 0 && is_continuation(tr[start]) {
            tk -= 1;
        }
    }
    let (head, tail) = (&hr[..hk], &tr[tr.len() - tk..]);
    let omitted = st.total.saturating_sub((hk + tk) as u64);
    let text = format!(
        "{}\n... ({} omitted) ...\n{}",
        String::from_utf8_lossy(head),
        count(omitted, "byte"),
        String::from_utf8_lossy(tail)
    );
    (
        text,
        omitted,
        invalid_utf8_bytes(head) + invalid_utf8_bytes(tail),
    )
}

/// How the command ended, for the model.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ending {
    pub exit_code: i32,
    pub signal: i32,
    pub timed_out: bool,
    pub timeout_secs: u32,
    /// sandboxd's `limit_hit`, as its name (a limit newer than this client is only a name).
    pub limit_hit: String,
    /// The same limit as the contract's enum, which decides what is said about it.
    pub limit: LimitHit,
    /// The daemon cut a stream at the profile's output limit.
    pub sandbox_truncated: bool,
}

/// A rendered stream: its text, the bytes left out and the invalid UTF-8 bytes replaced.
type Rendered = (String, u64, usize);

/// The notes after the ending: what was cut (`shown`, `total` and `omitted` bytes per stream),
/// the sandbox's limit, and invalid UTF-8 bytes replaced (per stream).
fn notes(
    cuts: [(&str, u64, u64, u64); 2],
    sandbox_truncated: bool,
    bad: [usize; 2],
) -> Vec<String> {
    let mut cut = vec![];
    for (name, shown, total, omitted) in cuts {
        if omitted > 0 {
            cut.push(format!(
                "{name}: {} of {} shown, {} omitted",
                thousands(shown),
                count(total, "byte"),
                thousands(omitted)
            ));
        }
    }
    if sandbox_truncated {
        cut.push("the sandbox's output limit (output_limit_bytes) was hit".into());
    }
    let mut parts = vec![];
    if !cut.is_empty() {
        parts.push(format!("(output truncated: {})", cut.join("; ")));
    }
    for (bad, name) in bad.into_iter().zip(["stdout", "stderr"]) {
        if bad > 0 {
            parts.push(format!(
                "({} replaced with U+FFFD in {name})",
                count(bad as u64, "invalid UTF-8 byte")
            ));
        }
    }
    parts
}

/// stdout, then a `STDERR:` section, then how the command ended (`Exit code: N` when not 0, the
/// signal, the timeout or the limit hit), then a note on what was cut and on replaced bytes. At
/// most `MAX_EXEC_OUTPUT` characters: output that fits whole (with the notes it needs) is shown
/// whole; longer output keeps each stream's head and tail, and the end (stderr's tail, the ending,
/// the notes) is always there.
pub fn format_exec(stdout: &Stream, stderr: &Stream, end: &Ending) -> String {
    let mut ending = vec![];
    if end.timed_out {
        ending.push(format!(
            "Error: Command timed out after {}",
            count(u64::from(end.timeout_secs), "second")
        ));
    } else if end.signal != 0 {
        ending.push(format!("Killed by signal {}", end.signal));
    } else if end.exit_code != 0 {
        ending.push(format!("Exit code: {}", end.exit_code));
    }
    // A timeout and the output cut have their own words above and below.
    if !matches!(
        end.limit,
        LimitHit::TimeoutSecs | LimitHit::OutputLimitBytes
    ) && !end.limit_hit.is_empty()
    {
        ending.push(if end.limit == LimitHit::Disk {
            "Limit hit: disk (the sandbox wrote more than its workspace ceiling and was killed; \
             remove files or write less)"
                .to_string()
        } else {
            format!("Limit hit: {}", end.limit_hit)
        });
    }
    let show_err = !stderr.is_blank();
    let assemble = |out: &Rendered, err: &Rendered| {
        let mut parts = vec![];
        if stdout.total > 0 {
            parts.push(out.0.clone());
        }
        if show_err {
            parts.push(format!("STDERR:\n{}", err.0));
        }
        parts.extend(ending.iter().cloned());
        parts.extend(notes(
            [
                ("stdout", stdout.total - out.1, stdout.total, out.1),
                ("stderr", stderr.total - err.1, stderr.total, err.1),
            ],
            end.sandbox_truncated,
            [out.2, err.2],
        ));
        if parts.is_empty() {
            "(no output)".to_string()
        } else {
            parts.join("\n")
        }
    };
    let nothing: Rendered = (String::new(), 0, 0);
    // Whole, with exactly the notes that needs (the daemon's own cut, replaced bytes), when it
    // fits: no room is kept for notes that are not there.
    let whole_err = if show_err {
        render(stderr, usize::MAX)
    } else {
        nothing.clone()
    };
    let whole = assemble(&render(stdout, usize::MAX), &whole_err);
    if whole.chars().count() <= MAX_EXEC_OUTPUT {
        return whole;
    }
    // It must be cut: keep room for the longest notes a cut can produce (every shown stream cut,
    // counts as wide as the totals, as many replaced bytes as the stream has bytes).
    let may_be_bad = |st: &Stream| {
        if st.invalid_bytes() > 0 {
            st.head.len() + st.tail.len()
        } else {
            0
        }
    };
    let err_total = if show_err { stderr.total } else { 0 };
    let notes_room = notes(
        [
            ("stdout", stdout.total, stdout.total, stdout.total),
            ("stderr", err_total, err_total, err_total),
        ],
        end.sandbox_truncated,
        [
            may_be_bad(stdout),
            if show_err { may_be_bad(stderr) } else { 0 },
        ],
    )
    .iter()
    .map(|l| l.len() + 1)
    .sum::<usize>();
    let header = if show_err { "STDERR:\n".len() + 1 } else { 0 };
    let fixed = ending.iter().map(|l| l.len() + 1).sum::<usize>() + notes_room + header + 1;
    let avail = MAX_EXEC_OUTPUT.saturating_sub(fixed);
    let (out_len, err_len) = (
        stdout.full_len(),
        if show_err { stderr.full_len() } else { 0 },
    );
    let (out_budget, err_budget) = if out_len + err_len <= avail {
        (out_len.max(avail - err_len), err_len)
    } else {
        let e = err_len.min((avail / 4).max(avail.saturating_sub(out_len)));
        (avail - e, e)
    };
    let err = if show_err {
        render(stderr, err_budget)
    } else {
        nothing
    };
    assemble(&render(stdout, out_budget), &err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(s: &str) -> Stream {
        Stream::new(s.as_bytes().to_vec(), vec![], 0)
    }

    fn code(c: i32) -> Ending {
        Ending {
            exit_code: c,
            ..Default::default()
        }
    }

    #[test]
    fn exec_results_read_like_upstream() {
        assert_eq!(format_exec(&plain(""), &plain(""), &code(0)), "(no output)");
        assert_eq!(format_exec(&plain("hi\n"), &plain(""), &code(0)), "hi\n");
        assert_eq!(
            format_exec(&plain("a\n"), &plain("bad\n"), &code(2)),
            "a\n\nSTDERR:\nbad\n\nExit code: 2"
        );
        assert_eq!(
            format_exec(
                &plain(""),
                &plain(""),
                &Ending {
                    signal: 9,
                    ..code(-1)
                }
            ),
            "Killed by signal 9"
        );
    }

    /// The example: `yes x | head -c 10100; echo boom >&2; exit 3` lost its stderr, its
    /// exit code and every note to the 10 000-character cut.
    #[test]
    fn long_output_keeps_head_tail_stderr_exit_code_and_a_note() {
        let out = format!("{}END", "x".repeat(10_097));
        let s = format_exec(&plain(&out), &plain("boom\n"), &code(3));
        assert!(s.chars().count() <= MAX_EXEC_OUTPUT, "{}", s.len());
        assert!(s.starts_with("xxxx"));
        assert!(
            s.ends_with(
                "xxxEND\nSTDERR:\nboom\n\nExit code: 3\n\
                 (output truncated: stdout: 9,796 of 10,100 bytes shown, 304 omitted)"
            ),
            "{}",
            &s[s.len() - 200..]
        );
        assert!(s.contains("xxx\n... (304 bytes omitted) ...\nxxx"));
    }

    #[test]
    fn the_dropped_amount_is_what_the_command_wrote() {
        // The daemon streamed 10 240 bytes, kept a 4 096-byte tail and counted 300 000 000.
        let st = Stream::new(vec![b'h'; 10_240], vec![b't'; 4_096], 300_000_000);
        let e = Stream::new(b"warn\n".to_vec(), vec![], 5);
        let end = Ending {
            signal: 15,
            sandbox_truncated: true,
            limit_hit: "output_limit_bytes".into(),
            limit: LimitHit::OutputLimitBytes,
            exit_code: -1,
            ..Default::default()
        };
        let s = format_exec(&st, &e, &end);
        assert!(s.chars().count() <= MAX_EXEC_OUTPUT);
        assert!(s.starts_with("hhh"));
        let shown_h = s.chars().take_while(|c| *c == 'h').count();
        let before_err = &s[..s.find("\nSTDERR:").unwrap_or(0)];
        let shown_t = before_err.chars().rev().take_while(|c| *c == 't').count();
        assert!(shown_h > 4_000 && shown_t > 2_000, "{shown_h} {shown_t}");
        let omitted = 300_000_000 - (shown_h + shown_t) as u64;
        assert!(
            s.contains(&format!(
                "h\n... ({} bytes omitted) ...\nt",
                thousands(omitted)
            )),
            "{omitted}"
        );
        assert!(
            s.contains("tttt\nSTDERR:\nwarn\n\nKilled by signal 15\n(output truncated: stdout: "),
            "{}",
            &s[s.len() - 300..]
        );
        assert!(
            s.contains("of 300,000,000 bytes shown"),
            "{}",
            &s[s.len() - 300..]
        );
        assert!(s.ends_with("the sandbox's output limit (output_limit_bytes) was hit)"));
        // Timeouts and limits end the text too, with the output before them.
        let end = Ending {
            timed_out: true,
            timeout_secs: 5,
            limit_hit: "timeout_secs".into(),
            limit: LimitHit::TimeoutSecs,
            exit_code: -1,
            signal: 9,
            ..Default::default()
        };
        let s = format_exec(&plain("partial\n"), &plain(""), &end);
        assert_eq!(s, "partial\n\nError: Command timed out after 5 seconds");
        let end = Ending {
            signal: 24,
            limit_hit: "cpu_secs".into(),
            limit: LimitHit::CpuSecs,
            ..Default::default()
        };
        assert_eq!(
            format_exec(&plain(""), &plain(""), &end),
            "Killed by signal 24\nLimit hit: cpu_secs"
        );
        let end = Ending {
            signal: 9,
            limit_hit: "disk".into(),
            limit: LimitHit::Disk,
            ..Default::default()
        };
        assert!(format_exec(&plain(""), &plain(""), &end)
            .starts_with("Killed by signal 9\nLimit hit: disk (the sandbox wrote more"));
    }

    #[test]
    fn long_stderr_keeps_its_tail_and_stdout_its_head_and_tail() {
        let out = format!("OUTHEAD{}OUTTAIL", "o".repeat(20_000));
        let err = format!("ERRHEAD{}ERRTAIL\n", "e".repeat(20_000));
        let s = format_exec(&plain(&out), &plain(&err), &code(1));
        assert!(s.chars().count() <= MAX_EXEC_OUTPUT, "{}", s.len());
        for part in [
            "OUTHEAD",
            "OUTTAIL",
            "ERRHEAD",
            "ERRTAIL\n\nExit code: 1\n(output truncated",
        ] {
            assert!(s.contains(part), "{part}");
        }
        assert!(s.contains("stderr: "), "{}", &s[s.len() - 300..]);
    }

    #[test]
    fn every_shape_of_output_fits_and_ends_with_the_ending() {
        let sizes = [
            0usize, 1, 100, 4_999, 5_000, 9_000, 9_999, 10_000, 10_001, 15_000, 40_000,
        ];
        for &o in &sizes {
            for &e in &sizes {
                for gap in [0u64, 1, 1 << 40] {
                    let head = |n: usize, c: u8| vec![c; n.min(10_240)];
                    let tail = |n: usize, c: u8| {
                        if gap > 0 {
                            vec![c; n.min(4_096)]
                        } else {
                            vec![]
                        }
                    };
                    let total = |n: usize| if gap > 0 { n as u64 + gap } else { n as u64 };
                    let st = Stream::new(head(o, b'o'), tail(o, b'p'), total(o));
                    let er = Stream::new(head(e, b'e'), tail(e, b'f'), total(e));
                    let end = Ending {
                        exit_code: 3,
                        sandbox_truncated: gap > 0,
                        ..Default::default()
                    };
                    let s = format_exec(&st, &er, &end);
                    assert!(
                        s.chars().count() <= MAX_EXEC_OUTPUT,
                        "{o} {e} {gap}: {}",
                        s.len()
                    );
                    let at = s.rfind("Exit code: 3").unwrap_or(0);
                    let after = &s[at..];
                    let noted = after.starts_with("Exit code: 3\n(output truncated: ")
                        && after.ends_with(')')
                        && after.lines().count() == 2;
                    assert!(after == "Exit code: 3" || noted, "{o} {e} {gap}: {after}");
                    if gap > 0 || o + e > MAX_EXEC_OUTPUT {
                        assert!(noted, "{o} {e} {gap}: {after}");
                    }
                }
            }
        }
    }

    /// Output that fits the cap whole, with the notes it needs, is never cut: no room is kept
    /// for notes that are not there.
    #[test]
    fn output_that_fits_is_shown_whole() {
        for n in [9_700, 9_990, MAX_EXEC_OUTPUT] {
            let out = "y".repeat(n);
            assert_eq!(format_exec(&plain(&out), &plain(""), &code(0)), out, "{n}");
        }
        // With an exit code and stderr: whole when it all fits.
        let out = "y".repeat(9_900);
        let s = format_exec(&plain(&out), &plain("e\n"), &code(1));
        assert_eq!(s, format!("{out}\nSTDERR:\ne\n\nExit code: 1"));
        // One character more than the cap: cut, with its note, within the cap.
        let out = "y".repeat(MAX_EXEC_OUTPUT + 1);
        let s = format_exec(&plain(&out), &plain(""), &code(0));
        assert!(s.chars().count() <= MAX_EXEC_OUTPUT);
        assert!(s.ends_with(" omitted)"), "{}", &s[s.len() - 100..]);
        // Invalid bytes that fit: whole, with the note.
        let mut bytes = vec![b'z'; 9_900];
        bytes.push(0xff);
        let s = format_exec(&Stream::new(bytes, vec![], 0), &plain(""), &code(0));
        assert!(
            s.ends_with("z\u{fffd}\n(1 invalid UTF-8 byte replaced with U+FFFD in stdout)"),
            "{}",
            &s[s.len() - 100..]
        );
    }

    /// The helpers themselves are tested in `text.rs`; here, the results use them.
    #[test]
    fn counts_read_in_english_with_one_number_format() {
        let end = Ending {
            timed_out: true,
            timeout_secs: 1,
            exit_code: -1,
            signal: 9,
            ..Default::default()
        };
        assert_eq!(
            format_exec(&plain(""), &plain(""), &end),
            "Error: Command timed out after 1 second"
        );
        // One byte dropped by the daemon: singular, and every count with separators.
        let st = Stream::new(vec![b'a'; 10_240], vec![b'b'; 4_096], 14_337);
        let end = Ending {
            sandbox_truncated: true,
            ..Default::default()
        };
        let s = format_exec(&st, &plain(""), &end);
        assert!(s.contains(" bytes omitted) ...\n"), "{s}");
        assert!(s.contains(" of 14,337 bytes shown, "), "{s}");
        let st = Stream::new(b"ab".to_vec(), b"c".to_vec(), 4);
        let s = format_exec(&st, &plain(""), &end);
        assert_eq!(
            s,
            "ab\n... (1 byte omitted) ...\nc\n(output truncated: stdout: 3 of 4 bytes shown, 1 \
             omitted; the sandbox's output limit (output_limit_bytes) was hit)"
        );
        let st = Stream::new(vec![b'x'; 20_000], vec![], 0);
        let s = format_exec(&st, &plain(""), &code(0));
        let marker = s.split("\n... (").nth(1).unwrap_or("");
        assert!(marker.starts_with("10,"), "{marker}");
    }

    #[test]
    fn invalid_utf8_is_replaced_and_said_so() {
        let st = Stream::new(b"a\xffb\xfe\n".to_vec(), vec![], 0);
        let s = format_exec(&st, &plain(""), &code(0));
        assert_eq!(
            s,
            "a\u{fffd}b\u{fffd}\n\n(2 invalid UTF-8 bytes replaced with U+FFFD in stdout)"
        );
        // Cutting never splits a character into replaced bytes.
        let long = "é".repeat(8_000);
        let s = format_exec(&plain(&long), &plain(""), &code(0));
        assert!(
            !s.contains('\u{fffd}') && !s.contains("invalid UTF-8"),
            "{}",
            &s[s.len() - 200..]
        );
        assert!(s.chars().count() <= MAX_EXEC_OUTPUT);
    }

    /// A character the daemon's cap split at the end of the head or the start of the tail is not
    /// invalid data: its bytes are left out with the omitted range and counted there.
    #[test]
    fn a_character_split_by_the_daemons_cut_is_omitted_not_replaced() {
        let b = "ab€cd".as_bytes(); // a b E2 82 AC c d
        let end = Ending {
            sandbox_truncated: true,
            ..Default::default()
        };
        // Cut after E2 82 (head) and before AC (tail), 93 bytes dropped in between: the 3 bytes
        // of the split `€` are omitted with them.
        let st = Stream::new(b[..4].to_vec(), b[4..].to_vec(), 100);
        assert_eq!(
            format_exec(&st, &plain(""), &end),
            "ab\n... (96 bytes omitted) ...\ncd\n(output truncated: stdout: 4 of 100 bytes \
             shown, 96 omitted; the sandbox's output limit (output_limit_bytes) was hit)"
        );
        // No gap: head and tail are one text, the character is whole.
        let st = Stream::new(b[..4].to_vec(), b[4..].to_vec(), 7);
        assert_eq!(st.whole_chars(), (&b[..2], Cow::Borrowed(&b[2..])));
        assert_eq!(
            format_exec(&st, &plain(""), &end).lines().next(),
            Some("ab€cd")
        );
        // Genuinely invalid bytes next to a split character are still replaced and said so.
        let st = Stream::new(b"\xffab\xe2\x82".to_vec(), b"\xacc\xfe".to_vec(), 100);
        let s = format_exec(&st, &plain(""), &end);
        assert!(
            s.starts_with("\u{fffd}ab\n... (95 bytes omitted) ...\nc\u{fffd}\n"),
            "{s}"
        );
        assert!(
            s.ends_with("(2 invalid UTF-8 bytes replaced with U+FFFD in stdout)"),
            "{s}"
        );
        // An incomplete character at the end of a stream nobody cut is the command's own.
        let st = Stream::new(b[..4].to_vec(), vec![], 4);
        assert!(format_exec(&st, &plain(""), &code(0)).contains("2 invalid UTF-8 bytes"));
    }

    /// The reviewer's example: `echo small` and 10 000 `€` on stderr. The daemon streamed the
    /// first 10 240 bytes of stderr (ending inside a `€`) and kept the last 4 096.
    #[test]
    fn euros_cut_by_the_daemon_are_not_invalid() {
        let err: Vec<u8> = "€".repeat(10_000).bytes().chain(*b"z").collect();
        for tail_len in [4_096, 4_095, 4_094] {
            let e = Stream::new(
                err[..10_240].to_vec(),
                err[err.len() - tail_len..].to_vec(),
                err.len() as u64,
            );
            let s = format_exec(&plain("small\n"), &e, &code(0));
            assert!(
                !s.contains('\u{fffd}') && !s.contains("invalid UTF-8"),
                "{s}"
            );
            assert!(s.contains("€€z\n"), "{}", &s[s.len() - 300..]);
            assert!(s.chars().count() <= MAX_EXEC_OUTPUT);
        }
    }

    /// Random valid text with multibyte characters, cut by the daemon at every offset (head end
    /// and tail start, with and without a gap, shown whole or cut again for the model): never a
    /// replaced byte, and shown + omitted is always what the command wrote.
    #[test]
    fn valid_text_cut_anywhere_is_never_reported_invalid() {
        let chars = ['a', '\n', 'é', '€', '😀', 'ß', '中'];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut text = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| chars[(next() % chars.len() as u64) as usize])
                .collect::<String>()
                .into_bytes()
        };
        let end = Ending {
            sandbox_truncated: true,
            ..Default::default()
        };
        let check = |st: &Stream, err: &Stream| {
            let s = format_exec(st, err, &end);
            assert!(
                !s.contains('\u{fffd}') && !s.contains("invalid UTF-8"),
                "{st:?} {s}"
            );
            assert!(s.chars().count() <= MAX_EXEC_OUTPUT);
        };
        // Small: every head end and every tail start.
        for _ in 0..8 {
            let b = text(40);
            for i in 0..=b.len() {
                for j in i..=b.len() {
                    let st = Stream::new(b[..i].to_vec(), b[j..].to_vec(), b.len() as u64);
                    check(&st, &plain(""));
                    check(&plain("x"), &st);
                    let (out, omitted, bad) = render(&st, usize::MAX);
                    assert_eq!(bad, 0);
                    let shown = out.len() as u64 + omitted;
                    let marker = if st.gap() > 0 {
                        format!("\n... ({} omitted) ...\n", count(omitted, "byte")).len() as u64
                    } else {
                        0
                    };
                    assert_eq!(shown - marker, b.len() as u64, "{i} {j} {out:?}");
                }
            }
        }
        // Large, as the daemon cuts: 10 240-byte head, 4 096-byte tail, cut again for the model.
        for _ in 0..4 {
            let b = text(12_000);
            for k in 0..4 {
                let head = b[..10_240 - k].to_vec();
                let tail = b[b.len() - 4_096 + k..].to_vec();
                let st = Stream::new(head, tail, b.len() as u64);
                check(&st, &plain(""));
                check(&st, &st);
                let joined = Stream::new(b[..10_240 - k].to_vec(), b[10_240 - k..].to_vec(), 0);
                check(&joined, &plain(""));
            }
        }
    }
}

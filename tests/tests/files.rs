//! File tools, the command guard and the audit trail, against the real daemon. Each escape first
//! shows the outside file is there and readable by the daemon's user (positive control), then that
//! the tool fails with "outside the workspace" and nothing outside changed.

use nanobot_e2e::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn outside(d: &Daemon) -> PathBuf {
    let (uid, gid) = test_ids();
    let o = d.dir.join("outside");
    std::fs::create_dir_all(&o).unwrap();
    std::fs::write(o.join("secret"), "TOPSECRET\n").unwrap();
    chown(&o, uid, gid);
    chown(&o.join("secret"), uid, gid);
    o
}

fn tool(d: &Daemon, home: &Path, name: &str, json: &str) -> Output {
    Command::new(bin("nanobot"))
        .args(["tool", name, json, "--socket"])
        .arg(&d.socket)
        .arg("--workspace")
        .arg(&d.ws)
        .env("HOME", home)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn home(d: &Daemon) -> PathBuf {
    let h = d.dir.join("home");
    std::fs::create_dir_all(&h).unwrap();
    h
}

fn as_daemon_user_can_read(p: &Path) -> bool {
    let (uid, gid) = test_ids();
    let mut c = Command::new("cat");
    c.arg(p).stdout(Stdio::null()).stderr(Stdio::null());
    if is_root() {
        as_user(&mut c, uid, gid);
    }
    c.status().unwrap().success()
}

fn give(p: &Path) {
    let (uid, gid) = test_ids();
    chown(p, uid, gid);
}

#[test]
fn file_tools_work_inside_the_workspace() {
    let d = Daemon::start();
    let h = home(&d);
    let o = tool(
        &d,
        &h,
        "write_file",
        r#"{"path": "notes/a/b.md", "content": "line1\nline2\n"}"#,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(stdout(&o), "Successfully wrote 12 bytes to notes/a/b.md\n");
    assert_eq!(
        std::fs::read_to_string(d.ws.join("notes/a/b.md")).unwrap(),
        "line1\nline2\n"
    );
    let o = tool(&d, &h, "read_file", r#"{"path": "notes/a/b.md"}"#);
    assert_eq!(stdout(&o), "line1\nline2\n\n");
    let o = tool(
        &d,
        &h,
        "read_file",
        r#"{"path": "notes/a/b.md", "offset": 2, "limit": 1}"#,
    );
    assert_eq!(stdout(&o), "line2\n\n");
    // Absolute paths inside and `~` (HOME is the workspace in the sandbox) work too.
    let abs = format!(r#"{{"path": "{}/notes/a/b.md"}}"#, d.ws.display());
    assert_eq!(stdout(&tool(&d, &h, "read_file", &abs)), "line1\nline2\n\n");
    assert_eq!(
        stdout(&tool(&d, &h, "read_file", r#"{"path": "~/notes/a/b.md"}"#)),
        "line1\nline2\n\n"
    );
    // A symlink that stays inside keeps working, for reading and writing through it.
    std::os::unix::fs::symlink("notes/a/b.md", d.ws.join("link.md")).unwrap();
    assert_eq!(
        stdout(&tool(&d, &h, "read_file", r#"{"path": "link.md"}"#)),
        "line1\nline2\n\n"
    );
    let o = tool(
        &d,
        &h,
        "edit_file",
        r#"{"path": "link.md", "old_text": "line2", "new_text": "LINE2"}"#,
    );
    assert_eq!(stdout(&o), "Successfully edited link.md\n");
    assert_eq!(
        std::fs::read_to_string(d.ws.join("notes/a/b.md")).unwrap(),
        "line1\nLINE2\n"
    );
    assert!(std::fs::symlink_metadata(d.ws.join("link.md"))
        .unwrap()
        .file_type()
        .is_symlink());
    // Mode of a replaced file is kept.
    std::fs::set_permissions(
        d.ws.join("notes/a/b.md"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    tool(
        &d,
        &h,
        "write_file",
        r#"{"path": "notes/a/b.md", "content": "x"}"#,
    );
    let m = std::fs::metadata(d.ws.join("notes/a/b.md"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(m, 0o640);
    let o = tool(&d, &h, "list_dir", r#"{"path": "."}"#);
    assert_eq!(stdout(&o), "📄 link.md\n📁 notes\n");
    // Errors a model can act on.
    let o = tool(&d, &h, "read_file", r#"{"path": "nope.txt"}"#);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).starts_with("Error: nope.txt: no such file"),
        "{}",
        stdout(&o)
    );
    std::fs::write(d.ws.join("bin.dat"), b"\x00\x01\x02").unwrap();
    assert!(stdout(&tool(&d, &h, "read_file", r#"{"path": "bin.dat"}"#)).contains("binary file"));
    std::fs::write(d.ws.join("latin1.txt"), b"caf\xe9").unwrap();
    assert!(
        stdout(&tool(&d, &h, "read_file", r#"{"path": "latin1.txt"}"#)).contains("not valid UTF-8")
    );
    assert!(stdout(&tool(&d, &h, "read_file", r#"{"path": "notes"}"#)).contains("is a directory"));
    assert!(stdout(&tool(&d, &h, "read_file", r#"{"path": "a\u0000b"}"#)).contains("NUL"));
}

#[test]
fn read_cap_and_edit_semantics() {
    let d = Daemon::start_with(Opts {
        config: Some("read_max_chars = 50\nwrite_max_bytes = 1000\n".into()),
        ..Opts::default()
    });
    let h = home(&d);
    let text: String = (1..=20).map(|i| format!("line number {i:02}\n")).collect();
    std::fs::write(d.ws.join("long.txt"), &text).unwrap();
    let o = stdout(&tool(&d, &h, "read_file", r#"{"path": "long.txt"}"#));
    assert!(
        o.starts_with("line number 01\nline number 02\nline number 03\n\n[truncated"),
        "{o}"
    );
    assert!(o.contains("read on with offset=4"), "{o}");
    let big = format!(
        r#"{{"path": "big.txt", "content": "{}"}}"#,
        "x".repeat(1001)
    );
    let o = tool(&d, &h, "write_file", &big);
    assert!(stdout(&o).contains("too large"), "{}", stdout(&o));
    assert!(!d.ws.join("big.txt").exists());

    std::fs::write(
        d.ws.join("e.py"),
        "def f():\n    return 1\n\ndef g():\n    return 1\n",
    )
    .unwrap();
    give(&d.ws.join("e.py"));
    let o = stdout(&tool(
        &d,
        &h,
        "edit_file",
        r#"{"path": "e.py", "old_text": "return 1", "new_text": "return 2"}"#,
    ));
    assert!(
        o.contains("occurs 2 times") && o.contains("Nothing was written"),
        "{o}"
    );
    let o = stdout(&tool(
        &d,
        &h,
        "edit_file",
        r#"{"path": "e.py", "old_text": "def h():\n    return 1", "new_text": "x"}"#,
    ));
    assert!(
        o.contains("old_text not found") && o.contains("most similar text"),
        "{o}"
    );
    assert!(o.contains("def f():") || o.contains("def g():"), "{o}");
    assert_eq!(
        std::fs::read_to_string(d.ws.join("e.py")).unwrap(),
        "def f():\n    return 1\n\ndef g():\n    return 1\n"
    );
}

/// Results the model can trust (#13 review): a line longer than the read cap says it was cut and
/// how to see the rest (the command it names really prints it); an overlapping old_text is not
/// unique; every whitespace-only candidate is named; counts have thousands separators.
#[test]
fn read_and_edit_results_say_what_they_left_out() {
    let d = Daemon::start();
    let h = home(&d);
    let long = format!("{}TAILOFLINE1\nsecond\n", "A".repeat(200_000));
    std::fs::write(d.ws.join("wide.txt"), &long).unwrap();
    give(&d.ws.join("wide.txt"));
    let o = stdout(&tool(&d, &h, "read_file", r#"{"path": "wide.txt"}"#));
    assert!(!o.contains("TAILOFLINE1"), "the cap cut the line");
    let note = &o[o.rfind("\n[truncated").expect("a note")..];
    assert!(
        note.contains("line 1 is 200,011 characters long")
            && note.contains("cut after its first 128,000 characters")
            && note.contains("cannot page within a line")
            && note.contains("offset=2"),
        "{note}"
    );
    assert!(!note.contains("(line 1 of 2)"), "{note}");
    // The command the note names prints the rest of the line in chunks that fit an exec result
    // (#13 review: once `head -c 128000`, of which the exec result showed 10,000 characters).
    let cmd = note.split('`').nth(1).expect("a command in backticks");
    assert_eq!(cmd, "tail -c +128001 wide.txt | head -c 8000");
    assert!(
        note.contains("then +136001, +144001 and so on") && note.contains("multi-byte"),
        "{note}"
    );
    let chunk = |from: usize| {
        let cmd = format!("tail -c +{from} wide.txt | head -c 8000");
        stdout(&tool(
            &d,
            &h,
            "exec",
            &serde_json::json!({ "command": cmd }).to_string(),
        ))
    };
    // A chunk arrives whole: no cut, no note.
    let o = chunk(128_001);
    assert_eq!(o.trim_end(), "A".repeat(8000), "a whole chunk");
    // Chunk by chunk, the rest of the line.
    let o = chunk(128_001 + 9 * 8000);
    assert!(o.contains("TAILOFLINE1\nsecond"), "{o}");
    // And offset=2 reads on after it.
    let o = stdout(&tool(
        &d,
        &h,
        "read_file",
        r#"{"path": "wide.txt", "offset": 2}"#,
    ));
    assert!(o.starts_with("second"), "{o}");
    // Counts with thousands separators.
    let many: String = (1..=17_957).map(|i| format!("{i}\n")).collect();
    std::fs::write(d.ws.join("many.txt"), &many).unwrap();
    give(&d.ws.join("many.txt"));
    let o = stdout(&tool(
        &d,
        &h,
        "read_file",
        r#"{"path": "many.txt", "offset": 30000}"#,
    ));
    assert!(
        o.contains("offset 30000 is past the end of the file (17,957 lines)"),
        "{o}"
    );

    // Overlapping occurrences are not one occurrence; nothing is written.
    for (text, old) in [
        ("x\nx\nx\n", "x\nx"),
        ("    }\n}\n}\n", "}\n}\n"),
        ("aaa", "aa"),
    ] {
        std::fs::write(d.ws.join("o.txt"), text).unwrap();
        give(&d.ws.join("o.txt"));
        let args =
            serde_json::json!({ "path": "o.txt", "old_text": old, "new_text": "y" }).to_string();
        let o = stdout(&tool(&d, &h, "edit_file", &args));
        assert!(
            o.contains("old_text occurs 2 times") && o.contains("Nothing was written"),
            "{old:?}: {o}"
        );
        assert_eq!(std::fs::read_to_string(d.ws.join("o.txt")).unwrap(), text);
    }

    // Every place that matches once whitespace is ignored is named.
    std::fs::write(d.ws.join("w.py"), "if x:\n    a()\nb()\n\nif x:\n\ta()\n").unwrap();
    give(&d.ws.join("w.py"));
    let args = serde_json::json!({ "path": "w.py", "old_text": "if x:\n  a()\n", "new_text": "z" })
        .to_string();
    let o = stdout(&tool(&d, &h, "edit_file", &args));
    assert!(
        o.contains("matches lines 1-2 and lines 5-6 if whitespace is ignored")
            && o.contains("must match exactly one of them"),
        "{o}"
    );
}

/// What the file tools say is what was asked (#13 second review): a read with `limit` says the
/// file goes on and how to read on, an empty file says so; edit_file on a binary file names
/// edit_file; an empty path is called empty; a bare `\n` in a mixed file takes the ending of the
/// line it replaces.
#[test]
fn file_results_say_what_was_asked_and_what_is_left() {
    let d = Daemon::start();
    let h = home(&d);
    let ten: String = (1..=10).map(|i| format!("{i}\n")).collect();
    for (name, text) in [
        ("ten.txt", ten.as_bytes()),
        ("empty.txt", b"".as_slice()),
        ("bin.dat", b"a\x00b\n".as_slice()),
        ("mixed.txt", b"a\r\nb\r\nc\nd\ne\n".as_slice()),
    ] {
        std::fs::write(d.ws.join(name), text).unwrap();
        give(&d.ws.join(name));
    }
    let read = |json: &str| stdout(&tool(&d, &h, "read_file", json));
    assert_eq!(
        read(r#"{"path": "ten.txt", "limit": 2}"#),
        "1\n2\n\n[showing lines 1-2 of 10; read on with offset=3]\n"
    );
    assert_eq!(
        read(r#"{"path": "ten.txt", "offset": 3, "limit": 1}"#),
        "3\n\n[showing line 3 of 10; read on with offset=4]\n"
    );
    // Reading on to the end, or the whole file: nothing added.
    assert_eq!(
        read(r#"{"path": "ten.txt", "offset": 9, "limit": 5}"#),
        "9\n10\n\n"
    );
    assert_eq!(read(r#"{"path": "ten.txt"}"#), format!("{ten}\n"));
    assert_eq!(read(r#"{"path": "empty.txt"}"#), "(empty file)\n");
    // Binary: the operation called is named.
    let o = stdout(&tool(
        &d,
        &h,
        "edit_file",
        r#"{"path": "bin.dat", "old_text": "a", "new_text": "b"}"#,
    ));
    assert!(
        o.contains("bin.dat: binary file") && o.contains("edit_file only works on UTF-8 text"),
        "{o}"
    );
    assert!(!o.contains("read_file"), "{o}");
    assert!(read(r#"{"path": "bin.dat"}"#).contains("read_file only works on UTF-8 text"));
    // An empty path is empty, not ": is a directory".
    for (name, json) in [
        (
            "edit_file",
            r#"{"path": "", "old_text": "a", "new_text": "b"}"#,
        ),
        ("read_file", r#"{"path": ""}"#),
        ("write_file", r#"{"path": "", "content": "x"}"#),
    ] {
        let o = tool(&d, &h, name, json);
        assert_eq!(o.status.code(), Some(1), "{name}");
        assert!(
            stdout(&o).starts_with("Error: path is empty"),
            "{name}: {}",
            stdout(&o)
        );
    }
    // A directory is still called one.
    assert!(read(r#"{"path": "."}"#).contains(".: is a directory"));
    // Mixed endings: `b` lies in a CRLF line, so the new lines are CRLF.
    let o = tool(
        &d,
        &h,
        "edit_file",
        r#"{"path": "mixed.txt", "old_text": "b", "new_text": "1\n2"}"#,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(
        std::fs::read(d.ws.join("mixed.txt")).unwrap(),
        b"a\r\n1\r\n2\r\nc\nd\ne\n"
    );
}

/// A CRLF file edited with a `\n` old_text: once "not found ... (100% similar)", now edited with
/// its CRLF endings (and mode) kept; whitespace-only misses say so.
#[test]
fn edit_file_ignores_line_endings_and_keeps_the_files_style() {
    let d = Daemon::start();
    let h = home(&d);
    let p = d.ws.join("win.txt");
    std::fs::write(&p, "line one\r\nline two\r\nline three\r\n").unwrap();
    give(&p);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    let args = serde_json::json!({
        "path": "win.txt",
        "old_text": "line one\nline two",
        "new_text": "first\nsecond\nthird",
    })
    .to_string();
    let o = tool(&d, &h, "edit_file", &args);
    assert_eq!(stdout(&o), "Successfully edited win.txt\n");
    assert_eq!(
        std::fs::read_to_string(&p).unwrap(),
        "first\r\nsecond\r\nthird\r\nline three\r\n"
    );
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
        0o640
    );

    // A CRLF old_text on an LF file: matched, and the file stays LF.
    let q = d.ws.join("unix.txt");
    std::fs::write(&q, "a\nb\nc\n").unwrap();
    give(&q);
    let args = serde_json::json!({
        "path": "unix.txt", "old_text": "a\r\nb\r\n", "new_text": "x\r\ny\r\n",
    })
    .to_string();
    assert_eq!(
        stdout(&tool(&d, &h, "edit_file", &args)),
        "Successfully edited unix.txt\n"
    );
    assert_eq!(std::fs::read_to_string(&q).unwrap(), "x\ny\nc\n");

    // Only indentation differs: said exactly, with the real lines; nothing written.
    let args = serde_json::json!({
        "path": "win.txt", "old_text": "  first\n  second", "new_text": "z",
    })
    .to_string();
    let o = stdout(&tool(&d, &h, "edit_file", &args));
    assert!(
        o.contains("matches lines 1-2 if whitespace is ignored")
            && o.contains("Nothing was written"),
        "{o}"
    );
    assert!(o.contains("     1\tfirst"), "{o}");
    assert!(!o.contains("100%"), "{o}");
    // A real miss still shows the closest text, and never as 100% similar.
    let args = serde_json::json!({
        "path": "win.txt", "old_text": "first\nsecond\nthirds", "new_text": "z",
    })
    .to_string();
    let o = stdout(&tool(&d, &h, "edit_file", &args));
    assert!(
        o.contains("old_text not found") && o.contains("most similar text"),
        "{o}"
    );
    assert!(!o.contains("100%"), "{o}");
    assert_eq!(
        std::fs::read_to_string(&p).unwrap(),
        "first\r\nsecond\r\nthird\r\nline three\r\n"
    );
}

/// A mixed-ending file with a BOM: an edit changes only its line, keeps the BOM and every other
/// byte; a `\r\n` chosen in new_text is written into an LF file; a lone `\r` miss is explained.
#[test]
fn edit_file_changes_only_its_lines_keeps_the_bom_and_chosen_crlf() {
    let d = Daemon::start();
    let h = home(&d);
    let p = d.ws.join("mixed.txt");
    let before = "\u{feff}one\r\ntwo\nthree\r\nfour\n";
    std::fs::write(&p, before).unwrap();
    give(&p);
    let args = serde_json::json!({
        "path": "mixed.txt",
        "old_text": "\u{feff}one\ntwo\nthree\nfour\n",
        "new_text": "\u{feff}one\ntwo\nTHREE\nfour\n",
    })
    .to_string();
    assert_eq!(
        stdout(&tool(&d, &h, "edit_file", &args)),
        "Successfully edited mixed.txt\n"
    );
    let after = std::fs::read(&p).unwrap();
    assert_eq!(after, "\u{feff}one\r\ntwo\nTHREE\r\nfour\n".as_bytes());

    let q = d.ws.join("lf.txt");
    std::fs::write(&q, "a\nb\nc\n").unwrap();
    give(&q);
    let args = serde_json::json!({
        "path": "lf.txt", "old_text": "b\n", "new_text": "b\r\n",
    })
    .to_string();
    assert_eq!(
        stdout(&tool(&d, &h, "edit_file", &args)),
        "Successfully edited lf.txt\n"
    );
    assert_eq!(std::fs::read(&q).unwrap(), b"a\nb\r\nc\n");

    let args = serde_json::json!({
        "path": "lf.txt", "old_text": "a\r", "new_text": "z",
    })
    .to_string();
    let o = stdout(&tool(&d, &h, "edit_file", &args));
    assert!(
        o.contains("matches line 1 if whitespace is ignored")
            && o.contains("lone \\r")
            && o.contains("Nothing was written"),
        "{o}"
    );
    assert!(!o.contains('%'), "{o}");
    assert_eq!(std::fs::read(&q).unwrap(), b"a\nb\r\nc\n");
}

#[test]
fn escapes_fail_with_outside_the_workspace() {
    let d = Daemon::start();
    let h = home(&d);
    let o = outside(&d);
    std::os::unix::fs::symlink(o.join("secret"), d.ws.join("final-link")).unwrap();
    std::os::unix::fs::symlink(&o, d.ws.join("dir-link")).unwrap();
    std::os::unix::fs::symlink("/proc/self/root/etc/hostname", d.ws.join("magic")).unwrap();
    std::fs::hard_link(o.join("secret"), d.ws.join("hard")).unwrap();
    let ws2 = d.root.join("ws2");
    std::fs::create_dir_all(&ws2).unwrap();
    std::fs::write(ws2.join("f"), "OTHER\n").unwrap();
    give(&ws2);
    // Positive control: the daemon's user can read every one of these targets directly.
    assert!(as_daemon_user_can_read(&o.join("secret")));
    assert!(as_daemon_user_can_read(&ws2.join("f")));
    let attempts = [
        "../outside/secret".to_string(),
        format!("{}", o.join("secret").display()),
        "final-link".into(),
        "dir-link/secret".into(),
        "magic".into(),
        "hard".into(),
        format!("{}/f", ws2.display()),
        "~/../outside/secret".into(),
    ];
    for a in &attempts {
        let out = tool(
            &d,
            &h,
            "read_file",
            &serde_json::json!({ "path": a }).to_string(),
        );
        assert_eq!(out.status.code(), Some(1), "{a}");
        let s = stdout(&out);
        assert!(s.contains("outside the workspace"), "{a}: {s}");
        assert!(!s.contains("TOPSECRET") && !s.contains("OTHER"), "{a}: {s}");
    }
    for a in [
        "../outside/new",
        "dir-link/new",
        "final-link",
        "dir-link/secret",
    ] {
        let out = tool(
            &d,
            &h,
            "write_file",
            &serde_json::json!({ "path": a, "content": "PWNED" }).to_string(),
        );
        assert!(
            stdout(&out).contains("outside the workspace"),
            "{a}: {}",
            stdout(&out)
        );
        let out = tool(
            &d,
            &h,
            "edit_file",
            &serde_json::json!({ "path": a, "old_text": "TOPSECRET", "new_text": "PWNED" })
                .to_string(),
        );
        assert!(
            stdout(&out).contains("outside the workspace"),
            "{a}: {}",
            stdout(&out)
        );
    }
    let out = tool(&d, &h, "list_dir", r#"{"path": "dir-link"}"#);
    assert!(
        stdout(&out).contains("outside the workspace"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read_to_string(o.join("secret")).unwrap(),
        "TOPSECRET\n"
    );
    assert!(!o.join("new").exists());
    let names: Vec<_> = std::fs::read_dir(&o)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn a_symlink_swapped_in_during_writes_never_reaches_outside() {
    let d = Daemon::start();
    let o = outside(&d);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ws = d.ws.clone();
    let (o2, stop2) = (o.clone(), stop.clone());
    let swapper = std::thread::spawn(move || {
        let (real, link, tmp) = (ws.join("d"), ws.join("d-link"), ws.join("d-tmp"));
        std::fs::create_dir_all(&real).unwrap();
        give(&real);
        let mut n = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = std::fs::remove_file(&link);
            let _ = std::os::unix::fs::symlink(&o2, &link);
            // Swap: d becomes a symlink to outside, then a directory again.
            let _ = std::fs::rename(&real, &tmp);
            let _ = std::fs::rename(&link, &real);
            // Stay in each state long enough for writes to land in both.
            std::thread::sleep(Duration::from_micros(300));
            let _ = std::fs::rename(&real, &link);
            let _ = std::fs::rename(&tmp, &real);
            std::thread::sleep(Duration::from_micros(300));
            n += 1;
        }
        n
    });
    let rt = grpc::rt();
    let (mut ok, mut outside_errs, mut other_errs) = (0, 0, 0);
    rt.block_on(async {
        let mut c = grpc::client(&d.socket).await;
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(4) {
            for path in ["d/f", "d/sub/f"] {
                let r = c
                    .write_file(nanobot_proto::pb::WriteFileRequest {
                        workspace: d.ws.to_string_lossy().into_owned(),
                        path: path.into(),
                        content: "RACE".into(),
                    })
                    .await;
                match r {
                    Ok(_) => ok += 1,
                    Err(s) if s.message().contains("outside the workspace") => outside_errs += 1,
                    Err(_) => other_errs += 1,
                }
            }
        }
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 100, "the race needs swaps: {swaps}");
    assert!(ok > 0, "no write ever succeeded");
    // The swapper must have disturbed some writes, or the race proved nothing.
    assert!(
        outside_errs + other_errs > 0,
        "the swap never hit a write: ok={ok}"
    );
    eprintln!("race: {swaps} swaps, {ok} writes ok, {outside_errs} outside, {other_errs} other");
    // Nothing outside was created or changed.
    let names: Vec<_> = std::fs::read_dir(&o)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("secret")]);
    assert_eq!(
        std::fs::read_to_string(o.join("secret")).unwrap(),
        "TOPSECRET\n"
    );
}

#[test]
fn concurrent_edits_keep_every_update() {
    let d = Daemon::start();
    let text: String = std::iter::once("header\n".to_string())
        .chain((0..30).map(|i| format!("a{i}\nb{i}\n")))
        .collect();
    std::fs::write(d.ws.join("shared.txt"), &text).unwrap();
    give(&d.ws.join("shared.txt"));
    let rt = grpc::rt();
    rt.block_on(async {
        let mut tasks = vec![];
        for who in ["a", "b"] {
            let socket = d.socket.clone();
            let ws = d.ws.to_string_lossy().into_owned();
            tasks.push(tokio::spawn(async move {
                let mut c = grpc::client(&socket).await;
                for i in 0..30 {
                    c.edit_file(nanobot_proto::pb::EditFileRequest {
                        workspace: ws.clone(),
                        path: "shared.txt".into(),
                        old_text: format!("\n{who}{i}\n"),
                        new_text: format!("\n{}{i}\n", who.to_uppercase()),
                    })
                    .await
                    .unwrap_or_else(|s| panic!("{who}{i}: {}", s.message()));
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let out = std::fs::read_to_string(d.ws.join("shared.txt")).unwrap();
    for i in 0..30 {
        assert!(out.contains(&format!("\nA{i}\n")), "lost A{i}");
    }
    for i in 0..30 {
        assert!(out.contains(&format!("\nB{i}\n")), "lost B{i}");
    }
}

#[test]
fn killing_the_daemon_mid_write_leaves_old_or_new_content() {
    let (old, new) = ("A".repeat(900_000), "B".repeat(900_000));
    for round in 0..6 {
        let mut d = Daemon::start();
        let target = d.ws.join("data.txt");
        std::fs::write(&target, &old).unwrap();
        give(&target);
        let socket = d.socket.clone();
        let ws = d.ws.to_string_lossy().into_owned();
        let new2 = new.clone();
        let writer = std::thread::spawn(move || {
            grpc::rt().block_on(async {
                let mut c = grpc::client(&socket).await;
                for _ in 0..50 {
                    if c.write_file(nanobot_proto::pb::WriteFileRequest {
                        workspace: ws.clone(),
                        path: "data.txt".into(),
                        content: new2.clone(),
                    })
                    .await
                    .is_err()
                    {
                        break;
                    }
                }
            })
        });
        std::thread::sleep(Duration::from_millis(5 + round * 7));
        // SAFETY: killing the daemon we started.
        unsafe { libc::kill(d.pid(), libc::SIGKILL) };
        let _ = d.child.take().map(|mut c| c.wait());
        let _ = writer.join();
        let got = std::fs::read_to_string(&target).unwrap();
        assert!(
            got == old || got == new,
            "round {round}: mixed content of {} bytes",
            got.len()
        );
    }
}

#[test]
fn the_guard_blocks_with_the_exact_words_and_spares_look_alikes() {
    let d = Daemon::start_with(Opts {
        config: Some("deny_patterns = [\"git push --force\"]\n".into()),
        ..Opts::default()
    });
    std::fs::create_dir_all(d.ws.join("build")).unwrap();
    give(&d.ws.join("build"));
    for c in [
        "rm -rf build",
        "rm -v -rf build",
        "rm --recursive build",
        "\\rm -rf build",
        "git push --force origin",
    ] {
        let o = d.nanobot(&[], c);
        assert_eq!(o.status.code(), Some(125), "{c}");
        assert!(
            stderr(&o).contains("blocked by safety guard"),
            "{c}: {}",
            stderr(&o)
        );
    }
    // The same commands as an argv (`nanobot exec -- PROG ARGS…`, gRPC `argv`) meet the same
    // patterns: the guard reads what will run, not only the `command` field.
    for argv in [
        &["rm", "-rf", "build"][..],
        &["/bin/rm", "-r", "-f", "build"],
        &["env", "rm", "--recursive", "build"],
        &["sh", "-c", "rm -rf build"],
        &["git", "push", "--force", "origin"],
    ] {
        let o = std::process::Command::new(bin("nanobot"))
            .args(["exec", "--socket"])
            .arg(&d.socket)
            .arg("--workspace")
            .arg(&d.ws)
            .arg("--")
            .args(argv)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(125), "{argv:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("blocked by safety guard"),
            "{argv:?}: {}",
            stderr(&o)
        );
    }
    assert!(d.ws.join("build").exists());
    // Positive control: an argv the guard lets through runs, with its words intact.
    let o = std::process::Command::new(bin("nanobot"))
        .args(["exec", "--socket"])
        .arg(&d.socket)
        .arg("--workspace")
        .arg(&d.ws)
        .args(["--", "echo", "rm -rf build"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "rm -rf build\n");
    // Look-alikes run.
    std::fs::write(d.ws.join("format.txt"), "fmt\n").unwrap();
    for c in ["cat format.txt", "grep -r fmt .", "echo --format"] {
        let o = d.nanobot(&[], c);
        assert_eq!(o.status.code(), Some(0), "{c}: {}", stderr(&o));
    }
    let log = d.log_text();
    assert!(log.contains("blocked by safety guard"), "{log}");
    assert!(log.contains("rm -r|-R|--recursive"), "{log}");
}

#[test]
fn the_agent_log_has_the_guides_words() {
    let d = Daemon::start();
    let h = home(&d);
    let o = outside(&d);
    tool(&d, &h, "exec", r#"{"command": "echo hi"}"#);
    tool(
        &d,
        &h,
        "write_file",
        r#"{"path": "w.txt", "content": "one"}"#,
    );
    tool(
        &d,
        &h,
        "edit_file",
        r#"{"path": "w.txt", "old_text": "one", "new_text": "two"}"#,
    );
    let out = tool(&d, &h, "exec", r#"{"command": "rm -rf /"}"#);
    // Blocked: never ran, 125 as `nanobot exec` exits for it.
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stdout(&out).starts_with("Error: Command blocked by safety guard"),
        "{}",
        stdout(&out)
    );
    let bad = serde_json::json!({ "path": o.join("secret").display().to_string() }).to_string();
    tool(&d, &h, "read_file", &bad);
    let ok = tool(
        &d,
        &h,
        "exec",
        r#"{"command": "echo out; echo err >&2; exit 3"}"#,
    );
    assert_eq!(stdout(&ok), "out\n\nSTDERR:\nerr\n\nExit code: 3\n");
    let logf = h.join(".nanobot/logs/nanobot.log");
    let log = std::fs::read_to_string(&logf).unwrap();
    for words in [
        "ExecTool: command=\"echo hi\" exit=0",
        "write_file path=w.txt",
        "edit_file path=w.txt",
        "blocked by safety guard",
        "Access denied",
    ] {
        assert!(log.contains(words), "missing {words:?} in\n{log}");
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&logf), 0o600);
    assert_eq!(mode(logf.parent().unwrap()), 0o700);
    // The daemon's audit trail has one event per request with the operation and outcome.
    let dl = d.log_text();
    assert!(
        dl.contains("op=\"write_file\"") || dl.contains("op=write_file"),
        "{dl}"
    );
    assert!(dl.contains("outside_workspace"), "{dl}");
}

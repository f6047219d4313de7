//! The shell examples of README.md and docs/*.md, and the bash scripts that run them as written.
//!
//! Every fenced block (``` or ~~~, any indentation) whose info string names a shell (sh, bash,
//! shell, console, …) is an example, and must be spelt `sh [PLACE]`. The word after `sh` says
//! where it runs (each place has a test that runs all of its blocks):
//! - `sh` — a user's shell on a machine with the built binaries on PATH: an unprivileged user with
//!   a fresh HOME as the working directory (tests/tests/docs.rs);
//! - `sh checkout` — root in a source checkout: the repository is the working directory, the built
//!   binaries on PATH (tests/tests/docs.rs);
//! - `sh host` — root on a systemd host with the .deb installed and users alice (in group nanobot)
//!   and bob (not in it) (tests/boot/run.sh runs them in the booted container);
//! - `sh bare` — root on a fresh Debian root without the package and without systemd running, in
//!   a checkout (`packaging/` and the release binaries) (tests/boot/run.sh);
//! - `sh container` — root on a host with Docker, in a source checkout (tests/docker/run.sh).
//!
//! Each command must exit 0, or with a code its comment gives as `[exit N]` or `[exit N or M]`
//! (`grep` finding nothing exits 1). A command
//! starting `sandboxd serve` runs in the background until the block ends, after its socket
//! appears. A command marked `[until Ctrl-C]` (`journalctl -f`, `tail -f`) must still be running
//! after 3 s; it then gets SIGINT, as from Ctrl-C. Lines starting with `#` are comments; a line ending in `\` continues on the next.
//! The README's test command (`./scripts/test.sh`) is the one line not run here: CI runs it.

use std::path::Path;

/// Where a block runs (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    User,
    Checkout,
    Host,
    Bare,
    Container,
}

/// Every place, in the order the docs introduce them.
pub const PLACES: [Place; 5] = [
    Place::User,
    Place::Checkout,
    Place::Host,
    Place::Bare,
    Place::Container,
];

impl Place {
    pub fn parse(info: &str) -> Option<Place> {
        let mut words = info.split_whitespace();
        if words.next() != Some("sh") {
            return None;
        }
        match words.next() {
            None => Some(Place::User),
            Some("checkout") => Some(Place::Checkout),
            Some("host") => Some(Place::Host),
            Some("bare") => Some(Place::Bare),
            Some("container") => Some(Place::Container),
            Some(_) => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Place::User => "user",
            Place::Checkout => "checkout",
            Place::Host => "host",
            Place::Bare => "bare",
            Place::Container => "container",
        }
    }
}

/// One command of a block: its text (continuation lines joined as written), where it is, and
/// the exit codes it may end with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub file: String,
    pub line: usize,
    pub text: String,
    pub exit: Vec<i32>,
}

/// A fenced `sh…` block: its place, or the info string that names none.
#[derive(Debug, Clone)]
pub struct Block {
    pub file: String,
    pub line: usize,
    pub info: String,
    pub place: Option<Place>,
    pub examples: Vec<Example>,
}

/// The README's test command: run by CI (.ci/run), not by the tests it starts.
pub const TEST_COMMAND: &str = "./scripts/test.sh";

/// Info strings that mean "shell commands": a block with one of these is an example, and one
/// whose info is not `sh [PLACE]` is reported (every_example_says_where_it_runs) rather than
/// silently skipped.
const SHELL_LANGS: [&str; 9] = [
    "sh",
    "bash",
    "shell",
    "console",
    "zsh",
    "fish",
    "sh-session",
    "shell-session",
    "terminal",
];

/// A fence opening or closing line: its character (` or ~), its length and its info string.
fn fence(line: &str) -> Option<(char, usize, &str)> {
    let t = line.trim_start();
    let c = t.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let n = t.chars().take_while(|x| *x == c).count();
    (n >= 3).then(|| (c, n, t[n..].trim()))
}

/// Whether a fence's info string names a shell.
fn is_shell(info: &str) -> bool {
    let lang = info
        .split(|c: char| c.is_whitespace() || c == ',' || c == '{')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    SHELL_LANGS.contains(&lang.as_str())
}

/// The `sh…` blocks of one markdown file (every fenced block whose info names a shell).
pub fn blocks(file: &str, text: &str) -> Vec<Block> {
    let mut out = vec![];
    let mut lines = text.lines().enumerate();
    while let Some((i, l)) = lines.next() {
        let Some((c, n, info)) = fence(l) else {
            continue;
        };
        let mut body = vec![];
        for (j, l) in lines.by_ref() {
            // Closed by the same character, at least as long, with no info string.
            if matches!(fence(l), Some((c2, n2, "")) if c2 == c && n2 >= n) {
                break;
            }
            body.push((j + 1, l));
        }
        if !is_shell(info) {
            continue;
        }
        out.push(Block {
            file: file.to_string(),
            line: i + 1,
            info: info.to_string(),
            place: Place::parse(info),
            examples: examples(file, &body),
        });
    }
    out
}

/// What could hide a command from the examples: a fence without an info string (say `text` for
/// output and diagrams) and an indented line outside fences that reads like a command a user
/// would type (a `$ ` prompt, or one of the binaries, sudo, cargo, a script). As `FILE:LINE: why`.
pub fn hidden_commands(file: &str, text: &str) -> Vec<String> {
    const COMMAND_STARTS: [&str; 7] =
        ["$ ", "# ", "nanobot ", "sandboxd ", "sudo ", "cargo ", "./"];
    let mut out = vec![];
    let mut lines = text.lines().enumerate();
    while let Some((i, l)) = lines.next() {
        if let Some((c, n, info)) = fence(l) {
            if info.is_empty() {
                out.push(format!("{file}:{}: a fence without a language", i + 1));
            }
            for (_, l) in lines.by_ref() {
                if matches!(fence(l), Some((c2, n2, "")) if c2 == c && n2 >= n) {
                    break;
                }
            }
            continue;
        }
        let indented = l.starts_with("    ") || l.starts_with('\t');
        let t = l.trim_start();
        if indented && COMMAND_STARTS.iter().any(|s| t.starts_with(s)) {
            out.push(format!(
                "{file}:{}: an indented command outside a ```sh block: {t}",
                i + 1
            ));
        }
    }
    out
}

/// Examples whose exit code says nothing, as `FILE:LINE: why`: a block with no command, a
/// command sent to the background (other than `sandboxd serve`, which the script waits for), and
/// one that masks its failure (`|| true`, `|| :`, `; true`).
pub fn unchecked(blocks: &[Block]) -> Vec<String> {
    let mut out = vec![];
    for b in blocks {
        if b.examples.is_empty() {
            out.push(format!(
                "{}:{}: a shell block without a command",
                b.file, b.line
            ));
        }
        for e in &b.examples {
            let code: Vec<&str> = e
                .text
                .lines()
                .map(|l| l.split(" #").next().unwrap_or(l).trim_end())
                .collect();
            let code = code.join("\n");
            let serve = e.text.trim_start().starts_with("sandboxd serve");
            if code.ends_with('&') && !code.ends_with("&&") && !serve {
                out.push(format!(
                    "{}:{}: runs in the background, its exit is not seen",
                    e.file, e.line
                ));
            }
            if ["|| true", "||true", "|| :", "; true"]
                .iter()
                .any(|m| code.contains(m))
            {
                out.push(format!("{}:{}: masks its exit code", e.file, e.line));
            }
        }
    }
    out
}

/// The text outside fenced blocks (the prose, with its `code spans`).
pub fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if let Some((c, n, _)) = fence(l) {
            for l in lines.by_ref() {
                if matches!(fence(l), Some((c2, n2, "")) if c2 == c && n2 >= n) {
                    break;
                }
            }
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// The markdown files whose examples run: README.md and docs/*.md under `root`, as (name, text).
pub fn files(root: &Path) -> Vec<(String, String)> {
    let mut files = vec![root.join("README.md")];
    if let Ok(rd) = std::fs::read_dir(root.join("docs")) {
        let mut md: Vec<_> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        md.sort();
        files.extend(md);
    }
    files
        .into_iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(&f).ok()?;
            let name = f
                .strip_prefix(root)
                .unwrap_or(&f)
                .to_string_lossy()
                .into_owned();
            Some((name, text))
        })
        .collect()
}

fn examples(file: &str, body: &[(usize, &str)]) -> Vec<Example> {
    let mut out = vec![];
    let mut pending: Option<(usize, String)> = None;
    for &(n, l) in body {
        if pending.is_none() && (l.trim().is_empty() || l.trim_start().starts_with('#')) {
            continue;
        }
        let (start, mut text) = pending.take().unwrap_or((n, String::new()));
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(l);
        if l.trim_end().ends_with('\\') {
            pending = Some((start, text));
            continue;
        }
        let exit = expected_exit(&text);
        out.push(Example {
            file: file.to_string(),
            line: start,
            text,
            exit,
        });
    }
    if let Some((start, text)) = pending {
        let exit = expected_exit(&text);
        out.push(Example {
            file: file.to_string(),
            line: start,
            text,
            exit,
        });
    }
    out
}

/// `[exit N]` or `[exit N or M …]` in a command's comment, else 0.
fn expected_exit(text: &str) -> Vec<i32> {
    let Some(i) = text.find("[exit ") else {
        return vec![0];
    };
    let codes: Vec<i32> = text[i + 6..]
        .split(']')
        .next()
        .unwrap_or("")
        .split(" or ")
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    if codes.is_empty() {
        vec![0]
    } else {
        codes
    }
}

/// Every `sh…` block of README.md and docs/*.md under `root`, in file order.
pub fn all(root: &Path) -> Vec<Block> {
    files(root)
        .iter()
        .flat_map(|(name, text)| blocks(name, text))
        .collect()
}

/// The socket a `sandboxd serve` command line listens on (`--socket PATH`), if it names one.
fn serve_socket(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .iter()
        .position(|w| *w == "--socket")
        .and_then(|i| words.get(i + 1))
        .map(|s| s.to_string())
}

/// A `sandboxd serve … &` line without its `&` (the script puts it in the background itself).
fn without_background(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    let Some(last) = lines.pop() else {
        return String::new();
    };
    let code = last.split(" #").next().unwrap_or(last).trim_end();
    let code = code.strip_suffix('&').unwrap_or(code);
    lines.push(code);
    lines.join("\n")
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A bash script that runs the examples of `place`'s blocks, each from `start` (the working
/// directory), and prints `ok FILE:LINE` or `FAIL FILE:LINE: …` per command and a last line
/// `examples: P passed, F failed`; it exits 1 when any failed. Background daemons are killed
/// at the end of their block.
pub fn script(blocks: &[Block], place: Place, start: &str) -> String {
    let mut s = String::from(
        "#!/bin/bash\n# Generated from the docs' examples (tests/src/docs.rs).\nset -u\npassed=0; failed=0\n\
         report() { # where, wanted codes (\"0 1\"), rc, log\n  if [[ \" $2 \" == *\" $3 \"* ]]; then passed=$((passed+1)); echo \"ok   $1\"; \
         else failed=$((failed+1)); echo \"FAIL $1: exit $3, want $2; output:\"; tail -n 30 \"$4\" | sed 's/^/     /'; fi\n}\n\
         log=$(mktemp)\n",
    );
    s.push_str(&format!("cd {} || exit 1\n", quote(start)));
    for b in blocks.iter().filter(|b| b.place == Some(place)) {
        s.push_str(&format!("# {}:{}\nbg=()\n", b.file, b.line));
        for e in &b.examples {
            let at = format!("{}:{}", e.file, e.line);
            s.push_str(&format!(
                "echo {} >&2\n",
                quote(&format!("== {at}: {}", e.text))
            ));
            if e.text.trim() == TEST_COMMAND {
                s.push_str(&format!(
                    "echo {}\n",
                    quote(&format!("skip {at}: CI runs it"))
                ));
                continue;
            }
            if e.text.trim_start().starts_with("export ") {
                s.push_str(&format!(
                    "{}\nreport {} 0 $? /dev/null\n",
                    e.text,
                    quote(&at)
                ));
                continue;
            }
            if e.text.contains("[until Ctrl-C]") {
                // Job control gives the command a process group of its own to interrupt.
                s.push_str(&format!(
                    "set -m\n( {}\n) </dev/null >\"$log\" 2>&1 &\npg=$!\nset +m\nsleep 3\n\
                     if kill -0 $pg 2>/dev/null; then kill -INT -- -$pg; wait $pg 2>/dev/null; report {at} 0 0 \"$log\"; \
                     else wait $pg; report {at} running $? \"$log\"; fi\n",
                    e.text,
                    at = quote(&at)
                ));
                continue;
            }
            if e.text.trim_start().starts_with("sandboxd serve") {
                let sock = serve_socket(&e.text).unwrap_or_default();
                s.push_str(&format!(
                    "( {} ) </dev/null >\"$log.serve\" 2>&1 &\nbg+=($!)\n\
                     for _ in $(seq 100); do [ -S {sock} ] && break; kill -0 $! 2>/dev/null || break; sleep 0.1; done\n\
                     if [ -S {sock} ]; then report {at} 0 0 \"$log.serve\"; else report {at} 0 1 \"$log.serve\"; fi\n",
                    without_background(&e.text),
                    sock = quote(&sock),
                    at = quote(&at)
                ));
                continue;
            }
            let want: Vec<String> = e.exit.iter().map(|c| c.to_string()).collect();
            s.push_str(&format!(
                "( {}\n) </dev/null >\"$log\" 2>&1\nreport {} {} $? \"$log\"\ncd {} || exit 1\n",
                e.text,
                quote(&at),
                quote(&want.join(" ")),
                quote(start)
            ));
        }
        s.push_str(
            "for p in \"${bg[@]}\"; do kill \"$p\" 2>/dev/null; wait \"$p\" 2>/dev/null; done\n",
        );
    }
    s.push_str(
        "rm -f \"$log\" \"$log.serve\"\necho \"examples: $passed passed, $failed failed\"\n[ \"$failed\" = 0 ]\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_commands_continuations_and_exit_codes() {
        let md = "text\n```sh\n# comment\nnanobot status   # what\n\nsandboxd serve --socket /s \\\n  --user u\nfalse  # no [exit 1]\n```\n```json\n{}\n```\n```sh host\nls\n```\n```sh nowhere\nls\n```\n";
        let b = blocks("x.md", md);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].place, Some(Place::User));
        assert_eq!(b[0].line, 2);
        let e = &b[0].examples;
        assert_eq!(e.len(), 3, "{e:?}");
        assert_eq!((e[0].line, e[0].exit.clone()), (4, vec![0]));
        assert_eq!(e[1].text, "sandboxd serve --socket /s \\\n  --user u");
        assert_eq!(serve_socket(&e[1].text).as_deref(), Some("/s"));
        assert_eq!((e[2].line, e[2].exit.clone()), (8, vec![1]));
        assert_eq!(expected_exit("grep x f # [exit 0 or 1]"), vec![0, 1]);
        assert_eq!(
            without_background("sandboxd serve --socket /s \\\n  --user u &   # 4. drops"),
            "sandboxd serve --socket /s \\\n  --user u "
        );
        assert_eq!(b[1].place, Some(Place::Host));
        assert_eq!(
            b[2].place, None,
            "an unknown place is reported, not guessed"
        );
    }

    #[test]
    fn no_shell_block_escapes_by_its_spelling() {
        // Each of these is a shell block a reader would copy; none names a place, so each must
        // be found and reported, not skipped.
        for open in [
            "```bash",
            "```shell",
            "```console",
            "```zsh",
            "```Shell",
            "~~~sh nowhere",
            "````bash",
        ] {
            let close = if open.starts_with('~') {
                "~~~"
            } else if open.starts_with("````") {
                "````"
            } else {
                "```"
            };
            let md = format!("- a list item:\n\n  {open}\n  nanobot status\n  {close}\n");
            let b = blocks("x.md", &md);
            assert_eq!(b.len(), 1, "{open}: {b:?}");
            assert_eq!(b[0].place, None, "{open}");
            assert_eq!(b[0].examples.len(), 1, "{open}");
        }
        // A sh block in a list item and one in a tilde fence run.
        let b = blocks(
            "x.md",
            "1. step\n   ```sh\n   true\n   ```\n~~~sh checkout\nls\n~~~\n",
        );
        assert_eq!(
            b.iter().map(|b| b.place).collect::<Vec<_>>(),
            [Some(Place::User), Some(Place::Checkout)]
        );
        // A longer fence is not closed by a shorter one inside it.
        let b = blocks("x.md", "````sh\n```\ntrue\n````\n");
        assert_eq!((b.len(), b[0].examples.len()), (1, 2), "{b:?}");
        // Unlabelled fences and indented commands are reported.
        let h = hidden_commands("x.md", "```\nnanobot status\n```\n\n    nanobot doctor\n\n    $ sandboxd check\n```text\n    nanobot x\n```\n");
        assert_eq!(h.len(), 3, "{h:?}");
        assert!(h[0].starts_with("x.md:1: a fence without"), "{h:?}");
        assert!(h[1].starts_with("x.md:5: an indented command"), "{h:?}");
    }

    #[test]
    fn examples_that_cannot_fail_are_reported() {
        let md = "```sh\n# only a comment\n```\n```sh\nnanobot gateway &\nsandboxd serve --socket /s &\nls || true\ntrue && true\nnanobot status # a & b\n```\n";
        let u = unchecked(&blocks("x.md", md));
        assert_eq!(
            u,
            [
                "x.md:1: a shell block without a command",
                "x.md:5: runs in the background, its exit is not seen",
                "x.md:7: masks its exit code"
            ],
            "{u:?}"
        );
    }

    #[test]
    fn the_script_checks_each_exit_code() {
        let md = "```sh\ntrue\nfalse # [exit 1]\nexit 3\nsleep 30 # [until Ctrl-C]\ntrue # [until Ctrl-C]\n```\n";
        let s = script(&blocks("x.md", md), Place::User, "/");
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(&s)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("ok   x.md:2") && text.contains("ok   x.md:3"),
            "{text}"
        );
        assert!(text.contains("FAIL x.md:4: exit 3, want 0"), "{text}");
        assert!(text.contains("ok   x.md:5"), "{text}");
        assert!(text.contains("FAIL x.md:6: exit 0, want running"), "{text}");
        assert!(text.contains("examples: 3 passed, 2 failed"), "{text}");
        assert!(!out.status.success());
    }
}

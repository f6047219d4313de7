//! The operator's first hour, from a source checkout: the documented `sandboxd` commands work
//! without /etc/nanobot, `check` names every problem at once and refuses what `serve` refuses,
//! `explain` answers in words and takes HOST:PORT, `--help`, the man pages and the completions
//! agree, and the packaging docs name the cargo-deb CI installs.

use nanobot_e2e::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sandboxd(args: &[&str]) -> Output {
    Command::new(bin("sandboxd")).args(args).output().unwrap()
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nanobot-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The shipped profiles alone (the rest of packaging/sandboxd.toml names users of a packaged
/// host), so a test does not depend on /etc/nanobot.
fn shipped_profiles(dir: &Path) -> PathBuf {
    let shipped = std::fs::read_to_string(repo().join("packaging/sandboxd.toml")).unwrap();
    let text: String = shipped
        .lines()
        .skip_while(|l| !l.starts_with("[profiles."))
        .map(|l| format!("{l}\n"))
        .collect();
    let p = dir.join("profiles.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// The lines of every ```sh block of a document.
/// The commands of every shell block of `doc`, whatever place it names: the one parser the
/// docs' examples use (tests/src/docs.rs), so a block spelt `sh checkout` is seen here too.
fn sh_lines(doc: &str) -> Vec<String> {
    nanobot_e2e::docs::blocks("doc", doc)
        .into_iter()
        .flat_map(|b| b.examples)
        .map(|e| e.text)
        .collect()
}

#[test]
fn documented_sandboxd_commands_work_without_a_config_file() {
    if Path::new("/etc/nanobot/sandboxd.toml").exists() {
        let why = "/etc/nanobot/sandboxd.toml exists: this test is about a host without it";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("SKIPPED: {why}");
        return;
    }
    let o = sandboxd(&["check"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("checking the built-in configuration"), "{out}");
    assert!(
        out.contains("4 profile(s): build, default, network, readonly"),
        "{out}"
    );
    // Every one-shot `sandboxd` line the operator docs show (serve is a daemon, the boot test
    // runs it): a shell runs it as written, with the built binaries first on PATH.
    let mut ran = 0;
    for doc in ["README.md", "docs/profiles.md", "docs/sandboxd.md"] {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        for line in sh_lines(&text) {
            let cmd = line.trim();
            if !cmd.starts_with("sandboxd ") || cmd.starts_with("sandboxd serve") {
                continue;
            }
            let path = format!(
                "{}:{}",
                bin_dir().display(),
                std::env::var("PATH").unwrap_or_default()
            );
            let o = Command::new("sh")
                .args(["-c", cmd])
                .env("PATH", path)
                .output()
                .unwrap();
            // Exit 1 is an answer ("denied", a ✗ of doctor); an error is not.
            assert!(
                matches!(o.status.code(), Some(0 | 1)) && !stderr(&o).contains("error"),
                "{doc}: `{cmd}` failed ({:?}):\n{}{}",
                o.status.code(),
                stdout(&o),
                stderr(&o)
            );
            ran += 1;
        }
    }
    assert!(ran >= 10, "only {ran} documented commands found");
}

#[test]
fn check_names_every_problem_at_once_and_refuses_what_serve_refuses() {
    let dir = temp_dir("check-all");
    let ws = dir.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let cfg = dir.join("sandboxd.toml");
    std::fs::write(
        &cfg,
        format!(
            "workspace_roots = [{ws:?}]\n\
             allow_groups = [\"nb-e2e-no-such-group\"]\n\
             sokcet = \"/x\"\n\
             [profiles.default]\n\
             network = \"ful\"\n\
             [profiles.web]\n\
             network = \"full\"\n\
             connect_ports = [443]\n",
            ws = ws.display().to_string()
        ),
    )
    .unwrap();
    let o = sandboxd(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    let c = cfg.display();
    for want in [
        format!("{c}:2: allow_groups: group \"nb-e2e-no-such-group\" does not exist"),
        format!("{c}:3: sokcet: unknown key `sokcet`; did you mean `socket`?"),
        format!("{c}:5: profiles.default.network: unknown variant `ful`"),
        format!("{c}:8: profiles.web.connect_ports: has no effect with network = \"full\""),
    ] {
        assert!(out.contains(&want), "missing {want:?} in\n{out}");
    }
    assert!(stderr(&o).contains("4 problem(s)"), "{}", stderr(&o));
    // serve loads through the same code: it refuses the file for the same reasons.
    let o = Command::new(bin("sandboxd"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .arg("--socket")
        .arg(dir.join("s.sock"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("allow_groups: group \"nb-e2e-no-such-group\" does not exist")
            && err.contains("sokcet"),
        "{err}"
    );
    assert!(!dir.join("s.sock").exists());
    // With the mistakes gone, both accept it (positive control).
    std::fs::write(
        &cfg,
        format!(
            "workspace_roots = [{ws:?}]\n[profiles.web]\nnetwork = \"ports\"\nconnect_ports = [443]\n",
            ws = ws.display().to_string()
        ),
    )
    .unwrap();
    let o = sandboxd(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn explain_answers_in_words_and_takes_host_port() {
    let dir = temp_dir("explain-words");
    let cfg = shipped_profiles(&dir);
    let cfg = cfg.to_str().unwrap();
    let o = sandboxd(&["explain", "default", "--config", cfg]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let seccomp: Vec<&str> = out
        .lines()
        .skip_while(|l| l.trim() != "seccomp:")
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .collect();
    assert!(seccomp.len() > 3, "{out}");
    for l in &seccomp[1..] {
        assert!(!l.contains("0x") && !l.contains("arg0"), "hex in {l:?}");
    }
    for want in [
        "clone: flags has CLONE_NEWNS",
        "CLONE_NEWUSER",
        "ioctl: request is TIOCSTI or TIOCLINUX → EPERM",
        "socket: family is not AF_UNIX → EAFNOSUPPORT",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    for (profile, to, code, says) in [
        ("network", "127.0.0.1:8080", 0, "allowed tcp 127.0.0.1:8080"),
        ("network", "443", 0, "allowed tcp/443"),
        ("build", "[::1]:8080", 1, "denied tcp [::1]:8080"),
        ("default", "localhost:80", 1, "denied tcp localhost:80"),
    ] {
        let o = sandboxd(&["explain", profile, "--config", cfg, "--connect", to]);
        assert_eq!(o.status.code(), Some(code), "{to}: {}", stderr(&o));
        assert!(stdout(&o).contains(says), "{to}: {}", stdout(&o));
    }
    let o = sandboxd(&["explain", "network", "--config", cfg, "--connect", "::1:80"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("[::1]:80"), "{}", stderr(&o));
    // Every option says what it does.
    let help = stdout(&sandboxd(&["explain", "--help"]));
    for flag in ["--write", "--exec", "--connect", "--path", "--unix"] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(flag))
            .unwrap_or_else(|| panic!("{flag} missing from\n{help}"));
        let text = line.trim_start().trim_start_matches(flag);
        let text = text.trim_start().trim_start_matches(|c: char| c != ' ');
        assert!(text.trim().len() > 10, "{flag} has no help: {line:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Subcommands listed by `--help` (without `help` itself).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|s| s != "help")
        .collect()
}

/// Long options listed by a `--help`.
fn long_options(help: &str) -> Vec<String> {
    help.lines()
        .flat_map(|l| l.split_whitespace())
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(',')
                .split(['=', '[', '<'])
                .next()
                .unwrap_or(w)
                .to_string()
        })
        .collect()
}

#[test]
fn help_man_pages_and_completions_agree() {
    let dir = temp_dir("man");
    for name in ["nanobot", "sandboxd"] {
        let run = |args: &[&str]| {
            let o = Command::new(bin(name)).args(args).output().unwrap();
            assert!(o.status.success(), "{name} {args:?}: {}", stderr(&o));
            stdout(&o)
        };
        let man_dir = dir.join(name);
        run(&["man", man_dir.to_str().unwrap()]);
        // roff writes a dash as `\-`.
        let page = |file: &str| {
            std::fs::read_to_string(man_dir.join(file))
                .unwrap_or_else(|e| panic!("{file}: {e}"))
                .replace("\\-", "-")
        };
        let top = run(&["--help"]);
        let subs = subcommands(&top);
        assert!(
            subs.len() >= 4 && subs.contains(&"completions".to_string()),
            "{top}"
        );
        let main_page = page(&format!("{name}.1"));
        for opt in long_options(&top) {
            assert!(main_page.contains(&opt), "{name}.1 lacks {opt}");
        }
        for sub in &subs {
            assert!(main_page.contains(sub.as_str()), "{name}.1 lacks {sub}");
            let help = run(&[sub, "--help"]);
            let p = page(&format!("{name}-{sub}.1"));
            for opt in long_options(&help) {
                assert!(p.contains(&opt), "{name}-{sub}.1 lacks {opt}");
            }
        }
        assert!(
            !man_dir.join(format!("{name}-man.1")).exists(),
            "the hidden man subcommand got a page"
        );
        for shell in ["bash", "zsh", "fish"] {
            let script = run(&["completions", shell]);
            for sub in &subs {
                assert!(
                    script.contains(sub.as_str()),
                    "{name} {shell} completion lacks {sub}"
                );
            }
        }
        // And they offer nothing --help hides (the internal `man` subcommand once was).
        let fish = run(&["completions", "fish"]);
        let needs = format!("__fish_{name}_needs_command\"");
        let offered: Vec<String> = fish
            .lines()
            .filter(|l| l.contains(&needs))
            .filter_map(|l| {
                l.split(" -a \"")
                    .nth(1)?
                    .split('"')
                    .next()
                    .map(String::from)
            })
            .collect();
        assert!(!offered.is_empty(), "{fish}");
        for o in &offered {
            assert!(
                subs.contains(o) || o == "help",
                "{name} completions offer {o}, which --help does not show"
            );
        }
        for shell in ["bash", "zsh"] {
            let script = run(&["completions", shell]);
            assert!(
                !script.contains("__subcmd__man") && !script.contains("'man:"),
                "{name} {shell} completion offers the hidden man subcommand"
            );
        }
        let o = Command::new(bin(name))
            .args(["completions", "tcsh"])
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(2),
            "an unknown shell is a usage error"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn packaging_docs_name_the_cargo_deb_ci_installs() {
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    let at = ci
        .find("cargo-deb@")
        .expect(".ci/run installs cargo-deb@VERSION");
    let version: String = ci[at..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let install = format!("cargo install --locked {version}");
    for doc in ["README.md", "docs/operations.md"] {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        let lines = sh_lines(&text);
        assert!(
            lines.iter().any(|l| l.trim_start().starts_with(&install)),
            "{doc} does not show `{install}` in a sh block"
        );
        assert!(
            lines.iter().any(|l| l.contains("./scripts/package.sh")),
            "{doc} does not build the .deb with scripts/package.sh"
        );
    }
}

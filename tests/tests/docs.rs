//! Every shell example in README.md and docs/*.md runs as written (tests/src/docs.rs says how a
//! block names where it runs). Blocks for a user and for a source checkout run here; `host` and
//! `container` blocks run in the boot and container tests, which use the same script generator.

use nanobot_e2e::docs::{self, Place};
use nanobot_e2e::{as_user, is_root, llm, pids_with, test_ids};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// The examples need the release binaries the README builds; build them if they are not there.
fn release_bin_dir(tmp: &Path) -> PathBuf {
    let st = Command::new("cargo")
        .args(["build", "--release", "--workspace", "--bins"])
        .current_dir(repo())
        .status()
        .expect("cargo");
    assert!(st.success(), "cargo build --release failed");
    // A directory of its own on PATH: only the two binaries, as an install would have.
    let bin = tmp.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for b in ["nanobot", "sandboxd"] {
        let _ = std::fs::remove_file(bin.join(b));
        std::os::unix::fs::symlink(repo().join("target/release").join(b), bin.join(b)).unwrap();
    }
    bin
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nanobot-docs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Run `place`'s examples with `env`, as `user` (uid, gid) or root; kill what they left running
/// under `home` (an auto-started daemon); fail with the script's report.
fn run(place: Place, start: &Path, home: &Path, env: &[(&str, String)], user: Option<(u32, u32)>) {
    let blocks = docs::all(&repo());
    let n: usize = blocks
        .iter()
        .filter(|b| b.place == Some(place))
        .map(|b| b.examples.len())
        .sum();
    assert!(n > 0, "no {} examples found", place.name());
    let script = home.join(format!("examples-{}.sh", place.name()));
    std::fs::write(
        &script,
        docs::script(&blocks, place, &start.to_string_lossy()),
    )
    .unwrap();
    let mut c = Command::new("bash");
    c.arg(&script).env_clear().env("HOME", home);
    for (k, v) in env {
        c.env(k, v);
    }
    if let Some((u, g)) = user {
        nanobot_e2e::chown(&script, u, g);
        as_user(&mut c, u, g);
    }
    let out = c.output().expect("bash");
    // A daemon the examples had nanobot start: as root its socket is the system one, so its
    // command line does not name `home`; stop it the documented way, as whoever started it.
    let mut stop = Command::new(nanobot_bin(env));
    stop.args(["sandbox", "stop"])
        .env_clear()
        .env("HOME", home)
        .current_dir(start);
    for (k, v) in env {
        stop.env(k, v);
    }
    if let Some((u, g)) = user {
        as_user(&mut stop, u, g);
    }
    let _ = stop.output();
    let state = std::fs::read_to_string("/run/nanobot/sandboxd.autostart.json").unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&state).unwrap_or_default();
    let leaked = v["log"]
        .as_str()
        .is_some_and(|l| l.starts_with(&*home.to_string_lossy()))
        && v["pid"]
            .as_u64()
            .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
    assert!(
        !leaked,
        "the examples left the sandboxd nanobot started running: {state}"
    );
    for pid in pids_with(&home.to_string_lossy()) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} examples failed:\n{report}\n-- stderr:\n{}",
        place.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{report}");
}

/// The nanobot the examples ran: the first on their PATH.
fn nanobot_bin(env: &[(&str, String)]) -> PathBuf {
    env.iter()
        .find(|(k, _)| *k == "PATH")
        .and_then(|(_, p)| {
            p.split(':')
                .map(|d| Path::new(d).join("nanobot"))
                .find(|b| b.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("nanobot"))
}

#[test]
fn every_example_says_where_it_runs() {
    let blocks = docs::all(&repo());
    let unplaced: Vec<String> = blocks
        .iter()
        .filter(|b| b.place.is_none())
        .map(|b| format!("{}:{} ```{}", b.file, b.line, b.info))
        .collect();
    assert!(
        unplaced.is_empty(),
        "shell blocks without a place (sh, sh checkout, sh host, sh bare, sh container): {unplaced:?}"
    );
    // The README opens with the main job and the test command; CI runs the latter.
    let readme = blocks
        .iter()
        .find(|b| b.file == "README.md")
        .expect("README block");
    let cmds: Vec<&str> = readme.examples.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    assert!(cmds[0].contains("nanobot exec"), "{cmds:?}");
    assert_eq!(cmds[1], docs::TEST_COMMAND);
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(ci.lines().any(|l| l.trim() == docs::TEST_COMMAND));
    // The boot and container tests run their blocks.
    for (place, runner) in [
        (Place::Host, "tests/boot/run.sh"),
        (Place::Bare, "tests/boot/run.sh"),
        (Place::Container, "tests/docker/run.sh"),
    ] {
        if blocks.iter().any(|b| b.place == Some(place)) {
            let r = std::fs::read_to_string(repo().join(runner)).unwrap();
            assert!(
                r.contains(&format!("doc-examples -- {} ", place.name())),
                "{runner} does not run the `sh {}` examples",
                place.name()
            );
            // A runner that skips in CI would leave these examples unrun without a failure.
            let skip = r.lines().find(|l| l.starts_with("skip()")).unwrap_or("");
            assert!(
                skip.contains("${CI:-}") && skip.contains("exit 1"),
                "{runner}'s skip() must fail in CI: {skip}"
            );
        }
    }
}

/// A user's examples: an unprivileged user, a fresh HOME, the release binaries on PATH and a
/// model endpoint on 127.0.0.1 in place of the real provider (nothing leaves this machine).
#[test]
fn a_users_examples_run_as_written() {
    if !is_root() {
        eprintln!("skipped: needs root to run the examples as an unprivileged user");
        return;
    }
    let tmp = scratch("user");
    let bin = release_bin_dir(&tmp);
    let home = tmp.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let (u, g) = test_ids();
    nanobot_e2e::chown(&tmp, u, g);
    nanobot_e2e::chown(&home, u, g);
    let server = llm::Server::start(
        (0..100)
            .map(|_| llm::openai_text("(an answer from the test's model)"))
            .collect(),
    );
    let env = [
        (
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
        ),
        ("NANOBOT_PROVIDERS__OPENROUTER__API_BASE", server.base()),
        ("LANG", "C.UTF-8".to_string()),
    ];
    run(Place::User, &home, &home, &env, Some((u, g)));
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A source checkout's examples, as root from the repository (as the README's main job is run in CI).
#[test]
fn a_checkouts_examples_run_as_written() {
    if !is_root() {
        eprintln!("skipped: the checkout examples run as root, as CI does");
        return;
    }
    let tmp = scratch("checkout");
    let bin = release_bin_dir(&tmp);
    let home = tmp.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
    );
    let mut env = vec![("PATH", path), ("LANG", "C.UTF-8".to_string())];
    for k in ["CARGO_HOME", "RUSTUP_HOME", "CI"] {
        if let Ok(v) = std::env::var(k) {
            env.push((k, v));
        }
    }
    // cargo and rustup live under the real HOME unless told otherwise.
    if let Ok(h) = std::env::var("HOME") {
        if std::env::var("CARGO_HOME").is_err() {
            env.push(("CARGO_HOME", format!("{h}/.cargo")));
        }
        if std::env::var("RUSTUP_HOME").is_err() {
            env.push(("RUSTUP_HOME", format!("{h}/.rustup")));
        }
    }
    run(Place::Checkout, &repo(), &home, &env, None);
    let _ = std::fs::remove_dir_all(&tmp);
}

/// No command hides from the examples: every fence names its language, a shell block in any
/// spelling is found (and must say where it runs), and no indented command sits outside a fence.
#[test]
fn no_command_hides_outside_an_example() {
    let hidden: Vec<String> = docs::files(&repo())
        .iter()
        .flat_map(|(name, text)| docs::hidden_commands(name, text))
        .collect();
    assert!(hidden.is_empty(), "{hidden:#?}");
    let unchecked = docs::unchecked(&docs::all(&repo()));
    assert!(unchecked.is_empty(), "{unchecked:#?}");
}

/// The commands the prose names in `code spans` (`nanobot sandbox stop`, `sandboxd explain
/// --connect`) exist: each subcommand word is one the binary lists, and each flag is one its
/// --help shows. Words in capitals are placeholders; `a|b` names both.
#[test]
fn commands_named_in_the_prose_exist() {
    let mut bad = vec![];
    let mut checked = 0;
    for (name, text) in docs::files(&repo()) {
        for span in docs::prose(&text).split('`').skip(1).step_by(2) {
            let span = span.trim().trim_start_matches("sudo ");
            let mut words = span.split_whitespace();
            let Some(b @ ("nanobot" | "sandboxd")) = words.next() else {
                continue;
            };
            let words: Vec<&str> = words.take_while(|w| *w != "--").collect();
            checked += 1;
            if let Err(e) = check_command(b, &words) {
                bad.push(format!("{name}: `{span}`: {e}"));
            }
        }
    }
    assert!(checked > 10, "only {checked} commands found in the prose");
    assert!(bad.is_empty(), "{bad:#?}");
}

fn help(b: &str, path: &[&str]) -> Result<String, String> {
    let out = Command::new(nanobot_e2e::bin(b))
        .args(path)
        .arg("--help")
        .env("NO_COLOR", "1")
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "`{b} {} --help` failed: {}",
            path.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The subcommands a --help text lists.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn check_command(b: &str, words: &[&str]) -> Result<(), String> {
    let mut path: Vec<&str> = vec![];
    let mut text = help(b, &path)?;
    for w in words {
        if w.starts_with('-') {
            let flag = w.split('=').next().unwrap_or(w);
            let listed =
                text.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']');
            if !listed
                .clone()
                .any(|x| x == flag || x.split('=').next() == Some(flag))
            {
                return Err(format!("`{b} {}` has no flag {flag}", path.join(" ")));
            }
            continue;
        }
        let subs = subcommands(&text);
        if subs.is_empty() || w.chars().any(|c| c.is_ascii_uppercase()) {
            continue; // an argument or a placeholder
        }
        let alts: Vec<&str> = w.split('|').collect();
        if alts.iter().all(|a| subs.iter().any(|s| s == a)) {
            for a in &alts[1..] {
                let mut p = path.clone();
                p.push(a);
                help(b, &p)?;
            }
            path.push(alts[0]);
            text = help(b, &path)?;
        } else if path.is_empty() || !text.contains("Arguments:") {
            return Err(format!(
                "`{b} {}` has no subcommand {w} (it has {subs:?})",
                path.join(" ")
            ));
        }
    }
    Ok(())
}

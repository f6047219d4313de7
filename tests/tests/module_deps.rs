//! Issue #12: no import cycle in either crate. Runs `scripts/module-deps.py --tests` (test code
//! included, so its edges are a superset of the plain run's) on `sandboxd/src` and `agent/src`;
//! starts no daemon, needs only python3.

use std::path::Path;
use std::process::Command;

fn assert_no_cycle(src: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let o = Command::new("python3")
        .arg(root.join("scripts/module-deps.py"))
        .arg(root.join(src))
        .arg("--tests")
        .output()
        .unwrap_or_else(|e| panic!("python3 scripts/module-deps.py: {e}"));
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && out.trim_end().ends_with("no cycle"),
        "module-deps.py {src} --tests: {}\n{out}{err}",
        o.status
    );
}

#[test]
fn sandboxd_modules_have_no_import_cycle() {
    assert_no_cycle("sandboxd/src");
}

#[test]
fn agent_modules_have_no_import_cycle() {
    assert_no_cycle("agent/src");
}

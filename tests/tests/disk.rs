//! The workspace's byte ceiling (`limits.workspace_bytes`, issue #14 §4), both mechanisms:
//! - the write budget (the workspace's filesystem, ext4 here, holds no ceiling): the sandbox's
//!   init kills a sandbox that writes more than `workspace_bytes`, with `limit_hit: disk`;
//! - a btrfs qgroup limit on the workspace's subvolume (a loop-mounted btrfs this test makes, as
//!   root): writes beyond it fail with EDQUOT, and explain/doctor name the qgroup.
//!
//! Each ceiling is preceded by the same writes succeeding under a higher one.

use nanobot_e2e::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Three 8 MiB files, one after another, with a pause after each (the init samples the budget
/// every 50 ms; the pause keeps the test from racing the last sample against the exit).
const WRITE_24M: &str = "for i in 1 2 3; do dd if=/dev/zero of=f$i bs=1M count=8 status=none || exit $?; sleep 0.3; done; echo wrote all";

fn file_bytes(dir: &Path) -> u64 {
    ["f1", "f2", "f3"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", stdout(o), stderr(o)))
}

#[test]
fn the_write_budget_kills_a_sandbox_that_writes_more_than_workspace_bytes() {
    let config = "[profiles.default.limits]\nworkspace_bytes = 16777216\n\
                  [profiles.roomy.limits]\nworkspace_bytes = 1073741824\n";
    let d = Daemon::start_with(Opts {
        config: Some(config.into()),
        ..Opts::default()
    });
    // Positive control: the same writes under a 1 GiB ceiling.
    let o = d.nanobot(&["--json", "--profile", "roomy"], WRITE_24M);
    let v = json(&o);
    assert_eq!(v["exit_code"], 0, "{v} {}", d.log_text());
    assert_eq!(v["stdout"], "wrote all\n", "{v}");
    assert_eq!(v["limit_hit"], "", "{v}");
    assert_eq!(file_bytes(&d.ws), 24 << 20);
    for f in ["f1", "f2", "f3"] {
        std::fs::remove_file(d.ws.join(f)).unwrap();
    }

    // 16 MiB: killed during the third file or the pause after it.
    let o = d.nanobot(&["--json"], WRITE_24M);
    let v = json(&o);
    assert_eq!(v["limit_hit"], "disk", "{v}");
    assert_eq!(v["signal"], 9, "{v}");
    assert_ne!(v["stdout"], "wrote all\n", "{v}");
    // At most the ceiling and one sample's worth of writes (one file here).
    let held = file_bytes(&d.ws);
    assert!(held <= (16 << 20) + (8 << 20), "{held}");
    assert!(d.log_text().contains("more than its write budget"));
    for f in ["f1", "f2", "f3"] {
        let _ = std::fs::remove_file(d.ws.join(f));
    }
    // Without --json: the exit code of a kill, and the limit said in words.
    let o = d.nanobot(&[], WRITE_24M);
    assert_eq!(o.status.code(), Some(128 + 9), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("limit hit: disk: the sandbox wrote more than its profile's workspace_bytes"),
        "{}",
        stderr(&o)
    );
    // Small writes stay well inside it.
    let o = d.nanobot(&["--json"], "echo hi > small && cat small");
    assert_eq!(json(&o)["stdout"], "hi\n");

    // explain and doctor say the mechanism.
    let cfg = d.dir.join("sandboxd.toml");
    let o = Command::new(bin("sandboxd"))
        .args(["explain", "default", "--config"])
        .arg(&cfg)
        .arg("--workspace")
        .arg(&d.ws)
        .output()
        .unwrap();
    let s = stdout(&o);
    assert!(
        s.contains("workspace ceiling: workspace_bytes 16 MiB")
            && s.contains("write budget per sandbox: 16.0 MiB, accounted by the sandbox's init")
            && s.contains("ext4 offers no ceiling"),
        "{s}"
    );
    let o = Command::new(bin("sandboxd"))
        .args(["doctor", "--config"])
        .arg(&cfg)
        .arg("--workspace")
        .arg(&d.ws)
        .output()
        .unwrap();
    let s = stdout(&o);
    assert!(
        s.contains("workspace ceiling: ") && s.contains("write budget per sandbox: 16.0 MiB"),
        "{s}"
    );
}

/// A loop-mounted btrfs for one test, unmounted (and its loop device released) even when the
/// test fails.
struct Btrfs {
    dir: PathBuf,
    mnt: PathBuf,
}

impl Btrfs {
    fn make() -> Btrfs {
        let dir = PathBuf::from(format!("/var/tmp/nanobot-btrfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mnt = dir.join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let img = dir.join("img");
        let b = Btrfs { dir, mnt };
        run("truncate", &["-s", "300M", img.to_str().unwrap()]);
        run("mkfs.btrfs", &["-q", "-f", img.to_str().unwrap()]);
        run(
            "mount",
            &["-o", "loop", img.to_str().unwrap(), b.mnt.to_str().unwrap()],
        );
        std::fs::set_permissions(&b.mnt, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        b
    }

    /// A subvolume owned by the sandbox's user.
    fn subvolume(&self, name: &str) -> PathBuf {
        let p = self.mnt.join(name);
        run("btrfs", &["-q", "subvolume", "create", p.to_str().unwrap()]);
        let (uid, gid) = test_ids();
        chown(&p, uid, gid);
        p
    }
}

impl Drop for Btrfs {
    fn drop(&mut self) {
        // Lazy: the daemon may still hold the workspace root open; the loop device is released
        // (autoclear) once the last reference is gone.
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(prog: &str, args: &[&str]) {
    let o = Command::new(prog).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{prog} {args:?}: {}{}",
        stdout(&o),
        stderr(&o)
    );
}

fn have(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_btrfs_qgroup_limit_is_the_workspace_ceiling() {
    if !is_root() || !have("mkfs.btrfs") || !have("btrfs") {
        eprintln!("skipped: needs root and btrfs-progs (.ci/run installs them)");
        return;
    }
    let fs = Btrfs::make();
    let ws = fs.subvolume("ws");
    let free = fs.subvolume("free");
    let m = fs.mnt.to_str().unwrap();
    run("btrfs", &["quota", "enable", m]);
    run("btrfs", &["qgroup", "limit", "16M", ws.to_str().unwrap()]);
    let mut extra = vec!["--workspace-root".to_string(), m.to_string()];
    for user in ["root", "nanobot-e2e"] {
        extra.push("--grant".into());
        extra.push(format!("{user}:{}", free.display()));
    }
    let d = Daemon::start_with(Opts {
        extra_args: extra,
        ..Opts::default()
    });
    let exec = |w: &Path| {
        let o = Command::new(bin("nanobot"))
            .args(["exec", "--json", "--socket"])
            .arg(&d.socket)
            .arg("--workspace")
            .arg(w)
            .args(["--", WRITE_24M])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        json(&o)
    };
    // Positive control: a subvolume of the same filesystem without a limit.
    let v = exec(&free);
    assert_eq!(v["exit_code"], 0, "{v}");
    assert_eq!(v["stdout"], "wrote all\n", "{v}");
    assert_eq!(file_bytes(&free), 24 << 20);

    // The limited subvolume: the filesystem refuses the write past 16 MiB.
    let v = exec(&ws);
    assert_ne!(v["exit_code"], 0, "{v}");
    assert!(
        v["stderr"]
            .as_str()
            .is_some_and(|s| s.contains("Disk quota exceeded")),
        "{v}"
    );
    assert_eq!(
        v["limit_hit"], "",
        "the filesystem, not the init, held it: {v}"
    );
    let held = file_bytes(&ws);
    assert!(held <= 16 << 20, "{held}");
    assert!(held >= 8 << 20, "{held}");

    // explain and doctor name the qgroup for ws, the write budget for free.
    let explain = |w: &Path| {
        let o = Command::new(bin("sandboxd"))
            .args(["explain", "default", "--workspace"])
            .arg(w)
            .output()
            .unwrap();
        stdout(&o)
    };
    let s = explain(&ws);
    assert!(
        s.contains("btrfs qgroup 0/") && s.contains("limit 16.0 MiB (the filesystem refuses"),
        "{s}"
    );
    let s = explain(&free);
    assert!(
        s.contains("write budget per sandbox: 1.0 GiB") && s.contains("has no limit"),
        "{s}"
    );
    let o = Command::new(bin("sandboxd"))
        .args(["doctor", "--workspace"])
        .arg(&ws)
        .output()
        .unwrap();
    let s = stdout(&o);
    assert!(
        s.contains(&format!(
            "workspace ceiling: {}: btrfs qgroup 0/",
            ws.display()
        )),
        "{s}"
    );
    drop(d);
}

/// A process that makes itself non-dumpable (as ssh, ssh-agent and gpg-agent do) would hide its
/// I/O counters from the init: `prctl(PR_SET_DUMPABLE, 0)` succeeds without effect in the
/// sandbox, so such a process runs and its writes still count against the budget.
#[test]
fn a_process_that_asks_to_be_non_dumpable_runs_and_still_counts() {
    let d = Daemon::start_with(Opts {
        config: Some("[profiles.default.limits]\nworkspace_bytes = 16777216\n".into()),
        ..Opts::default()
    });
    // prctl(PR_SET_DUMPABLE=4, 0) then PR_GET_DUMPABLE=3, then write `n` MiB in 1 MiB chunks.
    let py = |mib: u32, pause: f32| {
        format!(
            "/usr/bin/python3 -c \"import ctypes,time\nlibc=ctypes.CDLL(None)\n\
             print(libc.prctl(4,0,0,0,0), libc.prctl(3,0,0,0,0), flush=True)\n\
             f=open('nd','wb')\nfor i in range({mib}):\n    f.write(b'x'*1048576); f.flush(); time.sleep({pause})\n\
             print('wrote', flush=True)\""
        )
    };
    // Long enough (0.6 s) for the init to sample it many times.
    let o = d.nanobot(&["--json"], &py(2, 0.3));
    let v = json(&o);
    assert_eq!(v["stdout"], "0 1\nwrote\n", "{v} {}", d.log_text());
    assert_eq!(v["limit_hit"], "", "{v}");
    let o = d.nanobot(&["--json"], &py(48, 0.02));
    let v = json(&o);
    assert_eq!(v["limit_hit"], "disk", "{v}");
    assert_ne!(v["stdout"], "0 1\nwrote\n", "{v}");
    let held = std::fs::metadata(d.ws.join("nd")).map_or(0, |m| m.len());
    assert!(held <= 24 << 20, "{held}");
}

/// write_file over gRPC: the response's bytes_written, or the status.
fn write_file(d: &Daemon, path: &str, content: &str) -> Result<u64, tonic::Status> {
    grpc::rt().block_on(async {
        let mut c = grpc::client(&d.socket).await;
        c.write_file(nanobot_proto::pb::WriteFileRequest {
            workspace: d.ws.to_string_lossy().into_owned(),
            path: path.into(),
            content: content.into(),
        })
        .await
        .map(|r| r.into_inner().bytes_written)
    })
}

fn ceiling_daemon(workspace_bytes: u64) -> Daemon {
    let config = format!(
        "write_max_bytes = 10485760\nmax_request_bytes = 16777216\n\
         [profiles.default.limits]\nworkspace_bytes = {workspace_bytes}\n"
    );
    Daemon::start_with(Opts {
        config: Some(config),
        ..Opts::default()
    })
}

const MIB: usize = 1 << 20;

#[test]
fn file_calls_cannot_fill_the_workspace_past_workspace_bytes() {
    let six = "x".repeat(6 * MIB);
    // Positive control: a higher ceiling takes all three.
    let d = ceiling_daemon(64 << 20);
    for f in ["f1", "f2", "f3"] {
        assert_eq!(
            write_file(&d, f, &six).map_err(|s| s.to_string()),
            Ok(6 << 20)
        );
    }
    drop(d);

    let d = ceiling_daemon(16 << 20);
    assert_eq!(
        write_file(&d, "f1", &six).map_err(|s| s.to_string()),
        Ok(6 << 20)
    );
    assert_eq!(
        write_file(&d, "f2", &six).map_err(|s| s.to_string()),
        Ok(6 << 20)
    );
    let e = write_file(&d, "f3", &six).unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message().contains(&format!(
            "the workspace holds {} bytes of its {}-byte ceiling (workspace_bytes); this write of {} bytes would exceed it",
            12 << 20,
            16 << 20,
            6 << 20
        )),
        "{}",
        e.message()
    );
    assert!(!d.ws.join("f3").exists(), "the refused write left a file");
    // Nothing else was left either (no temp file).
    let names: Vec<_> = std::fs::read_dir(&d.ws)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // Overwriting counts only the difference: f2 (6 MiB) may become 8 MiB (14 MiB in all)...
    let eight = "y".repeat(8 * MIB);
    assert_eq!(
        write_file(&d, "f2", &eight).map_err(|s| s.to_string()),
        Ok(8 << 20)
    );
    // ...and f1 may be rewritten at its size, or grown to the ceiling exactly, not past it.
    assert_eq!(
        write_file(&d, "f1", &six).map_err(|s| s.to_string()),
        Ok(6 << 20)
    );
    let e = write_file(&d, "f1", &"z".repeat(9 * MIB)).unwrap_err();
    assert!(e.message().contains("would exceed it"), "{e:?}");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert_eq!(std::fs::metadata(d.ws.join("f1")).unwrap().len(), 6 << 20);
    // Shrinking always works.
    assert_eq!(
        write_file(&d, "f2", "small").map_err(|s| s.to_string()),
        Ok(5)
    );
    assert_eq!(
        write_file(&d, "f3", &six).map_err(|s| s.to_string()),
        Ok(6 << 20)
    );
    // edit_file is held to the same ceiling (12 MiB + 5 bytes held now).
    assert_eq!(
        write_file(&d, "e", "marker").map_err(|s| s.to_string()),
        Ok(6)
    );
    let e = edit_file(&d, "e", "marker", &"w".repeat(5 * MIB)).unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("would exceed it"), "{e:?}");
    assert_eq!(std::fs::read_to_string(d.ws.join("e")).unwrap(), "marker");
    assert_eq!(
        edit_file(&d, "e", "marker", &"w".repeat(3 * MIB)).map_err(|s| s.to_string()),
        Ok(3 << 20)
    );
}

fn edit_file(d: &Daemon, path: &str, old: &str, new: &str) -> Result<u64, tonic::Status> {
    grpc::rt().block_on(async {
        let mut c = grpc::client(&d.socket).await;
        c.edit_file(nanobot_proto::pb::EditFileRequest {
            workspace: d.ws.to_string_lossy().into_owned(),
            path: path.into(),
            old_text: old.into(),
            new_text: new.into(),
        })
        .await
        .map(|r| r.into_inner().bytes_written)
    })
}

/// fallocate takes disk blocks without writing a page, out of the write budget's sight: in the
/// sandbox it is "not supported", and glibc's posix_fallocate then writes the blocks, which the
/// budget counts.
#[test]
fn fallocate_cannot_take_space_past_the_write_budget() {
    let d = Daemon::start_with(Opts {
        config: Some("[profiles.default.limits]\nworkspace_bytes = 16777216\n".into()),
        ..Opts::default()
    });
    // Positive control: outside the sandbox, on the same filesystem, fallocate works.
    let outside = d.ws.join("outside-control");
    let o = Command::new("fallocate")
        .args(["-l", "32M"])
        .arg(&outside)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_file(&outside).unwrap();
    let o = d.nanobot(&["--json"], "fallocate -l 1G big; echo rc=$?");
    let v = json(&o);
    assert_eq!(v["stdout"], "rc=1\n", "{v}");
    assert!(
        v["stderr"]
            .as_str()
            .is_some_and(|e| e.contains("Operation not supported")),
        "{v}"
    );
    assert!(std::fs::metadata(d.ws.join("big")).map_or(0, |m| m.len()) == 0);
    // posix_fallocate falls back to writing the blocks: counted, and stopped at the budget.
    let o = d.nanobot(
        &["--json"],
        "/usr/bin/python3 -c \"import os\nfd=os.open('pf', os.O_WRONLY|os.O_CREAT)\n\
         os.posix_fallocate(fd, 0, 256 << 20)\nprint('allocated')\"",
    );
    let v = json(&o);
    assert_eq!(v["limit_hit"], "disk", "{v}");
    assert_ne!(v["stdout"], "allocated\n", "{v}");
}

//! Faults a client must get a clear answer to (#14 section 3): every error has the code the proto
//! promises and a bounded message (a status message is an HTTP/2 header), a full disk leaves the
//! files and the tree as they were, and a daemon killed mid-exec is said so in one sentence.

use nanobot_e2e::*;
use nanobot_proto::pb::{ExecRequest, ReadFileRequest, WriteFileRequest};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tonic::Code;

/// Bytes of an error message that still count as "bounded" (the daemon keeps 200 characters of
/// an echoed field, and the reason).
const BOUNDED: usize = 1000;

fn tool(d: &Daemon, name: &str, json: &str) -> Output {
    let h = d.dir.join("home");
    std::fs::create_dir_all(&h).unwrap();
    Command::new(bin("nanobot"))
        .args(["tool", name, json, "--socket"])
        .arg(&d.socket)
        .arg("--workspace")
        .arg(&d.ws)
        .env("HOME", &h)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ws(d: &Daemon) -> String {
    d.ws.to_string_lossy().into_owned()
}

fn read_req(d: &Daemon, path: &str) -> ReadFileRequest {
    ReadFileRequest {
        workspace: ws(d),
        path: path.into(),
        ..Default::default()
    }
}

fn write_req(d: &Daemon, path: &str, content: &str) -> WriteFileRequest {
    WriteFileRequest {
        workspace: ws(d),
        path: path.into(),
        content: content.into(),
    }
}

fn bounded(st: &tonic::Status, code: Code, says: &str) {
    assert_eq!(st.code(), code, "{st:?}");
    assert!(st.message().len() < BOUNDED, "{} bytes", st.message().len());
    assert!(st.message().contains(says), "{}", st.message());
}

#[test]
fn long_request_text_comes_back_shortened_with_the_reason() {
    let d = Daemon::start();
    let long_abs = format!("/{}", "a".repeat(14_999));
    // Through the agent's tool: the model reads the reason, and the size instead of the path.
    let o = tool(
        &d,
        "read_file",
        &serde_json::json!({ "path": long_abs }).to_string(),
    );
    let out = stdout(&o) + &stderr(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("outside the workspace"), "{out}");
    assert!(out.contains("(15,000 bytes)"), "{out}");
    assert!(out.len() < BOUNDED, "{} bytes: {out}", out.len());

    let rt = grpc::rt();
    rt.block_on(async {
        let mut c = grpc::client(&d.socket).await;
        // An absolute path outside the workspace.
        let st = c.read_file(read_req(&d, &long_abs)).await.unwrap_err();
        bounded(&st, Code::PermissionDenied, "outside the workspace");
        assert!(
            st.message().contains("… (15,000 bytes)"),
            "{}",
            st.message()
        );
        // A relative one that climbs out.
        let climb = "../".repeat(5_000);
        let st = c.read_file(read_req(&d, &climb)).await.unwrap_err();
        bounded(&st, Code::PermissionDenied, "outside the workspace");
        // Inside, but longer than PATH_MAX: ENAMETOOLONG is the request's fault.
        let deep = "a/".repeat(7_500);
        let st = c.read_file(read_req(&d, &deep)).await.unwrap_err();
        bounded(&st, Code::InvalidArgument, "too long");
        // One name of 5,000 bytes, for write_file too.
        let name = "n".repeat(5_000);
        let st = c.write_file(write_req(&d, &name, "x")).await.unwrap_err();
        bounded(&st, Code::InvalidArgument, "too long");
        let st = c
            .write_file(write_req(&d, &format!("sub/{name}"), "x"))
            .await
            .unwrap_err();
        bounded(&st, Code::InvalidArgument, "too long");
        assert!(!d.ws.join("sub").exists(), "a failed write left its parent");
        // A 15 kB workspace, for the file calls and for exec.
        let mut r = read_req(&d, "f");
        r.workspace = format!("{}/{}", d.ws.display(), "w".repeat(15_000));
        let st = c.read_file(r.clone()).await.unwrap_err();
        bounded(&st, Code::InvalidArgument, "bytes)");
        let mut e = grpc::req(&d.ws, "true");
        e.workspace = r.workspace.clone();
        let st = grpc::exec(&mut c, e).await.unwrap_err();
        bounded(&st, Code::InvalidArgument, "bytes)");
        let mut e = grpc::req(&d.ws, "true");
        e.workspace = long_abs.clone();
        let st = grpc::exec(&mut c, e).await.unwrap_err();
        bounded(
            &st,
            Code::InvalidArgument,
            "not beneath a configured workspace root",
        );
        // A cwd: refused for its size past PATH_MAX, and echoed bounded below it.
        for (cwd, says) in [
            ("c".repeat(15_000), "more than 4096"),
            (format!("../{}", "c".repeat(4_000)), "escapes the workspace"),
            ("d/".repeat(2_000), "does not exist"),
        ] {
            let e = ExecRequest {
                cwd,
                ..grpc::req(&d.ws, "true")
            };
            let st = grpc::exec(&mut c, e).await.unwrap_err();
            bounded(&st, Code::InvalidArgument, says);
        }
        // The connection is still fine afterwards.
        let run = grpc::exec(&mut c, grpc::req(&d.ws, "echo ok"))
            .await
            .unwrap();
        assert_eq!(run.stdout, b"ok\n");
    });
}

/// A small tmpfs mounted on a directory of the workspace, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        let (uid, gid) = test_ids();
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},uid={uid},gid={gid},mode=0755"))
            .arg("tmpfs")
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", at.display());
        Tmpfs(at.to_path_buf())
    }

    /// Fill it up to the last block, as the sandbox's user.
    fn fill(&self) {
        let (uid, gid) = test_ids();
        let mut c = Command::new("dd");
        c.arg("if=/dev/zero")
            .arg(format!("of={}", self.0.join("filler").display()))
            .arg("bs=1024")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_user(&mut c, uid, gid);
        // dd fails with ENOSPC: that is the point.
        let _ = c.status().unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_full_disk_is_resource_exhausted_and_leaves_everything_as_it_was() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let d = Daemon::start();
    let fs = Tmpfs::mount(&d.ws.join("full"), "64k");
    let (uid, gid) = test_ids();
    std::fs::write(fs.0.join("keep.txt"), "old\n").unwrap();
    chown(&fs.0.join("keep.txt"), uid, gid);
    std::fs::create_dir(fs.0.join("pre")).unwrap();
    chown(&fs.0.join("pre"), uid, gid);
    fs.fill();
    let before = names(&fs.0);
    let big = "x".repeat(32 * 1024);

    let rt = grpc::rt();
    rt.block_on(async {
        let mut c = grpc::client(&d.socket).await;
        // Replacing a file: ENOSPC, the old content intact, no temp file left.
        let st = c
            .write_file(write_req(&d, "full/keep.txt", &big))
            .await
            .unwrap_err();
        bounded(
            &st,
            Code::ResourceExhausted,
            "no space left on the filesystem",
        );
        assert!(
            st.message().contains("the file is as it was"),
            "{}",
            st.message()
        );
        assert_eq!(
            std::fs::read_to_string(fs.0.join("keep.txt")).unwrap(),
            "old\n"
        );
        // A new file three directories down, under one that was there before: the chain it
        // made is removed again, `pre` stays.
        let st = c
            .write_file(write_req(&d, "full/pre/a/b/c/file.txt", &big))
            .await
            .unwrap_err();
        bounded(&st, Code::ResourceExhausted, "no space left");
        assert!(fs.0.join("pre").is_dir());
        assert_eq!(names(&fs.0.join("pre")), Vec::<String>::new());
        let st = c
            .write_file(write_req(&d, "full/a/b/c/file.txt", &big))
            .await
            .unwrap_err();
        bounded(&st, Code::ResourceExhausted, "no space left");
        assert_eq!(names(&fs.0), before, "temp files or directories were left");
    });
    // The agent's tool says the same to the model.
    let o = tool(
        &d,
        "write_file",
        &serde_json::json!({ "path": "full/n/new.txt", "content": big }).to_string(),
    );
    let out = stdout(&o) + &stderr(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("no space left on the filesystem"), "{out}");
    assert_eq!(names(&fs.0), before);
}

#[test]
fn killing_the_daemon_mid_exec_says_so_and_kills_the_command() {
    let mut d = Daemon::start();
    let marker = "29.71";
    let mut child = d
        .nanobot_cmd(&[], &format!("sleep {marker}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Started: the sleep runs.
    let t0 = Instant::now();
    let sleep_pids = loop {
        let p: Vec<i32> = pids_with(marker)
            .into_iter()
            .filter(|&p| {
                std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\0"))
            })
            .collect();
        if !p.is_empty() {
            break p;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "sleep never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // SAFETY: signalling our own child, the daemon.
    unsafe { libc::kill(d.pid(), libc::SIGKILL) };
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "nanobot exec did not return after sandboxd died"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(status.code(), Some(125), "{err}");
    assert!(
        err.contains("sandboxd went away while the command ran; it was killed"),
        "{err}"
    );
    assert!(!err.contains("h2 protocol error"), "{err}");
    let t0 = Instant::now();
    while sleep_pids
        .iter()
        .any(|p| Path::new(&format!("/proc/{p}")).exists())
    {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the sleep outlived sandboxd: {sleep_pids:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = d.stop();
}

//! Tenants against the real daemon: two unprivileged users on one workspace root. Each attempt
//! first shows the owner's own access works (positive control), then that the other tenant is
//! refused with PermissionDenied, that nothing ran and nothing was written, and that the daemon
//! logged `Access denied` with the peer's uid and the workspace.

use nanobot_e2e::*;
use nanobot_proto::pb::{EditFileRequest, ListDirRequest, ReadFileRequest, WriteFileRequest};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const T1: &str = "nanobot-t1";
const T2: &str = "nanobot-t2";
/// A group T1 is a (supplementary) member of, T2 is not.
const GROUP: &str = "nanobot-tg";

/// uids of T1 and T2, created once (as root).
fn tenants() -> (u32, u32) {
    static IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *IDS.get_or_init(|| {
        let run = |prog: &str, args: &[&str]| {
            let _ = Command::new(prog).args(args).stderr(Stdio::null()).status();
        };
        run("groupadd", &["--system", GROUP]);
        for u in [T1, T2] {
            if lookup(u).is_none() {
                run(
                    "useradd",
                    &[
                        "--system",
                        "--no-create-home",
                        "--shell",
                        "/usr/sbin/nologin",
                        u,
                    ],
                );
            }
        }
        run("usermod", &["-a", "-G", GROUP, T1]);
        let t1 = lookup(T1).expect("could not create nanobot-t1").0;
        let t2 = lookup(T2).expect("could not create nanobot-t2").0;
        (t1, t2)
    })
}

/// A multi-tenant daemon (its harness peers plus T1 and T2) with a workspace per tenant, each
/// holding `secret.txt`.
struct Setup {
    d: Daemon,
    w1: PathBuf,
    w2: PathBuf,
    t1: u32,
    t2: u32,
}

fn setup() -> Option<Setup> {
    if !is_root() {
        eprintln!("SKIP tenants: needs root to create users and run clients as them");
        return None;
    }
    let (t1, t2) = tenants();
    let d = Daemon::start_with(Opts {
        // A config file, so that tests can add grants and reload.
        config: Some(String::new()),
        extra_args: vec![
            "--allow-uid".into(),
            t1.to_string(),
            "--allow-uid".into(),
            t2.to_string(),
        ],
        ..Opts::default()
    });
    // The socket is 0660 for the daemon's group; let the tenants reach it so that the daemon
    // decides, not the file mode.
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let w1 = d.root.join(T1);
    let w2 = d.root.join(T2);
    for (w, s) in [(&w1, "T1-SECRET\n"), (&w2, "T2-SECRET\n")] {
        mkdir_owned(w);
        write_owned(&w.join("secret.txt"), s);
    }
    Some(Setup { d, w1, w2, t1, t2 })
}

/// A directory owned by the sandbox's user (who runs every command and file operation).
fn mkdir_owned(p: &Path) {
    let (uid, gid) = test_ids();
    std::fs::create_dir_all(p).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown(p, uid, gid);
}

fn write_owned(p: &Path, s: &str) {
    let (uid, gid) = test_ids();
    std::fs::write(p, s).unwrap();
    chown(p, uid, gid);
}

/// `nanobot ARGS` run as `user` with its supplementary groups (setpriv --init-groups).
fn nanobot_as(user: &str, args: &[&str]) -> Output {
    let (_, gid) = lookup(user).unwrap();
    Command::new("setpriv")
        .arg(format!("--reuid={user}"))
        .arg(format!("--regid={gid}"))
        .arg("--init-groups")
        .arg(bin("nanobot"))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn exec_as(user: &str, d: &Daemon, ws: &Path, command: &str) -> Output {
    nanobot_as(
        user,
        &[
            "exec",
            "--socket",
            d.socket.to_str().unwrap(),
            "--workspace",
            ws.to_str().unwrap(),
            "--",
            command,
        ],
    )
}

fn tool_as(user: &str, d: &Daemon, ws: &Path, name: &str, json: &str) -> Output {
    nanobot_as(
        user,
        &[
            "tool",
            name,
            json,
            "--socket",
            d.socket.to_str().unwrap(),
            "--workspace",
            ws.to_str().unwrap(),
        ],
    )
}

/// Names and contents of every file in a directory tree: "nothing was written" is "unchanged".
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            v.push((p.clone(), vec![]));
            v.extend(snapshot(&p));
        } else {
            v.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
        }
    }
    v.sort();
    v
}

/// The log has an `Access denied` line for this peer uid and workspace.
fn denied_logged(d: &Daemon, uid: u32, ws: &Path) -> bool {
    let want_ws = format!("workspace={}", ws.display());
    let want_uid = format!("peer_uid={uid}");
    d.log_text().lines().any(|l| {
        l.contains("Access denied")
            && l.contains(&want_uid)
            && l.split_whitespace().any(|w| w == want_ws)
    })
}

fn assert_refused(o: &Output, what: &str) {
    assert_ne!(o.status.code(), Some(0), "{what}: {}", stdout(o));
    let all = format!("{}{}", stdout(o), stderr(o));
    assert!(all.contains("Access denied"), "{what}: {all}");
    assert!(all.contains("not granted"), "{what}: {all}");
    assert!(!all.contains("SECRET"), "{what}: {all}");
}

#[test]
fn a_tenant_cannot_name_another_tenants_workspace_the_root_a_symlink_or_dotdot() {
    let Some(Setup { d, w1, w2, t1, .. }) = setup() else {
        return;
    };
    // A symlink inside t1's workspace to t2's (relative, so it stays beneath the root and the
    // kernel resolves it), and the same through `..`.
    std::os::unix::fs::symlink(format!("../{T2}"), w1.join("to-t2")).unwrap();
    let dotdot = w1.join("..").join(T2);
    let before = snapshot(&w2);
    let before_root = snapshot(&d.root);

    // Positive controls: each tenant runs in its own workspace and sees its own file; and the
    // daemon's user can read t2's secret (the refusal below is the daemon's, not the file mode's).
    let o = exec_as(T1, &d, &w1, "cat secret.txt && pwd");
    assert_eq!(
        stdout(&o),
        format!("T1-SECRET\n{}\n", w1.display()),
        "{}",
        stderr(&o)
    );
    let o = exec_as(T2, &d, &w2, "cat secret.txt");
    assert_eq!(stdout(&o), "T2-SECRET\n", "{}", stderr(&o));
    let ctl = d.unsandboxed(
        Path::new("/bin/cat"),
        &[w2.join("secret.txt").to_str().unwrap()],
    );
    assert_eq!(stdout(&ctl), "T2-SECRET\n");

    // The kernel resolves all of these to t2's workspace or the root; each is refused.
    let marker = "ran-in-other";
    for (ws, real) in [
        (w2.clone(), w2.clone()),
        (d.root.clone(), d.root.clone()),
        (w1.join("to-t2"), w2.clone()),
        (dotdot.clone(), w2.clone()),
    ] {
        let o = exec_as(
            T1,
            &d,
            &ws,
            &format!("cat secret.txt; touch {marker}; echo {marker}"),
        );
        assert_refused(&o, &ws.display().to_string());
        assert_eq!(o.status.code(), Some(125), "{ws:?}: {}", stderr(&o));
        assert!(!stdout(&o).contains(marker), "{ws:?}");
        assert!(
            denied_logged(&d, t1, &real),
            "{ws:?}: no Access denied line for uid {t1} and {real:?}:\n{}",
            d.log_text()
        );
    }
    // Nothing ran: no marker anywhere, t2's files and the root unchanged.
    assert_eq!(snapshot(&w2), before);
    let mut after_root = snapshot(&d.root);
    after_root.retain(|(p, _)| !p.starts_with(&w1));
    let mut before_root = before_root;
    before_root.retain(|(p, _)| !p.starts_with(&w1));
    assert_eq!(after_root, before_root);
    assert!(!w1.join(marker).exists());
}

#[test]
fn the_file_tools_refuse_another_tenants_workspace() {
    let Some(Setup { d, w1, w2, t1, t2 }) = setup() else {
        return;
    };
    let before = snapshot(&w2);
    let calls = [
        ("read_file", r#"{"path": "secret.txt"}"#),
        ("write_file", r#"{"path": "planted.txt", "content": "x"}"#),
        (
            "edit_file",
            r#"{"path": "secret.txt", "old_text": "SECRET", "new_text": "OWNED"}"#,
        ),
        ("list_dir", r#"{"path": "."}"#),
    ];
    for (name, json) in calls {
        // Positive control: the owner, in its own workspace (edits undone after).
        let own = snapshot(&w1);
        let o = tool_as(T1, &d, &w1, name, json);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{name}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        if name == "read_file" {
            assert!(stdout(&o).contains("T1-SECRET"), "{}", stdout(&o));
        }
        if name == "list_dir" {
            assert!(stdout(&o).contains("secret.txt"), "{}", stdout(&o));
        }
        if own != snapshot(&w1) {
            let _ = std::fs::remove_file(w1.join("planted.txt"));
            write_owned(&w1.join("secret.txt"), "T1-SECRET\n");
        }
        // The other tenant's workspace, named directly.
        let o = tool_as(T1, &d, &w2, name, json);
        assert_refused(&o, name);
        assert!(
            d.log_text().lines().any(|l| l.contains("Access denied")
                && l.contains(name)
                && l.contains(&format!("peer_uid={t1}"))
                && l.contains(&format!("workspace={}", w2.display()))),
            "{name}: {}",
            d.log_text()
        );
        assert_eq!(snapshot(&w2), before, "{name} changed t2's workspace");
    }

    // The same over gRPC, to see the status code itself. The test process (uid 0, user root) is
    // one of the harness's peers: its grant is the harness workspace, not t2's.
    let rt = grpc::rt();
    rt.block_on(async {
        let mut c = grpc::client(&d.socket).await;
        let ws = w2.display().to_string();
        let codes = [
            c.read_file(ReadFileRequest {
                workspace: ws.clone(),
                path: "secret.txt".into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
            c.write_file(WriteFileRequest {
                workspace: ws.clone(),
                path: "planted.txt".into(),
                content: "x".into(),
            })
            .await
            .map(|_| ()),
            c.edit_file(EditFileRequest {
                workspace: ws.clone(),
                path: "secret.txt".into(),
                old_text: "SECRET".into(),
                new_text: "OWNED".into(),
            })
            .await
            .map(|_| ()),
            c.list_dir(ListDirRequest {
                workspace: ws.clone(),
                path: ".".into(),
            })
            .await
            .map(|_| ()),
            grpc::exec(&mut c, grpc::req(&w2, "touch planted.txt"))
                .await
                .map(|_| ()),
        ];
        for (i, r) in codes.into_iter().enumerate() {
            let e = r.expect_err("refused");
            assert_eq!(e.code(), tonic::Code::PermissionDenied, "call {i}: {e:?}");
            assert!(e.message().contains("Access denied"), "{e:?}");
        }
        // Positive control for the same client: the harness workspace it is granted.
        let run = grpc::exec(&mut c, grpc::req(&d.ws, "echo mine"))
            .await
            .unwrap();
        assert_eq!(run.stdout, b"mine\n");
    });
    assert_eq!(snapshot(&w2), before);
    assert!(denied_logged(&d, 0, &w2), "{}", d.log_text());
    // And t2 still has its own.
    let o = tool_as(T2, &d, &w2, "read_file", r#"{"path": "secret.txt"}"#);
    assert!(stdout(&o).contains("T2-SECRET"), "{}", stderr(&o));
    let _ = t2;
}

#[test]
fn a_group_grant_shares_a_directory_with_members_only_and_reload_picks_it_up() {
    let Some(Setup { d, w1, t1, t2, .. }) = setup() else {
        return;
    };
    let (uid, _) = test_ids();
    let shared = d.root.join("shared");
    mkdir_owned(&shared);
    write_owned(&shared.join("plan.txt"), "PLAN\n");
    // Before the grant: nobody may use it, member or not.
    let o = exec_as(T1, &d, &shared, "cat plan.txt");
    assert_refused(&o, "before the grant");
    assert!(denied_logged(&d, t1, &shared), "{}", d.log_text());

    let cfg = d.dir.join("sandboxd.toml");
    std::fs::write(
        &cfg,
        format!(
            "workspace_roots = [{r:?}]\nallow_uids = [0, {uid}, {t1}, {t2}]\n\n[[workspaces]]\npath = {s:?}\ngroups = [{GROUP:?}]\n",
            r = d.root.display().to_string(),
            s = shared.display().to_string()
        ),
    )
    .unwrap();
    // The file checks, and explain shows the grant.
    let o = Command::new(bin("sandboxd"))
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = Command::new(bin("sandboxd"))
        .args(["explain", "default", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let ex = stdout(&o);
    assert!(ex.contains("multi-tenant: 4 uids are allowed"), "{ex}");
    assert!(
        ex.contains(&format!(
            "grant workspaces[1]: {} and below to users [], groups [\"{GROUP}\"]",
            shared.display()
        )),
        "{ex}"
    );
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(d.pid(), libc::SIGHUP) };
    let t0 = Instant::now();
    while !d.log_text().contains("config reloaded") {
        assert!(t0.elapsed() < Duration::from_secs(10), "{}", d.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }

    // The member (a supplementary group) may use it now, and its own workspace still.
    let o = exec_as(
        T1,
        &d,
        &shared,
        "cat plan.txt && echo t1 > from-t1 && echo done",
    );
    assert_eq!(stdout(&o), "PLAN\ndone\n", "{}", stderr(&o));
    let o = exec_as(T1, &d, &w1, "cat secret.txt");
    assert_eq!(stdout(&o), "T1-SECRET\n", "{}", stderr(&o));
    // The non-member may not, by exec or by a file tool; nothing it tried was written.
    let before = snapshot(&shared);
    let o = exec_as(T2, &d, &shared, "cat plan.txt; echo t2 > from-t2");
    assert_refused(&o, "non-member exec");
    let o = tool_as(
        T2,
        &d,
        &shared,
        "write_file",
        r#"{"path": "from-t2", "content": "x"}"#,
    );
    assert_refused(&o, "non-member write_file");
    assert_eq!(snapshot(&shared), before);
    assert!(!shared.join("from-t2").exists());
    assert!(denied_logged(&d, t2, &shared), "{}", d.log_text());
}

#[test]
fn grants_that_point_nowhere_are_reported_with_file_line_and_key() {
    if !is_root() {
        return;
    }
    let _ = tenants();
    let dir = PathBuf::from(format!(
        "/var/tmp/nanobot-e2e-grants-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("root/shared")).unwrap();
    let cfg = dir.join("sandboxd.toml");
    let check = || {
        Command::new(bin("sandboxd"))
            .args(["check", "--config"])
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let root = dir.join("root").display().to_string();
    // Positive control: an existing path under the root, an existing user and group.
    std::fs::write(
        &cfg,
        format!("workspace_roots = [{root:?}]\n[[workspaces]]\npath = \"{root}/shared\"\nusers = [{T1:?}]\ngroups = [{GROUP:?}]\n"),
    )
    .unwrap();
    let o = check();
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    std::fs::write(
        &cfg,
        format!("workspace_roots = [{root:?}]\n[[workspaces]]\npath = \"{root}/missing\"\nusers = [\"nanobot-nobody-such\"]\n"),
    )
    .unwrap();
    let o = check();
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let c = cfg.display();
    assert!(
        out.contains(&format!("{c}:3: workspaces[1].path: ")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{c}:4: workspaces[1].users: user \"nanobot-nobody-such\" does not exist"
        )),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_single_tenant_daemon_still_accepts_the_root_and_any_directory_below() {
    // The daemon's only peer is its own user: run it as that user, no --allow-uid.
    let (uid, gid) = test_ids();
    let dir = PathBuf::from(format!(
        "/var/tmp/nanobot-e2e-single-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("anyone/sub")).unwrap();
    for p in [&dir, &root, &root.join("anyone"), &root.join("anyone/sub")] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        chown(p, uid, gid);
    }
    let socket = dir.join("s.sock");
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let mut c = Command::new(bin("sandboxd"));
    c.args(["serve", "--socket"])
        .arg(&socket)
        .arg("--workspace-root")
        .arg(&root)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    if is_root() {
        as_user(&mut c, uid, gid);
    }
    let mut child = c.spawn().unwrap();
    let t0 = Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for ws in [root.clone(), root.join("anyone"), root.join("anyone/sub")] {
        let mut c = Command::new(bin("nanobot"));
        c.args(["exec", "--socket"])
            .arg(&socket)
            .arg("--workspace")
            .arg(&ws)
            .args(["--", "pwd"])
            .env("HOME", "/nonexistent")
            .stdin(Stdio::null());
        if is_root() {
            as_user(&mut c, uid, gid);
        }
        let o = c.output().unwrap();
        assert_eq!(
            stdout(&o),
            format!("{}\n", ws.display()),
            "{ws:?}: {}",
            stderr(&o)
        );
    }
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

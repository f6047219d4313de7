//! The WhatsApp channel end to end: `nanobot gateway` (as the unprivileged test user, tools
//! through a real sandboxd) against a scripted bridge on 127.0.0.1 that speaks the Python
//! nanobot's bridge protocol, and a scripted model server.

use futures_util::{SinkExt, StreamExt};
use nanobot_e2e::llm::{self, Server};
use nanobot_e2e::*;
use serde_json::{json, Value};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

enum Ctl {
    Frame(Message),
    /// Drop the TCP connection without a close frame, as a crashed bridge does.
    Drop,
}

/// A bridge on 127.0.0.1: checks the auth frame like the real one (wrong token: close 4003),
/// sends `greeting` after auth, records every text frame clients send, and sends what the test
/// tells it to.
struct FakeBridge {
    port: u16,
    received: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    ctl: tokio::sync::mpsc::UnboundedSender<Ctl>,
}

impl FakeBridge {
    fn start(token: &str, greeting: Vec<Value>) -> FakeBridge {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(vec![]));
        let connections = Arc::new(AtomicUsize::new(0));
        let (ctl, mut rx) = tokio::sync::mpsc::unbounded_channel::<Ctl>();
        let (rec, conns, token) = (received.clone(), connections.clone(), token.to_string());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    conns.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                        continue;
                    };
                    let authed = match ws.next().await {
                        Some(Ok(Message::Text(t))) => {
                            rec.lock().unwrap().push(t.to_string());
                            serde_json::from_str::<Value>(t.as_str()).ok().is_some_and(|v| {
                                v["type"] == "auth" && v["token"].as_str() == Some(token.as_str())
                            })
                        }
                        _ => false,
                    };
                    if !authed {
                        let _ = ws
                            .close(Some(CloseFrame {
                                code: CloseCode::from(4003),
                                reason: "Invalid token".into(),
                            }))
                            .await;
                        continue;
                    }
                    for g in &greeting {
                        let _ = ws.send(Message::text(g.to_string())).await;
                    }
                    loop {
                        tokio::select! {
                            m = ws.next() => match m {
                                Some(Ok(Message::Text(t))) => rec.lock().unwrap().push(t.to_string()),
                                Some(Ok(_)) => {}
                                _ => break,
                            },
                            c = rx.recv() => match c {
                                Some(Ctl::Frame(m)) => if ws.send(m).await.is_err() { break },
                                Some(Ctl::Drop) | None => break,
                            },
                        }
                    }
                }
            });
        });
        FakeBridge {
            port,
            received,
            connections,
            ctl,
        }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    fn push(&self, v: Value) {
        self.ctl
            .send(Ctl::Frame(Message::text(v.to_string())))
            .unwrap();
    }

    fn push_raw(&self, m: Message) {
        self.ctl.send(Ctl::Frame(m)).unwrap();
    }

    fn drop_connection(&self) {
        self.ctl.send(Ctl::Drop).unwrap();
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn frames(&self) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect()
    }

    fn sends(&self) -> Vec<Value> {
        self.frames()
            .into_iter()
            .filter(|f| f["type"] == "send")
            .collect()
    }
}

fn message(sender: &str, pn: &str, content: &str) -> Value {
    json!({"type": "message", "id": "M1", "sender": sender, "pn": pn, "content": content,
           "timestamp": 1700000000, "isGroup": false})
}

fn group_message(group: &str, participant: Option<&str>, content: &str) -> Value {
    let mut m = json!({"type": "message", "id": "G1", "sender": group, "pn": "",
                       "content": content, "timestamp": 1700000000, "isGroup": true});
    if let Some(p) = participant {
        m["participant"] = json!(p);
    }
    m
}

fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A home for the test user with ~/.nanobot (0700) and config.json (0600).
struct Home(UserHome);

impl std::ops::Deref for Home {
    type Target = UserHome;
    fn deref(&self) -> &UserHome {
        &self.0
    }
}

impl Home {
    fn new(tag: &str) -> Home {
        Home(UserHome::new("wa", tag))
    }

    fn write_config(&self, v: Value) {
        self.0.write_config(&v.to_string());
    }

    fn command(&self, ws: Option<&std::path::Path>, args: &[&str]) -> Command {
        let mut c = self.0.command(args);
        if let Some(ws) = ws {
            c.arg("-w").arg(ws);
        }
        c.env("TEST_LLM_KEY", "sk-test-123")
            .env("WA_TOKEN", TOKEN)
            .env("NO_COLOR", "1");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(None, args).output().unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dot().join("logs/nanobot.log")).unwrap_or_default()
    }

    fn sessions(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dot().join("sessions"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// A running gateway whose stderr is collected as it comes.
struct Gateway {
    child: Child,
    err: Arc<Mutex<String>>,
}

impl Gateway {
    fn start(home: &Home, d: &Daemon) -> Gateway {
        let mut child = home
            .command(Some(&d.ws), &["gateway"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = Arc::new(Mutex::new(String::new()));
        let (mut pipe, e) = (child.stderr.take().unwrap(), err.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                e.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Gateway { child, err }
    }

    fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    fn exited(&mut self) -> Option<i32> {
        self.child
            .try_wait()
            .unwrap()
            .map(|s| s.code().unwrap_or(-1))
    }

    /// Stop it the way systemd does; the exit code.
    fn stop(mut self) -> Option<i32> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap().code()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(d: &Daemon, llm: &Server, whatsapp: Value) -> Value {
    json!({
        "agents": {"defaults": {"model": "m", "provider": "custom"}},
        "providers": {"custom": {"apiKey": "${TEST_LLM_KEY}", "apiBase": llm.base()}},
        "channels": {"whatsapp": whatsapp},
        "sandbox": {"socket": d.socket},
    })
}

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn whatsapp_refuses_to_start_without_a_real_token_or_with_bad_numbers() {
    let d = Daemon::start();
    let llm_server = Server::start(vec![]);
    let home = Home::new("refuse");
    for (wa, want) in [
        (
            json!({"enabled": true, "allowFrom": ["+12345678901"]}),
            "channels.whatsapp.bridgeToken is not set",
        ),
        (
            json!({"enabled": true, "allowFrom": ["+12345678901"], "bridgeToken": "${UNSET_VAR}"}),
            "channels.whatsapp.bridgeToken is not set",
        ),
        (
            json!({"enabled": true, "allowFrom": ["+12345678901"], "bridgeToken": "your-secret-token-here"}),
            "example value",
        ),
        (
            json!({"enabled": true, "allowFrom": [], "bridgeToken": "${WA_TOKEN}"}),
            "channels.whatsapp.allowFrom is empty",
        ),
        (
            json!({"enabled": true, "allowFrom": ["alice", "+1"], "bridgeToken": "${WA_TOKEN}"}),
            "\"alice\", \"+1\" are not a phone number",
        ),
    ] {
        home.write_config(config(&d, &llm_server, wa));
        let o = home.command(Some(&d.ws), &["gateway"]).output().unwrap();
        assert_eq!(o.status.code(), Some(78), "{}", stderr_of(&o));
        assert!(stderr_of(&o).contains(want), "{want}: {}", stderr_of(&o));
    }
    assert!(llm_server.recorded().is_empty());
}

#[test]
fn whatsapp_answers_allowed_numbers_in_their_chat_and_refuses_others() {
    let d = Daemon::start();
    let llm_server = Server::start(vec![
        llm::openai_tools(&[(
            "write_file",
            json!({"path": "wa.txt", "content": "from whatsapp"}),
        )]),
        llm::openai_text("first answer"),
        llm::openai_text("second answer"),
        llm::openai_text("group answer"),
    ]);
    let bridge = FakeBridge::start(
        TOKEN,
        vec![json!({"type": "status", "status": "connected"})],
    );
    let home = Home::new("answer");
    home.write_config(config(
        &d,
        &llm_server,
        json!({"enabled": true, "bridgeUrl": bridge.url(), "bridgeToken": "${WA_TOKEN}",
               "allowFrom": ["+1 234-567-8901", "+44 7700 900123"], "allowGroups": true}),
    ));
    let gw = Gateway::start(&home, &d);
    assert!(
        wait_until(20, || bridge.frames().iter().any(|f| f["type"] == "auth")),
        "no auth frame: {}",
        gw.stderr()
    );
    assert_eq!(bridge.frames()[0], json!({"type": "auth", "token": TOKEN}));

    // A plain JID of an allowed number: the reply goes back to that chat.
    bridge.push(message("12345678901@s.whatsapp.net", "", "write wa.txt"));
    assert!(
        wait_until(30, || bridge.sends().len() == 1),
        "{}",
        gw.stderr()
    );
    assert_eq!(
        bridge.sends()[0],
        json!({"type": "send", "to": "12345678901@s.whatsapp.net", "text": "first answer"})
    );
    assert_eq!(
        std::fs::read_to_string(d.ws.join("wa.txt")).unwrap(),
        "from whatsapp"
    );

    // Refused: a number that merely contains an allowed one, a prefix of one, an unknown
    // number; garbage frames change nothing.
    bridge.push(message("112345678901@s.whatsapp.net", "", "let me in"));
    bridge.push(message("1234567890@s.whatsapp.net", "", "me too"));
    bridge.push(message("5550001111:3@s.whatsapp.net", "", "and me"));
    bridge.push_raw(Message::text("not json at all"));
    bridge.push_raw(Message::binary(vec![0u8, 159, 146, 150]));
    bridge.push(json!({"type": "sent", "to": "x"}));
    // A privacy id (LID) with the phone number in `pn`, in device form.
    bridge.push(message(
        "8877665544@lid",
        "447700900123:5@s.whatsapp.net",
        "hello",
    ));
    assert!(
        wait_until(30, || bridge.sends().len() == 2),
        "{}",
        gw.stderr()
    );
    assert_eq!(bridge.sends()[1]["to"], "8877665544@lid");
    assert_eq!(bridge.sends()[1]["text"], "second answer");

    // Groups: an allowed author is answered in the group; another member, or a message whose
    // author the bridge does not name (the Python bridge), is refused.
    bridge.push(group_message(
        "120363000000@g.us",
        Some("5550001111@s.whatsapp.net"),
        "group intruder",
    ));
    bridge.push(group_message("120363000000@g.us", None, "who am I"));
    bridge.push(group_message(
        "120363000000@g.us",
        Some("12345678901:2@s.whatsapp.net"),
        "group question",
    ));
    assert!(
        wait_until(30, || bridge.sends().len() == 3),
        "{}",
        gw.stderr()
    );
    assert_eq!(bridge.sends()[2]["to"], "120363000000@g.us");
    assert_eq!(bridge.sends()[2]["text"], "group answer");

    // The status command sees the running gateway.
    let o = home.run(&["channels", "status"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("gateway: running"), "{out}");
    assert!(
        out.contains("whatsapp: enabled, connected, allowFrom 2 entries, last error: none"),
        "{out}"
    );

    std::thread::sleep(Duration::from_millis(300));
    let err = gw.stderr();
    assert_eq!(gw.stop(), Some(0), "{err}");
    // Only the three allowed messages reached the model (the first took two rounds).
    assert_eq!(llm_server.recorded().len(), 4);
    assert_eq!(bridge.sends().len(), 3);
    let log = home.log();
    for who in [
        "Access denied for sender 112345678901@s.whatsapp.net on channel whatsapp",
        "Access denied for sender 1234567890@s.whatsapp.net on channel whatsapp",
        "Access denied for sender 5550001111:3@s.whatsapp.net on channel whatsapp",
        "Access denied for sender 5550001111@s.whatsapp.net in group 120363000000@g.us on channel whatsapp",
        "Access denied for sender (unknown) in group 120363000000@g.us on channel whatsapp",
    ] {
        assert!(log.contains(who), "{who}\n{log}");
    }
    assert!(err.contains("ignored a frame from the bridge"), "{err}");
    // One session per chat.
    assert_eq!(
        home.sessions(),
        vec![
            "whatsapp_120363000000_g.us.jsonl",
            "whatsapp_12345678901_s.whatsapp.net.jsonl",
            "whatsapp_8877665544_lid.jsonl",
        ]
    );
    let o = home.run(&["channels", "status"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("gateway: not running"), "{out}");
    assert!(
        out.contains("whatsapp: enabled, gateway not running"),
        "{out}"
    );
}

#[test]
fn whatsapp_reconnects_after_the_bridge_drops_or_sends_an_oversize_frame() {
    let d = Daemon::start();
    let llm_server = Server::start(vec![
        llm::openai_text("before the drop"),
        llm::openai_text("after the drop"),
        llm::openai_text("after the big frame"),
    ]);
    let bridge = FakeBridge::start(TOKEN, vec![]);
    let home = Home::new("reconnect");
    home.write_config(config(
        &d,
        &llm_server,
        json!({"enabled": true, "bridgeUrl": bridge.url(), "bridgeToken": "${WA_TOKEN}",
               "allowFrom": ["+12345678901"]}),
    ));
    let gw = Gateway::start(&home, &d);
    let alice = "12345678901@s.whatsapp.net";
    assert!(
        wait_until(20, || bridge.connections() == 1),
        "{}",
        gw.stderr()
    );
    bridge.push(message(alice, "", "one"));
    assert!(
        wait_until(30, || bridge.sends().len() == 1),
        "{}",
        gw.stderr()
    );

    bridge.drop_connection();
    assert!(
        wait_until(20, || bridge.connections() == 2),
        "no reconnect: {}",
        gw.stderr()
    );
    bridge.push(message(alice, "", "two"));
    assert!(
        wait_until(30, || bridge.sends().len() == 2),
        "{}",
        gw.stderr()
    );
    assert_eq!(bridge.sends()[1]["text"], "after the drop");

    // A frame over the gateway's 1 MiB cap ends that connection; the next one works.
    bridge.push(message(alice, "", &"x".repeat(2 << 20)));
    assert!(
        wait_until(20, || bridge.connections() == 3),
        "no reconnect after the oversize frame: {}",
        gw.stderr()
    );
    bridge.push(message(alice, "", "three"));
    assert!(
        wait_until(30, || bridge.sends().len() == 3),
        "{}",
        gw.stderr()
    );
    assert_eq!(bridge.sends()[2]["text"], "after the big frame");

    let err = gw.stderr();
    assert!(err.contains("reconnecting in"), "{err}");
    let o = home.run(&["channels", "status", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["gatewayRunning"], true);
    assert!(
        v["channels"]["whatsapp"]["lastError"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{v}"
    );
    assert_eq!(gw.stop(), Some(0));
    // The oversize message never reached the model.
    assert_eq!(llm_server.recorded().len(), 3);
}

#[test]
fn a_bad_bridge_token_is_fatal_for_whatsapp_while_telegram_keeps_working() {
    let d = Daemon::start();
    let llm_server = Server::start(vec![llm::openai_text("telegram answer")]);
    let mut tg = vec![llm::ok(json!({"ok": true, "result": []}))];
    // The Telegram message arrives only after WhatsApp has failed.
    tg[0].delay_ms = 1500;
    tg.push(llm::ok(json!({"ok": true, "result": [
        {"update_id": 5, "message": {"message_id": 5, "from": {"id": 42, "username": "alice"},
         "chat": {"id": 4242}, "text": "hi"}}]})));
    tg.push(llm::ok(json!({"ok": true, "result": {"message_id": 99}})));
    for _ in 0..300 {
        let mut empty = llm::ok(json!({"ok": true, "result": []}));
        empty.delay_ms = 100;
        tg.push(empty);
    }
    let tg_server = Server::start(tg);
    let bridge = FakeBridge::start(TOKEN, vec![]);
    let home = Home::new("badtoken");
    let mut cfg = config(
        &d,
        &llm_server,
        json!({"enabled": true, "bridgeUrl": bridge.url(), "bridgeToken": "not-the-bridge-token-at-all",
               "allowFrom": ["+12345678901"]}),
    );
    cfg["channels"]["telegram"] = json!({"enabled": true, "token": "123:abc", "allowFrom": ["42"],
        "apiBase": format!("http://127.0.0.1:{}", tg_server.port), "pollTimeout": 1});
    home.write_config(cfg.clone());
    let mut gw = Gateway::start(&home, &d);
    assert!(
        wait_until(20, || gw
            .stderr()
            .contains("channel whatsapp failed for good")),
        "{}",
        gw.stderr()
    );
    let err = gw.stderr();
    assert!(
        err.contains("refused channels.whatsapp.bridgeToken (close code 4003)"),
        "{err}"
    );
    assert!(
        wait_until(30, || tg_server
            .recorded()
            .iter()
            .any(|r| r.path.ends_with("/sendMessage"))),
        "telegram stopped: {}",
        gw.stderr()
    );
    // No retry loop against a bridge that refuses the token.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(bridge.connections(), 1);
    assert_eq!(gw.exited(), None, "{}", gw.stderr());
    let o = home.run(&["channels", "status"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("telegram: enabled, connected"), "{out}");
    assert!(
        out.contains(
            "whatsapp: enabled, failed, allowFrom 1 entry, last error: the WhatsApp bridge refused"
        ),
        "{out}"
    );
    assert_eq!(gw.stop(), Some(0));

    // With WhatsApp alone, its failure is the gateway's: exit 78 (configuration), which the unit
    // does not restart (RestartPreventExitStatus=78): a refused token would fail every 5 s.
    cfg["channels"].as_object_mut().unwrap().remove("telegram");
    home.write_config(cfg);
    let o = home.command(Some(&d.ws), &["gateway"]).output().unwrap();
    assert_eq!(o.status.code(), Some(78), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains("every enabled channel has failed (whatsapp)"),
        "{}",
        stderr_of(&o)
    );
    assert_eq!(bridge.connections(), 2);
}

#[test]
fn login_shows_the_qr_code_and_ends_when_whatsapp_is_linked() {
    let bridge = FakeBridge::start(
        TOKEN,
        vec![
            json!({"type": "status", "status": "connecting"}),
            json!({"type": "qr", "qr": "2@Zm9vYmFy,cXV4,YmF6"}),
        ],
    );
    let home = Home::new("login");
    home.write_config(json!({"channels": {"whatsapp": {
        "bridgeUrl": bridge.url(), "bridgeToken": "${WA_TOKEN}"}}}));
    let mut c = home.command(None, &["channels", "login", "whatsapp", "--timeout", "20"]);
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(20, || bridge.connections() == 1));
    std::thread::sleep(Duration::from_millis(500));
    bridge.push(json!({"type": "status", "status": "connected"}));
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr_of(&o));
    assert!(out.contains('█') || out.contains('▀'), "{out}");
    assert!(out.contains("WhatsApp is linked"), "{out}");

    // A wrong token: a clear error, exit 1.
    home.write_config(json!({"channels": {"whatsapp": {
        "bridgeUrl": bridge.url(), "bridgeToken": "wrong-token-wrong-token"}}}));
    let o = home.run(&["channels", "login", "whatsapp", "--timeout", "20"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr_of(&o).contains("close code 4003"),
        "{}",
        stderr_of(&o)
    );
    // No bridge listening: says where it tried.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    home.write_config(json!({"channels": {"whatsapp": {
        "bridgeUrl": format!("ws://127.0.0.1:{port}"), "bridgeToken": "${WA_TOKEN}"}}}));
    let o = home.run(&["channels", "login", "whatsapp"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr_of(&o).contains(&format!(
            "cannot connect to the WhatsApp bridge at ws://127.0.0.1:{port}"
        )),
        "{}",
        stderr_of(&o)
    );
    let o = home.run(&["channels", "login", "irc"]);
    assert_eq!(o.status.code(), Some(1));
}

/// The shipped bridge (packaging/whatsapp-bridge, its server with WhatsApp faked by
/// tools/fake-whatsapp.js): node and its npm dependencies come from scripts/test.sh (`npm ci`).
/// In CI their absence is a failure; elsewhere the test says why it skips.
fn shipped_bridge(
    token: &str,
) -> Option<(Child, u16, std::io::BufReader<std::process::ChildStdout>)> {
    use std::io::BufRead;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging/whatsapp-bridge");
    let ready = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        && dir.join("node_modules/ws").is_dir();
    if !ready {
        let why = format!(
            "node or {}/node_modules missing (run scripts/test.sh, which runs npm ci)",
            dir.display()
        );
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("SKIPPED: {why}");
        return None;
    }
    let mut child = Command::new("node")
        .arg(dir.join("tools/fake-whatsapp.js"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("BRIDGE_TOKEN", token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port = serde_json::from_str::<Value>(&line).unwrap()["port"]
        .as_u64()
        .unwrap() as u16;
    Some((child, port, out))
}

#[test]
fn the_gateway_speaks_the_shipped_bridges_protocol() {
    use std::io::{BufRead, Write};
    let Some((mut node, port, mut sent)) = shipped_bridge(TOKEN) else {
        return;
    };
    let d = Daemon::start();
    let llm_server = Server::start(vec![llm::openai_text("hello from nanobot")]);
    let home = Home::new("interop");
    let mut cfg = config(
        &d,
        &llm_server,
        json!({"enabled": true, "bridgeUrl": format!("ws://127.0.0.1:{port}"),
               "bridgeToken": "${WA_TOKEN}", "allowFrom": ["+12345678901"]}),
    );
    home.write_config(cfg.clone());
    let gw = Gateway::start(&home, &d);
    std::thread::sleep(Duration::from_secs(1));
    let mut stdin = node.stdin.take().unwrap();
    for m in [
        message("5550001111@s.whatsapp.net", "", "not you"),
        message("12345678901@s.whatsapp.net", "", "hi"),
    ] {
        writeln!(stdin, "{m}").unwrap();
    }
    let mut line = String::new();
    sent.read_line(&mut line).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&line).unwrap(),
        json!({"to": "12345678901@s.whatsapp.net", "text": "hello from nanobot"}),
        "{}",
        gw.stderr()
    );
    assert_eq!(gw.stop(), Some(0));
    assert!(home
        .log()
        .contains("Access denied for sender 5550001111@s.whatsapp.net on channel whatsapp"));

    // The real bridge refuses a wrong token with 4003; the gateway gives up at once.
    cfg["channels"]["whatsapp"]["bridgeToken"] = json!("wrong-token-wrong-token");
    home.write_config(cfg);
    let o = home.command(Some(&d.ws), &["gateway"]).output().unwrap();
    assert_eq!(o.status.code(), Some(78));
    assert!(
        stderr_of(&o).contains("refused channels.whatsapp.bridgeToken (close code 4003)"),
        "{}",
        stderr_of(&o)
    );
    drop(stdin);
    let _ = node.kill();
    let _ = node.wait();
}

/// A bridge that hangs after the handshake (socket open, nothing read or sent, no pongs): the
/// gateway notices within about half a minute and reconnects, instead of showing the channel
/// connected forever.
#[test]
fn whatsapp_gives_up_on_a_bridge_that_hangs_and_reconnects() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let conns = Arc::new(AtomicUsize::new(0));
    let c2 = conns.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let mut held = vec![];
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                c2.fetch_add(1, Ordering::SeqCst);
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    continue;
                };
                let _ = ws.next().await;
                let _ = ws
                    .send(Message::text(
                        json!({"type": "status", "status": "connected"}).to_string(),
                    ))
                    .await;
                // Hung: never read again (so no pongs), never close.
                held.push(ws);
            }
        });
    });
    let d = Daemon::start();
    let llm_server = Server::start(vec![]);
    let home = Home::new("hung");
    home.write_config(config(
        &d,
        &llm_server,
        json!({"enabled": true, "bridgeUrl": format!("ws://127.0.0.1:{port}"), "bridgeToken": TOKEN,
               "allowFrom": ["+12345678901"]}),
    ));
    let mut gw = Gateway::start(&home, &d);
    assert!(
        wait_until(15, || conns.load(Ordering::SeqCst) >= 1),
        "{}",
        gw.stderr()
    );
    assert!(
        wait_until(60, || conns.load(Ordering::SeqCst) >= 2),
        "no reconnect from a hung bridge: {}",
        gw.stderr()
    );
    let log = home.log() + &gw.stderr();
    assert!(log.contains("not even an answer to a ping"), "{log}");
    assert_eq!(gw.exited(), None, "{}", gw.stderr());
    assert_eq!(gw.stop(), Some(0));
}

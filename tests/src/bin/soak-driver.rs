//! Load for `scripts/soak.sh`: many execs against a running sandboxd over its Unix socket, every
//! one's output checked. Not a test by itself; the script samples the daemon while this runs.
//!
//! Usage: soak-driver SOCKET WORKSPACE MODE ...
//!   seq N [RECONNECT]  N execs one after another; a new connection every RECONNECT (default 10)
//!   conc CLIENTS PER   CLIENTS connections at once, each running PER execs in turn
//!   hold CLIENTS SECS  CLIENTS execs of `sleep SECS` at once; prints `held CLIENTS` when every
//!                      one has started, then waits to be killed (the client-killed fault)
//!
//! Each exec runs `echo soak-<client>-<i>` and must print exactly that, nothing on stderr, exit 0,
//! with a `started` event before the result. The last line is a summary; exit 1 on any failure.

use hyper_util::rt::TokioIo;
use nanobot_proto::pb::{exec_event::Event, sandbox_client::SandboxClient, ExecRequest};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

type Client = SandboxClient<Channel>;

fn die(msg: &str) -> ! {
    eprintln!("soak-driver: {msg}");
    std::process::exit(2)
}

async fn connect(socket: &Path) -> Result<Client, String> {
    let p = socket.to_path_buf();
    let ch = Endpoint::from_static("http://sandboxd.invalid")
        .connect_with_connector(tower::service_fn(move |_| {
            let p = p.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(p).await?))
            }
        }))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    Ok(SandboxClient::new(ch))
}

fn request(ws: &str, command: String) -> ExecRequest {
    ExecRequest {
        workspace: ws.to_string(),
        command,
        ..Default::default()
    }
}

/// One exec of `echo TAG`, checked: Ok(()) or what was wrong.
async fn checked_exec(c: &mut Client, ws: &str, tag: &str) -> Result<(), String> {
    let mut s = c
        .exec(request(ws, format!("echo {tag}")))
        .await
        .map_err(|e| format!("{tag}: exec: {e}"))?
        .into_inner();
    let (mut started, mut out, mut err, mut result) = (false, Vec::new(), Vec::new(), None);
    while let Some(ev) = s
        .message()
        .await
        .map_err(|e| format!("{tag}: stream: {e}"))?
    {
        match ev.event {
            Some(Event::Started(_)) => started = true,
            Some(Event::Stdout(d)) => out.extend(d),
            Some(Event::Stderr(d)) => err.extend(d),
            Some(Event::Result(r)) => result = Some(r),
            None => {}
        }
    }
    let r = result.ok_or_else(|| format!("{tag}: stream ended without a result"))?;
    if r.refused {
        return Err(format!("{tag}: refused: {}", r.refused_reason));
    }
    let want = format!("{tag}\n");
    if !started || r.exit_code != 0 || out != want.as_bytes() || !err.is_empty() {
        return Err(format!(
            "{tag}: started={started} exit={} signal={} stdout={:?} stderr={:?}",
            r.exit_code,
            r.signal,
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&err)
        ));
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    ok: usize,
    errors: Vec<String>,
    lat: Vec<Duration>,
}

/// `n` execs in turn as client `id`, reconnecting every `reconnect` execs (0: never).
async fn client_loop(socket: PathBuf, ws: String, id: usize, n: usize, reconnect: usize) -> Tally {
    let mut t = Tally::default();
    let mut c: Option<Client> = None;
    for i in 0..n {
        if reconnect > 0 && i % reconnect == 0 {
            c = None;
        }
        if c.is_none() {
            match connect(&socket).await {
                Ok(x) => c = Some(x),
                Err(e) => {
                    t.errors.push(format!("client {id}: {e}"));
                    continue;
                }
            }
        }
        let Some(cl) = c.as_mut() else { continue };
        let t0 = Instant::now();
        match checked_exec(cl, &ws, &format!("soak-{id}-{i}")).await {
            Ok(()) => {
                t.ok += 1;
                t.lat.push(t0.elapsed());
            }
            Err(e) => {
                t.errors.push(e);
                c = None; // a fresh connection after a failure
            }
        }
    }
    t
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(mode: &str, tallies: Vec<Tally>, elapsed: Duration) -> ! {
    let mut all = Tally::default();
    for t in tallies {
        all.ok += t.ok;
        all.errors.extend(t.errors);
        all.lat.extend(t.lat);
    }
    all.lat.sort();
    let pct = |p: f64| {
        all.lat
            .get(((all.lat.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    for e in all.errors.iter().take(10) {
        eprintln!("soak-driver: FAILED {e}");
    }
    if all.errors.len() > 10 {
        eprintln!("soak-driver: … and {} more failures", all.errors.len() - 10);
    }
    println!(
        "{mode}: {} execs ok, {} failed, {:.0}/s, latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
        all.ok,
        all.errors.len(),
        all.ok as f64 / elapsed.as_secs_f64().max(1e-9),
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(all.lat.last().copied().unwrap_or_default())
    );
    std::process::exit(if all.errors.is_empty() { 0 } else { 1 })
}

fn num(args: &[String], i: usize, default: Option<usize>) -> usize {
    match (args.get(i), default) {
        (Some(s), _) => s
            .parse()
            .unwrap_or_else(|_| die(&format!("not a number: {s:?}"))),
        (None, Some(d)) => d,
        (None, None) => die("missing argument (see the usage at the top of soak-driver.rs)"),
    }
}

/// `clients` execs of `sleep secs` held open; prints `held N` once all have started.
async fn hold(socket: PathBuf, ws: String, clients: usize, secs: usize) -> ! {
    let started = Arc::new(AtomicUsize::new(0));
    let mut streams = Vec::new();
    for id in 0..clients {
        let mut c = connect(&socket).await.unwrap_or_else(|e| die(&e));
        let mut s = c
            .exec(request(&ws, format!("sleep {secs}")))
            .await
            .unwrap_or_else(|e| die(&format!("hold {id}: exec: {e}")))
            .into_inner();
        let started = started.clone();
        streams.push(tokio::spawn(async move {
            while let Ok(Some(ev)) = s.message().await {
                if matches!(ev.event, Some(Event::Started(_))) {
                    started.fetch_add(1, Ordering::SeqCst);
                }
                if matches!(ev.event, Some(Event::Result(_))) {
                    break;
                }
            }
            drop(c);
        }));
    }
    let t0 = Instant::now();
    while started.load(Ordering::SeqCst) < clients {
        if t0.elapsed() > Duration::from_secs(30) {
            die(&format!(
                "hold: only {} of {clients} execs started within 30 s",
                started.load(Ordering::SeqCst)
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("held {clients}");
    let _ = std::io::stdout().flush();
    // Wait to be killed; if nobody does, the sleeps end and so does this.
    for s in streams {
        let _ = s.await;
    }
    std::process::exit(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        die("usage: soak-driver SOCKET WORKSPACE seq N [RECONNECT] | conc CLIENTS PER | hold CLIENTS SECS");
    }
    let socket = PathBuf::from(&args[1]);
    let ws = args[2].clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(&format!("runtime: {e}")));
    rt.block_on(async move {
        let t0 = Instant::now();
        match args[3].as_str() {
            "seq" => {
                let n = num(&args, 4, None);
                let reconnect = num(&args, 5, Some(10));
                let t = client_loop(socket, ws, 0, n, reconnect).await;
                report("sequential", vec![t], t0.elapsed())
            }
            "conc" => {
                let clients = num(&args, 4, None);
                let per = num(&args, 5, None);
                let tasks: Vec<_> = (0..clients)
                    .map(|id| tokio::spawn(client_loop(socket.clone(), ws.clone(), id, per, 0)))
                    .collect();
                let mut tallies = Vec::new();
                for t in tasks {
                    tallies.push(t.await.unwrap_or_else(|e| Tally {
                        errors: vec![format!("client task: {e}")],
                        ..Default::default()
                    }));
                }
                report(
                    &format!("concurrent {clients}x{per}"),
                    tallies,
                    t0.elapsed(),
                )
            }
            "hold" => {
                let clients = num(&args, 4, None);
                let secs = num(&args, 5, None);
                hold(socket, ws, clients, secs).await
            }
            m => die(&format!("unknown mode {m:?}")),
        }
    })
}

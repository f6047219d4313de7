//! One exec request and its event stream, drained the one way both `nanobot exec` and the exec
//! tool use: the pid from `Started`, stdout and stderr collected or mirrored as they arrive, and
//! the `Result` that must end the stream.

use crate::sandbox::client::Client;
use nanobot_proto::pb::{exec_event::Event, ExecRequest, ExecResult};
use std::io::Write;

/// What to do with output as it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Keep it, for the caller to format.
    Collect,
    /// Copy it to this process's stdout and stderr at once, keeping nothing.
    Mirror,
}

/// With `Output::Mirror`: how many bytes of a stream were copied, and the last of them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Mirrored {
    pub bytes: u64,
    pub last: Option<u8>,
}

impl Mirrored {
    fn add(&mut self, d: &[u8]) {
        self.bytes += d.len() as u64;
        self.last = d.last().copied().or(self.last);
    }
}

/// An exec that ran to its result (which may still say refused, blocked or timed out).
#[derive(Debug, Default)]
pub struct Finished {
    pub pid: u32,
    /// Empty with `Output::Mirror`.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// What `Output::Mirror` copied of stdout and stderr.
    pub mirrored: [Mirrored; 2],
    pub result: ExecResult,
}

/// An exec that did not get to a result.
#[derive(Debug)]
pub enum Failed {
    /// sandboxd refused the request itself (bad workspace or cwd, no slot, …).
    Request(tonic::Status),
    /// The stream broke before the result.
    Stream(tonic::Status),
    /// The stream ended without a result.
    NoResult,
}

/// Send `req` and drain the stream to its result.
pub async fn run(
    client: &mut Client,
    req: ExecRequest,
    output: Output,
) -> Result<Finished, Failed> {
    let mut stream = client
        .exec(req)
        .await
        .map_err(Failed::Request)?
        .into_inner();
    let mut done = Finished::default();
    let mut result = None;
    loop {
        match stream.message().await {
            Ok(Some(ev)) => match ev.event {
                Some(Event::Started(s)) => done.pid = s.pid,
                Some(Event::Stdout(d)) if output == Output::Collect => done.stdout.extend(d),
                Some(Event::Stderr(d)) if output == Output::Collect => done.stderr.extend(d),
                Some(Event::Stdout(d)) => {
                    done.mirrored[0].add(&d);
                    let mut o = std::io::stdout().lock();
                    let _ = o.write_all(&d);
                    let _ = o.flush();
                }
                Some(Event::Stderr(d)) => {
                    done.mirrored[1].add(&d);
                    let _ = std::io::stderr().write_all(&d);
                }
                Some(Event::Result(r)) => result = Some(r),
                None => {}
            },
            Ok(None) => break,
            Err(st) => return Err(Failed::Stream(st)),
        }
    }
    done.result = result.ok_or(Failed::NoResult)?;
    Ok(done)
}

//! One exec request and its event stream, drained the one way both `nanobot exec` and the exec
//! tool use: the pid from `Started`, stdout and stderr collected or mirrored as they arrive, and
//! the `Result` that must end the stream.

use crate::sandbox::client::Client;
use nanobot_proto::pb::{exec_event::Event, ExecRequest, ExecResult};
use std::io::Write;

/// What to do with output as it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Keep it, for the caller to format.
    Collect,
    /// Copy it to this process's stdout and stderr at once, keeping nothing.
    Mirror,
}

/// With `OutputMode::Mirror`: how many bytes of a stream were copied, and the last of them.
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
    /// Empty with `OutputMode::Mirror`.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// What `OutputMode::Mirror` copied of stdout and stderr.
    pub mirrored: [Mirrored; 2],
    pub result: ExecResult,
}

/// An exec that did not get to a result.
#[derive(Debug)]
pub enum Failed {
    /// sandboxd refused the request itself (bad workspace or cwd, no slot, …).
    Request(tonic::Status),
    /// sandboxd ended the stream with an error status of its own before the result (it is
    /// shutting down, …).
    Stream(tonic::Status),
    /// The connection to sandboxd broke (it was killed or crashed), or the stream ended without
    /// a result: `started` says whether `Started` had arrived. `cause` is the transport's own
    /// words, for logs.
    Gone { started: bool, cause: String },
}

/// What the user and the model read when sandboxd went away after `Started`: the sandbox dies
/// with the daemon.
pub const GONE_WHILE_RUNNING: &str = "sandboxd went away while the command ran; it was killed";
/// The same before `Started`.
pub const GONE_BEFORE_START: &str = "sandboxd went away before the command started; it did not run";

/// The sentence for sandboxd gone, after `Started` or before it.
pub fn gone(started: bool) -> &'static str {
    if started {
        GONE_WHILE_RUNNING
    } else {
        GONE_BEFORE_START
    }
}

/// Whether a status is the transport's (the connection broke: a reset, a broken pipe, an HTTP/2
/// error, EOF) rather than one sandboxd sent. tonic attaches the transport error as the source of
/// the statuses it makes itself; a status read from sandboxd's trailers has none.
pub fn is_transport(st: &tonic::Status) -> bool {
    if std::error::Error::source(st).is_some() {
        return true;
    }
    let m = st.message().to_ascii_lowercase();
    matches!(
        st.code(),
        tonic::Code::Unknown
            | tonic::Code::Unavailable
            | tonic::Code::Internal
            | tonic::Code::Cancelled
    ) && [
        "h2 protocol error",
        "transport error",
        "error reading a body",
        "broken pipe",
        "connection reset",
        "connection closed",
        "unexpected end of file",
        "unexpected eof",
    ]
    .iter()
    .any(|w| m.contains(w))
}

/// What the user and the model read when sandboxd refused the connection at one of its caps
/// (it sends HTTP/2 GOAWAY with ENHANCE_YOUR_CALM; the reason it adds is in its log).
pub const OVER_CAP: &str = "sandboxd refused the connection: too many open connections \
    (its max_connections or max_connections_per_uid cap); close idle clients and retry, or ask \
    the operator to raise the cap; it did not run";

/// Whether sandboxd refused the connection at a cap: a GOAWAY from the server with
/// ENHANCE_YOUR_CALM somewhere in the status's causes.
pub fn over_cap(st: &tonic::Status) -> bool {
    let mut cause = std::error::Error::source(st);
    while let Some(e) = cause {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.is_go_away()
                && h2.is_remote()
                && h2.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM);
        }
        cause = e.source();
    }
    false
}

/// A failed call's status in words for the user and the model: sandboxd's own message, or
/// `OVER_CAP` when it refused the connection.
pub fn words(st: &tonic::Status) -> String {
    if over_cap(st) {
        OVER_CAP.to_string()
    } else {
        st.message().to_string()
    }
}

/// Classify a failed status: the transport's means sandboxd went away, unless it refused the
/// connection at a cap (a refusal: nothing ran).
fn failed(st: tonic::Status, started: bool, request: bool) -> Failed {
    if over_cap(&st) {
        Failed::Request(tonic::Status::resource_exhausted(OVER_CAP))
    } else if is_transport(&st) {
        Failed::Gone {
            started,
            cause: st.message().to_string(),
        }
    } else if request {
        Failed::Request(st)
    } else {
        Failed::Stream(st)
    }
}

/// Send `req` and drain the stream to its result.
pub async fn run(
    client: &mut Client,
    req: ExecRequest,
    output: OutputMode,
) -> Result<Finished, Failed> {
    let mut stream = client
        .exec(req)
        .await
        .map_err(|st| failed(st, false, true))?
        .into_inner();
    let mut done = Finished::default();
    let mut started = false;
    let mut result = None;
    loop {
        match stream.message().await {
            Ok(Some(ev)) => match ev.event {
                Some(Event::Started(s)) => {
                    started = true;
                    done.pid = s.pid;
                }
                Some(Event::Stdout(d)) if output == OutputMode::Collect => done.stdout.extend(d),
                Some(Event::Stderr(d)) if output == OutputMode::Collect => done.stderr.extend(d),
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
            Err(st) => return Err(failed(st, started, false)),
        }
    }
    done.result = result.ok_or(Failed::Gone {
        started,
        cause: "the stream ended without a result".into(),
    })?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_connection_is_sandboxd_gone_a_status_it_sent_is_not() {
        let h2 = tonic::Status::unknown("h2 protocol error: error reading a body from connection");
        assert!(is_transport(&h2));
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let st = tonic::Status::from_error(Box::new(io));
        assert!(is_transport(&st), "{st:?}");
        let reset = tonic::Status::unavailable("error trying to connect: Connection reset by peer");
        assert!(is_transport(&reset));
        // sandboxd's own words stay sandboxd's.
        let own = tonic::Status::unavailable("sandboxd is shutting down; the command was killed");
        assert!(!is_transport(&own));
        assert!(!is_transport(&tonic::Status::invalid_argument(
            "cwd x does not exist"
        )));
        assert!(matches!(
            failed(h2.clone(), true, false),
            Failed::Gone { started: true, .. }
        ));
        assert!(matches!(
            failed(h2, false, true),
            Failed::Gone { started: false, .. }
        ));
        assert_eq!(
            gone(true),
            "sandboxd went away while the command ran; it was killed"
        );
        assert_eq!(
            gone(false),
            "sandboxd went away before the command started; it did not run"
        );
        assert!(matches!(failed(own, true, false), Failed::Stream(_)));
    }
}

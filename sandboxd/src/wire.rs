//! Messages between the daemon and a sandbox's init over the per-exec status socket: u32
//! little-endian length, then JSON. The daemon sends one `SandboxSpec`; the sandbox answers with
//! `Report`s. Before it starts the command the sandbox reports `Ready` and waits for the daemon's
//! go (`GO`, one byte): a request the daemon gave up on (it closed its end) never starts. Closing
//! the socket from the daemon side kills the sandbox.

use crate::vocab::Layer;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::io::{self, Read, Write};

/// Upper bound for one frame; specs are far smaller (the request size is capped before).
pub const MAX_FRAME: usize = 4 << 20;

/// The daemon's go, the one byte it sends after the spec: the answer to `Report::Ready`. On cgroup
/// v1 it carries the sandbox cgroup's `tasks` files (SCM_RIGHTS), which the init writes itself
/// into before it starts anything (`crate::cgroups::Entry`).
pub const GO: u8 = b'G';

/// The step a sandbox reports when it could not move itself into its cgroup (the command did
/// not start).
pub const ENTER_CGROUP: &str = "cgroup: the sandbox's init moves itself into its cgroup";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Report {
    /// Everything is set up; the command starts on the daemon's `GO`, and never without it.
    /// `pid`: the host pid of the sandbox's init, for which the daemon sets up the sandbox's
    /// cgroup before the go (`crate::cgroups`).
    Ready { pid: u32 },
    /// The command was executed; `pid` is the host pid of the sandbox's init.
    Started {
        pid: u32,
        /// Layers the config allowed to be missing and that were missing, with the reason.
        #[serde(default)]
        degraded: Vec<String>,
    },
    /// Setup failed before the command ran: which layer, which step, which errno.
    Failed {
        /// Sent as its string (`Layer::as_str`).
        layer: Layer,
        step: String,
        errno: i32,
        message: String,
    },
    /// The command ended (or was killed).
    Exited {
        code: i32,
        signal: i32,
        timed_out: bool,
        maxrss_kb: u64,
        cpu_us: u64,
        /// The sandbox went over its write budget (`SandboxSpec::write_budget_bytes`): killed
        /// for it, or over by the time it ended.
        #[serde(default)]
        disk_over: bool,
        /// Bytes its processes wrote to storage, when a write budget was accounted.
        #[serde(default)]
        written_bytes: u64,
        /// Why the write counters could not be read, when they could not (`disk_over` is set:
        /// the budget fails closed).
        #[serde(default)]
        disk_unreadable: Option<String>,
    },
}

pub fn encode<T: Serialize>(v: &T) -> io::Result<Vec<u8>> {
    let body = serde_json::to_vec(v).map_err(io::Error::other)?;
    if body.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame too large",
        ));
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

pub fn write_frame<T: Serialize>(w: &mut impl Write, v: &T) -> io::Result<()> {
    w.write_all(&encode(v)?)
}

pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> io::Result<T> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    serde_json::from_slice(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

pub fn decode<T: DeserializeOwned>(body: &[u8]) -> io::Result<T> {
    serde_json::from_slice(body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let r = Report::Failed {
            layer: Layer::Landlock,
            step: "restrict_self".into(),
            errno: 1,
            message: "x".into(),
        };
        let bytes = encode(&r).unwrap();
        let back: Report = read_frame(&mut &bytes[..]).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn oversized_length_is_rejected() {
        let bytes = (u32::MAX).to_le_bytes();
        let e = read_frame::<Report>(&mut &bytes[..]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}

//! Give the heap the daemon freed back to the kernel once it is idle. A burst of connections and
//! execs grows the allocator's arenas (one per worker thread); glibc keeps what was freed in them
//! for reuse, so without this the daemon's RSS stays at its peak (measured: +4 MB after 64
//! concurrent clients, for good).

use crate::api::conns;
use std::time::Duration;

/// How long no request may have been in flight before the heap is trimmed: a steady stream of
/// requests is not slowed by trimming between them.
pub const QUIET: Duration = Duration::from_secs(1);

/// Trim after every quiet period that follows requests; at most once per `QUIET`.
pub async fn run() {
    loop {
        conns::all_ended().await;
        tokio::time::sleep(QUIET).await;
        if conns::all_in_flight() == 0 {
            trim();
        }
    }
}

#[cfg(target_env = "gnu")]
fn trim() {
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(target_env = "gnu"))]
fn trim() {}

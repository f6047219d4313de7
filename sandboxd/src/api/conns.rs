//! Connections cannot starve the daemon: caps on the connections open in total and per peer uid
//! (`ConnLimits`), deadlines for the HTTP/2 handshake and for idleness (`Deadlines`, applied by
//! `PeerConn`), the count of requests in flight on each connection (`Activity`, kept by the
//! `InFlightLayer` around every service, so a silent exec is never taken for idleness), and the
//! pieces the accept loop uses: `Backoff` and the rate limiter for its warnings (`WarnEvery`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Total,
    PerUid,
}

impl Cap {
    /// The config key that sets it.
    pub fn key(self) -> &'static str {
        match self {
            Cap::Total => "max_connections",
            Cap::PerUid => "max_connections_per_uid",
        }
    }
}

/// The uid a peer without credentials is counted under (the interceptor refuses it anyway).
const UNKNOWN_UID: u32 = u32::MAX;

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_uid: HashMap<u32, usize>,
}

/// The connections open, in total and per peer uid, against their caps.
#[derive(Debug)]
pub struct ConnLimits {
    pub max_total: usize,
    pub max_per_uid: usize,
    counts: Mutex<Counts>,
}

/// One open connection's place under the caps; given back when dropped.
#[derive(Debug)]
pub struct ConnSlot {
    limits: Arc<ConnLimits>,
    uid: u32,
}

impl ConnLimits {
    pub fn new(max_total: usize, max_per_uid: usize) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            max_total,
            max_per_uid,
            counts: Mutex::new(Counts::default()),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a new connection from `uid`, or the cap it would exceed.
    pub fn try_take(self: &Arc<Self>, uid: Option<u32>) -> Result<ConnSlot, Cap> {
        let uid = uid.unwrap_or(UNKNOWN_UID);
        let mut c = self.counts();
        if c.total >= self.max_total {
            return Err(Cap::Total);
        }
        let n = c.per_uid.entry(uid).or_insert(0);
        if *n >= self.max_per_uid {
            if *n == 0 {
                c.per_uid.remove(&uid);
            }
            return Err(Cap::PerUid);
        }
        *n += 1;
        c.total += 1;
        Ok(ConnSlot {
            limits: self.clone(),
            uid,
        })
    }

    /// Connections open now, in total.
    pub fn open(&self) -> usize {
        self.counts().total
    }

    /// Connections open now from `uid`.
    pub fn open_for(&self, uid: u32) -> usize {
        self.counts().per_uid.get(&uid).copied().unwrap_or(0)
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut c = self.limits.counts();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_uid.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_uid.remove(&self.uid);
            }
        }
    }
}

/// The requests in flight on one connection (a request counts until its response, stream
/// included, has been sent or dropped).
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: AtomicUsize,
    /// When a request last ended: the idle clock starts from there, not from the connection's
    /// last byte (a silent exec writes nothing for a long time, and its result may still sit in
    /// the connection's buffers when its guard is dropped).
    last_ended: Mutex<Option<Instant>>,
}

/// One request in flight; the count goes down when it is dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

/// Requests in flight on every connection together, and the signal that the count fell to zero
/// (what `daemon::trim` waits for).
static ALL_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static ALL_ENDED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Requests in flight on every connection together.
pub fn all_in_flight() -> usize {
    ALL_IN_FLIGHT.load(Ordering::SeqCst)
}

/// Wait until the last request in flight (on any connection) ends; returns at once if that
/// happened since the previous call returned.
pub async fn all_ended() {
    ALL_ENDED.notified().await
}

impl Activity {
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        ALL_IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub fn last_ended(&self) -> Option<Instant> {
        self.last_ended.lock().ok().and_then(|t| *t)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut t) = self.0.last_ended.lock() {
            *t = Some(Instant::now());
        }
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        if ALL_IN_FLIGHT.fetch_sub(1, Ordering::SeqCst) == 1 {
            ALL_ENDED.notify_one();
        }
    }
}

/// How long a client may take to finish the handshake, and to sit idle.
#[derive(Debug, Clone, Copy)]
pub struct ConnTimeouts {
    pub handshake: Duration,
    pub idle: Duration,
}

/// Why a connection is closed by its deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    Handshake,
    Idle,
}

/// What a connection's deadlines say now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing is due before this instant.
    Wait(Instant),
    Close(Expired),
}

/// One connection's deadlines: the handshake from when it was accepted, idleness from its last
/// byte either way (or the end of its last request).
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub accepted: Instant,
    pub last_activity: Instant,
    pub handshake_done: bool,
}

impl Deadlines {
    pub fn new(now: Instant) -> Deadlines {
        Deadlines {
            accepted: now,
            last_activity: now,
            handshake_done: false,
        }
    }

    /// The verdict at `now` with `in_flight` requests running. A request in flight counts as
    /// activity: the idle clock starts again from when the last one ends.
    pub fn check(&mut self, t: &ConnTimeouts, in_flight: usize, now: Instant) -> Verdict {
        if !self.handshake_done {
            let due = self.accepted + t.handshake;
            return if now >= due {
                Verdict::Close(Expired::Handshake)
            } else {
                Verdict::Wait(due)
            };
        }
        if in_flight > 0 {
            self.last_activity = self.last_activity.max(now);
        }
        let due = self.last_activity + t.idle;
        if now >= due {
            Verdict::Close(Expired::Idle)
        } else {
            Verdict::Wait(due)
        }
    }
}

/// Exponential backoff between failed accepts: `min`, doubling, at most `max`; `reset` after a
/// success.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// At most one warning per `period`; the ones held back are counted and reported with the next.
#[derive(Debug)]
pub struct WarnEvery {
    period: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl WarnEvery {
    pub fn new(period: Duration) -> WarnEvery {
        WarnEvery {
            period,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(held back since the last warning)` when a warning may be logged at `now`.
    pub fn ready(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match s.0 {
            Some(last) if now.saturating_duration_since(last) < self.period => {
                s.1 += 1;
                None
            }
            _ => {
                let held = s.1;
                *s = (Some(now), 0);
                Some(held)
            }
        }
    }
}

/// What every connection shares: the caps, the deadlines, and the rate limiters of the warnings
/// about closing connections.
#[derive(Debug)]
pub struct ConnShared {
    pub limits: Arc<ConnLimits>,
    pub timeouts: ConnTimeouts,
    pub handshake_warn: WarnEvery,
    pub idle_log: WarnEvery,
}

/// How often a kind of connection warning may be logged.
pub const WARN_PERIOD: Duration = Duration::from_secs(5);

impl ConnShared {
    pub fn new(limits: Arc<ConnLimits>, timeouts: ConnTimeouts) -> Arc<ConnShared> {
        Arc::new(ConnShared {
            limits,
            timeouts,
            handshake_warn: WarnEvery::new(WARN_PERIOD),
            idle_log: WarnEvery::new(WARN_PERIOD),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_a_request_restarts_the_idle_clock() {
        let a = Arc::new(Activity::default());
        assert_eq!(a.last_ended(), None);
        let before = Instant::now();
        let g = a.begin();
        assert_eq!((a.in_flight(), a.last_ended()), (1, None));
        drop(g);
        assert_eq!(a.in_flight(), 0);
        assert!(a.last_ended().is_some_and(|t| t >= before));
    }

    #[test]
    fn caps_count_in_total_and_per_uid_and_free_on_drop() {
        let l = ConnLimits::new(3, 2);
        let a1 = l.try_take(Some(1)).unwrap();
        let a2 = l.try_take(Some(1)).unwrap();
        assert_eq!(l.try_take(Some(1)).unwrap_err(), Cap::PerUid);
        let b1 = l.try_take(Some(2)).unwrap();
        assert_eq!(l.open(), 3);
        assert_eq!(l.try_take(Some(3)).unwrap_err(), Cap::Total);
        // A refusal takes nothing.
        assert_eq!((l.open(), l.open_for(1), l.open_for(3)), (3, 2, 0));
        drop(a1);
        assert_eq!((l.open(), l.open_for(1)), (2, 1));
        let c1 = l.try_take(Some(3)).unwrap();
        assert_eq!(l.try_take(None).unwrap_err(), Cap::Total);
        drop((a2, b1, c1));
        assert_eq!(l.open(), 0);
        assert!(l.counts().per_uid.is_empty(), "no entries left behind");
        // Peers without credentials share one uid's cap.
        let n1 = l.try_take(None).unwrap();
        let n2 = l.try_take(None).unwrap();
        assert_eq!(l.try_take(None).unwrap_err(), Cap::PerUid);
        drop((n1, n2));
        assert_eq!(l.open(), 0);
        assert_eq!(Cap::PerUid.key(), "max_connections_per_uid");
    }

    #[test]
    fn backoff_doubles_to_its_ceiling_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
        let ms: Vec<u128> = (0..9).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ms, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(10));
    }

    #[test]
    fn warnings_come_at_most_once_a_period_with_the_count_held_back() {
        let w = WarnEvery::new(Duration::from_secs(5));
        let t = Instant::now();
        assert_eq!(w.ready(t), Some(0));
        assert_eq!(w.ready(t + Duration::from_secs(1)), None);
        assert_eq!(w.ready(t + Duration::from_secs(4)), None);
        assert_eq!(w.ready(t + Duration::from_secs(5)), Some(2));
        assert_eq!(w.ready(t + Duration::from_secs(6)), None);
        assert_eq!(w.ready(t + Duration::from_secs(11)), Some(1));
    }

    #[test]
    fn deadlines_close_slow_handshakes_and_idle_connections_but_not_busy_ones() {
        let t = ConnTimeouts {
            handshake: Duration::from_secs(10),
            idle: Duration::from_secs(300),
        };
        let s = |n: u64| Duration::from_secs(n);
        let t0 = Instant::now();
        let mut d = Deadlines::new(t0);
        assert_eq!(d.check(&t, 0, t0 + s(3)), Verdict::Wait(t0 + s(10)));
        // A request in flight does not stand for the handshake.
        assert_eq!(
            d.check(&t, 1, t0 + s(10)),
            Verdict::Close(Expired::Handshake)
        );
        let mut d = Deadlines::new(t0);
        d.handshake_done = true;
        d.last_activity = t0 + s(5);
        assert_eq!(d.check(&t, 0, t0 + s(100)), Verdict::Wait(t0 + s(305)));
        assert_eq!(d.check(&t, 0, t0 + s(305)), Verdict::Close(Expired::Idle));
        // A silent request in flight keeps it open, and the idle clock starts again after it.
        let mut d = Deadlines::new(t0);
        d.handshake_done = true;
        assert_eq!(d.check(&t, 1, t0 + s(1000)), Verdict::Wait(t0 + s(1300)));
        assert_eq!(d.check(&t, 0, t0 + s(1200)), Verdict::Wait(t0 + s(1300)));
        assert_eq!(d.check(&t, 0, t0 + s(1300)), Verdict::Close(Expired::Idle));
    }
}

//! The time the engine reads. In production, the system's: wall-clock time for what is stored
//! (compared with other processes' times) and a monotonic clock for the loop's periods (a
//! wall-clock jump must not stall heartbeats). In tests, a manual clock the test moves, so
//! that retries, backoff and reschedules are tested without waiting — and without tokio's
//! paused time, which would also fire the database pool's timeouts while a query waits on
//! SQLite's worker thread. [`Every`] measures the loop's periods on [`Clock::monotonic`].

use std::time::{Duration, Instant};

use updraft_db::Timestamp;

/// Where "now" comes from.
#[derive(Debug, Clone)]
pub(super) enum Clock {
    /// The system's clocks; `start` is when the engine started.
    System { start: Instant },
    /// A time the test sets (µs since the epoch), shared with the test.
    #[cfg(test)]
    Manual(std::sync::Arc<std::sync::atomic::AtomicI64>),
}

impl Clock {
    /// The system's clocks.
    pub(super) fn system() -> Clock {
        Clock::System { start: Instant::now() }
    }

    /// The current time, as stored.
    pub(super) fn now(&self) -> Timestamp {
        match self {
            Clock::System { .. } => Timestamp::now(),
            #[cfg(test)]
            Clock::Manual(us) => Timestamp::from_micros(us.load(std::sync::atomic::Ordering::SeqCst)),
        }
    }

    /// Time since a fixed start, never going back: what the loop's periods are measured on.
    pub(super) fn monotonic(&self) -> Duration {
        match self {
            Clock::System { start } => start.elapsed(),
            #[cfg(test)]
            Clock::Manual(us) => {
                Duration::from_micros(u64::try_from(us.load(std::sync::atomic::Ordering::SeqCst)).unwrap_or(0))
            }
        }
    }
}

/// Something a loop does at most once per period (measured on [`Clock::monotonic`]).
#[derive(Debug)]
pub(super) struct Every {
    period: Duration,
    last: Option<Duration>,
}

impl Every {
    pub(super) fn new(period: Duration) -> Every {
        Every { period, last: None }
    }

    /// True (and the period starts again) if it never ran or its period has passed by `now`.
    pub(super) fn due(&mut self, now: Duration) -> bool {
        if self.last.is_some_and(|t| now.saturating_sub(t) < self.period) {
            return false;
        }
        self.last = Some(now);
        true
    }

    /// The period starts again at `now`.
    pub(super) fn restart(&mut self, now: Duration) {
        self.last = Some(now);
    }
}

/// The periods of what the loop does less often than every loop.
#[derive(Debug)]
pub(super) struct Timers {
    /// Heartbeat, and adoption of runs of gone schedulers.
    pub(super) heartbeat: Every,
    /// Timetables change by the minute at most.
    pub(super) timetables: Every,
    /// Triggers should start within a blink, but claiming costs a query.
    pub(super) claim: Every,
    /// Clear and mark requests.
    pub(super) requests: Every,
    /// Counting task states walks every task of the active runs.
    pub(super) state_count: Every,
}

//! The time the engine reads. In production, the system's: wall-clock time for what is stored
//! (compared with other processes' times) and a monotonic clock for the loop's periods (a
//! wall-clock jump must not stall heartbeats). In tests, a manual clock the test moves, so
//! that retries, backoff and reschedules are tested without waiting — and without tokio's
//! paused time, which would also fire the database pool's timeouts while a query waits on
//! SQLite's worker thread.

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

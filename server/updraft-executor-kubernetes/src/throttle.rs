//! The creation throttle: pod creates go out `1 / creates_per_second` apart, and a
//! `Retry-After` from the API server pauses them all.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::executor::lock;

/// Spaces pod creates `1 / creates_per_second` apart and pauses them all after a
/// `Retry-After`.
pub(crate) struct Throttle {
    interval: Duration,
    state: Mutex<ThrottleState>,
}

struct ThrottleState {
    next: Instant,
    paused_until: Option<Instant>,
}

impl Throttle {
    pub(crate) fn new(per_second: f64) -> Throttle {
        let interval = if per_second.is_finite() && per_second > 0.0 {
            Duration::from_secs_f64(1.0 / per_second)
        } else {
            Duration::ZERO
        };
        Throttle { interval, state: Mutex::new(ThrottleState { next: Instant::now(), paused_until: None }) }
    }

    /// Waits for this create's slot, and for any pause.
    pub(crate) async fn wait(&self) {
        let slot = {
            let mut state = lock(&self.state);
            let slot = state.next.max(Instant::now());
            state.next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
        loop {
            let paused_until = lock(&self.state).paused_until;
            match paused_until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => return,
            }
        }
    }

    pub(crate) fn pause_for(&self, duration: Duration) {
        let until = Instant::now() + duration;
        let mut state = lock(&self.state);
        state.paused_until = Some(state.paused_until.map_or(until, |p| p.max(until)));
        state.next = state.next.max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_throttle_spaces_creates_and_pauses_after_retry_after() {
        let throttle = Throttle::new(10.0);
        let start = Instant::now();
        for _ in 0..20 {
            throttle.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(1900));
        throttle.pause_for(Duration::from_secs(3));
        let paused = Instant::now();
        throttle.wait().await;
        assert!(paused.elapsed() >= Duration::from_secs(3));
    }
}

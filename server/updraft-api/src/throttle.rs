//! Failed sign-ins per username: after [`MAX_FAILURES`] wrong passwords within [`WINDOW`], the
//! username is refused (429, with `Retry-After`) until the window ends, without checking the
//! password, so guessing a password over the API is slow. A success clears the count. The
//! counts live in the API server's memory (each replica counts its own) and the table is
//! bounded: expired entries go first, and when it is full the oldest entry is dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed sign-ins of one username within [`WINDOW`] after which it is refused for a while.
pub const MAX_FAILURES: u32 = 10;
/// The window failed sign-ins are counted in.
pub const WINDOW: Duration = Duration::from_secs(300);
const MAX_ENTRIES: usize = 10_000;

/// Failures by username: how many, and when the first of the window was.
#[derive(Debug, Default)]
pub struct SignInThrottle(Mutex<HashMap<String, (u32, Instant)>>);

impl SignInThrottle {
    /// How long `username` must wait, if it is locked out now.
    pub fn locked(&self, username: &str) -> Option<Duration> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let &(failures, since) = map.get(username)?;
        let left = WINDOW.checked_sub(since.elapsed())?;
        (failures >= MAX_FAILURES).then_some(left)
    }

    /// Counts a failed sign-in.
    pub fn failed(&self, username: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES && !map.contains_key(username) {
            map.retain(|_, (_, since)| since.elapsed() < WINDOW);
            if map.len() >= MAX_ENTRIES
                && let Some(oldest) = map.iter().min_by_key(|(_, (_, since))| *since).map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(username.to_owned()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// Forgets a username's failures after it signed in.
    pub fn succeeded(&self, username: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(username);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_lock_a_username_and_a_success_clears_it() {
        let throttle = SignInThrottle::default();
        for _ in 0..MAX_FAILURES - 1 {
            throttle.failed("ann");
        }
        assert!(throttle.locked("ann").is_none());
        throttle.failed("ann");
        assert!(throttle.locked("ann").is_some_and(|left| left <= WINDOW));
        assert!(throttle.locked("bob").is_none(), "per username");
        throttle.succeeded("ann");
        assert!(throttle.locked("ann").is_none());
    }
}

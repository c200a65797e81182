//! How long a failed try waits before the next one: `retry_delay`, optionally doubled per try
//! (`retry_exponential_backoff`) with a deterministic jitter, capped by `max_retry_delay`.

use std::time::Duration;

/// The cap on a backoff when the task sets no `max_retry_delay`.
pub const DEFAULT_MAX_RETRY_DELAY: Duration = Duration::from_secs(24 * 3600);

/// The wait after try number `failed_try` (1 for the first try) failed.
///
/// With exponential backoff the wait is `delay × 2^(try-1)` plus a jitter in `[0, that)`, as
/// Airflow computes it, so that many tasks failing together do not retry in lockstep. The
/// jitter is derived from `identity` (dag, task, run, try), so the same try always waits the
/// same time: a scheduler restart does not reshuffle retries.
pub fn retry_wait(
    delay: Duration,
    exponential: bool,
    max_delay: Option<Duration>,
    failed_try: u32,
    identity: &str,
) -> Duration {
    if !exponential {
        return delay;
    }
    let cap = max_delay.unwrap_or(DEFAULT_MAX_RETRY_DELAY);
    let exponent = failed_try.saturating_sub(1).min(40);
    let base_ms = delay.as_millis().saturating_mul(1u128 << exponent).max(1);
    let jitter_ms = u128::from(crate::fnv::hash(identity)) % base_ms;
    let total_ms = base_ms.saturating_add(jitter_ms);
    let total = Duration::from_millis(u64::try_from(total_ms).unwrap_or(u64::MAX));
    total.min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_MIN: Duration = Duration::from_secs(300);

    #[test]
    fn fixed_delay() {
        assert_eq!(retry_wait(FIVE_MIN, false, None, 1, "x"), FIVE_MIN);
        assert_eq!(retry_wait(FIVE_MIN, false, None, 7, "x"), FIVE_MIN);
    }

    #[test]
    fn exponential_backoff_doubles_with_jitter_and_a_cap() {
        for try_number in 1..=5u32 {
            let base = FIVE_MIN * 2u32.pow(try_number - 1);
            let wait = retry_wait(FIVE_MIN, true, None, try_number, &format!("d#t#r#{try_number}"));
            assert!(wait >= base && wait < base * 2, "try {try_number}: {wait:?}");
        }
        assert_eq!(retry_wait(FIVE_MIN, true, Some(Duration::from_secs(600)), 6, "x"), Duration::from_secs(600));
        assert_eq!(retry_wait(FIVE_MIN, true, None, 1000, "x"), DEFAULT_MAX_RETRY_DELAY);
    }

    #[test]
    fn jitter_is_deterministic() {
        let a = retry_wait(FIVE_MIN, true, None, 3, "dag#task#run#3");
        assert_eq!(a, retry_wait(FIVE_MIN, true, None, 3, "dag#task#run#3"));
    }
}

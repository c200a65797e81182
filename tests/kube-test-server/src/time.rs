//! Timestamps in the two formats the API uses: RFC 3339 seconds for object fields, RFC 3339
//! with nanoseconds for log lines and `eventTime`.

use chrono::{DateTime, SecondsFormat, Utc};

pub(crate) fn now() -> DateTime<Utc> {
    Utc::now()
}

/// `2025-01-02T03:04:05Z`, as in `metadata.creationTimestamp` and container states.
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `2025-01-02T03:04:05.123456789Z`, as in `kubectl logs --timestamps`.
pub(crate) fn rfc3339_nanos(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub(crate) fn now_rfc3339() -> String {
    rfc3339(now())
}

//! Timetables: which scheduled run is due next, with its data interval.
//!
//! A cron schedule cuts time into intervals between consecutive fire times, in the DAG's time
//! zone (so `0 3 * * *` fires at 03:00 local time across daylight-saving changes). The run for an
//! interval is created once the interval has ended, and its logical date (`{{ ds }}`) is the
//! interval's start, as in Airflow 2's data-interval timetables. Without `catchup` only the most
//! recent complete interval runs; with it, every interval since `start` runs in order.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use updraft_dag::Schedule;
use updraft_dag::schedule::{next_fire, previous_fire};

/// The span of data a run covers: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataInterval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// The settings of a DAG that its timetable reads.
#[derive(Debug, Clone, Copy)]
pub struct TimetableSpec<'a> {
    pub schedule: &'a Schedule,
    pub timezone: Tz,
    pub start: Option<NaiveDateTime>,
    pub end: Option<NaiveDateTime>,
    pub catchup: bool,
}

impl<'a> TimetableSpec<'a> {
    /// The timetable of a DAG's schedule.
    pub fn of(dag: &'a updraft_dag::Dag) -> Self {
        TimetableSpec {
            schedule: &dag.schedule,
            timezone: dag.timezone,
            start: dag.start,
            end: dag.end,
            catchup: dag.catchup,
        }
    }
}

/// Reads a local date-time in `tz`; a time skipped by a daylight-saving jump moves forward to
/// the first valid instant, an ambiguous one takes the earlier.
fn local(tz: Tz, naive: NaiveDateTime) -> DateTime<Tz> {
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => t,
        chrono::LocalResult::Ambiguous(earlier, _) => earlier,
        chrono::LocalResult::None => {
            let later = naive + chrono::Duration::hours(1);
            tz.from_local_datetime(&later).earliest().unwrap_or_else(|| tz.from_utc_datetime(&naive))
        }
    }
}

/// The data intervals of a cron schedule whose start lies in `[from, to]`, in order, at most
/// `limit` of them (a backfill). Other schedules have no intervals.
pub fn intervals_between(
    spec: TimetableSpec<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: usize,
) -> Vec<DataInterval> {
    let Schedule::Cron { cron, .. } = spec.schedule else { return Vec::new() };
    let tz = spec.timezone;
    let mut out = Vec::new();
    let mut next = next_fire(cron, tz, from, true);
    while let Some(start) = next {
        if start > to || out.len() >= limit {
            break;
        }
        let Some(end) = next_fire(cron, tz, start, false) else { break };
        out.push(DataInterval { start, end });
        next = Some(end);
    }
    out
}

/// The next scheduled run that is due at `now`, given the data interval of the latest
/// scheduled run so far (`last`), or `None` when nothing is due yet.
pub fn next_scheduled_run(
    spec: TimetableSpec<'_>,
    last: Option<DataInterval>,
    now: DateTime<Utc>,
) -> Option<DataInterval> {
    let tz = spec.timezone;
    let start = spec.start.map(|s| local(tz, s).with_timezone(&Utc));
    let end = spec.end.map(|e| local(tz, e).with_timezone(&Utc));
    let interval = match spec.schedule {
        Schedule::None => return None,
        Schedule::Once => {
            let at = start.unwrap_or(now);
            if last.is_some() || at > now {
                return None;
            }
            DataInterval { start: at, end: at }
        }
        Schedule::Cron { cron, .. } => {
            // Where the next interval may begin: after the last run, and not before `start`.
            let earliest = match (last, start) {
                (Some(last), Some(start)) => last.end.max(start),
                (Some(last), None) => last.end,
                (None, Some(start)) => start,
                (None, None) => previous_fire(cron, tz, now, true)?,
            };
            let first_start = next_fire(cron, tz, earliest, true)?;
            let candidate = if spec.catchup {
                first_start
            } else {
                // Only the most recent complete interval: the one ending at the last fire <= now.
                let latest_end = previous_fire(cron, tz, now, true)?;
                let latest_start = previous_fire(cron, tz, latest_end, false)?;
                latest_start.max(first_start)
            };
            let interval_end = next_fire(cron, tz, candidate, false)?;
            DataInterval { start: candidate, end: interval_end }
        }
    };
    if interval.end > now {
        return None;
    }
    if end.is_some_and(|end| interval.start > end) {
        return None;
    }
    Some(interval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).single().expect("valid date")
    }

    fn naive(y: i32, m: u32, d: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d).and_then(|d| d.and_hms_opt(0, 0, 0)).expect("valid date")
    }

    fn daily() -> Schedule {
        Schedule::parse("@daily").expect("preset")
    }

    #[test]
    fn a_backfill_covers_the_intervals_starting_in_its_range() {
        let schedule = daily();
        let spec = TimetableSpec { schedule: &schedule, timezone: Tz::UTC, start: None, end: None, catchup: false };
        let got = intervals_between(spec, at(2026, 3, 1, 0), at(2026, 3, 3, 0), 100);
        let starts: Vec<_> = got.iter().map(|i| i.start).collect();
        assert_eq!(starts, [at(2026, 3, 1, 0), at(2026, 3, 2, 0), at(2026, 3, 3, 0)]);
        assert_eq!(got[2].end, at(2026, 3, 4, 0));
        // From mid-day, the first interval is the next midnight's; the limit caps the count.
        assert_eq!(intervals_between(spec, at(2026, 3, 1, 5), at(2026, 3, 9, 0), 2)[0].start, at(2026, 3, 2, 0));
        assert_eq!(intervals_between(spec, at(2026, 3, 1, 5), at(2026, 3, 9, 0), 2).len(), 2);
        let none = Schedule::None;
        assert!(
            intervals_between(TimetableSpec { schedule: &none, ..spec }, at(2026, 3, 1, 0), at(2026, 3, 9, 0), 9)
                .is_empty()
        );
    }

    #[test]
    fn catchup_walks_every_interval_from_start() {
        let schedule = daily();
        let spec = TimetableSpec {
            schedule: &schedule,
            timezone: Tz::UTC,
            start: Some(naive(2026, 1, 1)),
            end: None,
            catchup: true,
        };
        let now = at(2026, 1, 4, 12);
        let mut last = None;
        let mut runs = Vec::new();
        while let Some(interval) = next_scheduled_run(spec, last, now) {
            runs.push(interval);
            last = Some(interval);
        }
        assert_eq!(
            runs,
            vec![
                DataInterval { start: at(2026, 1, 1, 0), end: at(2026, 1, 2, 0) },
                DataInterval { start: at(2026, 1, 2, 0), end: at(2026, 1, 3, 0) },
                DataInterval { start: at(2026, 1, 3, 0), end: at(2026, 1, 4, 0) },
            ]
        );
    }

    #[test]
    fn without_catchup_only_the_latest_interval_runs() {
        let schedule = daily();
        let spec = TimetableSpec {
            schedule: &schedule,
            timezone: Tz::UTC,
            start: Some(naive(2026, 1, 1)),
            end: None,
            catchup: false,
        };
        let now = at(2026, 3, 10, 12);
        let first = next_scheduled_run(spec, None, now).expect("due");
        assert_eq!(first, DataInterval { start: at(2026, 3, 9, 0), end: at(2026, 3, 10, 0) });
        assert_eq!(next_scheduled_run(spec, Some(first), now), None, "the next interval has not ended");
        let later = at(2026, 3, 12, 1);
        assert_eq!(
            next_scheduled_run(spec, Some(first), later),
            Some(DataInterval { start: at(2026, 3, 11, 0), end: at(2026, 3, 12, 0) }),
            "missed intervals are skipped"
        );
    }

    #[test]
    fn cron_fires_in_the_dag_time_zone() {
        let schedule = Schedule::parse("0 3 * * *").expect("cron");
        let tz: Tz = "America/Sao_Paulo".parse().expect("tz");
        let spec = TimetableSpec {
            schedule: &schedule,
            timezone: tz,
            start: Some(naive(2026, 1, 1)),
            end: None,
            catchup: true,
        };
        let first = next_scheduled_run(spec, None, at(2026, 1, 3, 0)).expect("due");
        // 03:00 in São Paulo (UTC-3) is 06:00 UTC.
        assert_eq!(first, DataInterval { start: at(2026, 1, 1, 6), end: at(2026, 1, 2, 6) });
    }

    #[test]
    fn end_date_and_once_and_none() {
        let schedule = daily();
        let spec = TimetableSpec {
            schedule: &schedule,
            timezone: Tz::UTC,
            start: Some(naive(2026, 1, 1)),
            end: Some(naive(2026, 1, 1)),
            catchup: true,
        };
        let first = next_scheduled_run(spec, None, at(2026, 2, 1, 0)).expect("due");
        assert_eq!(next_scheduled_run(spec, Some(first), at(2026, 2, 1, 0)), None);

        let once = Schedule::Once;
        let spec = TimetableSpec {
            schedule: &once,
            timezone: Tz::UTC,
            start: Some(naive(2026, 1, 1)),
            end: None,
            catchup: false,
        };
        let run = next_scheduled_run(spec, None, at(2026, 1, 5, 0)).expect("once");
        assert_eq!(run.start, at(2026, 1, 1, 0));
        assert_eq!(next_scheduled_run(spec, Some(run), at(2026, 1, 5, 0)), None);

        let none = Schedule::None;
        let spec = TimetableSpec { schedule: &none, timezone: Tz::UTC, start: None, end: None, catchup: false };
        assert_eq!(next_scheduled_run(spec, None, at(2026, 1, 5, 0)), None);
    }

    #[test]
    fn start_in_the_future_waits() {
        let schedule = daily();
        let spec = TimetableSpec {
            schedule: &schedule,
            timezone: Tz::UTC,
            start: Some(naive(2027, 1, 1)),
            end: None,
            catchup: false,
        };
        assert_eq!(next_scheduled_run(spec, None, at(2026, 6, 1, 0)), None);
    }
}

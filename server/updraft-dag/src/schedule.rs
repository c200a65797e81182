//! Schedules and time zones: cron expressions, `@daily`-style presets, or none (triggered only),
//! and when a cron schedule fires, read in the DAG's time zone. The caller says what time it is:
//! this module never reads the clock.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// When a DAG runs on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Only when triggered (`schedule: null`).
    None,
    /// One run at the start date (`@once`).
    Once,
    /// A cron expression (presets are stored as their expression, `@daily` = `0 0 * * *`).
    Cron { expression: String, cron: Box<Cron> },
}

impl Schedule {
    /// Parses a cron expression or a preset.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        let expression = match text {
            "@once" => return Ok(Schedule::Once),
            "@none" | "none" => return Ok(Schedule::None),
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@quarterly" => "0 0 1 */3 *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            other if other.starts_with('@') => {
                return Err(format!(
                    "unknown schedule preset `{other}`: use @hourly, @daily, @weekly, @monthly, @quarterly, @yearly, @once, a cron expression, or null"
                ));
            }
            other => other,
        };
        let fields = expression.split_whitespace().count();
        if fields != 5 {
            return Err(format!(
                "invalid cron expression `{text}`: expected 5 fields (minute hour day-of-month month day-of-week), found {fields}"
            ));
        }
        let cron = Cron::from_str(expression).map_err(|e| {
            let reason = e.to_string();
            if reason.contains("out of bounds") {
                format!("invalid cron expression `{text}`: a field is out of range (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7)")
            } else {
                format!("invalid cron expression `{text}`: {reason}")
            }
        })?;
        Ok(Schedule::Cron { expression: text.to_owned(), cron: Box::new(cron) })
    }

    /// The text form, as written (`null` for none).
    pub fn describe(&self) -> String {
        match self {
            Schedule::None => "null".to_owned(),
            Schedule::Once => "@once".to_owned(),
            Schedule::Cron { expression, .. } => expression.clone(),
        }
    }
}

/// Parses an IANA time zone name such as `America/Sao_Paulo` or `UTC`.
pub fn parse_timezone(text: &str) -> Result<Tz, String> {
    Tz::from_str(text.trim()).map_err(|_| {
        format!("unknown time zone `{text}`: use an IANA name such as UTC, Europe/Paris or America/Sao_Paulo")
    })
}

/// The first time `cron` fires after `after` (or at it, when `inclusive`), read in `tz`.
pub fn next_fire(cron: &Cron, tz: Tz, after: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after.with_timezone(&tz), inclusive).ok().map(|t| t.with_timezone(&Utc))
}

/// The last time `cron` fired before `before` (or at it, when `inclusive`), read in `tz`.
pub fn previous_fire(cron: &Cron, tz: Tz, before: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
    cron.find_previous_occurrence(&before.with_timezone(&tz), inclusive).ok().map(|t| t.with_timezone(&Utc))
}

/// When a cron schedule next fires after `now` (in the DAG's time zone): the moment the next
/// scheduled run becomes due. Other schedules never fire on their own.
pub fn next_fire_after(schedule: &Schedule, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let Schedule::Cron { cron, .. } = schedule else { return None };
    next_fire(cron, tz, now, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn presets_and_cron() {
        assert_eq!(Schedule::parse("@once"), Ok(Schedule::Once));
        assert!(matches!(Schedule::parse("@daily"), Ok(Schedule::Cron { .. })));
        assert!(matches!(Schedule::parse("0 3 * * 1-5"), Ok(Schedule::Cron { .. })));
    }

    #[test]
    fn bad_cron_says_why() {
        let err = Schedule::parse("0 3 * *").expect_err("4 fields");
        assert_eq!(
            err,
            "invalid cron expression `0 3 * *`: expected 5 fields (minute hour day-of-month month day-of-week), found 4"
        );
        let err = Schedule::parse("0 25 * * *").expect_err("hour 25");
        assert!(err.starts_with("invalid cron expression `0 25 * * *`"), "{err}");
        assert!(Schedule::parse("@fortnightly").expect_err("preset").contains("unknown schedule preset"));
    }

    #[test]
    fn time_zones() {
        assert!(parse_timezone("America/Sao_Paulo").is_ok());
        assert_eq!(
            parse_timezone("Mars/Olympus").expect_err("bad"),
            "unknown time zone `Mars/Olympus`: use an IANA name such as UTC, Europe/Paris or America/Sao_Paulo"
        );
    }

    #[test]
    fn a_cron_schedule_next_fires_in_its_time_zone() {
        let at = |h, m| Utc.with_ymd_and_hms(2026, 1, 3, h, m, 0).single().expect("valid date");
        let daily = Schedule::parse("0 3 * * *").expect("cron");
        let tz: Tz = "America/Sao_Paulo".parse().expect("tz");
        // 03:00 in São Paulo (UTC-3) is 06:00 UTC; a fire time itself is not "after".
        assert_eq!(next_fire_after(&daily, tz, at(5, 59)), Some(at(6, 0)));
        assert_eq!(next_fire_after(&daily, tz, at(6, 0)), Some(at(6, 0) + chrono::Duration::days(1)));
        assert_eq!(next_fire_after(&Schedule::Once, tz, at(0, 0)), None);
        assert_eq!(next_fire_after(&Schedule::None, tz, at(0, 0)), None);
    }
}

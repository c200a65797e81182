//! One module per page (one per route of `app`).

pub mod dag;
pub mod dags;
pub mod editor;
pub mod import_errors;
pub mod login;
pub mod plugins;
pub mod run;
pub mod task;

/// A time from the API (RFC 3339, UTC) as `2026-11-28 14:03:12`, or `—`.
pub fn when(time: Option<&str>) -> String {
    match time {
        Some(t) if t.len() >= 19 => t[..19].replace('T', " "),
        Some(t) => t.to_owned(),
        None => "—".to_owned(),
    }
}

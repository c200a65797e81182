//! Task and run states: their colours (one palette for the grid, the graph and the badges,
//! Airflow's hues) and the badge that shows one.

use leptos::prelude::*;

/// The fill colour of a state; `""` and unknown states are white.
pub fn color(state: &str) -> &'static str {
    match state {
        "success" => "#16a34a",
        "failed" => "#dc2626",
        "running" => "#0ea5e9",
        "queued" => "#9ca3af",
        "scheduled" => "#c4a484",
        "up_for_retry" => "#eab308",
        "up_for_reschedule" => "#14b8a6",
        "upstream_failed" => "#f97316",
        "skipped" => "#e879f9",
        "removed" => "#d1d5db",
        "restarting" => "#8b5cf6",
        "deferred" => "#a78bfa",
        _ => "#ffffff",
    }
}

/// Every state, indexed by [`rank`]: `RANKED[rank(s)] == s` ("" for no state).
pub const RANKED: [&str; 13] = [
    "",
    "removed",
    "skipped",
    "success",
    "scheduled",
    "queued",
    "deferred",
    "up_for_reschedule",
    "running",
    "restarting",
    "up_for_retry",
    "upstream_failed",
    "failed",
];

/// How much a state needs attention, for drawing many tasks in one pixel (the most urgent
/// wins, so a failure stays visible zoomed out) and for ordering a group's counts.
pub fn rank(state: &str) -> u8 {
    match state {
        "failed" => 12,
        "upstream_failed" => 11,
        "up_for_retry" => 10,
        "restarting" => 9,
        "running" => 8,
        "up_for_reschedule" => 7,
        "deferred" => 6,
        "queued" => 5,
        "scheduled" => 4,
        "success" => 3,
        "skipped" => 2,
        "removed" => 1,
        _ => 0,
    }
}

/// The states a legend lists.
pub const LEGEND: &[&str] =
    &["success", "failed", "running", "queued", "scheduled", "up_for_retry", "upstream_failed", "skipped"];

/// Whether a task or run in this state is done.
pub fn finished(state: &str) -> bool {
    matches!(state, "success" | "failed" | "skipped" | "upstream_failed" | "removed")
}

#[component]
pub fn StateBadge(#[prop(into)] state: Signal<String>) -> impl IntoView {
    view! {
        <span class="state" data-state=move || state.get() style=move || format!("--c: {}", color(&state.get()))>
            {move || { let s = state.get(); if s.is_empty() { "no state".to_owned() } else { s } }}
        </span>
    }
}

#[component]
pub fn Legend() -> impl IntoView {
    view! {
        <div class="legend">
            {LEGEND.iter().map(|s| view! { <span class="state" style=format!("--c: {}", color(s))>{*s}</span> }).collect_view()}
        </div>
    }
}

//! Task and run states: their colours (one palette for the grid, the graph and the badges,
//! Airflow's hues) and the badge that shows one. The API sends states as text; each function
//! here reads the text into a [`TaskState`] once (a run's states are task-state names too) and
//! decides on the state.

use leptos::prelude::*;
use updraft_types::TaskState;

/// The state a text names, if any (`""` is no state).
fn parse(state: &str) -> Option<TaskState> {
    state.parse().ok()
}

/// The fill colour of a state; no state and unknown text are white.
pub fn color(state: &str) -> &'static str {
    match parse(state) {
        Some(TaskState::Success) => "#16a34a",
        Some(TaskState::Failed) => "#dc2626",
        Some(TaskState::Running) => "#0ea5e9",
        Some(TaskState::Queued) => "#9ca3af",
        Some(TaskState::Scheduled) => "#c4a484",
        Some(TaskState::UpForRetry) => "#eab308",
        Some(TaskState::UpForReschedule) => "#14b8a6",
        Some(TaskState::UpstreamFailed) => "#f97316",
        Some(TaskState::Skipped) => "#e879f9",
        Some(TaskState::NoStatus) | None => "#ffffff",
    }
}

/// The states in [`rank`] order, least urgent first (no state at 0).
const BY_RANK: [Option<TaskState>; 10] = [
    None,
    Some(TaskState::Skipped),
    Some(TaskState::Success),
    Some(TaskState::Scheduled),
    Some(TaskState::Queued),
    Some(TaskState::UpForReschedule),
    Some(TaskState::Running),
    Some(TaskState::UpForRetry),
    Some(TaskState::UpstreamFailed),
    Some(TaskState::Failed),
];

/// Every state's name, indexed by [`rank`]: `RANKED[rank(s)] == s` (`""` for no state).
pub const RANKED: [&str; 10] = {
    let mut names = [""; 10];
    let mut i = 1;
    while i < BY_RANK.len() {
        if let Some(state) = BY_RANK[i] {
            names[i] = state.as_str();
        }
        i += 1;
    }
    names
};

/// How much a state needs attention, for drawing many tasks in one pixel (the most urgent
/// wins, so a failure stays visible zoomed out) and for ordering a group's counts.
pub fn rank(state: &str) -> u8 {
    let state = parse(state).filter(|s| *s != TaskState::NoStatus);
    BY_RANK.iter().position(|s| *s == state).and_then(|i| u8::try_from(i).ok()).unwrap_or(0)
}

/// The states a legend lists.
pub const LEGEND: [TaskState; 8] = [
    TaskState::Success,
    TaskState::Failed,
    TaskState::Running,
    TaskState::Queued,
    TaskState::Scheduled,
    TaskState::UpForRetry,
    TaskState::UpstreamFailed,
    TaskState::Skipped,
];

/// Whether a task or run in this state is done.
pub fn finished(state: &str) -> bool {
    parse(state).is_some_and(TaskState::is_finished)
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
            {LEGEND.iter().map(|s| view! { <span class="state" style=format!("--c: {}", color(s.as_str()))>{s.as_str()}</span> }).collect_view()}
        </div>
    }
}

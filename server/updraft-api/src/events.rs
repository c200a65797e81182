//! `/api/updraft/events`: a Server-Sent Events stream of state changes for the web app, one
//! JSON event per change of a run's state or a task instance's state or try number.
//!
//! One poller per API server watches the metadata database (every half second: the runs in
//! progress or just ended, and their task instances) and broadcasts the differences to every
//! subscriber; it starts with the first subscriber and stops when the last one leaves. Each
//! stream opens with a `: ready` comment once the poller has taken its first look, so from then
//! on every change reaches it (EventSource ignores comments; a test or a script waits for it).
//! The database stays the only source of truth: a client that connects, or falls behind, reads
//! the current states over REST and applies events from then on.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures_util::Stream;
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::{broadcast, watch};
use updraft_db::{Db, Timestamp};
use updraft_types::{DagId, RunId, RunState, TaskId, TaskState};

use crate::AppState;
use crate::auth::Viewer;

const POLL: Duration = Duration::from_millis(500);
/// Events a slow subscriber may fall behind before it is told it lagged.
const BUFFER: usize = 4096;

/// The broadcast of state changes, whether its poller runs, and whether it has taken its first
/// look (changes are differences between two looks).
#[derive(Debug)]
pub struct Events {
    sender: broadcast::Sender<Arc<str>>,
    running: Mutex<bool>,
    watching: watch::Sender<bool>,
}

impl Default for Events {
    fn default() -> Self {
        Events { sender: broadcast::channel(BUFFER).0, running: Mutex::new(false), watching: watch::channel(false).0 }
    }
}

/// The routes of this resource, merged into the app.
pub fn router() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

impl Events {
    /// A new subscriber; starts the poller if it is not running.
    fn subscribe(self: &Arc<Self>, db: &Db) -> broadcast::Receiver<Arc<str>> {
        let receiver = self.sender.subscribe();
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if !*running {
            *running = true;
            tokio::spawn(poll(Arc::clone(self), db.clone()));
        }
        receiver
    }
}

/// What the poller saw last: each run's state, each task instance's state and try.
#[derive(Default)]
struct Seen {
    runs: HashMap<i64, RunState>,
    tasks: HashMap<(i64, TaskId), (TaskState, i32)>,
}

async fn poll(events: Arc<Events>, db: Db) {
    let mut seen: Option<Seen> = None;
    loop {
        {
            // Checked under the lock that `subscribe` takes after subscribing, so a new
            // subscriber either is counted here or starts a new poller.
            let mut running = events.running.lock().unwrap_or_else(|e| e.into_inner());
            if events.sender.receiver_count() == 0 {
                *running = false;
                events.watching.send_replace(false);
                return;
            }
        }
        match snapshot(&db).await {
            Ok(now) => {
                if let Some(before) = &seen {
                    for event in changes(before, &now.0, &now.1) {
                        let _ = events.sender.send(Arc::from(event.to_string()));
                    }
                }
                if seen.replace(now.0).is_none() {
                    events.watching.send_replace(true);
                }
            }
            Err(error) => tracing::warn!(%error, "reading states for the event stream failed"),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Names of runs by primary key, for the events.
type RunNames = HashMap<i64, (DagId, RunId)>;

async fn snapshot(db: &Db) -> Result<(Seen, RunNames), updraft_db::DbError> {
    let since = Timestamp::now().saturating_sub(std::time::Duration::from_secs(10));
    let mut seen = Seen::default();
    let mut names = HashMap::new();
    for run in db.runs_in_progress_or_ended_since(since).await? {
        for ti in db.task_instances(run.id).await? {
            seen.tasks.insert((run.id, ti.task_id), (ti.state, ti.try_number));
        }
        seen.runs.insert(run.id, run.state);
        names.insert(run.id, (run.dag_id, run.run_id));
    }
    Ok((seen, names))
}

/// The events that turn `before` into `now`, runs first.
fn changes(before: &Seen, now: &Seen, names: &RunNames) -> Vec<serde_json::Value> {
    let name = |pk: &i64| names.get(pk).map(|(d, r)| (d.to_string(), r.to_string())).unwrap_or_default();
    let mut out = Vec::new();
    let mut runs: Vec<_> = now.runs.iter().filter(|(pk, state)| before.runs.get(pk) != Some(state)).collect();
    runs.sort_by_key(|(pk, _)| **pk);
    for (pk, state) in runs {
        let (dag_id, run_id) = name(pk);
        out.push(json!({ "kind": "dag_run", "dag_id": dag_id, "dag_run_id": run_id, "state": state.as_str() }));
    }
    let mut tasks: Vec<_> = now.tasks.iter().filter(|(key, value)| before.tasks.get(key) != Some(value)).collect();
    tasks.sort_by(|a, b| a.0.cmp(b.0));
    for ((pk, task_id), (state, try_number)) in tasks {
        let (dag_id, run_id) = name(pk);
        out.push(json!({
            "kind": "task_instance", "dag_id": dag_id, "dag_run_id": run_id, "task_id": task_id,
            "state": state.as_str(), "try_number": try_number,
        }));
    }
    out
}

/// `GET /api/updraft/events`: a `: ready` comment once changes are watched, then `event: state`
/// messages with a JSON body; `event: lagged` when this subscriber fell behind (re-read the
/// states over REST).
#[utoipa::path(
    get,
    path = "/api/updraft/events",
    tag = "updraft",
    responses(
        (status = 200, description = "Server-Sent Events: a `ready` comment, then `state` events with a JSON body", content_type = "text/event-stream", body = String),
        crate::models::Refused,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn events(
    _: Viewer,
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = state.events().subscribe(state.db());
    let mut watching = state.events().watching.subscribe();
    let ready = futures_util::stream::once(async move {
        // Only fails if the sender is gone, which it never is while the state lives.
        let _ = watching.wait_for(|watching| *watching).await;
        Ok(Event::default().comment("ready"))
    });
    let changes = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(data) => Event::default().event("state").data(&*data),
            Err(broadcast::error::RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), receiver))
    });
    Sse::new(ready.chain(changes)).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_the_differences() {
        let mut before = Seen::default();
        before.runs.insert(1, RunState::Running);
        before.tasks.insert((1, "a".into()), (TaskState::Running, 1));
        before.tasks.insert((1, "b".into()), (TaskState::NoStatus, 0));
        let mut now = Seen::default();
        now.runs.insert(1, RunState::Running);
        now.tasks.insert((1, "a".into()), (TaskState::Success, 1));
        now.tasks.insert((1, "b".into()), (TaskState::NoStatus, 0));
        let names = HashMap::from([(1, (DagId::new("d"), RunId::new("r")))]);
        let events = changes(&before, &now, &names);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["task_id"], "a");
        assert_eq!(events[0]["state"], "success");
        assert!(changes(&now, &now, &names).is_empty());
    }
}

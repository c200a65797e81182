//! Task try logs, `GET …/taskInstances/{task_id}/logs/{try_number}`, as Airflow's `getLog`:
//! `{"content": [{"event": line}, …], "continuation_token": …}`. The token carries the byte
//! offset read so far; passing it back returns only what the try has written since, which is
//! how a client tails a running try. A running try's unfinished last line is held back until
//! its newline arrives. Logs are read through `updraft-logs`: the local file first, else, for
//! a try that has ended, its remote copy (`[logging] remote`), with the same offsets.

use std::path::PathBuf;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::json;
use updraft_logs::TryLog;
use updraft_types::{DagId, RunId, TaskId, TaskState};

use crate::AppState;
use crate::auth::Viewer;
use crate::error::ApiError;
use crate::extract::{ApiPath, Params};
use crate::models::{LogMessage, LogResponse};

/// How often a log stream looks for new lines.
const TAIL_POLL: std::time::Duration = std::time::Duration::from_millis(300);

/// `/api/updraft/…/logs/{try_number}/stream`: the web app's live tail.
pub fn stream_router() -> Router<AppState> {
    Router::new()
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}/stream", get(stream))
}

/// The routes of this resource, merged into the app.
pub fn router() -> Router<AppState> {
    Router::new().route("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}", get(log))
}

/// What a continuation token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    log_pos: u64,
    end_of_log: bool,
}

fn encode(position: Position) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&position).unwrap_or_default())
}

fn decode(token: &str) -> Result<Position, ApiError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::BadRequest("`token` is not a continuation token this server gave".into()))
}

#[utoipa::path(
    get,
    path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}",
    tag = "task instances",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
        ("dag_run_id" = String, Path, description = "run id"),
        ("task_id" = String, Path, description = "task id"),
        ("try_number" = u32, Path),
        ("full_content" = Option<bool>, Query),
        ("token" = Option<String>, Query, description = "continuation token of the previous call"),
    ),
    responses(
        (status = 200, body = LogResponse),
        crate::models::Refused,
        crate::models::Missing,
        (status = 400, description = "malformed request", body = crate::models::Problem),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn log(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath((dag_id, run_id, task_id, try_number)): ApiPath<(DagId, RunId, TaskId, u32)>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let found = locate(&state, &dag_id, &run_id, &task_id, try_number).await?;
    let start = match (params.bool("full_content")?, params.get("token")) {
        (Some(true), _) | (_, None) => 0,
        (_, Some(token)) => decode(token)?.log_pos,
    };
    let chunk = state
        .logs()
        .read(&found.log, &found.path, start, found.live)
        .await
        .map_err(|e| ApiError::Internal(format!("reading a log: {e}")))?;
    let end_of_log = !found.live && chunk.at_end;
    let text = chunk.text();
    let lines: Vec<&str> = text.lines().collect();
    let ndjson = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/x-ndjson") && !v.contains("application/json"));
    if ndjson {
        let body: String = lines.iter().map(|l| format!("{}\n", json!({ "timestamp": null, "event": l }))).collect();
        return Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response());
    }
    let content = lines.iter().map(|l| LogMessage { event: (*l).to_owned() }).collect();
    let continuation_token = encode(Position { log_pos: chunk.end, end_of_log });
    Ok(Json(LogResponse { content, continuation_token }).into_response())
}

/// Where a try's log is.
struct Found {
    log: TryLog,
    /// The local file.
    path: PathBuf,
    /// Whether the try may still write to it.
    live: bool,
}

/// A try's log, and whether the try may still write to it; 404 for a try that never was.
async fn locate(
    state: &AppState,
    dag_id: &DagId,
    run_id: &RunId,
    task_id: &TaskId,
    try_number: u32,
) -> Result<Found, ApiError> {
    let (run, ti) = crate::lookup::task_instance(state, dag_id, run_id, task_id).await?;
    let tries = u32::try_from(ti.try_number).unwrap_or(0);
    if try_number == 0 || try_number > tries {
        return Err(ApiError::NotFound(format!(
            "task `{task_id}` of run `{run_id}` has no try {try_number} (it has had {tries})"
        )));
    }
    let try_i32 = i32::try_from(try_number).unwrap_or(i32::MAX);
    let log = TryLog::new(dag_id.as_str(), run_id.as_str(), task_id.as_str(), try_number);
    let path = match state.db().log_location(run.id, task_id.as_str(), try_i32).await? {
        Some(location) => PathBuf::from(location),
        None => state.logs().path(&log),
    };
    let live = try_number == tries && (ti.state == TaskState::Scheduled || ti.state.is_in_flight());
    Ok(Found { log, path, live })
}

/// `GET …/logs/{try_number}/stream`: the try's log as Server-Sent Events, from the start:
/// `lines` events (complete lines, as they are written) while the try runs, then `end` once it
/// has finished and everything is sent. The web app's live tail.
#[utoipa::path(
    get,
    path = "/api/updraft/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}/stream",
    tag = "updraft",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
        ("dag_run_id" = String, Path, description = "run id"),
        ("task_id" = String, Path, description = "task id"),
        ("try_number" = u32, Path),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `lines` (text), then `end`", content_type = "text/event-stream", body = String),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn stream(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath((dag_id, run_id, task_id, try_number)): ApiPath<(DagId, RunId, TaskId, u32)>,
) -> Result<Response, ApiError> {
    use axum::response::sse::{KeepAlive, Sse};
    // Fails here (404) rather than inside the stream when the try does not exist.
    locate(&state, &dag_id, &run_id, &task_id, try_number).await?;
    let tail = Tail { state, dag_id, run_id, task_id, try_number, position: 0, done: false };
    let events = futures_util::stream::unfold(tail, |mut tail| async move {
        let event = tail.next().await?;
        Some((Ok::<_, std::convert::Infallible>(event), tail))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

/// Where a live tail has read to.
struct Tail {
    state: AppState,
    dag_id: DagId,
    run_id: RunId,
    task_id: TaskId,
    try_number: u32,
    position: u64,
    done: bool,
}

impl Tail {
    /// The next event: new lines, `end`, an `error`, or `None` after the end.
    async fn next(&mut self) -> Option<axum::response::sse::Event> {
        use axum::response::sse::Event;
        if self.done {
            return None;
        }
        loop {
            let found = match locate(&self.state, &self.dag_id, &self.run_id, &self.task_id, self.try_number).await {
                Ok(found) => found,
                Err(error) => {
                    self.done = true;
                    return Some(Event::default().event("error").data(error.to_string()));
                }
            };
            let chunk = match self.state.logs().read(&found.log, &found.path, self.position, found.live).await {
                Ok(chunk) => chunk,
                Err(e) => {
                    self.done = true;
                    return Some(Event::default().event("error").data(format!("reading the log: {e}")));
                }
            };
            self.position = chunk.end;
            if !chunk.bytes.is_empty() {
                return Some(Event::default().event("lines").data(chunk.text().trim_end_matches('\n')));
            }
            if !found.live && chunk.at_end {
                self.done = true;
                return Some(Event::default().event("end").data("end of log"));
            }
            tokio::time::sleep(TAIL_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_tokens_round_trip_and_garbage_is_refused() {
        let token = encode(Position { log_pos: 8, end_of_log: false });
        assert_eq!(decode(&token).expect("decodes").log_pos, 8);
        assert!(decode("garbage").is_err());
    }
}

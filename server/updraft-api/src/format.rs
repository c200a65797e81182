//! How stored values look in Airflow's JSON: ISO-8601 UTC times with microseconds and `Z`,
//! states and run types from Airflow's closed enums (anything else becomes `null` rather than
//! breaking a strict client), the `dag_versions` entries the client requires, and a task
//! instance row as a response (listed by both the task instances and a run's dry-run clear).

use hmac_sha2::Digest;
use serde_json::json;
use updraft_db::dags::DagRow;
use updraft_db::runs::RunRow;
use updraft_db::task_instances::TaskInstanceRow;
use updraft_types::{TaskState, Timestamp};

use crate::models::{DagVersion, TaskInstanceResponse};

/// `2026-11-28T06:40:10.473394Z`: RFC 3339 with microseconds, UTC, as Airflow writes times.
pub fn iso(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_micros(t.as_micros())
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

/// [`iso`] of a time that may be unset.
pub fn iso_opt(t: Option<Timestamp>) -> Option<String> {
    t.map(iso)
}

/// The time an ISO-8601 text (`2026-01-31T03:00:00Z`, with any offset) or a date names.
pub fn parse_time(field: &str, text: &str) -> Result<Timestamp, crate::ApiError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(Timestamp::from_micros(t.timestamp_micros()));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(Timestamp::from_micros(t.and_utc().timestamp_micros()));
    }
    Err(crate::ApiError::Unprocessable(format!(
        "`{field}` must be an ISO-8601 time such as 2026-01-31T03:00:00Z, not `{text}`"
    )))
}

/// A task instance's state as Airflow names it; Updraft's `none` is Airflow's `null`.
pub fn ti_state(state: TaskState) -> Option<String> {
    (state != TaskState::NoStatus).then(|| state.as_str().to_owned())
}

/// Who triggered a run, in Airflow's closed set of names (`null` for anything else).
pub fn triggered_by(by: Option<&str>) -> Option<String> {
    match by {
        Some(b @ ("cli" | "operator" | "rest_api" | "ui" | "test" | "timetable" | "asset" | "backfill")) => {
            Some(b.to_owned())
        }
        _ => None,
    }
}

/// A stable UUID for a DAG version (Updraft numbers versions; Airflow's client wants UUIDs).
pub fn version_uuid(dag_id: &str, version: i32) -> String {
    let digest = hmac_sha2::Sha512::digest(format!("{dag_id}\u{0}{version}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8: custom
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// A `DagVersionResponse`.
pub fn dag_version(dag_id: &str, version: i32, created_at: Timestamp) -> DagVersion {
    DagVersion {
        id: version_uuid(dag_id, version),
        version_number: version,
        dag_id: dag_id.to_owned(),
        dag_display_name: dag_id.to_owned(),
        bundle_name: Some("dags-folder".into()),
        bundle_version: None,
        bundle_url: None,
        created_at: iso(created_at),
    }
}

/// The latest version of a stored DAG.
pub fn latest_version(dag: &DagRow) -> DagVersion {
    dag_version(&dag.record.dag_id, dag.version, dag.last_parsed_at.unwrap_or(Timestamp::EPOCH))
}

/// A task instance as a `TaskInstanceResponse` (with its run's dates and DAG version).
pub fn ti_json(t: &TaskInstanceRow, run: &RunRow) -> TaskInstanceResponse {
    TaskInstanceResponse {
        id: t.uuid.clone(),
        task_id: t.task_id.to_string(),
        task_display_name: t.task_id.to_string(),
        dag_id: t.dag_id.to_string(),
        dag_display_name: t.dag_id.to_string(),
        dag_run_id: t.run_id.to_string(),
        map_index: t.map_index,
        logical_date: iso_opt(run.logical_date),
        run_after: iso(run.run_after),
        start_date: iso_opt(t.start_date),
        end_date: iso_opt(t.end_date),
        duration: t.duration_s,
        state: ti_state(t.state),
        try_number: t.try_number,
        max_tries: t.max_tries,
        pool: t.pool.clone(),
        pool_slots: t.pool_slots,
        queue: Some("default".into()),
        priority_weight: Some(t.priority_weight),
        operator: Some(t.operator.clone()),
        operator_name: Some(t.operator.clone()),
        queued_when: iso_opt(t.queued_at),
        scheduled_when: iso_opt(t.scheduled_at),
        hostname: t.hostname.clone(),
        unixname: None,
        pid: None,
        executor: t.executor.clone(),
        executor_config: "{}".into(),
        note: None,
        rendered_map_index: None,
        rendered_fields: json!({}),
        trigger: None,
        triggerer_job: None,
        dag_version: dag_version(&run.dag_id, run.dag_version, run.queued_at.unwrap_or(run.run_after)),
    }
}

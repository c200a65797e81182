//! The bodies of the REST API's answers, shared by the server (`updraft-api`, which builds
//! them) and the web app (which reads them). The ones Airflow's official client deserializes
//! strictly carry Airflow's names and always send every field (`None` as `null`). With the
//! `openapi` feature they derive utoipa's `ToSchema`, so the server's OpenAPI document is
//! generated from these very types.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An error: RFC 9457 problem details, as Airflow's API answers (`detail` is what to do).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Located errors of a DAG file (422 from the source editor).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Object>>))]
    pub errors: Option<Value>,
}

/// `TokenResponse`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    pub access_token: String,
}

/// `DagTag`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DagTag {
    pub name: String,
    pub dag_id: String,
    pub dag_display_name: String,
}

/// `DAGResponse`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DagResponse {
    pub dag_id: String,
    pub dag_display_name: String,
    pub is_paused: bool,
    pub is_stale: bool,
    pub last_parsed_time: Option<String>,
    pub last_parse_duration: Option<f64>,
    pub last_expired: Option<String>,
    pub bundle_name: Option<String>,
    pub bundle_version: Option<String>,
    pub relative_fileloc: Option<String>,
    pub fileloc: String,
    pub description: Option<String>,
    pub timetable_summary: Option<String>,
    pub timetable_description: Option<String>,
    pub timetable_partitioned: bool,
    pub timetable_periodic: bool,
    pub tags: Vec<DagTag>,
    pub max_active_tasks: i32,
    pub max_active_runs: Option<i32>,
    pub max_consecutive_failed_dag_runs: i32,
    pub has_task_concurrency_limits: bool,
    pub has_import_errors: bool,
    pub next_dagrun_logical_date: Option<String>,
    pub next_dagrun_data_interval_start: Option<String>,
    pub next_dagrun_data_interval_end: Option<String>,
    pub next_dagrun_run_after: Option<String>,
    pub allowed_run_types: Option<Vec<String>>,
    pub owners: Vec<String>,
    pub is_backfillable: bool,
    pub file_token: String,
}

/// `DAGDetailsResponse`: a DAG with the settings of its file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DagDetailsResponse {
    #[serde(flatten)]
    pub dag: DagResponse,
    pub concurrency: i32,
    pub catchup: bool,
    pub doc_md: Option<String>,
    pub start_date: Option<String>,
    pub render_template_as_native_obj: bool,
    pub timezone: String,
    pub latest_dag_version: DagVersion,
    pub is_paused_upon_creation: Option<bool>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub params: Value,
}

/// `DagCollection`: a page of them and how many there are in all.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DagCollection {
    pub dags: Vec<DagResponse>,
    pub total_entries: usize,
}

/// `DagVersionResponse`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DagVersion {
    /// A UUID derived from the DAG id and version number.
    pub id: String,
    pub version_number: i32,
    pub dag_id: String,
    pub dag_display_name: String,
    pub bundle_name: Option<String>,
    pub bundle_version: Option<String>,
    pub bundle_url: Option<String>,
    pub created_at: String,
}

/// `DAGRunResponse`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DagRunResponse {
    pub dag_run_id: String,
    pub dag_id: String,
    pub dag_display_name: String,
    pub logical_date: Option<String>,
    pub queued_at: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub duration: Option<f64>,
    pub data_interval_start: Option<String>,
    pub data_interval_end: Option<String>,
    pub run_after: String,
    pub last_scheduling_decision: Option<String>,
    /// `scheduled`, `manual` or `backfill`.
    pub run_type: String,
    /// `queued`, `running`, `success` or `failed`.
    pub state: String,
    pub triggered_by: Option<String>,
    pub triggering_user_name: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub conf: Value,
    pub note: Option<String>,
    pub dag_versions: Vec<DagVersion>,
    pub bundle_version: Option<String>,
    pub partition_key: Option<String>,
    pub partition_date: Option<String>,
}

/// `DagRunCollection`: a page of them and how many there are in all.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DagRunCollection {
    pub dag_runs: Vec<DagRunResponse>,
    pub total_entries: i64,
}

/// `TaskInstanceResponse`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskInstanceResponse {
    /// A UUID.
    pub id: String,
    pub task_id: String,
    pub task_display_name: String,
    pub dag_id: String,
    pub dag_display_name: String,
    pub dag_run_id: String,
    pub map_index: i32,
    pub logical_date: Option<String>,
    pub run_after: String,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub duration: Option<f64>,
    /// Airflow's task instance state; `null` is "no status".
    pub state: Option<String>,
    pub try_number: i32,
    pub max_tries: i32,
    pub pool: String,
    pub pool_slots: i32,
    pub queue: Option<String>,
    pub priority_weight: Option<i32>,
    pub operator: Option<String>,
    pub operator_name: Option<String>,
    pub queued_when: Option<String>,
    pub scheduled_when: Option<String>,
    pub hostname: Option<String>,
    pub unixname: Option<String>,
    pub pid: Option<i32>,
    pub executor: Option<String>,
    pub executor_config: String,
    pub note: Option<String>,
    pub rendered_map_index: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub rendered_fields: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub trigger: Option<Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub triggerer_job: Option<Value>,
    pub dag_version: DagVersion,
}

/// `TaskInstanceCollection`: a page of them and how many there are in all.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskInstanceCollection {
    pub task_instances: Vec<TaskInstanceResponse>,
    pub total_entries: usize,
}

/// `LogMessage`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogMessage {
    pub event: String,
}

/// `TaskInstancesLogResponse`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogResponse {
    pub content: Vec<LogMessage>,
    /// Pass it back as `token` to read what the try wrote since.
    pub continuation_token: String,
}

/// `VersionInfo`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionInfo {
    pub version: String,
    pub git_version: Option<String>,
}

/// What `…/dagRuns/{id}/clear` answers: the task instances a dry run would clear, or the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum ClearRunResponse {
    DryRun(TaskInstanceCollection),
    Run(Box<DagRunResponse>),
}

/// `XComResponse`; `value` only when one entry is asked for (`XComResponseNative`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct XcomResponse {
    pub key: String,
    pub timestamp: String,
    pub logical_date: Option<String>,
    pub run_after: String,
    pub map_index: i32,
    pub task_id: String,
    pub dag_id: String,
    pub run_id: String,
    pub dag_display_name: String,
    pub task_display_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub value: Option<Value>,
}

/// `XcomCollection`: a page of them and how many there are in all.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct XcomCollection {
    pub xcom_entries: Vec<XcomResponse>,
    pub total_entries: usize,
}

/// `VariableResponse`; listings show `***` as the value.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VariableResponse {
    pub key: String,
    pub value: String,
    pub description: Option<String>,
    pub is_encrypted: bool,
    /// Updraft's: where the variable comes from (`environment`, `directory` or `database`);
    /// the value of one from the cluster is never returned (`***`).
    #[serde(default)]
    pub source: Option<String>,
}

/// `VariableCollection`: a page of them and how many there are in all.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VariableCollection {
    pub variables: Vec<VariableResponse>,
    pub total_entries: usize,
}

/// `ConnectionResponse`: `password` and `extra` are always `null`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectionResponse {
    pub connection_id: String,
    pub conn_type: String,
    pub description: Option<String>,
    pub host: Option<String>,
    pub login: Option<String>,
    pub schema: Option<String>,
    pub port: Option<i32>,
    pub password: Option<String>,
    pub extra: Option<String>,
    /// Updraft's: where the connection comes from (`environment`, `directory` or `database`);
    /// only a `database` one can be changed through the API.
    #[serde(default)]
    pub source: Option<String>,
}

/// `ConnectionCollection`: a page of them and how many there are in all.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectionCollection {
    pub connections: Vec<ConnectionResponse>,
    pub total_entries: usize,
}

/// `PoolResponse`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PoolResponse {
    pub name: String,
    pub slots: i32,
    pub description: Option<String>,
    pub include_deferred: bool,
    pub occupied_slots: i64,
    pub running_slots: i64,
    pub queued_slots: i64,
    pub scheduled_slots: i64,
    pub deferred_slots: i64,
    pub open_slots: i64,
}

/// `PoolCollection`: a page of them and how many there are in all.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PoolCollection {
    pub pools: Vec<PoolResponse>,
    pub total_entries: usize,
}

/// `ImportErrorResponse`: a DAG file that failed to load, with its located messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportErrorResponse {
    pub import_error_id: usize,
    pub timestamp: String,
    pub filename: String,
    pub bundle_name: Option<String>,
    pub stack_trace: String,
}

/// `ImportErrorCollection`: a page of them and how many there are in all.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportErrorCollection {
    pub import_errors: Vec<ImportErrorResponse>,
    pub total_entries: usize,
}

/// `TimeDelta`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimeDelta {
    #[serde(rename = "__type")]
    pub kind: String,
    pub days: u64,
    pub seconds: u64,
    pub microseconds: u32,
}

/// `TaskResponse`: a task as its DAG file defines it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskResponse {
    pub task_id: String,
    pub task_display_name: String,
    pub owner: String,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub trigger_rule: String,
    pub depends_on_past: bool,
    pub wait_for_downstream: bool,
    pub retries: u32,
    pub queue: String,
    pub pool: String,
    pub pool_slots: u32,
    pub execution_timeout: Option<TimeDelta>,
    pub retry_delay: TimeDelta,
    pub retry_exponential_backoff: f64,
    pub priority_weight: i32,
    pub weight_rule: String,
    pub ui_color: Option<String>,
    pub ui_fgcolor: Option<String>,
    pub template_fields: Vec<String>,
    pub downstream_task_ids: Vec<String>,
    pub doc_md: Option<String>,
    pub operator_name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub params: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub class_ref: Option<Value>,
    pub is_mapped: bool,
    pub extra_links: Vec<String>,
}

/// `TaskCollection`: a page of them and how many there are in all.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskCollection {
    pub tasks: Vec<TaskResponse>,
    pub total_entries: usize,
}

/// One part's health: `status` is `healthy`, `unhealthy` or `null` (not run by Updraft).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComponentHealth {
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_scheduler_heartbeat: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_triggerer_heartbeat: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_dag_processor_heartbeat: Option<Option<String>>,
}

/// `HealthInfoResponse`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthInfo {
    pub metadatabase: ComponentHealth,
    pub scheduler: ComponentHealth,
    pub triggerer: ComponentHealth,
    pub dag_processor: ComponentHealth,
}

/// A DAG's file: `DAGSourceResponse` (Airflow's fields) plus the file's path.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DagSource {
    pub dag_id: String,
    pub dag_display_name: String,
    pub version_number: Option<i32>,
    pub file: String,
    pub content: String,
}

/// `GET /auth/session`: who the session cookie signs in, and the CSRF token its unsafe
/// requests must repeat (the cookie itself is HttpOnly, so the web app asks after a reload).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionResponse {
    pub username: String,
    /// `viewer`, `user`, `op` or `admin`.
    pub role: String,
    pub csrf_token: String,
}

/// A run in a summary: the DAG list's last run, a column of the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunSummary {
    pub dag_run_id: String,
    pub state: String,
    pub run_type: String,
    pub logical_date: Option<String>,
    pub run_after: String,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
}

/// One row of the web app's DAG list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DagOverview {
    pub dag_id: String,
    pub description: Option<String>,
    pub is_paused: bool,
    pub is_stale: bool,
    pub has_import_errors: bool,
    pub tags: Vec<String>,
    pub owners: Vec<String>,
    /// The schedule as written (`@daily`, a cron expression), or `None` for manual runs only.
    pub schedule: Option<String>,
    pub next_run: Option<String>,
    pub last_run: Option<RunSummary>,
    pub fileloc: String,
}

/// `GET /api/updraft/dags`: every DAG with its latest run, in one answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DagOverviewCollection {
    pub dags: Vec<DagOverview>,
    pub total_entries: usize,
}

/// `GET /api/updraft/dags/{dag_id}/grid`: the latest runs (oldest first) × the DAG's tasks
/// (in layer order); `states[r][t]` is task `t`'s state in run `r` (`""` when it has none).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GridResponse {
    pub dag_id: String,
    pub tasks: Vec<String>,
    pub runs: Vec<RunSummary>,
    pub states: Vec<Vec<String>>,
}

/// `POST /api/updraft/dags`: a new one-file DAG.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewDagFile {
    pub content: String,
}

/// What saving a DAG file wrote: the DAG, the file and the validator's warnings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DagFileWritten {
    pub dag_id: String,
    pub file: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub warnings: Vec<Value>,
}

//! Rendering: a try's params (and, for `sql:` tasks, the SQL from its file or inline) with the
//! run's values — `ds`, `logical_date`, the data interval, params overridden by the run's
//! `conf` — into the [`WorkItem`] an executor runs. The scheduler renders when it dispatches;
//! so does `updraft tasks run`, the worker of a task pod.

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use updraft_dag::SqlSource;
use updraft_dagbag::LoadedDag;
use updraft_db::Timestamp;
use updraft_db::runs::RunRow;
use updraft_logs::TryLog;

use updraft_executor::{TryKey, WorkItem};

/// RFC 3339 to the second, UTC (`2026-01-01T00:00:00Z`).
fn iso(t: Timestamp) -> String {
    from_timestamp(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A chrono time as stored.
pub(super) fn to_timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp::from_micros(t.timestamp_micros())
}

/// A stored time as chrono's (the epoch if out of range).
pub(super) fn from_timestamp(t: Timestamp) -> DateTime<Utc> {
    Utc.timestamp_micros(t.as_micros()).single().unwrap_or_default()
}

/// Where a try's log lives: `LOG_DIR/dag_id=…/run_id=…/task_id=…/attempt=N.log`.
pub fn log_path(log_dir: &Path, row: &RunRow, task_id: &str, try_number: u32) -> PathBuf {
    TryLog::new(row.dag_id.as_str(), row.run_id.as_str(), task_id, try_number).path_in(log_dir)
}

/// One try of task `t` of a run, rendered and ready for an executor (the scheduler builds it;
/// so does `updraft tasks run`, the worker of a task pod). Errors are template or SQL-file
/// errors, which fail the try without running it.
pub fn work_item(loaded: &LoadedDag, t: u32, row: &RunRow, key: TryKey, log_path: PathBuf) -> Result<WorkItem, String> {
    let task = &loaded.dag.tasks[t as usize];
    let params = render_item(loaded, t, row)?;
    let logical = row.logical_date.unwrap_or(row.run_after);
    Ok(WorkItem {
        key,
        dag_id: row.dag_id.to_string(),
        run_id: row.run_id.to_string(),
        task_id: task.id.clone(),
        operator: task.operator.clone(),
        params,
        logical_date: iso(logical),
        data_interval_start: iso(row.data_interval_start.unwrap_or(logical)),
        data_interval_end: iso(row.data_interval_end.unwrap_or(logical)),
        execution_timeout: task.execution_timeout,
        log_path,
        kubernetes: task.kubernetes.clone(),
        // The executor (`PinVersions` in a scheduler) pins it when the try is dispatched.
        plugin_sha256: None,
    })
}

/// Renders a task's params (and, for the sql operator, its SQL) with the run's values.
fn render_item(loaded: &LoadedDag, t: u32, row: &RunRow) -> Result<serde_json::Value, String> {
    let dag = &loaded.dag;
    let task = &dag.tasks[t as usize];
    let logical = row.logical_date.unwrap_or(row.run_after);
    let logical_dt = from_timestamp(logical);
    let mut params = dag.params.clone();
    params.extend(task.params.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Ok(serde_json::Value::Object(conf)) = serde_json::from_str::<serde_json::Value>(&row.conf) {
        // Trigger-time `conf` overrides params of the same name, as Airflow's dag_run.conf does
        // when `dag_run_conf_overrides_params` is on.
        params.extend(conf);
    }
    let vars = updraft_dag::template::TemplateVars {
        ds: logical_dt.format("%Y-%m-%d").to_string(),
        ds_nodash: logical_dt.format("%Y%m%d").to_string(),
        ts: logical_dt.to_rfc3339(),
        logical_date: logical_dt.to_rfc3339(),
        data_interval_start: from_timestamp(row.data_interval_start.unwrap_or(logical)).to_rfc3339(),
        data_interval_end: from_timestamp(row.data_interval_end.unwrap_or(logical)).to_rfc3339(),
        run_id: row.run_id.to_string(),
        dag_id: dag.id.clone(),
        task_id: task.id.clone(),
        params: params.clone(),
    };
    let render = |text: &str, what: &str| {
        updraft_dag::template::render(text, &vars, false)
            .map_err(|e| format!("template error in {what} at line {}: {}", e.line, e.message))
    };
    let mut out = serde_json::Map::new();
    // With `sql:`, params are template values for the SQL (as in Airflow's SQL operators);
    // the operator itself receives the rendered statement and the connection.
    let operator_params = if task.sql.is_some() { &serde_json::Map::new() } else { &task.params };
    for (k, v) in operator_params {
        let value = match v {
            serde_json::Value::String(s) => serde_json::Value::String(render(s, &format!("param `{k}`"))?),
            other => other.clone(),
        };
        out.insert(k.clone(), value);
    }
    if let Some(sql) = &task.sql {
        let text = match sql {
            SqlSource::Inline(text) => text.clone(),
            SqlSource::File(path) => {
                let full = loaded.folder.join(path);
                std::fs::read_to_string(&full)
                    .map_err(|e| format!("cannot read the SQL file {}: {e}", full.display()))?
            }
        };
        out.insert("sql".into(), serde_json::Value::String(render(&text, "the SQL")?));
        if let Some(connection) = &task.connection {
            out.entry("connection").or_insert_with(|| serde_json::Value::String(connection.clone()));
        }
    }
    Ok(serde_json::Value::Object(out))
}

//! Retention (`updraft db clean`, Airflow's `db clean`): finished runs older than a cutoff are
//! found in batches and deleted with everything that hangs off them (task instances, log
//! locations, XComs, try results, run requests), one transaction per batch.
//!
//! Only finished runs (`success`, `failed`) are ever chosen, by the time they ended (or were
//! due, for a run that never started). The newest scheduled run of each DAG is kept whatever
//! its age, as Airflow keeps it: its data interval is where the DAG's timetable continues.

use sqlx::Row;

use crate::{Db, DbError};

/// A run retention may remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanableRun {
    pub id: i64,
    pub dag_id: String,
    pub run_id: String,
}

/// Rows removed (or that a dry run would remove), per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanCounts {
    pub dag_run: u64,
    pub task_instance: u64,
    pub task_log: u64,
    pub xcom: u64,
    pub try_result: u64,
    pub run_request: u64,
}

impl CleanCounts {
    /// Adds another batch's counts.
    pub fn add(&mut self, other: CleanCounts) {
        self.dag_run += other.dag_run;
        self.task_instance += other.task_instance;
        self.task_log += other.task_log;
        self.xcom += other.xcom;
        self.try_result += other.try_result;
        self.run_request += other.run_request;
    }

    /// `(table, rows)`, children first: the order they are deleted in.
    pub fn tables(&self) -> [(&'static str, u64); 6] {
        [
            ("xcom", self.xcom),
            ("task_log", self.task_log),
            ("try_result", self.try_result),
            ("run_request", self.run_request),
            ("task_instance", self.task_instance),
            ("dag_run", self.dag_run),
        ]
    }
}

/// The tables holding rows of a run (column `run_pk`), children before `task_instance`.
const CHILD_TABLES: [&str; 5] = ["xcom", "task_log", "try_result", "run_request", "task_instance"];

/// Which finished runs are old enough: `$1` is the cutoff (µs).
const ELIGIBLE: &str = "state IN ('success', 'failed') AND COALESCE(end_date, run_after) < $1";

/// `$first, $first+1, …` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

impl Db {
    /// Up to `limit` runs to clean that finished before `before` (µs), with ids above
    /// `after_id`, by id: a batch, and where the next one starts.
    pub async fn runs_to_clean(&self, before: i64, after_id: i64, limit: i64) -> Result<Vec<CleanableRun>, DbError> {
        let sql = format!(
            "SELECT id, dag_id, run_id FROM dag_run r WHERE {ELIGIBLE} AND id > $2 \
             AND NOT (run_type = 'scheduled' AND data_interval_end IS NOT NULL AND data_interval_end = \
             (SELECT max(r2.data_interval_end) FROM dag_run r2 WHERE r2.dag_id = r.dag_id AND r2.run_type = 'scheduled')) \
             ORDER BY id LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(before)
            .bind(after_id)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|r| Ok(CleanableRun { id: r.try_get(0)?, dag_id: r.try_get(1)?, run_id: r.try_get(2)? }))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// The rows that deleting these runs would remove, per table.
    pub async fn count_run_rows(&self, ids: &[i64]) -> Result<CleanCounts, DbError> {
        let mut counts = CleanCounts { dag_run: ids.len() as u64, ..CleanCounts::default() };
        if ids.is_empty() {
            return Ok(counts);
        }
        for table in CHILD_TABLES {
            let sql = format!("SELECT count(*) FROM {table} WHERE run_pk IN ({})", placeholders(1, ids.len()));
            let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
            for id in ids {
                query = query.bind(id);
            }
            let n = u64::try_from(query.fetch_one(self.pool()).await?).unwrap_or(0);
            set(&mut counts, table, n);
        }
        Ok(counts)
    }

    /// Deletes these runs and their rows in one transaction, each only if it is still finished
    /// before `before` (µs); a run cleared or re-run meanwhile stays. Returns what was deleted
    /// and the ids of the runs deleted.
    pub async fn delete_runs(&self, ids: &[i64], before: i64) -> Result<(CleanCounts, Vec<i64>), DbError> {
        let mut counts = CleanCounts::default();
        if ids.is_empty() {
            return Ok((counts, Vec::new()));
        }
        let mut tx = self.pool().begin().await?;
        // Locks the rows on PostgreSQL, so a scheduler cannot put one back in the queue between
        // this check and the deletes.
        let lock = self.backend().lock_rows();
        let sql = format!(
            "SELECT id FROM dag_run WHERE {ELIGIBLE} AND id IN ({}) ORDER BY id{lock}",
            placeholders(2, ids.len())
        );
        let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).bind(before);
        for id in ids {
            query = query.bind(id);
        }
        let still: Vec<i64> = query.fetch_all(&mut *tx).await?;
        if still.is_empty() {
            tx.rollback().await?;
            return Ok((counts, still));
        }
        let list = placeholders(1, still.len());
        for table in CHILD_TABLES.iter().copied().chain(["dag_run"]) {
            let column = if table == "dag_run" { "id" } else { "run_pk" };
            let sql = format!("DELETE FROM {table} WHERE {column} IN ({list})");
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in &still {
                query = query.bind(id);
            }
            let n = query.execute(&mut *tx).await?.rows_affected();
            set(&mut counts, table, n);
        }
        tx.commit().await?;
        Ok((counts, still))
    }
}

fn set(counts: &mut CleanCounts, table: &str, n: u64) {
    match table {
        "xcom" => counts.xcom = n,
        "task_log" => counts.task_log = n,
        "try_result" => counts.try_result = n,
        "run_request" => counts.run_request = n,
        "task_instance" => counts.task_instance = n,
        _ => counts.dag_run = n,
    }
}

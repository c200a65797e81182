//! XCom: small JSON values a task pushes for tasks downstream in the same run.

use crate::{Db, DbError, Timestamp, now_us};

/// A stored XCom value.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct XcomRow {
    pub task_id: String,
    pub map_index: i32,
    pub key: String,
    /// JSON text.
    pub value: String,
    pub created_at: Timestamp,
}

impl Db {
    /// Stores `value` (JSON text) under `key` for a task of a run, replacing an earlier value.
    pub async fn xcom_push(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        key: &str,
        value: &str,
    ) -> Result<(), DbError> {
        let done = sqlx::query(
            "INSERT INTO xcom (run_pk, task_id, key, value, created_at) SELECT id, $3, $4, $5, $6 FROM dag_run WHERE dag_id = $1 AND run_id = $2 \
             ON CONFLICT (run_pk, task_id, map_index, key) DO UPDATE SET value = excluded.value, created_at = excluded.created_at",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .bind(key)
        .bind(value)
        .bind(now_us())
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("no run `{run_id}` of DAG `{dag_id}`")));
        }
        Ok(())
    }

    /// The JSON text a task pushed under `key`, if any.
    pub async fn xcom_pull(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        key: &str,
    ) -> Result<Option<String>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT xcom.value FROM xcom JOIN dag_run ON dag_run.id = xcom.run_pk \
             WHERE dag_run.dag_id = $1 AND dag_run.run_id = $2 AND xcom.task_id = $3 AND xcom.key = $4",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .bind(key)
        .fetch_optional(self.pool())
        .await?)
    }

    /// The XComs of a run's task (every task when `task_id` is `None`), by task and key.
    pub async fn xcom_entries(&self, run_pk: i64, task_id: Option<&str>) -> Result<Vec<XcomRow>, DbError> {
        let columns = "SELECT task_id, map_index, key, value, created_at FROM xcom WHERE run_pk = $1";
        Ok(match task_id {
            Some(task_id) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!("{columns} AND task_id = $2 ORDER BY key")))
                    .bind(run_pk)
                    .bind(task_id)
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!("{columns} ORDER BY task_id, key")))
                    .bind(run_pk)
                    .fetch_all(self.pool())
                    .await?
            }
        })
    }
}

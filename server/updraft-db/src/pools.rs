//! Pools: named limits on the slots task instances take while queued or running.

use updraft_types::TaskState;

use crate::{Db, DbError};

/// Slots taken in a pool by task instances in one state (for the API's pool listing).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PoolUsage {
    pub pool: String,
    pub state: TaskState,
    pub slots: i64,
}

/// A pool as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PoolRow {
    pub name: String,
    pub slots: i32,
    pub description: Option<String>,
}

impl Db {
    /// The pools and their slots.
    pub async fn pools(&self) -> Result<Vec<(String, i32)>, DbError> {
        Ok(sqlx::query_as("SELECT name, slots FROM pool ORDER BY name").fetch_all(self.pool()).await?)
    }

    /// Creates or resizes a pool.
    pub async fn set_pool(&self, name: &str, slots: i32, description: Option<&str>) -> Result<(), DbError> {
        sqlx::query("INSERT INTO pool (name, slots, description) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET slots = excluded.slots, description = excluded.description")
            .bind(name)
            .bind(slots)
            .bind(description)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every pool with its description, by name.
    pub async fn pool_rows(&self) -> Result<Vec<PoolRow>, DbError> {
        Ok(sqlx::query_as("SELECT name, slots, description FROM pool ORDER BY name").fetch_all(self.pool()).await?)
    }

    /// Creates a pool; an existing name is a conflict (unlike [`Db::set_pool`]).
    pub async fn create_pool(&self, name: &str, slots: i32, description: Option<&str>) -> Result<(), DbError> {
        let result = sqlx::query("INSERT INTO pool (name, slots, description) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(slots)
            .bind(description)
            .execute(self.pool())
            .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(DbError::Conflict(format!("pool `{name}` exists: change it instead")))
            }
            other => other.map(|_| ()).map_err(DbError::from),
        }
    }

    /// Deletes a pool; returns whether it existed.
    pub async fn delete_pool(&self, name: &str) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM pool WHERE name = $1").bind(name).execute(self.pool()).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Slots taken per pool and state, for task instances scheduled, queued or running.
    pub async fn pool_usage(&self) -> Result<Vec<PoolUsage>, DbError> {
        Ok(sqlx::query_as(
            "SELECT pool, state, CAST(sum(pool_slots) AS BIGINT) AS slots FROM task_instance \
             WHERE state IN ($1, $2, $3) GROUP BY pool, state",
        )
        .bind(TaskState::Scheduled)
        .bind(TaskState::Queued)
        .bind(TaskState::Running)
        .fetch_all(self.pool())
        .await?)
    }
}

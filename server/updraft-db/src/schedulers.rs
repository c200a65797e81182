//! Schedulers: registration and heartbeats, which tell the others (on a database schedulers
//! share) when a scheduler is gone and its runs are to be adopted.

use updraft_types::Timestamp;

use crate::{Db, DbError};

impl Db {
    /// Registers a scheduler (for heartbeats and adoption of its runs after a crash).
    pub async fn register_scheduler(&self, id: &str, hostname: &str) -> Result<(), DbError> {
        sqlx::query("INSERT INTO scheduler_job (id, hostname, started_at, heartbeat_at, state) VALUES ($1, $2, $3, $3, 'running')")
            .bind(id)
            .bind(hostname)
            .bind(Timestamp::now())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks this scheduler alive.
    pub async fn heartbeat(&self, scheduler_id: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE scheduler_job SET heartbeat_at = $2 WHERE id = $1")
            .bind(scheduler_id)
            .bind(Timestamp::now())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The latest heartbeat of any scheduler, if one ever ran.
    pub async fn latest_scheduler_heartbeat(&self) -> Result<Option<Timestamp>, DbError> {
        Ok(sqlx::query_scalar("SELECT max(heartbeat_at) FROM scheduler_job").fetch_one(self.pool()).await?)
    }

    /// A round trip to the database (health checks).
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }
}

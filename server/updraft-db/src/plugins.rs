//! The plugin store: operator components (WebAssembly bytes) kept once under their SHA-256,
//! and the version each operator name points to now. Every scheduler, API server and task pod
//! of a deployment reads the same store, so a plugin installed anywhere runs everywhere; a
//! replaced version keeps its bytes, so a try dispatched with it can still fetch it.

use crate::{Db, DbError, Timestamp, now_us};

/// The version an operator name points to now (the component's bytes are fetched apart).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PluginRow {
    pub name: String,
    /// SHA-256 of the component, lowercase hex.
    pub sha256: String,
    /// The version the component describes itself with.
    pub version: String,
    pub size_bytes: i64,
    /// Who made it current: a user of the API, `cli …`, or `folder …`.
    pub installed_by: String,
    /// When it was made current.
    pub installed_at: Timestamp,
}

/// A component to store and make the current version of its operator.
#[derive(Debug, Clone, Copy)]
pub struct NewPlugin<'a> {
    pub name: &'a str,
    pub version: &'a str,
    /// SHA-256 of `content`, lowercase hex (the caller computes it; the plugin host checks it
    /// again whenever it loads the bytes).
    pub sha256: &'a str,
    pub content: &'a [u8],
    pub installed_by: &'a str,
}

impl Db {
    /// The current version of every stored operator, by name. Reads no component bytes, so
    /// processes can poll it every second.
    pub async fn plugin_versions(&self) -> Result<Vec<PluginRow>, DbError> {
        Ok(sqlx::query_as(
            "SELECT p.name, p.sha256, c.version, c.size_bytes, p.installed_by, p.installed_at \
             FROM plugin p JOIN plugin_component c ON c.sha256 = p.sha256 ORDER BY p.name",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// The bytes of the component with this SHA-256, current or not.
    pub async fn plugin_component(&self, sha256: &str) -> Result<Option<Vec<u8>>, DbError> {
        Ok(sqlx::query_scalar("SELECT content FROM plugin_component WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Whether the store holds the component with this SHA-256.
    pub async fn has_plugin_component(&self, sha256: &str) -> Result<bool, DbError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM plugin_component WHERE sha256 = $1")
            .bind(sha256)
            .fetch_one(self.pool())
            .await?;
        Ok(n > 0)
    }

    /// Stores a component (once: bytes already stored are not written again) and points its
    /// operator name at it, in one transaction.
    pub async fn put_plugin(&self, plugin: &NewPlugin<'_>) -> Result<(), DbError> {
        let now = now_us();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO plugin_component (sha256, name, version, content, size_bytes, stored_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(plugin.sha256)
        .bind(plugin.name)
        .bind(plugin.version)
        .bind(plugin.content.to_vec())
        .bind(i64::try_from(plugin.content.len()).unwrap_or(i64::MAX))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // The same bytes can only describe one name; a hash stored under another name means a
        // caller passed the wrong hash.
        let stored: String = sqlx::query_scalar("SELECT name FROM plugin_component WHERE sha256 = $1")
            .bind(plugin.sha256)
            .fetch_one(&mut *tx)
            .await?;
        if stored != plugin.name {
            return Err(DbError::Conflict(format!(
                "component {} is stored as operator `{stored}`, not `{}`",
                plugin.sha256, plugin.name
            )));
        }
        sqlx::query(
            "INSERT INTO plugin (name, sha256, installed_by, installed_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, installed_by = excluded.installed_by, \
             installed_at = excluded.installed_at",
        )
        .bind(plugin.name)
        .bind(plugin.sha256)
        .bind(plugin.installed_by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes operator `name` from the store (its components stay, for tries dispatched with
    /// them). With `only_if_sha256`, only while the name still points to that component, so a
    /// newer install is never removed by mistake. Returns whether a row was removed.
    pub async fn delete_plugin(&self, name: &str, only_if_sha256: Option<&str>) -> Result<bool, DbError> {
        let done = match only_if_sha256 {
            Some(sha256) => {
                sqlx::query("DELETE FROM plugin WHERE name = $1 AND sha256 = $2")
                    .bind(name)
                    .bind(sha256)
                    .execute(self.pool())
                    .await?
            }
            None => sqlx::query("DELETE FROM plugin WHERE name = $1").bind(name).execute(self.pool()).await?,
        };
        Ok(done.rows_affected() > 0)
    }
}

//! Accounts of the API server and the web app: a username, an argon2 password hash (hashed by
//! the caller; this crate never sees a password) and a role. Stored in the `account` table of
//! the first migration.

use sqlx::Row;

use crate::{Db, DbError, Timestamp, now_us};

/// A stored account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub username: String,
    /// A PHC string (`$argon2id$…`).
    pub password_hash: String,
    pub role: String,
    pub active: bool,
    pub created_at: Timestamp,
}

fn user_row(r: &sqlx::any::AnyRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        username: r.try_get(0)?,
        password_hash: r.try_get(1)?,
        role: r.try_get(2)?,
        active: r.try_get::<i32, _>(3)? != 0,
        created_at: r.try_get(4)?,
    })
}

impl Db {
    /// Adds an account; an existing username is a conflict.
    pub async fn create_user(&self, username: &str, password_hash: &str, role: &str) -> Result<(), DbError> {
        let result = sqlx::query(
            "INSERT INTO account (username, password_hash, role, active, created_at) VALUES ($1, $2, $3, 1, $4)",
        )
        .bind(username)
        .bind(password_hash)
        .bind(role)
        .bind(now_us())
        .execute(self.pool())
        .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(DbError::Conflict(format!("user `{username}` already exists: choose another username")))
            }
            other => other.map(|_| ()).map_err(DbError::from),
        }
    }

    /// The account with this username.
    pub async fn get_user(&self, username: &str) -> Result<Option<UserRow>, DbError> {
        let row =
            sqlx::query("SELECT username, password_hash, role, active, created_at FROM account WHERE username = $1")
                .bind(username)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.as_ref().map(user_row).transpose()?)
    }

    /// Every account, by username.
    pub async fn list_users(&self) -> Result<Vec<UserRow>, DbError> {
        let rows =
            sqlx::query("SELECT username, password_hash, role, active, created_at FROM account ORDER BY username")
                .fetch_all(self.pool())
                .await?;
        Ok(rows.iter().map(user_row).collect::<Result<_, _>>()?)
    }

    /// How many accounts exist.
    pub async fn count_users(&self) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM account").fetch_one(self.pool()).await?)
    }
}

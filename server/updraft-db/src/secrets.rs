//! Variables and connections. Connection passwords and extras, and variable values, are stored
//! encrypted; passwords never leave this module except to the code that uses the connection.

use sqlx::Row;

use crate::{Db, DbError, EncryptionKey};

/// A named connection, with its password in clear (only in memory).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connection {
    pub conn_id: String,
    pub conn_type: String,
    pub host: Option<String>,
    pub port: Option<i32>,
    pub schema: Option<String>,
    pub login: Option<String>,
    pub password: Option<String>,
    /// JSON text.
    pub extra: Option<String>,
    pub description: Option<String>,
}

impl Connection {
    /// The connection as a URL with the password hidden, for listings.
    pub fn redacted_uri(&self) -> String {
        let auth = match (&self.login, &self.password) {
            (Some(login), Some(_)) => format!("{login}:***@"),
            (Some(login), None) => format!("{login}@"),
            _ => String::new(),
        };
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let schema = self.schema.as_deref().map(|s| format!("/{s}")).unwrap_or_default();
        format!("{}://{auth}{}{port}{schema}", self.conn_type, self.host.as_deref().unwrap_or(""))
    }
}

impl Db {
    /// Creates or replaces a variable.
    pub async fn set_variable(
        &self,
        key: &EncryptionKey,
        name: &str,
        value: &str,
        description: Option<&str>,
    ) -> Result<(), DbError> {
        let sql = "INSERT INTO variable (key, value, description, is_encrypted) VALUES ($1, $2, $3, 1) \
                   ON CONFLICT (key) DO UPDATE SET value = excluded.value, description = excluded.description, is_encrypted = 1";
        sqlx::query(sql).bind(name).bind(key.encrypt(value)).bind(description).execute(self.pool()).await?;
        Ok(())
    }

    /// Creates a variable; an existing name is a conflict (unlike [`Db::set_variable`]).
    pub async fn create_variable(
        &self,
        key: &EncryptionKey,
        name: &str,
        value: &str,
        description: Option<&str>,
    ) -> Result<(), DbError> {
        let result = sqlx::query("INSERT INTO variable (key, value, description, is_encrypted) VALUES ($1, $2, $3, 1)")
            .bind(name)
            .bind(key.encrypt(value))
            .bind(description)
            .execute(self.pool())
            .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(DbError::Conflict(format!("variable `{name}` exists: change it instead")))
            }
            other => other.map(|_| ()).map_err(DbError::from),
        }
    }

    /// A variable, decrypted.
    pub async fn get_variable(&self, key: &EncryptionKey, name: &str) -> Result<Option<String>, DbError> {
        let row = sqlx::query("SELECT value, is_encrypted FROM variable WHERE key = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let value: String = row.try_get(0)?;
                let encrypted: i32 = row.try_get(1)?;
                Ok(Some(if encrypted != 0 { key.decrypt(&value)? } else { value }))
            }
        }
    }

    /// Variable names with their descriptions, sorted.
    pub async fn list_variables(&self) -> Result<Vec<(String, Option<String>)>, DbError> {
        let rows = sqlx::query("SELECT key, description FROM variable ORDER BY key").fetch_all(self.pool()).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Deletes a variable; returns whether it existed.
    pub async fn delete_variable(&self, name: &str) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM variable WHERE key = $1").bind(name).execute(self.pool()).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Adds a connection; an existing id is a conflict (delete it first), as in Airflow.
    pub async fn add_connection(&self, key: &EncryptionKey, c: &Connection) -> Result<(), DbError> {
        let sql = "INSERT INTO connection (conn_id, conn_type, host, port, schema_name, login, password, extra, description) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        let result = sqlx::query(sql)
            .bind(&c.conn_id)
            .bind(&c.conn_type)
            .bind(&c.host)
            .bind(c.port)
            .bind(&c.schema)
            .bind(&c.login)
            .bind(c.password.as_deref().map(|p| key.encrypt(p)))
            .bind(c.extra.as_deref().map(|e| key.encrypt(e)))
            .bind(&c.description)
            .execute(self.pool())
            .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(DbError::Conflict(format!(
                "connection `{}` already exists: delete it first (`updraft connections delete {}`)",
                c.conn_id, c.conn_id
            ))),
            other => other.map(|_| ()).map_err(DbError::from),
        }
    }

    /// A connection, its password decrypted.
    pub async fn get_connection(&self, key: &EncryptionKey, conn_id: &str) -> Result<Option<Connection>, DbError> {
        let row = sqlx::query("SELECT conn_id, conn_type, host, port, schema_name, login, password, extra, description FROM connection WHERE conn_id = $1")
            .bind(conn_id)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let password: Option<String> = row.try_get(6)?;
        let extra: Option<String> = row.try_get(7)?;
        Ok(Some(Connection {
            conn_id: row.try_get(0)?,
            conn_type: row.try_get(1)?,
            host: row.try_get(2)?,
            port: row.try_get(3)?,
            schema: row.try_get(4)?,
            login: row.try_get(5)?,
            password: password.map(|p| key.decrypt(&p)).transpose()?,
            extra: extra.map(|e| key.decrypt(&e)).transpose()?,
            description: row.try_get(8)?,
        }))
    }

    /// Every connection, with passwords left out.
    pub async fn list_connections(&self) -> Result<Vec<Connection>, DbError> {
        let rows = sqlx::query("SELECT conn_id, conn_type, host, port, schema_name, login, password IS NOT NULL, description FROM connection ORDER BY conn_id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| {
                let has_password: bool =
                    row.try_get::<i64, _>(6).map(|v| v != 0).or_else(|_| row.try_get::<bool, _>(6))?;
                Ok(Connection {
                    conn_id: row.try_get(0)?,
                    conn_type: row.try_get(1)?,
                    host: row.try_get(2)?,
                    port: row.try_get(3)?,
                    schema: row.try_get(4)?,
                    login: row.try_get(5)?,
                    password: has_password.then(|| "***".to_owned()),
                    extra: None,
                    description: row.try_get(7)?,
                })
            })
            .collect()
    }

    /// Deletes a connection; returns whether it existed.
    pub async fn delete_connection(&self, conn_id: &str) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM connection WHERE conn_id = $1").bind(conn_id).execute(self.pool()).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Replaces every field of an existing connection; returns whether it existed.
    pub async fn update_connection(&self, key: &EncryptionKey, c: &Connection) -> Result<bool, DbError> {
        let sql = "UPDATE connection SET conn_type = $2, host = $3, port = $4, schema_name = $5, login = $6, password = $7, \
                   extra = $8, description = $9 WHERE conn_id = $1";
        let done = sqlx::query(sql)
            .bind(&c.conn_id)
            .bind(&c.conn_type)
            .bind(&c.host)
            .bind(c.port)
            .bind(&c.schema)
            .bind(&c.login)
            .bind(c.password.as_deref().map(|p| key.encrypt(p)))
            .bind(c.extra.as_deref().map(|e| key.encrypt(e)))
            .bind(&c.description)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

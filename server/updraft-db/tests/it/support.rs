//! Fresh databases for tests: a SQLite file in a temporary folder, or a new PostgreSQL
//! database on the server at 127.0.0.1:5432 (override with UPDRAFT_TEST_POSTGRES_URL).

use std::sync::atomic::{AtomicU32, Ordering};

use updraft_db::Db;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backends {
    Sqlite,
    Postgres,
}

impl Backends {
    pub const ALL: [Backends; 2] = [Backends::Sqlite, Backends::Postgres];
}

pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

fn admin_url() -> String {
    std::env::var("UPDRAFT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub async fn fresh(backend: Backends) -> TestDb {
    match backend {
        Backends::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            TestDb { url: updraft_db::sqlite_url(dir.path()), pg_name: None, _dir: Some(dir) }
        }
        Backends::Postgres => {
            let name = format!("updraft_it_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
            let admin =
                Db::connect(&admin_url()).await.expect("PostgreSQL must run at 127.0.0.1:5432 (.ci/test starts it)");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(admin.pool())
                .await
                .expect("create database");
            admin.pool().close().await;
            let base = admin_url();
            let url = format!("{}/{name}", &base[..base.rfind('/').expect("url has a database")]);
            TestDb { url, pg_name: Some(name), _dir: None }
        }
    }
}

impl TestDb {
    pub async fn migrated(&self) -> Db {
        let db = Db::connect(&self.url).await.expect("connects");
        db.migrate().await.expect("migrates");
        db
    }

    pub async fn drop_db(self, db: Db) {
        db.pool().close().await;
        if let Some(name) = &self.pg_name {
            let admin = Db::connect(&admin_url()).await.expect("admin");
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                .execute(admin.pool())
                .await
                .expect("drop database");
            admin.pool().close().await;
        }
    }
}

//! Every difference between the two backends, in one place: SQLite (the embedded default: one
//! file, one scheduler) and PostgreSQL (production: several schedulers and API servers). The
//! queries themselves are written once in the SQL both accept; what differs is how a
//! connection is set up, which migrations apply, row locks, and how a batch's parameters are
//! written. Nothing outside this crate branches on the backend: it asks a [`Db`](crate::Db)
//! what it can do (for example [`Backend::concurrent_schedulers`]).

use sqlx::migrate::Migrator;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a [`Db`](crate::Db) talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names, if it is one of the two.
    pub(crate) fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    /// Whether several schedulers may run against this database at once. They may on
    /// PostgreSQL (row locks let them claim disjoint runs, and a scheduler whose heartbeat
    /// stops has its runs adopted by the others); on SQLite one scheduler runs, and whatever
    /// runs another left behind is its own at start.
    pub fn concurrent_schedulers(self) -> bool {
        self == Backend::Postgres
    }

    /// Connections in a pool: SQLite has one writer whatever the pool size.
    pub(crate) fn max_connections(self) -> u32 {
        match self {
            Backend::Sqlite => 4,
            Backend::Postgres => 16,
        }
    }

    /// Set on every new connection: SQLite in WAL mode with a busy timeout, so readers never
    /// block the writer, and with foreign keys enforced.
    pub(crate) fn connection_setup(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => Some(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
            ),
            Backend::Postgres => None,
        }
    }

    /// The migrations, embedded in the binary, one set per dialect.
    pub(crate) fn migrator(self) -> &'static Migrator {
        match self {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// A query counting the tables named `_sqlx_migrations` (1 once a migration ran).
    pub(crate) fn migrations_table_count(self) -> &'static str {
        match self {
            Backend::Sqlite => "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            Backend::Postgres => {
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
            }
        }
    }

    /// The row lock a read-then-write takes (`FOR UPDATE`); SQLite's write transaction
    /// already excludes every other writer.
    pub(crate) fn lock_rows(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// The row lock of a claim: rows another scheduler holds are skipped, not waited for, so
    /// concurrent schedulers claim disjoint rows. `of` names the table to lock in a join.
    pub(crate) fn lock_rows_skip_locked(self, of: Option<&str>) -> String {
        match (self, of) {
            (Backend::Sqlite, _) => String::new(),
            (Backend::Postgres, None) => " FOR UPDATE SKIP LOCKED".to_owned(),
            (Backend::Postgres, Some(table)) => format!(" FOR UPDATE OF {table} SKIP LOCKED"),
        }
    }

    /// `rows` rows of a `VALUES` list with one parameter per column, each cast to its column's
    /// type when one is given: `(CAST($1 AS BIGINT),$2),(…)`. SQLite gets anonymous `?`
    /// parameters: it finds a named one by scanning every name of the statement, which makes
    /// binding 10,000 `$N`s quadratic.
    pub(crate) fn values_rows(self, rows: usize, types: &[Option<&str>]) -> String {
        let mut sql = String::with_capacity(rows * types.len() * 12);
        for i in 0..rows {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for (k, ty) in types.iter().enumerate() {
                if k > 0 {
                    sql.push(',');
                }
                let mark = match self {
                    Backend::Sqlite => "?".to_owned(),
                    Backend::Postgres => format!("${}", i * types.len() + k + 1),
                };
                match ty {
                    Some(ty) => sql.push_str(&format!("CAST({mark} AS {ty})")),
                    None => sql.push_str(&mark),
                }
            }
            sql.push(')');
        }
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::Backend;

    #[test]
    fn batches_number_parameters_on_postgres_only() {
        assert_eq!(
            Backend::Postgres.values_rows(2, &[None, Some("TEXT")]),
            "($1,CAST($2 AS TEXT)),($3,CAST($4 AS TEXT))"
        );
        assert_eq!(Backend::Sqlite.values_rows(2, &[None, Some("TEXT")]), "(?,CAST(? AS TEXT)),(?,CAST(? AS TEXT))");
    }

    #[test]
    fn urls_name_their_backend() {
        assert_eq!(Backend::of_url("sqlite:///tmp/x.db"), Some(Backend::Sqlite));
        assert_eq!(Backend::of_url("postgresql://u@h/db"), Some(Backend::Postgres));
        assert_eq!(Backend::of_url("mysql://u@h/db"), None);
        assert!(Backend::Postgres.concurrent_schedulers());
        assert!(!Backend::Sqlite.concurrent_schedulers());
    }
}

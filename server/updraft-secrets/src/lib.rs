//! Connections and variables, wherever they come from. A platform team keeps credentials in
//! the cluster (Kubernetes Secrets, injected as environment variables or mounted as files), as
//! Airflow's `AIRFLOW_CONN_*` users do; analysts add the rest through the CLI, the API or the
//! web app. A lookup tries, in order:
//!
//! 1. the environment: `UPDRAFT_CONN_<ID>` (a URI or a JSON object) and `UPDRAFT_VAR_<KEY>`,
//!    the id or key in upper case;
//! 2. the mounted directories `[secrets] connections_dir` and `variables_dir`: one file per
//!    connection (named by its id, holding a URI or JSON) or variable (named by its key, holding
//!    the value), read at every lookup, so a Secret's update reaches the next try without a
//!    restart;
//! 3. the metadata database (values encrypted at rest).
//!
//! Listings say where each one comes from and never carry a password or a value from the
//! cluster.

pub mod uri;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use updraft_db::secrets::Connection;
use updraft_db::{Db, DbError, EncryptionKey};

const CONN_PREFIX: &str = "UPDRAFT_CONN_";
const VAR_PREFIX: &str = "UPDRAFT_VAR_";

/// Errors of a lookup: the database, or a connection from the cluster that cannot be read (the
/// message names the variable or file, never its value).
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{kind} `{id}` from the {origin}: {message}")]
    Invalid { kind: &'static str, id: String, origin: Origin, message: String },
}

/// Where a connection or variable came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An environment variable, by name.
    Environment(String),
    /// A file of a mounted directory.
    Directory(PathBuf),
    /// The metadata database.
    Database,
}

impl Origin {
    /// `environment`, `directory` or `database`: the `source` field of listings.
    pub fn kind(&self) -> &'static str {
        match self {
            Origin::Environment(_) => "environment",
            Origin::Directory(_) => "directory",
            Origin::Database => "database",
        }
    }

    /// Whether it can be changed through Updraft (only what the database holds can).
    pub fn is_managed(&self) -> bool {
        *self == Origin::Database
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Environment(name) => write!(f, "environment variable {name}"),
            Origin::Directory(path) => write!(f, "file {}", path.display()),
            Origin::Database => f.write_str("metadata database"),
        }
    }
}

/// Where to look besides the database.
#[derive(Clone, Default)]
pub struct Sources {
    /// The `UPDRAFT_CONN_*` and `UPDRAFT_VAR_*` variables of the environment, by name.
    pub environment: BTreeMap<String, String>,
    /// A directory with one file per connection (`[secrets] connections_dir`).
    pub connections_dir: Option<PathBuf>,
    /// A directory with one file per variable (`[secrets] variables_dir`).
    pub variables_dir: Option<PathBuf>,
}

impl Sources {
    /// This process's environment and the given directories.
    pub fn new(connections_dir: Option<PathBuf>, variables_dir: Option<PathBuf>) -> Self {
        let environment =
            std::env::vars().filter(|(k, _)| k.starts_with(CONN_PREFIX) || k.starts_with(VAR_PREFIX)).collect();
        Sources { environment, connections_dir, variables_dir }
    }
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The environment's values are secrets: only their names.
        f.debug_struct("Sources")
            .field("environment", &self.environment.keys().collect::<Vec<_>>())
            .field("connections_dir", &self.connections_dir)
            .field("variables_dir", &self.variables_dir)
            .finish()
    }
}

/// Connections and variables from every source, in lookup order.
#[derive(Clone)]
pub struct Secrets {
    db: Db,
    key: EncryptionKey,
    sources: Sources,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("sources", &self.sources).finish_non_exhaustive()
    }
}

/// The environment variable of connection `id` or variable `key`.
pub fn env_name(prefix: &str, id: &str) -> String {
    format!("{prefix}{}", id.to_ascii_uppercase())
}

/// A file of a Secret's directory: a regular entry named `name` (Kubernetes keeps its own
/// bookkeeping in dot-entries such as `..data`, which are never secrets).
fn secret_file(dir: &Path, name: &str) -> Option<PathBuf> {
    if name.is_empty() || name.starts_with('.') || name.contains('/') {
        return None;
    }
    let path = dir.join(name);
    path.is_file().then_some(path)
}

/// The entries of a Secret's directory, sorted; a missing directory has none.
fn secret_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| secret_file(dir, n).is_some())
        .collect();
    names.sort();
    names
}

/// A file's text without the one newline editors and `--from-file` leave at its end.
fn read_value(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_owned())
}

impl Secrets {
    /// Lookups in `sources`, then in the database (decrypted with `key`).
    pub fn new(db: Db, key: EncryptionKey, sources: Sources) -> Self {
        Secrets { db, key, sources }
    }

    /// The database behind the last source.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The key that decrypts what the database holds.
    pub fn key(&self) -> &EncryptionKey {
        &self.key
    }

    /// The text the cluster holds for `key` (environment variable `PREFIX<KEY>`, then the file
    /// `key` of `dir`), and where it came from.
    fn cluster_text(
        &self,
        prefix: &str,
        dir: Option<&Path>,
        key: &str,
    ) -> Result<Option<(String, Origin)>, SecretsError> {
        let name = env_name(prefix, key);
        if let Some(text) = self.sources.environment.get(&name) {
            return Ok(Some((text.clone(), Origin::Environment(name))));
        }
        let Some(path) = dir.and_then(|d| secret_file(d, key)) else { return Ok(None) };
        match read_value(&path) {
            Ok(text) => Ok(Some((text, Origin::Directory(path)))),
            Err(e) => Err(SecretsError::Invalid {
                kind: if prefix == CONN_PREFIX { "connection" } else { "variable" },
                id: key.to_owned(),
                origin: Origin::Directory(path),
                message: e.to_string(),
            }),
        }
    }

    /// Where the cluster defines `key`, without reading it.
    fn cluster_origin(&self, prefix: &str, dir: Option<&Path>, key: &str) -> Option<Origin> {
        let name = env_name(prefix, key);
        if self.sources.environment.contains_key(&name) {
            return Some(Origin::Environment(name));
        }
        dir.and_then(|d| secret_file(d, key)).map(Origin::Directory)
    }

    /// Connection `id` from the cluster, if it is there.
    fn cluster_connection(&self, id: &str) -> Result<Option<(Connection, Origin)>, SecretsError> {
        let Some((text, origin)) = self.cluster_text(CONN_PREFIX, self.sources.connections_dir.as_deref(), id)? else {
            return Ok(None);
        };
        match uri::parse(id, &text) {
            Ok(c) => Ok(Some((c, origin))),
            Err(message) => Err(SecretsError::Invalid { kind: "connection", id: id.to_owned(), origin, message }),
        }
    }

    /// Connection `id`, password in clear, and where it came from.
    pub async fn connection(&self, id: &str) -> Result<Option<(Connection, Origin)>, SecretsError> {
        if let Some(found) = self.cluster_connection(id)? {
            return Ok(Some(found));
        }
        Ok(self.db.get_connection(&self.key, id).await?.map(|c| (c, Origin::Database)))
    }

    /// Every connection, each id once (the first source wins), passwords as `***`, sorted by id.
    /// A connection from the cluster that cannot be read is listed by the error.
    pub async fn connections(&self) -> Result<Vec<(Connection, Origin)>, SecretsError> {
        let mut ids: Vec<String> = Vec::new();
        ids.extend(
            self.sources.environment.keys().filter_map(|k| k.strip_prefix(CONN_PREFIX).map(str::to_ascii_lowercase)),
        );
        if let Some(dir) = &self.sources.connections_dir {
            ids.extend(secret_names(dir));
        }
        let mut all: Vec<(Connection, Origin)> = Vec::new();
        for id in ids {
            if all.iter().any(|(c, _)| c.conn_id == id) {
                continue;
            }
            if let Some((mut c, origin)) = self.cluster_connection(&id)? {
                c.password = c.password.map(|_| "***".to_owned());
                c.extra = None;
                all.push((c, origin));
            }
        }
        for c in self.db.list_connections().await? {
            if !all.iter().any(|(known, _)| known.conn_id == c.conn_id) {
                all.push((c, Origin::Database));
            }
        }
        all.sort_by(|a, b| a.0.conn_id.cmp(&b.0.conn_id));
        Ok(all)
    }

    /// Where connection `id` is defined outside the database, if it is.
    pub fn cluster_origin_of_connection(&self, id: &str) -> Option<Origin> {
        self.cluster_origin(CONN_PREFIX, self.sources.connections_dir.as_deref(), id)
    }

    /// Variable `key`'s value and where it came from.
    pub async fn variable(&self, key: &str) -> Result<Option<(String, Origin)>, SecretsError> {
        if let Some(found) = self.cluster_text(VAR_PREFIX, self.sources.variables_dir.as_deref(), key)? {
            return Ok(Some(found));
        }
        Ok(self.db.get_variable(&self.key, key).await?.map(|v| (v, Origin::Database)))
    }

    /// Every variable's key, description and origin (never a value), each key once, sorted.
    pub async fn variables(&self) -> Result<Vec<(String, Option<String>, Origin)>, SecretsError> {
        let mut all: Vec<(String, Option<String>, Origin)> = Vec::new();
        for name in self.sources.environment.keys() {
            if let Some(key) = name.strip_prefix(VAR_PREFIX) {
                all.push((key.to_ascii_lowercase(), None, Origin::Environment(name.clone())));
            }
        }
        if let Some(dir) = &self.sources.variables_dir {
            for key in secret_names(dir) {
                if !all.iter().any(|(k, _, _)| *k == key) {
                    let path = dir.join(&key);
                    all.push((key, None, Origin::Directory(path)));
                }
            }
        }
        for (key, description) in self.db.list_variables().await? {
            if !all.iter().any(|(k, _, _)| *k == key) {
                all.push((key, description, Origin::Database));
            }
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    /// Where variable `key` is defined outside the database, if it is.
    pub fn cluster_origin_of_variable(&self, key: &str) -> Option<Origin> {
        self.cluster_origin(VAR_PREFIX, self.sources.variables_dir.as_deref(), key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn secrets(dir: &Path, environment: &[(&str, &str)]) -> Secrets {
        let db = Db::connect(&updraft_db::sqlite_url(dir)).await.expect("db");
        db.migrate().await.expect("migrate");
        let key = EncryptionKey::from_base64(&EncryptionKey::generate()).expect("key");
        let sources = Sources {
            environment: environment.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            connections_dir: Some(dir.join("connections")),
            variables_dir: Some(dir.join("variables")),
        };
        Secrets::new(db, key, sources)
    }

    #[tokio::test]
    async fn the_environment_wins_over_files_which_win_over_the_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = secrets(dir.path(), &[("UPDRAFT_CONN_WAREHOUSE", "postgres://env:envpw@env-host/dw")]).await;
        for id in ["warehouse", "reports", "legacy"] {
            let c = uri::parse(id, "postgres://db:dbpw@db-host/dw").expect("uri");
            s.db().add_connection(s.key(), &c).await.expect("add");
        }
        std::fs::create_dir_all(dir.path().join("connections/..data")).expect("k8s bookkeeping");
        std::fs::write(dir.path().join("connections/warehouse"), "postgres://file:filepw@file-host/dw").expect("w");
        std::fs::write(dir.path().join("connections/reports"), "postgres://file:filepw@file-host/dw\n").expect("w");

        let (c, origin) = s.connection("warehouse").await.expect("ok").expect("found");
        assert_eq!(
            (c.host.as_deref(), &origin),
            (Some("env-host"), &Origin::Environment("UPDRAFT_CONN_WAREHOUSE".into()))
        );
        let (c, origin) = s.connection("reports").await.expect("ok").expect("found");
        assert_eq!((c.host.as_deref(), origin.kind()), (Some("file-host"), "directory"));
        let (c, origin) = s.connection("legacy").await.expect("ok").expect("found");
        assert_eq!((c.password.as_deref(), origin), (Some("dbpw"), Origin::Database));

        // A file changed in place (a Secret's update) is read at the next lookup.
        std::fs::write(dir.path().join("connections/reports"), "postgres://file:filepw@moved-host/dw").expect("w");
        let (c, _) = s.connection("reports").await.expect("ok").expect("found");
        assert_eq!(c.host.as_deref(), Some("moved-host"));

        let listed = s.connections().await.expect("list");
        let summary: Vec<(String, &str, Option<String>)> =
            listed.iter().map(|(c, o)| (c.conn_id.clone(), o.kind(), c.password.clone())).collect();
        assert_eq!(
            summary,
            [
                ("legacy".to_owned(), "database", Some("***".to_owned())),
                ("reports".to_owned(), "directory", Some("***".to_owned())),
                ("warehouse".to_owned(), "environment", Some("***".to_owned())),
            ]
        );
        assert!(!format!("{listed:?}").contains("pw\""), "no password in a listing: {listed:?}");
    }

    #[tokio::test]
    async fn variables_from_every_source_and_a_bad_connection_names_its_origin_not_its_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s =
            secrets(dir.path(), &[("UPDRAFT_VAR_REGION", "eu-west-1"), ("UPDRAFT_CONN_BROKEN", "s3cr3t-no-scheme")])
                .await;
        std::fs::create_dir_all(dir.path().join("variables")).expect("dir");
        std::fs::write(dir.path().join("variables/threshold"), "0.25\n").expect("w");
        s.db().set_variable(s.key(), "owner", "data-team", Some("who to call")).await.expect("set");
        assert_eq!(s.variable("region").await.expect("ok").map(|v| v.0).as_deref(), Some("eu-west-1"));
        assert_eq!(s.variable("threshold").await.expect("ok").map(|v| v.0).as_deref(), Some("0.25"));
        assert_eq!(s.variable("owner").await.expect("ok").map(|v| v.1), Some(Origin::Database));
        assert!(s.variable("nope").await.expect("ok").is_none());
        let keys: Vec<(String, &str)> =
            s.variables().await.expect("list").into_iter().map(|(k, _, o)| (k, o.kind())).collect();
        assert_eq!(
            keys,
            [
                ("owner".to_owned(), "database"),
                ("region".to_owned(), "environment"),
                ("threshold".to_owned(), "directory")
            ]
        );
        let error = s.connection("broken").await.expect_err("not a URI").to_string();
        assert!(
            error.starts_with("connection `broken` from the environment variable UPDRAFT_CONN_BROKEN: not a URI"),
            "{error}"
        );
        assert!(!error.contains("s3cr3t"), "{error}");
    }
}

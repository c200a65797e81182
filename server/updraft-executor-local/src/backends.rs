//! The plugin host's backends on the metadata database: XCom, variables, and connections
//! (decrypted here, in the host, and handed to the SQL host interface as a URI; plugins only
//! ever see the connection's name).

use std::sync::Arc;

use serde_json::Value;
use updraft_db::{Db, EncryptionKey};
use updraft_plugin_host::backends::{BackendResult, BoxFuture};
use updraft_plugin_host::{Backends, Connection, ConnectionStore, TaskKey, VariableStore, XComStore};

struct DbBackend {
    db: Db,
    key: EncryptionKey,
}

/// Backends reading and writing `db`, with secrets decrypted by `key`.
pub fn db_backends(db: Db, key: EncryptionKey) -> Backends {
    let backend = Arc::new(DbBackend { db, key });
    Backends { xcom: backend.clone(), variables: backend.clone(), connections: backend, pods: None }
}

impl XComStore for DbBackend {
    fn push(&self, task: &TaskKey, key: &str, value: Value) -> BoxFuture<'_, BackendResult<()>> {
        let (dag, run, id, key) = (task.dag_id.clone(), task.run_id.clone(), task.task_id.clone(), key.to_owned());
        Box::pin(async move {
            self.db.xcom_push(&dag, &run, &id, &key, &value.to_string()).await.map_err(|e| e.to_string())
        })
    }

    fn pull(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        key: &str,
    ) -> BoxFuture<'_, BackendResult<Option<Value>>> {
        let (dag, run, id, key) = (dag_id.to_owned(), run_id.to_owned(), task_id.to_owned(), key.to_owned());
        Box::pin(async move {
            let text = self.db.xcom_pull(&dag, &run, &id, &key).await.map_err(|e| e.to_string())?;
            text.map(|t| serde_json::from_str(&t).map_err(|e| format!("stored XCom is not JSON: {e}"))).transpose()
        })
    }
}

impl VariableStore for DbBackend {
    fn get(&self, key: &str) -> BoxFuture<'_, BackendResult<Option<String>>> {
        let key_name = key.to_owned();
        Box::pin(async move { self.db.get_variable(&self.key, &key_name).await.map_err(|e| e.to_string()) })
    }
}

/// Percent-encodes the characters that would break a URI's user-info part.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URI the SQL host interface connects with.
pub fn connection_uri(c: &updraft_db::secrets::Connection) -> Result<String, String> {
    match c.conn_type.as_str() {
        "postgres" | "postgresql" => {
            let auth = match (&c.login, &c.password) {
                (Some(l), Some(p)) => format!("{}:{}@", escape(l), escape(p)),
                (Some(l), None) => format!("{}@", escape(l)),
                _ => String::new(),
            };
            let port = c.port.map(|p| format!(":{p}")).unwrap_or_default();
            let db = c.schema.as_deref().map(|s| format!("/{s}")).unwrap_or_default();
            Ok(format!("postgres://{auth}{}{port}{db}", c.host.as_deref().unwrap_or("localhost")))
        }
        "sqlite" => {
            let path = c
                .schema
                .as_deref()
                .or(c.host.as_deref())
                .ok_or("a sqlite connection needs a path: sqlite:////absolute/file.db")?;
            Ok(format!("sqlite:{path}"))
        }
        other => {
            Err(format!("connection type `{other}` is not supported by the SQL operators: use postgres or sqlite"))
        }
    }
}

impl ConnectionStore for DbBackend {
    fn get(&self, name: &str) -> BoxFuture<'_, BackendResult<Option<Connection>>> {
        let name = name.to_owned();
        Box::pin(async move {
            let stored = self.db.get_connection(&self.key, &name).await.map_err(|e| e.to_string())?;
            stored.map(|c| connection_uri(&c).map(|uri| Connection { uri })).transpose()
        })
    }
}

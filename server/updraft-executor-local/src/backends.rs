//! The plugin host's backends on the metadata database: XCom, variables, and connections
//! (from the cluster's Secrets or the database, decrypted here, in the host, and handed to the
//! SQL host interface as a URL; plugins only ever see the connection's name).

use std::sync::Arc;

use serde_json::Value;
use updraft_db::Db;
use updraft_plugin_host::backends::{BackendResult, BoxFuture};
use updraft_plugin_host::{Backends, Connection, ConnectionStore, TaskKey, VariableStore, XComStore};
use updraft_secrets::{Secrets, uri};

struct DbBackend {
    db: Db,
    secrets: Secrets,
}

/// Backends on the metadata database; connections and variables from every source of
/// `secrets` (the cluster's first, then the database's, decrypted here).
pub fn db_backends(secrets: Secrets) -> Backends {
    let backend = Arc::new(DbBackend { db: secrets.db().clone(), secrets });
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
        Box::pin(async move {
            self.secrets.variable(&key_name).await.map(|v| v.map(|(value, _)| value)).map_err(|e| e.to_string())
        })
    }
}

impl ConnectionStore for DbBackend {
    fn get(&self, name: &str) -> BoxFuture<'_, BackendResult<Option<Connection>>> {
        let name = name.to_owned();
        Box::pin(async move {
            let found = self.secrets.connection(&name).await.map_err(|e| e.to_string())?;
            found.map(|(c, _)| uri::sql_url(&c).map(|uri| Connection { uri })).transpose()
        })
    }
}

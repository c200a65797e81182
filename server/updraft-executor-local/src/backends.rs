//! The plugin host's backends on the metadata database: XCom, variables, connections (from
//! the cluster's Secrets or the database, decrypted here, in the host, and handed to the SQL
//! host interface as a URL; plugins only ever see the connection's name), and the plugin store
//! every process of a deployment shares.

use std::sync::Arc;

use serde_json::Value;
use updraft_db::Db;
use updraft_plugin_host::backends::{BackendResult, BoxFuture};
use updraft_plugin_host::{
    Backends, ComponentStore, Connection, ConnectionStore, PluginUpload, StoredPlugin, TaskKey, VariableStore,
    XComStore,
};
use updraft_secrets::{Secrets, uri};

struct DbBackend {
    db: Db,
    secrets: Secrets,
}

/// Backends on the metadata database; connections and variables from every source of
/// `secrets` (the cluster's first, then the database's, decrypted here).
pub fn db_backends(secrets: Secrets) -> Backends {
    let plugins = db_plugin_store(secrets.db().clone());
    let backend = Arc::new(DbBackend { db: secrets.db().clone(), secrets });
    Backends { xcom: backend.clone(), variables: backend.clone(), connections: backend, pods: None, plugins }
}

/// The plugin store on the metadata database (for processes that need no other backend, such
/// as the API server and `updraft plugins`).
pub fn db_plugin_store(db: Db) -> Arc<dyn ComponentStore> {
    Arc::new(DbPlugins(db))
}

struct DbPlugins(Db);

impl ComponentStore for DbPlugins {
    fn current(&self) -> BoxFuture<'_, BackendResult<Vec<StoredPlugin>>> {
        Box::pin(async move {
            let rows = self.0.plugin_versions().await.map_err(|e| e.to_string())?;
            Ok(rows
                .into_iter()
                .map(|r| StoredPlugin {
                    name: r.name,
                    sha256: r.sha256,
                    version: r.version,
                    installed_by: r.installed_by,
                    installed_at_us: r.installed_at.as_micros(),
                })
                .collect())
        })
    }

    fn fetch<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, BackendResult<Option<Vec<u8>>>> {
        Box::pin(async move { self.0.plugin_component(sha256).await.map_err(|e| e.to_string()) })
    }

    fn contains<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, BackendResult<bool>> {
        Box::pin(async move { self.0.has_plugin_component(sha256).await.map_err(|e| e.to_string()) })
    }

    fn put(&self, upload: PluginUpload) -> BoxFuture<'_, BackendResult<()>> {
        Box::pin(async move {
            let new = updraft_db::plugins::NewPlugin {
                name: &upload.name,
                version: &upload.version,
                sha256: &upload.sha256,
                content: &upload.bytes,
                installed_by: &upload.installed_by,
            };
            self.0.put_plugin(&new).await.map_err(|e| e.to_string())
        })
    }

    fn remove<'a>(&'a self, name: &'a str, only_if_sha256: Option<&'a str>) -> BoxFuture<'a, BackendResult<bool>> {
        Box::pin(async move { self.0.delete_plugin(name, only_if_sha256).await.map_err(|e| e.to_string()) })
    }
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

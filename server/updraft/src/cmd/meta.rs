//! How every command that touches the metadata database finds it, the key that encrypts its
//! secrets, and where else connections and variables come from: `UPDRAFT__DATABASE__URL` when
//! set, else the SQLite file in `--data-dir`; the key from `UPDRAFT__CORE__ENCRYPTION_KEY`,
//! else a key file the data folder keeps (created on first use, readable by its owner only);
//! `UPDRAFT_CONN_*`/`UPDRAFT_VAR_*` and the `[secrets]` directories before the database; task
//! logs in `DATA_DIR/logs`, and in S3 too with `UPDRAFT__LOGGING__REMOTE`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use updraft_db::{Db, EncryptionKey, SchemaStatus};
use updraft_logs::{RemoteLogs, RemoteSettings, TaskLogs};
use updraft_secrets::{Secrets, Sources};

#[derive(Debug, Clone, Args)]
pub struct MetaArgs {
    /// Folder of the embedded default: the SQLite database, logs, the encryption key file.
    #[arg(long, env = "UPDRAFT__CORE__DATA_DIR", default_value = "updraft-data", global = true)]
    pub data_dir: PathBuf,
    /// Metadata database URL (sqlite://… or postgres://…, TLS with `?sslmode=verify-full&sslrootcert=FILE`);
    /// overrides --data-dir's database.
    #[arg(long = "database-url", env = "UPDRAFT__DATABASE__URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    /// A directory of connections, one file per connection id holding its URI or JSON (a
    /// mounted Kubernetes Secret); looked up after `UPDRAFT_CONN_<ID>` and before the database.
    #[arg(long = "connections-dir", env = "UPDRAFT__SECRETS__CONNECTIONS_DIR", global = true, value_name = "DIR")]
    pub connections_dir: Option<PathBuf>,
    /// A directory of variables, one file per key holding its value (a mounted Kubernetes
    /// Secret); looked up after `UPDRAFT_VAR_<KEY>` and before the database.
    #[arg(long = "variables-dir", env = "UPDRAFT__SECRETS__VARIABLES_DIR", global = true, value_name = "DIR")]
    pub variables_dir: Option<PathBuf>,
    /// Also keep task logs in S3: `s3://BUCKET/PREFIX`. Each try's log is uploaded when the try
    /// ends and read from there once its local file is gone. Credentials: the standard AWS
    /// variables, or the web-identity token of an IAM role for the pod's ServiceAccount.
    #[arg(long = "remote-logs", env = "UPDRAFT__LOGGING__REMOTE", value_name = "URL", global = true)]
    pub remote_logs: Option<String>,
}

impl MetaArgs {
    pub fn url(&self) -> anyhow::Result<String> {
        match &self.database_url {
            Some(url) => Ok(url.clone()),
            None => {
                std::fs::create_dir_all(&self.data_dir)
                    .with_context(|| format!("creating the data folder {}", self.data_dir.display()))?;
                Ok(updraft_db::sqlite_url(&self.data_dir))
            }
        }
    }

    /// Connects and checks the schema is current, or says how to make it so.
    pub async fn db(&self) -> anyhow::Result<Db> {
        let db = Db::connect(&self.url()?).await?;
        match db.schema_status().await? {
            SchemaStatus::Current { .. } => Ok(db),
            status => {
                anyhow::bail!("the metadata database is not ready ({}): run `updraft db migrate`", describe(&status))
            }
        }
    }

    /// The task logs: `DATA_DIR/logs`, and the remote copy when `--remote-logs` is set, reached
    /// over HTTPS that also trusts `extra_ca_file` (`[http] extra_ca_file`).
    pub fn logs(&self, extra_ca_file: Option<&std::path::Path>) -> anyhow::Result<TaskLogs> {
        let remote = match self.remote_logs.as_deref().filter(|url| !url.is_empty()) {
            Some(url) => Some(RemoteLogs::new(&RemoteSettings {
                url: url.to_owned(),
                extra_ca_file: extra_ca_file.map(std::path::Path::to_path_buf),
            })?),
            None => None,
        };
        Ok(TaskLogs::local(self.data_dir.join("logs")).with_remote(remote))
    }

    /// Connections and variables from the environment, the Secret directories and `db`.
    pub fn secrets(&self, db: &Db) -> anyhow::Result<Secrets> {
        let sources = Sources::new(self.connections_dir.clone(), self.variables_dir.clone());
        Ok(Secrets::new(db.clone(), self.encryption_key()?, sources))
    }

    pub fn encryption_key(&self) -> anyhow::Result<EncryptionKey> {
        if let Ok(text) = std::env::var("UPDRAFT__CORE__ENCRYPTION_KEY") {
            return EncryptionKey::from_base64(&text).context("UPDRAFT__CORE__ENCRYPTION_KEY");
        }
        if self.database_url.is_some() {
            anyhow::bail!(
                "set UPDRAFT__CORE__ENCRYPTION_KEY (32 bytes, base64) to read or write secrets in an external database"
            );
        }
        let path = self.data_dir.join("encryption.key");
        if !path.exists() {
            std::fs::create_dir_all(&self.data_dir)?;
            write_private(&path, &EncryptionKey::generate())?;
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        EncryptionKey::from_base64(&text).with_context(|| format!("the key in {}", path.display()))
    }
}

pub fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

pub fn describe(status: &SchemaStatus) -> String {
    match status {
        SchemaStatus::Empty => "no schema yet".to_owned(),
        SchemaStatus::Behind { applied, expected } => {
            format!("schema at version {applied}, this binary needs {expected}")
        }
        SchemaStatus::Current { version } => format!("schema at version {version}, current"),
        SchemaStatus::Ahead { applied, expected } => {
            format!("schema at version {applied}, newer than this binary's {expected}: upgrade updraft")
        }
    }
}

/// A small runtime for the commands that talk to the database.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

//! How every command that touches the metadata database finds it, the key that encrypts its
//! secrets, and the task logs: `UPDRAFT__DATABASE__URL` when set, else the SQLite file in
//! `--data-dir`; the key from `UPDRAFT__CORE__ENCRYPTION_KEY`, else a key file the data folder
//! keeps (created on first use, readable by its owner only); logs in `DATA_DIR/logs`, and in S3
//! with `UPDRAFT__LOGGING__REMOTE`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use updraft_db::{Db, EncryptionKey, SchemaStatus};
use updraft_logs::{RemoteLogs, RemoteSettings, TaskLogs};

#[derive(Debug, Clone, Args)]
pub struct MetaArgs {
    /// Folder of the embedded default: the SQLite database, logs, the encryption key file.
    #[arg(long, env = "UPDRAFT__CORE__DATA_DIR", default_value = "updraft-data", global = true)]
    pub data_dir: PathBuf,
    /// Metadata database URL (sqlite://… or postgres://…); overrides --data-dir's database.
    #[arg(long = "database-url", env = "UPDRAFT__DATABASE__URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    /// Also keep task logs in S3: `s3://BUCKET/PREFIX`. Each try's log is uploaded when the try
    /// ends and read from there once its local file is gone. Credentials: the standard AWS
    /// variables, or the web-identity token of an IAM role for the pod's ServiceAccount.
    #[arg(long = "remote-logs", env = "UPDRAFT__LOGGING__REMOTE", value_name = "URL", global = true)]
    pub remote_logs: Option<String>,
    /// A PEM file of CA certificates trusted besides the platform's, for HTTPS the server makes
    /// (here: S3).
    #[arg(long = "extra-ca-file", env = "UPDRAFT__HTTP__EXTRA_CA_FILE", value_name = "FILE", global = true)]
    pub extra_ca_file: Option<PathBuf>,
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

    /// The task logs: `DATA_DIR/logs`, and the remote copy when `--remote-logs` is set.
    pub fn logs(&self) -> anyhow::Result<TaskLogs> {
        let remote = match self.remote_logs.as_deref().filter(|url| !url.is_empty()) {
            Some(url) => Some(RemoteLogs::new(&RemoteSettings {
                url: url.to_owned(),
                extra_ca_file: self.extra_ca_file.clone(),
            })?),
            None => None,
        };
        Ok(TaskLogs::local(self.data_dir.join("logs")).with_remote(remote))
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

//! The S3 copy of task logs (`[logging] remote = "s3://BUCKET/PREFIX"`), through `object_store`.
//!
//! Credentials and endpoints come from the standard AWS environment, as every AWS SDK reads it:
//! `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`(/`AWS_SESSION_TOKEN`); or the web-identity token
//! that IAM roles for service accounts (IRSA) mount, `AWS_WEB_IDENTITY_TOKEN_FILE` with
//! `AWS_ROLE_ARN`, exchanged at STS (`AssumeRoleWithWebIdentity`) for temporary keys; else the
//! instance's metadata service. `AWS_REGION`, `AWS_ENDPOINT_URL` (an S3-compatible server),
//! `AWS_ENDPOINT_URL_STS` and `AWS_ALLOW_HTTP` are honoured too. HTTPS trusts the platform's
//! root certificates plus `[http] extra_ca_file`.
//!
//! S3 actions used: `PutObject` (and `AbortMultipartUpload` for a log over 10 MB whose upload
//! fails), `GetObject` (also for `HeadObject`), `ListBucket` (a missing log is a 404 only with
//! it, and `db clean` lists a run's logs) and `DeleteObject` (`db clean`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::buffered::BufWriter;
use object_store::path::{Path as Key, PathPart};
use object_store::{BackoffConfig, Certificate, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use tokio::io::AsyncWriteExt;

use crate::read::{CHUNK, LogChunk, Origin, cut};
use crate::{LogError, TryLog, run_segments};

/// How to reach the remote logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteSettings {
    /// `s3://BUCKET/PREFIX` (`[logging] remote`, `UPDRAFT__LOGGING__REMOTE`).
    pub url: String,
    /// A PEM file of extra CA certificates trusted besides the platform's (`[http]
    /// extra_ca_file`, `UPDRAFT__HTTP__EXTRA_CA_FILE`).
    pub extra_ca_file: Option<PathBuf>,
}

/// Task logs in an S3 bucket under a prefix. Cheap to clone.
#[derive(Clone)]
pub struct RemoteLogs {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: Vec<String>,
}

impl std::fmt::Debug for RemoteLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteLogs").field("bucket", &self.bucket).field("prefix", &self.prefix).finish()
    }
}

/// `s3://BUCKET/A/B` → (`BUCKET`, [`A`, `B`]).
fn parse_url(url: &str) -> Result<(String, Vec<String>), LogError> {
    let bad = |why: &str| {
        LogError::Config(format!(
            "[logging] remote (UPDRAFT__LOGGING__REMOTE) must look like s3://BUCKET/PREFIX, not `{url}`: {why}"
        ))
    };
    let rest = url.strip_prefix("s3://").ok_or_else(|| bad("only s3:// is supported"))?;
    let mut parts = rest.split('/');
    let bucket = parts.next().unwrap_or_default();
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    if bucket.len() < 3 || bucket.len() > 63 || !bucket.chars().all(valid) {
        return Err(bad("a bucket name is 3 to 63 lowercase letters, digits, dots and hyphens"));
    }
    let prefix: Vec<String> = parts.filter(|p| !p.is_empty()).map(str::to_owned).collect();
    if prefix.iter().any(|p| p == "." || p == "..") {
        return Err(bad("the prefix may not contain . or .. segments"));
    }
    Ok((bucket.to_owned(), prefix))
}

/// Client options: timeouts, and the platform's roots plus the extra CA file.
fn client_options(extra_ca_file: Option<&Path>) -> Result<ClientOptions, LogError> {
    let mut options =
        ClientOptions::new().with_connect_timeout(Duration::from_secs(10)).with_timeout(Duration::from_secs(120));
    if let Some(path) = extra_ca_file {
        let what = format!("the extra CA file {} ([http] extra_ca_file, UPDRAFT__HTTP__EXTRA_CA_FILE)", path.display());
        let pem = std::fs::read(path).map_err(|e| LogError::Config(format!("cannot read {what}: {e}")))?;
        let certificates = Certificate::from_pem_bundle(&pem)
            .map_err(|e| LogError::Config(format!("{what} is not a PEM bundle of certificates: {e}")))?;
        if certificates.is_empty() {
            return Err(LogError::Config(format!("{what} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")));
        }
        for certificate in certificates {
            options = options.with_root_certificate(certificate);
        }
    }
    Ok(options)
}

impl RemoteLogs {
    /// Connects nothing yet: checks the settings and builds the client (credentials are
    /// fetched on the first request).
    pub fn new(settings: &RemoteSettings) -> Result<RemoteLogs, LogError> {
        let (bucket, prefix) = parse_url(&settings.url)?;
        // reqwest's rustls needs a process-wide crypto provider; ring is the workspace's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A few quick retries: a try waits for its upload, and an unreachable bucket must not
        // hold it for the library's default three minutes.
        let retry =
            RetryConfig { backoff: BackoffConfig::default(), max_retries: 3, retry_timeout: Duration::from_secs(30) };
        let mut builder = AmazonS3Builder::new()
            .with_client_options(client_options(settings.extra_ca_file.as_deref())?)
            .with_retry(retry);
        // What `AmazonS3Builder::from_env` reads, applied after the client options so that
        // `AWS_ALLOW_HTTP` and the like are kept.
        for (key, value) in std::env::vars() {
            if key.starts_with("AWS_")
                && let Ok(config_key) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>()
            {
                builder = builder.with_config(config_key, value);
            }
        }
        let store = builder.with_bucket_name(&bucket).build().map_err(|source| LogError::Remote {
            action: "setting up",
            url: settings.url.clone(),
            source,
        })?;
        Ok(RemoteLogs { store: Arc::new(store), bucket, prefix })
    }

    /// The object of a try's log: `PREFIX/dag_id=…/run_id=…/task_id=…/attempt=N.log`.
    pub fn key(&self, log: &TryLog) -> Key {
        let segments = log.segments();
        self.prefix.iter().map(String::as_str).chain(segments.iter().map(String::as_str)).map(PathPart::from).collect()
    }

    /// `s3://BUCKET/KEY`, for messages.
    pub fn url_of(&self, key: &Key) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    fn remote_error(&self, action: &'static str, key: &Key) -> impl FnOnce(object_store::Error) -> LogError {
        let url = self.url_of(key);
        move |source| LogError::Remote { action, url, source }
    }

    /// Uploads the file `local` as a try's log, replacing any earlier copy; a log over 10 MB
    /// goes in parts. A missing file is nothing to upload.
    pub async fn upload(&self, log: &TryLog, local: &Path) -> Result<(), LogError> {
        let key = self.key(log);
        let mut file = match tokio::fs::File::open(local).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(LogError::Io { action: "reading", path: local.to_path_buf(), source }),
        };
        let mut writer = BufWriter::new(Arc::clone(&self.store), key.clone());
        let written = match tokio::io::copy(&mut file, &mut writer).await {
            Ok(_) => writer.shutdown().await,
            Err(error) => {
                // Parts already sent are discarded (AbortMultipartUpload). A writer whose
                // shutdown failed may not be aborted (object_store panics): S3's lifecycle rule
                // for incomplete uploads is the backstop there.
                let _ = writer.abort().await;
                Err(error)
            }
        };
        if let Err(error) = written {
            let source = object_store::Error::Generic { store: "S3", source: Box::new(error) };
            return Err(self.remote_error("uploading the try's log to", &key)(source));
        }
        tracing::debug!(url = %self.url_of(&key), "try log uploaded");
        Ok(())
    }

    /// The whole remote copy of a try's log, if there is one.
    pub async fn download(&self, log: &TryLog) -> Result<Option<Vec<u8>>, LogError> {
        let key = self.key(log);
        let result = match self.store.get(&key).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.remote_error("reading", &key)(e)),
        };
        let bytes = result.bytes().await.map_err(self.remote_error("reading", &key))?;
        Ok(Some(bytes.to_vec()))
    }

    /// A chunk of the remote copy from `start` (the try has ended); `None` when there is none.
    pub async fn read(&self, log: &TryLog, start: u64) -> Result<Option<LogChunk>, LogError> {
        let key = self.key(log);
        let meta = match self.store.head(&key).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.remote_error("reading", &key)(e)),
        };
        let start = start.min(meta.size);
        if start == meta.size {
            return Ok(Some(LogChunk { bytes: Vec::new(), end: start, at_end: true, origin: Origin::Remote }));
        }
        let end = start.saturating_add(CHUNK).min(meta.size);
        let bytes = self.store.get_range(&key, start..end).await.map_err(self.remote_error("reading", &key))?;
        Ok(Some(cut(bytes.to_vec(), start, meta.size, false, Origin::Remote)))
    }

    /// Deletes every object of a run's logs (with `dry_run`, only counts them).
    pub async fn remove_run(&self, dag_id: &str, run_id: &str, dry_run: bool) -> Result<u64, LogError> {
        let segments = run_segments(dag_id, run_id);
        let folder: Key = self
            .prefix
            .iter()
            .map(String::as_str)
            .chain(segments.iter().map(String::as_str))
            .map(PathPart::from)
            .collect();
        let keys: Vec<Key> = self
            .store
            .list(Some(&folder))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(self.remote_error("listing", &folder))?;
        let count = keys.len() as u64;
        if !dry_run && !keys.is_empty() {
            let stream = futures_util::stream::iter(keys.into_iter().map(Ok)).boxed();
            let deleted: Vec<Key> =
                self.store.delete_stream(stream).try_collect().await.map_err(self.remote_error("deleting", &folder))?;
            tracing::debug!(count = deleted.len(), url = %self.url_of(&folder), "run logs deleted");
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_s3_urls_with_a_valid_bucket_are_accepted() {
        assert_eq!(parse_url("s3://logs-bucket").expect("bucket only"), ("logs-bucket".into(), vec![]));
        assert_eq!(
            parse_url("s3://logs.bucket/updraft//prod/").expect("prefix"),
            ("logs.bucket".into(), vec!["updraft".into(), "prod".into()])
        );
        for bad in ["gs://bucket/x", "s3://", "s3://Bucket/x", "s3://ab", "s3://bucket/../x", "/var/logs"] {
            let error = parse_url(bad).expect_err(bad).to_string();
            assert!(error.starts_with("[logging] remote (UPDRAFT__LOGGING__REMOTE) must look like s3://"), "{error}");
        }
    }

    #[test]
    fn keys_sit_under_the_prefix_with_the_local_layout() {
        let remote = RemoteLogs::new(&RemoteSettings { url: "s3://bucket/a/b".into(), extra_ca_file: None })
            .expect("built without a request");
        let key = remote.key(&TryLog::new("etl", "manual__2024-01-01T00:00:00+00:00", "load", 3));
        assert_eq!(key.as_ref(), "a/b/dag_id=etl/run_id=manual__2024-01-01T00:00:00+00:00/task_id=load/attempt=3.log");
        assert_eq!(remote.url_of(&key), format!("s3://bucket/{key}"));
    }

    #[test]
    fn a_bad_extra_ca_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").expect("written");
        let settings = RemoteSettings { url: "s3://bucket".into(), extra_ca_file: Some(path.clone()) };
        let error = RemoteLogs::new(&settings).expect_err("no certificate").to_string();
        assert!(error.contains("ca.pem ([http] extra_ca_file, UPDRAFT__HTTP__EXTRA_CA_FILE)"), "{error}");
        let settings = RemoteSettings { url: "s3://bucket".into(), extra_ca_file: Some(dir.path().join("missing")) };
        let error = RemoteLogs::new(&settings).expect_err("missing").to_string();
        assert!(error.starts_with("cannot read the extra CA file"), "{error}");
    }
}

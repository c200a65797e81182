//! Task try logs: where each try's log lives, how it outlives the pod that wrote it, and how it
//! is read back.
//!
//! A try writes its log line by line to a local file, `LOGS/dag_id=…/run_id=…/task_id=…/
//! attempt=N.log` (the data folder's `logs`, a shared volume on Kubernetes); whoever writes to
//! it (the plugin host, an executor, the scheduler, a task pod's worker) appends through the
//! try's [`TryLogFile`]. With
//! `[logging] remote = "s3://BUCKET/PREFIX"` the file is also uploaded, when the try ends, to the
//! object `PREFIX/dag_id=…/run_id=…/task_id=…/attempt=N.log` ([`RemoteLogs`]). Readers (the API,
//! the web app through it, `updraft tasks logs`) take the local copy first and the remote one
//! when the local file is gone, in chunks addressed by byte offsets, so a log stays readable
//! after its pod, its node and its volume are gone. An upload that fails is logged and never
//! fails the try: the local copy stays.

mod read;
mod remote;
mod try_log;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinSet;
use tracing::warn;

pub use read::{CHUNK, LogChunk, Origin};
pub use remote::{RemoteLogs, RemoteSettings};
use try_log::run_segments;
pub use try_log::{TryLog, TryLogFile};

/// What can go wrong with task logs, each saying what to check.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A setting is wrong (the remote URL, the CA file).
    #[error("{0}")]
    Config(String),
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error(
        "{action} {url}: {source}; check [logging] remote (UPDRAFT__LOGGING__REMOTE) and the AWS credentials \
         (AWS_* variables, or the IAM role of the pod's ServiceAccount)"
    )]
    Remote { action: &'static str, url: String, source: object_store::Error },
}

/// What [`TaskLogs::remove_run`] removed, or would remove.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemovedLogs {
    pub local_files: u64,
    pub remote_objects: u64,
}

/// The task logs of a deployment: the local logs folder and, when configured, the S3 copy.
/// Cheap to clone; clones share the uploads in flight ([`TaskLogs::flush`]).
#[derive(Debug, Clone, Default)]
pub struct TaskLogs {
    dir: PathBuf,
    remote: Option<RemoteLogs>,
    pending: Arc<Mutex<JoinSet<()>>>,
}

impl TaskLogs {
    /// Logs in the folder `dir` only.
    pub fn local(dir: impl Into<PathBuf>) -> TaskLogs {
        TaskLogs { dir: dir.into(), ..TaskLogs::default() }
    }

    /// The same, also shipped to (and read from) `remote`.
    pub fn with_remote(mut self, remote: Option<RemoteLogs>) -> TaskLogs {
        self.remote = remote;
        self
    }

    /// The local logs folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where logs are shipped, with `[logging] remote`.
    pub fn remote(&self) -> Option<&RemoteLogs> {
        self.remote.as_ref()
    }

    /// Where a try's log is written locally.
    pub fn path(&self, log: &TryLog) -> PathBuf {
        log.path_in(&self.dir)
    }

    /// A try's log with its local file in the logs folder: what to append to and ship.
    pub fn file(&self, log: TryLog) -> TryLogFile {
        let path = self.path(&log);
        TryLogFile::new(log, path)
    }

    /// Uploads a finished try's log (its local file) when a remote is configured; returns
    /// whether it was uploaded. A failure is logged, not returned: the try's outcome never
    /// depends on it, and the local copy stays readable.
    pub async fn ship(&self, file: &TryLogFile) -> bool {
        let Some(remote) = self.remote.clone() else { return false };
        // On a task of its own: even a panic in the upload ends here, never in the try's runner.
        let upload = {
            let file = file.clone();
            tokio::spawn(async move { remote.upload(file.log(), file.path()).await })
        };
        let error = match upload.await {
            Ok(Ok(())) => return true,
            Ok(Err(error)) => error.to_string(),
            Err(error) => format!("the upload stopped: {error}"),
        };
        let log = file.log();
        warn!(%error, dag_id = %log.dag_id, run_id = %log.run_id, task_id = %log.task_id,
              try_number = log.try_number, "the try's log was not uploaded; the local copy stays");
        false
    }

    /// [`TaskLogs::ship`] in the background, for callers that cannot wait (the scheduler's
    /// loop); [`TaskLogs::flush`] waits for it. Outside a tokio runtime nothing is shipped.
    pub fn ship_later(&self, file: TryLogFile) {
        if self.remote.is_none() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            warn!(task_id = %file.log().task_id, "no runtime to upload the try's log on; the local copy stays");
            return;
        };
        let logs = self.clone();
        let mut pending = lock(&self.pending);
        while pending.try_join_next().is_some() {}
        pending.spawn_on(
            async move {
                logs.ship(&file).await;
            },
            &handle,
        );
    }

    /// Waits up to `timeout` for the uploads started by [`TaskLogs::ship_later`].
    pub async fn flush(&self, timeout: Duration) {
        let mut pending = std::mem::take(&mut *lock(&self.pending));
        let all = async { while pending.join_next().await.is_some() {} };
        if tokio::time::timeout(timeout, all).await.is_err() {
            warn!(?timeout, "some try logs were still uploading at shutdown; their local copies stay");
        }
    }

    /// Appends `text` to a try's log and ships the whole log: how the scheduler records the end
    /// of a try its worker could not (a pod that never started, was evicted or deleted). When
    /// the local file is missing but a remote copy exists (a scheduler that does not share the
    /// workers' volume), the remote copy is fetched first, so the upload never loses what the
    /// worker wrote.
    pub async fn append_and_ship(&self, file: &TryLogFile, text: &str) {
        if let Some(remote) = &self.remote
            && !file.path().exists()
        {
            match remote.download(file.log()).await {
                Ok(Some(bytes)) => {
                    if let Err(error) = write_new(file.path(), &bytes) {
                        warn!(%error, "could not keep the remote copy of the try's log");
                    }
                }
                Ok(None) => {}
                Err(error) => warn!(%error, "could not read the remote copy of the try's log before appending"),
            }
        }
        if let Err(error) = file.append(text) {
            warn!(%error, "could not write the try's log");
        }
        self.ship(file).await;
    }

    /// Reads a try's log from byte `start`: the local file `local` first, else (when it does not
    /// exist and the try has ended) the remote copy. `live` says the try may still write: the
    /// unfinished last line is then held back. A log found nowhere reads as empty.
    pub async fn read(&self, log: &TryLog, local: &Path, start: u64, live: bool) -> Result<LogChunk, LogError> {
        let path = local.to_path_buf();
        let found = tokio::task::spawn_blocking(move || read::read_local(&path, start, live))
            .await
            .map_err(|e| LogError::Io { action: "reading", path: local.to_path_buf(), source: e.into() })?
            .map_err(|source| LogError::Io { action: "reading", path: local.to_path_buf(), source })?;
        if let Some(chunk) = found {
            return Ok(chunk);
        }
        // A running try writes its local file; its remote copy appears when it ends.
        if let (Some(remote), false) = (&self.remote, live)
            && let Some(chunk) = remote.read(log, start).await?
        {
            return Ok(chunk);
        }
        Ok(LogChunk { bytes: Vec::new(), end: start, at_end: true, origin: Origin::Nowhere })
    }

    /// Removes every log of a run, local files and remote objects (or, with `dry_run`, only
    /// counts them).
    pub async fn remove_run(&self, dag_id: &str, run_id: &str, dry_run: bool) -> Result<RemovedLogs, LogError> {
        let folder = run_segments(dag_id, run_id).iter().fold(self.dir.clone(), |path, s| path.join(s));
        let walked = {
            let folder = folder.clone();
            tokio::task::spawn_blocking(move || remove_folder(&folder, dry_run)).await
        };
        let local = walked
            .map_err(|e| LogError::Io { action: "removing", path: folder.clone(), source: e.into() })?
            .map_err(|source| LogError::Io { action: "removing", path: folder, source })?;
        let remote = match &self.remote {
            Some(remote) => remote.remove_run(dag_id, run_id, dry_run).await?,
            None => 0,
        };
        Ok(RemovedLogs { local_files: local, remote_objects: remote })
    }
}

/// Writes a file that must not exist yet (another writer wins).
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    use std::io::Write;
    let io = |source| LogError::Io { action: "writing", path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(mut file) => file.write_all(bytes).map_err(io),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(e)),
    }
}

/// Counts the files below `folder` and, unless `dry_run`, removes it. A missing folder is 0.
fn remove_folder(folder: &Path, dry_run: bool) -> std::io::Result<u64> {
    let mut files = 0;
    let mut stack = vec![folder.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                files += 1;
            }
        }
    }
    if !dry_run {
        match std::fs::remove_dir_all(folder) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(files)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_runs_logs_are_counted_then_removed_and_other_runs_stay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = TaskLogs::local(dir.path());
        for (run, task) in [("r1", "a"), ("r1", "b"), ("r2", "a")] {
            logs.file(TryLog::new("etl", run, task, 1)).append("hello\n").expect("written");
        }
        let counted = logs.remove_run("etl", "r1", true).await.expect("dry run");
        assert_eq!(counted, RemovedLogs { local_files: 2, remote_objects: 0 });
        assert!(logs.path(&TryLog::new("etl", "r1", "a", 1)).exists(), "a dry run removes nothing");
        assert_eq!(logs.remove_run("etl", "r1", false).await.expect("removed").local_files, 2);
        assert!(!dir.path().join("dag_id=etl/run_id=r1").exists());
        assert!(logs.path(&TryLog::new("etl", "r2", "a", 1)).exists());
        assert_eq!(logs.remove_run("etl", "r1", false).await.expect("again").local_files, 0);
    }

    #[tokio::test]
    async fn without_a_remote_a_missing_log_reads_as_empty_and_nothing_ships() {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = TaskLogs::local(dir.path());
        let log = TryLog::new("etl", "r1", "a", 1);
        let chunk = logs.read(&log, &logs.path(&log), 0, false).await.expect("reads");
        assert_eq!((chunk.bytes.len(), chunk.end, chunk.at_end, chunk.origin), (0, 0, true, Origin::Nowhere));
        assert!(!logs.ship(&logs.file(log)).await);
    }
}

//! One try's log: who it belongs to ([`TryLog`], which names its file and its remote object) and
//! its local file ([`TryLogFile`]), through which every line written to it goes, whoever writes
//! it: the scheduler for a try that could not start, an executor about the try's pod or runner,
//! the plugin host for the operator's lines, the worker of a task pod. One writer of the file's
//! format, so that every append creates the folder and adds to the end the same way.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::LogError;

/// One try's log, by identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TryLog {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub try_number: u32,
}

impl TryLog {
    /// The log of one try.
    pub fn new(dag_id: &str, run_id: &str, task_id: &str, try_number: u32) -> TryLog {
        TryLog { dag_id: dag_id.to_owned(), run_id: run_id.to_owned(), task_id: task_id.to_owned(), try_number }
    }

    /// The path segments below the logs folder (or the remote prefix).
    pub(crate) fn segments(&self) -> [String; 4] {
        let [dag, run] = run_segments(&self.dag_id, &self.run_id);
        [dag, run, format!("task_id={}", self.task_id), format!("attempt={}.log", self.try_number)]
    }

    /// The local file of this try's log in the logs folder `dir`.
    pub fn path_in(&self, dir: &Path) -> PathBuf {
        self.segments().iter().fold(dir.to_path_buf(), |path, segment| path.join(segment))
    }
}

/// The segments of a run's folder: `dag_id=…`, `run_id=…`.
pub(crate) fn run_segments(dag_id: &str, run_id: &str) -> [String; 2] {
    [format!("dag_id={dag_id}"), format!("run_id={run_id}")]
}

/// A try's log and its local file: what writers append to, and what
/// [`TaskLogs::ship`](crate::TaskLogs::ship) uploads. Usually made by
/// [`TaskLogs::file`](crate::TaskLogs::file) (the file in the logs folder); an executor gets it
/// from the try it runs, whose log file the scheduler chose.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TryLogFile {
    log: TryLog,
    path: PathBuf,
}

impl TryLogFile {
    /// The log `log`, kept in the local file `path`.
    pub fn new(log: TryLog, path: impl Into<PathBuf>) -> TryLogFile {
        TryLogFile { log, path: path.into() }
    }

    /// Whose log this is (what names its remote copy).
    pub fn log(&self) -> &TryLog {
        &self.log
    }

    /// The local file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `text` as it is (each line ending in `\n`), creating the file and its folder.
    pub fn append(&self, text: &str) -> Result<(), LogError> {
        self.open_append()?.write_all(text.as_bytes()).map_err(|source| self.io_error(source))
    }

    /// Appends one line, adding its `\n`.
    pub fn append_line(&self, line: &str) -> Result<(), LogError> {
        self.append(&format!("{line}\n"))
    }

    /// Opens the file for appending, creating it and its folder: for a writer that keeps it
    /// open and appends lines as they come (the plugin host's live log of a running try).
    pub fn open_append(&self) -> Result<std::fs::File, LogError> {
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| self.io_error(source))?;
        }
        std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(|source| self.io_error(source))
    }

    fn io_error(&self, source: std::io::Error) -> LogError {
        LogError::Io { action: "writing", path: self.path.clone(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_try_log_lives_under_its_dag_run_task_and_attempt() {
        let log = TryLog::new("etl", "manual__2024-01-01T00:00:00+00:00", "load", 2);
        assert_eq!(
            log.path_in(Path::new("/data/logs")),
            Path::new("/data/logs/dag_id=etl/run_id=manual__2024-01-01T00:00:00+00:00/task_id=load/attempt=2.log")
        );
    }

    #[test]
    fn appends_create_the_folder_and_add_to_the_end_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = TryLog::new("etl", "r1", "load", 1);
        let file = TryLogFile::new(log.clone(), log.path_in(dir.path()));
        assert!(!dir.path().join("dag_id=etl").exists());
        file.append_line("[updraft] first").expect("a line");
        file.append("second\nthird ").expect("text");
        file.append_line("continued").expect("a line");
        {
            let mut open = file.open_append().expect("open");
            open.write_all(b"fourth\n").expect("written");
        }
        file.append_line("fifth").expect("a line");
        let written = std::fs::read_to_string(file.path()).expect("the file");
        assert_eq!(written, "[updraft] first\nsecond\nthird continued\nfourth\nfifth\n");
        assert_eq!(file.log(), &log);
    }

    #[test]
    fn an_append_that_cannot_write_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A file where the log's folder should be.
        std::fs::write(dir.path().join("blocked"), "").expect("a file");
        let file = TryLogFile::new(TryLog::new("etl", "r1", "load", 1), dir.path().join("blocked/attempt=1.log"));
        let error = file.append_line("lost").expect_err("cannot write below a file");
        assert!(error.to_string().starts_with("writing "), "{error}");
        assert!(error.to_string().contains("blocked/attempt=1.log"), "{error}");
    }
}

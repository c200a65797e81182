//! The DagBag: reads a DAGs folder from disk into validated DAGs and import errors.
//!
//! This is the I/O side of `updraft-dag`. It finds DAGs (a folder holding `dag.yaml` plus task
//! files at any depth, or a single YAML file with a `tasks:` list), reads task and SQL files in
//! parallel, and hands their text to the model. A bad file makes its own DAG an import error and
//! never stops the others from loading. Files are size-checked before they are read, and invalid
//! UTF-8 is reported at its line and column.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use updraft_dag::yaml::MAX_FILE_BYTES;
use updraft_dag::{Dag, DagSpec, Diagnostic, Location, Options, Pos, SqlInput, SqlSource, TaskInput, TaskSpec};

/// Largest SQL file read, in bytes.
pub const MAX_SQL_BYTES: u64 = 4 * 1024 * 1024;

/// A DAG that failed to load: its file and every error (and warning) found.
#[derive(Debug, Clone)]
pub struct ImportError {
    pub file: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
}

/// A DAG that loaded, with its warnings.
#[derive(Debug, Clone)]
pub struct LoadedDag {
    pub dag: Dag,
    /// The folder the DAG's relative `sql:` paths start from.
    pub folder: PathBuf,
    pub warnings: Vec<Diagnostic>,
}

/// Everything found under a DAGs folder.
#[derive(Debug, Default)]
pub struct DagBag {
    pub dags: Vec<LoadedDag>,
    pub import_errors: Vec<ImportError>,
}

impl DagBag {
    /// The DAG with this id, if it loaded.
    pub fn get(&self, dag_id: &str) -> Option<&LoadedDag> {
        self.dags.iter().find(|d| d.dag.id == dag_id)
    }
}

/// Where a DAG is defined.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    /// `dag.yaml` plus task files below its folder.
    Folder { dag_file: PathBuf, task_files: Vec<PathBuf> },
    /// One YAML file with `dag:` and `tasks:`.
    File(PathBuf),
}

fn is_yaml(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

fn is_hidden(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
}

fn dag_file_in(dir: &Path) -> Option<PathBuf> {
    ["dag.yaml", "dag.yml"].iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// Finds the DAGs under `root` without recursion; follows symbolic links once (git-sync's
/// layout) but never loops.
fn discover(root: &Path) -> (Vec<Found>, Vec<ImportError>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    if root.is_file() {
        found.push(Found::File(root.to_path_buf()));
        return (found, errors);
    }
    let mut seen = HashSet::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        if let Ok(canonical) = dir.canonicalize()
            && !seen.insert(canonical)
        {
            continue;
        }
        if let Some(dag_file) = dag_file_in(&dir) {
            let task_files = task_files_under(&dir, &dag_file, &mut errors);
            found.push(Found::Folder { dag_file, task_files });
            continue;
        }
        let entries = match read_dir_sorted(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                errors.push(io_error(&dir, &e));
                continue;
            }
        };
        for (path, is_dir) in entries.into_iter().rev() {
            if is_hidden(&path) {
                continue;
            }
            if is_dir {
                dirs.push(path);
            } else if is_yaml(&path) {
                found.push(Found::File(path));
            }
        }
    }
    found.sort_by(|a, b| path_bytes(key(a)).cmp(path_bytes(key(b))));
    (found, errors)
}

fn key(found: &Found) -> &Path {
    match found {
        Found::Folder { dag_file, .. } => dag_file,
        Found::File(path) => path,
    }
}

/// A directory's entries, sorted, each with whether it is a folder. The type comes from the
/// directory listing itself; only symbolic links cost a `stat` (to follow them).
/// Paths compared as bytes: the same order as component-wise comparison for the paths found
/// here (all below one root), and an order of magnitude cheaper on 100,000 files.
fn path_bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_encoded_bytes()
}

fn read_dir_sorted(dir: &Path) -> std::io::Result<Vec<(PathBuf, bool)>> {
    let mut entries: Vec<(PathBuf, bool)> = fs::read_dir(dir)?
        .filter_map(|e| {
            let e = e.ok()?;
            let file_type = e.file_type().ok()?;
            let path = e.path();
            let is_dir = if file_type.is_symlink() { path.is_dir() } else { file_type.is_dir() };
            Some((path, is_dir))
        })
        .collect();
    entries.sort_unstable_by(|a, b| path_bytes(&a.0).cmp(path_bytes(&b.0)));
    Ok(entries)
}

/// Every YAML file below a folder DAG, at any depth, except its `dag.yaml`.
fn task_files_under(dir: &Path, dag_file: &Path, errors: &mut Vec<ImportError>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        // Only a symbolic link can lead back to a folder already seen.
        if d.is_symlink()
            && let Ok(canonical) = d.canonicalize()
            && !seen.insert(canonical)
        {
            continue;
        }
        match read_dir_sorted(&d) {
            Ok(entries) => {
                for (path, is_dir) in entries {
                    if is_hidden(&path) || path == dag_file {
                        continue;
                    }
                    if is_dir {
                        dirs.push(path);
                    } else if is_yaml(&path) {
                        files.push(path);
                    }
                }
            }
            Err(e) => errors.push(io_error(&d, &e)),
        }
    }
    files.sort_unstable_by(|a, b| path_bytes(a).cmp(path_bytes(b)));
    files
}

fn io_error(path: &Path, e: &std::io::Error) -> ImportError {
    let file: Arc<str> = Arc::from(path.display().to_string());
    ImportError {
        file: path.to_path_buf(),
        diagnostics: vec![Diagnostic::error(Location::new(&file, Pos::START), format!("cannot read: {e}"))],
    }
}

thread_local! {
    /// One read buffer per loader thread: task and SQL files are parsed straight out of it,
    /// so reading 100,000 files allocates no 100,000 buffers.
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Why a file could not be read as text.
enum ReadError {
    NotFound,
    Other(Diagnostic),
}

/// Reads a text file (at most `limit` bytes) and passes its text to `f`. Invalid UTF-8 is
/// reported at its line and column. `base` is an open folder that relative paths start from,
/// which spares the kernel walking the whole path for each of 100,000 files. A read shorter
/// than asked means the end of a regular file, so a small file costs one open, one read and
/// one close: no `stat`, no second read.
fn with_text<R>(
    base: Option<&OwnedFd>,
    path: &Path,
    file: &Arc<str>,
    limit: u64,
    f: impl FnOnce(&str) -> R,
) -> Result<R, ReadError> {
    let at = |pos| Location::new(file, pos);
    let cannot = |e: std::io::Error| ReadError::Other(Diagnostic::error(at(Pos::START), format!("cannot read: {e}")));
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let opened = match base {
        Some(dir) => rustix::fs::openat(dir, path, flags, Mode::empty()),
        None => rustix::fs::open(path, flags, Mode::empty()),
    };
    let fd = opened.map_err(|e| if e == rustix::io::Errno::NOENT { ReadError::NotFound } else { cannot(e.into()) })?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    BUFFER.with(|cell| {
        let mut buffer = cell.borrow_mut();
        buffer.clear();
        loop {
            if buffer.capacity() - buffer.len() < 16 * 1024 {
                buffer.reserve(64 * 1024);
            }
            let room = buffer.capacity() - buffer.len();
            // Reads into the spare capacity: no zero-filling of the buffer per file.
            let n = match rustix::io::read(&fd, rustix::buffer::spare_capacity(&mut buffer)) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(cannot(e.into())),
            };
            if buffer.len() > limit {
                return Err(ReadError::Other(
                    Diagnostic::error(at(Pos::START), format!("file is larger than the {} MiB limit", limit / 1048576))
                        .with_help("split it into smaller files"),
                ));
            }
            if n < room {
                break;
            }
        }
        match std::str::from_utf8(&buffer) {
            Ok(text) => Ok(f(text)),
            Err(e) => {
                // The prefix is valid UTF-8 by definition; count lines and columns in it.
                let prefix = std::str::from_utf8(&buffer[..e.valid_up_to()]).unwrap_or_default();
                let line = prefix.matches('\n').count() + 1;
                let col = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                Err(ReadError::Other(
                    Diagnostic::error(at(Pos::new(line as u32, col as u32)), "file is not valid UTF-8")
                        .with_help("save the file as UTF-8"),
                ))
            }
        }
    })
}

fn read_error(file: &Arc<str>, e: ReadError) -> Diagnostic {
    match e {
        ReadError::NotFound => Diagnostic::error(Location::new(file, Pos::START), "file not found"),
        ReadError::Other(d) => d,
    }
}

fn display(path: &Path) -> Arc<str> {
    Arc::from(path.display().to_string())
}

/// Loads every DAG under `root` (a DAGs folder, one DAG folder, or one DAG file).
pub fn load(root: &Path, options: Options) -> DagBag {
    let (found, mut import_errors) = discover(root);
    let results: Vec<Result<LoadedDag, ImportError>> = found.into_par_iter().map(|f| load_one(f, options)).collect();
    let mut dags = Vec::new();
    for result in results {
        match result {
            Ok(dag) => dags.push(dag),
            Err(error) => import_errors.push(error),
        }
    }
    // Two DAGs with one id: the first (by path) wins, the second is an import error.
    let mut ids: std::collections::HashMap<String, Arc<str>> = std::collections::HashMap::new();
    let mut unique = Vec::with_capacity(dags.len());
    for loaded in dags {
        if let Some(first) = ids.get(&loaded.dag.id) {
            let d = Diagnostic::error(
                Location::new(&loaded.dag.file, Pos::START),
                format!("DAG id `{}` is already used", loaded.dag.id),
            )
            .with_note(Location::new(first, Pos::START), "first defined here")
            .with_help("DAG ids must be unique in the DAGs folder: rename one `dag:`");
            import_errors.push(ImportError { file: PathBuf::from(&*loaded.dag.file), diagnostics: vec![d] });
        } else {
            ids.insert(loaded.dag.id.clone(), Arc::clone(&loaded.dag.file));
            unique.push(loaded);
        }
    }
    import_errors.sort_by(|a, b| a.file.cmp(&b.file));
    DagBag { dags: unique, import_errors }
}

fn load_one(found: Found, options: Options) -> Result<LoadedDag, ImportError> {
    let (dag_path, task_files) = match found {
        Found::Folder { dag_file, task_files } => (dag_file, task_files),
        Found::File(path) => (path, Vec::new()),
    };
    let folder = dag_path.parent().map(Path::to_path_buf).unwrap_or_default();
    let dag_file = display(&dag_path);
    let fail = |diagnostics| ImportError { file: dag_path.clone(), diagnostics };
    let parsed = with_text(None, &dag_path, &dag_file, MAX_FILE_BYTES as u64, |text| {
        updraft_dag::parse_dag_file(&dag_file, text)
    })
    .map_err(|e| fail(vec![read_error(&dag_file, e)]))?;

    let mut spec = match parsed {
        Ok(spec) => spec,
        Err(mut diagnostics) => {
            // Still read the task files, so that one run reports every error of the DAG.
            diagnostics.extend(
                task_files.par_iter().filter_map(|p| read_task(None, &folder, p).err()).flatten().collect::<Vec<_>>(),
            );
            updraft_dag::diag::sort(&mut diagnostics);
            return Err(fail(diagnostics));
        }
    };
    // Task and SQL files are opened relative to the DAG's folder (see `with_text`).
    let base = rustix::fs::open(&folder, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ok();
    let base = base.as_ref();
    let inline = std::mem::take(&mut spec.tasks);
    let (mut inputs, task_errors): (Vec<TaskInput>, Vec<Vec<Diagnostic>>) = task_files
        .par_iter()
        .map(|p| read_task(base, &folder, p).map(|t| with_sql(base, &spec, &folder, t)))
        .partition_map(|result| match result {
            Ok(input) => rayon::iter::Either::Left(input),
            Err(diagnostics) => rayon::iter::Either::Right(diagnostics),
        });
    let task_errors: Vec<Diagnostic> = task_errors.into_iter().flatten().collect();
    if !inline.is_empty() {
        inputs.splice(0..0, inline.into_iter().map(|t| with_sql(base, &spec, &folder, t)));
    }
    let (dag, mut diagnostics) = updraft_dag::assemble(spec, inputs, options);
    diagnostics.extend(task_errors);
    updraft_dag::diag::sort(&mut diagnostics);
    match dag {
        Some(dag) if !diagnostics.iter().any(Diagnostic::is_error) => {
            Ok(LoadedDag { dag, folder, warnings: diagnostics })
        }
        _ => Err(fail(diagnostics)),
    }
}

fn read_task(base: Option<&OwnedFd>, folder: &Path, path: &Path) -> Result<TaskSpec, Vec<Diagnostic>> {
    let file = display(path);
    // Relative to the open DAG folder when the file is below it, else by its own path.
    let (base, path) = match base.zip(path.strip_prefix(folder).ok()) {
        Some((base, relative)) => (Some(base), relative),
        None => (None, path),
    };
    with_text(base, path, &file, MAX_FILE_BYTES as u64, |text| updraft_dag::parse_task_file(&file, text))
        .map_err(|e| vec![read_error(&file, e)])?
}

/// Pairs a task with its SQL: read from the DAG's folder (or taken inline) and analysed.
fn with_sql(base: Option<&OwnedFd>, dag: &DagSpec, folder: &Path, spec: TaskSpec) -> TaskInput {
    let sql = match spec.sql.as_ref().map(|s| (s.pos.line, SqlSource::from_field(&s.value))) {
        None => SqlInput::NotChecked,
        Some((line, SqlSource::Inline(text))) => {
            SqlInput::Analyzed(updraft_dag::analyze_sql(dag, &spec, &spec.file, line, &text))
        }
        Some((_, SqlSource::File(relative))) => {
            let path = folder.join(&relative);
            let file = display(&path);
            let opened_from = if base.is_some() { Path::new(&relative) } else { path.as_path() };
            match with_text(base, opened_from, &file, MAX_SQL_BYTES, |text| {
                updraft_dag::analyze_sql(dag, &spec, &file, 1, text)
            }) {
                Ok(analysis) => SqlInput::Analyzed(analysis),
                Err(ReadError::NotFound) => SqlInput::Missing { looked_at: path.display().to_string() },
                Err(ReadError::Other(d)) => SqlInput::Unreadable { message: d.message },
            }
        }
    };
    TaskInput { spec, sql }
}

//! A stored DAG's files on disk: where they are (the `fileloc` the scheduler recorded; the
//! API server reads it from its own working folder, so run it where the scheduler's DAGs
//! folder is at the same path), loading them with the DAG model, as the scheduler does, and
//! writing them (the editor's and a new DAG's) through a hidden temporary file.

use std::path::{Path, PathBuf};

use updraft_dag::Diagnostic;
use updraft_dagbag::{DagBag, LoadedDag};
use updraft_db::dags::DagRow;

use crate::error::ApiError;

/// The DAG file (`dag.yaml` of a folder DAG, or the one file) and, for a folder DAG, its folder.
pub fn locate(dag: &DagRow) -> (PathBuf, Option<PathBuf>) {
    let file = PathBuf::from(&dag.record.fileloc);
    let is_folder_dag = file.file_name().is_some_and(|n| n == "dag.yaml" || n == "dag.yml");
    let folder = if is_folder_dag { file.parent().map(Path::to_path_buf) } else { None };
    (file, folder)
}

/// Loads `root` (a DAG file or a DAG folder) off the async workers.
pub async fn load_root(root: PathBuf) -> Result<DagBag, ApiError> {
    tokio::task::spawn_blocking(move || updraft_dagbag::load(&root, updraft_dag::Options::default()))
        .await
        .map_err(|e| ApiError::Internal(format!("loading a DAG: {e}")))
}

/// The DAG as its files define it now.
pub async fn load(dag: &DagRow) -> Result<LoadedDag, ApiError> {
    let (file, folder) = locate(dag);
    let root = folder.unwrap_or_else(|| file.clone());
    if !root.exists() {
        return Err(ApiError::NotFound(format!(
            "the API server cannot read {}: run it where the scheduler's DAGs folder is, at the same path",
            file.display()
        )));
    }
    let bag = load_root(root).await?;
    let id = &dag.record.dag_id;
    bag.dags.into_iter().find(|d| &d.dag.id == id).ok_or_else(|| {
        ApiError::Conflict(format!(
            "{} no longer defines a valid DAG `{id}`: GET /api/v2/importErrors says why",
            file.display()
        ))
    })
}

/// A diagnostic as JSON, with `from` (a temporary path) shown as `to`.
pub fn diagnostic_json(d: &Diagnostic, from: &str, to: &str) -> serde_json::Value {
    serde_json::json!({
        "severity": d.severity.to_string(),
        "file": d.location.file.replace(from, to),
        "line": d.location.pos.line,
        "column": d.location.pos.col,
        "message": d.message,
        "help": d.help,
        "text": d.to_string().replace(from, to),
    })
}

/// A name no DAG file has, hidden from the scheduler's discovery.
pub fn scratch(dir: &Path, what: &str) -> PathBuf {
    let tag: String = crate::auth::random_bytes(6).iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!(".updraft-{what}-{tag}"))
}

/// Writes `content` to a synced temporary file beside `target`, then `place`s it there:
/// `std::fs::rename` replaces `target` atomically, `std::fs::hard_link` creates it only if the
/// name is free (changing nothing otherwise). The temporary name never stays.
pub fn write_via_temp(
    target: &Path,
    content: &str,
    place: fn(&Path, &Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::Write;
    let dir = target.parent().unwrap_or(Path::new("."));
    let temp = scratch(dir, "write");
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&temp)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        place(&temp, target)
    })();
    // After a rename it is gone already; after a hard link or an error it is not.
    let _ = std::fs::remove_file(&temp);
    result
}

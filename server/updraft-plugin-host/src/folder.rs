//! The plugins folder, a local drop-in for the plugin store: the registry polls it (file stamps
//! every second: cheaper than a notify backend, and it works on network volumes such as EFS
//! where inotify does not) and imports each valid `.wasm` into the store, where every process
//! of the deployment finds it.
//!
//! Precedence: whatever was installed last is current, whether uploaded, installed from the
//! command line or dropped in a folder. A file that changes while a process watches it is
//! imported; at a process's start, a file whose exact bytes the store already holds is not made
//! current again, so an upload made since it was imported is not undone by a restart. Deleting
//! a file while a process watches it removes its operator from the store, unless another
//! version has replaced it since.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::backends::PluginUpload;
use crate::error::Error;
use crate::plugin::{Plugin, PluginSource};
use crate::registry::Registry;

/// The state of one `.wasm` file of the plugins folder.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FileStatus {
    /// A valid operator, in the plugin store: provides operator `name` at `version`.
    Loaded { name: String, version: String },
    /// Rejected, or not imported yet; `reason` says why and what to do.
    Invalid { reason: String },
}

/// A `.wasm` file of the plugins folder and its state.
#[derive(Debug, Clone, Serialize)]
pub struct PluginFile {
    pub path: PathBuf,
    pub status: FileStatus,
}

/// What identifies a version of a file without reading it.
type Stamp = (Option<SystemTime>, u64, u64);

struct Tracked {
    /// `None` until the file is handled for good (a failed import is retried).
    stamp: Option<Stamp>,
    file: PluginFile,
    /// The operator and content hash this file put into the store.
    imported: Option<(String, String)>,
    /// Found by the process's first scan and not imported since (an import that failed then
    /// is retried under the start's rule).
    at_start: bool,
}

/// The files of the plugins folder this process has seen.
#[derive(Default)]
pub(crate) struct FolderState {
    files: BTreeMap<PathBuf, Tracked>,
    /// Whether the first scan (the process's start) is done: files found then were there
    /// before this process, files found later were put there while it watched.
    started: bool,
}

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0;
    (meta.modified().ok(), meta.len(), inode)
}

/// This machine's name, recorded with folder imports.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

impl Registry {
    /// The `.wasm` files of the plugins folder and their state.
    pub fn files(&self) -> Vec<PluginFile> {
        self.read().folder.files.values().map(|t| t.file.clone()).collect()
    }

    /// Imports new and changed files into the store, and removes from it the operators of
    /// files that went away. Plugins loaded here go to `fresh`, so the store sync that follows
    /// reuses them instead of fetching and loading them again.
    pub(crate) async fn scan_folder(&self, dir: &Path, changes: &mut Vec<String>, fresh: &mut Vec<Arc<Plugin>>) {
        let present = list_wasm(dir);
        let removed: Vec<(PathBuf, Option<(String, String)>)> = {
            let mut state = self.write();
            let gone: Vec<PathBuf> =
                state.folder.files.keys().filter(|p| !present.iter().any(|(q, _)| q == *p)).cloned().collect();
            gone.into_iter().filter_map(|path| state.folder.files.remove(&path).map(|t| (path, t.imported))).collect()
        };
        for (path, imported) in removed {
            changes.push(format!("{}: removed", path.display()));
            let Some((name, sha256)) = imported else { continue };
            match self.store().remove(&name, Some(&sha256)).await {
                Ok(true) => changes.push(format!("{name}: removed from the plugin store with its file")),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, %name, "cannot remove the operator of a deleted file from the plugin store");
                }
            }
        }
        let started = self.read().folder.started;
        for (path, stamp) in present {
            let (imported_before, at_start) = {
                let state = self.read();
                match state.folder.files.get(&path) {
                    Some(t) if t.stamp == Some(stamp) => continue,
                    Some(t) => (t.imported.clone(), t.at_start && t.stamp.is_none()),
                    None => (None, !started),
                }
            };
            let loaded = match std::fs::read(&path) {
                Ok(bytes) => {
                    self.runtime().load(bytes.clone(), PluginSource::File(path.clone())).await.map(|p| (p, bytes))
                }
                Err(e) => Err(Error::io(&path, e)),
            };
            let tracked = match loaded {
                Ok((plugin, bytes)) => self.import(&path, plugin, bytes, at_start, stamp, changes, fresh).await,
                Err(error) => {
                    let kept = imported_before
                        .and_then(|(name, sha256)| {
                            self.get(&name).ok().filter(|p| p.sha256 == sha256).map(|p| {
                                format!(
                                    " (still serving {} {} imported earlier from this file)",
                                    p.descriptor.name, p.descriptor.version
                                )
                            })
                        })
                        .unwrap_or_default();
                    let reason = format!("{error}{kept}");
                    tracing::warn!(path = %path.display(), %reason, "invalid plugin");
                    changes.push(format!("{}: invalid: {reason}", path.display()));
                    let file = PluginFile { path: path.clone(), status: FileStatus::Invalid { reason } };
                    let imported = self.read().folder.files.get(&path).and_then(|t| t.imported.clone());
                    Tracked { stamp: Some(stamp), file, imported, at_start: false }
                }
            };
            self.write().folder.files.insert(path, tracked);
        }
        self.write().folder.started = true;
    }

    /// Puts a valid file's component into the store, unless it is already current there or,
    /// at the process's start, the store already knows these bytes (see the module's
    /// precedence).
    #[allow(clippy::too_many_arguments)]
    async fn import(
        &self,
        path: &Path,
        plugin: Arc<Plugin>,
        bytes: Vec<u8>,
        at_start: bool,
        stamp: Stamp,
        changes: &mut Vec<String>,
        fresh: &mut Vec<Arc<Plugin>>,
    ) -> Tracked {
        let d = plugin.descriptor.clone();
        let current = self.current_sha256(&d.name).is_some_and(|h| h == plugin.sha256);
        let known = if current || !at_start { Ok(current) } else { self.store().contains(&plugin.sha256).await };
        let outcome = match known {
            Ok(true) => {
                if !current {
                    changes.push(format!(
                        "{}: {} {} not made current again: the plugin store already holds these bytes and what was installed since wins (change the file to import it)",
                        path.display(),
                        d.name,
                        d.version
                    ));
                }
                Ok(false)
            }
            Ok(false) => {
                let upload = PluginUpload {
                    name: d.name.clone(),
                    version: d.version.clone(),
                    sha256: plugin.sha256.clone(),
                    bytes,
                    installed_by: format!("folder {} on {}", path.display(), hostname()),
                };
                self.store().put(upload).await.map(|()| true)
            }
            Err(error) => Err(error),
        };
        let imported = Some((d.name.clone(), plugin.sha256.clone()));
        match outcome {
            Ok(put) => {
                if put {
                    changes.push(format!(
                        "{}: imported {} {} into the plugin store",
                        path.display(),
                        d.name,
                        d.version
                    ));
                }
                fresh.push(plugin);
                let status = FileStatus::Loaded { name: d.name, version: d.version };
                Tracked {
                    stamp: Some(stamp),
                    file: PluginFile { path: path.to_owned(), status },
                    imported,
                    at_start: false,
                }
            }
            Err(error) => {
                // Valid, but the store could not take it: try again at the next scan.
                let reason = format!("{}: valid, but not imported into the plugin store yet: {error}", path.display());
                tracing::warn!(%reason, "plugin import failed");
                changes.push(reason.clone());
                let file = PluginFile { path: path.to_owned(), status: FileStatus::Invalid { reason } };
                Tracked { stamp: None, file, imported: None, at_start }
            }
        }
    }
}

/// The `.wasm` files directly in `dir` with their stamps (a missing folder is empty).
fn list_wasm(dir: &Path) -> Vec<(PathBuf, Stamp)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Stamp)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .filter_map(|p| std::fs::metadata(&p).ok().filter(|m| m.is_file()).map(|m| (p, stamp(&m))))
        .collect();
    out.sort();
    out
}

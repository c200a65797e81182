//! The plugin registry: the built-in operators plus the `.wasm` files of the plugins folder,
//! which it scans at start and then watches (polling file stamps every second: cheaper than a
//! notify backend, and it works on network volumes such as EFS where inotify does not).
//!
//! Invariants: a file that fails to load is listed as invalid with the reason and never
//! unloads a good plugin (a broken new version leaves the previous one serving); a task
//! holds an `Arc<Plugin>`, so replacing a plugin never affects tasks already running; a
//! folder plugin with the name of a built-in shadows the built-in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::builtins::builtins;
use crate::error::Error;
use crate::plugin::{Plugin, PluginSource};
use crate::runtime::Runtime;

/// The state of one `.wasm` file of the plugins folder.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FileStatus {
    /// Loaded: provides operator `name` at `version`.
    Loaded { name: String, version: String },
    /// Rejected; `reason` says why and what to do.
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

#[derive(Default)]
struct State {
    builtins: BTreeMap<String, Arc<Plugin>>,
    folder: BTreeMap<String, Arc<Plugin>>,
    files: BTreeMap<PathBuf, (Stamp, PluginFile)>,
}

/// Built-in and folder plugins by name.
pub struct Registry {
    runtime: Arc<Runtime>,
    state: RwLock<State>,
}

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0;
    (meta.modified().ok(), meta.len(), inode)
}

impl Registry {
    /// Loads the built-in operators and, when configured, scans the plugins folder once.
    pub async fn new(runtime: Arc<Runtime>) -> Result<Arc<Self>, Error> {
        let mut state = State::default();
        for (name, bytes) in builtins() {
            let plugin = runtime.load(bytes.to_vec(), PluginSource::Builtin).await?;
            if plugin.descriptor.name != *name {
                return Err(Error::Engine(format!("built-in {name} describes itself as {}", plugin.descriptor.name)));
            }
            state.builtins.insert(plugin.descriptor.name.clone(), plugin);
        }
        let registry = Arc::new(Self { runtime, state: RwLock::new(state) });
        registry.rescan().await;
        Ok(registry)
    }

    /// The runtime plugins are loaded into.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The current version of operator `name`.
    pub fn get(&self, name: &str) -> Result<Arc<Plugin>, Error> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state
            .folder
            .get(name)
            .or_else(|| state.builtins.get(name))
            .cloned()
            .ok_or_else(|| Error::UnknownOperator(name.to_owned()))
    }

    /// Every available operator (folder plugins shadowing built-ins), sorted by name.
    pub fn plugins(&self) -> Vec<Arc<Plugin>> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let mut all = state.builtins.clone();
        all.extend(state.folder.iter().map(|(k, v)| (k.clone(), v.clone())));
        all.into_values().collect()
    }

    /// The `.wasm` files of the plugins folder and their state.
    pub fn files(&self) -> Vec<PluginFile> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.files.values().map(|(_, f)| f.clone()).collect()
    }

    /// Brings the registry in line with the plugins folder: loads new and changed files,
    /// forgets removed ones. Returns a line per change, for the server log.
    pub async fn rescan(&self) -> Vec<String> {
        let Some(dir) = self.runtime.config().plugins_dir.clone() else {
            return Vec::new();
        };
        let mut changes = Vec::new();
        let present = list_wasm(&dir);
        // Removed files.
        let removed: Vec<PathBuf> = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            state.files.keys().filter(|p| !present.iter().any(|(q, _)| q == *p)).cloned().collect()
        };
        for path in removed {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            state.files.remove(&path);
            let source = PluginSource::File(path.clone());
            state.folder.retain(|_, p| p.source != source);
            changes.push(format!("{}: removed", path.display()));
        }
        for (path, stamp) in present {
            let known = {
                let state = self.state.read().unwrap_or_else(|e| e.into_inner());
                state.files.get(&path).map(|(s, _)| *s)
            };
            if known == Some(stamp) {
                continue;
            }
            let loaded = match std::fs::read(&path) {
                Ok(bytes) => self.runtime.load(bytes, PluginSource::File(path.clone())).await,
                Err(e) => Err(Error::io(&path, e)),
            };
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            let status = match loaded {
                Ok(plugin) => {
                    let d = &plugin.descriptor;
                    changes.push(format!("{}: loaded {} {}", path.display(), d.name, d.version));
                    let status = FileStatus::Loaded { name: d.name.clone(), version: d.version.clone() };
                    // The file may have provided another name before; that name goes away.
                    let source = PluginSource::File(path.clone());
                    state.folder.retain(|_, p| p.source != source);
                    state.folder.insert(d.name.clone(), plugin);
                    status
                }
                Err(error) => {
                    let kept = state
                        .folder
                        .values()
                        .find(|p| p.source == PluginSource::File(path.clone()))
                        .map(|p| {
                            format!(
                                " (still serving {} {} loaded earlier from this file)",
                                p.descriptor.name, p.descriptor.version
                            )
                        })
                        .unwrap_or_default();
                    let reason = format!("{error}{kept}");
                    tracing::warn!(path = %path.display(), %reason, "invalid plugin");
                    changes.push(format!("{}: invalid: {reason}", path.display()));
                    FileStatus::Invalid { reason }
                }
            };
            state.files.insert(path.clone(), (stamp, PluginFile { path, status }));
        }
        changes
    }

    /// Rescans the plugins folder every `every` until the registry is dropped.
    pub fn watch(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(registry) = weak.upgrade() else { return };
                for change in registry.rescan().await {
                    tracing::info!(%change, "plugins folder changed");
                }
            }
        })
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

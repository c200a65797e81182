//! The plugin registry: the built-in operators plus the deployment's plugin store (the
//! [`ComponentStore`] backend, on the metadata database in a server), which every process
//! reads, so a plugin installed through one process runs in all of them. The registry loads
//! the store's current versions at start, compiling each into this process's cache (keyed by
//! content, so a process compiles a version once), then polls the store every second: cheap
//! (a listing without bytes), and it works wherever the database is reachable. The plugins
//! folder is a local drop-in whose valid files are imported into the store (`folder.rs`).
//!
//! Invariants: a version that fails to load is reported and never unloads a good one (a broken
//! file or component leaves the previous version serving); a task holds an `Arc<Plugin>`, so
//! replacing a plugin never affects tasks already running; a try dispatched with a version
//! runs that version ([`Registry::resolve`] fetches it by hash even after a replacement); a
//! stored plugin with the name of a built-in shadows the built-in.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use crate::backends::{ComponentStore, PluginUpload, StoredPlugin};
use crate::builtins::builtins;
use crate::error::Error;
use crate::folder::FolderState;
use crate::plugin::{Installed, Plugin, PluginSource, short_hash};
use crate::runtime::Runtime;

pub use crate::folder::{FileStatus, PluginFile};

/// A stored version that this process could not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    pub name: String,
    pub sha256: String,
    pub reason: String,
}

/// How much of the store a registry loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every current version, kept in step with the store (schedulers, API servers, commands).
    Serving,
    /// Only what a try asks for, fetched then (a task pod's worker, which runs one try).
    OnDemand,
}

#[derive(Default)]
pub(crate) struct State {
    builtins: BTreeMap<String, Arc<Plugin>>,
    /// The current version of each stored operator, as loaded here, and its store entry.
    stored: BTreeMap<String, (Arc<Plugin>, StoredPlugin)>,
    /// Current versions that failed to load here, by name (not retried until they change).
    store_errors: BTreeMap<String, StoreError>,
    /// The last error reaching the store, reported once rather than every second.
    unreachable: Option<String>,
    /// Earlier versions loaded for tries dispatched with them, by hash, while a try holds one.
    pinned: HashMap<String, Weak<Plugin>>,
    pub(crate) folder: FolderState,
}

/// Built-in and stored plugins by name.
pub struct Registry {
    runtime: Arc<Runtime>,
    mode: Mode,
    pub(crate) state: RwLock<State>,
    /// One rescan at a time: the watcher, an upload and a listing may ask at once.
    rescanning: tokio::sync::Mutex<()>,
}

impl Registry {
    /// Loads the built-in operators, imports the plugins folder (when configured) and loads
    /// every current version of the plugin store.
    pub async fn new(runtime: Arc<Runtime>) -> Result<Arc<Self>, Error> {
        let registry = Self::with_builtins(runtime, Mode::Serving).await?;
        for change in registry.rescan().await {
            tracing::info!(%change, "plugins");
        }
        Ok(registry)
    }

    /// Loads the built-in operators only; stored plugins are fetched when a try asks for one
    /// (see [`Registry::resolve`]). For a task pod's worker, which runs one try: it compiles
    /// the one version it needs, not every plugin of the deployment.
    pub async fn on_demand(runtime: Arc<Runtime>) -> Result<Arc<Self>, Error> {
        Self::with_builtins(runtime, Mode::OnDemand).await
    }

    async fn with_builtins(runtime: Arc<Runtime>, mode: Mode) -> Result<Arc<Self>, Error> {
        let mut state = State::default();
        for (name, bytes) in builtins() {
            let plugin = runtime.load(bytes.to_vec(), PluginSource::Builtin).await?;
            if plugin.descriptor.name != *name {
                return Err(Error::Engine(format!("built-in {name} describes itself as {}", plugin.descriptor.name)));
            }
            state.builtins.insert(plugin.descriptor.name.clone(), plugin);
        }
        Ok(Arc::new(Self { runtime, mode, state: RwLock::new(state), rescanning: tokio::sync::Mutex::new(()) }))
    }

    /// The runtime plugins are loaded into.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub(crate) fn store(&self) -> &Arc<dyn ComponentStore> {
        &self.runtime.services.backends.plugins
    }

    pub(crate) fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The current version of operator `name`.
    pub fn get(&self, name: &str) -> Result<Arc<Plugin>, Error> {
        let state = self.read();
        state
            .stored
            .get(name)
            .map(|(p, _)| p)
            .or_else(|| state.builtins.get(name))
            .cloned()
            .ok_or_else(|| Error::UnknownOperator(name.to_owned()))
    }

    /// The content hash to pin a try of operator `name` to when it is dispatched: its current
    /// stored version's. `None` for a built-in (the binary is its version) or an unknown name.
    pub fn current_sha256(&self, name: &str) -> Option<String> {
        self.read().stored.get(name).map(|(p, _)| p.sha256.clone())
    }

    /// The version of operator `name` a try runs: the one with content hash `sha256` (what
    /// the try was dispatched with), fetched from the store if it is no longer current; the
    /// current version when `sha256` is `None`.
    pub async fn resolve(&self, name: &str, sha256: Option<&str>) -> Result<Arc<Plugin>, Error> {
        let Some(sha256) = sha256 else {
            return match self.get(name) {
                Err(Error::UnknownOperator(_)) if self.mode == Mode::OnDemand => {
                    let current = self.store().current().await.map_err(Error::Store)?;
                    let Some(entry) = current.into_iter().find(|p| p.name == name) else {
                        return Err(Error::UnknownOperator(name.to_owned()));
                    };
                    let plugin = self.load_stored(&entry.sha256, Some(&entry), &[]).await?;
                    self.pin(name, plugin)
                }
                other => other,
            };
        };
        {
            let state = self.read();
            let current = state.stored.get(name).map(|(p, _)| p).or_else(|| state.builtins.get(name));
            if let Some(p) = current.filter(|p| p.sha256 == sha256) {
                return Ok(p.clone());
            }
            if let Some(p) = state.pinned.get(sha256).and_then(Weak::upgrade) {
                return self.named(name, p);
            }
        }
        let plugin = self.load_stored(sha256, None, &[]).await?;
        self.pin(name, plugin)
    }

    fn named(&self, name: &str, plugin: Arc<Plugin>) -> Result<Arc<Plugin>, Error> {
        if plugin.descriptor.name != name {
            return Err(Error::Store(format!(
                "component {} is operator `{}`, not `{name}`",
                short_hash(&plugin.sha256),
                plugin.descriptor.name
            )));
        }
        Ok(plugin)
    }

    fn pin(&self, name: &str, plugin: Arc<Plugin>) -> Result<Arc<Plugin>, Error> {
        let plugin = self.named(name, plugin)?;
        let mut state = self.write();
        state.pinned.retain(|_, p| p.strong_count() > 0);
        state.pinned.insert(plugin.sha256.clone(), Arc::downgrade(&plugin));
        Ok(plugin)
    }

    /// Loads the stored component with hash `sha256`, reusing one this process already loaded
    /// (`fresh`, the current versions, pinned ones) under the store entry's metadata.
    async fn load_stored(
        &self,
        sha256: &str,
        entry: Option<&StoredPlugin>,
        fresh: &[Arc<Plugin>],
    ) -> Result<Arc<Plugin>, Error> {
        let installed = entry.map(|e| Installed { by: e.installed_by.clone(), at_us: e.installed_at_us });
        let source = PluginSource::Store { installed };
        let known = {
            let state = self.read();
            fresh
                .iter()
                .chain(state.stored.values().map(|(p, _)| p))
                .find(|p| p.sha256 == sha256)
                .cloned()
                .or_else(|| state.pinned.get(sha256).and_then(Weak::upgrade))
        };
        if let Some(plugin) = known {
            return Ok(plugin.with_source(source));
        }
        let Some(bytes) = self.store().fetch(sha256).await.map_err(Error::Store)? else {
            return Err(Error::Store(format!(
                "no component with sha256 {sha256}: it was never stored in this deployment's database"
            )));
        };
        let plugin = self.runtime.load(bytes, source).await?;
        if plugin.sha256 != sha256 {
            return Err(Error::Store(format!(
                "the component stored as {sha256} has sha256 {}: the stored bytes are damaged; install the plugin again",
                plugin.sha256
            )));
        }
        Ok(plugin)
    }

    /// Every available operator (stored plugins shadowing built-ins), sorted by name.
    pub fn plugins(&self) -> Vec<Arc<Plugin>> {
        let state = self.read();
        let mut all = state.builtins.clone();
        all.extend(state.stored.iter().map(|(k, (p, _))| (k.clone(), p.clone())));
        all.into_values().collect()
    }

    /// The current versions of the store that this process could not load.
    pub fn store_errors(&self) -> Vec<StoreError> {
        self.read().store_errors.values().cloned().collect()
    }

    /// Validates a component exactly as every process will load it and makes it the current
    /// version of its operator in the store; returns it as this registry now serves it.
    /// `label` names the bytes in error messages (a file name); `installed_by` is recorded.
    pub async fn install(&self, bytes: Vec<u8>, label: &str, installed_by: &str) -> Result<Arc<Plugin>, Error> {
        let plugin = self.runtime.load(bytes.clone(), PluginSource::File(PathBuf::from(label))).await?;
        let d = &plugin.descriptor;
        let upload = PluginUpload {
            name: d.name.clone(),
            version: d.version.clone(),
            sha256: plugin.sha256.clone(),
            bytes,
            installed_by: installed_by.to_owned(),
        };
        self.store().put(upload).await.map_err(Error::Store)?;
        let name = d.name.clone();
        self.rescan_with(vec![plugin]).await;
        self.resolve(&name, None).await
    }

    /// Removes operator `name` from the store (built-ins cannot be removed). Returns whether
    /// it was there. Tries dispatched with one of its versions can still run it.
    pub async fn remove(&self, name: &str) -> Result<bool, Error> {
        let removed = self.store().remove(name, None).await.map_err(Error::Store)?;
        self.rescan().await;
        Ok(removed)
    }

    /// Brings the registry in line with the plugins folder (imported into the store) and the
    /// store. Returns a line per change, for the server log.
    pub async fn rescan(&self) -> Vec<String> {
        self.rescan_with(Vec::new()).await
    }

    async fn rescan_with(&self, mut fresh: Vec<Arc<Plugin>>) -> Vec<String> {
        let _one = self.rescanning.lock().await;
        let mut changes = Vec::new();
        if self.mode == Mode::OnDemand {
            return changes;
        }
        if let Some(dir) = self.runtime.config().plugins_dir.clone() {
            self.scan_folder(&dir, &mut changes, &mut fresh).await;
        }
        self.sync_store(&mut changes, &fresh).await;
        changes
    }

    /// Loads the store's current versions that changed, forgets removed ones.
    async fn sync_store(&self, changes: &mut Vec<String>, fresh: &[Arc<Plugin>]) {
        let listing = match self.store().current().await {
            Ok(listing) => listing,
            Err(error) => {
                let mut state = self.write();
                if state.unreachable.as_ref() != Some(&error) {
                    tracing::warn!(%error, "cannot read the plugin store; serving the plugins loaded before");
                    changes.push(format!("plugin store unreachable ({error}): serving the plugins loaded before"));
                    state.unreachable = Some(error);
                }
                return;
            }
        };
        {
            let mut state = self.write();
            if state.unreachable.take().is_some() {
                changes.push("plugin store reachable again".to_owned());
            }
            let names: Vec<String> = state.stored.keys().cloned().collect();
            for name in names {
                if !listing.iter().any(|p| p.name == name) {
                    state.stored.remove(&name);
                    changes.push(format!("{name}: removed from the plugin store"));
                }
            }
            state.store_errors.retain(|name, _| listing.iter().any(|p| &p.name == name));
        }
        for entry in listing {
            {
                let state = self.read();
                let same = state.stored.get(&entry.name).is_some_and(|(_, e)| *e == entry);
                let known_bad = state.store_errors.get(&entry.name).is_some_and(|e| e.sha256 == entry.sha256);
                if same || known_bad {
                    continue;
                }
            }
            let loaded = match self.load_stored(&entry.sha256, Some(&entry), fresh).await {
                Ok(plugin) if plugin.descriptor.name != entry.name => Err(Error::Store(format!(
                    "the component describes operator `{}`, not `{}`",
                    plugin.descriptor.name, entry.name
                ))),
                other => other,
            };
            let mut state = self.write();
            match loaded {
                Ok(plugin) => {
                    let was = state.stored.get(&entry.name).map(|(p, _)| p.sha256.clone());
                    if was.as_deref() != Some(entry.sha256.as_str()) {
                        changes.push(format!(
                            "{}: version {} (sha256 {}) from the plugin store, installed by {}",
                            entry.name,
                            plugin.descriptor.version,
                            short_hash(&entry.sha256),
                            entry.installed_by
                        ));
                    }
                    state.store_errors.remove(&entry.name);
                    state.stored.insert(entry.name.clone(), (plugin, entry));
                }
                Err(error) => {
                    let kept = state
                        .stored
                        .get(&entry.name)
                        .map(|(p, _)| format!(" (still serving version {} loaded before)", p.descriptor.version))
                        .unwrap_or_default();
                    let reason = format!("{error}{kept}");
                    tracing::warn!(name = %entry.name, sha256 = %entry.sha256, %reason, "stored plugin cannot be loaded");
                    changes.push(format!("{}: stored version {} cannot be loaded: {reason}", entry.name, entry.sha256));
                    let failed = StoreError { name: entry.name.clone(), sha256: entry.sha256.clone(), reason };
                    state.store_errors.insert(entry.name, failed);
                }
            }
        }
    }

    /// Rescans the plugins folder and the store every `every` until the registry is dropped.
    pub fn watch(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(registry) = weak.upgrade() else { return };
                for change in registry.rescan().await {
                    tracing::info!(%change, "plugins changed");
                }
            }
        })
    }
}

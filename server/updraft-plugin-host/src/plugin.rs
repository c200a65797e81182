//! A loaded plugin: a component that was compiled (or loaded from the cache), linked against
//! the host interfaces and asked to `describe` itself. Loading is where malformed files and
//! components of another world are rejected, each with a message saying so.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::backends::TaskKey;
use crate::bindings::{Capability, OperatorPre};
use crate::cache::{self, CacheStatus};
use crate::config::Grants;
use crate::error::Error;
use crate::host::HostState;
use crate::runtime::Runtime;

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginSource {
    /// Shipped inside the server.
    Builtin,
    /// A `.wasm` file (in the plugins folder, or validated from anywhere).
    File(PathBuf),
    /// The deployment's plugin store (the metadata database). `installed` says who made it
    /// the current version and when; it is `None` for an earlier version that a try was
    /// dispatched with.
    Store { installed: Option<Installed> },
}

/// Who made a stored plugin the current version of its operator, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installed {
    /// An API user's name, `cli USER@HOST`, or `folder PATH on HOST`.
    pub by: String,
    /// Microseconds since the Unix epoch.
    pub at_us: i64,
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Descriptor {
    pub name: String,
    pub version: String,
    pub summary: String,
    /// JSON Schema of the task's `params` (see `updraft_dag::params::check_params`).
    pub params_schema: Value,
    /// Capabilities it asks for: `sql`, `http`, `variables`, `xcom`.
    pub capabilities: Vec<String>,
}

/// A validated plugin, ready to instantiate. Tasks hold an `Arc<Plugin>` while they run, so a
/// replaced plugin stays alive until its last task finishes.
pub struct Plugin {
    pub descriptor: Descriptor,
    pub source: PluginSource,
    /// SHA-256 of the component's bytes.
    pub sha256: String,
    pub size_bytes: usize,
    /// Whether the machine code came from the cache.
    pub cache: CacheStatus,
    /// Time spent compiling or loading the machine code.
    pub load_time: Duration,
    pub(crate) grants: Arc<Grants>,
    pub(crate) pre: OperatorPre<HostState>,
}

impl Plugin {
    /// What this plugin was granted (and its own limits), from the configuration.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("descriptor", &self.descriptor)
            .field("source", &self.source)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// The same compiled component from another source: a stored version whose entry changed
    /// (installed again by someone else), or a folder file once it is in the store.
    pub(crate) fn with_source(&self, source: PluginSource) -> Arc<Plugin> {
        Arc::new(Plugin {
            descriptor: self.descriptor.clone(),
            source,
            sha256: self.sha256.clone(),
            size_bytes: self.size_bytes,
            cache: self.cache,
            load_time: self.load_time,
            grants: self.grants.clone(),
            pre: self.pre.clone(),
        })
    }
}

/// Why bytes that failed to compile are not a component, in one line a person can act on.
fn malformed_reason(header: &[u8], error: &wasmtime::Error) -> String {
    if !header.starts_with(b"\0asm") {
        return "the file does not start with the WebAssembly magic bytes `\\0asm`: it is not a .wasm file".to_owned();
    }
    if header.get(4..8) == Some(&[1, 0, 0, 0]) {
        return "it is a core WebAssembly module, not a component: build it with `--target wasm32-wasip2`".to_owned();
    }
    // wasmparser's messages can span lines (they print byte arrays); keep them on one.
    let text = format!("{error:#}");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first 12 hex digits of a content hash, enough to tell versions apart in messages.
pub fn short_hash(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}

/// How long `describe` may take.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

impl Runtime {
    /// Compiles (or loads from the cache), links and describes a component.
    pub async fn load(&self, bytes: Vec<u8>, source: PluginSource) -> Result<Arc<Plugin>, Error> {
        let sha256 = cache::content_hash(&bytes);
        let origin = match &source {
            PluginSource::Builtin => "built-in operator".to_owned(),
            PluginSource::File(p) => p.display().to_string(),
            PluginSource::Store { .. } => format!("stored component {}", short_hash(&sha256)),
        };
        let header: Vec<u8> = bytes.iter().take(8).copied().collect();
        let size_bytes = bytes.len();
        let engine = self.engine.clone();
        let dir = self.config.cache_dir.clone();
        let hash = sha256.clone();
        let started = std::time::Instant::now();
        // Compiling is CPU-bound (and parallel inside wasmtime): keep it off the async workers.
        let compiled = tokio::task::spawn_blocking(move || cache::load(&engine, &bytes, &hash, dir.as_deref()))
            .await
            .map_err(|e| Error::Engine(format!("compile task failed: {e}")))?;
        let (component, cache) =
            compiled.map_err(|e| Error::Malformed { origin: origin.clone(), reason: malformed_reason(&header, &e) })?;
        let load_time = started.elapsed();
        let wrong_world = |e: wasmtime::Error| Error::WrongWorld { origin: origin.clone(), reason: format!("{e:#}") };
        let pre = self.linker.instantiate_pre(&component).map_err(wrong_world)?;
        let pre = OperatorPre::new(pre).map_err(wrong_world)?;

        let describe_fail = |reason: String| Error::Describe { origin: origin.clone(), reason };
        let task = TaskKey { dag_id: String::new(), run_id: String::new(), task_id: "describe".into(), try_number: 0 };
        let mut store = self.new_store("describe", Arc::new(Grants::default()), task, DESCRIBE_TIMEOUT, None);
        let described = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_describe(&mut store).await
        };
        let d = match tokio::time::timeout(DESCRIBE_TIMEOUT, described).await {
            Err(_) => return Err(describe_fail(format!("did not return within {DESCRIBE_TIMEOUT:?}"))),
            Ok(Err(e)) => return Err(describe_fail(format!("{e:#}"))),
            Ok(Ok(d)) => d,
        };
        if !crate::scaffold::valid_operator_name(&d.name) {
            return Err(describe_fail(format!(
                "operator name {:?} is invalid: use lowercase letters, digits and _, starting with a letter",
                d.name
            )));
        }
        let params_schema: Value = serde_json::from_str(&d.params_schema)
            .map_err(|e| describe_fail(format!("params schema is not JSON: {e}")))?;
        if !params_schema.is_object() {
            return Err(describe_fail("params schema must be a JSON object".into()));
        }
        let capabilities = d
            .capabilities
            .iter()
            .map(|c| match c {
                Capability::Sql => "sql",
                Capability::Http => "http",
                Capability::Variables => "variables",
                Capability::Xcom => "xcom",
                Capability::Kubernetes => "kubernetes",
            })
            .map(str::to_owned)
            .collect();
        let grants = Arc::new(self.config.grants_for(&d.name, source == PluginSource::Builtin));
        Ok(Arc::new(Plugin {
            descriptor: Descriptor {
                name: d.name,
                version: d.version,
                summary: d.summary,
                params_schema,
                capabilities,
            },
            source,
            sha256,
            size_bytes,
            cache,
            load_time,
            grants,
            pre,
        }))
    }
}

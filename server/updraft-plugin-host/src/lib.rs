//! The Updraft plugin host: runs operators, which are WebAssembly components implementing the
//! `updraft:operator` world (`plugins/wit/`), with wasmtime.
//!
//! One [`Runtime`] per process owns the engine (pooling allocator, epoch interruption driven
//! by an OS thread), the linker with every host interface, and the on-disk cache of compiled
//! components. A [`Plugin`] is a validated, pre-linked component; each task try gets a fresh
//! store and instance with a memory limit and a deadline, and ends in a typed
//! [`TaskOutcome`]: a trap, timeout, out-of-memory or panic in a plugin fails that try and
//! nothing else. The [`Registry`] holds the built-in operators and the deployment's plugin
//! store, which it polls: a plugin installed through any process (or dropped into a plugins
//! folder, which is imported into the store) becomes available everywhere without a restart,
//! while running tasks keep the version they started with, and a try runs the version it was
//! dispatched with.
//!
//! Host interfaces and the registry reach the rest of Updraft only through the [`backends`]
//! traits (XCom, Variables, Connections, pods, the plugin store), which the local executor
//! (`updraft-executor-local`) implements on the metadata database and the kubernetes executor
//! on the Kubernetes API (pods); a try's log lines go to its `updraft_logs::TryLogFile`.

pub mod backends;
mod bindings;
mod builtins;
mod cache;
pub mod config;
mod error;
mod folder;
mod host;
mod outcome;
mod plugin;
mod registry;
mod run;
mod runtime;
pub mod scaffold;

pub use backends::{
    Backends, ComponentStore, Connection, ConnectionStore, PluginUpload, PodDeletePolicy, PodEnd, PodError, PodLaunch,
    PodLauncher, PodLogSink, StoredPlugin, TaskKey, VariableStore, XComStore,
};
pub use builtins::builtin_names;
pub use cache::CacheStatus;
pub use config::{Grants, HostConfig, Limits};
pub use error::Error;
pub use outcome::{LogLevel, LogLine, TaskOutcome, TaskReport};
pub use plugin::{Descriptor, Installed, Plugin, PluginSource, short_hash};
pub use registry::{FileStatus, PluginFile, Registry, StoreError};
pub use run::TaskContext;
pub use runtime::Runtime;

/// Where the build put the guest components, including the test fixtures that are never
/// shipped; for tests and benchmarks.
#[doc(hidden)]
pub const GUEST_DIR: &str = env!("UPDRAFT_GUEST_DIR");

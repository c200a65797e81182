//! The store data of one task try, and the host side of every WIT interface (one module per
//! interface). Each import returns `wasmtime::Result<Result<T, HostError>>`: an `Err` in the
//! outer result kills the instance (reserved for host bugs), the inner one is an ordinary
//! error, and a capability that was not granted is an inner `not-granted` error naming the
//! configuration line to add.

mod http;
mod limits;
mod log;
mod pods;
mod sql;
mod vars;
mod xcom;

use std::sync::Arc;
use std::time::Instant;

use updraft_logs::TryLogFile;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::backends::{Backends, TaskKey};
use crate::bindings::{ErrorCode, HostError, updraft};
use crate::config::{Grants, Limits};

pub(crate) use http::HttpClient;
pub(crate) use limits::{CappedPipe, MemoryLimiter, TaskLog};
pub(crate) use sql::SqlPools;

/// Shared services every task try's host state points to.
pub(crate) struct Services {
    pub backends: Backends,
    pub sql: SqlPools,
    pub http: HttpClient,
    pub limits: Limits,
}

/// The data of one store: one task try of one plugin.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub log: TaskLog,
    pub stderr: CappedPipe,
    /// Set by the epoch callback when the deadline passed.
    pub timed_out: bool,
    pub deadline: Instant,
    /// Epoch ticks observed while this store was executing WebAssembly (the callback only
    /// runs then): the try's CPU time in units of `EPOCH_TICK`.
    pub cpu_ticks: u64,
    /// `cpu_ticks` at which the try is stopped as CPU-exhausted (`u64::MAX`: no budget).
    pub cpu_budget_ticks: u64,
    /// Set by the epoch callback when the CPU budget ran out.
    pub cpu_exhausted: bool,
    plugin: String,
    grants: Arc<Grants>,
    task: TaskKey,
    services: Arc<Services>,
}

impl HostState {
    /// The state of one instance: the plugin, its grants, the services it reaches and the try it runs.
    pub fn new(
        plugin: &str,
        grants: Arc<Grants>,
        task: TaskKey,
        services: Arc<Services>,
        deadline: Instant,
        live_log: Option<&TryLogFile>,
    ) -> Self {
        let limits = &services.limits;
        let stderr = CappedPipe::new(limits.max_stderr_bytes);
        let wasi = WasiCtx::builder().stdout(stderr.clone()).stderr(stderr.clone()).build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(grants.memory_bytes.unwrap_or(limits.memory_bytes)),
            log: TaskLog::new(limits.max_log_bytes, live_log),
            stderr,
            timed_out: false,
            deadline,
            cpu_ticks: 0,
            cpu_budget_ticks: u64::MAX,
            cpu_exhausted: false,
            plugin: plugin.to_owned(),
            grants,
            task,
            services,
        }
    }

    fn not_granted(&self, what: &str, setting: &str) -> HostError {
        let p = &self.plugin;
        HostError {
            code: ErrorCode::NotGranted,
            message: format!("capability {what} is not granted to plugin \"{p}\": add it to [plugins.{p}] {setting}"),
        }
    }
}

fn host_error(code: ErrorCode, message: impl Into<String>) -> HostError {
    HostError { code, message: message.into() }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl updraft::operator::types::Host for HostState {}

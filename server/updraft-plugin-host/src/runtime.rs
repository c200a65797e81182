//! The per-process runtime: one wasmtime engine (pooling allocator, epoch interruption), the
//! linker with WASI and every Updraft host interface, the epoch ticker thread, and the one
//! function that creates stores, so that every store gets its limits and deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use updraft_logs::TryLogFile;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline};

use crate::backends::{Backends, TaskKey};
use crate::bindings::Operator;
use crate::config::{Grants, HostConfig};
use crate::error::Error;
use crate::host::{HostState, HttpClient, Services, SqlPools};

/// How often the epoch advances: the granularity of timeouts, and how often a busy plugin
/// yields its tokio worker to other tasks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The plugin runtime of this process. Create one and share it (`Arc`).
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    pub(crate) services: Arc<Services>,
    pub(crate) config: HostConfig,
    stop_ticker: Arc<AtomicBool>,
}

impl Runtime {
    /// Creates the engine and linker and starts the epoch ticker thread.
    pub fn new(config: HostConfig, backends: Backends) -> Result<Arc<Self>, Error> {
        let engine = Engine::new(&engine_config(&config)).map_err(|e| Error::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| Error::Engine(format!("{e:#}")))?;
        Operator::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| Error::Engine(format!("{e:#}")))?;
        let http = HttpClient::new(config.http_extra_ca_file.as_deref())?;
        let services = Arc::new(Services { backends, sql: SqlPools::default(), http, limits: config.limits.clone() });
        let stop_ticker = Arc::new(AtomicBool::new(false));
        // An OS thread, not a tokio task: it must tick even when every worker is busy running
        // plugins, since the tick is what makes them yield.
        let (ticker_engine, stop) = (engine.clone(), stop_ticker.clone());
        std::thread::Builder::new()
            .name("updraft-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| Error::Engine(format!("cannot start the epoch thread: {e}")))?;
        Ok(Arc::new(Self { engine, linker, services, config, stop_ticker }))
    }

    /// The configuration this runtime was created with.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// A fresh store for one call into `plugin`, with its memory limit and a deadline of
    /// `timeout` from now. Every store is created here: with epoch interruption on, a store
    /// without a deadline would trap at once.
    pub(crate) fn new_store(
        &self,
        plugin: &str,
        grants: Arc<Grants>,
        task: TaskKey,
        timeout: Duration,
        live_log: Option<&TryLogFile>,
    ) -> Store<HostState> {
        let deadline = Instant::now() + timeout;
        let state = HostState::new(plugin, grants, task, self.services.clone(), deadline, live_log);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            state.cpu_ticks += 1;
            if Instant::now() >= state.deadline {
                state.timed_out = true;
                wasmtime::bail!("execution_timeout reached");
            }
            if state.cpu_ticks >= state.cpu_budget_ticks {
                state.cpu_exhausted = true;
                wasmtime::bail!("CPU budget exhausted");
            }
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

fn engine_config(config: &HostConfig) -> Config {
    let n = config.limits.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(4))
        .total_memories(n)
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        .max_memory_size(usize::try_from(config.max_memory_bytes()).unwrap_or(usize::MAX));
    let mut cfg = Config::new();
    cfg.wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    cfg
}

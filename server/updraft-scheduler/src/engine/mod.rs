//! The scheduler loop: parses the DAGs folder when it changes, creates runs from timetables,
//! claims queued runs, moves task instances through their states with [`Readiness`], hands
//! ready tries to an [`Executor`] within `parallelism`, pool slots and `max_active_tasks`,
//! applies retries with backoff, and writes the changes of a loop in one transaction.
//!
//! The work of one loop is proportional to what changed: finished tries, new runs, due
//! retries. Nothing re-examines every unfinished task instance. A run is owned by the
//! scheduler that claimed it; after a crash, another scheduler adopts it and rebuilds its state
//! from the database (a try that was running is handed to the executor to adopt; a success is
//! never lost).
//!
//! | module | what it does |
//! | --- | --- |
//! | `mod.rs` (here) | the [`Engine`], its configuration, the loop ([`Engine::tick`]) and its timers |
//! | `sync` | DAG sync: fingerprints the DAGs folder, parses it when it changed, records DAGs and import errors; timetables make runs due |
//! | `ownership` | runs this scheduler owns: claims queued runs, adopts those of gone schedulers, rebuilds a run's state |
//! | `requests` | clear and mark requests made through the API or CLI |
//! | `dispatch` | ready tries to the executor within [`Slots`](dispatch::Slots); due retries and reschedules |
//! | `tries` | what the executor reports: a try started, a try ended (retry, reschedule, final state), a run finished |
//! | `render` | a try's params and SQL rendered with the run's values ([`work_item`]) |
//! | `writes` | the [`WriteBuffer`](writes::WriteBuffer): the changes of one loop, one transaction, and where that is not so |
//! | `clock` | the time the engine reads (the system's, or one the test moves) |

mod clock;
mod dispatch;
mod ownership;
mod render;
mod requests;
mod sync;
#[cfg(test)]
mod tests;
mod tries;
mod writes;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use updraft_dagbag::LoadedDag;
use updraft_db::runs::{RunRow, RunStateChange};
use updraft_db::{Db, DbError, Timestamp};
use updraft_logs::TaskLogs;

pub use render::{log_path, work_item};

use crate::metrics::SchedulerMetrics;
use crate::readiness::Readiness;
use clock::{Clock, Every, Timers};
use dispatch::{Ready, Slots};
use sync::DagCache;
use updraft_executor::{Executor, WorkEvent};
use updraft_types::{RunState, TaskState};
use writes::WriteBuffer;

/// Where the engine learns which operators exist and their params schemas (the plugin
/// registry, which changes when plugins are dropped in).
#[derive(Clone)]
pub struct CatalogSource(pub Arc<dyn Fn() -> updraft_dag::operators::Catalog + Send + Sync>);

impl std::fmt::Debug for CatalogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CatalogSource")
    }
}

/// Called with every task-instance change the engine writes.
type Observer = Box<dyn FnMut(&updraft_db::batch::TaskUpdate) + Send>;

/// How a scheduler runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub scheduler_id: String,
    /// The host the scheduler runs on, recorded with its registration.
    pub hostname: String,
    pub dags_folder: PathBuf,
    /// Where tries' logs go: the local logs folder, and S3 with `[logging] remote`.
    pub logs: TaskLogs,
    /// Most tries running at once, over all DAGs.
    pub parallelism: usize,
    /// How often the DAGs folder is checked for changes.
    pub parse_interval: Duration,
    /// Whether DAGs seen for the first time start paused (Airflow's default).
    pub paused_at_creation: bool,
    /// Where schedulers share the database: a scheduler silent for this long is dead and its
    /// runs are adopted.
    pub zombie_after: Duration,
    /// Run only runs handed to [`Engine::run_only`]: no timetables, no queued runs, no
    /// adoption (`updraft dags test`).
    pub single_run: bool,
    /// The installed operators: a DAG using a missing one, or params its schema rejects, is
    /// an import error.
    pub catalog: Option<CatalogSource>,
}

/// The name of the host this process runs on (`/proc/sys/kernel/hostname`; `localhost` where
/// there is none), for [`EngineConfig::hostname`].
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// A run this scheduler owns, in memory: its DAG, the state of every task, and its tries.
struct ActiveRun {
    row: RunRow,
    dag: Arc<LoadedDag>,
    readiness: Readiness,
    /// The latest try number of each task (0: never tried).
    tries: Vec<u32>,
    /// Tasks whose next try continues a rescheduled sensor (same try number).
    rescheduled: Vec<bool>,
    /// When each running try started.
    started: HashMap<u32, Timestamp>,
    /// A failed try `n` is retried while `n <= max_tries` (Airflow's rule; clearing raises it).
    max_tries: Vec<u32>,
    /// The run's final state when it was marked by hand.
    forced: Option<RunState>,
}

/// A try waiting for its retry or reschedule time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Waiting {
    at: Timestamp,
    run_pk: i64,
    task: u32,
    try_number: u32,
}

/// Counters for tests, benchmarks and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub tries_dispatched: u64,
    pub tries_finished: u64,
    pub runs_finished: u64,
}

/// Errors that stop the scheduler loop (the database is unreachable, the DAGs folder is gone).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("the DAGs folder {0} does not exist: pass --dags DIR")]
    NoDagsFolder(PathBuf),
}

/// The scheduler: one per process, driven by [`Engine::run`] (or [`Engine::run_only`]).
pub struct Engine {
    db: Db,
    config: EngineConfig,
    executor: Arc<dyn Executor>,
    events: mpsc::UnboundedReceiver<WorkEvent>,
    clock: Clock,
    dags: DagCache,
    timers: Timers,
    runs: HashMap<i64, ActiveRun>,
    ready: BinaryHeap<Ready>,
    waiting: BinaryHeap<Reverse<Waiting>>,
    slots: Slots,
    writes: WriteBuffer,
    /// Tie-breaker of ready tries of equal priority: first ready, first dispatched.
    order: u64,
    stats: EngineStats,
    metrics: Arc<SchedulerMetrics>,
    claim_queued: bool,
    schedule: bool,
}

impl Engine {
    /// Registers the scheduler and adopts the runs of schedulers that are gone.
    pub async fn new(
        db: Db,
        config: EngineConfig,
        executor: Arc<dyn Executor>,
        events: mpsc::UnboundedReceiver<WorkEvent>,
    ) -> Result<Self, EngineError> {
        Engine::with_clock(db, config, executor, events, Clock::system()).await
    }

    async fn with_clock(
        db: Db,
        config: EngineConfig,
        executor: Arc<dyn Executor>,
        events: mpsc::UnboundedReceiver<WorkEvent>,
        clock: Clock,
    ) -> Result<Self, EngineError> {
        if !config.dags_folder.exists() {
            return Err(EngineError::NoDagsFolder(config.dags_folder.clone()));
        }
        db.register_scheduler(&config.scheduler_id, &config.hostname).await?;
        let single_run = config.single_run;
        let mut engine = Engine {
            db,
            dags: DagCache::new(config.parse_interval),
            config,
            executor,
            events,
            clock,
            timers: Timers {
                heartbeat: Every::new(Duration::from_secs(1)),
                timetables: Every::new(Duration::from_secs(1)),
                claim: Every::new(Duration::from_millis(250)),
                requests: Every::new(Duration::from_millis(500)),
                state_count: Every::new(Duration::from_secs(5)),
            },
            runs: HashMap::new(),
            ready: BinaryHeap::new(),
            waiting: BinaryHeap::new(),
            slots: Slots::default(),
            writes: WriteBuffer::default(),
            order: 0,
            stats: EngineStats::default(),
            metrics: Arc::default(),
            claim_queued: !single_run,
            schedule: !single_run,
        };
        // The first heartbeat is the registration.
        engine.timers.heartbeat.restart(engine.clock.monotonic());
        engine.sync_dags(true).await?;
        if !single_run {
            engine.adopt().await?;
        }
        Ok(engine)
    }

    /// Calls `observer` with every task-instance change the engine writes (`updraft dags test`
    /// prints them).
    pub fn observe(&mut self, observer: Observer) {
        self.writes.observe(observer);
    }

    /// Runs exactly one run, already inserted: no timetables, no other queued runs
    /// (`updraft dags test`). The run's DAG need not be unpaused.
    pub async fn run_only(&mut self, dag_id: &str, run_id: &str) -> Result<RunState, EngineError> {
        let row = self
            .db
            .get_run(dag_id, run_id)
            .await?
            .ok_or_else(|| DbError::NotFound(format!("no run `{run_id}` of `{dag_id}`")))?;
        let loaded = self
            .dags
            .get(dag_id)
            .ok_or_else(|| DbError::NotFound(format!("DAG `{dag_id}` did not load: run `updraft dags validate`")))?;
        self.dags.unpause(dag_id);
        self.db.set_run_states(&[RunStateChange { run_pk: row.id, state: RunState::Running, end_date: None }]).await?;
        let tasks = ownership::new_task_instances(&loaded, row.id);
        self.db.create_task_instances(&row, &tasks).await?;
        let run_pk = row.id;
        self.activate(row, loaded, None);
        self.complete_if_done(run_pk);
        self.run_until_finished(dag_id, run_id).await
    }

    /// The engine's counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// The metrics this engine keeps up to date (for `/metrics` and `/health`).
    pub fn metrics(&self) -> Arc<SchedulerMetrics> {
        Arc::clone(&self.metrics)
    }

    /// The metadata database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Runs loops until `stop` resolves. A loop that fails (the database is briefly away, a
    /// write conflicts with another scheduler) is reported and tried again after a pause; the
    /// changes it had not written are kept and written by the next loop.
    pub async fn run(&mut self, stop: impl std::future::Future<Output = ()>) -> Result<(), EngineError> {
        let result = self.run_loops(stop).await;
        self.flush_logs().await;
        result
    }

    /// Waits (a while) for the uploads of the logs this engine wrote itself.
    async fn flush_logs(&self) {
        self.config.logs.flush(Duration::from_secs(30)).await;
    }

    async fn run_loops(&mut self, stop: impl std::future::Future<Output = ()>) -> Result<(), EngineError> {
        tokio::pin!(stop);
        let mut failures = 0u32;
        loop {
            let started = Instant::now();
            match self.tick().await {
                Ok(()) => {
                    self.metrics.loop_done(started.elapsed());
                    failures = 0;
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, failures, "the scheduler loop failed; retrying");
                    let pause = Duration::from_millis(200 * u64::from(failures.min(25)));
                    tokio::select! {
                        () = &mut stop => return Ok(()),
                        () = tokio::time::sleep(pause) => continue,
                    }
                }
            }
            tokio::select! {
                () = &mut stop => return Ok(()),
                event = self.events.recv() => if let Some(event) = event { self.on_event(event) },
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    /// Runs loops until the run `run_id` of `dag_id` has finished; returns its final state.
    pub async fn run_until_finished(&mut self, dag_id: &str, run_id: &str) -> Result<RunState, EngineError> {
        let result = self.loops_until_finished(dag_id, run_id).await;
        self.flush_logs().await;
        result
    }

    async fn loops_until_finished(&mut self, dag_id: &str, run_id: &str) -> Result<RunState, EngineError> {
        loop {
            self.tick().await?;
            if let Some(run) = self.db.get_run(dag_id, run_id).await?
                && run.state.is_finished()
            {
                return Ok(run.state);
            }
            tokio::select! {
                event = self.events.recv() => if let Some(event) = event { self.on_event(event) },
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    /// One loop: everything that is due now, then one transaction with the changes.
    pub async fn tick(&mut self) -> Result<(), EngineError> {
        while let Ok(event) = self.events.try_recv() {
            self.on_event(event);
        }
        self.sync_dags(false).await?;
        let now = self.clock.monotonic();
        if self.timers.heartbeat.due(now) {
            self.db.heartbeat(&self.config.scheduler_id).await?;
            if self.db.concurrent_schedulers() && self.claim_queued {
                self.adopt().await?;
            }
        }
        if self.schedule && self.timers.timetables.due(now) {
            self.create_scheduled_runs().await?;
        }
        if self.claim_queued && self.timers.claim.due(now) {
            self.start_queued_runs().await?;
        }
        if self.claim_queued && self.timers.requests.due(now) {
            self.take_requests().await?;
        }
        self.release_due_waits();
        self.dispatch();
        if self.timers.state_count.due(now) {
            self.count_task_states();
        }
        self.publish_metrics();
        self.flush().await
    }

    /// Writes the loop's changes (see [`writes`]).
    async fn flush(&mut self) -> Result<(), EngineError> {
        Ok(self.writes.flush(&self.db).await?)
    }

    /// Copies the engine's counters into its metrics.
    fn publish_metrics(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let m = &self.metrics;
        m.active_runs.store(self.runs.len() as u64, Relaxed);
        m.ready.store(self.ready.len() as u64, Relaxed);
        m.running.store(self.slots.running() as u64, Relaxed);
        m.parallelism.store(self.config.parallelism as u64, Relaxed);
        m.tries_dispatched.store(self.stats.tries_dispatched, Relaxed);
        m.tries_finished.store(self.stats.tries_finished, Relaxed);
        m.runs_finished.store(self.stats.runs_finished, Relaxed);
    }

    /// Counts the task states of the active runs (a walk over every task of them).
    fn count_task_states(&mut self) {
        let mut counts = [0u64; TaskState::ALL.len()];
        for run in self.runs.values() {
            for t in 0..run.dag.dag.tasks.len() as u32 {
                let state = run.readiness.state(t);
                if let Some(i) = TaskState::ALL.iter().position(|s| *s == state) {
                    counts[i] += 1;
                }
            }
        }
        self.metrics.set_task_states(TaskState::ALL.iter().copied().zip(counts).collect());
    }
}

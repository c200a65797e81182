//! The scheduler loop: parses the DAGs folder when it changes, creates runs from timetables,
//! claims queued runs, moves task instances through their states with [`Readiness`], hands
//! ready tries to an [`Executor`] within `parallelism`, pool slots and `max_active_tasks`,
//! applies retries with backoff, and writes every change of a loop in one transaction.
//!
//! The work of one loop is proportional to what changed: finished tries, new runs, due
//! retries. Nothing re-examines every unfinished task instance. A run is owned by the
//! scheduler that claimed it; after a crash, another scheduler adopts it and rebuilds its state
//! from the database (a try that was running may run again; a success is never lost).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::mpsc;
use updraft_dag::{Options, SqlSource};
use updraft_dagbag::LoadedDag;
use updraft_db::runs::{NewRun, NewTaskInstance, RunRow, TaskUpdate};
use updraft_db::{Backend, Db, DbError, dags::DagRecord, now_us};
use updraft_executor::{Executor, TryKey, WorkEvent, WorkItem, WorkOutcome};
use updraft_logs::{TaskLogs, TryLog};

use crate::fnv::Fnv;
use crate::metrics::SchedulerMetrics;
use crate::readiness::Readiness;
use crate::retry::retry_wait;
use crate::state::{RunState, TaskState};
use crate::timetable::{DataInterval, TimetableSpec, next_scheduled_run};

/// Where the engine learns which operators exist and their params schemas (the plugin
/// registry, which changes when plugins are dropped in).
#[derive(Clone)]
pub struct CatalogSource(pub Arc<dyn Fn() -> updraft_dag::operators::Catalog + Send + Sync>);

impl std::fmt::Debug for CatalogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CatalogSource")
    }
}

type Observer = Box<dyn FnMut(&TaskUpdate) + Send>;

/// How a scheduler runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub scheduler_id: String,
    pub dags_folder: PathBuf,
    /// Where tries' logs go: the local logs folder, and S3 with `[logging] remote`.
    pub logs: TaskLogs,
    /// Most tries running at once, over all DAGs.
    pub parallelism: usize,
    /// How often the DAGs folder is checked for changes.
    pub parse_interval: Duration,
    /// Whether DAGs seen for the first time start paused (Airflow's default).
    pub paused_at_creation: bool,
    /// On PostgreSQL: a scheduler silent for this long is dead and its runs are adopted.
    pub zombie_after: Duration,
    /// Run only runs handed to [`Engine::run_only`]: no timetables, no queued runs, no
    /// adoption (`updraft dags test`).
    pub single_run: bool,
    /// The installed operators: a DAG using a missing one, or params its schema rejects, is
    /// an import error.
    pub catalog: Option<CatalogSource>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Ready {
    priority: i32,
    order: Reverse<u64>,
    run_pk: i64,
    task: u32,
}

struct ActiveRun {
    row: RunRow,
    dag: Arc<LoadedDag>,
    readiness: Readiness,
    tries: Vec<u32>,
    rescheduled: Vec<bool>,
    started: HashMap<u32, i64>,
    /// A failed try `n` is retried while `n <= max_tries` (Airflow's rule; clearing raises it).
    max_tries: Vec<u32>,
    /// The run's final state when it was marked by hand.
    forced: Option<RunState>,
}

/// What a try in flight holds until it finishes: a parallelism slot, pool slots, a place in
/// its DAG's `max_active_tasks`.
struct Slot {
    pool: String,
    pool_slots: i64,
    dag_id: String,
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

pub struct Engine {
    db: Db,
    config: EngineConfig,
    executor: Arc<dyn Executor>,
    events: mpsc::UnboundedReceiver<WorkEvent>,
    dags: HashMap<String, Arc<LoadedDag>>,
    paused: HashSet<String>,
    fingerprint: Option<u64>,
    last_parse: Option<Instant>,
    last_heartbeat: Instant,
    last_claim: Option<Instant>,
    last_timetables: Option<Instant>,
    last_intervals: HashMap<String, Option<DataInterval>>,
    runs: HashMap<i64, ActiveRun>,
    ready: BinaryHeap<Ready>,
    /// Tries waiting for their retry or reschedule time: (time, run, task, try).
    waiting: BinaryHeap<Reverse<(i64, i64, u32, u32)>>,
    /// Tries handed to the executor and not yet reported finished (each holds a slot).
    inflight: HashMap<TryKey, Slot>,
    running: usize,
    pool_slots: HashMap<String, i64>,
    pool_used: HashMap<String, i64>,
    dag_running: HashMap<String, u32>,
    updates: Vec<TaskUpdate>,
    run_states: Vec<(i64, String, Option<i64>)>,
    done_requests: Vec<i64>,
    last_requests: Option<Instant>,
    order: u64,
    stats: EngineStats,
    metrics: Arc<SchedulerMetrics>,
    last_state_count: Option<Instant>,
    observer: Option<Observer>,
    claim_queued: bool,
    schedule: bool,
}

fn iso(us: i64) -> String {
    Utc.timestamp_micros(us).single().map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default()
}

fn to_us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_us(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

/// A cheap fingerprint of a DAGs folder: paths, sizes and modification times.
fn fingerprint(root: &Path) -> u64 {
    let mut hash = Fnv::new();
    let mut mix = |bytes: &[u8]| hash.write(bytes);
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            let Ok(meta) = e.metadata() else { continue };
            mix(e.path().as_os_str().as_encoded_bytes());
            if meta.is_dir() {
                dirs.push(e.path());
            } else {
                mix(&meta.len().to_le_bytes());
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                mix(&modified.to_le_bytes());
            }
        }
    }
    hash.finish()
}

/// A hash of the operators and their params schemas.
fn catalog_fingerprint(catalog: &updraft_dag::operators::Catalog) -> u64 {
    let mut hash = Fnv::new();
    for (name, schema) in catalog {
        hash.write(name.as_bytes());
        hash.write(&[0]);
        hash.write(schema.to_string().as_bytes());
        hash.write(&[0]);
    }
    hash.finish()
}

fn source_hash(dag: &updraft_dag::Dag) -> String {
    let mut hash = Fnv::new();
    let mut mix = |s: &str| {
        hash.write(s.as_bytes());
        hash.write(&[0]);
    };
    mix(&dag.schedule.describe());
    for (t, task) in dag.tasks.iter().enumerate() {
        mix(&task.id);
        mix(&task.operator);
        mix(&format!("{:?}{:?}{:?}", task.sql, task.params, dag.upstream(t as u32)));
    }
    format!("{:016x}", hash.finish())
}

impl Engine {
    /// Registers the scheduler and adopts the runs of schedulers that are gone.
    pub async fn new(
        db: Db,
        config: EngineConfig,
        executor: Arc<dyn Executor>,
        events: mpsc::UnboundedReceiver<WorkEvent>,
    ) -> Result<Self, EngineError> {
        if !config.dags_folder.exists() {
            return Err(EngineError::NoDagsFolder(config.dags_folder.clone()));
        }
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".to_owned());
        db.register_scheduler(&config.scheduler_id, &hostname).await?;
        let config_single_run = config.single_run;
        let mut engine = Engine {
            db,
            config,
            executor,
            events,
            dags: HashMap::new(),
            paused: HashSet::new(),
            fingerprint: None,
            last_parse: None,
            last_heartbeat: Instant::now(),
            last_claim: None,
            last_timetables: None,
            last_intervals: HashMap::new(),
            runs: HashMap::new(),
            ready: BinaryHeap::new(),
            waiting: BinaryHeap::new(),
            inflight: HashMap::new(),
            running: 0,
            pool_slots: HashMap::new(),
            pool_used: HashMap::new(),
            dag_running: HashMap::new(),
            updates: Vec::new(),
            run_states: Vec::new(),
            done_requests: Vec::new(),
            last_requests: None,
            order: 0,
            stats: EngineStats::default(),
            metrics: Arc::default(),
            last_state_count: None,
            observer: None,
            claim_queued: !config_single_run,
            schedule: !config_single_run,
        };
        engine.parse_if_changed(true).await?;
        if !config_single_run {
            engine.adopt().await?;
        }
        Ok(engine)
    }

    /// Calls `observer` with every task-instance change the engine writes (`updraft dags test`
    /// prints them).
    pub fn observe(&mut self, observer: Observer) {
        self.observer = Some(observer);
    }

    /// Runs exactly one run, already inserted: no timetables, no other queued runs
    /// (`updraft dags test`). The run's DAG need not be unpaused.
    pub async fn run_only(&mut self, dag_id: &str, run_id: &str) -> Result<RunState, EngineError> {
        let row = self
            .db
            .get_run(dag_id, run_id)
            .await?
            .ok_or_else(|| DbError::NotFound(format!("no run `{run_id}` of `{dag_id}`")))?;
        let loaded =
            self.dags.get(dag_id).cloned().ok_or_else(|| {
                DbError::NotFound(format!("DAG `{dag_id}` did not load: run `updraft dags validate`"))
            })?;
        self.paused.remove(dag_id);
        self.db.apply(&[], &[(row.id, "running".into(), None)], &[]).await?;
        let tasks = new_task_instances(&loaded, row.id);
        self.db.create_task_instances(&row, &tasks).await?;
        let run_pk = row.id;
        self.activate(row, loaded, None);
        self.complete_if_done(run_pk);
        self.run_until_finished(dag_id, run_id).await
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// The metrics this engine keeps up to date (for `/metrics` and `/health`).
    pub fn metrics(&self) -> Arc<SchedulerMetrics> {
        Arc::clone(&self.metrics)
    }

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
            let result = self.tick().await;
            if result.is_ok() {
                self.metrics.loop_done(started.elapsed());
            }
            match result {
                Ok(()) => failures = 0,
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

    /// Runs loops until the run `run_pk` has finished; returns its final state.
    pub async fn run_until_finished(&mut self, dag_id: &str, run_id: &str) -> Result<RunState, EngineError> {
        let result = self.loops_until_finished(dag_id, run_id).await;
        self.flush_logs().await;
        result
    }

    async fn loops_until_finished(&mut self, dag_id: &str, run_id: &str) -> Result<RunState, EngineError> {
        loop {
            self.tick().await?;
            if let Some(run) = self.db.get_run(dag_id, run_id).await?
                && matches!(run.state.as_str(), "success" | "failed")
            {
                return Ok(if run.state == "success" { RunState::Success } else { RunState::Failed });
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
        self.parse_if_changed(false).await?;
        if self.last_heartbeat.elapsed() >= Duration::from_secs(1) {
            self.db.heartbeat(&self.config.scheduler_id).await?;
            self.last_heartbeat = Instant::now();
            if self.db.backend() == Backend::Postgres && self.claim_queued {
                self.adopt().await?;
            }
        }
        // Timetables change by the minute at most; triggers should start within a blink. Both
        // cost a query, so neither runs on every loop of a busy scheduler.
        if self.schedule && self.last_timetables.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            self.last_timetables = Some(Instant::now());
            self.create_scheduled_runs().await?;
        }
        if self.claim_queued && self.last_claim.is_none_or(|t| t.elapsed() >= Duration::from_millis(250)) {
            self.last_claim = Some(Instant::now());
            self.start_queued_runs().await?;
        }
        if self.claim_queued && self.last_requests.is_none_or(|t| t.elapsed() >= Duration::from_millis(500)) {
            self.last_requests = Some(Instant::now());
            self.take_requests().await?;
        }
        self.release_due_waits();
        self.dispatch();
        self.count_task_states();
        self.publish_metrics();
        self.flush().await
    }

    /// Copies the engine's counters into its metrics; counts task states every 5 s (a walk over
    /// every task of the active runs).
    fn publish_metrics(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let m = &self.metrics;
        m.active_runs.store(self.runs.len() as u64, Relaxed);
        m.ready.store(self.ready.len() as u64, Relaxed);
        m.running.store(self.running as u64, Relaxed);
        m.parallelism.store(self.config.parallelism as u64, Relaxed);
        m.tries_dispatched.store(self.stats.tries_dispatched, Relaxed);
        m.tries_finished.store(self.stats.tries_finished, Relaxed);
        m.runs_finished.store(self.stats.runs_finished, Relaxed);
    }

    fn count_task_states(&mut self) {
        if self.last_state_count.is_some_and(|t| t.elapsed() < Duration::from_secs(5)) {
            return;
        }
        self.last_state_count = Some(Instant::now());
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

    async fn flush(&mut self) -> Result<(), EngineError> {
        if self.updates.is_empty() && self.run_states.is_empty() && self.done_requests.is_empty() {
            return Ok(());
        }
        let updates = std::mem::take(&mut self.updates);
        let run_states = std::mem::take(&mut self.run_states);
        let done_requests = std::mem::take(&mut self.done_requests);
        if let Err(error) = self.db.apply(&updates, &run_states, &done_requests).await {
            // Keep the changes for the next loop, ahead of anything newer.
            self.updates.splice(0..0, updates);
            self.run_states.splice(0..0, run_states);
            self.done_requests.splice(0..0, done_requests);
            return Err(error.into());
        }
        if let Some(observer) = self.observer.as_mut() {
            updates.iter().for_each(&mut *observer);
        }
        Ok(())
    }

    async fn parse_if_changed(&mut self, force: bool) -> Result<(), EngineError> {
        if !force && self.last_parse.is_some_and(|t| t.elapsed() < self.config.parse_interval) {
            return Ok(());
        }
        self.last_parse = Some(Instant::now());
        let folder = self.config.dags_folder.clone();
        let mut current = tokio::task::spawn_blocking(move || fingerprint(&folder)).await.unwrap_or(0);
        // A plugin installed or removed changes which DAGs are valid: parse again then too.
        let catalog = self.config.catalog.as_ref().map(|c| (c.0)());
        if let Some(catalog) = &catalog {
            current ^= catalog_fingerprint(catalog);
        }
        if self.fingerprint != Some(current) {
            self.fingerprint = Some(current);
            let parse_started = Instant::now();
            let folder = self.config.dags_folder.clone();
            let mut bag = tokio::task::spawn_blocking(move || updraft_dagbag::load(&folder, Options::default()))
                .await
                .unwrap_or_default();
            if let Some(catalog) = &catalog {
                let (good, bad): (Vec<_>, Vec<_>) = std::mem::take(&mut bag.dags)
                    .into_iter()
                    .map(|d| {
                        let problems = updraft_dag::operators::check_operators(&d.dag, catalog);
                        (d, problems)
                    })
                    .partition(|(_, problems)| problems.is_empty());
                bag.dags = good.into_iter().map(|(d, _)| d).collect();
                bag.import_errors.extend(bad.into_iter().map(|(d, problems)| updraft_dagbag::ImportError {
                    file: PathBuf::from(&*d.dag.file),
                    diagnostics: problems,
                }));
            }
            let records: Vec<DagRecord> = bag
                .dags
                .iter()
                .map(|d| DagRecord {
                    dag_id: d.dag.id.clone(),
                    fileloc: d.dag.file.to_string(),
                    source_hash: source_hash(&d.dag),
                    description: d.dag.description.clone(),
                    schedule: match d.dag.schedule {
                        updraft_dag::Schedule::None => None,
                        ref s => Some(s.describe()),
                    },
                    timezone: d.dag.timezone.name().to_owned(),
                    tags: serde_json::to_string(&d.dag.tags).unwrap_or_else(|_| "[]".into()),
                    owners: serde_json::to_string(&d.dag.owner.iter().collect::<Vec<_>>())
                        .unwrap_or_else(|_| "[]".into()),
                    max_active_runs: i32::try_from(d.dag.max_active_runs).unwrap_or(i32::MAX),
                    max_active_tasks: i32::try_from(d.dag.max_active_tasks).unwrap_or(i32::MAX),
                    task_count: i32::try_from(d.dag.tasks.len()).unwrap_or(i32::MAX),
                })
                .collect();
            let errors: Vec<(String, String)> = bag
                .import_errors
                .iter()
                .map(|e| {
                    (
                        e.file.display().to_string(),
                        e.diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"),
                    )
                })
                .collect();
            self.metrics.parse_seconds.observe(parse_started.elapsed());
            self.metrics.dags.store(records.len() as u64, std::sync::atomic::Ordering::Relaxed);
            self.metrics.import_errors.store(errors.len() as u64, std::sync::atomic::Ordering::Relaxed);
            self.db.sync_dags(&records, &errors, self.config.paused_at_creation).await?;
            self.dags = bag.dags.into_iter().map(|d| (d.dag.id.clone(), Arc::new(d))).collect();
        }
        self.paused = self.db.list_dags().await?.into_iter().filter(|d| d.is_paused).map(|d| d.record.dag_id).collect();
        self.pool_slots = self.db.pools().await?.into_iter().map(|(n, s)| (n, i64::from(s))).collect();
        Ok(())
    }

    /// Inserts the runs timetables make due (several at once when catching up).
    async fn create_scheduled_runs(&mut self) -> Result<(), EngineError> {
        let now = Utc::now();
        let dags: Vec<Arc<LoadedDag>> =
            self.dags.values().filter(|d| !self.paused.contains(&d.dag.id)).cloned().collect();
        for loaded in dags {
            let dag = &loaded.dag;
            if matches!(dag.schedule, updraft_dag::Schedule::None) {
                continue;
            }
            let last = match self.last_intervals.get(&dag.id) {
                Some(last) => *last,
                None => {
                    let stored = self
                        .db
                        .last_scheduled_interval(&dag.id)
                        .await?
                        .map(|(s, e)| DataInterval { start: from_us(s), end: from_us(e) });
                    self.last_intervals.insert(dag.id.clone(), stored);
                    stored
                }
            };
            let mut last = last;
            for _ in 0..100 {
                let Some(interval) = next_scheduled_run(TimetableSpec::of(dag), last, now) else { break };
                let run = NewRun {
                    dag_id: dag.id.clone(),
                    run_id: format!("scheduled__{}", interval.start.to_rfc3339()),
                    run_type: "scheduled".into(),
                    logical_date: Some(to_us(interval.start)),
                    data_interval: Some((to_us(interval.start), to_us(interval.end))),
                    run_after: to_us(interval.end),
                    conf: "{}".into(),
                    triggered_by: "timetable".into(),
                    triggering_user: None,
                    note: None,
                };
                match self.db.insert_run(&run).await {
                    Ok(_) | Err(DbError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                last = Some(interval);
            }
            self.last_intervals.insert(dag.id.clone(), last);
        }
        Ok(())
    }

    async fn start_queued_runs(&mut self) -> Result<(), EngineError> {
        let claimed = self.db.claim_queued_runs(&self.config.scheduler_id, 8).await?;
        for row in claimed {
            let Some(loaded) = self.dags.get(&row.dag_id).cloned() else {
                self.run_states.push((row.id, "failed".into(), Some(now_us())));
                continue;
            };
            let active = self.runs.values().filter(|r| r.row.dag_id == row.dag_id).count();
            if active >= loaded.dag.max_active_runs as usize {
                // Over max_active_runs: hand it back for a later loop.
                requeue_run(&self.db, row.id).await?;
                continue;
            }
            let tasks = new_task_instances(&loaded, row.id);
            let created = self.db.create_task_instances(&row, &tasks).await?;
            // A run that ran before (cleared, or marked after it finished) resumes from its
            // stored states; a new one starts from scratch.
            let stored = if created < tasks.len() as u64 { Some(self.db.task_instances(row.id).await?) } else { None };
            self.take_over(row, loaded, stored).await?;
        }
        Ok(())
    }

    /// Activates a run this scheduler now owns, applies the requests waiting on it, and
    /// finishes it if nothing is left to do.
    async fn take_over(
        &mut self,
        row: RunRow,
        loaded: Arc<LoadedDag>,
        stored: Option<Vec<updraft_db::runs::TaskInstanceRow>>,
    ) -> Result<(), EngineError> {
        let run_pk = row.id;
        self.activate(row, loaded, stored);
        for request in self.db.run_requests(run_pk).await? {
            self.apply_request(&request);
        }
        self.complete_if_done(run_pk);
        Ok(())
    }

    /// Carries out the clear and mark requests on the runs this scheduler owns. A run that
    /// finished while a request was made goes back to the queue, to be taken over afresh.
    async fn take_requests(&mut self) -> Result<(), EngineError> {
        let requests = self.db.owned_requests(&self.config.scheduler_id).await?;
        let mut requeue = Vec::new();
        for request in requests {
            if self.done_requests.contains(&request.id) {
                continue;
            }
            if self.runs.contains_key(&request.run_pk) {
                self.apply_request(&request);
                self.complete_if_done(request.run_pk);
            } else if matches!(request.run_state.as_str(), "success" | "failed") && !requeue.contains(&request.run_pk) {
                requeue.push(request.run_pk);
            }
        }
        // The run's final state must be written before it is queued again.
        self.flush().await?;
        for run_pk in requeue {
            self.db.requeue_for_requests(run_pk).await?;
        }
        Ok(())
    }

    /// Applies one clear or mark request to an active run (in memory; written by the next flush,
    /// in the same transaction that deletes the request).
    fn apply_request(&mut self, request: &updraft_db::requests::RequestRow) {
        use updraft_db::requests::RequestAction;
        self.done_requests.push(request.id);
        let run_pk = request.run_pk;
        let Some(run) = self.runs.get(&run_pk) else { return };
        let dag = Arc::clone(&run.dag);
        let dag = &dag.dag;
        let n = dag.tasks.len() as u32;
        let mut selected: Vec<u32> = if request.task_ids.is_empty() {
            (0..n).collect()
        } else {
            let index: HashMap<&str, u32> =
                dag.tasks.iter().enumerate().map(|(i, t)| (t.id.as_str(), i as u32)).collect();
            request.task_ids.iter().filter_map(|id| index.get(id.as_str()).copied()).collect()
        };
        let mut seen = vec![false; n as usize];
        for &t in &selected {
            seen[t as usize] = true;
        }
        let mut stack = selected.clone();
        while let Some(t) = stack.pop() {
            let mut next = Vec::new();
            if request.downstream {
                next.extend_from_slice(dag.downstream(t));
            }
            if request.upstream {
                next.extend_from_slice(dag.upstream(t));
            }
            for u in next {
                if !seen[u as usize] {
                    seen[u as usize] = true;
                    selected.push(u);
                    stack.push(u);
                }
            }
        }
        selected.sort_unstable();
        let now = now_us();
        match request.action {
            RequestAction::Clear => {
                let Some(run) = self.runs.get_mut(&run_pk) else { return };
                if request.only_failed {
                    selected
                        .retain(|&t| matches!(run.readiness.state(t), TaskState::Failed | TaskState::UpstreamFailed));
                }
                let in_flight = in_flight_tries(run_pk, run, &selected);
                for &t in &selected {
                    let task = &dag.tasks[t as usize];
                    run.max_tries[t as usize] = run.tries[t as usize] + task.retries;
                    run.rescheduled[t as usize] = false;
                    run.started.remove(&t);
                    self.updates.push(TaskUpdate {
                        run_pk,
                        task_id: task.id.clone(),
                        state: TaskState::NoStatus.as_str().into(),
                        reset_max_tries: Some(i32::try_from(run.max_tries[t as usize]).unwrap_or(i32::MAX)),
                        ..TaskUpdate::default()
                    });
                }
                run.forced = None;
                let changes = run.readiness.clear(&selected);
                self.stop_tries(&in_flight);
                self.apply_changes(run_pk, changes);
            }
            RequestAction::MarkSuccess | RequestAction::MarkFailed | RequestAction::MarkSkipped => {
                let state = match request.action {
                    RequestAction::MarkSuccess => TaskState::Success,
                    RequestAction::MarkFailed => TaskState::Failed,
                    _ => TaskState::Skipped,
                };
                for t in selected {
                    self.mark(run_pk, t, state, now);
                }
            }
            RequestAction::MarkRunSuccess | RequestAction::MarkRunFailed => {
                let success = request.action == RequestAction::MarkRunSuccess;
                for t in 0..n {
                    let Some(run) = self.runs.get(&run_pk) else { return };
                    let current = run.readiness.state(t);
                    if current.is_finished() {
                        continue;
                    }
                    let state = if success {
                        TaskState::Success
                    } else if matches!(current, TaskState::Queued | TaskState::Running) {
                        TaskState::Failed
                    } else {
                        TaskState::Skipped
                    };
                    self.mark(run_pk, t, state, now);
                }
                if let Some(run) = self.runs.get_mut(&run_pk) {
                    run.forced = Some(if success { RunState::Success } else { RunState::Failed });
                }
            }
        }
    }

    /// Sets a task's final state by hand. A try still running is stopped (its pod deleted, its
    /// runner aborted; an executor that cannot stop it lets it finish, and its result is
    /// discarded).
    fn mark(&mut self, run_pk: i64, t: u32, state: TaskState, now: i64) {
        let Some(run) = self.runs.get_mut(&run_pk) else { return };
        if run.readiness.state(t) == state {
            return;
        }
        let in_flight = in_flight_tries(run_pk, run, &[t]);
        self.stop_tries(&in_flight);
        let Some(run) = self.runs.get_mut(&run_pk) else { return };
        run.started.remove(&t);
        run.rescheduled[t as usize] = false;
        self.updates.push(TaskUpdate {
            run_pk,
            task_id: run.dag.dag.tasks[t as usize].id.clone(),
            state: state.as_str().into(),
            end_date: Some(now),
            ..TaskUpdate::default()
        });
        let changes = run.readiness.mark(t, state);
        self.apply_changes(run_pk, changes);
    }

    /// Takes over runs left by dead schedulers and rebuilds their state from the database.
    async fn adopt(&mut self) -> Result<(), EngineError> {
        let stale_before = now_us() - i64::try_from(self.config.zombie_after.as_micros()).unwrap_or(i64::MAX);
        let adopted =
            self.db.adopt_runs(&self.config.scheduler_id, stale_before, self.db.backend() == Backend::Sqlite).await?;
        for row in adopted {
            if self.runs.contains_key(&row.id) {
                continue;
            }
            let Some(loaded) = self.dags.get(&row.dag_id).cloned() else { continue };
            let stored = self.db.task_instances(row.id).await?;
            self.take_over(row, loaded, Some(stored)).await?;
        }
        Ok(())
    }

    fn activate(
        &mut self,
        row: RunRow,
        loaded: Arc<LoadedDag>,
        stored: Option<Vec<updraft_db::runs::TaskInstanceRow>>,
    ) {
        let dag = &loaded.dag;
        let n = dag.tasks.len();
        let mut readiness = Readiness::new(dag);
        let mut tries = vec![0u32; n];
        let mut max_tries: Vec<u32> = dag.tasks.iter().map(|t| t.retries).collect();
        let mut in_flight = Vec::new();
        let changes = match stored {
            None => readiness.start(),
            Some(rows) => {
                let index: HashMap<&str, u32> =
                    dag.tasks.iter().enumerate().map(|(i, t)| (t.id.as_str(), i as u32)).collect();
                let mut states = vec![TaskState::NoStatus; n];
                for r in &rows {
                    if let Some(&t) = index.get(r.task_id.as_str()) {
                        let state: TaskState = r.state.parse().unwrap_or(TaskState::NoStatus);
                        states[t as usize] = state;
                        tries[t as usize] = u32::try_from(r.try_number).unwrap_or(0);
                        max_tries[t as usize] = u32::try_from(r.max_tries).unwrap_or(0);
                        if state == TaskState::UpForRetry
                            && let Some(at) = r.next_attempt_at
                        {
                            self.waiting.push(Reverse((at, row.id, t, tries[t as usize])));
                        }
                    }
                }
                // Tries waiting for a retry keep waiting; tries that were queued or running are
                // handed to the executor to adopt (a pod may still be running them); every other
                // unfinished task is decided again.
                let waiting: Vec<u32> =
                    (0..n as u32).filter(|&t| states[t as usize] == TaskState::UpForRetry).collect();
                for t in 0..n as u32 {
                    let state = states[t as usize];
                    if matches!(state, TaskState::Queued | TaskState::Running) && tries[t as usize] > 0 {
                        readiness.set_unfinished(t, TaskState::Queued);
                        in_flight.push(t);
                    }
                }
                let mut changes = readiness.restore(&states);
                changes.retain(|(t, _)| !waiting.contains(t));
                for &t in &waiting {
                    readiness.set_unfinished(t, TaskState::UpForRetry);
                }
                changes
            }
        };
        let run_pk = row.id;
        self.runs.insert(
            run_pk,
            ActiveRun {
                row,
                dag: loaded,
                readiness,
                tries,
                rescheduled: vec![false; n],
                started: HashMap::new(),
                max_tries,
                forced: None,
            },
        );
        self.apply_changes(run_pk, changes);
        self.adopt_tries(run_pk, &in_flight);
    }

    /// Hands tries that were in flight under a gone scheduler to the executor, holding their
    /// slots as if this scheduler had started them.
    fn adopt_tries(&mut self, run_pk: i64, tasks: &[u32]) {
        let Some(run) = self.runs.get(&run_pk) else { return };
        let loaded = Arc::clone(&run.dag);
        let row = run.row.clone();
        let tries = run.tries.clone();
        let mut items = Vec::new();
        for &t in tasks {
            let task = &loaded.dag.tasks[t as usize];
            let try_number = tries[t as usize];
            let key = TryKey { run_pk, task_index: t, try_number };
            let log_path = self.log_path(&row, &task.id, try_number);
            let Ok(item) = work_item(&loaded, t, &row, key.clone(), log_path) else {
                // The DAG changed so that the try cannot be rendered any more: run it afresh.
                if let Some(run) = self.runs.get_mut(&run_pk) {
                    run.readiness.set_unfinished(t, TaskState::Scheduled);
                }
                self.apply_changes(run_pk, vec![(t, TaskState::Scheduled)]);
                continue;
            };
            self.hold_slot(key, task, &loaded.dag.id);
            items.push(item);
        }
        if !items.is_empty() {
            self.stats.tries_dispatched += items.len() as u64;
            self.executor.adopt(items);
        }
    }

    fn apply_changes(&mut self, run_pk: i64, changes: Vec<(u32, TaskState)>) {
        let now = now_us();
        let Some(run) = self.runs.get_mut(&run_pk) else { return };
        for (t, state) in changes {
            let task = &run.dag.dag.tasks[t as usize];
            let mut update =
                TaskUpdate { run_pk, task_id: task.id.clone(), state: state.as_str().into(), ..TaskUpdate::default() };
            if state == TaskState::Scheduled {
                update.scheduled_at = Some(now);
                self.order += 1;
                self.ready.push(Ready { priority: task.priority_weight, order: Reverse(self.order), run_pk, task: t });
            } else if state.is_finished() {
                update.end_date = Some(now);
            }
            self.updates.push(update);
        }
    }

    fn complete_if_done(&mut self, run_pk: i64) {
        let Some(run) = self.runs.get(&run_pk) else { return };
        if !run.readiness.all_finished() {
            return;
        }
        let dag = &run.dag.dag;
        let leaves =
            (0..dag.tasks.len() as u32).filter(|&t| dag.downstream(t).is_empty()).map(|t| run.readiness.state(t));
        let state = run.forced.unwrap_or_else(|| RunState::from_leaves(leaves));
        self.run_states.push((run_pk, state.as_str().into(), Some(now_us())));
        self.runs.remove(&run_pk);
        self.stats.runs_finished += 1;
    }

    fn release_due_waits(&mut self) {
        let now = now_us();
        while let Some(Reverse((at, run_pk, t, try_number))) = self.waiting.peek().copied() {
            if at > now {
                break;
            }
            self.waiting.pop();
            if let Some(run) = self.runs.get_mut(&run_pk)
                && run.tries[t as usize] == try_number
                && matches!(run.readiness.state(t), TaskState::UpForRetry | TaskState::UpForReschedule)
            {
                run.readiness.set_unfinished(t, TaskState::Scheduled);
                self.apply_changes(run_pk, vec![(t, TaskState::Scheduled)]);
            }
        }
    }

    /// Hands ready tries to the executor, highest priority first, within parallelism, pool
    /// slots and each DAG's max_active_tasks.
    fn dispatch(&mut self) {
        let mut blocked = Vec::new();
        while self.running < self.config.parallelism {
            let Some(ready) = self.ready.pop() else { break };
            let Some(run) = self.runs.get(&ready.run_pk) else { continue };
            if run.readiness.state(ready.task) != TaskState::Scheduled {
                continue;
            }
            let dag = &run.dag.dag;
            if self.claim_queued && self.paused.contains(&dag.id) {
                blocked.push(ready);
                continue;
            }
            let task = &dag.tasks[ready.task as usize];
            let slots = i64::from(task.pool_slots);
            let Some(&pool_size) = self.pool_slots.get(&task.pool) else {
                let message = format!(
                    "pool `{}` does not exist: create it (updraft pools set {} SLOTS) or remove `pool:` from the task",
                    task.pool, task.pool
                );
                self.fail_without_running(ready.run_pk, ready.task, &message);
                continue;
            };
            if self.pool_used.get(&task.pool).copied().unwrap_or(0) + slots > pool_size
                || self.dag_running.get(&dag.id).copied().unwrap_or(0) >= dag.max_active_tasks
            {
                blocked.push(ready);
                continue;
            }
            self.start_try(ready.run_pk, ready.task);
        }
        self.ready.extend(blocked);
    }

    fn fail_without_running(&mut self, run_pk: i64, t: u32, message: &str) {
        if let Some(run) = self.runs.get(&run_pk) {
            let (row, task_id, try_number) = (&run.row, &run.dag.dag.tasks[t as usize].id, run.tries[t as usize] + 1);
            self.write_own_log(row, task_id, try_number, &format!("[updraft] the task could not start: {message}"));
        }
        self.finish_try(run_pk, t, TaskState::Failed, None);
    }

    fn log_path(&self, row: &RunRow, task_id: &str, try_number: u32) -> PathBuf {
        log_path(self.config.logs.dir(), row, task_id, try_number)
    }

    /// Writes the whole log of a try that ends without an executor (it could not start) and
    /// ships it in the background.
    fn write_own_log(&self, row: &RunRow, task_id: &str, try_number: u32, line: &str) {
        let log = self.config.logs.file(TryLog::new(&row.dag_id, &row.run_id, task_id, try_number));
        if let Err(error) = log.append_line(line) {
            tracing::warn!(%error, "could not write the try's log");
        }
        self.config.logs.ship_later(log);
    }

    fn start_try(&mut self, run_pk: i64, t: u32) {
        let now = now_us();
        let Some(run) = self.runs.get_mut(&run_pk) else { return };
        let try_number =
            if run.rescheduled[t as usize] { run.tries[t as usize].max(1) } else { run.tries[t as usize] + 1 };
        run.tries[t as usize] = try_number;
        run.rescheduled[t as usize] = false;
        run.readiness.set_unfinished(t, TaskState::Queued);
        let loaded = Arc::clone(&run.dag);
        let row = run.row.clone();
        let task = &loaded.dag.tasks[t as usize];
        self.updates.push(TaskUpdate {
            run_pk,
            task_id: task.id.clone(),
            state: "queued".into(),
            try_number: Some(i32::try_from(try_number).unwrap_or(i32::MAX)),
            queued_at: Some(now),
            executor: Some(self.executor.name().into()),
            ..TaskUpdate::default()
        });
        let log_path = self.log_path(&row, &task.id, try_number);
        let key = TryKey { run_pk, task_index: t, try_number };
        match work_item(&loaded, t, &row, key.clone(), log_path) {
            Ok(item) => {
                self.hold_slot(key, task, &loaded.dag.id);
                self.stats.tries_dispatched += 1;
                self.executor.submit(item);
            }
            Err(message) => {
                self.write_own_log(
                    &row,
                    &task.id,
                    try_number,
                    &format!("[updraft] the task could not start: {message}"),
                );
                self.finish_try(run_pk, t, TaskState::Failed, None);
            }
        }
    }

    /// A try goes in flight: it takes a parallelism slot, its pool slots and a place in its
    /// DAG's `max_active_tasks` until [`Self::release_slot`].
    fn hold_slot(&mut self, key: TryKey, task: &updraft_dag::Task, dag_id: &str) {
        self.running += 1;
        *self.pool_used.entry(task.pool.clone()).or_default() += i64::from(task.pool_slots);
        *self.dag_running.entry(dag_id.to_owned()).or_default() += 1;
        let slot = Slot { pool: task.pool.clone(), pool_slots: i64::from(task.pool_slots), dag_id: dag_id.to_owned() };
        self.inflight.insert(key, slot);
    }

    /// Stops tries that a clear or mark overtook: the executor cancels them (it reports nothing
    /// more for them) and their slots are free at once.
    fn stop_tries(&mut self, keys: &[TryKey]) {
        for key in keys {
            if self.release_slot(key) {
                self.executor.cancel(key);
            }
        }
    }

    /// Frees what a try in flight held; false if the try was not in flight.
    fn release_slot(&mut self, key: &TryKey) -> bool {
        let Some(slot) = self.inflight.remove(key) else { return false };
        self.running = self.running.saturating_sub(1);
        if let Some(used) = self.pool_used.get_mut(&slot.pool) {
            *used -= slot.pool_slots;
        }
        if let Some(n) = self.dag_running.get_mut(&slot.dag_id) {
            *n = n.saturating_sub(1);
        }
        true
    }

    fn on_event(&mut self, event: WorkEvent) {
        match event {
            WorkEvent::Started { key, hostname } => {
                let Some(run) = self.runs.get_mut(&key.run_pk) else { return };
                if run.tries[key.task_index as usize] != key.try_number
                    || run.readiness.state(key.task_index) != TaskState::Queued
                {
                    return;
                }
                let now = now_us();
                run.started.insert(key.task_index, now);
                run.readiness.set_unfinished(key.task_index, TaskState::Running);
                let task_id = run.dag.dag.tasks[key.task_index as usize].id.clone();
                self.updates.push(TaskUpdate {
                    run_pk: key.run_pk,
                    task_id,
                    state: "running".into(),
                    start_date: Some(now),
                    hostname: Some(hostname),
                    ..TaskUpdate::default()
                });
            }
            WorkEvent::Finished { key, outcome } => {
                if !self.release_slot(&key) {
                    return;
                }
                self.stats.tries_finished += 1;
                let Some(run) = self.runs.get(&key.run_pk) else { return };
                let task = &run.dag.dag.tasks[key.task_index as usize];
                // A try that was cleared or marked meanwhile ends without effect.
                if run.tries[key.task_index as usize] != key.try_number
                    || !matches!(run.readiness.state(key.task_index), TaskState::Queued | TaskState::Running)
                {
                    return;
                }
                match outcome {
                    WorkOutcome::Success => self.finish_try(key.run_pk, key.task_index, TaskState::Success, None),
                    WorkOutcome::Skipped => self.finish_try(key.run_pk, key.task_index, TaskState::Skipped, None),
                    WorkOutcome::Reschedule { after } => {
                        let at = now_us() + i64::try_from(after.as_micros()).unwrap_or(i64::MAX / 2);
                        self.finish_try(key.run_pk, key.task_index, TaskState::UpForReschedule, Some(at));
                    }
                    WorkOutcome::Failed { retryable, .. } => {
                        let retries_left = key.try_number <= run.max_tries[key.task_index as usize];
                        if retryable && retries_left {
                            let identity =
                                format!("{}#{}#{}#{}", run.row.dag_id, task.id, run.row.run_id, key.try_number);
                            let wait = retry_wait(
                                task.retry_delay,
                                task.retry_exponential_backoff,
                                task.max_retry_delay,
                                key.try_number,
                                &identity,
                            );
                            let at = now_us() + i64::try_from(wait.as_micros()).unwrap_or(i64::MAX / 2);
                            self.finish_try(key.run_pk, key.task_index, TaskState::UpForRetry, Some(at));
                        } else {
                            self.finish_try(key.run_pk, key.task_index, TaskState::Failed, None);
                        }
                    }
                }
            }
        }
    }

    /// Records the end of a try: a final state propagates downstream; a retry or reschedule
    /// waits until `next_at`.
    fn finish_try(&mut self, run_pk: i64, t: u32, state: TaskState, next_at: Option<i64>) {
        let now = now_us();
        let Some(run) = self.runs.get_mut(&run_pk) else { return };
        let task_id = run.dag.dag.tasks[t as usize].id.clone();
        let started = run.started.remove(&t);
        let duration = started.map(|s| (now - s) as f64 / 1e6);
        self.updates.push(TaskUpdate {
            run_pk,
            task_id,
            state: state.as_str().into(),
            end_date: Some(now),
            duration_s: duration,
            next_attempt_at: next_at,
            ..TaskUpdate::default()
        });
        if let Some(at) = next_at {
            run.readiness.set_unfinished(t, state);
            if state == TaskState::UpForReschedule {
                run.rescheduled[t as usize] = true;
            }
            self.waiting.push(Reverse((at, run_pk, t, run.tries[t as usize])));
            return;
        }
        let changes = run.readiness.finish(t, state);
        self.apply_changes(run_pk, changes);
        self.complete_if_done(run_pk);
    }
}

fn new_task_instances(loaded: &LoadedDag, run_pk: i64) -> Vec<NewTaskInstance> {
    loaded
        .dag
        .tasks
        .iter()
        .map(|t| NewTaskInstance {
            task_id: t.id.clone(),
            uuid: uuid_for(run_pk, &t.id),
            max_tries: i32::try_from(t.retries).unwrap_or(i32::MAX),
            operator: t.operator.clone(),
            pool: t.pool.clone(),
            pool_slots: i32::try_from(t.pool_slots).unwrap_or(1),
            priority_weight: t.priority_weight,
        })
        .collect()
}

/// Puts a claimed run back in the queue (over `max_active_runs`).
async fn requeue_run(db: &Db, run_pk: i64) -> Result<(), DbError> {
    db.apply(&[], &[(run_pk, "queued".into(), None)], &[]).await
}

/// A stable UUID-shaped id for a task instance (the API's `id`).
fn uuid_for(run_pk: i64, task_id: &str) -> String {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325 ^ (run_pk as u64);
    let mut b: u64 = 0x8422_2325_cbf2_9ce4 ^ (run_pk as u64).rotate_left(17);
    for byte in task_id.bytes() {
        a = (a ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        b = (b ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(5);
    }
    let hex = format!("{a:016x}{b:016x}");
    format!("{}-{}-4{}-8{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
}

/// The tries of tasks `tasks` of a run that are queued or running.
fn in_flight_tries(run_pk: i64, run: &ActiveRun, tasks: &[u32]) -> Vec<TryKey> {
    tasks
        .iter()
        .filter(|&&t| matches!(run.readiness.state(t), TaskState::Queued | TaskState::Running))
        .map(|&t| TryKey { run_pk, task_index: t, try_number: run.tries[t as usize] })
        .collect()
}

/// Where a try's log lives: `LOG_DIR/dag_id=…/run_id=…/task_id=…/attempt=N.log`.
pub fn log_path(log_dir: &Path, row: &RunRow, task_id: &str, try_number: u32) -> PathBuf {
    TryLog::new(&row.dag_id, &row.run_id, task_id, try_number).path_in(log_dir)
}

/// One try of task `t` of a run, rendered and ready for an executor (the scheduler builds it;
/// so does `updraft tasks run`, the worker of a task pod). Errors are template or SQL-file
/// errors, which fail the try without running it.
pub fn work_item(loaded: &LoadedDag, t: u32, row: &RunRow, key: TryKey, log_path: PathBuf) -> Result<WorkItem, String> {
    let task = &loaded.dag.tasks[t as usize];
    let params = render_item(loaded, t, row)?;
    let logical = row.logical_date.unwrap_or(row.run_after);
    Ok(WorkItem {
        key,
        dag_id: row.dag_id.clone(),
        run_id: row.run_id.clone(),
        task_id: task.id.clone(),
        operator: task.operator.clone(),
        params,
        logical_date: iso(logical),
        data_interval_start: iso(row.data_interval_start.unwrap_or(logical)),
        data_interval_end: iso(row.data_interval_end.unwrap_or(logical)),
        execution_timeout: task.execution_timeout,
        log_path,
        kubernetes: task.kubernetes.clone(),
        // The executor (`PinVersions` in a scheduler) pins it when the try is dispatched.
        plugin_sha256: None,
    })
}

/// Renders a task's params (and, for the sql operator, its SQL) with the run's values.
fn render_item(loaded: &LoadedDag, t: u32, row: &RunRow) -> Result<serde_json::Value, String> {
    let dag = &loaded.dag;
    let task = &dag.tasks[t as usize];
    let logical = row.logical_date.unwrap_or(row.run_after);
    let logical_dt = from_us(logical);
    let mut params = dag.params.clone();
    params.extend(task.params.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Ok(serde_json::Value::Object(conf)) = serde_json::from_str::<serde_json::Value>(&row.conf) {
        // Trigger-time `conf` overrides params of the same name, as Airflow's dag_run.conf does
        // when `dag_run_conf_overrides_params` is on.
        params.extend(conf);
    }
    let vars = updraft_dag::template::TemplateVars {
        ds: logical_dt.format("%Y-%m-%d").to_string(),
        ds_nodash: logical_dt.format("%Y%m%d").to_string(),
        ts: logical_dt.to_rfc3339(),
        logical_date: logical_dt.to_rfc3339(),
        data_interval_start: from_us(row.data_interval_start.unwrap_or(logical)).to_rfc3339(),
        data_interval_end: from_us(row.data_interval_end.unwrap_or(logical)).to_rfc3339(),
        run_id: row.run_id.clone(),
        dag_id: dag.id.clone(),
        task_id: task.id.clone(),
        params: params.clone(),
    };
    let render = |text: &str, what: &str| {
        updraft_dag::template::render(text, &vars, false)
            .map_err(|e| format!("template error in {what} at line {}: {}", e.line, e.message))
    };
    let mut out = serde_json::Map::new();
    // With `sql:`, params are template values for the SQL (as in Airflow's SQL operators);
    // the operator itself receives the rendered statement and the connection.
    let operator_params = if task.sql.is_some() { &serde_json::Map::new() } else { &task.params };
    for (k, v) in operator_params {
        let value = match v {
            serde_json::Value::String(s) => serde_json::Value::String(render(s, &format!("param `{k}`"))?),
            other => other.clone(),
        };
        out.insert(k.clone(), value);
    }
    if let Some(sql) = &task.sql {
        let text = match sql {
            SqlSource::Inline(text) => text.clone(),
            SqlSource::File(path) => {
                let full = loaded.folder.join(path);
                std::fs::read_to_string(&full)
                    .map_err(|e| format!("cannot read the SQL file {}: {e}", full.display()))?
            }
        };
        out.insert("sql".into(), serde_json::Value::String(render(&text, "the SQL")?));
        if let Some(connection) = &task.connection {
            out.entry("connection").or_insert_with(|| serde_json::Value::String(connection.clone()));
        }
    }
    Ok(serde_json::Value::Object(out))
}

#[cfg(test)]
mod tests {
    #[test]
    fn task_instance_ids_look_like_uuids() {
        let id = super::uuid_for(7, "orders_clean");
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_eq!(&id[14..15], "4");
        assert_eq!(id, super::uuid_for(7, "orders_clean"));
        assert_ne!(id, super::uuid_for(8, "orders_clean"));
    }
}

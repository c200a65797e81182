//! The engine in-process: a real SQLite database in a temporary folder, DAG files written by
//! the test, an executor that only records what it is handed (the test reports each try's
//! start and end), and a clock the test moves — so that retries, backoff, reschedules, slots
//! and requests are checked loop by loop, without a binary, a plugin or a wait.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use updraft_db::requests::{NewRequest, RequestAction};
use updraft_db::runs::{NewRun, RunRow};
use updraft_db::{Db, RunState, RunType, TaskState, Timestamp};
use updraft_logs::TaskLogs;

use super::clock::Clock;
use super::{Engine, EngineConfig};
use updraft_executor::{Executor, TryKey, WorkEvent, WorkItem, WorkOutcome};

/// What the engine handed to the executor.
#[derive(Default)]
struct Calls {
    submitted: Vec<WorkItem>,
    adopted: Vec<WorkItem>,
    cancelled: Vec<TryKey>,
}

struct Recorder(Arc<Mutex<Calls>>);

impl Executor for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn submit(&self, item: WorkItem) {
        self.0.lock().expect("calls").submitted.push(item);
    }

    fn adopt(&self, items: Vec<WorkItem>) {
        self.0.lock().expect("calls").adopted.extend(items);
    }

    fn cancel(&self, key: &TryKey) {
        self.0.lock().expect("calls").cancelled.push(key.clone());
    }
}

/// 2026-01-01T00:00:00Z.
const START_US: i64 = 1_767_225_600_000_000;

struct Harness {
    engine: Engine,
    db: Db,
    calls: Arc<Mutex<Calls>>,
    events: mpsc::UnboundedSender<WorkEvent>,
    clock: Arc<AtomicI64>,
    dir: tempfile::TempDir,
}

impl Harness {
    /// An engine on a new SQLite database, with the DAG files `dags` (name, YAML).
    async fn new(dags: &[(&str, &str)], parallelism: usize) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Harness::database(&dir).await;
        let (engine, calls, events, clock) = Harness::engine(&db, &dir, dags, parallelism, "one").await;
        Harness { engine, db, calls, events, clock, dir }
    }

    async fn database(dir: &tempfile::TempDir) -> Db {
        let db = Db::connect(&updraft_db::sqlite_url(dir.path())).await.expect("database");
        db.migrate().await.expect("migrate");
        db
    }

    async fn engine(
        db: &Db,
        dir: &tempfile::TempDir,
        dags: &[(&str, &str)],
        parallelism: usize,
        scheduler_id: &str,
    ) -> (Engine, Arc<Mutex<Calls>>, mpsc::UnboundedSender<WorkEvent>, Arc<AtomicI64>) {
        let folder = dir.path().join("dags");
        std::fs::create_dir_all(&folder).expect("dags folder");
        for (name, yaml) in dags {
            std::fs::write(folder.join(name), yaml).expect("DAG file");
        }
        let config = EngineConfig {
            scheduler_id: scheduler_id.into(),
            hostname: "test-host".into(),
            dags_folder: folder,
            logs: TaskLogs::local(dir.path().join("logs")),
            parallelism,
            parse_interval: Duration::from_secs(5),
            paused_at_creation: false,
            zombie_after: Duration::from_secs(30),
            single_run: false,
            catalog: None,
        };
        let calls = Arc::new(Mutex::new(Calls::default()));
        let (sender, receiver) = mpsc::unbounded_channel();
        let clock = Arc::new(AtomicI64::new(START_US));
        let engine = Engine::with_clock(
            db.clone(),
            config,
            Arc::new(Recorder(calls.clone())),
            receiver,
            Clock::Manual(clock.clone()),
        )
        .await
        .expect("engine");
        (engine, calls, sender, clock)
    }

    fn advance(&self, by: Duration) {
        let us = i64::try_from(by.as_micros()).expect("duration");
        self.clock.fetch_add(us, Ordering::SeqCst);
    }

    async fn tick(&mut self) {
        self.engine.tick().await.expect("loop");
    }

    /// Triggers a run of `dag_id` and lets the engine claim it.
    async fn trigger(&mut self, dag_id: &str) -> RunRow {
        let now = Timestamp::from_micros(self.clock.load(Ordering::SeqCst));
        let run = self
            .db
            .insert_run(&NewRun {
                dag_id: dag_id.into(),
                run_id: format!("manual__{}", now.as_micros()).into(),
                run_type: RunType::Manual,
                logical_date: Some(now),
                data_interval: Some((now, now)),
                run_after: now,
                conf: "{}".into(),
                triggered_by: "test".into(),
                triggering_user: None,
                note: None,
            })
            .await
            .expect("trigger");
        // Claims happen at most every 250 ms.
        self.advance(Duration::from_millis(250));
        self.tick().await;
        run
    }

    /// The tries handed over so far, as `task#try`, and forgets them.
    fn take_submitted(&self) -> Vec<String> {
        let items = std::mem::take(&mut self.calls.lock().expect("calls").submitted);
        items.iter().map(|i| format!("{}#{}", i.task_id, i.key.try_number)).collect()
    }

    /// The executor reports that the try `task#try` of `run` started and ended with `outcome`.
    fn report(&self, run: &RunRow, task_index: u32, try_number: u32, outcome: WorkOutcome) {
        let key = TryKey { run_pk: run.id, task_index, try_number };
        self.events.send(WorkEvent::Started { key: key.clone(), hostname: "worker-1".into() }).expect("event");
        self.events.send(WorkEvent::Finished { key, outcome }).expect("event");
    }

    async fn states(&self, run: &RunRow) -> BTreeMap<String, (TaskState, i32)> {
        let rows = self.db.task_instances(run.id).await.expect("task instances");
        rows.into_iter().map(|t| (t.task_id.to_string(), (t.state, t.try_number))).collect()
    }

    async fn run_state(&self, run: &RunRow) -> RunState {
        self.db.get_run_by_pk(run.id).await.expect("run").expect("stored").state
    }
}

const CHAIN: &str = "dag: chain\ntasks:\n  - id: a\n    operator: noop\n  - id: b\n    operator: noop\n    upstream: [a]\n  - id: c\n    operator: noop\n    upstream: [b]\n";

#[tokio::test]
async fn a_run_moves_task_by_task_and_each_loop_writes_what_it_decided() {
    let mut h = Harness::new(&[("chain.yaml", CHAIN)], 8).await;
    let run = h.trigger("chain").await;
    assert_eq!(h.take_submitted(), ["a#1"], "only the root is ready");
    assert_eq!(h.states(&run).await["a"], (TaskState::Queued, 1), "queued in the loop's write");
    assert_eq!(h.states(&run).await["b"].0, TaskState::NoStatus);
    for (t, next) in [(0, Some("b#1")), (1, Some("c#1")), (2, None)] {
        h.report(&run, t, 1, WorkOutcome::Success);
        h.tick().await;
        assert_eq!(h.take_submitted(), next.into_iter().collect::<Vec<_>>());
    }
    let states = h.states(&run).await;
    assert!(states.values().all(|s| *s == (TaskState::Success, 1)), "{states:?}");
    assert_eq!(h.run_state(&run).await, RunState::Success);
    let stats = h.engine.stats();
    assert_eq!((stats.tries_dispatched, stats.tries_finished, stats.runs_finished), (3, 3, 1));
}

const FLAKY: &str = "dag: flaky\ntasks:\n  - id: load\n    operator: noop\n    retries: 2\n    retry_delay: 60s\n    retry_exponential_backoff: true\n  - id: after\n    operator: noop\n    upstream: [load]\n";

#[tokio::test]
async fn a_failed_try_waits_its_backoff_then_runs_again_and_the_last_failure_fails_the_run() {
    let mut h = Harness::new(&[("flaky.yaml", FLAKY)], 8).await;
    let run = h.trigger("flaky").await;
    assert_eq!(h.take_submitted(), ["load#1"]);
    let failed = || WorkOutcome::Failed { message: "boom".into(), retryable: true };
    for try_number in 1..=2u32 {
        h.report(&run, 0, try_number, failed());
        h.tick().await;
        assert_eq!(h.states(&run).await["load"], (TaskState::UpForRetry, i32::try_from(try_number).expect("try")));
        let identity = format!("flaky#load#{}#{try_number}", run.run_id);
        let wait = crate::retry::retry_wait(Duration::from_secs(60), true, None, try_number, &identity);
        assert!(wait >= Duration::from_secs(60) * 2u32.pow(try_number - 1), "backoff doubles: {wait:?}");
        // Just before its time, nothing runs; at its time, the next try does.
        h.advance(wait - Duration::from_millis(1));
        h.tick().await;
        assert!(h.take_submitted().is_empty(), "try {try_number}: retried before its backoff");
        h.advance(Duration::from_millis(1));
        h.tick().await;
        assert_eq!(h.take_submitted(), [format!("load#{}", try_number + 1)]);
    }
    h.report(&run, 0, 3, failed());
    h.tick().await;
    let states = h.states(&run).await;
    assert_eq!(states["load"], (TaskState::Failed, 3), "retries: 2 allows three tries");
    assert_eq!(states["after"].0, TaskState::UpstreamFailed);
    assert_eq!(h.run_state(&run).await, RunState::Failed);
}

#[tokio::test]
async fn a_failure_the_operator_calls_final_skips_the_remaining_retries() {
    let mut h = Harness::new(&[("flaky.yaml", FLAKY)], 8).await;
    let run = h.trigger("flaky").await;
    h.take_submitted();
    h.report(&run, 0, 1, WorkOutcome::Failed { message: "bad params".into(), retryable: false });
    h.tick().await;
    assert_eq!(h.states(&run).await["load"], (TaskState::Failed, 1));
    assert_eq!(h.run_state(&run).await, RunState::Failed);
}

const SENSOR: &str = "dag: sensor\ntasks:\n  - id: wait\n    operator: noop\n  - id: other\n    operator: noop\n";

#[tokio::test]
async fn a_rescheduled_sensor_frees_its_slot_and_comes_back_with_the_same_try_number() {
    let mut h = Harness::new(&[("sensor.yaml", SENSOR)], 1).await;
    let run = h.trigger("sensor").await;
    let first = h.take_submitted();
    assert_eq!(first.len(), 1, "parallelism 1: one try at a time");
    let (sensor, other) = if first[0] == "wait#1" { (0, 1) } else { (1, 0) };
    h.report(&run, sensor, 1, WorkOutcome::Reschedule { after: Duration::from_secs(30) });
    h.tick().await;
    let name = if sensor == 0 { "wait" } else { "other" };
    assert_eq!(h.states(&run).await[name], (TaskState::UpForReschedule, 1));
    let other_name = if other == 0 { "wait" } else { "other" };
    assert_eq!(h.take_submitted(), [format!("{other_name}#1")], "the waiting sensor holds no slot");
    h.report(&run, other, 1, WorkOutcome::Success);
    h.advance(Duration::from_secs(29));
    h.tick().await;
    assert!(h.take_submitted().is_empty(), "rescheduled before its time");
    h.advance(Duration::from_secs(1));
    h.tick().await;
    assert_eq!(h.take_submitted(), [format!("{name}#1")], "a reschedule keeps the try number");
}

const POOLED: &str = "dag: pooled\ntasks:\n  - id: a\n    operator: noop\n    pool: narrow\n  - id: b\n    operator: noop\n    pool: narrow\n  - id: c\n    operator: noop\n    pool: narrow\n";

#[tokio::test]
async fn a_pool_holds_tries_back_until_a_slot_is_free_and_a_missing_pool_fails_the_task() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Harness::database(&dir).await;
    db.set_pool("narrow", 1, None).await.expect("pool");
    let (engine, calls, events, clock) = Harness::engine(&db, &dir, &[("pooled.yaml", POOLED)], 8, "one").await;
    let mut h = Harness { engine, db, calls, events, clock, dir };
    let run = h.trigger("pooled").await;
    let mut ran = Vec::new();
    for _ in 0..3 {
        let submitted = h.take_submitted();
        assert_eq!(submitted.len(), 1, "one slot in the pool: {submitted:?}");
        let t = u32::from(submitted[0].as_bytes()[0] - b'a');
        ran.push(submitted[0].clone());
        h.report(&run, t, 1, WorkOutcome::Success);
        h.tick().await;
    }
    ran.sort();
    assert_eq!(ran, ["a#1", "b#1", "c#1"]);
    assert_eq!(h.run_state(&run).await, RunState::Success);

    let mut missing = Harness::new(&[("pooled.yaml", POOLED)], 8).await;
    let run = missing.trigger("pooled").await;
    assert!(missing.take_submitted().is_empty(), "no pool, no try");
    assert!(missing.states(&run).await.values().all(|s| s.0 == TaskState::Failed));
    let log = std::fs::read_to_string(
        missing
            .dir
            .path()
            .join("logs/dag_id=pooled")
            .join(format!("run_id={}", run.run_id))
            .join("task_id=a/attempt=1.log"),
    )
    .expect("log of the try that could not start");
    assert!(log.contains("pool `narrow` does not exist"), "{log}");
}

#[tokio::test]
async fn a_clear_request_stops_the_running_try_and_runs_the_task_again_within_one_write() {
    let mut h = Harness::new(&[("chain.yaml", CHAIN)], 8).await;
    let run = h.trigger("chain").await;
    assert_eq!(h.take_submitted(), ["a#1"]);
    let request = NewRequest {
        run_pk: run.id,
        action: RequestAction::Clear,
        task_ids: vec!["a".into()],
        downstream: false,
        upstream: false,
        only_failed: false,
        requested_by: None,
    };
    let id = h.db.request(&request).await.expect("request");
    h.advance(Duration::from_millis(500));
    h.tick().await;
    assert!(!h.db.request_pending(id).await.expect("pending"), "deleted with the changes it made");
    let cancelled = std::mem::take(&mut h.calls.lock().expect("calls").cancelled);
    assert_eq!(cancelled, [TryKey { run_pk: run.id, task_index: 0, try_number: 1 }]);
    assert_eq!(h.take_submitted(), ["a#2"], "cleared: the next try runs");
    // The cancelled try's late report changes nothing.
    h.report(&run, 0, 1, WorkOutcome::Failed { message: "killed".into(), retryable: true });
    h.tick().await;
    assert_eq!(h.states(&run).await["a"], (TaskState::Queued, 2));
}

#[tokio::test]
async fn a_second_scheduler_adopts_the_run_and_hands_its_tries_in_flight_to_its_executor() {
    let mut h = Harness::new(&[("chain.yaml", CHAIN)], 8).await;
    let run = h.trigger("chain").await;
    assert_eq!(h.take_submitted(), ["a#1"]);
    h.report(&run, 0, 1, WorkOutcome::Success);
    h.tick().await;
    assert_eq!(h.take_submitted(), ["b#1"]);
    h.events
        .send(WorkEvent::Started { key: TryKey { run_pk: run.id, task_index: 1, try_number: 1 }, hostname: "w".into() })
        .expect("event");
    h.tick().await;
    assert_eq!(h.states(&run).await["b"], (TaskState::Running, 1));
    // The first scheduler is gone; on SQLite the next one owns whatever runs are running.
    let (mut second, calls, events, _) = Harness::engine(&h.db, &h.dir, &[("chain.yaml", CHAIN)], 8, "two").await;
    let adopted: Vec<String> =
        calls.lock().expect("calls").adopted.iter().map(|i| format!("{}#{}", i.task_id, i.key.try_number)).collect();
    assert_eq!(adopted, ["b#1"], "the try in flight is adopted, not run again");
    assert!(calls.lock().expect("calls").submitted.is_empty());
    events
        .send(WorkEvent::Finished {
            key: TryKey { run_pk: run.id, task_index: 1, try_number: 1 },
            outcome: WorkOutcome::Success,
        })
        .expect("event");
    second.tick().await.expect("loop");
    let submitted: Vec<String> =
        calls.lock().expect("calls").submitted.iter().map(|i| format!("{}#{}", i.task_id, i.key.try_number)).collect();
    assert_eq!(submitted, ["c#1"]);
    assert_eq!(h.states(&run).await["a"], (TaskState::Success, 1), "a success is never lost");
}

#[tokio::test]
async fn a_paused_dag_starts_nothing_however_many_loops_run_until_it_is_unpaused() {
    let mut h = Harness::new(&[("chain.yaml", CHAIN)], 8).await;
    h.db.set_paused("chain", true).await.expect("pause");
    let run = h.trigger("chain").await;
    // Every loop claims queued runs (at most every 250 ms) and rereads the pause flags with
    // the DAGs (every 5 s): twenty loops over 10 s are the barrier, not a wait.
    for _ in 0..20 {
        h.advance(Duration::from_millis(500));
        h.tick().await;
    }
    assert_eq!(h.run_state(&run).await, RunState::Queued, "a paused DAG's run was claimed");
    assert!(h.take_submitted().is_empty());
    assert!(h.states(&run).await.is_empty(), "no task instances before the run starts");
    h.db.set_paused("chain", false).await.expect("unpause");
    h.advance(Duration::from_secs(5));
    h.tick().await;
    assert_eq!(h.run_state(&run).await, RunState::Running);
    assert_eq!(h.take_submitted(), ["a#1"]);
}

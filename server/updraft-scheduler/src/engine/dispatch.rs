//! Dispatch: ready tries go to the executor, highest priority first, while [`Slots`] allow —
//! the scheduler's `parallelism`, each pool's slots, each DAG's `max_active_tasks`; a try
//! holds its slots from dispatch until the executor reports its end (or a clear or mark stops
//! it). Retries and reschedules wait in a heap until their time.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use updraft_db::batch::TaskUpdate;
use updraft_db::runs::RunRow;
use updraft_logs::TryLog;

use super::render::{log_path, work_item};
use super::{ActiveRun, Engine, Waiting};
use updraft_executor::TryKey;
use updraft_types::TaskState;

/// A task instance ready to run, ordered by priority, then by when it became ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Ready {
    pub(super) priority: i32,
    pub(super) order: Reverse<u64>,
    pub(super) run_pk: i64,
    pub(super) task: u32,
}

/// What a try in flight holds until it finishes.
#[derive(Debug)]
struct Held {
    pool: String,
    pool_slots: i64,
    dag_id: String,
}

/// Why a try cannot take slots now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum NoSlot {
    /// Wait: the pool or the DAG's `max_active_tasks` is full.
    Busy,
    /// The task names a pool that does not exist.
    NoPool,
}

/// The slots tries hold: a place within `parallelism`, pool slots, a place in their DAG's
/// `max_active_tasks`. Every try in flight is here, from [`Slots::hold`] to [`Slots::release`].
#[derive(Debug, Default)]
pub(super) struct Slots {
    held: HashMap<TryKey, Held>,
    pool_sizes: HashMap<String, i64>,
    pool_used: HashMap<String, i64>,
    dag_running: HashMap<String, u32>,
}

impl Slots {
    /// The pools and their sizes, as stored.
    pub(super) fn set_pools(&mut self, pools: Vec<(String, i32)>) {
        self.pool_sizes = pools.into_iter().map(|(name, size)| (name, i64::from(size))).collect();
    }

    /// Tries in flight.
    pub(super) fn running(&self) -> usize {
        self.held.len()
    }

    /// Whether a try of `task` of DAG `dag` could take its slots now (parallelism aside).
    pub(super) fn check(&self, task: &updraft_dag::Task, dag: &updraft_dag::Dag) -> Result<(), NoSlot> {
        let size = *self.pool_sizes.get(&task.pool).ok_or(NoSlot::NoPool)?;
        if self.pool_used.get(&task.pool).copied().unwrap_or(0) + i64::from(task.pool_slots) > size
            || self.dag_running.get(&dag.id).copied().unwrap_or(0) >= dag.max_active_tasks
        {
            return Err(NoSlot::Busy);
        }
        Ok(())
    }

    /// A try goes in flight and takes its slots.
    pub(super) fn hold(&mut self, key: TryKey, task: &updraft_dag::Task, dag_id: &str) {
        *self.pool_used.entry(task.pool.clone()).or_default() += i64::from(task.pool_slots);
        *self.dag_running.entry(dag_id.to_owned()).or_default() += 1;
        let held = Held { pool: task.pool.clone(), pool_slots: i64::from(task.pool_slots), dag_id: dag_id.to_owned() };
        self.held.insert(key, held);
    }

    /// Frees what a try in flight held; false if the try was not in flight.
    pub(super) fn release(&mut self, key: &TryKey) -> bool {
        let Some(held) = self.held.remove(key) else { return false };
        if let Some(used) = self.pool_used.get_mut(&held.pool) {
            *used -= held.pool_slots;
        }
        if let Some(n) = self.dag_running.get_mut(&held.dag_id) {
            *n = n.saturating_sub(1);
        }
        true
    }
}

impl Engine {
    /// Where the log of a try of a run goes.
    pub(super) fn log_path(&self, row: &RunRow, task_id: &str, try_number: u32) -> PathBuf {
        log_path(self.config.logs.dir(), row, task_id, try_number)
    }

    /// Retries and reschedules whose time has come are ready again.
    pub(super) fn release_due_waits(&mut self) {
        let now = self.clock.now();
        while let Some(Reverse(Waiting { at, run_pk, task: t, try_number })) = self.waiting.peek().copied() {
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
    pub(super) fn dispatch(&mut self) {
        let mut blocked = Vec::new();
        while self.slots.running() < self.config.parallelism {
            let Some(ready) = self.ready.pop() else { break };
            let Some(run) = self.runs.get(&ready.run_pk) else { continue };
            if run.readiness.state(ready.task) != TaskState::Scheduled {
                continue;
            }
            let dag = &run.dag.dag;
            if self.claim_queued && self.dags.is_paused(&dag.id) {
                blocked.push(ready);
                continue;
            }
            let task = &dag.tasks[ready.task as usize];
            match self.slots.check(task, dag) {
                Ok(()) => self.start_try(ready.run_pk, ready.task),
                Err(NoSlot::Busy) => blocked.push(ready),
                Err(NoSlot::NoPool) => {
                    let message = format!(
                        "pool `{}` does not exist: create it (updraft pools set {} SLOTS) or remove `pool:` from the task",
                        task.pool, task.pool
                    );
                    self.fail_without_running(ready.run_pk, ready.task, &message);
                }
            }
        }
        self.ready.extend(blocked);
    }

    /// Fails a try that cannot start, with the reason in its log.
    fn fail_without_running(&mut self, run_pk: i64, t: u32, message: &str) {
        if let Some(run) = self.runs.get(&run_pk) {
            let (row, task_id, try_number) = (&run.row, &run.dag.dag.tasks[t as usize].id, run.tries[t as usize] + 1);
            self.write_own_log(row, task_id, try_number, &format!("[updraft] the task could not start: {message}"));
        }
        self.finish_try(run_pk, t, TaskState::Failed, None);
    }

    /// Writes the whole log of a try that ends without an executor (it could not start) and
    /// ships it in the background.
    pub(super) fn write_own_log(&self, row: &RunRow, task_id: &str, try_number: u32, line: &str) {
        let log = self.config.logs.file(TryLog::new(&row.dag_id, &row.run_id, task_id, try_number));
        if let Err(error) = log.append_line(line) {
            tracing::warn!(%error, "could not write the try's log");
        }
        self.config.logs.ship_later(log);
    }

    /// Starts the next try of task `t`: queued, rendered, handed to the executor.
    fn start_try(&mut self, run_pk: i64, t: u32) {
        let now = self.clock.now();
        let Some(run) = self.runs.get_mut(&run_pk) else { return };
        let try_number =
            if run.rescheduled[t as usize] { run.tries[t as usize].max(1) } else { run.tries[t as usize] + 1 };
        run.tries[t as usize] = try_number;
        run.rescheduled[t as usize] = false;
        run.readiness.set_unfinished(t, TaskState::Queued);
        let loaded = Arc::clone(&run.dag);
        let row = run.row.clone();
        let task = &loaded.dag.tasks[t as usize];
        self.writes.task(TaskUpdate {
            try_number: Some(i32::try_from(try_number).unwrap_or(i32::MAX)),
            queued_at: Some(now),
            executor: Some(self.executor.name().into()),
            ..TaskUpdate::new(run_pk, task.id.as_str(), TaskState::Queued)
        });
        let log_path = self.log_path(&row, &task.id, try_number);
        let key = TryKey { run_pk, task_index: t, try_number };
        match work_item(&loaded, t, &row, key.clone(), log_path) {
            Ok(item) => {
                self.slots.hold(key, task, &loaded.dag.id);
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

    /// Stops tries that a clear or mark overtook: the executor cancels them (it reports nothing
    /// more for them) and their slots are free at once.
    pub(super) fn stop_tries(&mut self, keys: &[TryKey]) {
        for key in keys {
            if self.slots.release(key) {
                self.executor.cancel(key);
            }
        }
    }
}

/// The tries of tasks `tasks` of a run that are queued or running.
pub(super) fn in_flight_tries(run_pk: i64, run: &ActiveRun, tasks: &[u32]) -> Vec<TryKey> {
    tasks
        .iter()
        .filter(|&&t| run.readiness.state(t).is_in_flight())
        .map(|&t| TryKey { run_pk, task_index: t, try_number: run.tries[t as usize] })
        .collect()
}

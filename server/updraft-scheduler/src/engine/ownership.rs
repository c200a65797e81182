//! Runs this scheduler owns: it claims queued runs (within `max_active_runs`), adopts the runs
//! of schedulers that are gone, and rebuilds a run's state from its stored task instances — a
//! try that was queued or running is handed to the executor to adopt, a retry keeps waiting,
//! and every other unfinished task is decided again.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Arc;

use updraft_dagbag::LoadedDag;
use updraft_db::runs::{RunRow, RunStateChange};
use updraft_db::task_instances::{NewTaskInstance, TaskInstanceRow};
use updraft_db::{Db, DbError, RunState, TaskState};

use super::render::work_item;
use super::{ActiveRun, Engine, EngineError, Waiting};
use crate::readiness::Readiness;
use updraft_executor::TryKey;

impl Engine {
    /// Claims queued runs and starts them (or hands them back when their DAG is at
    /// `max_active_runs`); a run whose DAG did not load fails.
    pub(super) async fn start_queued_runs(&mut self) -> Result<(), EngineError> {
        let claimed = self.db.claim_queued_runs(&self.config.scheduler_id, 8).await?;
        for row in claimed {
            let Some(loaded) = self.dags.get(row.dag_id.as_str()) else {
                let end_date = Some(self.clock.now());
                self.writes.run(RunStateChange { run_pk: row.id, state: RunState::Failed, end_date });
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
        stored: Option<Vec<TaskInstanceRow>>,
    ) -> Result<(), EngineError> {
        let run_pk = row.id;
        self.activate(row, loaded, stored);
        for request in self.db.run_requests(run_pk).await? {
            self.apply_request(&request);
        }
        self.complete_if_done(run_pk);
        Ok(())
    }

    /// Takes over runs left by dead schedulers and rebuilds their state from the database.
    pub(super) async fn adopt(&mut self) -> Result<(), EngineError> {
        let stale_before = self.clock.now().saturating_sub(self.config.zombie_after);
        let adopted = self.db.adopt_runs(&self.config.scheduler_id, stale_before).await?;
        for row in adopted {
            if self.runs.contains_key(&row.id) {
                continue;
            }
            let Some(loaded) = self.dags.get(row.dag_id.as_str()) else { continue };
            let stored = self.db.task_instances(row.id).await?;
            self.take_over(row, loaded, Some(stored)).await?;
        }
        Ok(())
    }

    /// Makes a run active: from scratch (`stored: None`) or from its stored task instances.
    pub(super) fn activate(&mut self, row: RunRow, loaded: Arc<LoadedDag>, stored: Option<Vec<TaskInstanceRow>>) {
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
                        let state = r.state;
                        states[t as usize] = state;
                        tries[t as usize] = u32::try_from(r.try_number).unwrap_or(0);
                        max_tries[t as usize] = u32::try_from(r.max_tries).unwrap_or(0);
                        if state == TaskState::UpForRetry
                            && let Some(at) = r.next_attempt_at
                        {
                            let try_number = tries[t as usize];
                            self.waiting.push(Reverse(Waiting { at, run_pk: row.id, task: t, try_number }));
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
                    if state.is_in_flight() && tries[t as usize] > 0 {
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
            self.slots.hold(key, task, &loaded.dag.id);
            items.push(item);
        }
        if !items.is_empty() {
            self.stats.tries_dispatched += items.len() as u64;
            self.executor.adopt(items);
        }
    }
}

/// The task instances of a new run of a DAG, none state.
pub(super) fn new_task_instances(loaded: &LoadedDag, run_pk: i64) -> Vec<NewTaskInstance> {
    loaded
        .dag
        .tasks
        .iter()
        .map(|t| NewTaskInstance {
            task_id: t.id.as_str().into(),
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
    db.set_run_states(&[RunStateChange { run_pk, state: RunState::Queued, end_date: None }]).await
}

/// A stable id for a task instance (the API's `id`): a UUID of version 8 (RFC 9562's
/// "custom" version: its bits are two FNV-1a-style hashes of the run and task, not random).
fn uuid_for(run_pk: i64, task_id: &str) -> String {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325 ^ (run_pk as u64);
    let mut b: u64 = 0x8422_2325_cbf2_9ce4 ^ (run_pk as u64).rotate_left(17);
    for byte in task_id.bytes() {
        a = (a ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        b = (b ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(5);
    }
    let hex = format!("{a:016x}{b:016x}");
    format!("{}-{}-8{}-8{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    #[test]
    fn task_instance_ids_look_like_uuids() {
        let id = super::uuid_for(7, "orders_clean");
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_eq!(&id[14..15], "8", "version 8: custom");
        assert_eq!(&id[19..20], "8", "RFC 9562 variant");
        assert_eq!(id, super::uuid_for(7, "orders_clean"));
        assert_ne!(id, super::uuid_for(8, "orders_clean"));
    }
}

//! The write buffer: every change a loop decides (task-instance states, run states, requests
//! carried out) is collected here and written by one [`Db::apply`] — one transaction — at the
//! end of the loop ([`Engine::tick`](super::Engine::tick)). If that write fails, nothing of it
//! is applied and the changes stay here, ahead of newer ones, for the next loop.
//!
//! What a loop writes outside that transaction, each for a reason:
//! - registering and heartbeating the scheduler, and recording the DAGs a parse found
//!   (`sync_dags`): not changes of runs;
//! - claiming queued runs and adopting runs of gone schedulers: each is its own transaction
//!   with row locks, so that two schedulers never own the same run;
//! - inserting the runs timetables make due, and creating a claimed run's task instances in
//!   bulk: the rows must exist before the loop's changes update them;
//! - handing a run back to the queue (over `max_active_runs`), and re-queueing a finished run
//!   that has new requests: [`Engine::take_requests`](super::Engine) first flushes this buffer
//!   (the run's final state must be written before it is queued again), then re-queues;
//! - `updraft dags test` marks its one run running before the first loop.

use updraft_db::batch::{Changes, TaskUpdate};
use updraft_db::runs::RunStateChange;
use updraft_db::{Db, DbError};

use super::Observer;

/// The changes of the current loop, not yet written.
#[derive(Default)]
pub(super) struct WriteBuffer {
    pending: Changes,
    observer: Option<Observer>,
}

impl WriteBuffer {
    /// Calls `observer` with every task-instance change once it is written.
    pub(super) fn observe(&mut self, observer: Observer) {
        self.observer = Some(observer);
    }

    /// A task instance changes.
    pub(super) fn task(&mut self, update: TaskUpdate) {
        self.pending.tasks.push(update);
    }

    /// A run changes state.
    pub(super) fn run(&mut self, change: RunStateChange) {
        self.pending.runs.push(change);
    }

    /// A request was carried out by the changes buffered so far; it is deleted with them.
    pub(super) fn request_done(&mut self, id: i64) {
        self.pending.done_requests.push(id);
    }

    /// Whether a request is already carried out by buffered changes.
    pub(super) fn is_request_done(&self, id: i64) -> bool {
        self.pending.done_requests.contains(&id)
    }

    /// Writes everything buffered in one transaction; on failure keeps it for the next try.
    pub(super) async fn flush(&mut self, db: &Db) -> Result<(), DbError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let changes = std::mem::take(&mut self.pending);
        if let Err(error) = db.apply(&changes).await {
            // Keep the changes for the next loop, ahead of anything newer.
            self.pending.prepend(changes);
            return Err(error);
        }
        if let Some(observer) = self.observer.as_mut() {
            changes.tasks.iter().for_each(&mut *observer);
        }
        Ok(())
    }
}

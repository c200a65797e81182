//! Where the outcome of a finished pod comes from: the worker in the pod
//! (`updraft tasks run … --try N`) records its try's outcome (in the metadata database), and
//! the executor asks a [`ResultSource`] for it when the pod ends. Without a recorded outcome
//! the executor falls back on the container's exit code.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::future::BoxFuture;
use updraft_executor::{TryKey, WorkItem, WorkOutcome};

/// The outcome a try's worker recorded, if any.
pub trait ResultSource: Send + Sync {
    /// The recorded outcome of the try `item`, or `None` if the worker recorded none (it
    /// crashed, was killed, or never started). Errors reading the source are `None` too, after
    /// logging.
    fn outcome<'a>(&'a self, item: &'a WorkItem) -> BoxFuture<'a, Option<WorkOutcome>>;
}

/// A [`ResultSource`] in memory, for tests and for setups without a shared database.
#[derive(Debug, Default)]
pub struct InMemoryResults {
    outcomes: Mutex<HashMap<TryKey, WorkOutcome>>,
}

impl InMemoryResults {
    /// No outcomes recorded yet.
    pub fn new() -> InMemoryResults {
        InMemoryResults::default()
    }

    /// Records the outcome of `key`, as a worker would.
    pub fn record(&self, key: TryKey, outcome: WorkOutcome) {
        self.outcomes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, outcome);
    }
}

impl ResultSource for InMemoryResults {
    fn outcome<'a>(&'a self, item: &'a WorkItem) -> BoxFuture<'a, Option<WorkOutcome>> {
        let outcome = self.outcomes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&item.key).cloned();
        Box::pin(std::future::ready(outcome))
    }
}

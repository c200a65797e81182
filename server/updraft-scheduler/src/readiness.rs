//! Incremental readiness of the task instances of one DAG run.
//!
//! Each task keeps counts of how its upstream tasks ended. When a try finishes, only that
//! task's downstream tasks are re-evaluated against their trigger rules; a task decided as
//! skipped or upstream-failed finishes in turn and propagates, through a worklist (no
//! recursion). The work per finished task is its out-degree, never the size of the run.

use updraft_dag::{Dag, TriggerRule};

use crate::trigger::{Decision, UpstreamCounts, evaluate};
use updraft_types::TaskState;

/// Readiness bookkeeping for one run of a DAG: task indices are the DAG's.
#[derive(Debug, Clone)]
pub struct Readiness {
    counts: Vec<UpstreamCounts>,
    rules: Vec<TriggerRule>,
    state: Vec<TaskState>,
    downstream_index: Vec<u32>,
    downstream_list: Vec<u32>,
    upstream_index: Vec<u32>,
    upstream_list: Vec<u32>,
    finished: usize,
}

impl Readiness {
    /// A run whose task instances have no state yet.
    pub fn new(dag: &Dag) -> Self {
        let n = dag.tasks.len();
        let mut downstream_index = Vec::with_capacity(n + 1);
        let mut downstream_list = Vec::with_capacity(dag.edge_count());
        let mut upstream_index = Vec::with_capacity(n + 1);
        let mut upstream_list = Vec::with_capacity(dag.edge_count());
        downstream_index.push(0);
        upstream_index.push(0);
        for t in 0..n as u32 {
            downstream_list.extend_from_slice(dag.downstream(t));
            downstream_index.push(downstream_list.len() as u32);
            upstream_list.extend_from_slice(dag.upstream(t));
            upstream_index.push(upstream_list.len() as u32);
        }
        Readiness {
            counts: (0..n as u32)
                .map(|t| UpstreamCounts { total: dag.upstream(t).len() as u32, ..UpstreamCounts::default() })
                .collect(),
            rules: dag.tasks.iter().map(|t| t.trigger_rule).collect(),
            state: vec![TaskState::NoStatus; n],
            downstream_index,
            downstream_list,
            upstream_index,
            upstream_list,
            finished: 0,
        }
    }

    /// Every state change goes through here, to keep the count of finished tasks.
    fn set(&mut self, task: u32, state: TaskState) {
        let old = std::mem::replace(&mut self.state[task as usize], state);
        match (old.is_finished(), state.is_finished()) {
            (false, true) => self.finished += 1,
            (true, false) => self.finished -= 1,
            _ => {}
        }
    }

    /// Whether every task of the run is in a final state.
    pub fn all_finished(&self) -> bool {
        self.finished == self.state.len()
    }

    fn downstream(&self, t: u32) -> &[u32] {
        &self.downstream_list
            [self.downstream_index[t as usize] as usize..self.downstream_index[t as usize + 1] as usize]
    }

    fn upstream(&self, t: u32) -> &[u32] {
        &self.upstream_list[self.upstream_index[t as usize] as usize..self.upstream_index[t as usize + 1] as usize]
    }

    /// The current state of task `task`.
    pub fn state(&self, task: u32) -> TaskState {
        self.state[task as usize]
    }

    /// Decides the tasks that can be decided at the start of the run (those without upstream,
    /// mostly). Returns the state changes to apply.
    pub fn start(&mut self) -> Vec<(u32, TaskState)> {
        let roots: Vec<u32> = (0..self.state.len() as u32).filter(|&t| self.upstream(t).is_empty()).collect();
        self.decide(roots)
    }

    /// Records that `task` finished in `state` (success, failed, skipped…) and returns the state
    /// changes this causes downstream: newly scheduled, skipped or upstream-failed tasks.
    pub fn finish(&mut self, task: u32, state: TaskState) -> Vec<(u32, TaskState)> {
        let mut changes = Vec::new();
        let mut finished = vec![(task, state)];
        while let Some((t, s)) = finished.pop() {
            self.set(t, s);
            let candidates: Vec<u32> = self.downstream(t).to_vec();
            for &d in &candidates {
                self.counts[d as usize].record(s);
            }
            for (d, new) in self.decide(candidates) {
                changes.push((d, new));
                if new.is_finished() {
                    finished.push((d, new));
                }
            }
        }
        changes
    }

    /// Marks a task as handed to the scheduler's queue (scheduled, queued, running…) without
    /// finishing it.
    pub fn set_unfinished(&mut self, task: u32, state: TaskState) {
        debug_assert!(!state.is_finished());
        self.set(task, state);
    }

    /// Sets the final state of `task` by hand (mark success/failed/skipped), whatever it was,
    /// and returns the state changes this causes downstream. Downstream tasks already decided
    /// keep their state (clear them to decide them again), as in Airflow.
    pub fn mark(&mut self, task: u32, state: TaskState) -> Vec<(u32, TaskState)> {
        let old = self.state[task as usize];
        if old.is_finished() {
            for d in self.downstream(task).to_vec() {
                self.counts[d as usize].forget(old);
            }
        }
        self.set(task, TaskState::NoStatus);
        self.finish(task, state)
    }

    /// Clears `tasks` (back to no status) and returns the state changes: cleared tasks whose
    /// upstream already allows them are scheduled again at once.
    pub fn clear(&mut self, tasks: &[u32]) -> Vec<(u32, TaskState)> {
        for &t in tasks {
            let old = self.state[t as usize];
            if old.is_finished() {
                for d in self.downstream(t).to_vec() {
                    self.counts[d as usize].forget(old);
                }
            }
            self.set(t, TaskState::NoStatus);
        }
        self.decide(tasks.to_vec())
    }

    /// Rebuilds the bookkeeping of a run from stored states (after a scheduler restart).
    /// Finished states are counted downstream as they are; every other task goes back to no
    /// status and is decided again, so tries that died with the old scheduler run again.
    /// Returns the decisions this makes.
    pub fn restore(&mut self, states: &[TaskState]) -> Vec<(u32, TaskState)> {
        for (t, &s) in states.iter().enumerate() {
            if s.is_finished() {
                self.set(t as u32, s);
                for d in self.downstream(t as u32).to_vec() {
                    self.counts[d as usize].record(s);
                }
            }
        }
        self.decide((0..states.len() as u32).collect())
    }

    fn decide(&mut self, candidates: Vec<u32>) -> Vec<(u32, TaskState)> {
        let mut changes = Vec::new();
        for t in candidates {
            if self.state[t as usize] != TaskState::NoStatus {
                continue;
            }
            let new = match evaluate(self.rules[t as usize], self.counts[t as usize]) {
                Decision::Wait => continue,
                Decision::Run => TaskState::Scheduled,
                Decision::Skip => TaskState::Skipped,
                Decision::UpstreamFailed => TaskState::UpstreamFailed,
            };
            self.set(t, new);
            changes.push((t, new));
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use updraft_dag::Options;

    fn dag(text: &str) -> Dag {
        let (dag, diagnostics) = updraft_dag::validate_source(&Arc::from("d.yaml"), text, Options::default());
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        dag.expect("valid")
    }

    fn names(dag: &Dag, changes: &[(u32, TaskState)]) -> Vec<String> {
        changes.iter().map(|(t, s)| format!("{}={s}", dag.tasks[*t as usize].id)).collect()
    }

    #[test]
    fn a_chain_becomes_ready_link_by_link() {
        let d = dag(
            "dag: d\ndefaults: {operator: noop}\ntasks:\n  - {id: a}\n  - {id: b, upstream: [a]}\n  - {id: c, upstream: [b]}\n",
        );
        let mut r = Readiness::new(&d);
        assert_eq!(names(&d, &r.start()), ["a=scheduled"]);
        assert_eq!(names(&d, &r.finish(0, TaskState::Success)), ["b=scheduled"]);
        assert_eq!(names(&d, &r.finish(1, TaskState::Success)), ["c=scheduled"]);
        assert_eq!(r.finish(2, TaskState::Success), vec![]);
    }

    #[test]
    fn failures_propagate_through_rules() {
        let d = dag(concat!(
            "dag: d\ndefaults: {operator: noop}\ntasks:\n",
            "  - {id: a}\n  - {id: b, upstream: [a]}\n  - {id: c, upstream: [b]}\n",
            "  - {id: cleanup, upstream: [c], trigger_rule: all_done}\n",
        ));
        let mut r = Readiness::new(&d);
        r.start();
        assert_eq!(
            names(&d, &r.finish(0, TaskState::Failed)),
            ["b=upstream_failed", "c=upstream_failed", "cleanup=scheduled"]
        );
    }

    #[test]
    fn clearing_reschedules_and_resets_downstream_counts() {
        let d = dag("dag: d\ndefaults: {operator: noop}\ntasks:\n  - {id: a}\n  - {id: b, upstream: [a]}\n");
        let mut r = Readiness::new(&d);
        r.start();
        r.finish(0, TaskState::Failed);
        assert_eq!(r.state(1), TaskState::UpstreamFailed);
        assert_eq!(names(&d, &r.clear(&[0, 1])), ["a=scheduled"]);
        assert_eq!(names(&d, &r.finish(0, TaskState::Success)), ["b=scheduled"]);
    }

    #[test]
    fn wide_runs_cost_only_what_changed() {
        // 10,000 independent tasks feeding one: finishing one touches one downstream task.
        let mut text = String::from("dag: d\ndefaults: {operator: noop}\ntasks:\n");
        for i in 0..10_000 {
            text.push_str(&format!("  - {{id: t{i}}}\n"));
        }
        text.push_str("  - {id: sink, upstream: [");
        text.push_str(&(0..10_000).map(|i| format!("t{i}")).collect::<Vec<_>>().join(", "));
        text.push_str("]}\n");
        let d = dag(&text);
        let mut r = Readiness::new(&d);
        assert_eq!(r.start().len(), 10_000);
        for t in 0..9_999 {
            assert!(r.finish(t, TaskState::Success).is_empty());
        }
        assert_eq!(names(&d, &r.finish(9_999, TaskState::Success)), ["sink=scheduled"]);
    }
}

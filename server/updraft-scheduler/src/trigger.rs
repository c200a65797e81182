//! Trigger rules: given how a task's upstream tasks ended, may it run, must it wait, or is it
//! skipped or upstream-failed? Airflow's semantics, rule by rule.

use updraft_dag::TriggerRule;

use updraft_types::TaskState;

/// How many of a task's upstream task instances are in each finished state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamCounts {
    pub total: u32,
    pub success: u32,
    pub skipped: u32,
    pub failed: u32,
    pub upstream_failed: u32,
}

impl UpstreamCounts {
    /// Upstream tasks that have finished, whatever their state.
    pub fn done(&self) -> u32 {
        self.success + self.skipped + self.failed + self.upstream_failed
    }

    /// Counts one upstream instance that finished in `state`.
    pub fn record(&mut self, state: TaskState) {
        match state {
            TaskState::Success => self.success += 1,
            TaskState::Skipped => self.skipped += 1,
            TaskState::Failed => self.failed += 1,
            TaskState::UpstreamFailed => self.upstream_failed += 1,
            _ => {}
        }
    }

    /// Forgets one upstream instance that had finished in `state` (it was cleared).
    pub fn forget(&mut self, state: TaskState) {
        let slot = match state {
            TaskState::Success => &mut self.success,
            TaskState::Skipped => &mut self.skipped,
            TaskState::Failed => &mut self.failed,
            TaskState::UpstreamFailed => &mut self.upstream_failed,
            _ => return,
        };
        *slot = slot.saturating_sub(1);
    }
}

/// What a trigger rule decides for a task given its upstream counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not decidable yet: some upstream tasks are still unfinished.
    Wait,
    /// Schedule the task.
    Run,
    /// The task will never run: mark it skipped.
    Skip,
    /// The task will never run because upstream tasks failed.
    UpstreamFailed,
}

/// Applies `rule`. Rules that can decide before every upstream task is done (one_success,
/// one_failed, and the failure cases of all_success/none_failed) decide as early as Airflow's do.
pub fn evaluate(rule: TriggerRule, c: UpstreamCounts) -> Decision {
    // As in Airflow, a task without upstream tasks is not held back by any rule.
    if c.total == 0 {
        return Decision::Run;
    }
    let done = c.done();
    let all_done = done >= c.total;
    let failed = c.failed + c.upstream_failed;
    match rule {
        TriggerRule::Always => Decision::Run,
        TriggerRule::AllSuccess => {
            if failed > 0 {
                Decision::UpstreamFailed
            } else if c.skipped > 0 {
                Decision::Skip
            } else if all_done {
                Decision::Run
            } else {
                Decision::Wait
            }
        }
        TriggerRule::AllFailed => {
            if c.success > 0 || c.skipped > 0 {
                Decision::Skip
            } else if all_done {
                Decision::Run
            } else {
                Decision::Wait
            }
        }
        TriggerRule::AllDone => {
            if all_done {
                Decision::Run
            } else {
                Decision::Wait
            }
        }
        TriggerRule::OneSuccess => {
            if c.success > 0 {
                Decision::Run
            } else if !all_done {
                Decision::Wait
            } else if failed > 0 {
                Decision::UpstreamFailed
            } else {
                Decision::Skip
            }
        }
        TriggerRule::OneFailed => {
            if failed > 0 {
                Decision::Run
            } else if all_done {
                Decision::Skip
            } else {
                Decision::Wait
            }
        }
        TriggerRule::NoneFailed => {
            if failed > 0 {
                Decision::UpstreamFailed
            } else if all_done {
                Decision::Run
            } else {
                Decision::Wait
            }
        }
        TriggerRule::NoneSkipped => {
            if c.skipped > 0 {
                Decision::Skip
            } else if all_done {
                Decision::Run
            } else {
                Decision::Wait
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(total: u32, success: u32, skipped: u32, failed: u32) -> UpstreamCounts {
        UpstreamCounts { total, success, skipped, failed, upstream_failed: 0 }
    }

    #[test]
    fn a_task_without_upstream_runs_under_every_rule() {
        for (_, rule) in TriggerRule::ALL {
            assert_eq!(evaluate(rule, counts(0, 0, 0, 0)), Decision::Run, "{rule:?}");
        }
    }

    /// The trigger_rules example DAG: two upstream tasks, one succeeded and one failed.
    #[test]
    fn one_success_and_one_failure() {
        let c = counts(2, 1, 0, 1);
        let table = [
            (TriggerRule::AllSuccess, Decision::UpstreamFailed),
            (TriggerRule::AllFailed, Decision::Skip),
            (TriggerRule::AllDone, Decision::Run),
            (TriggerRule::OneSuccess, Decision::Run),
            (TriggerRule::OneFailed, Decision::Run),
            (TriggerRule::NoneFailed, Decision::UpstreamFailed),
            (TriggerRule::NoneSkipped, Decision::Run),
            (TriggerRule::Always, Decision::Run),
        ];
        for (rule, expected) in table {
            assert_eq!(evaluate(rule, c), expected, "{rule:?}");
        }
    }

    #[test]
    fn early_decisions_and_waiting() {
        // One of three upstream tasks finished.
        assert_eq!(evaluate(TriggerRule::AllSuccess, counts(3, 1, 0, 0)), Decision::Wait);
        assert_eq!(evaluate(TriggerRule::AllSuccess, counts(3, 0, 0, 1)), Decision::UpstreamFailed);
        assert_eq!(evaluate(TriggerRule::OneSuccess, counts(3, 1, 0, 0)), Decision::Run);
        assert_eq!(evaluate(TriggerRule::OneFailed, counts(3, 0, 0, 1)), Decision::Run);
        assert_eq!(evaluate(TriggerRule::AllDone, counts(3, 1, 0, 1)), Decision::Wait);
        assert_eq!(evaluate(TriggerRule::NoneFailed, counts(3, 1, 1, 0)), Decision::Wait);
        assert_eq!(evaluate(TriggerRule::NoneFailed, counts(2, 1, 1, 0)), Decision::Run);
        assert_eq!(evaluate(TriggerRule::AllSuccess, counts(2, 1, 1, 0)), Decision::Skip);
        assert_eq!(evaluate(TriggerRule::NoneSkipped, counts(2, 1, 1, 0)), Decision::Skip);
        assert_eq!(evaluate(TriggerRule::AllFailed, counts(2, 0, 0, 2)), Decision::Run);
        assert_eq!(evaluate(TriggerRule::OneSuccess, counts(2, 0, 2, 0)), Decision::Skip);
    }

    #[test]
    fn clearing_an_upstream_undoes_its_count() {
        let mut c = counts(2, 0, 0, 0);
        c.record(TaskState::Failed);
        assert_eq!(evaluate(TriggerRule::AllSuccess, c), Decision::UpstreamFailed);
        c.forget(TaskState::Failed);
        assert_eq!(evaluate(TriggerRule::AllSuccess, c), Decision::Wait);
    }
}

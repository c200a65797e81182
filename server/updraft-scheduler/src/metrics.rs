//! The scheduler's metrics: atomics the engine updates as it works, rendered in the Prometheus
//! text format for `/metrics` (with `updraft-metrics`, the writer every process shares) or as
//! StatsD lines to push.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use updraft_metrics::{Histogram, SECONDS_BUCKETS, family, single};

use updraft_types::TaskState;

/// What the scheduler reports about itself.
#[derive(Debug)]
pub struct SchedulerMetrics {
    pub loop_seconds: Histogram,
    last_loop_unix_ms: AtomicU64,
    pub parse_seconds: Histogram,
    pub dags: AtomicU64,
    pub import_errors: AtomicU64,
    pub active_runs: AtomicU64,
    /// Ready task instances waiting for a slot (the queue depth).
    pub ready: AtomicU64,
    /// Tries in flight: executor slots in use.
    pub running: AtomicU64,
    pub parallelism: AtomicU64,
    pub tries_dispatched: AtomicU64,
    pub tries_finished: AtomicU64,
    pub runs_finished: AtomicU64,
    /// Task instances of the active runs, by state.
    task_states: Mutex<Vec<(TaskState, u64)>>,
}

impl Default for SchedulerMetrics {
    fn default() -> Self {
        Self {
            loop_seconds: Histogram::new(SECONDS_BUCKETS),
            last_loop_unix_ms: AtomicU64::new(0),
            parse_seconds: Histogram::new(SECONDS_BUCKETS),
            dags: AtomicU64::new(0),
            import_errors: AtomicU64::new(0),
            active_runs: AtomicU64::new(0),
            ready: AtomicU64::new(0),
            running: AtomicU64::new(0),
            parallelism: AtomicU64::new(0),
            tries_dispatched: AtomicU64::new(0),
            tries_finished: AtomicU64::new(0),
            runs_finished: AtomicU64::new(0),
            task_states: Mutex::new(Vec::new()),
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl SchedulerMetrics {
    /// One loop of the engine ended after `took`.
    pub fn loop_done(&self, took: Duration) {
        self.loop_seconds.observe(took);
        self.last_loop_unix_ms.store(unix_ms(), Ordering::Relaxed);
    }

    /// How long ago the last loop ended; `None` before the first.
    pub fn since_last_loop(&self) -> Option<Duration> {
        let last = self.last_loop_unix_ms.load(Ordering::Relaxed);
        (last > 0).then(|| Duration::from_millis(unix_ms().saturating_sub(last)))
    }

    /// The number of task instances in each state over the active runs.
    pub fn set_task_states(&self, counts: Vec<(TaskState, u64)>) {
        *self.task_states.lock().unwrap_or_else(|e| e.into_inner()) = counts;
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        family(out, "updraft_scheduler_loop_duration_seconds", "histogram", "Duration of one scheduler loop.");
        self.loop_seconds.write(out, "updraft_scheduler_loop_duration_seconds", "");
        let since = self.since_last_loop().map_or(-1.0, |d| d.as_secs_f64());
        single(
            out,
            "updraft_scheduler_seconds_since_last_loop",
            "gauge",
            "Seconds since the scheduler loop last ended (-1 before the first).",
            since,
        );
        family(out, "updraft_dag_parse_duration_seconds", "histogram", "Duration of parsing the DAGs folder.");
        self.parse_seconds.write(out, "updraft_dag_parse_duration_seconds", "");
        single(out, "updraft_dags", "gauge", "DAGs loaded from the DAGs folder.", get(&self.dags));
        single(out, "updraft_dag_import_errors", "gauge", "DAG files that failed to load.", get(&self.import_errors));
        single(out, "updraft_dag_runs_active", "gauge", "DAG runs this scheduler is running.", get(&self.active_runs));
        single(
            out,
            "updraft_scheduler_queue_depth",
            "gauge",
            "Task instances ready to run and waiting for a slot.",
            get(&self.ready),
        );
        single(out, "updraft_executor_running_slots", "gauge", "Task tries in flight.", get(&self.running));
        single(out, "updraft_executor_open_slots", "gauge", "Task tries that may still start now.", {
            get(&self.parallelism).saturating_sub(get(&self.running))
        });
        single(out, "updraft_executor_parallelism", "gauge", "Most task tries in flight.", get(&self.parallelism));
        single(
            out,
            "updraft_task_tries_dispatched_total",
            "counter",
            "Task tries handed to the executor.",
            get(&self.tries_dispatched),
        );
        single(
            out,
            "updraft_task_tries_finished_total",
            "counter",
            "Task tries that ended.",
            get(&self.tries_finished),
        );
        single(out, "updraft_dag_runs_finished_total", "counter", "DAG runs that ended.", get(&self.runs_finished));
        family(out, "updraft_task_instances", "gauge", "Task instances of the active DAG runs, by state.");
        let counts = self.task_states.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for state in TaskState::ALL {
            let n = counts.iter().find(|(s, _)| *s == state).map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "updraft_task_instances{{state=\"{}\"}} {n}", state.as_str());
        }
    }
}

impl SchedulerMetrics {
    /// The current values as StatsD lines (`updraft.NAME:VALUE|g` gauges, `|c` counter deltas
    /// since `previous`), for a push to a StatsD server; updates `previous`.
    pub fn statsd_lines(&self, previous: &mut StatsdCounters) -> Vec<String> {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut lines = vec![
            format!("updraft.scheduler.queue_depth:{}|g", get(&self.ready)),
            format!("updraft.executor.running_slots:{}|g", get(&self.running)),
            format!("updraft.executor.open_slots:{}|g", get(&self.parallelism).saturating_sub(get(&self.running))),
            format!("updraft.dag_runs.active:{}|g", get(&self.active_runs)),
            format!("updraft.dags:{}|g", get(&self.dags)),
            format!("updraft.dag.import_errors:{}|g", get(&self.import_errors)),
        ];
        if let Some(since) = self.since_last_loop() {
            lines.push(format!("updraft.scheduler.seconds_since_last_loop:{:.3}|g", since.as_secs_f64()));
        }
        for (name, now, before) in [
            ("updraft.task_tries.dispatched", get(&self.tries_dispatched), &mut previous.dispatched),
            ("updraft.task_tries.finished", get(&self.tries_finished), &mut previous.finished),
            ("updraft.dag_runs.finished", get(&self.runs_finished), &mut previous.runs_finished),
        ] {
            lines.push(format!("{name}:{}|c", now.saturating_sub(*before)));
            *before = now;
        }
        let counts = self.task_states.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (state, n) in counts {
            lines.push(format!("updraft.task_instances.{}:{n}|g", state.as_str()));
        }
        lines
    }
}

/// Counter values already sent to StatsD (StatsD counters are deltas).
#[derive(Debug, Default)]
pub struct StatsdCounters {
    dispatched: u64,
    finished: u64,
    runs_finished: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statsd_counters_are_sent_as_deltas() {
        let m = SchedulerMetrics::default();
        let mut sent = StatsdCounters::default();
        m.tries_finished.store(5, Ordering::Relaxed);
        assert!(m.statsd_lines(&mut sent).contains(&"updraft.task_tries.finished:5|c".to_owned()));
        m.tries_finished.store(7, Ordering::Relaxed);
        let lines = m.statsd_lines(&mut sent);
        assert!(lines.contains(&"updraft.task_tries.finished:2|c".to_owned()), "{lines:?}");
        assert!(lines.contains(&"updraft.scheduler.queue_depth:0|g".to_owned()), "{lines:?}");
    }
}

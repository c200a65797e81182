//! The Prometheus text format (version 0.0.4) as Updraft's `/metrics` pages write it: the
//! `# HELP`/`# TYPE` lines of a family, single counters and gauges, and lock-free latency
//! histograms. The scheduler, the kubernetes executor and the API server each keep their own
//! metrics and write them with these functions, so every page has one format and pages can be
//! concatenated (the scheduler's page holds the executor's pod counters too). Plain `std`: no
//! dependencies, no registry.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The `Content-Type` of a page in this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Bucket bounds (seconds) of latency histograms: loop durations, DAG parses, API requests.
pub const SECONDS_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A cumulative histogram of durations, lock-free.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (ascending; `+Inf` is implied).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Counts one observation of `duration`.
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|&b| seconds <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the histogram `name` with `labels` (`key="value",…`, or empty) in text format;
    /// the `# HELP`/`# TYPE` lines are the caller's (one per family).
    pub fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// `# HELP` and `# TYPE` of a metric family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One counter or gauge family with a single value.
pub fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// A label value escaped for the text format (backslash, double quote and newline).
pub fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_cumulative_and_counts_everything() {
        let h = Histogram::new(&[0.01, 0.1]);
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_secs(1));
        let mut out = String::new();
        h.write(&mut out, "x", "a=\"b\"");
        assert_eq!(
            out,
            "x_bucket{a=\"b\",le=\"0.01\"} 1\nx_bucket{a=\"b\",le=\"0.1\"} 2\nx_bucket{a=\"b\",le=\"+Inf\"} 3\nx_sum{a=\"b\"} 1.055\nx_count{a=\"b\"} 3\n"
        );
    }

    #[test]
    fn families_and_single_values() {
        let mut out = String::new();
        single(&mut out, "updraft_dags", "gauge", "DAGs loaded.", 3);
        assert_eq!(out, "# HELP updraft_dags DAGs loaded.\n# TYPE updraft_dags gauge\nupdraft_dags 3\n");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"/a\b"c"#), r#"/a\\b\"c"#);
        assert_eq!(escape_label("a\nb"), "a\\nb");
    }
}

//! Where the processes' events go: standard error, as text for people or as one JSON object per
//! line for log collectors (`--log-format`, `[logging] format`), filtered by `--log-level` (or
//! RUST_LOG). The CLI's own output (tables, results) is not logging and stays on stdout.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the subscriber; a filter that does not parse falls back to `info`, with a warning.
pub fn init(format: LogFormat, level: &str) {
    let (filter, bad) = match std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()) {
        Some(from_env) => (EnvFilter::try_new(&from_env).ok(), Some(from_env)),
        None => (EnvFilter::try_new(level).ok(), Some(level.to_owned())),
    };
    let filter_ok = filter.is_some();
    let filter = filter.unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    if installed.is_ok() && !filter_ok {
        tracing::warn!(filter = bad.unwrap_or_default(), "the log filter does not parse; logging at info");
    }
}

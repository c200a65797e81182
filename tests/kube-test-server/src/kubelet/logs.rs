//! Container log buffers: every line a container writes to stdout or stderr, with the time it
//! arrived (as the CRI log file keeps it), readable while it grows and followable to the end.

use std::sync::Mutex;

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::lock;

#[derive(Clone)]
pub(crate) struct LogLine {
    pub(crate) at: DateTime<Utc>,
    /// The line with its trailing newline, if it had one.
    pub(crate) text: Bytes,
}

struct Inner {
    lines: Vec<LogLine>,
    finished: bool,
}

pub(crate) struct LogBuffer {
    inner: Mutex<Inner>,
    /// Bumped on every change, so followers wake up.
    progress: watch::Sender<u64>,
}

impl LogBuffer {
    pub(crate) fn new() -> LogBuffer {
        LogBuffer { inner: Mutex::new(Inner { lines: Vec::new(), finished: false }), progress: watch::Sender::new(0) }
    }

    pub(crate) fn push(&self, text: Bytes) {
        lock(&self.inner).lines.push(LogLine { at: crate::time::now(), text });
        self.progress.send_modify(|n| *n += 1);
    }

    /// Marks the container as exited: followers stop after the last line.
    pub(crate) fn finish(&self) {
        lock(&self.inner).finished = true;
        self.progress.send_modify(|n| *n += 1);
    }

    /// Lines from index `from` on, and whether the container has exited.
    pub(crate) fn read_from(&self, from: usize) -> (Vec<LogLine>, bool) {
        let inner = lock(&self.inner);
        (inner.lines.get(from..).map(<[LogLine]>::to_vec).unwrap_or_default(), inner.finished)
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.progress.subscribe()
    }
}

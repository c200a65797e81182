//! Per-try limits that live in the store: the memory limiter, the capped stdout/stderr pipe
//! and the capped task log.

use std::io::Write as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::AsyncWrite;
use updraft_logs::TryLogFile;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use crate::outcome::{LogLevel, LogLine};

/// Refuses memory growth past the limit with a trap, and remembers it so the try ends as
/// `OutOfMemory` rather than a generic trap.
pub(crate) struct MemoryLimiter {
    limit: usize,
    /// (limit, requested) once a growth was refused.
    pub exceeded: Option<(u64, u64)>,
}

impl MemoryLimiter {
    /// Refuses memory growth beyond `limit` bytes.
    pub fn new(limit: u64) -> Self {
        Self { limit: usize::try_from(limit).unwrap_or(usize::MAX), exceeded: None }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = Some((self.limit as u64, desired as u64));
            wasmtime::bail!(
                "memory limit exceeded: the plugin asked for {desired} bytes, more than its limit of {} bytes",
                self.limit
            );
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The plugin's stdout and stderr: kept up to a size, the rest counted and dropped (never a
/// trap, so that a chatty plugin still finishes).
#[derive(Clone)]
pub(crate) struct CappedPipe {
    inner: Arc<Mutex<(Vec<u8>, usize)>>,
    cap: usize,
}

impl CappedPipe {
    /// A pipe keeping at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self { inner: Arc::new(Mutex::new((Vec::new(), 0))), cap }
    }

    /// The captured text, and how many bytes were dropped.
    pub fn contents(&self) -> (String, usize) {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (String::from_utf8_lossy(&g.0).into_owned(), g.1)
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for CappedPipe {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.cap.saturating_sub(g.0.len());
        let keep = room.min(buf.len());
        g.0.extend_from_slice(&buf[..keep]);
        g.1 += buf.len() - keep;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The task log of one try, capped in bytes; with a live file, each line is also appended to
/// it as it comes (so `updraft tasks logs --follow` and the API show a running try's log).
pub(crate) struct TaskLog {
    start: Instant,
    lines: Vec<LogLine>,
    bytes: usize,
    cap: usize,
    dropped: usize,
    live: Option<std::fs::File>,
}

impl TaskLog {
    /// A log keeping at most `cap` bytes in memory, also written line by line to the try's log file when given.
    pub fn new(cap: usize, live: Option<&TryLogFile>) -> Self {
        // A log file that cannot be opened must not fail the task; the report still has the log.
        let live = live.and_then(|log| log.open_append().ok());
        Self { start: Instant::now(), lines: Vec::new(), bytes: 0, cap, dropped: 0, live }
    }

    /// Adds a line (dropped, and counted, beyond the cap).
    pub fn push(&mut self, level: LogLevel, message: String) {
        if self.bytes + message.len() > self.cap {
            self.dropped += 1;
            return;
        }
        self.bytes += message.len();
        let line = LogLine { elapsed: self.start.elapsed(), level, message };
        if let Some(file) = &mut self.live {
            // A log line that cannot be written must not fail the task; the report still has it.
            let _ = file.write_all(line.text().as_bytes());
        }
        self.lines.push(line);
    }

    /// How many of the lines the live file already holds.
    pub fn written_live(&self) -> Option<usize> {
        self.live.as_ref().map(|_| self.lines.len())
    }

    /// The lines, followed by a notice of what the caps dropped and by the captured stderr.
    pub fn finish(mut self, stderr: &CappedPipe) -> Vec<LogLine> {
        let elapsed = self.start.elapsed();
        if self.dropped > 0 {
            self.lines.push(LogLine {
                elapsed,
                level: LogLevel::Warn,
                message: format!("{} log lines dropped: the task log is limited to {} bytes", self.dropped, self.cap),
            });
        }
        let (text, dropped) = stderr.contents();
        for line in text.lines() {
            self.lines.push(LogLine { elapsed, level: LogLevel::Info, message: format!("[stderr] {line}") });
        }
        if dropped > 0 {
            self.lines.push(LogLine {
                elapsed,
                level: LogLevel::Warn,
                message: format!("{dropped} bytes of stdout/stderr dropped: limited to {} bytes", stderr.cap),
            });
        }
        self.lines
    }
}

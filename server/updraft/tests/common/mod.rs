//! Helpers shared by the binary's integration tests: where the workspace is, command output as
//! text, `psql` on the local PostgreSQL, and polling for a condition.
// Each test crate includes this module and uses a different part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs one statement with `psql` on the PostgreSQL at 127.0.0.1:5432.
pub fn psql(sql: &str, db: &str) -> Output {
    Command::new("psql").args(["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tAc", sql]).output().expect("psql runs")
}

/// Polls `check` every 200 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

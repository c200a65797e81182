//! Helpers shared by the binary's integration tests: where the workspace is, command output as
//! text, `psql` on the local PostgreSQL, polling for a condition, Python venvs from PyPI, a
//! bare HTTP GET, and TLS peers with test CAs (`tls`: a TLS-only PostgreSQL, an HTTPS server).
// Each test crate includes this module and uses a different part of it.
#![allow(dead_code)]

mod tls;

#[allow(unused_imports)]
pub use tls::{CA_EXTENSIONS, HttpsServer, SERVER_EXTENSIONS, TlsPostgres, certificate};

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

/// The python of a venv under the target folder holding `requirements` (created and installed
/// once; a marker file records success). Fails, never skips, without Python or PyPI.
pub fn python_venv(name: &str, requirements: &[&str]) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = root.join(name);
    let python = dir.join("bin/python");
    let marker = dir.join("installed.txt");
    let wanted = requirements.join("\n");
    // Tests of one binary run in parallel, and binaries may share a venv: one creates it while
    // the others wait on this lock (released when the file closes).
    std::fs::create_dir_all(root).expect("target tmp folder");
    let lock = std::fs::File::create(root.join(format!("{name}.lock"))).expect("lock file");
    lock.lock().expect("locking the venv");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return python;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new("python3").args(["-m", "venv"]).arg(&dir).output().expect("python3 runs");
    assert!(out.status.success(), "python3 -m venv failed: {}", text(&out.stderr));
    let out = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .args(requirements)
        .output()
        .expect("pip runs");
    assert!(out.status.success(), "pip install {wanted} failed:\n{}\n{}", text(&out.stdout), text(&out.stderr));
    std::fs::write(&marker, wanted).expect("marker");
    python
}

/// `GET path` on 127.0.0.1:`port` over plain HTTP/1.1: the status and the body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// A TCP port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Parses Prometheus text with the Prometheus client library's own parser (from PyPI): each
/// sample as `name{"label": "value", …}` → value, and each family as `type:name` → its type.
/// Panics, showing the text, if it does not parse.
pub fn prometheus_samples(text_format: &str) -> serde_json::Value {
    let python = python_venv("prometheus-client-venv", &["prometheus-client==0.26.0"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("metrics.txt");
    std::fs::write(&path, text_format).expect("write");
    let parse = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    out["type:" + family.name] = family.type
    for sample in family.samples:
        out[sample.name + json.dumps(sample.labels, sort_keys=True)] = sample.value
print(json.dumps(out))
"#;
    let out = Command::new(&python).args(["-c", parse]).arg(&path).output().expect("python runs");
    assert!(out.status.success(), "not Prometheus text: {}\n{text_format}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// The last state `updraft dags test` printed for `task` (its lines are `TIME  STATE  TASK`).
pub fn final_state(stdout: &str, task: &str) -> String {
    stdout
        .lines()
        .rev()
        .find_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            (parts.len() == 3 && parts[0].ends_with('s') && parts[2] == task).then(|| parts[1].to_owned())
        })
        .unwrap_or_default()
}

/// The text of every try's log of `task` under the log folder `logs`, tries in no set order.
pub fn task_logs(logs: &Path, task: &str) -> String {
    let mut out = String::new();
    let mut stack = vec![logs.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.display().to_string().contains(&format!("task_id={task}/")) {
                out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    out
}

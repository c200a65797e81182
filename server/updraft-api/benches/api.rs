//! Trigger throughput and latency of the API on loopback, on SQLite and on PostgreSQL:
//! `cargo bench -p updraft-api --bench api`. The server runs in this process on a runtime of
//! its own (two worker threads); the load generator is a minimal HTTP/1.1 keep-alive client
//! on another runtime, so both share the machine's cores, as a separate `wrk` would.
//!
//! Measured: 1,000 sequential triggers on one connection; 20,000 triggers over 64 connections
//! (`UPDRAFT_BENCH_TRIGGERS` changes the count); and `GET /api/v2/dags?limit=100` out of 1,000
//! DAGs. PostgreSQL is the one at 127.0.0.1:5432 (a database of the benchmark's own). When the
//! official Airflow client's venv exists (the `airflow_client` test of the `updraft` crate
//! makes it), 1,000 sequential triggers also go through that client, as Airflow's figure was
//! measured.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use updraft_api::{ApiConfig, AppState, Role};
use updraft_db::dags::DagRecord;
use updraft_db::{Db, EncryptionKey};

/// One keep-alive connection that sends requests and reads whole responses.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Conn { stream, buf: Vec::with_capacity(8192) }
    }

    /// Sends a request and returns the status code, after reading the whole body.
    async fn send(&mut self, request: &[u8]) -> u16 {
        self.stream.write_all(request).await.expect("write");
        self.buf.clear();
        loop {
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
            let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
            let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if self.buf.len() >= end + 4 + length {
                return head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
            }
        }
    }
}

fn request(method: &str, path: &str, token: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn report(name: &str, mut latencies: Vec<Duration>, elapsed: Duration) {
    latencies.sort();
    println!(
        "  {name:<44} {:>6} requests  {:>8.0}/s  p50 {:>9}  p99 {:>9}  max {:>9}",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0))
    );
}

fn record(dag_id: &str) -> DagRecord {
    DagRecord {
        dag_id: dag_id.into(),
        fileloc: format!("/dags/{dag_id}.yaml"),
        source_hash: "h".into(),
        description: Some("benchmark DAG".into()),
        schedule: None,
        timezone: "UTC".into(),
        tags: r#"["bench"]"#.into(),
        owners: "[]".into(),
        max_active_runs: 16,
        max_active_tasks: 16,
        task_count: 10,
    }
}

fn psql(sql: &str) {
    let out = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc", sql])
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
}

fn bench(backend: &str, url: &str, triggers: usize) {
    let server = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (port, token) = server.block_on(async {
        let db = Db::connect(url).await.expect("connect");
        db.migrate().await.expect("migrate");
        let dags: Vec<DagRecord> = (0..1000).map(|i| record(&format!("dag_{i:04}"))).collect();
        db.sync_dags(&dags, &[], true).await.expect("dags");
        let dir = std::env::temp_dir();
        let config = ApiConfig {
            encryption_key: EncryptionKey::from_base64(&EncryptionKey::generate()).expect("key"),
            jwt_secret: b"benchmark secret".to_vec(),
            token_lifetime: Duration::from_secs(3600),
            logs: updraft_api::TaskLogs::local(dir.join("logs")),
            plugins: None,
            secure_cookies: false,
            dags_dir: None,
            secret_sources: updraft_secrets::Sources::default(),
        };
        let state = AppState::new(db, config).expect("state");
        let token = state.tokens().issue("bench", Role::Admin);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(updraft_api::serve(listener, state, std::future::pending()));
        (port, token)
    });
    let client = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    println!("{backend}:");
    client.block_on(async {
        let trigger =
            request("POST", "/api/v2/dags/dag_0000/dagRuns", &token, r#"{"logical_date": null, "conf": {"k": 1}}"#);
        // Warm-up: connections, statement caches.
        let mut conn = Conn::open(port).await;
        for _ in 0..100 {
            assert_eq!(conn.send(&trigger).await, 200);
        }

        let mut latencies = Vec::with_capacity(1000);
        let start = Instant::now();
        for _ in 0..1000 {
            let t = Instant::now();
            assert_eq!(conn.send(&trigger).await, 200);
            latencies.push(t.elapsed());
        }
        report("POST …/dagRuns, 1 connection, sequential", latencies, start.elapsed());

        let start = Instant::now();
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                // The first `triggers % 64` connections send one more.
                let per_conn = triggers / 64 + usize::from(i < triggers % 64);
                let trigger = trigger.clone();
                tokio::spawn(async move {
                    let mut conn = Conn::open(port).await;
                    let mut latencies = Vec::with_capacity(per_conn);
                    for _ in 0..per_conn {
                        let t = Instant::now();
                        let status = conn.send(&trigger).await;
                        assert_eq!(status, 200);
                        latencies.push(t.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut all = Vec::with_capacity(triggers);
        for task in tasks {
            all.extend(task.await.expect("client task"));
        }
        report("POST …/dagRuns, 64 connections", all, start.elapsed());

        let page = request("GET", "/api/v2/dags?limit=100&offset=500", &token, "");
        let mut latencies = Vec::with_capacity(200);
        let start = Instant::now();
        for _ in 0..200 {
            let t = Instant::now();
            assert_eq!(conn.send(&page).await, 200);
            latencies.push(t.elapsed());
        }
        report("GET /dags?limit=100 of 1,000 DAGs", latencies, start.elapsed());
    });
    official_client(port, &token);
    drop(server);
}

/// 1,000 sequential triggers through the official Python client, if its venv exists.
fn official_client(port: u16, token: &str) {
    let python = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("airflow-client-venv/bin/python");
    if !python.exists() {
        println!("  (official client: no venv yet; `cargo test -p updraft --test airflow_client` makes it)");
        return;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/airflow-client/bench_triggers.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .args([&format!("http://127.0.0.1:{port}"), token, "dag_0001", "1000"])
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    if let [count, rate, p50, p99] = fields[..] {
        println!(
            "  {:<44} {count:>6} requests  {rate:>8}/s  p50 {p50:>6} ms  p99 {p99:>6} ms",
            "POST …/dagRuns, official Python client, seq."
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is configurable from the command line.
    let triggers: usize = std::env::var("UPDRAFT_BENCH_TRIGGERS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let dir = tempfile::tempdir().expect("tempdir");
    bench("SQLite", &updraft_db::sqlite_url(dir.path()), triggers);
    let name = format!("updraft_api_bench_{}", std::process::id());
    psql(&format!("DROP DATABASE IF EXISTS {name}"));
    psql(&format!("CREATE DATABASE {name}"));
    bench("PostgreSQL", &format!("postgres://postgres@127.0.0.1:5432/{name}"), triggers);
    psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}

//! The official Airflow client against Updraft: `apache-airflow-client==3.3.2`, installed
//! from PyPI into a venv under the target folder (kept between runs), drives `updraft
//! api-server` while `updraft scheduler` runs the DAG, both on a PostgreSQL database of the
//! test's own: the basic workflow as a `user`, then variables, connections, pools, import
//! errors, tasks and XComs as an `op`. The Python side is `tests/airflow-client/test_client.py`. The test never skips
//! itself: without Python, PyPI or PostgreSQL it fails.

mod common;

use common::{psql, text, wait_for, workspace};

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const JWT_SECRET: &str = "a test secret of at least thirty-two characters";
const CLIENT: &str = "apache-airflow-client==3.3.2";

/// The venv's python, with the client installed (once).
fn client_python() -> PathBuf {
    common::python_venv("airflow-client-venv", &[CLIENT])
}

/// A PostgreSQL database and data folder, and the processes started on them (killed, and the
/// database dropped, when it goes).
struct Setup {
    dir: tempfile::TempDir,
    db: String,
    url: String,
    children: Vec<Child>,
}

impl Setup {
    fn new() -> Setup {
        let db = format!("updraft_api_client_{}", std::process::id());
        let _ = psql(&format!("DROP DATABASE IF EXISTS {db}"), "postgres");
        let out = psql(&format!("CREATE DATABASE {db}"), "postgres");
        assert!(out.status.success(), "PostgreSQL must run at 127.0.0.1:5432: {}", text(&out.stderr));
        let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
        Setup { dir: tempfile::tempdir().expect("tempdir"), db, url, children: Vec::new() }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_updraft"));
        command
            .args(args)
            .current_dir(workspace())
            .env("UPDRAFT__DATABASE__URL", &self.url)
            .env("UPDRAFT__CORE__DATA_DIR", self.dir.path())
            .env("UPDRAFT__CORE__ENCRYPTION_KEY", KEY)
            .env("UPDRAFT__API__JWT_SECRET", JWT_SECRET)
            .env_remove("UPDRAFT_CONFIG");
        command
    }

    fn run(&self, args: &[&str]) {
        let out = self.command(args).output().expect("runs updraft");
        assert!(out.status.success(), "updraft {args:?}: {}", text(&out.stderr));
    }

    fn spawn(&mut self, args: &[&str], log: &str) {
        let file = std::fs::File::create(self.dir.path().join(log)).expect("log file");
        let child = self.command(args).stdout(Stdio::null()).stderr(file).spawn().expect("starts updraft");
        self.children.push(child);
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db), "postgres");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

#[test]
fn the_official_airflow_client_triggers_a_run_and_reads_its_log() {
    let python = client_python();
    let mut setup = Setup::new();
    setup.run(&["db", "migrate"]);
    setup.run(&["users", "create", "--username", "ci", "--password", "ci-password", "--role", "user"]);
    setup.run(&["users", "create", "--username", "ops", "--password", "ops-password", "--role", "op"]);
    let listed = setup.command(&["users", "list"]).output().expect("users list");
    let listed = text(&listed.stdout);
    assert!(listed.starts_with("ci\tuser\t") && listed.contains("\nops\top\t"), "{listed}");

    let dags = "tests/fixtures/api/client.yaml";
    setup.spawn(&["scheduler", "--dags", dags], "scheduler.log");
    let port = free_port();
    setup.spawn(&["api-server", "--port", &port.to_string()], "api.log");
    wait_for("the API server to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    wait_for("the scheduler to store the DAG", Duration::from_secs(30), || {
        text(&psql("SELECT count(*) FROM dag WHERE dag_id = 'api_client'", &setup.db).stdout).trim() == "1"
    });

    let script = workspace().join("tests/airflow-client/test_client.py");
    let host = format!("http://127.0.0.1:{port}");
    let out = Command::new(&python)
        .arg(&script)
        .args([host.as_str(), "ci", "ci-password", "api_client", "ops", "ops-password"])
        .output()
        .expect("the client script runs");
    let report = format!(
        "client stdout:\n{}\nclient stderr:\n{}\nAPI server:\n{}\nscheduler:\n{}",
        text(&out.stdout),
        text(&out.stderr),
        setup.log("api.log"),
        setup.log("scheduler.log")
    );
    assert!(out.status.success(), "{report}");
    assert!(text(&out.stdout).contains("all checks passed"), "{report}");
    println!("{}", text(&out.stdout));
}

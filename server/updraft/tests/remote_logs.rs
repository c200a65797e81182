//! Task logs that outlive pods, against S3 and STS served by moto over HTTPS on loopback (a CA
//! the test makes, trusted through `UPDRAFT__HTTP__EXTRA_CA_FILE`): a try's log is uploaded
//! when it ends (`dags test`, `tasks run`, the kubernetes executor's own record of a pod that
//! never started), read back through `tasks logs` and the API after the local files are gone,
//! with IRSA's web-identity token as the only credential; an upload that fails leaves the try
//! as it was; `db clean` removes old runs with their logs, local and remote, on SQLite and
//! PostgreSQL, and leaves runs in progress alone.

mod common;
mod moto;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{free_port, psql, text, wait_for, workspace};
use moto::{Identity, Moto};

const BUCKET: &str = "updraft-logs";
const DAGS: &str = "tests/fixtures/scheduler/remote_logs.yaml";
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// An Updraft deployment for one test: a data folder, on SQLite or a fresh PostgreSQL database,
/// keeping its task logs under `s3://updraft-logs/PREFIX`.
struct Deployment<'a> {
    dir: tempfile::TempDir,
    moto: &'a Moto,
    prefix: String,
    pg: Option<String>,
}

impl<'a> Deployment<'a> {
    fn new(moto: &'a Moto, prefix: &str, postgres: bool) -> Deployment<'a> {
        let pg = postgres.then(|| {
            let db = format!("updraft_logs_{}_{}", prefix.replace('-', "_"), std::process::id());
            let out = psql(&format!("CREATE DATABASE {db}"), "postgres");
            assert!(out.status.success(), "PostgreSQL must run at 127.0.0.1:5432: {}", text(&out.stderr));
            db
        });
        let deployment = Deployment { dir: tempfile::tempdir().expect("tempdir"), moto, prefix: prefix.into(), pg };
        deployment.ok(&["db", "migrate"], Identity::Keys);
        deployment
    }

    fn remote(&self) -> String {
        format!("s3://{BUCKET}/{}", self.prefix)
    }

    fn command(&self, args: &[&str], identity: Identity) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_updraft"));
        command
            .args(args)
            .current_dir(workspace())
            .env("UPDRAFT__CORE__DATA_DIR", self.dir.path())
            .env("UPDRAFT__LOGGING__REMOTE", self.remote())
            .env_remove("UPDRAFT__DATABASE__URL")
            .env_remove("UPDRAFT_CONFIG");
        if let Some(db) = &self.pg {
            command
                .env("UPDRAFT__DATABASE__URL", format!("postgres://postgres@127.0.0.1:5432/{db}"))
                .env("UPDRAFT__CORE__ENCRYPTION_KEY", KEY);
        }
        self.moto.configure(&mut command, identity);
        command
    }

    fn run(&self, args: &[&str], identity: Identity) -> Output {
        self.command(args, identity).output().expect("updraft runs")
    }

    fn ok(&self, args: &[&str], identity: Identity) -> String {
        let out = self.run(args, identity);
        assert!(out.status.success(), "updraft {}: {}\n{}", args.join(" "), text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }

    /// Runs the DAG once with `dags test`; returns the run id.
    fn test_run(&self) -> String {
        let stdout = self.ok(&["dags", "test", "remote_logs", "--dags", DAGS], Identity::Keys);
        run_id_of(&stdout)
    }

    fn local_log(&self, run_id: &str, attempt: u32) -> std::path::PathBuf {
        self.dir.path().join(format!("logs/dag_id=remote_logs/run_id={run_id}/task_id=nap/attempt={attempt}.log"))
    }

    fn key(&self, run_id: &str, attempt: u32) -> String {
        format!("{}/dag_id=remote_logs/run_id={run_id}/task_id=nap/attempt={attempt}.log", self.prefix)
    }

    /// Runs SQL on the metadata database (psql, or Python's sqlite3 for the SQLite file).
    fn sql(&self, query: &str) {
        let out = match &self.pg {
            Some(db) => psql(query, db),
            None => Command::new("python3")
                .args([
                    "-c",
                    "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()",
                ])
                .arg(self.dir.path().join("updraft.db"))
                .arg(query)
                .output()
                .expect("python3 runs"),
        };
        assert!(out.status.success(), "{query}: {}", text(&out.stderr));
    }
}

impl Drop for Deployment<'_> {
    fn drop(&mut self) {
        if let Some(db) = &self.pg {
            let _ = psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"), "postgres");
        }
    }
}

/// The run id `dags test` printed (`run ID: STATE in …`).
fn run_id_of(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("run ")?.split_once(": ").map(|(id, _)| id.to_owned()))
        .unwrap_or_else(|| panic!("no run line in {stdout}"))
}

/// One HTTP/1.1 request to 127.0.0.1:`port`: the status and the body.
fn http(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

/// Percent-encodes a path segment.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_trys_log_is_shipped_to_s3_and_read_back_after_the_local_copy_is_gone() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let deployment = Deployment::new(&moto, "read-back", false);

    // The local executor ships the log when the try ends, with static keys.
    let run_id = deployment.test_run();
    let local = std::fs::read_to_string(deployment.local_log(&run_id, 1)).expect("the local copy");
    assert!(local.contains("sleeping 1 s"), "{local}");
    assert_eq!(moto.object(BUCKET, &deployment.key(&run_id, 1)), local, "the object is the local file");
    // So does the worker of a task pod (`tasks run`).
    let dags = ["--dags", DAGS];
    deployment
        .ok(&[&["tasks", "run", "remote_logs", "nap", &run_id, "--try", "2"][..], &dags].concat(), Identity::Keys);
    let second = std::fs::read_to_string(deployment.local_log(&run_id, 2)).expect("the second try's log");
    assert_eq!(moto.object(BUCKET, &deployment.key(&run_id, 2)), second);
    assert_eq!(
        moto.keys(BUCKET, "read-back/"),
        [deployment.key(&run_id, 1), deployment.key(&run_id, 2)],
        "nothing else is stored"
    );

    // The pods, their node and the volume are gone: only S3 has the logs. Readers get there with
    // IRSA's web-identity token alone, exchanged at STS.
    std::fs::remove_dir_all(deployment.dir.path().join("logs")).expect("local logs removed");
    let printed = deployment.ok(&["tasks", "logs", "remote_logs", &run_id, "nap", "--try", "1"], Identity::WebIdentity);
    assert_eq!(printed, local);
    assert!(moto.log().contains("sts: AssumeRoleWithWebIdentity"), "the web identity was exchanged:\n{}", moto.log());
    assert!(!deployment.dir.path().join("logs").exists(), "reading keeps no local copy");

    // The API (and the web app through it) reads the same log, in pages with continuation tokens.
    deployment.ok(
        &["users", "create", "--username", "ada", "--role", "viewer", "--password", "a long password"],
        Identity::Keys,
    );
    let port = free_port();
    let api = deployment
        .command(&["api-server", "--port", &port.to_string()], Identity::WebIdentity)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the API server starts");
    wait_for("the API server", Duration::from_secs(60), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let (status, body) =
        http(port, "POST", "/auth/token", None, r#"{"username": "ada", "password": "a long password"}"#);
    assert_eq!(status, 201, "{body}");
    let token: serde_json::Value = serde_json::from_str(&body).expect("json");
    let token = token["access_token"].as_str().expect("a token").to_owned();
    let path = format!("/api/v2/dags/remote_logs/dagRuns/{}/taskInstances/nap/logs/1", encode(&run_id));
    let (status, body) = http(port, "GET", &path, Some(&token), "");
    stop(api);
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).expect("json");
    let lines: Vec<&str> =
        page["content"].as_array().expect("content").iter().filter_map(|l| l["event"].as_str()).collect();
    assert_eq!(lines, local.lines().collect::<Vec<_>>(), "{body}");
}

#[test]
fn an_upload_that_fails_leaves_the_try_and_its_local_log_as_they_were() {
    let moto = Moto::start();
    // No bucket: every upload is refused.
    let deployment = Deployment::new(&moto, "no-bucket", false);
    let out = deployment.run(&["dags", "test", "remote_logs", "--dags", DAGS], Identity::Keys);
    assert!(out.status.success(), "the run succeeds: {}\n{}", text(&out.stdout), text(&out.stderr));
    let run_id = run_id_of(&text(&out.stdout));
    assert!(text(&out.stdout).contains(": success in"), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("the try's log was not uploaded; the local copy stays"), "{stderr}");
    assert!(stderr.contains("s3://updraft-logs/no-bucket/dag_id=remote_logs/"), "{stderr}");
    let local = std::fs::read_to_string(deployment.local_log(&run_id, 1)).expect("the local copy stays");
    assert!(local.contains("sleeping 1 s"), "{local}");
    // And readers still read it.
    assert_eq!(deployment.ok(&["tasks", "logs", "remote_logs", &run_id, "nap"], Identity::Keys), local);
}

#[test]
fn db_clean_removes_old_runs_with_their_logs_and_leaves_runs_in_progress_on_both_databases() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    for postgres in [false, true] {
        let prefix = if postgres { "clean-pg" } else { "clean-sqlite" };
        let d = Deployment::new(&moto, prefix, postgres);
        let old = d.test_run();
        let recent = d.test_run();
        d.ok(&["dags", "trigger", "remote_logs", "--run-id", "in_progress"], Identity::Keys);
        let ninety_one_days = 91_i64 * 86_400 * 1_000_000;
        d.sql(&format!(
            "UPDATE dag_run SET end_date = end_date - {ninety_one_days}, run_after = run_after - {ninety_one_days} WHERE run_id = '{old}'"
        ));
        d.sql(&format!(
            "UPDATE dag_run SET state = 'running', run_after = run_after - {ninety_one_days} WHERE run_id = 'in_progress'"
        ));
        assert_eq!(moto.keys(BUCKET, &format!("{prefix}/")).len(), 2, "{postgres}");

        let dry = d.ok(&["db", "clean", "--older-than", "90d", "--dry-run"], Identity::Keys);
        for line in ["  dag_run          1", "  task_instance    1", "  local log files  1", "  remote logs      1"] {
            assert!(dry.contains(line), "{postgres}: `{line}` in\n{dry}");
        }
        assert!(dry.contains("dry run: nothing was removed"), "{dry}");
        assert!(d.local_log(&old, 1).exists(), "a dry run removes nothing");
        assert_eq!(moto.keys(BUCKET, &format!("{prefix}/")).len(), 2);

        // Without --yes it asks; anything but yes keeps everything.
        let mut asked = d
            .command(&["db", "clean", "--older-than", "90d"], Identity::Keys)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts");
        asked.stdin.take().expect("stdin").write_all(b"n\n").expect("answer");
        let out = asked.wait_with_output().expect("ends");
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains("not confirmed: nothing was removed"), "{}", text(&out.stderr));
        assert!(d.local_log(&old, 1).exists());

        let removed = d.ok(&["db", "clean", "--older-than", "90d", "--yes"], Identity::Keys);
        assert!(removed.contains("removed:\n  dag_run          1\n  task_instance    1\n"), "{postgres}: {removed}");
        assert!(removed.contains("  remote logs      1"), "{removed}");
        assert!(!d.dir.path().join(format!("logs/dag_id=remote_logs/run_id={old}")).exists());
        assert_eq!(
            moto.keys(BUCKET, &format!("{prefix}/")),
            [d.key(&recent, 1)],
            "{postgres}: only the old run's log went"
        );
        let runs = d.ok(&["dags", "list-runs", "remote_logs"], Identity::Keys);
        assert!(!runs.contains(&old), "{runs}");
        assert!(runs.contains(&recent) && runs.contains("in_progress\trunning"), "{postgres}: {runs}");
        let again = d.ok(&["db", "clean", "--older-than", "90d", "--yes"], Identity::Keys);
        assert!(again.contains("nothing to remove"), "{again}");
        // A date instead of an age; and a bad age says what to write.
        let dated =
            d.ok(&["db", "clean", "--clean-before-timestamp", "2000-01-01T00:00:00Z", "--dry-run"], Identity::Keys);
        assert!(dated.contains("ended before 2000-01-01T00:00:00Z; would remove:\n  dag_run          0"), "{dated}");
        let bad = d.run(&["db", "clean", "--older-than", "ninety days"], Identity::Keys);
        assert!(!bad.status.success());
        assert!(text(&bad.stderr).contains("--older-than: invalid duration `ninety days`"), "{}", text(&bad.stderr));
    }
}

#[test]
fn a_pod_that_never_starts_has_its_reason_and_events_in_the_log_in_s3() {
    use updraft_fake_kube::{FakeKube, FakeKubeConfig};
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let d = Deployment::new(&moto, "pods", false);
    let fake =
        FakeKube::start(FakeKubeConfig { rbac_dir: Some(workspace().join("k8s/base")), ..FakeKubeConfig::default() })
            .expect("the test API server starts");
    let kubeconfig = d.dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig, "updraft", "updraft-scheduler").expect("kubeconfig");
    let dags = "tests/fixtures/scheduler/unpullable.yaml";
    let scheduler = d
        .command(
            &[
                "scheduler",
                "--dags",
                dags,
                "--executor",
                "kubernetes",
                "--kubeconfig",
                kubeconfig.to_str().expect("utf-8"),
                "--kubernetes-image",
                "updraft/worker:dev",
            ],
            Identity::Keys,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the scheduler starts");
    wait_for("the scheduler to register the DAG", Duration::from_secs(60), || {
        d.run(&["dags", "trigger", "unpullable", "--run-id", "r1"], Identity::Keys).status.success()
    });
    wait_for("the run to fail", Duration::from_secs(60), || {
        d.ok(&["dags", "list-runs", "unpullable"], Identity::Keys).contains("r1\tfailed")
    });
    stop(scheduler);
    let key = "pods/dag_id=unpullable/run_id=r1/task_id=pull/attempt=1.log";
    let log = moto.object(BUCKET, key);
    assert!(log.contains("could not run the task: container base cannot start: ErrImagePull"), "{log}");
    assert!(log.contains("[kubernetes executor] its events:"), "{log}");
    assert!(log.contains("Warning Failed: "), "{log}");
    let local = Path::new(d.dir.path()).join("logs/dag_id=unpullable/run_id=r1/task_id=pull/attempt=1.log");
    assert_eq!(std::fs::read_to_string(local).expect("the scheduler's local copy"), log);
}

#[test]
fn the_eks_overlays_configuration_is_the_base_one_plus_remote_logs_and_is_accepted() {
    let block = |file: &str| {
        let text = std::fs::read_to_string(workspace().join(file)).expect("readable");
        let start = text.find("  updraft.toml: |\n").unwrap_or_else(|| panic!("{file} has updraft.toml"));
        text[start..].trim_end().to_owned()
    };
    let (base, eks) = (block("k8s/base/configmap.yaml"), block("k8s/overlays/eks/config.yaml"));
    assert!(
        eks.starts_with(&base),
        "k8s/overlays/eks/config.yaml repeats the updraft.toml of k8s/base/configmap.yaml before its [logging] \
         section: copy the base's changes over"
    );
    let added = &eks[base.len()..];
    assert!(added.contains("\n    [logging]\n") && added.contains("remote = \"s3://"), "{added}");
    // The file as pods see it is accepted, and `db clean` runs with it.
    let toml: String = eks.lines().skip(1).map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l))).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("updraft.toml");
    std::fs::write(&config, toml).expect("written");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_updraft"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("UPDRAFT__CORE__DATA_DIR", dir.path())
            .env_remove("UPDRAFT__DATABASE__URL")
            .output()
            .expect("updraft runs");
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    run(&["db", "migrate"]);
    assert!(run(&["db", "clean", "--older-than", "90d", "--dry-run"]).contains("dry run: nothing was removed"));
}

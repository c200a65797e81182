//! Connections from the cluster, as a running scheduler sees them: a connection file of a
//! mounted Secret directory changed while `updraft scheduler` runs reaches the next run without a
//! restart; an `UPDRAFT_CONN_*` variable wins over the database's connection of the same id; and
//! no password from the environment, a file or the database appears in any output or log.

mod common;

use common::{task_logs, text, wait_for, workspace};

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const PASSWORDS: [&str; 3] = ["env-pw-5eb1", "file-pw-77c2", "db-pw-90fd"];

fn updraft(data: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_updraft"))
        .args(args)
        .current_dir(workspace())
        .env("UPDRAFT__CORE__DATA_DIR", data)
        .env_remove("UPDRAFT__DATABASE__URL")
        .env_remove("UPDRAFT_CONFIG")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("updraft runs")
}

/// Writes a connection file the way the kubelet updates a Secret volume: a new file renamed
/// over the old, so a reader sees one or the other, never half.
fn write_secret(dir: &Path, id: &str, uri: &str) {
    let tmp = dir.join(format!(".{id}.tmp"));
    std::fs::write(&tmp, uri).expect("write");
    std::fs::rename(&tmp, dir.join(id)).expect("rename");
}

fn marker(db: &Path) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select run from marker').fetchall())",
        ])
        .arg(db)
        .output()
        .expect("python3 runs");
    text(&out.stdout).trim().to_owned()
}

#[test]
fn a_changed_secret_file_reaches_the_next_run_the_environment_wins_and_no_password_is_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let secrets = dir.path().join("connections");
    let dags = dir.path().join("dags");
    std::fs::create_dir_all(&secrets).expect("dir");
    std::fs::create_dir_all(&dags).expect("dir");
    std::fs::write(
        dags.join("secrets.yaml"),
        "dag: from_secrets\nschedule: null\ndefaults: {retries: 0}\ntasks:\n  - id: write_marker\n    connection: wh\n    sql: \"CREATE TABLE IF NOT EXISTS marker (run TEXT); INSERT INTO marker VALUES ('{{ run_id }}')\"\n  - id: on_postgres\n    connection: pg\n    sql: \"SELECT 1\"\n",
    )
    .expect("dag");
    let (first, second) = (dir.path().join("first.db"), dir.path().join("second.db"));
    for file in [&first, &second] {
        std::fs::write(file, "").expect("an empty SQLite file");
    }
    write_secret(&secrets, "wh", &format!("sqlite:///{}", first.display()));
    write_secret(&secrets, "reports", &format!("postgres://reporter:{}@reports-db:5432/reports", PASSWORDS[1]));
    // `pg` is defined twice: in the database (a port nothing listens on) and in the
    // environment (the local PostgreSQL, which trusts any password); the environment's wins.
    let env = vec![
        ("UPDRAFT__SECRETS__CONNECTIONS_DIR".to_owned(), secrets.display().to_string()),
        ("UPDRAFT__CORE__DAGS_FOLDER".to_owned(), dags.display().to_string()),
        ("UPDRAFT_CONN_PG".to_owned(), format!("postgres://postgres:{}@127.0.0.1:5432/postgres", PASSWORDS[0])),
    ];
    assert!(updraft(&data, &env, &["db", "migrate"]).status.success());
    let out = updraft(
        &data,
        &env,
        &[
            "connections",
            "add",
            "pg",
            "--conn-uri",
            &format!("postgres://postgres:{}@127.0.0.1:1/postgres", PASSWORDS[2]),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let scheduler = Command::new(env!("CARGO_BIN_EXE_updraft"))
        .arg("scheduler")
        .current_dir(workspace())
        .env("UPDRAFT__CORE__DATA_DIR", &data)
        .env_remove("UPDRAFT__DATABASE__URL")
        .env_remove("UPDRAFT_CONFIG")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the scheduler starts");
    let run = |id: &str| {
        wait_for(&format!("run {id} to be triggered"), Duration::from_secs(60), || {
            updraft(&data, &env, &["dags", "trigger", "from_secrets", "--run-id", id]).status.success()
        });
        wait_for(&format!("run {id} to finish"), Duration::from_secs(60), || {
            let states = text(&updraft(&data, &env, &["tasks", "states", "from_secrets", id]).stdout);
            states.lines().count() == 2 && states.lines().all(|l| l.contains("\tsuccess\t") || l.contains("\tfailed\t"))
        });
        text(&updraft(&data, &env, &["tasks", "states", "from_secrets", id]).stdout)
    };
    let states = run("one");
    assert!(states.contains("write_marker\tsuccess") && states.contains("on_postgres\tsuccess"), "{states}");
    assert_eq!(marker(&first), "[('one',)]");

    // The Secret changes under the running scheduler; the next run writes to the new file.
    write_secret(&secrets, "wh", &format!("sqlite:///{}", second.display()));
    let states = run("two");
    assert!(states.contains("write_marker\tsuccess"), "{states}");
    assert_eq!(marker(&second), "[('two',)]");
    assert_eq!(marker(&first), "[('one',)]", "the old file got nothing more");

    let listed = text(&updraft(&data, &env, &["connections", "list"]).stdout);
    assert!(
        listed.contains("pg\tpostgres://postgres:***@127.0.0.1:5432/postgres\tenvironment variable UPDRAFT_CONN_PG"),
        "{listed}"
    );
    assert!(listed.contains("reports\tpostgres://reporter:***@reports-db:5432/reports\tfile "), "{listed}");

    let mut scheduler = scheduler;
    let _ = scheduler.kill();
    let output = scheduler.wait_with_output().expect("scheduler output");
    let mut everything = format!("{listed}{}{}", text(&output.stdout), text(&output.stderr));
    for task in ["write_marker", "on_postgres"] {
        everything.push_str(&task_logs(&data.join("logs"), task));
    }
    assert!(everything.contains("SQL on wh affected"), "the task logs were read:\n{everything}");
    for password in PASSWORDS {
        assert!(!everything.contains(password), "{password} appeared in:\n{everything}");
    }
}

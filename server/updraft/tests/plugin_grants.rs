//! Plugin grants from configuration, and HTTPS: `[plugins.NAME]` tables in `updraft.toml` and
//! `UPDRAFT__PLUGINS__NAME__KEY` environment variables reach `updraft dags test`, the scheduler
//! and `plugins inspect`; the built-in `http` operator reaches a granted HTTPS host whose CA is
//! in `[http] extra_ca_file`, fails clearly without that CA, and is refused a host it was not
//! granted. The example DAGs run to success in `updraft standalone`, the http call included.

mod common;

use common::{HttpsServer, final_state, task_logs, text, wait_for, workspace};

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// `updraft ARGS` on the embedded default in `data`, with `env`.
fn updraft(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_updraft"));
    command
        .args(args)
        .current_dir(workspace())
        .env("UPDRAFT__CORE__DATA_DIR", data)
        .env_remove("UPDRAFT__DATABASE__URL")
        .env_remove("UPDRAFT__CORE__ENCRYPTION_KEY")
        .env_remove("UPDRAFT_CONFIG");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("updraft runs")
}

/// A DAG calling the HTTPS server twice: by address (to be granted) and by name (not).
fn https_dag(dir: &Path, port: u16) -> String {
    let dags = dir.join("dags");
    std::fs::create_dir_all(&dags).expect("dags");
    std::fs::write(
        dags.join("https.yaml"),
        format!(
            "dag: https_calls\nschedule: null\ndefaults: {{retries: 0}}\ntasks:\n  - id: granted\n    operator: http\n    params: {{method: GET, url: \"https://127.0.0.1:{port}/rates\", success_codes: [200]}}\n  - id: not_granted\n    operator: http\n    params: {{method: GET, url: \"https://localhost:{port}/rates\", success_codes: [200]}}\n"
        ),
    )
    .expect("dag");
    dags.display().to_string()
}

#[test]
fn grants_and_the_extra_ca_from_the_configuration_file_reach_dags_test() {
    let server = HttpsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let dags = https_dag(dir.path(), server.port);
    let config = dir.path().join("updraft.toml");
    std::fs::write(
        &config,
        format!(
            "[plugins.http]\nallow_http_hosts = [\"127.0.0.1:{}\"]\n\n[http]\nextra_ca_file = \"{}\"\n",
            server.port,
            server.ca.display()
        ),
    )
    .expect("config");
    let config = config.display().to_string();
    let data = dir.path().join("data");
    let out = updraft(&data, &["--config", &config, "dags", "test", "https_calls", "--dags", &dags], &[]);
    let stdout = text(&out.stdout);
    assert_eq!(final_state(&stdout, "granted"), "success", "{stdout}\n{}", text(&out.stderr));
    assert_eq!(final_state(&stdout, "not_granted"), "failed", "{stdout}");
    let log = task_logs(&data.join("logs"), "not_granted");
    assert!(
        log.contains("capability \"http\" host \"localhost\" is not granted to plugin \"http\": add it to [plugins.http] allow_http_hosts"),
        "{log}"
    );
    assert!(task_logs(&data.join("logs"), "granted").contains("200"), "{}", task_logs(&data.join("logs"), "granted"));

    // `plugins inspect` shows what the configuration grants.
    let out = updraft(&data, &["--config", &config, "plugins", "inspect", "http"], &[]);
    assert!(
        text(&out.stdout).contains(&format!("allow_http_hosts:      127.0.0.1:{}", server.port)),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn without_the_ca_the_https_call_fails_saying_which_setting_trusts_it() {
    let server = HttpsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let dags = https_dag(dir.path(), server.port);
    let data = dir.path().join("data");
    let grant = format!("127.0.0.1:{}", server.port);
    let out = updraft(
        &data,
        &["dags", "test", "https_calls", "--dags", &dags],
        &[("UPDRAFT__PLUGINS__HTTP__ALLOW_HTTP_HOSTS", &grant)],
    );
    assert_eq!(final_state(&text(&out.stdout), "granted"), "failed", "{}", text(&out.stdout));
    let log = task_logs(&data.join("logs"), "granted");
    assert!(log.contains("HTTP request to 127.0.0.1 failed"), "{log}");
    assert!(
        log.contains("is not signed by a CA this server trusts: add that CA to [http] extra_ca_file (UPDRAFT__HTTP__EXTRA_CA_FILE)"),
        "{log}"
    );
}

#[test]
fn grants_and_the_ca_from_the_environment_reach_the_scheduler() {
    let server = HttpsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let dags = https_dag(dir.path(), server.port);
    let data = dir.path().join("data");
    let grant = format!("[\"127.0.0.1:{}\"]", server.port);
    let ca = server.ca.display().to_string();
    let env = [
        ("UPDRAFT__PLUGINS__HTTP__ALLOW_HTTP_HOSTS", grant.as_str()),
        ("UPDRAFT__HTTP__EXTRA_CA_FILE", ca.as_str()),
        ("UPDRAFT__CORE__DAGS_FOLDER", dags.as_str()),
    ];
    assert!(updraft(&data, &["db", "migrate"], &env).status.success());
    let mut scheduler = Command::new(env!("CARGO_BIN_EXE_updraft"))
        .arg("scheduler")
        .current_dir(workspace())
        .env("UPDRAFT__CORE__DATA_DIR", &data)
        .env_remove("UPDRAFT__DATABASE__URL")
        .env_remove("UPDRAFT_CONFIG")
        .envs(env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("scheduler starts");
    // A trigger succeeds once the scheduler has parsed the DAG into the database.
    wait_for("the scheduler to know the DAG and take a trigger", Duration::from_secs(60), || {
        updraft(&data, &["dags", "trigger", "https_calls", "--run-id", "by_env"], &env).status.success()
    });
    let states = || text(&updraft(&data, &["tasks", "states", "https_calls", "by_env"], &env).stdout);
    wait_for("both tasks to finish", Duration::from_secs(60), || {
        let s = states();
        s.contains("granted\tsuccess") && s.contains("not_granted\tfailed")
    });
    let _ = scheduler.kill();
    let _ = scheduler.wait();
}

#[test]
fn the_example_dags_run_to_success_in_standalone_their_http_call_included() {
    // The example's http task calls this server's own API at the README's address.
    assert!(
        std::net::TcpListener::bind("127.0.0.1:8080").is_ok(),
        "port 8080 is taken: stop whatever listens there (the example DAG calls http://127.0.0.1:8080)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let out = updraft(&data, &["standalone", "--exit-when-idle"], &[("UPDRAFT_ADMIN_PASSWORD", "a long password")]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let last = stdout.lines().rfind(|l| l.contains("mixed_operators")).unwrap_or_default();
    assert!(last.contains("mixed_operators success (5 tasks: 5 success)"), "{stdout}");
    let runs = text(&updraft(&data, &["dags", "list-runs", "mixed_operators"], &[]).stdout);
    let run_id = runs.split_whitespace().next().expect("a run");
    let states = text(&updraft(&data, &["tasks", "states", "mixed_operators", run_id], &[]).stdout);
    assert!(states.contains("fetch_rates\tsuccess"), "{states}");
    assert!(
        task_logs(&data.join("logs"), "fetch_rates").contains("200"),
        "{}",
        task_logs(&data.join("logs"), "fetch_rates")
    );
}

//! The `updraft` binary, run as a user runs it: exit codes and output of `dags list|validate|show`
//! on the examples, on every invalid fixture under `tests/fixtures/invalid`, on hostile files,
//! and on the 10,000-task seed workload; the database, secrets and plugins commands.

mod common;

use common::{text, workspace};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn updraft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_updraft")).args(args).current_dir(workspace()).output().expect("runs updraft")
}

#[test]
fn examples_are_valid_even_in_strict_mode() {
    let out = updraft(&["dags", "validate", "--strict", "--dags", "examples/dags"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("✓ orders_daily: 12 tasks, 16 edges, 3 external tables, 5 layers"), "{stdout}");
    assert!(stdout.contains("✓ mixed_operators: 5 tasks"), "{stdout}");
    assert!(stdout.contains("✓ trigger_rules: 11 tasks, 24 edges, 0 external tables, 3 layers"), "{stdout}");
    assert!(stdout.contains("3 valid DAG(s), 0 invalid, 0 warning(s)"), "{stdout}");
}

#[test]
fn every_invalid_fixture_fails_with_its_message() {
    let root = workspace().join("tests/fixtures/invalid");
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(&root).expect("fixtures").map(|e| e.expect("entry").path()).collect();
    cases.sort();
    assert!(cases.len() >= 10, "fixtures missing");
    for case in cases {
        let name = case.file_name().and_then(|n| n.to_str()).expect("name").to_owned();
        let relative = format!("tests/fixtures/invalid/{name}");
        let mut args = vec!["dags", "validate", relative.as_str()];
        if case.join("strict").exists() {
            args.push("--strict");
        }
        let out = updraft(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: expected exit 1\n{stderr}");
        let expected = std::fs::read_to_string(case.join("expected.txt")).expect("expected.txt");
        for line in expected.lines().filter(|l| !l.trim().is_empty()) {
            assert!(stderr.contains(line), "{name}: missing\n  {line}\nin\n{stderr}");
        }
    }
}

#[test]
fn one_bad_file_does_not_hide_the_other_dags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let examples = workspace().join("examples/dags");
    copy_dir(&examples, dir.path());
    std::fs::write(dir.path().join("broken.yaml"), "dag: broken\ntasks: [{id: a, operator: noop, upstream: [nope]}]\n")
        .expect("write");
    std::fs::write(dir.path().join("binary.yaml"), b"dag: x\n\xff\xfe oops\n").expect("write");
    let big = "# padding\n".repeat(5 * 1024 * 1024);
    std::fs::write(dir.path().join("huge.yaml"), big).expect("write");
    let path = dir.path().to_str().expect("utf-8 path");
    let out = updraft(&["dags", "validate", path]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("3 valid DAG(s), 3 invalid"), "{stdout}");
    assert!(stderr.contains("binary.yaml:2:1: error: file is not valid UTF-8"), "{stderr}");
    assert!(stderr.contains("huge.yaml:1:1: error: file is larger than the 8 MiB limit"), "{stderr}");
    assert!(stderr.contains("broken.yaml:2:44: error: `upstream` names a missing task `nope`"), "{stderr}");
    let out = updraft(&["dags", "list", "--dags", path]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("orders_daily"));
    assert!(text(&out.stderr).contains("3 DAG file(s) failed to load"), "{}", text(&out.stderr));
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

#[test]
fn show_prints_tree_dot_and_the_graph_json() {
    let out = updraft(&["dags", "show", "orders_daily", "--dags", "examples/dags", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let graph: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(graph["task_count"], 12);
    assert_eq!(graph["edge_count"], 16);
    assert_eq!(graph["layer_count"], 5);
    let nodes = graph["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 15, "12 tasks and 3 external tables");
    let dashboard = nodes.iter().find(|n| n["id"] == "exec_dashboard").expect("node");
    assert_eq!((dashboard["kind"].as_str(), dashboard["layer"].as_u64()), (Some("task"), Some(4)));
    assert_eq!(graph["external_tables"], serde_json::json!(["orders", "products", "users"]));
    assert_eq!(graph["edges"].as_array().expect("edges").len(), 16 + 3);
    // Positions from the layout: every box inside the drawing, every edge pointing right.
    assert_eq!(dashboard["group"], "tasks/reports");
    assert_eq!((graph["node_width"].as_u64(), graph["node_height"].as_u64()), (Some(160), Some(36)));
    let (width, height) = (graph["width"].as_u64().expect("width"), graph["height"].as_u64().expect("height"));
    for node in nodes {
        let (x, y) = (node["x"].as_u64().expect("x"), node["y"].as_u64().expect("y"));
        assert!(x + 160 <= width && y + 36 <= height, "{node}");
    }
    let x = |id: &serde_json::Value| nodes.iter().find(|n| n["id"] == *id).and_then(|n| n["x"].as_u64()).expect("node");
    for edge in graph["edges"].as_array().expect("edges") {
        assert!(x(&edge["source"]) < x(&edge["target"]), "{edge}");
    }

    let dot = text(&updraft(&["dags", "show", "orders_daily", "--dags", "examples/dags", "--format", "dot"]).stdout);
    assert!(dot.starts_with("digraph \"orders_daily\" {"), "{dot}");
    assert!(dot.contains("\"user_orders\" -> \"user_ltv\";"), "{dot}");
    let tree = text(&updraft(&["dags", "show", "orders_daily", "--dags", "examples/dags"]).stdout);
    assert!(tree.contains("layer 4\n  exec_dashboard (sql) ← "), "{tree}");

    let out = updraft(&["dags", "show", "nope", "--dags", "examples/dags"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("no DAG `nope` in examples/dags; DAGs there: mixed_operators, orders_daily, trigger_rules"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn missing_dags_folder_says_what_to_do() {
    let out = updraft(&["dags", "list", "--dags", "no/such/folder"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("DAGs folder `no/such/folder` does not exist: pass --dags DIR or set UPDRAFT__CORE__DAGS_FOLDER")
    );
}

#[test]
fn help_is_everywhere() {
    for args in [
        &["--help"][..],
        &["dags", "--help"],
        &["dags", "list", "--help"],
        &["dags", "validate", "--help"],
        &["dags", "show", "--help"],
    ] {
        let out = updraft(args);
        assert!(out.status.success(), "{args:?}");
        assert!(text(&out.stdout).contains("Usage: updraft"), "{args:?}");
    }
}

#[test]
fn the_10k_seed_workload_validates_with_its_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let generator = workspace().join("../shared/workloads/make_seed.py");
    let out_dir = dir.path().join("seed-10k");
    let made = Command::new("python3")
        .arg(&generator)
        .args(["--tasks", "10000", "--out"])
        .arg(&out_dir)
        .output()
        .expect("python3 runs make_seed.py (the workload generator beside the repository)");
    assert!(made.status.success(), "{}", text(&made.stderr));
    let out = updraft(&["dags", "validate", "--strict", out_dir.to_str().expect("utf-8")]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("✓ seed_10000: 10000 tasks, 18948 edges, 100 external tables, 20 layers"), "{stdout}");
    // The drawing of 10,000 tasks: every node placed, and a JSON the browser can fetch.
    let out = updraft(&["dags", "show", "seed_10000", "--dags", out_dir.to_str().expect("utf-8"), "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.len() < 4_000_000, "{} bytes of graph JSON", out.stdout.len());
    let graph: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let nodes = graph["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 10_100);
    assert!(
        nodes.iter().all(|n| n["x"].is_u64() && n["y"].is_u64() && n["group"].is_string() != (n["kind"] == "external"))
    );
}

fn updraft_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_updraft"));
    command
        .args(args)
        .current_dir(workspace())
        .env_remove("UPDRAFT__DATABASE__URL")
        .env_remove("UPDRAFT__CORE__ENCRYPTION_KEY");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("runs updraft")
}

#[test]
fn db_migrate_and_check_on_the_embedded_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8");
    let out = updraft_env(&["db", "check", "--data-dir", data], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("no schema yet"));
    assert!(text(&out.stderr).contains("run `updraft db migrate`"));
    for _ in 0..2 {
        let out = updraft_env(&["db", "migrate", "--data-dir", data], &[]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), "schema at version 4, current");
    }
    let out = updraft_env(&["db", "check", "--wait", "5", "--data-dir", data], &[]);
    assert!(out.status.success());
    // A bare `--wait`, as the product reference writes it (300 s), returns at once when current.
    let out = updraft_env(&["db", "check", "--wait", "--data-dir", data], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).trim().ends_with(", current"), "{}", text(&out.stdout));
}

#[test]
fn db_check_says_what_it_waits_for_and_gives_up_when_the_time_is_up() {
    // A host that does not resolve: every attempt fails at once, with the reason.
    let url = "postgres://postgres:secret@updraft-db.invalid:5432/updraft";
    let env = [("UPDRAFT__DATABASE__URL", url)];
    let started = std::time::Instant::now();
    let out = updraft_env(&["db", "check", "--wait", "2"], &env);
    let elapsed = started.elapsed();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        elapsed >= std::time::Duration::from_secs(2) && elapsed < std::time::Duration::from_secs(10),
        "{elapsed:?}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    let reason = "cannot connect to the metadata database postgres://postgres:***@updraft-db.invalid:5432/updraft";
    assert!(lines[0].starts_with(&format!("waiting for the metadata database (0 s of 2 s): {reason}")), "{stderr}");
    // The same reason is said once, not every half second, and no password ever.
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[1].starts_with(&format!("error: gave up after 2 s: {reason}")), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");

    // Without --wait, one look and the error.
    let out = updraft_env(&["db", "check"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with(&format!("error: {reason}")), "{}", text(&out.stderr));
    // A URL no wait can fix fails at once.
    let started = std::time::Instant::now();
    let out = updraft_env(&["db", "check", "--wait"], &[("UPDRAFT__DATABASE__URL", "mysql://x@y/z")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(text(&out.stderr).contains("unsupported database URL"), "{}", text(&out.stderr));
}

#[test]
fn secrets_commands_on_postgres_never_print_passwords() {
    let name = format!("updraft_cli_{}", std::process::id());
    let admin = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("psql runs");
    assert!(admin.status.success(), "PostgreSQL must run at 127.0.0.1:5432: {}", text(&admin.stderr));
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let env = [("UPDRAFT__DATABASE__URL", url.as_str()), ("UPDRAFT__CORE__ENCRYPTION_KEY", key)];
    let run = |args: &[&str]| updraft_env(args, &env);
    let out = run(&["variables", "list"]);
    assert!(
        text(&out.stderr).contains("the metadata database is not ready (no schema yet): run `updraft db migrate`"),
        "{}",
        text(&out.stderr)
    );
    assert!(run(&["db", "migrate"]).status.success());
    let out = run(&["connections", "add", "warehouse", "--conn-uri", "postgres://etl:hunter2@db:5432/analytics"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "connection `warehouse` added: postgres://etl:***@db:5432/analytics");
    let out = run(&["connections", "list"]);
    assert!(!text(&out.stdout).contains("hunter2") && text(&out.stdout).contains("warehouse"));
    let out = run(&["connections", "add", "warehouse", "--conn-uri", "postgres://x@y/z"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("connection `warehouse` already exists"));
    assert!(run(&["variables", "set", "region", "eu-west-1"]).status.success());
    assert_eq!(text(&run(&["variables", "get", "region"]).stdout).trim(), "eu-west-1");
    let wrong_key = updraft_env(
        &["variables", "get", "region"],
        &[
            ("UPDRAFT__DATABASE__URL", url.as_str()),
            ("UPDRAFT__CORE__ENCRYPTION_KEY", "HwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ],
    );
    assert!(
        text(&wrong_key.stderr).contains("cannot be decrypted with this encryption key"),
        "{}",
        text(&wrong_key.stderr)
    );
    assert!(run(&["connections", "delete", "warehouse"]).status.success());
    let _ = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"])
        .arg(format!("DROP DATABASE {name} WITH (FORCE)"))
        .output();
}

#[test]
fn connections_and_variables_from_the_environment_and_a_secret_directory_win_and_stay_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data").display().to_string();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(secrets.join("connections/..data")).expect("a Secret volume's bookkeeping");
    std::fs::create_dir_all(secrets.join("variables")).expect("dir");
    std::fs::write(secrets.join("connections/reports"), "postgres://rep:filepass@reports-db:5432/r\n").expect("w");
    std::fs::write(secrets.join("variables/threshold"), "0.25\n").expect("w");
    let (connections_dir, variables_dir) =
        (secrets.join("connections").display().to_string(), secrets.join("variables").display().to_string());
    let env = [
        ("UPDRAFT__CORE__DATA_DIR", data.as_str()),
        ("UPDRAFT__SECRETS__CONNECTIONS_DIR", connections_dir.as_str()),
        ("UPDRAFT__SECRETS__VARIABLES_DIR", variables_dir.as_str()),
        (
            "UPDRAFT_CONN_WAREHOUSE",
            r#"{"conn_type": "postgres", "host": "wh-db", "login": "etl", "password": "envpass"}"#,
        ),
        ("UPDRAFT_VAR_REGION", "eu-west-1"),
    ];
    let run = |args: &[&str]| updraft_env(args, &env);
    assert!(run(&["db", "migrate"]).status.success());
    // A SQLite connection's relative path is stored absolute (every process finds the file).
    let out = run(&["connections", "add", "local", "--conn-uri", "sqlite:///warehouse/local.db"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let absolute = workspace().join("warehouse/local.db");
    assert!(text(&out.stdout).contains(&absolute.display().to_string()), "{}", text(&out.stdout));
    let out = run(&["connections", "list"]);
    let listed = text(&out.stdout);
    assert!(listed.starts_with("ID\tURI\tSOURCE\n"), "{listed}");
    assert!(
        listed.contains("warehouse\tpostgres://etl:***@wh-db\tenvironment variable UPDRAFT_CONN_WAREHOUSE"),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("reports\tpostgres://rep:***@reports-db:5432/r\tfile {connections_dir}/reports")),
        "{listed}"
    );
    assert!(listed.contains("local\tsqlite://") && listed.contains("metadata database"), "{listed}");
    let out = run(&["connections", "delete", "warehouse"]);
    assert!(text(&out.stderr).contains("comes from the environment variable UPDRAFT_CONN_WAREHOUSE: remove it there"));
    assert_eq!(text(&run(&["variables", "get", "region"]).stdout).trim(), "eu-west-1");
    assert_eq!(text(&run(&["variables", "get", "threshold"]).stdout).trim(), "0.25");
    let variables = text(&run(&["variables", "list"]).stdout);
    assert!(variables.contains("region\tenvironment variable UPDRAFT_VAR_REGION"), "{variables}");
    for output in [listed, variables] {
        for secret in ["envpass", "filepass", "eu-west-1", "0.25"] {
            assert!(!output.contains(secret), "{secret} printed: {output}");
        }
    }
}

#[test]
fn a_closed_pipe_ends_output_without_a_panic() {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_updraft"))
        .args(["dags", "show", "orders_daily", "--dags", "examples/dags", "--format", "dot"])
        .current_dir(workspace())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    // Read nothing and close the pipe at once, like `| grep -q` after its first match.
    drop(child.stdout.take());
    let status = child.wait().expect("waits");
    let mut stderr = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("reads");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.success(), "{stderr}");
}

#[test]
fn a_configuration_file_sets_defaults_below_the_environment_and_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let from_file = dir.path().join("from-file");
    let from_env = dir.path().join("from-env");
    let config = dir.path().join("updraft.toml");
    std::fs::write(&config, format!("[core]\ndata_dir = \"{}\"\n", from_file.display())).expect("write");
    let config = config.to_str().expect("utf-8");
    let out = updraft_env(&["db", "migrate", "--config", config], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(from_file.join("updraft.db").exists() || from_file.read_dir().is_ok_and(|mut d| d.next().is_some()));
    let out = updraft_env(
        &["db", "migrate"],
        &[("UPDRAFT_CONFIG", config), ("UPDRAFT__CORE__DATA_DIR", from_env.to_str().expect("utf-8"))],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(from_env.read_dir().is_ok_and(|mut d| d.next().is_some()), "the environment overrides the file");
    let out = updraft_env(
        &["db", "check", "--config", config, "--data-dir", dir.path().join("none").to_str().expect("utf-8")],
        &[],
    );
    assert!(text(&out.stdout).contains("no schema yet"), "a flag overrides the file");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[core]\ndatadir = \"/x\"\n").expect("write");
    let out = updraft_env(&["db", "migrate", "--config", bad.to_str().expect("utf-8")], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown setting `core.datadir`: the known settings are"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("core.data_dir"));
    std::fs::write(&bad, "[core\n").expect("write");
    let out = updraft_env(&["db", "migrate", "--config", bad.to_str().expect("utf-8")], &[]);
    assert!(text(&out.stderr).contains("in the configuration file"), "{}", text(&out.stderr));
}

#[test]
fn standalone_creates_an_admin_once_and_serves_the_api() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let start = |extra: &[&str], out: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_updraft"));
        command
            .args(["standalone", "--dags", "tests/fixtures/api/client.yaml", "--port", &port.to_string()])
            .arg("--data-dir")
            .arg(&data)
            .args(extra)
            .current_dir(workspace())
            .stdout(std::fs::File::create(dir.path().join(out)).expect("out"))
            .stderr(std::process::Stdio::null());
        for name in [
            "UPDRAFT__DATABASE__URL",
            "UPDRAFT__CORE__ENCRYPTION_KEY",
            "UPDRAFT__API__JWT_SECRET",
            "UPDRAFT_ADMIN_PASSWORD",
        ] {
            command.env_remove(name);
        }
        command.spawn().expect("starts standalone")
    };
    let mut first = start(&[], "first.txt");
    let file = data.join("standalone_admin_password.txt");
    common::wait_for("the API server", std::time::Duration::from_secs(60), || {
        file.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let password = std::fs::read_to_string(&file).expect("password file").trim().to_owned();
    assert_eq!(password.len(), 20);
    let body = format!(r#"{{"username": "admin", "password": "{password}"}}"#);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "POST /auth/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains("access_token"), "{answer}");
    // The API server's request latencies, read by the Prometheus client library's parser.
    let (status, metrics) = common::http_get(port, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{metrics}");
    let samples = common::prometheus_samples(&metrics);
    assert_eq!(samples["type:updraft_api_request_duration_seconds"], "histogram", "{metrics}");
    let token =
        r#"updraft_api_request_duration_seconds_count{"method": "POST", "route": "/auth/token", "status": "2xx"}"#;
    assert_eq!(samples[token], 1.0, "{metrics}");
    let _ = first.kill();
    let _ = first.wait();
    let printed = std::fs::read_to_string(dir.path().join("first.txt")).expect("stdout");
    assert!(printed.contains(&format!("created user `admin` (role admin) with password: {password}")), "{printed}");

    let out = start(&["--exit-when-idle"], "second.txt").wait_with_output().expect("second start");
    assert!(out.status.success());
    let printed = std::fs::read_to_string(dir.path().join("second.txt")).expect("stdout");
    assert!(!printed.contains("password"), "the password is printed only once: {printed}");
}

fn guest(stem: &str) -> PathBuf {
    Path::new(updraft_plugin_host::GUEST_DIR).join(format!("{stem}.wasm"))
}

#[test]
fn plugins_commands_manage_the_plugin_store_of_the_metadata_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8");
    let v1 = guest("fixture_versioned_v1");
    let v1 = v1.to_str().expect("utf-8");
    let plugins = |args: &[&str]| {
        let mut all = vec!["plugins"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--data-dir", data]);
        updraft_env(&all, &[])
    };

    // The store is in the metadata database: without one, the commands say what to do.
    let out = plugins(&["install", v1]);
    assert_eq!(out.status.code(), Some(1));
    let error = text(&out.stderr);
    assert!(error.contains("operator plugins are kept in the metadata database"), "{error}");
    assert!(error.contains("run `updraft db migrate`"), "{error}");
    let unreachable = updraft_env(
        &["plugins", "list", "--data-dir", data],
        &[("UPDRAFT__DATABASE__URL", "postgres://postgres@127.0.0.1:1/nowhere")],
    );
    assert_eq!(unreachable.status.code(), Some(1));
    let error = text(&unreachable.stderr);
    assert!(
        error.contains("cannot connect to the metadata database postgres://postgres@127.0.0.1:1/nowhere"),
        "{error}"
    );
    assert!(error.contains("UPDRAFT__DATABASE__URL"), "{error}");
    let out = updraft_env(&["db", "migrate", "--data-dir", data], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // validate needs no database.
    let bad = dir.path().join("bad.wasm");
    std::fs::write(&bad, b"nope").expect("write");
    let bad = bad.to_str().expect("utf-8");
    assert!(updraft(&["plugins", "validate", v1]).status.success());
    let out = updraft(&["plugins", "validate", v1, bad]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("invalid: ") && text(&out.stdout).contains("bad.wasm"), "{}", text(&out.stdout));

    // install writes the store (not a folder) and says so, also from standard input (what
    // `kubectl exec -i … -- updraft plugins install /dev/stdin < FILE` does); a bad file is
    // refused.
    let out = Command::new(env!("CARGO_BIN_EXE_updraft"))
        .args(["plugins", "install", "/dev/stdin", "--data-dir", data])
        .env_remove("UPDRAFT__DATABASE__URL")
        .stdin(std::fs::File::open(v1).expect("fixture"))
        .output()
        .expect("runs updraft");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.starts_with("installed versioned 1.0.0 (sha256 ") && said.contains("into the plugin store"), "{said}");
    let out = plugins(&["install", v1]);
    assert_eq!(text(&out.stdout), said, "installing the same file again changes nothing but who installed it");
    assert!(!Path::new(data).join("plugins").exists());
    let out = plugins(&["install", bad]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a valid WebAssembly component"), "{}", text(&out.stderr));

    // list and inspect say where each operator comes from.
    let out = plugins(&["list", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let find = |listed: &serde_json::Value, name: &str| {
        listed["operators"].as_array().and_then(|o| o.iter().find(|o| o["name"] == name).cloned())
    };
    let versioned = find(&listed, "versioned").expect("listed");
    assert_eq!(versioned["origin"], "store");
    assert!(versioned["installed_by"].as_str().is_some_and(|b| b.starts_with("cli ")), "{versioned}");
    assert_eq!(versioned["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(find(&listed, "sql").expect("built-in")["origin"], "builtin");
    let out = plugins(&["inspect", "versioned"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    for line in ["name:         versioned", "version:      1.0.0", "source:       store ", "installed by: cli "] {
        assert!(shown.contains(line), "{line:?} in:\n{shown}");
    }
    let out = plugins(&["inspect", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no operator named \"nope\""), "{}", text(&out.stderr));

    // The drop-in folder: a valid file is imported, an invalid one makes `list` exit 1.
    let folder = Path::new(data).join("plugins");
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::copy(guest("fixture_caps"), folder.join("caps.wasm")).expect("copy");
    std::fs::write(folder.join("broken.wasm"), b"\0asm broken").expect("write");
    let out = plugins(&["list"]);
    assert_eq!(out.status.code(), Some(1), "an invalid file makes `list` exit 1");
    let table = text(&out.stdout);
    assert!(table.lines().any(|l| l.starts_with("caps ") && l.contains("store ")), "{table}");
    assert!(table.contains("INVALID ") && table.contains("broken.wasm"), "{table}");
    std::fs::remove_file(folder.join("broken.wasm")).expect("rm");
    let out = plugins(&["inspect", "caps", "--output", "json"]);
    let caps: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(caps["installed_by"].as_str().is_some_and(|b| b.starts_with("folder ")), "{caps}");

    // `dags validate` checks operators against the store too, when a database is configured.
    let dag = "tests/fixtures/scheduler/plugin_store.yaml";
    let out = updraft_env(&["dags", "validate", dag, "--data-dir", data], &[]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let elsewhere = dir.path().join("no-database");
    let out = updraft_env(&["dags", "validate", dag, "--data-dir", elsewhere.to_str().expect("utf-8")], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("uses operator `versioned`, which is not installed"), "{}", text(&out.stderr));
    assert!(!elsewhere.exists(), "validate creates no database");

    // delete removes from the store; built-ins stay.
    let out = plugins(&["delete", "versioned"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = plugins(&["delete", "versioned"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no operator `versioned` in the plugin store"), "{}", text(&out.stderr));
    let out = plugins(&["delete", "noop"]);
    assert!(text(&out.stderr).contains("`noop` is a built-in operator"), "{}", text(&out.stderr));
    let listed: serde_json::Value =
        serde_json::from_slice(&plugins(&["list", "--output", "json"]).stdout).expect("JSON");
    assert!(find(&listed, "versioned").is_none() && find(&listed, "noop").is_some());

    let out = updraft(&["plugins", "new", "hello_op", "--dir", dir.path().to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.path().join("hello_op/src/lib.rs").is_file());
}

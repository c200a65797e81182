//! The scheduler and the local executor, run as users run them (`updraft dags test`,
//! `updraft scheduler`), on SQLite and on the PostgreSQL at 127.0.0.1:5432: trigger rules,
//! retries with backoff, pools, timeouts, a scheduler killed mid-run, and two schedulers
//! sharing one run.

mod common;

use common::{psql, text, wait_for, workspace};

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A metadata database for one test: a data folder, and on PostgreSQL a fresh database.
struct Meta {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    pg: Option<String>,
}

impl Meta {
    fn new(postgres: bool, name: &str) -> Meta {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut env = vec![("UPDRAFT__CORE__DATA_DIR".to_owned(), dir.path().display().to_string())];
        let mut pg = None;
        if postgres {
            let db = format!("updraft_sched_{name}_{}", std::process::id());
            let out = psql(&format!("CREATE DATABASE {db}"), "postgres");
            assert!(out.status.success(), "PostgreSQL must run at 127.0.0.1:5432: {}", text(&out.stderr));
            env.push(("UPDRAFT__DATABASE__URL".into(), format!("postgres://postgres@127.0.0.1:5432/{db}")));
            env.push(("UPDRAFT__CORE__ENCRYPTION_KEY".into(), "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into()));
            pg = Some(db);
        }
        let meta = Meta { dir, env, pg };
        assert!(meta.run(&["db", "migrate"]).status.success());
        meta
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_updraft"));
        command
            .args(args)
            .current_dir(workspace())
            .env_remove("UPDRAFT__DATABASE__URL")
            .env_remove("UPDRAFT__CORE__ENCRYPTION_KEY");
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("runs updraft")
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }
}

impl Drop for Meta {
    fn drop(&mut self) {
        if let Some(db) = &self.pg {
            let _ = psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"), "postgres");
        }
    }
}

/// The last state `dags test` printed for each task.
fn final_states(stdout: &str) -> HashMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let time = parts.next()?;
            time.strip_suffix('s')?.parse::<f64>().ok()?;
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .map(|(state, task)| (task, state))
        .collect()
}

#[test]
fn trigger_rules_on_both_databases() {
    for postgres in [false, true] {
        let meta = Meta::new(postgres, "rules");
        let out = meta.run(&["dags", "test", "trigger_rules", "--dags", "examples/dags"]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
        let states = final_states(&stdout);
        let expected = [
            ("succeeds", "success"),
            ("fails", "failed"),
            ("on_all_success", "upstream_failed"),
            ("on_all_failed", "skipped"),
            ("on_all_done", "success"),
            ("on_one_success", "success"),
            ("on_one_failed", "success"),
            ("on_none_failed", "upstream_failed"),
            ("on_none_skipped", "success"),
            ("always", "success"),
            ("summary", "success"),
        ];
        for (task, state) in expected {
            assert_eq!(states.get(task).map(String::as_str), Some(state), "postgres={postgres} {task}\n{stdout}");
        }
        assert!(stdout.contains("run test__") && stdout.contains(": success in "), "{stdout}");
    }
}

#[test]
fn retries_back_off_then_fail_and_keep_each_try_log() {
    for postgres in [false, true] {
        let meta = Meta::new(postgres, "retries");
        let started = Instant::now();
        let out = meta.run(&["dags", "test", "retries", "--dags", "tests/fixtures/scheduler/retries.yaml"]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert_eq!(stdout.matches("up_for_retry     flaky").count(), 2, "{stdout}");
        let states = final_states(&stdout);
        assert_eq!(states.get("flaky").map(String::as_str), Some("failed"));
        assert_eq!(states.get("after").map(String::as_str), Some("upstream_failed"));
        // Exponential backoff from 1s: at least 1s before try 2 and 2s before try 3.
        assert!(started.elapsed() >= Duration::from_secs(3), "{:?}", started.elapsed());
        let run_dir = std::fs::read_dir(meta.logs().join("dag_id=retries"))
            .expect("logs")
            .next()
            .expect("run")
            .expect("entry")
            .path();
        for attempt in 1..=3 {
            let log = std::fs::read_to_string(run_dir.join("task_id=flaky").join(format!("attempt={attempt}.log")))
                .expect("each try has its log");
            assert!(log.contains("failed: boom"), "{log}");
        }
    }
}

#[test]
fn a_pool_with_one_slot_runs_one_task_at_a_time() {
    for postgres in [false, true] {
        let meta = Meta::new(postgres, "pools");
        assert!(meta.run(&["pools", "set", "single", "1"]).status.success());
        let out = meta.run(&["dags", "test", "pools", "--dags", "tests/fixtures/scheduler/pools.yaml"]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
        let mut running = 0;
        for line in stdout.lines() {
            if line.contains(" running ") {
                running += 1;
                assert_eq!(running, 1, "two tasks of a one-slot pool ran at once:\n{stdout}");
            } else if line.contains(" success ") && !line.starts_with("run ") {
                running -= 1;
            }
        }
    }
}

#[test]
fn execution_timeout_stops_a_try() {
    for postgres in [false, true] {
        let meta = Meta::new(postgres, "timeouts");
        let started = Instant::now();
        let out = meta.run(&["dags", "test", "timeouts", "--dags", "tests/fixtures/scheduler/timeouts.yaml"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(started.elapsed() < Duration::from_secs(20), "the 30 s sleep was not stopped");
        let run_dir = std::fs::read_dir(meta.logs().join("dag_id=timeouts"))
            .expect("logs")
            .next()
            .expect("run")
            .expect("entry")
            .path();
        let log = std::fs::read_to_string(run_dir.join("task_id=slow/attempt=1.log")).expect("log");
        assert!(log.contains("timed out: stopped after its execution_timeout of 1s"), "postgres={postgres}: {log}");
    }
}

fn scheduler(meta: &Meta, dags: &str) -> Child {
    meta.command(&["scheduler", "--dags", dags])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts the scheduler")
}

fn run_state(meta: &Meta, dag: &str) -> String {
    let out = meta.run(&["dags", "list-runs", dag]);
    text(&out.stdout).lines().next().and_then(|l| l.split('\t').nth(1)).unwrap_or_default().to_owned()
}

#[test]
fn a_killed_scheduler_is_replaced_and_the_run_finishes() {
    let meta = Meta::new(false, "crash");
    let mut first = scheduler(&meta, "tests/fixtures/scheduler/chain.yaml");
    wait_for("the scheduler to register the DAG", Duration::from_secs(60), || {
        meta.run(&["dags", "trigger", "chain", "--run-id", "crash"]).status.success()
    });
    let logs = meta.logs().join("dag_id=chain/run_id=crash");
    wait_for("two tasks to finish", Duration::from_secs(60), || {
        ["s01", "s02"].iter().all(|t| {
            std::fs::read_to_string(logs.join(format!("task_id={t}/attempt=1.log")))
                .is_ok_and(|l| l.contains("success"))
        })
    });
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    assert_eq!(run_state(&meta, "chain"), "running");
    let mut second = scheduler(&meta, "tests/fixtures/scheduler/chain.yaml");
    wait_for("the run to finish under the new scheduler", Duration::from_secs(90), || {
        run_state(&meta, "chain") == "success"
    });
    second.kill().expect("stop");
    let _ = second.wait();
    // Finished tasks kept their single try; the rest ran under the new scheduler.
    assert!(!logs.join("task_id=s01/attempt=2.log").exists(), "a finished task ran again");
    assert!(logs.join("task_id=s06/attempt=1.log").exists() || logs.join("task_id=s06/attempt=2.log").exists());
}

#[test]
fn two_schedulers_on_postgres_run_each_task_instance_once() {
    let meta = Meta::new(true, "ha");
    let dags = meta.dir.path().join("dags");
    std::fs::create_dir_all(&dags).expect("mkdir");
    let mut yaml = String::from("dag: wide\ndefaults: {operator: noop}\ntasks:\n");
    for i in 0..2000 {
        if i < 20 {
            yaml.push_str(&format!("  - {{id: t{i}}}\n"));
        } else {
            yaml.push_str(&format!("  - {{id: t{i}, upstream: [t{}]}}\n", i % 20));
        }
    }
    std::fs::write(dags.join("wide.yaml"), yaml).expect("write");
    let dags = dags.display().to_string();
    let mut a = scheduler(&meta, &dags);
    let mut b = scheduler(&meta, &dags);
    wait_for("the DAG to be registered", Duration::from_secs(60), || {
        meta.run(&["dags", "trigger", "wide", "--run-id", "ha"]).status.success()
    });
    wait_for("the 2,000-task run to finish", Duration::from_secs(180), || run_state(&meta, "wide") == "success");
    for child in [&mut a, &mut b] {
        child.kill().expect("stop");
        let _ = child.wait();
    }
    let db = meta.pg.clone().expect("postgres");
    let counts = text(
        &psql(
            "SELECT count(*), sum(CASE WHEN try_number = 1 AND state = 'success' THEN 1 ELSE 0 END) FROM task_instance",
            &db,
        )
        .stdout,
    );
    assert_eq!(counts.trim(), "2000|2000", "every task instance ran exactly once, successfully");
    let tries = std::fs::read_dir(meta.logs().join("dag_id=wide/run_id=ha")).expect("logs").count();
    assert_eq!(tries, 2000);
}

/// `updraft tasks states`: task id → (state, try number).
fn task_states(meta: &Meta, dag: &str, run: &str) -> HashMap<String, (String, u32)> {
    let out = meta.run(&["tasks", "states", dag, run]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut parts = l.split('\t');
            let task = parts.next()?.to_owned();
            let state = parts.next()?.to_owned();
            Some((task, (state, parts.next()?.parse().ok()?)))
        })
        .collect()
}

fn state_of(states: &HashMap<String, (String, u32)>, task: &str) -> (String, u32) {
    states.get(task).cloned().unwrap_or_else(|| panic!("no task {task} in {states:?}"))
}

fn ok(meta: &Meta, args: &[&str]) -> String {
    let out = meta.run(args);
    assert!(out.status.success(), "updraft {}: {}\n{}", args.join(" "), text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn clearing_and_marking_tasks_reruns_them_and_sets_states_on_both_databases() {
    for postgres in [false, true] {
        let meta = Meta::new(postgres, "clear");
        let mut scheduler = scheduler(&meta, "tests/fixtures/scheduler/clear_mark.yaml");
        wait_for("the scheduler to register the DAG", Duration::from_secs(60), || {
            meta.run(&["dags", "trigger", "clear_mark", "--run-id", "cm"]).status.success()
        });
        wait_for("the run to fail", Duration::from_secs(60), || run_state(&meta, "clear_mark") == "failed");
        let states = task_states(&meta, "clear_mark", "cm");
        assert_eq!(state_of(&states, "extract"), ("success".into(), 1));
        assert_eq!(state_of(&states, "transform"), ("failed".into(), 1));
        assert_eq!(state_of(&states, "load"), ("upstream_failed".into(), 0));

        // Marking the failed task success leaves its decided downstream as it is (Airflow's rule).
        ok(&meta, &["tasks", "mark", "clear_mark", "cm", "transform", "--state", "success", "--wait"]);
        wait_for("the run to be decided again", Duration::from_secs(30), || run_state(&meta, "clear_mark") == "failed");
        assert_eq!(state_of(&task_states(&meta, "clear_mark", "cm"), "transform"), ("success".into(), 1));

        // Clearing the downstream task runs it; the run succeeds.
        ok(&meta, &["tasks", "clear", "clear_mark", "cm", "load", "--wait"]);
        wait_for("the cleared run to succeed", Duration::from_secs(60), || run_state(&meta, "clear_mark") == "success");
        let states = task_states(&meta, "clear_mark", "cm");
        assert_eq!(state_of(&states, "load"), ("success".into(), 1));
        assert_eq!(state_of(&states, "extract"), ("success".into(), 1), "a task not cleared does not run again");

        // Clearing a task with its downstream runs all three again, each as its next try.
        ok(&meta, &["tasks", "clear", "clear_mark", "cm", "extract", "--downstream", "--wait"]);
        wait_for("the re-run to fail again", Duration::from_secs(60), || {
            run_state(&meta, "clear_mark") == "failed"
                && state_of(&task_states(&meta, "clear_mark", "cm"), "transform") == ("failed".into(), 2)
        });
        let states = task_states(&meta, "clear_mark", "cm");
        assert_eq!(state_of(&states, "extract"), ("success".into(), 2));
        assert_eq!(state_of(&states, "load"), ("upstream_failed".into(), 1));
        let logs = meta.logs().join("dag_id=clear_mark/run_id=cm");
        for log in ["task_id=extract/attempt=1.log", "task_id=extract/attempt=2.log", "task_id=transform/attempt=2.log"]
        {
            assert!(logs.join(log).exists(), "{log} is missing");
        }

        // Only the failed tasks; then the run is set to success by hand.
        ok(&meta, &["tasks", "mark", "clear_mark", "cm", "transform", "--state", "skipped", "--wait"]);
        ok(&meta, &["tasks", "clear", "clear_mark", "cm", "--only-failed", "--wait"]);
        wait_for("the only-failed clear to finish", Duration::from_secs(60), || {
            state_of(&task_states(&meta, "clear_mark", "cm"), "load").0 == "skipped"
                && run_state(&meta, "clear_mark") != "queued"
                && run_state(&meta, "clear_mark") != "running"
        });
        assert_eq!(state_of(&task_states(&meta, "clear_mark", "cm"), "extract"), ("success".into(), 2));
        ok(&meta, &["dags", "set-run-state", "clear_mark", "cm", "failed", "--wait"]);
        wait_for("the run to be set failed", Duration::from_secs(30), || run_state(&meta, "clear_mark") == "failed");

        // Unknown runs and tasks are refused before anything is recorded.
        let out = meta.run(&["tasks", "clear", "clear_mark", "cm", "nope"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("has no task nope"), "{}", text(&out.stderr));
        let out = meta.run(&["tasks", "mark", "clear_mark", "missing", "load", "--state", "success"]);
        assert!(text(&out.stderr).contains("no run `missing`"), "{}", text(&out.stderr));
        scheduler.kill().expect("stop");
        let _ = scheduler.wait();
    }
}

#[test]
fn clearing_or_marking_a_running_task_stops_it_at_once() {
    for postgres in [false, true] {
        let meta = Meta::new(postgres, "stop");
        let mut scheduler = scheduler(&meta, "tests/fixtures/scheduler/long.yaml");
        wait_for("the scheduler to register the DAG", Duration::from_secs(60), || {
            meta.run(&["dags", "trigger", "long", "--run-id", "r1"]).status.success()
        });
        let meta = &meta;
        let running = |try_number: u32| {
            move || task_states(meta, "long", "r1").get("wait") == Some(&("running".into(), try_number))
        };
        wait_for("the long task to run", Duration::from_secs(30), running(1));

        // Cleared while it runs: the try stops and the next one starts, long before 120 s.
        let started = Instant::now();
        ok(meta, &["tasks", "clear", "long", "r1", "wait", "--wait"]);
        wait_for("the second try to run", Duration::from_secs(30), running(2));
        let first = meta.logs().join("dag_id=long/run_id=r1/task_id=wait/attempt=1.log");
        let log = std::fs::read_to_string(&first).unwrap_or_default();
        assert!(log.contains("stopped: the task was cleared or marked"), "postgres={postgres}: {log}");

        // Marked while it runs: it stops, and the downstream task runs.
        ok(meta, &["tasks", "mark", "long", "r1", "wait", "--state", "success", "--wait"]);
        wait_for("the run to succeed", Duration::from_secs(30), || run_state(meta, "long") == "success");
        assert!(started.elapsed() < Duration::from_secs(60), "the sleeping tries did not hold the run up");
        let second = meta.logs().join("dag_id=long/run_id=r1/task_id=wait/attempt=2.log");
        let log = std::fs::read_to_string(&second).unwrap_or_default();
        assert!(log.contains("stopped"), "postgres={postgres}: {log}");
        assert_eq!(state_of(&task_states(meta, "long", "r1"), "after"), ("success".into(), 1));
        scheduler.kill().expect("stop");
        let _ = scheduler.wait();
    }
}

#[test]
fn a_paused_dag_starts_nothing_until_unpaused() {
    for postgres in [false, true] {
        let meta = Meta::new(postgres, "pause");
        let mut scheduler = scheduler(&meta, "tests/fixtures/scheduler/clear_mark.yaml");
        wait_for("the scheduler to register the DAG", Duration::from_secs(60), || {
            meta.run(&["dags", "pause", "clear_mark"]).status.success()
        });
        ok(&meta, &["dags", "trigger", "clear_mark", "--run-id", "paused"]);
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(run_state(&meta, "clear_mark"), "queued", "postgres={postgres}: a paused DAG's run started");
        assert!(task_states(&meta, "clear_mark", "paused").is_empty());
        ok(&meta, &["dags", "unpause", "clear_mark"]);
        wait_for("the run to finish once unpaused", Duration::from_secs(60), || {
            run_state(&meta, "clear_mark") == "failed"
        });
        scheduler.kill().expect("stop");
        let _ = scheduler.wait();
    }
}

#[test]
fn max_active_tasks_caps_the_tasks_of_a_dag_running_at_once() {
    for postgres in [false, true] {
        let meta = Meta::new(postgres, "limits");
        let out = meta.run(&["dags", "test", "limits", "--dags", "tests/fixtures/scheduler/limits.yaml"]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
        let (mut running, mut most) = (0, 0);
        for line in stdout.lines() {
            if line.contains(" running ") {
                running += 1;
                most = most.max(running);
            } else if line.contains(" success ") && !line.starts_with("run ") {
                running -= 1;
            }
        }
        assert_eq!(most, 2, "max_active_tasks: 2 should allow exactly two at once:\n{stdout}");
    }
}

#[test]
fn a_backfill_creates_one_run_per_interval_and_respects_existing_runs() {
    let meta = Meta::new(false, "backfill");
    let dags = "tests/fixtures/scheduler/daily.yaml";
    let out = meta.run(&["dags", "backfill", "daily", "--from", "2026-03-01", "--to", "2026-03-03", "--dags", dags]);
    assert_eq!(out.status.code(), Some(1), "the DAG is not registered yet");
    assert!(text(&out.stderr).contains("start `updraft scheduler`"), "{}", text(&out.stderr));
    let mut scheduler = scheduler(&meta, dags);
    let backfill = ["dags", "backfill", "daily", "--from", "2026-03-01", "--to", "2026-03-03", "--dags", dags];
    wait_for("the scheduler to register the DAG", Duration::from_secs(60), || meta.run(&backfill).status.success());
    let backfill_runs = || {
        text(&meta.run(&["dags", "list-runs", "daily"]).stdout)
            .lines()
            .filter(|l| l.ends_with("\tbackfill"))
            .map(|l| {
                (
                    l.split('\t').next().unwrap_or_default().to_owned(),
                    l.split('\t').nth(1).unwrap_or_default().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    wait_for("three backfill runs to succeed", Duration::from_secs(60), || {
        let runs = backfill_runs();
        runs.len() == 3 && runs.iter().all(|(_, s)| s == "success")
    });
    let mut ids: Vec<String> = backfill_runs().into_iter().map(|(id, _)| id).collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "backfill__2026-03-01T00:00:00+00:00",
            "backfill__2026-03-02T00:00:00+00:00",
            "backfill__2026-03-03T00:00:00+00:00"
        ]
    );
    let again = ok(&meta, &backfill);
    assert!(again.contains("0 run(s) created, 0 run(s) to run again, 3 kept"), "{again}");
    let mut reprocess = backfill.to_vec();
    reprocess.extend(["--reprocess", "completed"]);
    let again = ok(&meta, &reprocess);
    assert!(again.contains("0 run(s) created, 3 run(s) to run again"), "{again}");
    wait_for("the reprocessed runs to run again", Duration::from_secs(60), || {
        ids.iter().all(|id| task_states(&meta, "daily", id).get("load").is_some_and(|(s, t)| s == "success" && *t == 2))
    });
    let out = meta.run(&["dags", "backfill", "daily", "--from", "2026-03-05", "--to", "2026-03-01", "--dags", dags]);
    assert!(text(&out.stderr).contains("--from is after --to"), "{}", text(&out.stderr));
    let out = meta.run(&["dags", "backfill", "daily", "--from", "yesterday", "--to", "2026-03-01", "--dags", dags]);
    assert!(text(&out.stderr).contains("--from `yesterday` is not a date"), "{}", text(&out.stderr));
    scheduler.kill().expect("stop");
    let _ = scheduler.wait();
}

#[test]
fn tasks_run_runs_one_try_and_records_how_it_ended() {
    let meta = Meta::new(true, "worker");
    let dags = "tests/fixtures/scheduler/clear_mark.yaml";
    let mut scheduler = scheduler(&meta, dags);
    wait_for("the scheduler to register the DAG", Duration::from_secs(60), || {
        meta.run(&["dags", "pause", "clear_mark"]).status.success()
    });
    scheduler.kill().expect("stop");
    let _ = scheduler.wait();
    ok(&meta, &["dags", "trigger", "clear_mark", "--run-id", "w"]);
    let out = meta.run(&["tasks", "run", "clear_mark", "extract", "w", "--try", "1", "--dags", dags]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("clear_mark.extract w try 1: success"), "{}", text(&out.stderr));
    let out = meta.run(&["tasks", "run", "clear_mark", "transform", "w", "--try", "2", "--dags", dags]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("boom"), "the log is echoed: {}", text(&out.stdout));
    let log = meta.logs().join("dag_id=clear_mark/run_id=w/task_id=transform/attempt=2.log");
    assert!(std::fs::read_to_string(&log).is_ok_and(|l| l.contains("boom")));
    let db = meta.pg.clone().expect("postgres");
    let rows = text(
        &psql("SELECT task_id, try_number, outcome, message, retryable FROM try_result ORDER BY task_id", &db).stdout,
    );
    assert_eq!(rows.trim(), "extract|1|success||0\ntransform|2|failed|boom|0", "{rows}");
    let out = meta.run(&["tasks", "run", "clear_mark", "nope", "w", "--try", "1", "--dags", dags]);
    assert!(text(&out.stderr).contains("has no task `nope`"), "{}", text(&out.stderr));
}

#[test]
fn the_scheduler_logs_one_json_object_per_line_when_asked() {
    use std::io::{BufRead, BufReader};
    let meta = Meta::new(false, "json");
    let mut child = meta
        .command(&["scheduler", "--dags", "tests/fixtures/scheduler/chain.yaml", "--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts the scheduler");
    let stderr = child.stderr.take().expect("stderr");
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    let line = lines.recv_timeout(Duration::from_secs(60)).expect("a log line within 60 s");
    child.kill().expect("stop");
    let _ = child.wait();
    let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(event["message"], "scheduler started", "{line}");
    assert_eq!(event["level"], "INFO", "{line}");
    assert_eq!(event["dags"], "tests/fixtures/scheduler/chain.yaml", "{line}");
    assert!(event["timestamp"].is_string(), "{line}");
}

#[test]
fn the_scheduler_pushes_statsd_metrics_over_udp_when_asked() {
    let statsd = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP port");
    statsd.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let address = statsd.local_addr().expect("address").to_string();
    let meta = Meta::new(false, "statsd");
    let mut child = meta
        .command(&["scheduler", "--dags", "tests/fixtures/scheduler/chain.yaml", "--statsd-address", &address])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts the scheduler");
    let mut buffer = [0u8; 2048];
    let received = statsd.recv(&mut buffer);
    child.kill().expect("stop");
    let _ = child.wait();
    let datagram = String::from_utf8_lossy(&buffer[..received.expect("a datagram within 60 s")]).into_owned();
    for line in datagram.lines() {
        let (name, rest) = line.split_once(':').unwrap_or_else(|| panic!("not StatsD: {line}"));
        let (value, kind) = rest.split_once('|').unwrap_or_else(|| panic!("not StatsD: {line}"));
        assert!(name.starts_with("updraft."), "{line}");
        assert!(value.parse::<f64>().is_ok() && matches!(kind, "g" | "c"), "{line}");
    }
    assert!(datagram.contains("updraft.scheduler.queue_depth:"), "{datagram}");
    assert!(datagram.contains("updraft.dags:1|g"), "{datagram}");
}

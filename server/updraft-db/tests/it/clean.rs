//! Retention (`Db::runs_to_clean`, `count_run_rows`, `delete_runs`) on both databases: old
//! finished runs go with every row hanging off them, in batches; runs in progress, recent runs
//! and each DAG's newest scheduled run stay.

use updraft_db::Db;
use updraft_db::clean::CleanCounts;
use updraft_db::results::TryResult;
use updraft_db::runs::{NewRun, RunRow, RunStateChange};
use updraft_db::task_instances::NewTaskInstance;
use updraft_db::{RunState, Timestamp};

use crate::support::{Backends, fresh};

/// Inserts run `run_id` of DAG `a` and sets its state and end (µs).
async fn run(db: &Db, run_id: &str, run_type: &str, interval_end: i64, state: &str, end: Option<i64>) -> RunRow {
    let us = Timestamp::from_micros;
    let row = db
        .insert_run(&NewRun {
            dag_id: "a".into(),
            run_id: run_id.into(),
            run_type: run_type.parse().expect("run type"),
            logical_date: Some(us(interval_end - 1)),
            data_interval: Some((us(interval_end - 1), us(interval_end))),
            run_after: us(interval_end),
            conf: "{}".into(),
            triggered_by: "test".into(),
            triggering_user: None,
            note: None,
        })
        .await
        .expect("insert");
    let state: RunState = state.parse().expect("run state");
    if state != RunState::Queued {
        let change = RunStateChange { run_pk: row.id, state, end_date: end.map(us) };
        db.set_run_states(&[change]).await.expect("state");
    }
    row
}

/// Two task instances, an XCom, a try result, a log location and a request for a run.
async fn rows_of(db: &Db, run: &RunRow) {
    use updraft_db::requests::{NewRequest, RequestAction};
    let tasks: Vec<NewTaskInstance> = ["x", "y"]
        .iter()
        .map(|id| NewTaskInstance {
            task_id: (*id).into(),
            uuid: format!("{}-{id}", run.run_id),
            max_tries: 1,
            operator: "noop".into(),
            pool: "default_pool".into(),
            pool_slots: 1,
            priority_weight: 1,
        })
        .collect();
    db.create_task_instances(run, &tasks).await.expect("task instances");
    db.xcom_push("a", &run.run_id, "x", "return_value", "42").await.expect("xcom");
    let result = TryResult { outcome: "success".into(), message: None, retryable: false, reschedule_after_ms: None };
    db.record_try_result(run.id, "x", 1, &result).await.expect("try result");
    db.set_log_location(run.id, "x", 1, "/logs/x.log").await.expect("log location");
    let request = NewRequest {
        run_pk: run.id,
        action: RequestAction::Clear,
        task_ids: vec!["x".into()],
        downstream: false,
        upstream: false,
        only_failed: false,
        requested_by: None,
    };
    db.request(&request).await.expect("request");
}

async fn count(db: &Db, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(db.pool())
        .await
        .expect("count")
}

#[tokio::test]
async fn old_finished_runs_are_found_in_batches_counted_and_deleted_with_their_rows() {
    for backend in Backends::ALL {
        let t = fresh(backend).await;
        let db = t.migrated().await;
        db.sync_dags(&[crate::record("a", "h1")], &[], false).await.expect("sync");
        let now = updraft_db::now_us();
        // The request of `rows_of` puts a finished run back in the queue: rows first, state after.
        let old_ok = run(&db, "old_ok", "manual", 100, "queued", None).await;
        rows_of(&db, &old_ok).await;
        let finished = RunStateChange {
            run_pk: old_ok.id,
            state: RunState::Success,
            end_date: Some(Timestamp::from_micros(1_000)),
        };
        db.set_run_states(&[finished]).await.expect("finished");
        let old_failed = run(&db, "old_failed", "manual", 200, "failed", Some(2_000)).await;
        let scheduled_1 = run(&db, "scheduled_1", "scheduled", 300, "success", Some(3_000)).await;
        let scheduled_2 = run(&db, "scheduled_2", "scheduled", 400, "success", Some(4_000)).await;
        let running = run(&db, "running", "manual", 500, "running", None).await;
        let queued = run(&db, "queued", "manual", 600, "queued", None).await;
        let recent = run(&db, "recent", "manual", 700, "success", Some(now)).await;
        let cutoff = now - 1_000_000;

        // Batches of two, by id; the newest scheduled run is never chosen.
        let first = db.runs_to_clean(cutoff, 0, 2).await.expect("batch 1");
        let ids: Vec<i64> = first.iter().map(|r| r.id).collect();
        assert_eq!(ids, [old_ok.id, old_failed.id], "{backend:?}");
        assert_eq!((first[0].dag_id.as_str(), first[0].run_id.as_str()), ("a", "old_ok"));
        let second = db.runs_to_clean(cutoff, old_failed.id, 2).await.expect("batch 2");
        assert_eq!(second.iter().map(|r| r.id).collect::<Vec<_>>(), [scheduled_1.id], "{backend:?}");
        assert!(db.runs_to_clean(cutoff, scheduled_1.id, 2).await.expect("batch 3").is_empty());

        // A dry run's counts, then the same numbers deleted.
        let expected =
            CleanCounts { dag_run: 2, task_instance: 2, task_log: 1, xcom: 1, try_result: 1, run_request: 1 };
        assert_eq!(db.count_run_rows(&ids).await.expect("count"), expected, "{backend:?}");
        assert_eq!(count(&db, "dag_run").await, 7, "counting deletes nothing");
        // A running run slipped into the list is re-checked and kept.
        let with_running = [old_ok.id, old_failed.id, running.id, queued.id];
        let (deleted, runs) = db.delete_runs(&with_running, cutoff).await.expect("delete");
        assert_eq!(deleted, expected, "{backend:?}");
        assert_eq!(runs, [old_ok.id, old_failed.id]);
        for table in ["task_instance", "task_log", "xcom", "try_result", "run_request"] {
            assert_eq!(count(&db, table).await, 0, "{backend:?}: {table}");
        }
        let left: Vec<String> = ["old_ok", "old_failed", "scheduled_1", "scheduled_2", "running", "queued", "recent"]
            .into_iter()
            .filter(|id| !matches!(*id, "old_ok" | "old_failed"))
            .map(str::to_owned)
            .collect();
        for run_id in &left {
            assert!(db.get_run("a", run_id).await.expect("get").is_some(), "{backend:?}: {run_id} stays");
        }
        // A later cutoff still never takes the runs in progress or the newest scheduled run.
        let later = db.runs_to_clean(now + 1_000_000, 0, 100).await.expect("later");
        let ids: Vec<i64> = later.iter().map(|r| r.id).collect();
        assert_eq!(ids, [scheduled_1.id, recent.id], "{backend:?}");
        assert!(!ids.contains(&scheduled_2.id) && !ids.contains(&running.id) && !ids.contains(&queued.id));
        assert_eq!(db.delete_runs(&[], cutoff).await.expect("nothing").0, CleanCounts::default());
        t.drop_db(db).await;
    }
}

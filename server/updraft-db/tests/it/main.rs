//! updraft-db against real databases: a SQLite file and the PostgreSQL at 127.0.0.1:5432
//! (a fresh database per test, dropped afterwards). Every test runs on both backends.

mod clean;
mod plugins;
mod support;

use std::time::Duration;

use support::{Backends, fresh};
use updraft_db::batch::Changes;
use updraft_db::dags::DagRecord;
use updraft_db::runs::RunStateChange;
use updraft_db::secrets::Connection;
use updraft_db::{Db, DbError, EncryptionKey, RunState, RunType, SchemaStatus, Timestamp};

/// A time `n` µs after the epoch.
fn us(n: i64) -> Timestamp {
    Timestamp::from_micros(n)
}

fn key() -> EncryptionKey {
    EncryptionKey::from_base64(&EncryptionKey::generate()).expect("key")
}

#[tokio::test]
async fn migrations_are_idempotent_and_checked() {
    for backend in Backends::ALL {
        let t = fresh(backend).await;
        let db = Db::connect(&t.url).await.expect("connects");
        assert_eq!(db.schema_status().await.expect("status"), SchemaStatus::Empty, "{backend:?}");
        assert_eq!(
            Db::wait_until_current(&t.url, Duration::from_millis(600)).await.expect("waits"),
            SchemaStatus::Empty
        );
        let waiter = tokio::spawn({
            let url = t.url.clone();
            async move { Db::wait_until_current(&url, Duration::from_secs(30)).await }
        });
        assert_eq!(db.migrate().await.expect("migrates"), SchemaStatus::Current { version: 4 });
        assert_eq!(db.migrate().await.expect("again"), SchemaStatus::Current { version: 4 }, "{backend:?}");
        assert_eq!(waiter.await.expect("joins").expect("waits"), SchemaStatus::Current { version: 4 });
        t.drop_db(db).await;
    }
}

#[tokio::test]
async fn variables_are_encrypted_at_rest() {
    for backend in Backends::ALL {
        let t = fresh(backend).await;
        let db = t.migrated().await;
        let key = key();
        db.set_variable(&key, "region", "eu-west-1", Some("where data lives")).await.expect("set");
        db.set_variable(&key, "region", "sa-east-1", None).await.expect("replace");
        assert_eq!(db.get_variable(&key, "region").await.expect("get"), Some("sa-east-1".to_owned()));
        assert_eq!(db.get_variable(&key, "nope").await.expect("get"), None);
        let raw: String = sqlx::query_scalar("SELECT value FROM variable").fetch_one(db.pool()).await.expect("raw");
        assert!(!raw.contains("sa-east-1"), "{backend:?}: stored in clear: {raw}");
        assert_eq!(db.list_variables().await.expect("list"), vec![("region".to_owned(), None)]);
        assert!(
            matches!(db.get_variable(&self::key(), "region").await, Err(DbError::Key(_))),
            "another key cannot read it"
        );
        assert!(db.delete_variable("region").await.expect("delete"));
        assert!(!db.delete_variable("region").await.expect("delete again"));
        t.drop_db(db).await;
    }
}

#[tokio::test]
async fn connections_keep_passwords_secret() {
    for backend in Backends::ALL {
        let t = fresh(backend).await;
        let db = t.migrated().await;
        let key = key();
        let warehouse = Connection {
            conn_id: "warehouse".into(),
            conn_type: "postgres".into(),
            host: Some("db.internal".into()),
            port: Some(5432),
            schema: Some("analytics".into()),
            login: Some("etl".into()),
            password: Some("hunter2".into()),
            extra: Some(r#"{"sslmode": "require"}"#.into()),
            description: None,
        };
        db.add_connection(&key, &warehouse).await.expect("add");
        let again = db.add_connection(&key, &warehouse).await;
        assert!(
            matches!(&again, Err(DbError::Conflict(m)) if m.contains("connection `warehouse` already exists")),
            "{again:?}"
        );
        assert_eq!(db.get_connection(&key, "warehouse").await.expect("get"), Some(warehouse.clone()));
        let listed = db.list_connections().await.expect("list");
        assert_eq!(listed[0].password.as_deref(), Some("***"));
        assert_eq!(listed[0].redacted_uri(), "postgres://etl:***@db.internal:5432/analytics");
        let raw: String =
            sqlx::query_scalar("SELECT password FROM connection").fetch_one(db.pool()).await.expect("raw");
        assert!(!raw.contains("hunter2"), "{backend:?}");
        assert!(db.delete_connection("warehouse").await.expect("delete"));
        t.drop_db(db).await;
    }
}

pub(crate) fn record(id: &str, hash: &str) -> DagRecord {
    DagRecord {
        dag_id: id.into(),
        fileloc: format!("dags/{id}.yaml"),
        source_hash: hash.into(),
        description: None,
        schedule: Some("@daily".into()),
        timezone: "UTC".into(),
        tags: "[]".into(),
        owners: "[\"data\"]".into(),
        max_active_runs: 16,
        max_active_tasks: 16,
        task_count: 3,
    }
}

#[tokio::test]
async fn dag_sync_adds_versions_and_marks_stale() {
    for backend in Backends::ALL {
        let t = fresh(backend).await;
        let db = t.migrated().await;
        let errors = vec![("dags/bad.yaml".to_owned(), "dags/bad.yaml:1:1: error: …".to_owned())];
        let report = db.sync_dags(&[record("a", "h1"), record("b", "h1")], &errors, true).await.expect("sync");
        assert_eq!(report.added, ["a", "b"]);
        let a = db.get_dag("a").await.expect("get").expect("a");
        assert!(a.is_paused && !a.is_stale);
        assert_eq!(a.version, 1);
        assert_eq!(db.import_errors().await.expect("errors"), errors);

        db.set_paused("a", false).await.expect("unpause");
        let report = db.sync_dags(&[record("a", "h2")], &[], true).await.expect("sync");
        assert_eq!(
            (report.changed.as_slice(), report.stale.as_slice()),
            (&["a".to_owned()][..], &["b".to_owned()][..])
        );
        let a = db.get_dag("a").await.expect("get").expect("a");
        assert_eq!((a.version, a.is_paused), (2, false), "{backend:?}: a new version keeps the pause state");
        assert_eq!(db.list_dags().await.expect("list").len(), 1);
        assert!(db.import_errors().await.expect("errors").is_empty());
        let missing = db.set_paused("nope", true).await;
        assert!(matches!(&missing, Err(DbError::NotFound(m)) if m.contains("no DAG `nope`")), "{missing:?}");
        t.drop_db(db).await;
    }
}

#[tokio::test]
async fn bad_urls_say_what_to_do() {
    let err = Db::connect("mysql://x@y/z").await.expect_err("unsupported");
    assert_eq!(
        err.to_string(),
        "unsupported database URL mysql://x@y/z: use sqlite://PATH or postgres://USER@HOST:PORT/DB"
    );
    let err = Db::connect("postgres://postgres:secret@127.0.0.1:1/nope").await.expect_err("refused");
    let message = err.to_string();
    assert!(message.contains("postgres://postgres:***@127.0.0.1:1/nope") && !message.contains("secret"), "{message}");
}

/// DAG `a`, registered, with one queued run `r1`.
async fn dag_with_a_run(db: &updraft_db::Db) -> updraft_db::runs::RunRow {
    db.sync_dags(&[record("a", "h1")], &[], false).await.expect("sync");
    db.insert_run(&updraft_db::runs::NewRun {
        dag_id: "a".into(),
        run_id: "r1".into(),
        run_type: RunType::Manual,
        logical_date: Some(us(1)),
        data_interval: Some((us(1), us(1))),
        run_after: us(1),
        conf: "{}".into(),
        triggered_by: "test".into(),
        triggering_user: None,
        note: None,
    })
    .await
    .expect("insert")
}

#[tokio::test]
async fn requests_on_finished_runs_requeue_them_and_are_deleted_with_their_changes() {
    use updraft_db::requests::{NewRequest, RequestAction};
    for backend in Backends::ALL {
        let t = fresh(backend).await;
        let db = t.migrated().await;
        let run = dag_with_a_run(&db).await;
        let claimed = db.claim_queued_runs("s1", 8).await.expect("claim");
        assert_eq!(claimed.len(), 1);
        let finish = RunStateChange { run_pk: run.id, state: RunState::Failed, end_date: Some(us(5)) };
        db.set_run_states(&[finish]).await.expect("finish");
        let request = NewRequest {
            run_pk: run.id,
            action: RequestAction::Clear,
            task_ids: vec!["x".into()],
            downstream: true,
            upstream: false,
            only_failed: false,
            requested_by: Some("ana".into()),
        };
        let id = db.request(&request).await.expect("request");
        let stored = db.get_run("a", "r1").await.expect("get").expect("run");
        assert_eq!((stored.state, stored.end_date), (RunState::Queued, None), "{backend:?}");
        assert!(db.owned_requests("s1").await.expect("owned").is_empty(), "a re-queued run has no owner");
        db.claim_queued_runs("s2", 8).await.expect("claim again");
        let owned = db.owned_requests("s2").await.expect("owned");
        assert_eq!(owned.len(), 1);
        assert_eq!(
            (owned[0].id, owned[0].action, owned[0].task_ids.clone()),
            (id, RequestAction::Clear, vec!["x".into()])
        );
        assert!(owned[0].downstream && !owned[0].upstream);
        assert!(db.request_pending(id).await.expect("pending"));
        db.apply(&Changes { done_requests: vec![id], ..Changes::default() }).await.expect("done");
        assert!(!db.request_pending(id).await.expect("pending"));
        let missing = db.request(&NewRequest { run_pk: 999_999, ..request }).await;
        assert!(matches!(missing, Err(DbError::NotFound(_))), "{missing:?}");
        t.drop_db(db).await;
    }
}

#[tokio::test]
async fn batched_updates_apply_in_order_on_both_databases() {
    use updraft_db::batch::TaskUpdate;
    use updraft_db::task_instances::NewTaskInstance;
    use updraft_types::TaskState::*;
    for backend in Backends::ALL {
        let t = fresh(backend).await;
        let db = t.migrated().await;
        let run = dag_with_a_run(&db).await;
        let tasks: Vec<NewTaskInstance> = ["x", "y"]
            .iter()
            .map(|id| NewTaskInstance {
                task_id: (*id).into(),
                uuid: format!("uuid-{id}"),
                max_tries: 1,
                operator: "noop".into(),
                pool: "default_pool".into(),
                pool_slots: 1,
                priority_weight: 1,
            })
            .collect();
        assert_eq!(db.create_task_instances(&run, &tasks).await.expect("create"), 2);
        assert_eq!(db.create_task_instances(&run, &tasks).await.expect("again"), 0, "existing rows are kept");
        let update = |task: &str, state| TaskUpdate::new(run.id, task, state);
        let updates = vec![
            TaskUpdate { scheduled_at: Some(us(10)), ..update("x", Scheduled) },
            TaskUpdate { queued_at: Some(us(20)), try_number: Some(1), ..update("x", Queued) },
            TaskUpdate { start_date: Some(us(30)), hostname: Some("h".into()), ..update("x", Running) },
            TaskUpdate {
                end_date: Some(us(40)),
                duration_s: Some(1.5),
                next_attempt_at: Some(us(99)),
                ..update("x", UpForRetry)
            },
            TaskUpdate { scheduled_at: Some(us(11)), ..update("y", Scheduled) },
            TaskUpdate { reset_max_tries: Some(3), ..update("y", NoStatus) },
            TaskUpdate { scheduled_at: Some(us(12)), ..update("y", Scheduled) },
            TaskUpdate { queued_at: Some(us(50)), try_number: Some(2), ..update("x", Queued) },
        ];
        db.apply(&Changes { tasks: updates, ..Changes::default() }).await.expect("apply");
        let x = db.task_instance(run.id, "x").await.expect("x").expect("row");
        assert_eq!(x.state, Queued, "{backend:?}");
        assert_eq!(
            (x.try_number, x.scheduled_at, x.queued_at, x.start_date, x.end_date),
            (2, Some(us(10)), Some(us(50)), Some(us(30)), Some(us(40)))
        );
        assert_eq!(
            (x.duration_s, x.next_attempt_at, x.hostname.as_deref()),
            (Some(1.5), None, Some("h")),
            "{backend:?}"
        );
        let y = db.task_instance(run.id, "y").await.expect("y").expect("row");
        assert_eq!((y.state, y.max_tries, y.scheduled_at), (Scheduled, 3, Some(us(12))), "{backend:?}");
        t.drop_db(db).await;
    }
}

#[tokio::test]
async fn accounts_are_unique_and_listed() {
    for backend in Backends::ALL {
        let t = fresh(backend).await;
        let db = t.migrated().await;
        assert_eq!(db.count_users().await.expect("count"), 0);
        db.create_user("ann", "$argon2id$hash", "op").await.expect("create");
        assert!(
            matches!(db.create_user("ann", "$argon2id$other", "admin").await, Err(DbError::Conflict(_))),
            "{backend:?}"
        );
        db.create_user("bob", "$argon2id$hash", "viewer").await.expect("create");
        let user = db.get_user("ann").await.expect("get").expect("ann");
        assert_eq!((user.role.as_str(), user.password_hash.as_str(), user.active), ("op", "$argon2id$hash", true));
        let names: Vec<String> = db.list_users().await.expect("list").into_iter().map(|u| u.username).collect();
        assert_eq!(names, ["ann", "bob"]);
        assert!(db.get_user("carol").await.expect("get").is_none());
        t.drop_db(db).await;
    }
}

#[tokio::test]
async fn runs_are_found_by_dag_and_state_counted_and_deleted_only_when_idle() {
    use updraft_db::runs::RunOrder;
    for backend in Backends::ALL {
        let t = fresh(backend).await;
        let db = t.migrated().await;
        let first = dag_with_a_run(&db).await;
        let second = db
            .insert_run(&updraft_db::runs::NewRun {
                dag_id: first.dag_id.clone(),
                run_id: "second".into(),
                run_type: RunType::Manual,
                logical_date: None,
                data_interval: None,
                run_after: us(2),
                conf: "{}".into(),
                triggered_by: "test".into(),
                triggering_user: None,
                note: None,
            })
            .await
            .expect("second run");
        let order = RunOrder::parse("-id").expect("order");
        let (runs, total) = db.find_runs(Some(first.dag_id.as_str()), &[], order, 1, 0).await.expect("find");
        assert_eq!((runs[0].run_id.as_str(), total), ("second", 2), "{backend:?}");
        let (runs, total) = db.find_runs(None, &[RunState::Queued], RunOrder::DEFAULT, 10, 1).await.expect("find");
        assert_eq!((runs.len(), total), (1, 2), "{backend:?}");
        assert_eq!(db.find_runs(None, &[RunState::Running], RunOrder::DEFAULT, 10, 0).await.expect("find").1, 0);
        assert!(RunOrder::parse("conf").is_none());

        let claimed = db.claim_queued_runs("s1", 1).await.expect("claim");
        assert_eq!(claimed[0].id, first.id);
        assert!(!db.delete_idle_run(first.id).await.expect("delete"), "{backend:?}: a running run stays");
        assert!(db.delete_idle_run(second.id).await.expect("delete"), "{backend:?}: an unclaimed queued run goes");
        assert!(db.get_run_by_pk(second.id).await.expect("get").is_none());
        t.drop_db(db).await;
    }
}

#[tokio::test]
async fn pools_report_usage_and_refuse_duplicates() {
    for backend in Backends::ALL {
        let t = fresh(backend).await;
        let db = t.migrated().await;
        db.create_pool("etl", 4, Some("loads")).await.expect("create");
        assert!(matches!(db.create_pool("etl", 2, None).await, Err(DbError::Conflict(_))), "{backend:?}");
        let pools = db.pool_rows().await.expect("pools");
        assert_eq!(pools.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["default_pool", "etl"]);
        assert!(db.pool_usage().await.expect("usage").is_empty());
        assert!(db.delete_pool("etl").await.expect("delete"));
        assert!(!db.delete_pool("etl").await.expect("delete again"));
        t.drop_db(db).await;
    }
}

#[tokio::test]
async fn a_stored_state_no_version_knows_is_an_error_naming_it_not_a_panic() {
    for backend in Backends::ALL {
        let t = fresh(backend).await;
        let db = t.migrated().await;
        let run = dag_with_a_run(&db).await;
        sqlx::query("UPDATE dag_run SET state = 'zombie' WHERE id = $1")
            .bind(run.id)
            .execute(db.pool())
            .await
            .expect("corrupt");
        let error = db.get_run("a", "r1").await.expect_err("unknown state");
        assert!(matches!(error, DbError::Query(_)), "{backend:?}: {error:?}");
        assert!(error.to_string().contains("unknown run state `zombie`"), "{backend:?}: {error}");
        t.drop_db(db).await;
    }
}

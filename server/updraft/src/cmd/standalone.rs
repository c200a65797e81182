//! `updraft standalone`: everything in one process on the embedded default — migrations on a
//! SQLite file in the data folder, the example DAGs (or `--dags`), a demo warehouse for them,
//! the scheduler with the local executor, printing progress, and the API server on
//! 127.0.0.1:8080. On the first start, with no users yet, it creates `admin` with a generated
//! password that it prints once and keeps in the data folder's
//! `standalone_admin_password.txt` (or takes from `UPDRAFT_ADMIN_PASSWORD`, for automation).
//! (The web app joins it with its issue.)

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use updraft_db::Db;
use updraft_db::runs::NewRun;
use updraft_db::secrets::Connection;
use updraft_plugin_host::Grants;
use updraft_types::{RunType, TaskState, Timestamp};

use super::meta::{MetaArgs, runtime};
use super::scheduler::{RunArgs, example_dags, shutdown_signal};

#[derive(Debug, Args)]
pub struct StandaloneArgs {
    #[command(flatten)]
    pub meta: MetaArgs,
    /// The DAGs folder (default: the example DAGs).
    #[arg(long = "dags", env = "UPDRAFT__CORE__DAGS_FOLDER")]
    pub dags: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub server: super::api_server::ServerArgs,
    /// Most task tries running at once.
    #[arg(long, default_value_t = 16)]
    pub parallelism: usize,
    /// Stop once every run has finished (for scripts and tests).
    #[arg(long)]
    pub exit_when_idle: bool,
    /// A PEM file of CA certificates that HTTPS calls trust besides the platform's roots.
    #[arg(long = "http-extra-ca-file", env = "UPDRAFT__HTTP__EXTRA_CA_FILE", value_name = "PEM")]
    pub http_extra_ca_file: Option<std::path::PathBuf>,
}

pub fn standalone(args: StandaloneArgs) -> anyhow::Result<ExitCode> {
    let dags = match args.dags.clone().or_else(example_dags) {
        Some(d) => d,
        None => {
            anyhow::bail!("no DAGs folder: pass --dags DIR (the example DAGs are in the source tree's examples/dags)")
        }
    };
    let run = RunArgs {
        meta: args.meta.clone(),
        dags: dags.clone(),
        plugins: None,
        parallelism: args.parallelism,
        zombie_threshold: 30,
        executor: super::scheduler::ExecutorKind::Local,
        kubernetes: super::scheduler::KubernetesArgs {
            namespace: "updraft".into(),
            image: "updraft:latest".into(),
            pod_template: None,
            kubeconfig: None,
            delete_failed_pods: false,
            pending_timeout: 300,
            creates_per_second: 10.0,
        },
        metrics_port: None,
        statsd_address: None,
        http_extra_ca_file: args.http_extra_ca_file.clone(),
        default_grants: own_api_grant(&args.server),
    };
    runtime()?.block_on(async move {
        let db = Db::connect(&args.meta.url()?).await?;
        db.migrate().await?;
        let key = args.meta.encryption_key()?;
        if db.get_connection(&key, "warehouse").await?.is_none() {
            let path = std::path::absolute(args.meta.data_dir.join("warehouse.db"))?;
            updraft_db::demo::seed_demo_warehouse(&path).await?;
            let warehouse = Connection {
                conn_id: "warehouse".into(),
                conn_type: "sqlite".into(),
                schema: Some(path.display().to_string()),
                description: Some("demo warehouse created by updraft standalone".into()),
                ..Connection::default()
            };
            db.add_connection(&key, &warehouse).await?;
            println!("created the demo warehouse {} (connection `warehouse`)", path.display());
        }
        ensure_admin(&db, &args.meta.data_dir).await?;
        let (mut engine, _executor) = run.engine(&db, false).await?;
        println!("updraft standalone: data in {}, DAGs from {}", args.meta.data_dir.display(), dags.display());
        let logs = args.meta.logs(args.http_extra_ca_file.as_deref())?;
        let (listener, state) =
            super::api_server::prepare(db.clone(), &args.meta, &args.server, Some(dags.clone()), logs).await?;
        let api = tokio::spawn(updraft_api::serve(listener, state, std::future::pending()));
        // First start: run each DAG once, so the examples show what they do.
        for dag in db.list_dags().await? {
            if db.list_runs(&dag.record.dag_id, 1, 0).await?.is_empty() {
                let now = Timestamp::now();
                let run_id = format!("manual__{}", chrono_like(now.as_micros()));
                db.insert_run(&NewRun {
                    dag_id: dag.record.dag_id.as_str().into(),
                    run_id: run_id.into(),
                    run_type: RunType::Manual,
                    logical_date: Some(now),
                    data_interval: Some((now, now)),
                    run_after: now,
                    conf: "{}".into(),
                    triggered_by: "cli".into(),
                    triggering_user: None,
                    note: Some("first run by updraft standalone".into()),
                })
                .await?;
            }
        }
        let exit_when_idle = args.exit_when_idle;
        let progress_db = db.clone();
        let stop = async move {
            let mut last = String::new();
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let Ok(summary) = progress(&progress_db).await else { continue };
                if summary.0 != last {
                    println!("{}", summary.0);
                    last = summary.0;
                }
                if exit_when_idle && summary.1 {
                    return;
                }
            }
        };
        tokio::select! {
            result = engine.run(stop) => result?,
            () = shutdown_signal() => {}
        }
        api.abort();
        Ok(ExitCode::SUCCESS)
    })
}

/// Lets the built-in `http` operator call this server's own API (the example DAG checks its
/// health), unless the configuration grants `http` something itself.
fn own_api_grant(server: &super::api_server::ServerArgs) -> std::collections::BTreeMap<String, Grants> {
    let port = server.port;
    let hosts = vec![format!("127.0.0.1:{port}"), format!("localhost:{port}")];
    [("http".to_owned(), Grants { allow_http_hosts: hosts, ..Grants::default() })].into_iter().collect()
}

/// On the first start (no users yet), creates `admin` with `UPDRAFT_ADMIN_PASSWORD` or a
/// generated password, which is printed this once and kept in the data folder.
async fn ensure_admin(db: &Db, data_dir: &std::path::Path) -> anyhow::Result<()> {
    if db.count_users().await? > 0 {
        return Ok(());
    }
    let given = std::env::var("UPDRAFT_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty());
    let password = given.clone().unwrap_or_else(updraft_api::generate_password);
    let hash = tokio::task::spawn_blocking({
        let password = password.clone();
        move || updraft_api::hash_password(&password)
    })
    .await??;
    db.create_user("admin", &hash, "admin").await?;
    if given.is_some() {
        println!("created user `admin` (role admin) with the password from UPDRAFT_ADMIN_PASSWORD");
        return Ok(());
    }
    let file = data_dir.join("standalone_admin_password.txt");
    if file.exists() {
        std::fs::remove_file(&file)?;
    }
    super::meta::write_private(&file, &format!("{password}\n"))?;
    println!("created user `admin` (role admin) with password: {password}");
    println!("(shown only now; also kept in {})", file.display());
    Ok(())
}

/// One line per DAG with the state of its latest run and its tasks counted by state, so that a
/// run that ends `success` under the leaf-task rule still shows the tasks that failed; and
/// whether nothing is queued or running.
async fn progress(db: &Db) -> anyhow::Result<(String, bool)> {
    let mut parts = Vec::new();
    let mut idle = true;
    for dag in db.list_dags().await? {
        if let Some(run) = db.list_runs(&dag.record.dag_id, 1, 0).await?.into_iter().next() {
            let states: Vec<TaskState> = db.task_instances(run.id).await?.into_iter().map(|t| t.state).collect();
            idle &= run.state.is_finished();
            parts.push(format!("{} {} ({})", dag.record.dag_id, run.state, count_states(&states)));
        }
    }
    Ok((parts.join(" · "), idle))
}

/// `5 tasks: 4 success, 1 failed`: the states in the order a run moves through them, the ones
/// not yet decided counted as `waiting`.
fn count_states(states: &[TaskState]) -> String {
    use TaskState::*;
    const ORDER: &[TaskState] =
        &[Success, Failed, UpstreamFailed, Skipped, Running, Queued, UpForRetry, UpForReschedule];
    let mut counts: Vec<String> = ORDER
        .iter()
        .map(|state| (state, states.iter().filter(|s| *s == state).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    let waiting = states.iter().filter(|s| !ORDER.contains(s)).count();
    if waiting > 0 {
        counts.push(format!("{waiting} waiting"));
    }
    format!("{} tasks: {}", states.len(), counts.join(", "))
}

/// An ISO-8601 UTC time from microseconds, for run ids (`manual__2026-…+00:00`, as Airflow).
pub fn chrono_like(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::count_states;

    #[test]
    fn a_successful_run_still_shows_its_failed_task() {
        use updraft_types::TaskState::*;
        let states = [Success, Failed, Success, Success, Success];
        assert_eq!(count_states(&states), "5 tasks: 4 success, 1 failed");
        let states = [Running, NoStatus, Scheduled, Success];
        assert_eq!(count_states(&states), "4 tasks: 1 success, 1 running, 2 waiting");
    }
}

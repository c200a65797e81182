//! `updraft tasks logs|clear|mark|run`: the log of a task try, from the data folder's log tree
//! (`logs/dag_id=…/run_id=…/task_id=…/attempt=N.log`) or, once that file is gone, from the
//! remote logs (`[logging] remote`); requests to run tasks again or set their state by hand,
//! which the scheduler owning the run carries out; and the worker of a task pod.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::{Subcommand, ValueEnum};
use updraft_db::Db;
use updraft_db::requests::{NewRequest, RequestAction};

use super::meta::{MetaArgs, runtime};
use super::scheduler::RunArgs;

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Print the log of a task try (the latest try by default).
    Logs {
        dag_id: String,
        run_id: String,
        task_id: String,
        /// The try number.
        #[arg(long = "try")]
        try_number: Option<u32>,
        /// Keep printing what the try writes until it finishes (like `tail -f`).
        #[arg(long, short = 'f')]
        follow: bool,
        #[command(flatten)]
        meta: MetaArgs,
        /// A PEM file of CA certificates that HTTPS calls (here: to the remote task logs) trust
        /// besides the platform's roots.
        #[arg(long = "http-extra-ca-file", env = "UPDRAFT__HTTP__EXTRA_CA_FILE", value_name = "PEM")]
        http_extra_ca_file: Option<std::path::PathBuf>,
    },
    /// Run one try of a task in this process, write its log and record how it ended: what a
    /// task pod of the kubernetes executor runs. Exits 0 unless the try failed.
    Run {
        dag_id: String,
        task_id: String,
        run_id: String,
        /// The try number the scheduler gave this try.
        #[arg(long = "try")]
        try_number: u32,
        /// Also copy the log to standard output (what `kubectl logs` shows).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        echo: bool,
        /// The content hash of the operator plugin version the scheduler dispatched the try
        /// with: that version runs, fetched from the plugin store, even if it was replaced since.
        #[arg(long = "plugin-sha256", value_name = "SHA256")]
        plugin_sha256: Option<String>,
        #[command(flatten)]
        run: Box<RunArgs>,
    },
    /// The state and try number of every task instance of a run.
    States {
        dag_id: String,
        run_id: String,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Run tasks of a run again: back to no status, with their retries available again. The
    /// scheduler owning the run does it; a finished run goes back to the queue.
    Clear {
        dag_id: String,
        run_id: String,
        /// The tasks to clear (default: every task of the run).
        task_ids: Vec<String>,
        /// Also clear every task downstream of them.
        #[arg(long, short = 'd')]
        downstream: bool,
        /// Also clear every task upstream of them.
        #[arg(long, short = 'u')]
        upstream: bool,
        /// Only clear tasks that failed or were upstream-failed.
        #[arg(long, short = 'f')]
        only_failed: bool,
        /// Wait until a scheduler has carried out the request.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Set the state of tasks by hand; downstream tasks not yet decided follow from it.
    Mark {
        dag_id: String,
        run_id: String,
        /// The tasks to mark (at least one).
        #[arg(required = true)]
        task_ids: Vec<String>,
        #[arg(long, value_enum)]
        state: MarkState,
        /// Also mark every task downstream of them.
        #[arg(long, short = 'd')]
        downstream: bool,
        /// Also mark every task upstream of them.
        #[arg(long, short = 'u')]
        upstream: bool,
        /// Wait until a scheduler has carried out the request.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        meta: MetaArgs,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MarkState {
    Success,
    Failed,
    Skipped,
}

pub fn run(command: TasksCommand) -> anyhow::Result<ExitCode> {
    match command {
        TasksCommand::Logs { dag_id, run_id, task_id, try_number, follow, meta, http_extra_ca_file } => {
            logs(&dag_id, &run_id, &task_id, try_number, follow, &meta, http_extra_ca_file.as_deref())
        }
        TasksCommand::Run { dag_id, task_id, run_id, try_number, echo, plugin_sha256, run } => {
            run_try(&dag_id, &task_id, &run_id, try_number, plugin_sha256, echo, &run)
        }
        TasksCommand::States { dag_id, run_id, meta } => states(&dag_id, &run_id, &meta),
        TasksCommand::Clear { dag_id, run_id, task_ids, downstream, upstream, only_failed, wait, meta } => {
            let request = Request { action: RequestAction::Clear, task_ids, downstream, upstream, only_failed };
            send(&dag_id, &run_id, request, wait, &meta)
        }
        TasksCommand::Mark { dag_id, run_id, task_ids, state, downstream, upstream, wait, meta } => {
            let action = match state {
                MarkState::Success => RequestAction::MarkSuccess,
                MarkState::Failed => RequestAction::MarkFailed,
                MarkState::Skipped => RequestAction::MarkSkipped,
            };
            send(&dag_id, &run_id, Request { action, task_ids, downstream, upstream, only_failed: false }, wait, &meta)
        }
    }
}

/// A clear or mark request as the command line gives it.
pub struct Request {
    pub action: RequestAction,
    pub task_ids: Vec<String>,
    pub downstream: bool,
    pub upstream: bool,
    pub only_failed: bool,
}

/// Records a request for the scheduler, after checking that the run and its tasks exist.
pub fn send(dag_id: &str, run_id: &str, request: Request, wait: bool, meta: &MetaArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let db = meta.db().await?;
        let Some(run) = db.get_run(dag_id, run_id).await? else {
            bail!("no run `{run_id}` of DAG `{dag_id}`: `updraft dags list-runs {dag_id}` lists them");
        };
        let known: Vec<String> =
            db.task_instances(run.id).await?.into_iter().map(|t| t.task_id.into_string()).collect();
        // A queued run has no task instances yet; the scheduler checks the ids when it starts it.
        if !known.is_empty() {
            let unknown: Vec<&str> =
                request.task_ids.iter().filter(|t| !known.contains(t)).map(String::as_str).collect();
            if !unknown.is_empty() {
                bail!("run `{run_id}` of `{dag_id}` has no task {}: check the task ids", unknown.join(", "));
            }
        }
        let action = request.action;
        let id = db
            .request(&NewRequest {
                run_pk: run.id,
                action,
                task_ids: request.task_ids,
                downstream: request.downstream,
                upstream: request.upstream,
                only_failed: request.only_failed,
                requested_by: std::env::var("USER").ok(),
            })
            .await?;
        println!("requested {} on {dag_id} run {run_id} (the scheduler carries it out)", action.as_str());
        if wait {
            wait_for_request(&db, id).await?;
            println!("done");
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn run_try(
    dag_id: &str,
    task_id: &str,
    run_id: &str,
    try_number: u32,
    plugin_sha256: Option<String>,
    echo: bool,
    args: &RunArgs,
) -> anyhow::Result<ExitCode> {
    use updraft_executor::{Executor, TryKey, WorkEvent, WorkOutcome};
    if try_number == 0 {
        bail!("--try starts at 1");
    }
    runtime()?.block_on(async {
        let db = args.meta.db().await?;
        let Some(run) = db.get_run(dag_id, run_id).await? else {
            bail!("no run `{run_id}` of DAG `{dag_id}` in the metadata database");
        };
        if !args.dags.exists() {
            bail!(
                "DAGs folder `{}` does not exist: pass --dags DIR or set UPDRAFT__CORE__DAGS_FOLDER",
                args.dags.display()
            );
        }
        let folder = args.dags.clone();
        let bag = tokio::task::spawn_blocking(move || updraft_dagbag::load(&folder, updraft_dag::Options::default()))
            .await
            .unwrap_or_default();
        let Some(loaded) = bag.dags.into_iter().find(|d| d.dag.id == dag_id) else {
            bail!("DAG `{dag_id}` did not load from {}: `updraft dags validate` shows why", args.dags.display());
        };
        let Some(t) = loaded.dag.tasks.iter().position(|task| task.id == task_id) else {
            bail!("DAG `{dag_id}` has no task `{task_id}`");
        };
        let t = u32::try_from(t)?;
        let logs = args.meta.logs(args.http_extra_ca_file.as_deref())?;
        let log = logs.file(updraft_logs::TryLog::new(dag_id, run_id, task_id, try_number));
        let key = TryKey { run_pk: run.id, task_index: t, try_number };
        let outcome = match updraft_scheduler::engine::work_item(&loaded, t, &run, key.clone(), log.path().to_owned()) {
            Err(message) => {
                log.append_line(&format!("[updraft] the task could not start: {message}"))?;
                logs.ship(&log).await;
                WorkOutcome::Failed { message, retryable: false }
            }
            Ok(mut item) => {
                item.plugin_sha256 = plugin_sha256;
                let (registry, pods) = args.worker_registry_with_pods(&db).await?;
                let (sender, mut events) = tokio::sync::mpsc::unbounded_channel();
                // The executor ships the log when the try ends, before it reports the end.
                let executor = updraft_executor_local::LocalExecutor::new(registry, sender, 1)?.with_logs(logs.clone());
                executor.submit(item);
                let mut outcome = None;
                while let Some(event) = events.recv().await {
                    if let WorkEvent::Finished { outcome: o, .. } = event {
                        outcome = Some(o);
                        break;
                    }
                }
                // A try that timed out leaves its operator pod's deletion in flight: finish it.
                pods.settle(Duration::from_secs(30)).await;
                outcome.unwrap_or(WorkOutcome::Failed { message: "the task runner stopped".into(), retryable: true })
            }
        };
        if echo && let Ok(text) = std::fs::read_to_string(log.path()) {
            super::emit(&text)?;
        }
        let result = super::results::to_try_result(&outcome);
        db.record_try_result(run.id, task_id, i32::try_from(try_number)?, &result).await?;
        eprintln!("{dag_id}.{task_id} {run_id} try {try_number}: {}", result.outcome);
        Ok(if matches!(outcome, WorkOutcome::Failed { .. }) { ExitCode::FAILURE } else { ExitCode::SUCCESS })
    })
}

fn states(dag_id: &str, run_id: &str, meta: &MetaArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let db = meta.db().await?;
        let Some(run) = db.get_run(dag_id, run_id).await? else {
            bail!("no run `{run_id}` of DAG `{dag_id}`: `updraft dags list-runs {dag_id}` lists them");
        };
        let mut text = String::new();
        for ti in db.task_instances(run.id).await? {
            text.push_str(&format!("{}\t{}\t{}\n", ti.task_id, ti.state, ti.try_number));
        }
        super::emit(&text)?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn wait_for_request(db: &Db, id: i64) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while db.request_pending(id).await? {
        if std::time::Instant::now() > deadline {
            bail!(
                "no scheduler carried out the request within 2 minutes: is `updraft scheduler` running (and the DAG unpaused)?"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

fn logs(
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    try_number: Option<u32>,
    follow: bool,
    meta: &MetaArgs,
    http_extra_ca_file: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let db = meta.db().await?;
        let Some(run) = db.get_run(dag_id, run_id).await? else {
            bail!("no run `{run_id}` of DAG `{dag_id}`");
        };
        let Some(ti) = db.task_instance(run.id, task_id).await? else {
            bail!("DAG `{dag_id}` has no task `{task_id}` in run `{run_id}`");
        };
        let try_number = try_number.unwrap_or(u32::try_from(ti.try_number).unwrap_or(0));
        if try_number == 0 {
            bail!("task `{task_id}` has not run yet (state {})", ti.state);
        }
        let logs = meta.logs(http_extra_ca_file)?;
        let log = updraft_logs::TryLog::new(dag_id, run_id, task_id, try_number);
        let path = logs.path(&log);
        // Chunk after chunk from the local file, else the remote copy; with --follow, what the
        // try appends too, until it is over and its log has been read to the end.
        let mut offset = 0u64;
        loop {
            let over = !follow || {
                let ti = db.task_instance(run.id, task_id).await?;
                ti.is_none_or(|t| i64::from(try_number) < i64::from(t.try_number) || !t.state.is_in_flight())
            };
            let chunk = logs.read(&log, &path, offset, !over).await?;
            if chunk.origin == updraft_logs::Origin::Nowhere && !follow {
                let remote = logs.remote().map(|r| format!(", nor at {}", r.url_of(&r.key(&log)))).unwrap_or_default();
                bail!("no log for try {try_number} of `{task_id}`: not at {}{remote}", path.display());
            }
            offset = chunk.end;
            let written = {
                let mut out = std::io::stdout().lock();
                out.write_all(&chunk.bytes).and_then(|()| out.flush())
            };
            if written.is_err() {
                return Ok(ExitCode::SUCCESS);
            }
            if !chunk.at_end {
                continue;
            }
            if over {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

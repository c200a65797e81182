//! `updraft dags …`: list, validate and show the DAGs of a DAGs folder; trigger, backfill and
//! test runs; pause and unpause; set a run's state.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use updraft_dag::{Options, export};
use updraft_dagbag::DagBag;
use updraft_db::requests::RequestAction;
use updraft_db::runs::NewRun;
use updraft_types::{RunState, RunType, TaskState, Timestamp};

use super::meta::{MetaArgs, runtime};
use super::scheduler::RunArgs;
use super::standalone::chrono_like;
use super::tasks::Request;

/// Where DAG files are read from.
#[derive(Debug, Args)]
pub struct DagsFolder {
    /// The DAGs folder (or one DAG folder or file).
    #[arg(long = "dags", env = "UPDRAFT__CORE__DAGS_FOLDER", default_value = "dags")]
    pub path: PathBuf,
}

impl DagsFolder {
    fn load(&self, options: Options) -> anyhow::Result<DagBag> {
        if !self.path.exists() {
            bail!(
                "DAGs folder `{}` does not exist: pass --dags DIR or set UPDRAFT__CORE__DAGS_FOLDER",
                self.path.display()
            );
        }
        Ok(updraft_dagbag::load(&self.path, options))
    }
}

#[derive(Debug, Subcommand)]
pub enum DagsCommand {
    /// List the DAGs of the DAGs folder.
    List {
        #[command(flatten)]
        dags: DagsFolder,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        output: ListFormat,
    },
    /// Check DAG files and print every error and warning with its file, line and column.
    ///
    /// Exits 0 when every DAG is valid, 1 otherwise.
    Validate {
        /// DAGs folders, DAG folders or DAG files (default: the --dags folder).
        paths: Vec<PathBuf>,
        #[command(flatten)]
        dags: DagsFolder,
        /// Treat warnings (SQL reading a table `depends_on` does not list, …) as errors.
        #[arg(long)]
        strict: bool,
        /// Print the time taken and the peak memory used.
        #[arg(long)]
        stats: bool,
        /// Folder of third-party operator plugins, whose operators tasks may use (besides
        /// those of the plugin store, read when a metadata database is configured).
        #[arg(long = "plugins", env = "UPDRAFT__CORE__PLUGINS_FOLDER")]
        plugins: Option<PathBuf>,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Trigger a run of a DAG (the scheduler picks it up).
    Trigger {
        dag_id: String,
        /// Run configuration: a JSON object, available to templates as params.
        #[arg(long)]
        conf: Option<String>,
        /// The run id (default: manual__ and the current time).
        #[arg(long)]
        run_id: Option<String>,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Create a run for every schedule interval whose start lies between --from and --to
    /// (inclusive); the scheduler runs them oldest first, within max_active_runs.
    Backfill {
        dag_id: String,
        /// The first logical date (YYYY-MM-DD or an RFC 3339 time).
        #[arg(long)]
        from: String,
        /// The last logical date (YYYY-MM-DD or an RFC 3339 time).
        #[arg(long)]
        to: String,
        /// What to do with dates that already have a run: leave it (`none`), run its failed
        /// tasks again (`failed`), or run it all again (`completed`).
        #[arg(long, value_enum, default_value_t = Reprocess::None)]
        reprocess: Reprocess,
        /// Run configuration for the new runs: a JSON object.
        #[arg(long)]
        conf: Option<String>,
        /// List the intervals without creating runs.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        dags: DagsFolder,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Set the final state of a run by hand: `success` marks its unfinished tasks success;
    /// `failed` fails its running tasks and skips the rest. The scheduler carries it out.
    SetRunState {
        dag_id: String,
        run_id: String,
        #[arg(value_enum)]
        state: FinalRunState,
        /// Wait until a scheduler has carried out the request.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Run one DAG run in this process and print a line per task state change, then a summary.
    Test {
        dag_id: String,
        /// The logical date (YYYY-MM-DD or an RFC 3339 time; default: now).
        #[arg(long)]
        logical_date: Option<String>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// List the runs of a DAG, newest first.
    ListRuns {
        dag_id: String,
        #[arg(long, default_value_t = 25)]
        limit: i64,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Pause a DAG: no new runs start and no new tasks are queued.
    Pause {
        dag_id: String,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Unpause a DAG.
    Unpause {
        dag_id: String,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Show one DAG's graph.
    Show {
        /// The DAG id.
        dag_id: String,
        #[command(flatten)]
        dags: DagsFolder,
        /// `tree` for terminals, `dot` for Graphviz, `json` for the web app's graph.
        #[arg(long, value_enum, default_value_t = ShowFormat::Tree)]
        format: ShowFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Reprocess {
    None,
    Failed,
    Completed,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FinalRunState {
    Success,
    Failed,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ShowFormat {
    Tree,
    Dot,
    Json,
}

pub fn run(command: DagsCommand) -> anyhow::Result<ExitCode> {
    match command {
        DagsCommand::List { dags, output } => list(&dags, output),
        DagsCommand::Validate { paths, dags, strict, stats, plugins, meta } => {
            validate(&paths, &dags, strict, stats, plugins, &meta)
        }
        DagsCommand::Show { dag_id, dags, format } => show(&dag_id, &dags, format),
        DagsCommand::Trigger { dag_id, conf, run_id, meta } => trigger(&dag_id, conf.as_deref(), run_id, &meta),
        DagsCommand::Backfill { dag_id, from, to, reprocess, conf, dry_run, dags, meta } => {
            backfill(&dag_id, (&from, &to), reprocess, conf.as_deref(), dry_run, &dags, &meta)
        }
        DagsCommand::SetRunState { dag_id, run_id, state, wait, meta } => {
            let action = match state {
                FinalRunState::Success => RequestAction::MarkRunSuccess,
                FinalRunState::Failed => RequestAction::MarkRunFailed,
            };
            let request =
                Request { action, task_ids: Vec::new(), downstream: false, upstream: false, only_failed: false };
            super::tasks::send(&dag_id, &run_id, request, wait, &meta)
        }
        DagsCommand::Test { dag_id, logical_date, run } => test(&dag_id, logical_date.as_deref(), &run),
        DagsCommand::ListRuns { dag_id, limit, meta } => list_runs(&dag_id, limit, &meta),
        DagsCommand::Pause { dag_id, meta } => set_paused(&dag_id, true, &meta),
        DagsCommand::Unpause { dag_id, meta } => set_paused(&dag_id, false, &meta),
    }
}

fn list(dags: &DagsFolder, output: ListFormat) -> anyhow::Result<ExitCode> {
    let bag = dags.load(Options::default())?;
    match output {
        ListFormat::Json => {
            let rows: Vec<serde_json::Value> = bag
                .dags
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "dag_id": d.dag.id,
                        "tasks": d.dag.tasks.len(),
                        "schedule": d.dag.schedule.describe(),
                        "tags": d.dag.tags,
                        "owner": d.dag.owner,
                        "file": &*d.dag.file,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        ListFormat::Table => {
            let rows: Vec<[String; 5]> = bag
                .dags
                .iter()
                .map(|d| {
                    [
                        d.dag.id.clone(),
                        d.dag.tasks.len().to_string(),
                        d.dag.schedule.describe(),
                        d.dag.tags.join(","),
                        d.dag.file.to_string(),
                    ]
                })
                .collect();
            print_table(&["dag_id", "tasks", "schedule", "tags", "file"], &rows);
        }
    }
    if !bag.import_errors.is_empty() {
        eprintln!(
            "{} DAG file(s) failed to load: run `updraft dags validate --dags {}` to see why",
            bag.import_errors.len(),
            dags.path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(header: &[&str], rows: &[[String; 5]]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    line(widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().iter().map(String::as_str).collect());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// The installed operators (built-ins, the plugin store and the plugins folder), as the server
/// would load them; the store is only read.
fn operator_catalog(plugins: Option<PathBuf>, meta: &MetaArgs) -> anyhow::Result<updraft_dag::operators::Catalog> {
    runtime()?.block_on(async {
        let mut config = updraft_plugin_host::HostConfig {
            plugins_dir: plugins,
            cache_dir: std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/updraft/components")),
            ..Default::default()
        };
        config.limits.max_instances = 4;
        let (mut backends, _) = updraft_plugin_host::Backends::in_memory();
        backends.plugins = super::plugins::stored_copy(meta).await;
        let registry = updraft_plugin_host::Registry::new(updraft_plugin_host::Runtime::new(config, backends)?).await?;
        Ok(super::scheduler::catalog_of(&registry))
    })
}

fn validate(
    paths: &[PathBuf],
    dags: &DagsFolder,
    strict: bool,
    stats: bool,
    plugins: Option<PathBuf>,
    meta: &MetaArgs,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let catalog = operator_catalog(plugins, meta)?;
    let roots: Vec<&Path> =
        if paths.is_empty() { vec![dags.path.as_path()] } else { paths.iter().map(PathBuf::as_path).collect() };
    let options = Options { strict };
    let (mut valid, mut invalid, mut warnings) = (0usize, 0usize, 0usize);
    for root in roots {
        if !root.exists() {
            eprintln!("error: `{}` does not exist", root.display());
            invalid += 1;
            continue;
        }
        let bag = updraft_dagbag::load(root, options);
        for error in &bag.import_errors {
            for d in &error.diagnostics {
                eprintln!("{d}");
            }
            eprintln!(
                "✗ {}: invalid ({} error(s))",
                error.file.display(),
                error.diagnostics.iter().filter(|d| d.is_error()).count()
            );
            invalid += 1;
        }
        for loaded in &bag.dags {
            for d in &loaded.warnings {
                eprintln!("{d}");
            }
            let problems = updraft_dag::operators::check_operators(&loaded.dag, &catalog);
            if !problems.is_empty() {
                for d in &problems {
                    eprintln!("{d}");
                }
                eprintln!("✗ {}: invalid ({} error(s))", loaded.dag.file, problems.len());
                invalid += 1;
                continue;
            }
            warnings += loaded.warnings.len();
            let dag = &loaded.dag;
            println!(
                "✓ {}: {} tasks, {} edges, {} external tables, {} layers ({})",
                dag.id,
                dag.tasks.len(),
                dag.edge_count(),
                dag.external_tables.len(),
                dag.layer_count(),
                dag.file
            );
            valid += 1;
        }
    }
    println!("{valid} valid DAG(s), {invalid} invalid, {warnings} warning(s)");
    if stats {
        println!(
            "took {:.1} ms, peak RSS {}",
            started.elapsed().as_secs_f64() * 1000.0,
            peak_rss().unwrap_or_else(|| "unknown".to_owned())
        );
    }
    Ok(if invalid == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Peak resident memory of this process, from Linux's /proc.
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.1} MiB", kib / 1024.0))
}

fn show(dag_id: &str, dags: &DagsFolder, format: ShowFormat) -> anyhow::Result<ExitCode> {
    let bag = dags.load(Options::default())?;
    let Some(loaded) = bag.get(dag_id) else {
        if let Some(error) = bag.import_errors.iter().find(|e| e.diagnostics.iter().any(|d| d.message.contains(dag_id)))
        {
            bail!("DAG `{dag_id}` failed to load ({}): run `updraft dags validate` to see why", error.file.display());
        }
        let known: Vec<&str> = bag.dags.iter().map(|d| d.dag.id.as_str()).collect();
        bail!(
            "no DAG `{dag_id}` in {}; DAGs there: {}",
            dags.path.display(),
            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
        );
    };
    let dag = &loaded.dag;
    match format {
        ShowFormat::Tree => super::emit(&export::tree(dag))?,
        ShowFormat::Dot => super::emit(&export::dot(dag))?,
        ShowFormat::Json => {
            let json = serde_json::to_string(&export::graph_json(dag)).context("serialising the graph")?;
            super::emit(&format!("{json}\n"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_conf(conf: Option<&str>) -> anyhow::Result<String> {
    match conf {
        None => Ok("{}".to_owned()),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v @ serde_json::Value::Object(_)) => Ok(v.to_string()),
            Ok(_) => bail!("--conf must be a JSON object, e.g. '{{\"region\": \"eu\"}}'"),
            Err(e) => bail!("--conf is not valid JSON: {e}"),
        },
    }
}

fn parse_logical_date(text: &str) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_micros());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_micros()).unwrap_or_default());
    }
    bail!("--logical-date `{text}` is not a date: write 2026-01-31 or 2026-01-31T03:00:00Z")
}

/// Most runs one backfill creates.
const BACKFILL_LIMIT: usize = 10_000;

fn backfill(
    dag_id: &str,
    (from, to): (&str, &str),
    reprocess: Reprocess,
    conf: Option<&str>,
    dry_run: bool,
    dags: &DagsFolder,
    meta: &MetaArgs,
) -> anyhow::Result<ExitCode> {
    let conf = parse_conf(conf)?;
    let (from, to) = (parse_date_arg("--from", from)?, parse_date_arg("--to", to)?);
    if from > to {
        bail!("--from is after --to: give the earlier date first");
    }
    let bag = dags.load(Options::default())?;
    let Some(loaded) = bag.dags.iter().find(|d| d.dag.id == dag_id) else {
        bail!("no DAG `{dag_id}` in {}: `updraft dags list` shows the DAGs", dags.path.display());
    };
    let dag = &loaded.dag;
    if !matches!(dag.schedule, updraft_dag::Schedule::Cron { .. }) {
        bail!("DAG `{dag_id}` has no cron schedule, so it has no intervals to backfill: use `updraft dags trigger`");
    }
    let spec = updraft_scheduler::timetable::TimetableSpec::of(dag);
    let now = chrono::Utc::now();
    let all = updraft_scheduler::intervals_between(spec, from, to, BACKFILL_LIMIT + 1);
    if all.len() > BACKFILL_LIMIT {
        bail!("the range holds more than {BACKFILL_LIMIT} intervals: backfill a shorter range at a time");
    }
    let (intervals, future): (Vec<_>, Vec<_>) = all.into_iter().partition(|i| i.end <= now);
    if !future.is_empty() {
        eprintln!("{} interval(s) have not ended yet and are left out", future.len());
    }
    if dry_run {
        for i in &intervals {
            println!("{} → {}", i.start.to_rfc3339(), i.end.to_rfc3339());
        }
        println!("{} run(s) would be created (dry run)", intervals.len());
        return Ok(ExitCode::SUCCESS);
    }
    runtime()?.block_on(async {
        let db = meta.db().await?;
        let Some(stored) = db.get_dag(dag_id).await? else {
            bail!("no DAG `{dag_id}` in the metadata database: start `updraft scheduler` on its DAGs folder first");
        };
        let (mut created, mut rerun, mut kept) = (0, 0, 0);
        for interval in &intervals {
            let logical = Timestamp::from_micros(interval.start.timestamp_micros());
            let existing = db.runs_at(dag_id, logical).await?;
            if existing.is_empty() {
                db.insert_run(&NewRun {
                    dag_id: dag_id.into(),
                    run_id: format!("backfill__{}", interval.start.to_rfc3339()).into(),
                    run_type: RunType::Backfill,
                    logical_date: Some(logical),
                    data_interval: Some((logical, Timestamp::from_micros(interval.end.timestamp_micros()))),
                    run_after: Timestamp::from_micros(interval.end.timestamp_micros()),
                    conf: conf.clone(),
                    triggered_by: "backfill".into(),
                    triggering_user: std::env::var("USER").ok(),
                    note: None,
                })
                .await?;
                created += 1;
                continue;
            }
            for run in existing {
                let finished = run.state.is_finished();
                let wanted = match reprocess {
                    Reprocess::None => false,
                    Reprocess::Failed => run.state == RunState::Failed,
                    Reprocess::Completed => finished,
                };
                if !wanted {
                    kept += 1;
                    continue;
                }
                db.request(&updraft_db::requests::NewRequest {
                    run_pk: run.id,
                    action: RequestAction::Clear,
                    task_ids: Vec::new(),
                    downstream: false,
                    upstream: false,
                    only_failed: reprocess == Reprocess::Failed,
                    requested_by: std::env::var("USER").ok(),
                })
                .await?;
                rerun += 1;
            }
        }
        println!(
            "backfill of {dag_id}: {created} run(s) created, {rerun} run(s) to run again, {kept} kept as they are"
        );
        if stored.is_paused {
            println!("note: {dag_id} is paused; its runs start once you unpause it (`updraft dags unpause {dag_id}`)");
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn parse_date_arg(flag: &str, text: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    parse_logical_date(text)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_micros)
        .ok_or_else(|| anyhow::anyhow!("{flag} `{text}` is not a date: write 2026-01-31 or 2026-01-31T03:00:00Z"))
}

fn trigger(dag_id: &str, conf: Option<&str>, run_id: Option<String>, meta: &MetaArgs) -> anyhow::Result<ExitCode> {
    let conf = parse_conf(conf)?;
    runtime()?.block_on(async {
        let db = meta.db().await?;
        if db.get_dag(dag_id).await?.is_none() {
            bail!("no DAG `{dag_id}` in the metadata database: is a scheduler running on its DAGs folder? (`updraft dags list --dags DIR` lists the files)");
        }
        let now = Timestamp::now();
        let run = db
            .insert_run(&NewRun {
                dag_id: dag_id.into(),
                run_id: run_id.unwrap_or_else(|| format!("manual__{}", chrono_like(now.as_micros()))).into(),
                run_type: RunType::Manual,
                logical_date: Some(now),
                data_interval: Some((now, now)),
                run_after: now,
                conf,
                triggered_by: "cli".into(),
                triggering_user: std::env::var("USER").ok(),
                note: None,
            })
            .await?;
        println!("triggered {} run {} (queued)", run.dag_id, run.run_id);
        Ok(ExitCode::SUCCESS)
    })
}

fn set_paused(dag_id: &str, paused: bool, meta: &MetaArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        meta.db().await?.set_paused(dag_id, paused).await?;
        println!("{dag_id} {}", if paused { "paused" } else { "unpaused" });
        Ok(ExitCode::SUCCESS)
    })
}

fn test(dag_id: &str, logical_date: Option<&str>, run: &RunArgs) -> anyhow::Result<ExitCode> {
    let logical = logical_date.map(parse_logical_date).transpose()?;
    runtime()?.block_on(async {
        let db = updraft_db::Db::connect(&run.meta.url()?).await?;
        db.migrate().await?;
        let (mut engine, _executor) = run.engine(&db, true).await?;
        let now = Timestamp::now();
        let logical = logical.map_or(now, Timestamp::from_micros);
        let run_id = format!("test__{}", chrono_like(now.as_micros()));
        db.insert_run(&NewRun {
            dag_id: dag_id.into(),
            run_id: run_id.as_str().into(),
            run_type: RunType::Manual,
            logical_date: Some(logical),
            data_interval: Some((logical, logical)),
            run_after: now,
            conf: "{}".into(),
            triggered_by: "test".into(),
            triggering_user: None,
            note: None,
        })
        .await?;
        let started = Instant::now();
        let counts = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<String, usize>::new()));
        let seen = counts.clone();
        engine.observe(Box::new(move |update| {
            use TaskState::*;
            if matches!(
                update.state,
                Running | Success | Failed | Skipped | UpstreamFailed | UpForRetry | UpForReschedule
            ) {
                println!("{:>9.3}s  {:<16} {}", started.elapsed().as_secs_f64(), update.state, update.task_id);
            }
            if let Ok(mut c) = seen.lock()
                && update.state.is_finished()
            {
                *c.entry(update.state.to_string()).or_default() += 1;
            }
        }));
        let state = engine.run_only(dag_id, &run_id).await?;
        let elapsed = started.elapsed().as_secs_f64();
        println!("\nrun {run_id}: {state} in {elapsed:.3}s");
        if let Ok(counts) = counts.lock() {
            let total: usize = counts.values().sum();
            for (state, n) in counts.iter() {
                println!("  {state:<16} {n}");
            }
            println!("  {:<16} {total} ({:.0} task instances/s)", "total", total as f64 / elapsed.max(1e-9));
        }
        Ok(if state == RunState::Success { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    })
}

fn list_runs(dag_id: &str, limit: i64, meta: &MetaArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let mut text = String::new();
        for run in meta.db().await?.list_runs(dag_id, limit, 0).await? {
            text.push_str(&format!("{}\t{}\t{}\n", run.run_id, run.state, run.run_type));
        }
        super::emit(&text)?;
        Ok(ExitCode::SUCCESS)
    })
}

//! `updraft db migrate|check|clean`: the schema of the metadata database, and retention.
//! Kubernetes runs `db migrate` as the scheduler's init container and `db check --wait` as the
//! API server's; `db clean --older-than 90d` (Airflow's `db clean`) removes old finished runs
//! with everything they left: rows, and log files, local and remote.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use updraft_db::clean::CleanCounts;
use updraft_db::{Db, SchemaStatus};
use updraft_logs::{RemovedLogs, TaskLogs};

use super::meta::{MetaArgs, describe, runtime};

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply every pending migration (safe to run again, and from several processes at once).
    Migrate {
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Exit 0 when the schema is current, 1 otherwise.
    Check {
        #[command(flatten)]
        meta: MetaArgs,
        /// Keep checking for up to SECS seconds (while another process migrates).
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        wait: u64,
    },
    /// Remove finished runs older than a cutoff with their task instances, XComs, try results,
    /// requests and logs (local and remote), in batches. Runs queued or running are never
    /// touched, nor the newest scheduled run of each DAG (its timetable continues from it).
    Clean {
        #[command(flatten)]
        meta: MetaArgs,
        /// Remove runs that ended longer ago than this: `90d`, `12h`, `2w`.
        #[arg(long, value_name = "DURATION", required_unless_present = "clean_before_timestamp")]
        older_than: Option<String>,
        /// Remove runs that ended before this time (RFC 3339, e.g. `2026-01-01T00:00:00Z`).
        #[arg(long, value_name = "TIMESTAMP", conflicts_with = "older_than")]
        clean_before_timestamp: Option<String>,
        /// Only count what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Remove without asking for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Runs removed per transaction.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch_size: u32,
    },
}

pub fn run(command: DbCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match command {
            DbCommand::Migrate { meta } => {
                let db = Db::connect(&meta.url()?).await?;
                let status = db.migrate().await?;
                println!("{}", describe(&status));
                Ok(ExitCode::SUCCESS)
            }
            DbCommand::Check { meta, wait } => {
                let status = Db::wait_until_current(&meta.url()?, Duration::from_secs(wait)).await?;
                println!("{}", describe(&status));
                Ok(if matches!(status, SchemaStatus::Current { .. }) {
                    ExitCode::SUCCESS
                } else {
                    eprintln!("run `updraft db migrate` (the scheduler's init container does)");
                    ExitCode::FAILURE
                })
            }
            DbCommand::Clean { meta, older_than, clean_before_timestamp, dry_run, yes, batch_size } => {
                let cutoff = cutoff(older_than.as_deref(), clean_before_timestamp.as_deref())?;
                let db = meta.db().await?;
                let logs = meta.logs()?;
                clean(&db, &logs, cutoff, Clean { dry_run, yes, batch_size: i64::from(batch_size) }).await
            }
        }
    })
}

/// The cutoff in µs since the epoch, from `--older-than` or `--clean-before-timestamp`.
fn cutoff(older_than: Option<&str>, before: Option<&str>) -> anyhow::Result<i64> {
    if let Some(text) = before {
        let time = chrono::DateTime::parse_from_rfc3339(text).with_context(|| {
            format!("--clean-before-timestamp `{text}` is not an RFC 3339 time such as 2026-01-01T00:00:00Z")
        })?;
        return Ok(time.timestamp_micros());
    }
    let text = older_than.unwrap_or_default();
    let age = updraft_dag::duration::parse(text).map_err(|e| anyhow::anyhow!("--older-than: {e}"))?;
    let age = i64::try_from(age.as_micros()).unwrap_or(i64::MAX);
    Ok(updraft_db::now_us().saturating_sub(age))
}

struct Clean {
    dry_run: bool,
    yes: bool,
    batch_size: i64,
}

/// Counts what the cutoff takes, asks, then removes it batch by batch: each batch's rows in
/// one transaction, then the logs of the runs that transaction removed.
async fn clean(db: &Db, logs: &TaskLogs, cutoff: i64, how: Clean) -> anyhow::Result<ExitCode> {
    let when = chrono::DateTime::from_timestamp_micros(cutoff)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| cutoff.to_string());
    let (mut rows, mut files) = (CleanCounts::default(), RemovedLogs::default());
    let mut after = 0;
    loop {
        let batch = db.runs_to_clean(cutoff, after, how.batch_size).await?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        let ids: Vec<i64> = batch.iter().map(|r| r.id).collect();
        rows.add(db.count_run_rows(&ids).await?);
        for run in &batch {
            add_logs(&mut files, logs.remove_run(&run.dag_id, &run.run_id, true).await?);
        }
    }
    super::emit(&report(&format!("finished runs that ended before {when}; would remove:"), &rows, &files))?;
    if how.dry_run {
        println!("dry run: nothing was removed");
        return Ok(ExitCode::SUCCESS);
    }
    if rows.dag_run == 0 {
        println!("nothing to remove");
        return Ok(ExitCode::SUCCESS);
    }
    if !how.yes && !confirm(rows.dag_run)? {
        bail!("not confirmed: nothing was removed (pass --yes to remove without the question)");
    }
    let (mut removed, mut removed_files, mut failed_logs) = (CleanCounts::default(), RemovedLogs::default(), 0);
    after = 0;
    loop {
        let batch = db.runs_to_clean(cutoff, after, how.batch_size).await?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        let ids: Vec<i64> = batch.iter().map(|r| r.id).collect();
        let (counts, deleted) = db.delete_runs(&ids, cutoff).await?;
        removed.add(counts);
        for run in batch.iter().filter(|r| deleted.contains(&r.id)) {
            match logs.remove_run(&run.dag_id, &run.run_id, false).await {
                Ok(done) => add_logs(&mut removed_files, done),
                Err(error) => {
                    failed_logs += 1;
                    tracing::error!(%error, dag_id = %run.dag_id, run_id = %run.run_id, "the run's logs were not removed");
                }
            }
        }
        eprintln!("removed {} run(s) up to id {after}", counts.dag_run);
    }
    super::emit(&report(&format!("finished runs that ended before {when}; removed:"), &removed, &removed_files))?;
    if failed_logs > 0 {
        bail!(
            "the logs of {failed_logs} removed run(s) could not be removed (see the errors above); remove them by hand"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn add_logs(total: &mut RemovedLogs, more: RemovedLogs) {
    total.local_files += more.local_files;
    total.remote_objects += more.remote_objects;
}

/// One line per table, then the log files.
fn report(title: &str, rows: &CleanCounts, files: &RemovedLogs) -> String {
    let mut text = format!("{title}\n");
    for (table, n) in rows.tables().into_iter().rev() {
        text.push_str(&format!("  {table:<16} {n}\n"));
    }
    text.push_str(&format!("  {:<16} {}\n", "local log files", files.local_files));
    text.push_str(&format!("  {:<16} {}\n", "remote logs", files.remote_objects));
    text
}

/// Asks on the terminal; anything but `y`/`yes` (or no answer) is a no.
fn confirm(runs: u64) -> anyhow::Result<bool> {
    use std::io::Write;
    eprint!("remove these {runs} run(s), their rows and their logs? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

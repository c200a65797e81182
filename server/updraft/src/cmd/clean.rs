//! `updraft db clean` (Airflow's `db clean`): retention. Finished runs older than a cutoff are
//! counted, then (after a confirmation, unless `--yes`) removed batch by batch with everything
//! they left: their rows in the metadata database, and their log files, local and remote.

use std::process::ExitCode;

use anyhow::{Context, bail};
use updraft_db::Db;
use updraft_db::clean::CleanCounts;
use updraft_logs::{RemovedLogs, TaskLogs};

/// The cutoff in µs since the epoch, from `--older-than` or `--clean-before-timestamp`.
pub fn cutoff(older_than: Option<&str>, before: Option<&str>) -> anyhow::Result<i64> {
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

pub struct Clean {
    pub dry_run: bool,
    pub yes: bool,
    pub batch_size: i64,
}

/// Counts what the cutoff takes, asks, then removes it batch by batch: each batch's rows in
/// one transaction, then the logs of the runs that transaction removed.
pub async fn clean(db: &Db, logs: &TaskLogs, cutoff: i64, how: Clean) -> anyhow::Result<ExitCode> {
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

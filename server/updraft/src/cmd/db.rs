//! `updraft db migrate|check|clean`: the schema of the metadata database, and retention
//! (`db clean`, in `clean.rs`). Kubernetes runs
//! `db migrate` as the scheduler's init container and `db check --wait` as the API server's:
//! the check keeps trying while the database is unreachable or not migrated yet, saying on
//! stderr what it waits for, and gives up with the last reason when the time is up.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Subcommand;
use updraft_db::{Db, DbError, SchemaStatus};

use super::meta::{MetaArgs, describe, runtime};

/// Seconds a bare `--wait` waits: long enough for a database that starts with the cluster and
/// a scheduler whose init container migrates it.
const DEFAULT_WAIT_SECS: &str = "300";

/// How often a wait that keeps failing for the same reason says so again.
const REPEAT_EVERY: Duration = Duration::from_secs(15);

/// Pause between two checks.
const RETRY_EVERY: Duration = Duration::from_millis(500);

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
        /// Keep checking for up to SECS seconds while the database is unreachable or not yet
        /// migrated (another process migrates it); a bare `--wait` waits 300 s.
        #[arg(long, value_name = "SECS", num_args = 0..=1, default_value_t = 0, default_missing_value = DEFAULT_WAIT_SECS)]
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
        /// A PEM file of CA certificates that HTTPS calls (here: to the remote task logs) trust
        /// besides the platform's roots.
        #[arg(long = "http-extra-ca-file", env = "UPDRAFT__HTTP__EXTRA_CA_FILE", value_name = "PEM")]
        http_extra_ca_file: Option<std::path::PathBuf>,
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
            DbCommand::Check { meta, wait } => Ok(check(&meta.url()?, Duration::from_secs(wait)).await),
            DbCommand::Clean {
                meta,
                older_than,
                clean_before_timestamp,
                dry_run,
                yes,
                batch_size,
                http_extra_ca_file,
            } => {
                use super::clean::{Clean, clean, cutoff};
                let cutoff = cutoff(older_than.as_deref(), clean_before_timestamp.as_deref())?;
                let db = meta.db().await?;
                let logs = meta.logs(http_extra_ca_file.as_deref())?;
                clean(&db, &logs, cutoff, Clean { dry_run, yes, batch_size: i64::from(batch_size) }).await
            }
        }
    })
}

/// What one look at the database found.
enum Seen {
    Current(SchemaStatus),
    /// Not usable yet, and waiting may help: unreachable, empty or behind.
    NotYet(String, Option<SchemaStatus>),
    /// Waiting cannot help: a URL this binary does not speak, or a schema newer than it.
    Never(String, Option<SchemaStatus>),
    /// No answer within the time left (a refused connection is retried by the pool until then).
    Silent,
}

async fn look(url: &str, limit: Duration) -> Seen {
    let attempt = async {
        let db = Db::connect(url).await?;
        let status = db.schema_status().await;
        db.pool().close().await;
        status
    };
    // A database host that drops packets would hold one attempt past the deadline.
    match tokio::time::timeout(limit, attempt).await {
        Err(_) => Seen::Silent,
        Ok(Err(error @ DbError::UnsupportedUrl(_))) => Seen::Never(error.to_string(), None),
        Ok(Err(error)) => Seen::NotYet(error.to_string(), None),
        Ok(Ok(status @ SchemaStatus::Current { .. })) => Seen::Current(status),
        Ok(Ok(status @ SchemaStatus::Ahead { .. })) => Seen::Never(describe(&status), Some(status)),
        Ok(Ok(status)) => Seen::NotYet(describe(&status), Some(status)),
    }
}

/// Checks the schema, retrying for up to `wait`. Progress goes to stderr; the final status to
/// stdout, so scripts can read it.
async fn check(url: &str, wait: Duration) -> ExitCode {
    let start = Instant::now();
    // The last reason seen, and when it was last said.
    let mut last: Option<(String, Option<SchemaStatus>)> = None;
    let mut said: Option<(String, Instant)> = None;
    loop {
        let left = wait.saturating_sub(start.elapsed());
        // One look gets at least the pool's own connect timeout (10 s), so a slow but working
        // database is not cut short; without --wait, a little more than that.
        let limit = if wait.is_zero() { Duration::from_secs(30) } else { left.max(Duration::from_secs(1)) };
        match look(url, limit).await {
            Seen::Current(status) => {
                println!("{}", describe(&status));
                return ExitCode::SUCCESS;
            }
            Seen::Never(reason, status) => return give_up(&reason, status.as_ref(), None),
            Seen::NotYet(reason, status) => last = Some((reason, status)),
            Seen::Silent if last.is_none() => {
                let reason = format!(
                    "cannot connect to the metadata database {} within {} s: nothing answered (refused, unreachable or still \
                     starting); check UPDRAFT__DATABASE__URL and that the database is running",
                    updraft_db::redact(url),
                    limit.as_secs()
                );
                last = Some((reason, None));
            }
            Seen::Silent => {}
        }
        let (reason, status) = last.clone().unwrap_or_default();
        let left = wait.saturating_sub(start.elapsed());
        if left.is_zero() {
            return give_up(&reason, status.as_ref(), (!wait.is_zero()).then_some(wait));
        }
        let repeat = said.as_ref().is_none_or(|(before, at)| *before != reason || at.elapsed() >= REPEAT_EVERY);
        if repeat {
            eprintln!(
                "waiting for the metadata database ({} s of {} s): {reason}",
                start.elapsed().as_secs(),
                wait.as_secs()
            );
            said = Some((reason, Instant::now()));
        }
        tokio::time::sleep(RETRY_EVERY.min(left)).await;
    }
}

/// Reports why the check failed and what to do; `waited` is the time it waited, if it did.
fn give_up(reason: &str, status: Option<&SchemaStatus>, waited: Option<Duration>) -> ExitCode {
    if let Some(status) = status {
        println!("{}", describe(status));
    }
    match waited {
        Some(waited) => eprintln!("error: gave up after {} s: {reason}", waited.as_secs()),
        None if status.is_some() => {}
        None => eprintln!("error: {reason}"),
    }
    if matches!(status, Some(SchemaStatus::Empty | SchemaStatus::Behind { .. })) {
        eprintln!("run `updraft db migrate` (the scheduler's init container does)");
    }
    ExitCode::FAILURE
}

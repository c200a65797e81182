//! `updraft db migrate|check`: the schema of the metadata database. Kubernetes runs
//! `db migrate` as the scheduler's init container and `db check --wait` as the API server's.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use updraft_db::{Db, SchemaStatus};

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
        }
    })
}

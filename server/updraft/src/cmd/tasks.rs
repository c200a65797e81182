//! `updraft tasks logs`: the log of a task try, from the data folder's log tree
//! (`logs/dag_id=…/run_id=…/task_id=…/attempt=N.log`).

use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;

use super::meta::{MetaArgs, runtime};

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
        #[command(flatten)]
        meta: MetaArgs,
    },
}

pub fn run(command: TasksCommand) -> anyhow::Result<ExitCode> {
    let TasksCommand::Logs { dag_id, run_id, task_id, try_number, meta } = command;
    runtime()?.block_on(async {
        let db = meta.db().await?;
        let Some(run) = db.get_run(&dag_id, &run_id).await? else {
            bail!("no run `{run_id}` of DAG `{dag_id}`");
        };
        let Some(ti) = db.task_instance(run.id, &task_id).await? else {
            bail!("DAG `{dag_id}` has no task `{task_id}` in run `{run_id}`");
        };
        let try_number = try_number.unwrap_or(u32::try_from(ti.try_number).unwrap_or(0));
        if try_number == 0 {
            bail!("task `{task_id}` has not run yet (state {})", ti.state);
        }
        let path = meta
            .data_dir
            .join("logs")
            .join(format!("dag_id={dag_id}"))
            .join(format!("run_id={run_id}"))
            .join(format!("task_id={task_id}"))
            .join(format!("attempt={try_number}.log"));
        match std::fs::read_to_string(&path) {
            Ok(text) => super::emit(&text)?,
            Err(e) => bail!("no log for try {try_number} of `{task_id}` at {}: {e}", path.display()),
        }
        Ok(ExitCode::SUCCESS)
    })
}

//! `updraft pools set|list`: named pools of slots that limit how many tasks using them run at
//! once (`pool:` and `pool_slots:` on a task).

use std::process::ExitCode;

use clap::Subcommand;

use super::meta::{MetaArgs, runtime};

#[derive(Debug, Subcommand)]
pub enum PoolsCommand {
    /// Create a pool or change its number of slots.
    Set {
        name: String,
        slots: i32,
        #[arg(default_value = "")]
        description: String,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// List pools and their slots.
    List {
        #[command(flatten)]
        meta: MetaArgs,
    },
}

pub fn run(command: PoolsCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match command {
            PoolsCommand::Set { name, slots, description, meta } => {
                if slots < 0 {
                    anyhow::bail!("a pool needs 0 or more slots, not {slots}");
                }
                let description = (!description.is_empty()).then_some(description.as_str());
                meta.db().await?.set_pool(&name, slots, description).await?;
                println!("pool `{name}`: {slots} slots");
            }
            PoolsCommand::List { meta } => {
                for (name, slots) in meta.db().await?.pools().await? {
                    println!("{name}\t{slots}");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

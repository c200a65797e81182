//! `updraft variables set|get|list|delete`: values tasks read by name, encrypted at rest.

use std::process::ExitCode;

use clap::Subcommand;

use super::meta::{MetaArgs, runtime};

#[derive(Debug, Subcommand)]
pub enum VariablesCommand {
    /// Create or replace a variable.
    Set {
        key: String,
        value: String,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Print a variable's value.
    Get {
        key: String,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// List variable names.
    List {
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Delete a variable.
    Delete {
        key: String,
        #[command(flatten)]
        meta: MetaArgs,
    },
}

pub fn run(command: VariablesCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match command {
            VariablesCommand::Set { key, value, description, meta } => {
                meta.db().await?.set_variable(&meta.encryption_key()?, &key, &value, description.as_deref()).await?;
                println!("variable `{key}` set");
            }
            VariablesCommand::Get { key, meta } => {
                match meta.db().await?.get_variable(&meta.encryption_key()?, &key).await? {
                    Some(value) => println!("{value}"),
                    None => anyhow::bail!("no variable `{key}`: `updraft variables list` shows them"),
                }
            }
            VariablesCommand::List { meta } => {
                for (key, description) in meta.db().await?.list_variables().await? {
                    match description {
                        Some(d) => println!("{key}\t{d}"),
                        None => println!("{key}"),
                    }
                }
            }
            VariablesCommand::Delete { key, meta } => {
                if !meta.db().await?.delete_variable(&key).await? {
                    anyhow::bail!("no variable `{key}`");
                }
                println!("variable `{key}` deleted");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

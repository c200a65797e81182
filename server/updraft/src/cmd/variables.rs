//! `updraft variables set|get|list|delete`: values tasks read by name, encrypted at rest; those
//! from the cluster (`UPDRAFT_VAR_*`, the Secret directory) are read and listed too.

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
    /// Print a variable's value (from the environment, the Secret directory or the database).
    Get {
        key: String,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// List variable keys with where each comes from (never the values).
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
                let db = meta.db().await?;
                let secrets = meta.secrets(&db)?;
                if let Some(origin) = secrets.cluster_origin_of_variable(&key) {
                    eprintln!("note: variable `{key}` is also defined by the {origin}, which wins over this one");
                }
                db.set_variable(secrets.key(), &key, &value, description.as_deref()).await?;
                println!("variable `{key}` set");
            }
            VariablesCommand::Get { key, meta } => {
                let db = meta.db().await?;
                match meta.secrets(&db)?.variable(&key).await? {
                    Some((value, _)) => println!("{value}"),
                    None => anyhow::bail!("no variable `{key}`: `updraft variables list` shows them"),
                }
            }
            VariablesCommand::List { meta } => {
                let db = meta.db().await?;
                let mut text = String::from("KEY\tSOURCE\tDESCRIPTION\n");
                for (key, description, origin) in meta.secrets(&db)?.variables().await? {
                    text.push_str(&format!("{key}\t{origin}\t{}\n", description.unwrap_or_default()));
                }
                super::emit(&text)?;
            }
            VariablesCommand::Delete { key, meta } => {
                let db = meta.db().await?;
                if !db.delete_variable(&key).await? {
                    if let Some(origin) = meta.secrets(&db)?.cluster_origin_of_variable(&key) {
                        anyhow::bail!("variable `{key}` comes from the {origin}: remove it there");
                    }
                    anyhow::bail!("no variable `{key}`");
                }
                println!("variable `{key}` deleted");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

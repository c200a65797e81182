//! `updraft connections add|list|delete`: named connections operators use (the `sql`
//! operator's `connection:`), passwords encrypted at rest and never printed. Connections from
//! the cluster (`UPDRAFT_CONN_*`, the Secret directory) are listed with their source and
//! changed where they are defined.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::meta::{MetaArgs, runtime};

#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    /// Add a connection to the metadata database, from a URI
    /// (`postgres://user:pass@host:5432/db?sslmode=verify-full&sslrootcert=/etc/ca.pem`,
    /// `sqlite:////absolute/file.db`, `sqlite:///relative/to/here.db`) or a JSON object.
    Add {
        /// The connection's id, as tasks name it (`connection: ID`).
        conn_id: String,
        /// The connection as a URI (its query string becomes the connection's extra) or as
        /// Airflow's JSON form (`{"conn_type": "postgres", "host": …}`).
        #[arg(long = "conn-uri")]
        uri: String,
        /// What the connection is for.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// List connections from every source (environment, Secret directory, database), with
    /// where each comes from; passwords hidden.
    List {
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Delete a connection.
    Delete {
        conn_id: String,
        #[command(flatten)]
        meta: MetaArgs,
    },
}

pub fn run(command: ConnectionsCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match command {
            ConnectionsCommand::Add { conn_id, uri, description, meta } => {
                let mut connection =
                    updraft_secrets::uri::parse(&conn_id, &uri).map_err(|e| anyhow::anyhow!("--conn-uri: {e}"))?;
                connection.description = description;
                // Every process (scheduler, task pods) must find the same SQLite file.
                let here = std::env::current_dir().context("reading the current folder")?;
                updraft_secrets::uri::absolutize_sqlite(&mut connection, &here);
                let db = meta.db().await?;
                let secrets = meta.secrets(&db)?;
                if let Some(origin) = secrets.cluster_origin_of_connection(&conn_id) {
                    eprintln!("note: connection `{conn_id}` is also defined by the {origin}, which wins over this one");
                }
                db.add_connection(secrets.key(), &connection).await?;
                println!("connection `{conn_id}` added: {}", connection.redacted_uri());
            }
            ConnectionsCommand::List { meta } => {
                let db = meta.db().await?;
                let mut text = String::from("ID\tURI\tSOURCE\n");
                for (c, origin) in meta.secrets(&db)?.connections().await? {
                    text.push_str(&format!("{}\t{}\t{origin}\n", c.conn_id, c.redacted_uri()));
                }
                super::emit(&text)?;
            }
            ConnectionsCommand::Delete { conn_id, meta } => {
                let db = meta.db().await?;
                if !db.delete_connection(&conn_id).await? {
                    if let Some(origin) = meta.secrets(&db)?.cluster_origin_of_connection(&conn_id) {
                        anyhow::bail!("connection `{conn_id}` comes from the {origin}: remove it there");
                    }
                    anyhow::bail!("no connection `{conn_id}`: `updraft connections list` shows them");
                }
                println!("connection `{conn_id}` deleted");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

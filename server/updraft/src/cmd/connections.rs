//! `updraft connections add|list|delete`: named connections operators use (the `sql`
//! operator's `connection:`), passwords encrypted at rest and never printed.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use updraft_db::secrets::Connection;

use super::meta::{MetaArgs, runtime};

#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    /// Add a connection, from a URI (`postgres://user:pass@host:5432/db`, `sqlite:///path/file.db`).
    Add {
        conn_id: String,
        #[arg(long = "conn-uri")]
        uri: String,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// List connections (passwords hidden).
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

/// Splits `type://login:password@host:port/schema`; percent-escapes in the login and password
/// are decoded.
fn parse_uri(conn_id: &str, uri: &str) -> anyhow::Result<Connection> {
    let (conn_type, rest) = uri
        .split_once("://")
        .with_context(|| format!("`{uri}` is not a URI: write TYPE://[LOGIN[:PASSWORD]@]HOST[:PORT][/SCHEMA]"))?;
    if conn_type.is_empty() {
        anyhow::bail!("the connection URI needs a type, e.g. postgres://…");
    }
    let (authority, schema) = match rest.split_once('/') {
        Some((a, s)) if !s.is_empty() => (a, Some(s.to_owned())),
        Some((a, _)) => (a, None),
        None => (rest, None),
    };
    let (credentials, hostport) = match authority.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, authority),
    };
    let (login, password) = match credentials.map(|c| c.split_once(':').map_or((c, None), |(l, p)| (l, Some(p)))) {
        Some((login, password)) => (Some(decode(login)?), password.map(decode).transpose()?),
        None => (None, None),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() => {
            (h, Some(p.parse::<i32>().with_context(|| format!("port `{p}` is not a number"))?))
        }
        _ => (hostport, None),
    };
    Ok(Connection {
        conn_id: conn_id.to_owned(),
        conn_type: conn_type.to_owned(),
        host: (!host.is_empty()).then(|| host.to_owned()),
        port,
        schema,
        login,
        password,
        extra: None,
        description: None,
    })
}

fn decode(text: &str) -> anyhow::Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).context("bad percent escape")?;
            out.push(u8::from_str_radix(hex, 16).with_context(|| format!("bad percent escape `%{hex}`"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).context("the URI's login or password is not UTF-8")
}

pub fn run(command: ConnectionsCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match command {
            ConnectionsCommand::Add { conn_id, uri, description, meta } => {
                let mut connection = parse_uri(&conn_id, &uri)?;
                connection.description = description;
                meta.db().await?.add_connection(&meta.encryption_key()?, &connection).await?;
                println!("connection `{conn_id}` added: {}", connection.redacted_uri());
            }
            ConnectionsCommand::List { meta } => {
                for c in meta.db().await?.list_connections().await? {
                    println!("{}\t{}", c.conn_id, c.redacted_uri());
                }
            }
            ConnectionsCommand::Delete { conn_id, meta } => {
                if !meta.db().await?.delete_connection(&conn_id).await? {
                    anyhow::bail!("no connection `{conn_id}`: `updraft connections list` shows them");
                }
                println!("connection `{conn_id}` deleted");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        let c = parse_uri("w", "postgres://etl:p%40ss@db.internal:5432/analytics").expect("parses");
        assert_eq!(
            (c.login.as_deref(), c.password.as_deref(), c.host.as_deref(), c.port, c.schema.as_deref()),
            (Some("etl"), Some("p@ss"), Some("db.internal"), Some(5432), Some("analytics"))
        );
        let c = parse_uri("s", "sqlite:///var/data/warehouse.db").expect("parses");
        assert_eq!((c.host, c.schema.as_deref()), (None, Some("var/data/warehouse.db")));
        assert!(parse_uri("x", "just-text").expect_err("no scheme").to_string().contains("is not a URI"));
        assert!(
            parse_uri("x", "postgres://h:port/db")
                .expect_err("bad port")
                .to_string()
                .contains("port `port` is not a number")
        );
    }
}

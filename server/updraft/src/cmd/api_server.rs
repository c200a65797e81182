//! `updraft api-server`: the REST API (`updraft-api`) on a TCP port, over the metadata
//! database every other command uses. Tokens are signed with `UPDRAFT__API__JWT_SECRET`, else
//! with a secret the data folder keeps (created on first use, readable by its owner only);
//! several API servers behind one address need the same secret, so set it for them.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use updraft_api::{ApiConfig, AppState};
use updraft_db::Db;

use super::meta::{MetaArgs, runtime};
use super::scheduler::shutdown_signal;

/// Where the API listens and how long its tokens last.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on (0.0.0.0 for every interface, e.g. in a pod).
    #[arg(long, env = "UPDRAFT__API__HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port of the API server.
    #[arg(long, env = "UPDRAFT__API__PORT", default_value_t = 8080)]
    pub port: u16,
    /// Seconds a token from `POST /auth/token` stays valid.
    #[arg(long = "jwt-expiration-time", env = "UPDRAFT__API__JWT_EXPIRATION_TIME", default_value_t = 86_400)]
    pub jwt_expiration_time: u64,
}

#[derive(Debug, Args)]
pub struct ApiServerArgs {
    #[command(flatten)]
    pub meta: MetaArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `updraft api-server`.
pub fn api_server(args: ApiServerArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let db = args.meta.db().await?;
        serve(db, &args.meta, &args.server, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Serves the API until `shutdown` resolves.
pub async fn serve(
    db: Db,
    meta: &MetaArgs,
    server: &ServerArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (listener, state) = prepare(db, meta, server).await?;
    updraft_api::serve(listener, state, shutdown).await.context("serving the API")?;
    Ok(())
}

/// The API's state and its bound listener (so that a taken port fails the command at once;
/// `updraft standalone` then serves it beside the scheduler).
pub async fn prepare(
    db: Db,
    meta: &MetaArgs,
    server: &ServerArgs,
) -> anyhow::Result<(tokio::net::TcpListener, AppState)> {
    let config = ApiConfig {
        encryption_key: meta.encryption_key()?,
        jwt_secret: jwt_secret(meta)?,
        token_lifetime: Duration::from_secs(server.jwt_expiration_time.max(1)),
        log_dir: meta.data_dir.join("logs"),
    };
    let state = AppState::new(db, config)?;
    let listener = tokio::net::TcpListener::bind((server.host.as_str(), server.port))
        .await
        .with_context(|| format!("cannot listen on {}:{} (is the port taken? use --port)", server.host, server.port))?;
    eprintln!("API server on http://{}/api/v2", listener.local_addr()?);
    Ok((listener, state))
}

/// The token signing secret: `UPDRAFT__API__JWT_SECRET`, else the data folder's
/// `jwt_secret.key` (created on first use).
fn jwt_secret(meta: &MetaArgs) -> anyhow::Result<Vec<u8>> {
    if let Ok(text) = std::env::var("UPDRAFT__API__JWT_SECRET") {
        if text.len() < 32 {
            anyhow::bail!("UPDRAFT__API__JWT_SECRET must be at least 32 characters (e.g. `openssl rand -base64 48`)");
        }
        return Ok(text.into_bytes());
    }
    let path = meta.data_dir.join("jwt_secret.key");
    if !path.exists() {
        std::fs::create_dir_all(&meta.data_dir)?;
        super::meta::write_private(&path, &updraft_api::generate_secret())?;
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.trim().as_bytes().to_vec())
}

//! The `updraft` command line: one binary for every role (CLI, scheduler, API server, task
//! worker). Each subcommand lives in its own module under `cmd/`; this file only declares the
//! command tree, which is shaped like Airflow's so that Airflow users feel at home.

mod cmd;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Subcommand};

// Loading a DAGs folder allocates many small values from two threads; mimalloc is markedly
// faster at that than glibc's allocator (see the README's performance section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Updraft: workflows as YAML, operators as WebAssembly, tasks as pods.
#[derive(Debug, clap::Parser)]
#[command(name = "updraft", version, about, propagate_version = true)]
struct Cli {
    /// A TOML configuration file: `[section] key = value` sets the default of the option read
    /// from `UPDRAFT__SECTION__KEY` (default: ./updraft.toml when it exists).
    #[arg(long, global = true, env = "UPDRAFT_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// How the processes log to standard error: `text` for people, `json` (one object per
    /// line) for log collectors.
    #[arg(long, global = true, value_enum, env = "UPDRAFT__LOGGING__FORMAT", default_value = "text")]
    log_format: cmd::logging::LogFormat,
    /// The least severe events logged (`error`, `warn`, `info`, `debug`, `trace`), or a filter
    /// such as `info,kube=warn`; RUST_LOG wins when set.
    #[arg(long, global = true, env = "UPDRAFT__LOGGING__LEVEL", default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

/// Parses the command line with the configuration file's settings as defaults.
fn parse() -> anyhow::Result<Cli> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut command = Cli::command();
    let config = match cmd::config::locate(&args) {
        Some(path) => cmd::config::read(&path)?,
        None => cmd::config::Config::default(),
    };
    command = cmd::config::apply(command, &config.settings)?;
    cmd::config::init_plugin_grants(&config.plugins)?;
    let matches = command.get_matches_from(args);
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => Ok(cli),
        Err(error) => error.exit(),
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the REST API server (Airflow-compatible /api/v2).
    ApiServer(cmd::api_server::ApiServerArgs),
    /// Inspect and check DAG files.
    #[command(subcommand)]
    Dags(cmd::dags::DagsCommand),
    /// Create or check the metadata database schema.
    #[command(subcommand)]
    Db(cmd::db::DbCommand),
    /// Manage variables (values tasks read by name, encrypted at rest).
    #[command(subcommand)]
    Variables(cmd::variables::VariablesCommand),
    /// Manage connections (databases and services operators use).
    #[command(subcommand)]
    Connections(cmd::connections::ConnectionsCommand),
    /// Manage operator plugins (WebAssembly components).
    #[command(subcommand)]
    Plugins(cmd::plugins::PluginsCommand),
    /// Manage pools (limits on tasks running at once).
    #[command(subcommand)]
    Pools(cmd::pools::PoolsCommand),
    /// Run the scheduler with the local executor.
    Scheduler(cmd::scheduler::RunArgs),
    /// Run everything in one process on the embedded default (SQLite in --data-dir).
    Standalone(cmd::standalone::StandaloneArgs),
    /// Task instances: logs.
    #[command(subcommand)]
    Tasks(cmd::tasks::TasksCommand),
    /// Manage users of the API server and the web app.
    #[command(subcommand)]
    Users(cmd::users::UsersCommand),
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    cmd::logging::init(cli.log_format, &cli.log_level);
    let result = match cli.command {
        Command::ApiServer(args) => cmd::api_server::api_server(args),
        Command::Dags(command) => cmd::dags::run(command),
        Command::Db(command) => cmd::db::run(command),
        Command::Variables(command) => cmd::variables::run(command),
        Command::Connections(command) => cmd::connections::run(command),
        Command::Plugins(command) => cmd::plugins::run(command, cmd::config::grants()),
        Command::Pools(command) => cmd::pools::run(command),
        Command::Scheduler(args) => cmd::scheduler::scheduler(args),
        Command::Standalone(args) => cmd::standalone::standalone(args),
        Command::Tasks(command) => cmd::tasks::run(command),
        Command::Users(command) => cmd::users::run(command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

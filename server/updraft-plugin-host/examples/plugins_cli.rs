//! Compiles and runs `updraft plugins …` (`server/updraft/src/cmd/plugins.rs`) on its own, so
//! the subcommand is built and tested with this crate:
//! `cargo run -p updraft-plugin-host --example plugins_cli -- list`.

#[path = "../../updraft/src/cmd/plugins.rs"]
mod plugins;

use std::process::ExitCode;

use clap::Parser;

/// `updraft plugins`, standalone.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: plugins::PluginsCommand,
}

fn main() -> ExitCode {
    match plugins::run(Cli::parse().command, Default::default()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

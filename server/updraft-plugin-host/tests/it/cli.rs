//! `updraft plugins …` (the subcommand module of the `updraft` binary, compiled in here):
//! validate, install, list, inspect and new, on real files.

use std::process::ExitCode;

use crate::plugins_cmd::{OutputFormat, PluginsCommand, PluginsFolder};
use crate::support::guest;

/// Runs the subcommand as the binary does, with no `[plugins.NAME]` grants configured.
fn run(command: PluginsCommand) -> anyhow::Result<ExitCode> {
    crate::plugins_cmd::run(command, Default::default())
}

/// `updraft plugins` as clap sees it inside the `updraft` binary.
#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(subcommand)]
    command: PluginsCommand,
}

#[test]
fn command_line_is_well_formed_and_parses() {
    use clap::{CommandFactory, Parser};
    Cli::command().debug_assert();
    let cli = Cli::try_parse_from(["plugins", "install", "x.wasm", "--plugins", "/srv/p"]).expect("parse");
    match cli.command {
        PluginsCommand::Install { file, folder } => {
            assert_eq!(file, std::path::Path::new("x.wasm"));
            assert_eq!(folder.path, std::path::Path::new("/srv/p"));
        }
        other => panic!("{other:?}"),
    }
}

fn folder(path: &std::path::Path) -> PluginsFolder {
    PluginsFolder { path: path.to_owned(), cache: None }
}

#[test]
fn validate_install_list_inspect_and_new() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("v1.wasm");
    std::fs::write(&good, guest("fixture_versioned_v1")).expect("write");
    let bad = dir.path().join("bad.wasm");
    std::fs::write(&bad, b"nope").expect("write");

    let ok = run(PluginsCommand::Validate { paths: vec![good.clone()] }).expect("validate");
    assert_eq!(ok, ExitCode::SUCCESS);
    let ko = run(PluginsCommand::Validate { paths: vec![good.clone(), bad.clone()] }).expect("validate");
    assert_eq!(ko, ExitCode::FAILURE);

    let plugins = dir.path().join("plugins");
    let code = run(PluginsCommand::Install { file: good, folder: folder(&plugins) }).expect("install");
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(plugins.join("versioned.wasm").is_file());
    let names: Vec<_> = std::fs::read_dir(&plugins).expect("dir").map(|e| e.expect("e").file_name()).collect();
    assert_eq!(names.len(), 1, "no temporary file is left behind: {names:?}");
    let refused = run(PluginsCommand::Install { file: bad.clone(), folder: folder(&plugins) });
    assert!(refused.is_err());

    let list = run(PluginsCommand::List { folder: folder(&plugins), output: OutputFormat::Json }).expect("list");
    assert_eq!(list, ExitCode::SUCCESS);
    std::fs::copy(&bad, plugins.join("bad.wasm")).expect("copy");
    let list = run(PluginsCommand::List { folder: folder(&plugins), output: OutputFormat::Table }).expect("list");
    assert_eq!(list, ExitCode::FAILURE, "an invalid file makes `list` exit 1");

    let inspect =
        PluginsCommand::Inspect { operator: "versioned".into(), folder: folder(&plugins), output: OutputFormat::Table };
    assert_eq!(run(inspect).expect("inspect"), ExitCode::SUCCESS);
    let unknown =
        PluginsCommand::Inspect { operator: "nope".into(), folder: folder(&plugins), output: OutputFormat::Json };
    let err = run(unknown).expect_err("unknown");
    assert!(err.to_string().contains("no operator named \"nope\""), "{err}");

    let new = PluginsCommand::New { name: "hello_op".into(), dir: dir.path().to_owned(), sdk: None };
    assert_eq!(run(new).expect("new"), ExitCode::SUCCESS);
    assert!(dir.path().join("hello_op/src/lib.rs").is_file());
}

//! `updraft plugins …`: list, inspect, validate and install operator plugins, and scaffold a
//! new one. Every command loads plugins exactly as the server does (same runtime, same checks),
//! so "valid here" means "loads in the server".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use updraft_plugin_host::{
    Backends, FileStatus, Grants, HostConfig, Plugin, PluginSource, Registry, Runtime, scaffold,
};

/// Where third-party plugins live.
#[derive(Debug, Args)]
pub struct PluginsFolder {
    /// The plugins folder (`.wasm` components; the server watches it).
    #[arg(id = "plugins_folder", long = "plugins", env = "UPDRAFT__CORE__PLUGINS_FOLDER", default_value = "plugins")]
    pub path: PathBuf,
    /// Folder of compiled components, shared with the server to skip recompiling.
    #[arg(id = "plugin_cache_folder", long = "cache", env = "UPDRAFT__CORE__PLUGIN_CACHE_FOLDER")]
    pub cache: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List the available operators (built-in and plugins folder) and any invalid files.
    List {
        #[command(flatten)]
        folder: PluginsFolder,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Show an operator's description, capabilities and parameter schema.
    Inspect {
        /// An operator name, or the path of a `.wasm` file.
        operator: String,
        #[command(flatten)]
        folder: PluginsFolder,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Check that `.wasm` files are operators the server will load. Exits 1 if any is not.
    Validate {
        /// The `.wasm` files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Validate a `.wasm` file and copy it into the plugins folder as `NAME.wasm`; running
    /// servers pick it up within a second, tasks already running keep their version.
    Install {
        /// The `.wasm` file.
        file: PathBuf,
        #[command(flatten)]
        folder: PluginsFolder,
    },
    /// Create a new operator crate that builds with `cargo build --release --target wasm32-wasip2`.
    New {
        /// The operator name (lowercase letters, digits and _).
        name: String,
        /// Where to create the crate's folder.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Path of the updraft-plugin-sdk crate (default: the one in this source tree).
        #[arg(long, env = "UPDRAFT_PLUGIN_SDK")]
        sdk: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// Runs a `plugins` subcommand; `grants` are the configuration's `[plugins.NAME]` tables, which
/// `inspect` shows.
pub fn run(command: PluginsCommand, grants: BTreeMap<String, Grants>) -> anyhow::Result<ExitCode> {
    if let PluginsCommand::New { name, dir, sdk } = &command {
        return new(name, dir, sdk.as_deref());
    }
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    tokio.block_on(async {
        match command {
            PluginsCommand::List { folder, output } => list(&folder, output).await,
            PluginsCommand::Inspect { operator, folder, output } => inspect(&operator, &folder, output, grants).await,
            PluginsCommand::Validate { paths } => validate(&paths).await,
            PluginsCommand::Install { file, folder } => install(&file, &folder).await,
            PluginsCommand::New { .. } => Ok(ExitCode::SUCCESS),
        }
    })
}

/// A runtime sized for a command-line tool (a handful of instances, not the server's pool).
fn runtime(folder: Option<&PluginsFolder>, grants: BTreeMap<String, Grants>) -> anyhow::Result<Arc<Runtime>> {
    let mut config = HostConfig { plugins: grants, ..HostConfig::default() };
    config.limits.max_instances = 8;
    if let Some(folder) = folder {
        config.plugins_dir = Some(folder.path.clone());
        config.cache_dir = folder.cache.clone();
    }
    let (backends, _) = Backends::in_memory();
    Ok(Runtime::new(config, backends)?)
}

async fn registry(folder: &PluginsFolder, grants: BTreeMap<String, Grants>) -> anyhow::Result<Arc<Registry>> {
    if !folder.path.is_dir() {
        eprintln!(
            "note: plugins folder `{}` does not exist; showing built-in operators only (pass --plugins DIR)",
            folder.path.display()
        );
    }
    Ok(Registry::new(runtime(Some(folder), grants)?).await?)
}

fn source(plugin: &Plugin) -> String {
    match &plugin.source {
        PluginSource::Builtin => "built-in".to_owned(),
        PluginSource::File(p) => p.display().to_string(),
    }
}

async fn list(folder: &PluginsFolder, output: OutputFormat) -> anyhow::Result<ExitCode> {
    let registry = registry(folder, BTreeMap::new()).await?;
    let plugins = registry.plugins();
    let invalid: Vec<_> = registry
        .files()
        .into_iter()
        .filter_map(|f| match f.status {
            FileStatus::Invalid { reason } => Some((f.path, reason)),
            FileStatus::Loaded { .. } => None,
        })
        .collect();
    match output {
        OutputFormat::Json => {
            let operators: Vec<_> = plugins
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "name": p.descriptor.name,
                        "version": p.descriptor.version,
                        "summary": p.descriptor.summary,
                        "capabilities": p.descriptor.capabilities,
                        "source": source(p),
                        "sha256": p.sha256,
                    })
                })
                .collect();
            let invalid: Vec<_> = invalid.iter().map(|(p, r)| serde_json::json!({"path": p, "reason": r})).collect();
            println!("{:#}", serde_json::json!({"operators": operators, "invalid": invalid}));
        }
        OutputFormat::Table => {
            println!("{:<20} {:<10} {:<12} {:<30} SUMMARY", "NAME", "VERSION", "CAPABILITIES", "SOURCE");
            for p in &plugins {
                let caps =
                    if p.descriptor.capabilities.is_empty() { "-".into() } else { p.descriptor.capabilities.join(",") };
                println!(
                    "{:<20} {:<10} {:<12} {:<30} {}",
                    p.descriptor.name,
                    p.descriptor.version,
                    caps,
                    source(p),
                    p.descriptor.summary
                );
            }
            // The reason starts with the file's path.
            for (_, reason) in &invalid {
                println!("INVALID {reason}");
            }
        }
    }
    Ok(if invalid.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn inspect(
    operator: &str,
    folder: &PluginsFolder,
    output: OutputFormat,
    grants: BTreeMap<String, Grants>,
) -> anyhow::Result<ExitCode> {
    let plugin = if operator.ends_with(".wasm") || Path::new(operator).is_file() {
        let bytes = std::fs::read(operator).with_context(|| format!("reading {operator}"))?;
        runtime(None, grants)?.load(bytes, PluginSource::File(operator.into())).await?
    } else {
        registry(folder, grants).await?.get(operator)?
    };
    let d = &plugin.descriptor;
    match output {
        OutputFormat::Json => {
            let mut value = serde_json::to_value(d)?;
            value["granted"] = serde_json::to_value(plugin.grants())?;
            println!("{value:#}");
        }
        OutputFormat::Table => {
            println!("name:         {}", d.name);
            println!("version:      {}", d.version);
            println!("summary:      {}", d.summary);
            println!("source:       {}", source(&plugin));
            println!("sha256:       {}", plugin.sha256);
            println!("size:         {} bytes", plugin.size_bytes);
            let caps = if d.capabilities.is_empty() { "none".to_owned() } else { d.capabilities.join(", ") };
            println!("capabilities: {caps}");
            print_grants(plugin.grants());
            println!("params schema:\n{:#}", d.params_schema);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What the configuration grants a plugin (`[plugins.NAME]`), one line per kind.
fn print_grants(grants: &updraft_plugin_host::Grants) {
    let list = |items: &[String]| if items.is_empty() { "none".to_owned() } else { items.join(", ") };
    println!("granted:");
    println!("  connections:           {}", list(&grants.connections));
    println!("  allow_http_hosts:      {}", list(&grants.allow_http_hosts));
    println!("  variables:             {}", list(&grants.variables));
    println!("  kubernetes_namespaces: {}", list(&grants.kubernetes_namespaces));
    let limit = |value: Option<u64>, unit: &str| value.map_or("the deployment's".to_owned(), |v| format!("{v} {unit}"));
    println!("  memory_bytes:          {}", limit(grants.memory_bytes, "bytes"));
    println!("  max_cpu_ms:            {}", limit(grants.max_cpu_ms, "ms"));
    println!("  timeout_seconds:       {}", limit(grants.timeout_seconds, "s"));
}

async fn validate(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let rt = runtime(None, BTreeMap::new())?;
    let mut failed = 0;
    for path in paths {
        let loaded = match std::fs::read(path) {
            Ok(bytes) => rt.load(bytes, PluginSource::File(path.clone())).await.map_err(anyhow::Error::from),
            Err(e) => Err(anyhow::Error::from(e).context(format!("reading {}", path.display()))),
        };
        match loaded {
            Ok(p) => println!("ok: {}: operator {} {}", path.display(), p.descriptor.name, p.descriptor.version),
            Err(e) => {
                failed += 1;
                println!("invalid: {e:#}");
            }
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn install(path: &Path, folder: &PluginsFolder) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let plugin = runtime(None, BTreeMap::new())?.load(bytes.clone(), PluginSource::File(path.to_owned())).await?;
    let name = &plugin.descriptor.name;
    if updraft_plugin_host::builtin_names().contains(&name.as_str()) {
        eprintln!("note: {name} shadows the built-in operator of the same name");
    }
    std::fs::create_dir_all(&folder.path).with_context(|| format!("creating {}", folder.path.display()))?;
    let dest = folder.path.join(format!("{name}.wasm"));
    // Written under another name and renamed: a watching server never reads half a file.
    let tmp = folder.path.join(format!(".{name}.wasm.partial"));
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &dest).with_context(|| format!("moving into {}", dest.display()))?;
    println!("installed {name} {} as {}", plugin.descriptor.version, dest.display());
    Ok(ExitCode::SUCCESS)
}

fn new(name: &str, dir: &Path, sdk: Option<&Path>) -> anyhow::Result<ExitCode> {
    let sdk = sdk.map(Path::to_path_buf).unwrap_or_else(scaffold::default_sdk_path);
    if !sdk.join("Cargo.toml").is_file() {
        bail!(
            "the plugin SDK is not at {}: pass --sdk PATH/TO/plugins/updraft-plugin-sdk (or set UPDRAFT_PLUGIN_SDK)",
            sdk.display()
        );
    }
    let files = scaffold::new_operator(name, dir, &sdk)?;
    for f in &files {
        println!("created {}", f.display());
    }
    let root = dir.join(name);
    println!(
        "\nnext:\n  cd {}\n  cargo test\n  cargo build --release --target wasm32-wasip2\n  updraft plugins install target/wasm32-wasip2/release/{name}.wasm",
        root.display()
    );
    Ok(ExitCode::SUCCESS)
}

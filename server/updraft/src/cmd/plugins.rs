//! `updraft plugins …`: list, inspect, validate, install and delete operator plugins, and
//! scaffold a new one. Plugins live in the plugin store of the metadata database, which every
//! scheduler, API server and task pod reads, so these commands take the database options
//! (`--data-dir`, `UPDRAFT__DATABASE__URL`) like every other. Every command loads plugins exactly
//! as the server does (same runtime, same checks), so "valid here" means "loads in the server".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use updraft_plugin_host::backends::MemoryComponents;
use updraft_plugin_host::{
    Backends, ComponentStore, FileStatus, Grants, HostConfig, Plugin, PluginSource, PluginUpload, Registry, Runtime,
    scaffold, short_hash,
};

use super::meta::MetaArgs;

/// The plugin store (in the metadata database) and this machine's drop-in folder.
#[derive(Debug, Args)]
pub struct PluginsStore {
    #[command(flatten)]
    pub meta: MetaArgs,
    /// The drop-in plugins folder: its valid `.wasm` files are imported into the plugin store,
    /// as a server does (default: DATA_DIR/plugins).
    #[arg(id = "plugins_folder", long = "plugins", env = "UPDRAFT__CORE__PLUGINS_FOLDER")]
    pub folder: Option<PathBuf>,
    /// Folder of compiled components, shared with a server to skip recompiling (default:
    /// DATA_DIR/cache).
    #[arg(id = "plugin_cache_folder", long = "cache", env = "UPDRAFT__CORE__PLUGIN_CACHE_FOLDER")]
    pub cache: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List the available operators (built-in and the plugin store) and any invalid file of
    /// the plugins folder.
    List {
        #[command(flatten)]
        store: PluginsStore,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Show an operator's description, where it comes from, capabilities and parameter schema.
    Inspect {
        /// An operator name, or the path of a `.wasm` file.
        operator: String,
        #[command(flatten)]
        store: PluginsStore,
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
    /// Validate a `.wasm` file and make it the current version of its operator in the plugin
    /// store: every scheduler, API server and task pod of the deployment runs it within
    /// seconds, without a restart; tasks already running keep their version.
    Install {
        /// The `.wasm` file.
        file: PathBuf,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Remove an operator from the plugin store (tries already dispatched with it still run).
    Delete {
        /// The operator name.
        name: String,
        #[command(flatten)]
        meta: MetaArgs,
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
    super::meta::runtime()?.block_on(async {
        match command {
            PluginsCommand::List { store, output } => list(&store, output).await,
            PluginsCommand::Inspect { operator, store, output } => inspect(&operator, &store, output, grants).await,
            PluginsCommand::Validate { paths } => validate(&paths).await,
            PluginsCommand::Install { file, meta } => install(&file, &meta).await,
            PluginsCommand::Delete { name, meta } => delete(&name, &meta).await,
            PluginsCommand::New { .. } => Ok(ExitCode::SUCCESS),
        }
    })
}

/// Where a command's runtime finds plugins: the folder, the component cache, and the
/// configuration's grants.
#[derive(Default)]
struct Places {
    folder: Option<PathBuf>,
    cache: Option<PathBuf>,
    grants: BTreeMap<String, Grants>,
}

/// A runtime sized for a command-line tool (a handful of instances, not the server's pool),
/// on the plugin store of `meta`'s database when given.
async fn runtime(meta: Option<&MetaArgs>, places: Places) -> anyhow::Result<Arc<Runtime>> {
    let mut config = HostConfig {
        plugins_dir: places.folder,
        cache_dir: places.cache,
        plugins: places.grants,
        ..HostConfig::default()
    };
    config.limits.max_instances = 8;
    let (mut backends, _) = Backends::in_memory();
    if let Some(meta) = meta {
        let db = meta.db().await.context("operator plugins are kept in the metadata database")?;
        backends.plugins = updraft_executor_local::db_plugin_store(db);
    }
    Ok(Runtime::new(config, backends)?)
}

/// The registry as a server sees it: built-ins, the plugin store, the drop-in folder imported.
async fn registry(store: &PluginsStore, grants: BTreeMap<String, Grants>) -> anyhow::Result<Arc<Registry>> {
    let data = &store.meta.data_dir;
    let folder = store.folder.clone().unwrap_or_else(|| data.join("plugins"));
    let cache = store.cache.clone().unwrap_or_else(|| data.join("cache"));
    let runtime = runtime(Some(&store.meta), Places { folder: Some(folder), cache: Some(cache), grants }).await?;
    Ok(Registry::new(runtime).await?)
}

/// The deployment's current plugins copied into memory, for checks that must see them but
/// never write the store (`dags validate`, whose `--plugins` folder is imported into the copy
/// only). Empty without a configured database (an embedded default that does not exist yet is
/// not created); a note on standard error when it cannot be read.
pub async fn stored_copy(meta: &MetaArgs) -> Arc<MemoryComponents> {
    let copy = Arc::new(MemoryComponents::default());
    if meta.database_url.is_none() && !meta.data_dir.join("updraft.db").is_file() {
        return copy;
    }
    let copied = async {
        let store = updraft_executor_local::db_plugin_store(meta.db().await?);
        for stored in store.current().await.map_err(anyhow::Error::msg)? {
            let Some(bytes) = store.fetch(&stored.sha256).await.map_err(anyhow::Error::msg)? else { continue };
            let upload = PluginUpload {
                name: stored.name,
                version: stored.version,
                sha256: stored.sha256,
                bytes,
                installed_by: stored.installed_by,
            };
            copy.put(upload).await.map_err(anyhow::Error::msg)?;
        }
        anyhow::Ok(())
    };
    if let Err(error) = copied.await {
        eprintln!("note: not checking against the plugin store ({error:#}): built-in operators and --plugins only");
    }
    copy
}

/// Who installs from this command line: `cli USER@HOST`.
fn cli_user() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("cli {user}@{}", super::scheduler::hostname())
}

/// Where a plugin comes from, in a few words: `built-in`, `store <hash> (by WHO)`, or a path.
pub fn source(plugin: &Plugin) -> String {
    match &plugin.source {
        PluginSource::Builtin => "built-in".to_owned(),
        PluginSource::File(p) => p.display().to_string(),
        PluginSource::Store { installed: Some(i) } => format!("store {} (by {})", short_hash(&plugin.sha256), i.by),
        PluginSource::Store { installed: None } => format!("store {}", short_hash(&plugin.sha256)),
    }
}

/// A plugin as `plugins list --output json` and `GET /api/updraft/plugins` show it: `origin`
/// is `builtin`, `store` or `file`; a stored plugin says who installed it and when.
pub fn plugin_json(p: &Plugin) -> Value {
    let (origin, installed_by, installed_at) = match &p.source {
        PluginSource::Builtin => ("builtin", None, None),
        PluginSource::File(_) => ("file", None, None),
        PluginSource::Store { installed } => (
            "store",
            installed.as_ref().map(|i| i.by.clone()),
            installed.as_ref().map(|i| super::standalone::chrono_like(i.at_us)),
        ),
    };
    json!({
        "name": p.descriptor.name,
        "version": p.descriptor.version,
        "summary": p.descriptor.summary,
        "capabilities": p.descriptor.capabilities,
        "params_schema": p.descriptor.params_schema,
        "source": source(p),
        "origin": origin,
        "sha256": p.sha256,
        "installed_by": installed_by,
        "installed_at": installed_at,
    })
}

/// The folder files and stored versions this process could not use, with the reason.
pub fn problems(registry: &Registry) -> Vec<Value> {
    let files = registry.files().into_iter().filter_map(|f| match f.status {
        FileStatus::Invalid { reason } => Some(json!({ "path": f.path, "reason": reason })),
        FileStatus::Loaded { .. } => None,
    });
    let stored = registry
        .store_errors()
        .into_iter()
        .map(|e| json!({ "path": format!("plugin store: {} {}", e.name, short_hash(&e.sha256)), "reason": e.reason }));
    files.chain(stored).collect()
}

async fn list(store: &PluginsStore, output: OutputFormat) -> anyhow::Result<ExitCode> {
    let registry = registry(store, BTreeMap::new()).await?;
    let plugins = registry.plugins();
    let invalid = problems(&registry);
    match output {
        OutputFormat::Json => {
            let operators: Vec<Value> = plugins.iter().map(|p| plugin_json(p)).collect();
            super::emit(&format!("{:#}\n", json!({"operators": operators, "invalid": invalid})))?;
        }
        OutputFormat::Table => {
            let mut text =
                format!("{:<20} {:<10} {:<12} {:<30} SUMMARY\n", "NAME", "VERSION", "CAPABILITIES", "SOURCE");
            for p in &plugins {
                let caps =
                    if p.descriptor.capabilities.is_empty() { "-".into() } else { p.descriptor.capabilities.join(",") };
                let d = &p.descriptor;
                text.push_str(&format!(
                    "{:<20} {:<10} {caps:<12} {:<30} {}\n",
                    d.name,
                    d.version,
                    source(p),
                    d.summary
                ));
            }
            for problem in &invalid {
                let (path, reason) = (&problem["path"], problem["reason"].as_str().unwrap_or_default());
                text.push_str(&format!("INVALID {}: {reason}\n", path.as_str().unwrap_or_default()));
            }
            super::emit(&text)?;
        }
    }
    Ok(if invalid.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn inspect(
    operator: &str,
    store: &PluginsStore,
    output: OutputFormat,
    grants: BTreeMap<String, Grants>,
) -> anyhow::Result<ExitCode> {
    let plugin = if operator.ends_with(".wasm") || Path::new(operator).is_file() {
        let bytes = std::fs::read(operator).with_context(|| format!("reading {operator}"))?;
        let places = Places { grants, ..Places::default() };
        runtime(None, places).await?.load(bytes, PluginSource::File(operator.into())).await?
    } else {
        registry(store, grants).await?.get(operator)?
    };
    let d = &plugin.descriptor;
    match output {
        OutputFormat::Json => {
            let mut value = plugin_json(&plugin);
            value["granted"] = serde_json::to_value(plugin.grants())?;
            super::emit(&format!("{value:#}\n"))?;
        }
        OutputFormat::Table => {
            let mut text = String::new();
            text.push_str(&format!("name:         {}\n", d.name));
            text.push_str(&format!("version:      {}\n", d.version));
            text.push_str(&format!("summary:      {}\n", d.summary));
            text.push_str(&format!("source:       {}\n", source(&plugin)));
            if let PluginSource::Store { installed: Some(i) } = &plugin.source {
                text.push_str(&format!("installed by: {}\n", i.by));
                text.push_str(&format!("installed at: {}\n", super::standalone::chrono_like(i.at_us)));
            }
            text.push_str(&format!("sha256:       {}\n", plugin.sha256));
            text.push_str(&format!("size:         {} bytes\n", plugin.size_bytes));
            let caps = if d.capabilities.is_empty() { "none".to_owned() } else { d.capabilities.join(", ") };
            text.push_str(&format!("capabilities: {caps}\n"));
            text.push_str(&granted(plugin.grants()));
            text.push_str(&format!("params schema:\n{:#}\n", d.params_schema));
            super::emit(&text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What the configuration grants a plugin (`[plugins.NAME]`), one line per kind.
fn granted(grants: &Grants) -> String {
    let list = |items: &[String]| if items.is_empty() { "none".to_owned() } else { items.join(", ") };
    let limit = |value: Option<u64>, unit: &str| value.map_or("the deployment's".to_owned(), |v| format!("{v} {unit}"));
    let mut text = String::from("granted:\n");
    text.push_str(&format!("  connections:           {}\n", list(&grants.connections)));
    text.push_str(&format!("  allow_http_hosts:      {}\n", list(&grants.allow_http_hosts)));
    text.push_str(&format!("  variables:             {}\n", list(&grants.variables)));
    text.push_str(&format!("  kubernetes_namespaces: {}\n", list(&grants.kubernetes_namespaces)));
    text.push_str(&format!("  memory_bytes:          {}\n", limit(grants.memory_bytes, "bytes")));
    text.push_str(&format!("  max_cpu_ms:            {}\n", limit(grants.max_cpu_ms, "ms")));
    text.push_str(&format!("  timeout_seconds:       {}\n", limit(grants.timeout_seconds, "s")));
    text
}

async fn validate(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let rt = runtime(None, Places::default()).await?;
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

async fn install(path: &Path, meta: &MetaArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    // On demand: installing needs the built-ins (for their names) and this one plugin, not
    // every stored plugin compiled.
    let places = Places { cache: Some(meta.data_dir.join("cache")), ..Places::default() };
    let registry = Registry::on_demand(runtime(Some(meta), places).await?).await?;
    let label = path.display().to_string();
    let plugin = registry.install(bytes, &label, &cli_user()).await?;
    let d = &plugin.descriptor;
    if updraft_plugin_host::builtin_names().contains(&d.name.as_str()) {
        eprintln!("note: {} shadows the built-in operator of the same name", d.name);
    }
    println!(
        "installed {} {} (sha256 {}) into the plugin store: every scheduler, API server and task pod of the deployment runs it from now on",
        d.name, d.version, plugin.sha256
    );
    Ok(ExitCode::SUCCESS)
}

async fn delete(name: &str, meta: &MetaArgs) -> anyhow::Result<ExitCode> {
    let db = meta.db().await.context("operator plugins are kept in the metadata database")?;
    if db.delete_plugin(name, None).await? {
        println!("removed {name} from the plugin store (tries already dispatched with it still run)");
        return Ok(ExitCode::SUCCESS);
    }
    if updraft_plugin_host::builtin_names().contains(&name) {
        bail!("`{name}` is a built-in operator: it cannot be deleted");
    }
    bail!("no operator `{name}` in the plugin store: `updraft plugins list` shows them")
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

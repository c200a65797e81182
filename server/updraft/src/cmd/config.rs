//! The configuration file: one TOML file whose `[section] key = value` settings are the
//! defaults of the options whose environment variable is `UPDRAFT__SECTION__KEY`. Precedence,
//! highest first: a command-line flag, the environment variable, the file, the built-in default.
//!
//! The file is `--config FILE` or `UPDRAFT_CONFIG`; without either, `updraft.toml` in the
//! current folder when it exists. Secrets (the database URL, the encryption key) may stay out of
//! it and come from the environment, as Kubernetes Secrets provide them.
//!
//! `[plugins.NAME]` tables are not options but grants: what each operator plugin may reach
//! (connections, HTTP hosts, variables, namespaces) and its own limits, with the matching
//! `UPDRAFT__PLUGINS__NAME__KEY` environment variables winning key by key. Every process that
//! runs tasks reads them the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, bail};
use updraft_plugin_host::Grants;
use updraft_plugin_host::config::GRANT_KEYS;

/// Where the configuration file is, if any: `--config FILE` (or `--config=FILE`) anywhere in
/// the arguments, else `UPDRAFT_CONFIG`, else `./updraft.toml` when it exists.
pub fn locate(args: &[std::ffi::OsString]) -> Option<PathBuf> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    if let Some(path) = std::env::var_os("UPDRAFT_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let local = PathBuf::from("updraft.toml");
    local.exists().then_some(local)
}

/// A configuration file: the `[section] key = value` settings, as `UPDRAFT__SECTION__KEY` →
/// value, and the `[plugins.NAME]` tables (grants and limits per plugin), kept as tables.
#[derive(Debug, Default)]
pub struct Config {
    pub settings: BTreeMap<String, String>,
    pub plugins: BTreeMap<String, toml::Table>,
}

/// Reads a configuration file.
pub fn read(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    parse(&text).with_context(|| format!("in the configuration file {}", path.display()))
}

/// Parses configuration text.
pub fn parse(text: &str) -> anyhow::Result<Config> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| anyhow::anyhow!("{}", e.to_string().trim()))?;
    let mut config = Config::default();
    for (section, value) in &table {
        let toml::Value::Table(keys) = value else {
            bail!("`{section}` must be a section (`[{section}]` followed by `key = value` lines)");
        };
        if section == "plugins" {
            for (name, grants) in keys {
                let toml::Value::Table(grants) = grants else {
                    bail!(
                        "`plugins.{name}` must be a table: write `[plugins.{name}]` followed by lines such as `allow_http_hosts = [\"api.example.com\"]`"
                    );
                };
                config.plugins.insert(name.clone(), grants.clone());
            }
            continue;
        }
        for (key, value) in keys {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => bail!("`{section}.{key}` must be a string, a number or true/false"),
            };
            config.settings.insert(format!("UPDRAFT__{}__{}", section.to_uppercase(), key.to_uppercase()), text);
        }
    }
    Ok(config)
}

/// The grants and limits of each plugin: the file's `[plugins.NAME]` tables, overridden key by
/// key by `UPDRAFT__PLUGINS__NAME__KEY` environment variables (a list as JSON, `["a", "b"]`,
/// or comma-separated, `a,b`; a limit as a number). A bad key or value is an error naming it.
pub fn plugin_grants(
    file: &BTreeMap<String, toml::Table>,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<BTreeMap<String, Grants>> {
    let mut tables = file.clone();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("UPDRAFT__PLUGINS__") else { continue };
        let Some((plugin, key)) = rest.split_once("__") else {
            bail!(
                "environment variable {name}: write UPDRAFT__PLUGINS__<PLUGIN>__<KEY>, e.g. UPDRAFT__PLUGINS__HTTP__ALLOW_HTTP_HOSTS"
            );
        };
        let key = key.to_lowercase();
        let value = env_value(&key, &value).with_context(|| format!("environment variable {name}"))?;
        tables.entry(plugin.to_lowercase()).or_default().insert(key, value);
    }
    let mut grants = BTreeMap::new();
    for (plugin, table) in tables {
        for key in table.keys() {
            if !GRANT_KEYS.contains(&key.as_str()) {
                bail!("unknown key `{key}` in [plugins.{plugin}]: the keys are {}", GRANT_KEYS.join(", "));
            }
        }
        let parsed: Grants = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("[plugins.{plugin}]: {}", e.to_string().trim()))?;
        grants.insert(plugin, parsed);
    }
    Ok(grants)
}

/// An environment variable's text as the TOML value its key takes.
fn env_value(key: &str, text: &str) -> anyhow::Result<toml::Value> {
    let text = text.trim();
    if matches!(key, "memory_bytes" | "max_cpu_ms" | "timeout_seconds") {
        let n: i64 = text.parse().with_context(|| format!("`{text}` is not a whole number"))?;
        return Ok(toml::Value::Integer(n));
    }
    let items: Vec<String> = if text.starts_with('[') {
        serde_json::from_str(text).with_context(|| format!("`{text}` is not a JSON list of strings"))?
    } else {
        text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    };
    Ok(toml::Value::Array(items.into_iter().map(toml::Value::String).collect()))
}

static PLUGIN_GRANTS: OnceLock<BTreeMap<String, Grants>> = OnceLock::new();

/// Reads the plugin grants of this process (file and environment) once, at start.
pub fn init_plugin_grants(file: &BTreeMap<String, toml::Table>) -> anyhow::Result<()> {
    let grants = plugin_grants(file, std::env::vars())?;
    let _ = PLUGIN_GRANTS.set(grants);
    Ok(())
}

/// The plugin grants [`init_plugin_grants`] read (none before it ran).
pub fn grants() -> BTreeMap<String, Grants> {
    PLUGIN_GRANTS.get().cloned().unwrap_or_default()
}

/// Makes the file's settings the defaults of the options reading the same environment
/// variables, in every subcommand. A setting no option reads is an error naming the known ones.
pub fn apply(command: clap::Command, settings: &BTreeMap<String, String>) -> anyhow::Result<clap::Command> {
    let mut known = Vec::new();
    collect_envs(&command, &mut known);
    for name in settings.keys() {
        if !known.contains(name) {
            let mut names: Vec<String> = known.iter().filter_map(|k| setting_name(k)).collect();
            names.sort();
            names.dedup();
            bail!(
                "unknown setting `{}`: the known settings are {}",
                setting_name(name).unwrap_or_else(|| name.clone()),
                names.join(", ")
            );
        }
    }
    Ok(with_defaults(command, settings))
}

/// `UPDRAFT__CORE__DATA_DIR` → `core.data_dir`.
fn setting_name(env: &str) -> Option<String> {
    let rest = env.strip_prefix("UPDRAFT__")?;
    let (section, key) = rest.split_once("__")?;
    Some(format!("{}.{}", section.to_lowercase(), key.to_lowercase()))
}

fn collect_envs(command: &clap::Command, out: &mut Vec<String>) {
    for arg in command.get_arguments() {
        if let Some(env) = arg.get_env() {
            out.push(env.to_string_lossy().into_owned());
        }
    }
    for sub in command.get_subcommands() {
        collect_envs(sub, out);
    }
}

fn with_defaults(mut command: clap::Command, settings: &BTreeMap<String, String>) -> clap::Command {
    let ids: Vec<(String, String)> = command
        .get_arguments()
        .filter_map(|a| {
            let env = a.get_env()?.to_string_lossy().into_owned();
            settings.get(&env).map(|v| (a.get_id().to_string(), v.clone()))
        })
        .collect();
    for (id, value) in ids {
        // clap wants 'static defaults; a configuration is read once per process.
        let value: &'static str = Box::leak(value.into_boxed_str());
        command = command.mut_arg(id, |a| a.default_value(value).required(false));
    }
    let subs: Vec<String> = command.get_subcommands().map(|s| s.get_name().to_owned()).collect();
    for name in subs {
        command = command.mut_subcommand(name, |sub| with_defaults(sub, settings));
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_keys_become_environment_names() {
        let settings = parse("[core]\ndata_dir = \"/data\"\nparallelism = 8\n[database]\nurl = \"postgres://x\"\n")
            .expect("parses")
            .settings;
        assert_eq!(settings.get("UPDRAFT__CORE__DATA_DIR").map(String::as_str), Some("/data"));
        assert_eq!(settings.get("UPDRAFT__CORE__PARALLELISM").map(String::as_str), Some("8"));
        assert_eq!(settings.get("UPDRAFT__DATABASE__URL").map(String::as_str), Some("postgres://x"));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let error = parse("data_dir = \"/data\"\n").expect_err("not a section").to_string();
        assert!(error.contains("`data_dir` must be a section"), "{error}");
        let error = parse("[core]\nx = [1]\n").expect_err("array").to_string();
        assert!(error.contains("`core.x` must be a string"), "{error}");
        let error = parse("[core\n").expect_err("syntax").to_string();
        assert!(error.contains("line 1"), "{error}");
    }

    #[test]
    fn plugin_tables_become_grants_and_the_environment_wins_key_by_key() {
        let config = parse(
            "[plugins.http]\nallow_http_hosts = [\"api.example.com\", \"127.0.0.1:8443\"]\n\n[plugins.dq_check]\nconnections = [\"warehouse\"]\nmemory_bytes = 268435456\n",
        )
        .expect("parses");
        assert!(config.settings.is_empty());
        let env = [
            ("UPDRAFT__PLUGINS__DQ_CHECK__VARIABLES".to_owned(), "region, threshold".to_owned()),
            ("UPDRAFT__PLUGINS__HTTP__ALLOW_HTTP_HOSTS".to_owned(), "[\"hooks.example.com\"]".to_owned()),
            ("UPDRAFT__PLUGINS__NOTIFY__TIMEOUT_SECONDS".to_owned(), "30".to_owned()),
            ("UPDRAFT__CORE__PARALLELISM".to_owned(), "8".to_owned()),
        ];
        let grants = plugin_grants(&config.plugins, env).expect("valid");
        assert_eq!(grants["http"].allow_http_hosts, ["hooks.example.com"]);
        assert_eq!(grants["dq_check"].connections, ["warehouse"]);
        assert_eq!(grants["dq_check"].variables, ["region", "threshold"]);
        assert_eq!(grants["dq_check"].memory_bytes, Some(268_435_456));
        assert_eq!(grants["notify"].timeout_seconds, Some(30));
    }

    #[test]
    fn bad_plugin_tables_say_what_is_wrong() {
        let error = parse("[plugins]\nhttp = \"api.example.com\"\n").expect_err("not a table").to_string();
        assert!(error.contains("`plugins.http` must be a table: write `[plugins.http]`"), "{error}");
        let config = parse("[plugins.http]\nallow_hosts = [\"x\"]\n").expect("parses");
        let error = plugin_grants(&config.plugins, []).expect_err("unknown key").to_string();
        assert!(
            error.contains("unknown key `allow_hosts` in [plugins.http]: the keys are connections, allow_http_hosts"),
            "{error}"
        );
        let config = parse("[plugins.http]\nallow_http_hosts = \"x\"\n").expect("parses");
        let error = plugin_grants(&config.plugins, []).expect_err("not a list").to_string();
        assert!(error.starts_with("[plugins.http]: "), "{error}");
        let env = [("UPDRAFT__PLUGINS__HTTP__MEMORY_BYTES".to_owned(), "lots".to_owned())];
        let error = format!("{:#}", plugin_grants(&BTreeMap::new(), env).expect_err("not a number"));
        assert!(error.contains("UPDRAFT__PLUGINS__HTTP__MEMORY_BYTES: `lots` is not a whole number"), "{error}");
    }
}

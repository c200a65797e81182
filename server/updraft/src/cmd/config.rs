//! The configuration file: one TOML file whose `[section] key = value` settings are the
//! defaults of the options whose environment variable is `UPDRAFT__SECTION__KEY`. Precedence,
//! highest first: a command-line flag, the environment variable, the file, the built-in default.
//!
//! The file is `--config FILE` or `UPDRAFT_CONFIG`; without either, `updraft.toml` in the
//! current folder when it exists. Secrets (the database URL, the encryption key) may stay out of
//! it and come from the environment, as Kubernetes Secrets provide them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

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

/// Reads a configuration file into `UPDRAFT__SECTION__KEY` → value.
pub fn read(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    parse(&text).with_context(|| format!("in the configuration file {}", path.display()))
}

/// Parses configuration text into `UPDRAFT__SECTION__KEY` → value.
pub fn parse(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| anyhow::anyhow!("{}", e.to_string().trim()))?;
    let mut settings = BTreeMap::new();
    for (section, value) in &table {
        let toml::Value::Table(keys) = value else {
            bail!("`{section}` must be a section (`[{section}]` followed by `key = value` lines)");
        };
        for (key, value) in keys {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => bail!("`{section}.{key}` must be a string, a number or true/false"),
            };
            settings.insert(format!("UPDRAFT__{}__{}", section.to_uppercase(), key.to_uppercase()), text);
        }
    }
    Ok(settings)
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
            .expect("parses");
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
}

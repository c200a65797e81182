//! `updraft plugins new NAME`: writes a standalone operator crate (its own `[workspace]`, the
//! SDK as a path dependency, an operator with a params schema, and unit tests) that builds
//! with `cargo build --release --target wasm32-wasip2`.

use std::path::{Path, PathBuf};

use crate::error::Error;

/// Where the SDK sits in the source tree this binary was built from.
pub fn default_sdk_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/updraft-plugin-sdk")
}

/// True for names operators may have: lowercase letters, digits and `_`, starting with a
/// letter, at most 64 characters.
pub fn valid_operator_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 64
}

fn camel(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// Creates `dir/NAME/` with a buildable operator crate; returns the files written.
/// `sdk` is the path of `updraft-plugin-sdk`.
pub fn new_operator(name: &str, dir: &Path, sdk: &Path) -> Result<Vec<PathBuf>, Error> {
    if !valid_operator_name(name) {
        return Err(Error::Scaffold(format!(
            "{name:?} is not a valid operator name: use lowercase letters, digits and _, starting with a letter"
        )));
    }
    let root = dir.join(name);
    if root.exists() {
        return Err(Error::Scaffold(format!("{} already exists: choose another name or --dir", root.display())));
    }
    let sdk = std::fs::canonicalize(sdk).map_err(|e| Error::io(sdk, e))?;
    let sdk_text = sdk.display().to_string().replace('\\', "/");
    let files = [
        (root.join("Cargo.toml"), cargo_toml(name, &sdk_text)),
        (root.join("src/lib.rs"), lib_rs(name)),
        (root.join(".gitignore"), "/target\n".to_owned()),
    ];
    let mut written = Vec::new();
    for (path, text) in files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

fn cargo_toml(name: &str, sdk: &str) -> String {
    format!(
        r#"[package]
name = "{package}"
version = "0.1.0"
edition = "2024"
description = "Updraft operator {name}"
publish = false

# Build the plugin:   cargo build --release --target wasm32-wasip2
# It is then:         target/wasm32-wasip2/release/{name}.wasm
# Install it:         updraft plugins install target/wasm32-wasip2/release/{name}.wasm
[lib]
crate-type = ["cdylib"]

[dependencies]
serde = {{ version = "1", features = ["derive"] }}
updraft-plugin-sdk = {{ path = "{sdk}" }}

[profile.release]
opt-level = "s"
lto = true
strip = true

# A standalone project, even when created inside another Cargo workspace.
[workspace]
"#,
        package = name.replace('_', "-"),
    )
}

fn lib_rs(name: &str) -> String {
    let ty = camel(name);
    format!(
        r##"//! The `{name}` operator.
//!
//! A task uses it with `operator: {name}` and `params: {{ name: ..., shout: ... }}`; the server
//! checks the params against the schema in `describe` when it validates the DAG.

use serde::Deserialize;
use updraft_plugin_sdk::{{Context, Descriptor, Failure, Operator, Outcome, json, log}};

/// The operator: `describe` says what it is, `execute` runs one task try.
pub struct {ty};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {{
    name: String,
    #[serde(default)]
    shout: bool,
}}

fn greeting(p: &Params) -> String {{
    let text = format!("hello, {{}}", p.name);
    if p.shout {{ text.to_uppercase() }} else {{ text }}
}}

impl Operator for {ty} {{
    fn describe() -> Descriptor {{
        Descriptor::new("{name}", env!("CARGO_PKG_VERSION"), "Greets someone").params_schema(json!({{
            "type": "object",
            "properties": {{
                "name": {{"type": "string", "minLength": 1}},
                "shout": {{"type": "boolean", "default": false}}
            }},
            "required": ["name"],
            "additionalProperties": false
        }}))
    }}

    fn execute(ctx: Context) -> Result<Outcome, Failure> {{
        let params: Params = ctx.params()?;
        let message = greeting(&params);
        log::info(&message);
        // The output goes to XCom as `return_value` for downstream tasks.
        Ok(Outcome::output(json!({{ "message": message }})))
    }}
}}

updraft_plugin_sdk::export!({ty});

// `cargo test` runs these on your machine; they test the operator's logic, not the host calls.
#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn greets_and_shouts() {{
        let p = Params {{ name: "ada".into(), shout: true }};
        assert_eq!(greeting(&p), "HELLO, ADA");
    }}

    #[test]
    fn describes_itself() {{
        let d = format!("{{:?}}", {ty}::describe());
        assert!(d.contains("\"{name}\""), "{{d}}");
    }}
}}
"##
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_types() {
        assert!(valid_operator_name("row_count2"));
        assert!(!valid_operator_name("Row"));
        assert!(!valid_operator_name("2x"));
        assert!(!valid_operator_name("a-b"));
        assert_eq!(camel("row_count_check"), "RowCountCheck");
    }

    #[test]
    fn refuses_bad_names_and_existing_folders() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = new_operator("Bad-Name", dir.path(), &default_sdk_path()).expect_err("bad");
        assert!(err.to_string().contains("not a valid operator name"), "{err}");
        std::fs::create_dir(dir.path().join("taken")).expect("mkdir");
        let err = new_operator("taken", dir.path(), &default_sdk_path()).expect_err("exists");
        assert!(err.to_string().contains("already exists"), "{err}");
    }
}

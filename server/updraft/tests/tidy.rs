//! Code-base rules that a compiler does not check, so that the structure ARCHITECTURE.md
//! describes cannot drift silently:
//!
//! - every Rust source file of the project opens with a `//!` paragraph saying what it is for
//!   (STYLE.md, principle 2);
//! - SQL stays in the database crate: only `updraft-db` (the metadata database), `updraft-types`
//!   (behind its `sqlx` feature, which only `updraft-db` enables, so rows decode into the
//!   vocabulary), and the two crates that run users' SQL for the `sql` operator
//!   (`updraft-sqlconn`, `updraft-plugin-host`) depend on sqlx;
//! - the API server and the executors do not depend on the scheduler (read from `cargo
//!   metadata`'s resolved graph), and the executors not on the DAG bag either;
//! - no state is compared with a string literal outside (de)serialisation: states are
//!   `updraft_types::{TaskState, RunState}` everywhere below the JSON and the database text;
//! - every public item of the library crates has a doc comment.
//!
//! Each check lists every violation with its place, and says what to do.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `cargo metadata` of the workspace, for this machine's platform.
fn metadata() -> Value {
    let host = Command::new("rustc").arg("-vV").output().expect("rustc -vV");
    let host = String::from_utf8_lossy(&host.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc names its host");
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--filter-platform", &host, "--manifest-path"])
        .arg(root().join("Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// The workspace's packages: name → their direct dependencies (name, kind, optional).
fn direct_dependencies(meta: &Value) -> HashMap<String, Vec<(String, String, bool)>> {
    let members: BTreeSet<&str> =
        meta["workspace_members"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| members.contains(str_of(p, "id")))
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    let kind = d["kind"].as_str().unwrap_or("normal").to_owned();
                    (str_of(d, "name").to_owned(), kind, d["optional"].as_bool().unwrap_or(false))
                })
                .collect();
            (str_of(p, "name").to_owned(), deps)
        })
        .collect()
}

/// Every package `package` depends on through normal (not dev, not build) dependencies.
fn normal_closure(meta: &Value, package: &str) -> BTreeSet<String> {
    let nodes = meta["resolve"]["nodes"].as_array().expect("a resolved graph");
    let name_of = |id: &str| id.to_owned();
    let by_id: HashMap<&str, &Value> = nodes.iter().map(|n| (str_of(n, "id"), n)).collect();
    let names: HashMap<&str, &str> =
        meta["packages"].as_array().into_iter().flatten().map(|p| (str_of(p, "id"), str_of(p, "name"))).collect();
    let start = names.iter().find(|(_, n)| **n == package).map(|(id, _)| *id).expect("the package exists");
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(id) = stack.pop() {
        let Some(node) = by_id.get(id) else { continue };
        for dep in node["deps"].as_array().into_iter().flatten() {
            let normal = dep["dep_kinds"].as_array().into_iter().flatten().any(|k| k["kind"].is_null());
            let dep_id = str_of(dep, "pkg");
            if normal && seen.insert(name_of(names.get(dep_id).copied().unwrap_or(dep_id))) {
                stack.push(dep_id);
            }
        }
    }
    seen
}

#[test]
fn only_the_database_crates_use_sqlx() {
    let meta = metadata();
    // Crates allowed to depend on sqlx, and why.
    let allowed = [
        "updraft-db",          // the metadata database: the only crate with Updraft's own SQL
        "updraft-types",       // `sqlx` feature: how the vocabulary decodes from rows
        "updraft-sqlconn",     // connections to users' databases (the `sql` operator)
        "updraft-plugin-host", // runs the `sql` operator's statements on those connections
    ];
    let mut wrong = Vec::new();
    for (package, deps) in direct_dependencies(&meta) {
        for (dep, kind, optional) in deps {
            if dep == "sqlx" && !allowed.contains(&package.as_str()) {
                wrong.push(format!("{package} ({kind} dependency)"));
            }
            if dep == "sqlx" && package == "updraft-types" && !optional {
                wrong
                    .push("updraft-types must have sqlx only behind its `sqlx` feature (the web app builds it)".into());
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "sqlx outside the database crates: {wrong:?}. Add a method to updraft-db (a query there) and call it instead."
    );
}

#[test]
fn the_api_and_the_executors_do_not_depend_on_the_scheduler() {
    let meta = metadata();
    // (crate, what it must not depend on, what it does depend on: proof its graph was read)
    let forbidden: [(&str, &[&str], &str); 3] = [
        ("updraft-api", &["updraft-scheduler"], "updraft-db"),
        ("updraft-executor-local", &["updraft-scheduler", "updraft-dagbag"], "updraft-executor"),
        ("updraft-executor-kubernetes", &["updraft-scheduler", "updraft-dagbag"], "updraft-executor"),
    ];
    let mut wrong = Vec::new();
    for (package, not, uses) in forbidden {
        let closure = normal_closure(&meta, package);
        for crate_name in not {
            if closure.contains(*crate_name) {
                wrong.push(format!("{package} depends on {crate_name}"));
            }
        }
        assert!(closure.contains(uses), "{package}'s graph was read: it uses {uses}");
    }
    assert!(
        wrong.is_empty(),
        "{wrong:?}: the executor contract is in updraft-executor, metrics in updraft-metrics, timetables in \
         updraft_dag::schedule; move what you need there instead of depending on the scheduler"
    );
}

/// Rust files under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The `src` folders of the server crates and the web app.
fn source_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("server"))
        .expect("server/")
        .flatten()
        .map(|e| e.path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    dirs.push(root().join("web/src"));
    dirs.sort();
    dirs
}

/// The code of a file without its unit tests (`#[cfg(test)]` modules come last by convention)
/// and without comments, by line number.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).expect("readable source");
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or_default();
        out.push((i + 1, code.to_owned()));
    }
    out
}

const STATE_NAMES: [&str; 10] = [
    "success",
    "failed",
    "running",
    "queued",
    "scheduled",
    "skipped",
    "up_for_retry",
    "up_for_reschedule",
    "upstream_failed",
    "no_status",
];

/// Whether a line compares something with a state's name: `== "failed"`, `"failed" ==`,
/// `matches!(…, "failed" | …)`, or a match arm `"failed" =>`.
fn compares_a_state(code: &str) -> Option<&'static str> {
    STATE_NAMES.into_iter().find(|name| {
        let quoted = format!("\"{name}\"");
        let Some(at) = code.find(&quoted) else { return false };
        let before = code[..at].trim_end();
        let after = code[at + quoted.len()..].trim_start();
        before.ends_with("==")
            || before.ends_with("!=")
            || after.starts_with("==")
            || after.starts_with("!=")
            || after.starts_with("=>")
            || (after.starts_with('|') && !after.starts_with("||"))
            || (code.contains("matches!(") && (before.ends_with(',') || before.ends_with('|')))
            || before.ends_with("Some(")
    })
}

#[test]
fn no_state_is_compared_with_a_string() {
    // The one place that turns the names into states and back.
    let definition = root().join("server/updraft-types/src/state.rs");
    let mut wrong = Vec::new();
    for dir in source_dirs() {
        for file in rust_files(&dir) {
            if file == definition {
                continue;
            }
            for (n, code) in code_lines(&file) {
                if let Some(name) = compares_a_state(&code) {
                    wrong.push(format!("{}:{n}: `{name}`: {}", file.display(), code.trim()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "states compared with strings (parse the text into updraft_types::TaskState / RunState where it is read, \
         then compare states):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_for_state_comparisons_sees_them() {
    for line in [
        "if run.state == \"success\" {",
        "matches!(t.state.as_str(), \"failed\" | \"upstream_failed\")",
        "Some(\"success\") => RequestAction::MarkSuccess,",
        "\"queued\" => 5,",
    ] {
        assert!(compares_a_state(line).is_some(), "missed: {line}");
    }
    for line in ["json!({ \"state\": \"success\" })", "let message = \"failed\".to_owned();", "x == \"noop\""] {
        assert!(compares_a_state(line).is_none(), "not a comparison: {line}");
    }
}

/// Whether the item at `lines[i]` has a doc comment above its attributes.
fn documented(lines: &[&str], i: usize) -> bool {
    let mut j = i;
    let mut in_attribute = false;
    while j > 0 {
        j -= 1;
        let line = lines[j].trim();
        if line.starts_with("///") || line.starts_with("#[doc") {
            return true;
        }
        if in_attribute {
            if line.starts_with("#[") {
                in_attribute = false;
            }
            continue;
        }
        if line.starts_with("#[") && line.ends_with(']') {
            continue;
        }
        if line.ends_with(")]") || line.ends_with(',') || line.ends_with('(') {
            // The end or middle of an attribute over several lines.
            in_attribute = !line.starts_with("#[");
            continue;
        }
        return false;
    }
    false
}

/// Whether a module file opens with an inner doc comment (`//!`).
fn module_documented(dir: &Path, name: &str) -> bool {
    [dir.join(format!("{name}.rs")), dir.join(name).join("mod.rs")]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .any(|text| text.trim_start().starts_with("//!"))
}

#[test]
fn every_public_item_of_the_library_crates_has_a_doc_comment() {
    let kinds = ["fn ", "async fn ", "struct ", "enum ", "trait ", "type ", "const ", "static ", "mod "];
    let mut wrong = Vec::new();
    for dir in source_dirs() {
        // The binary's commands are documented by their --help; the web app is not a library.
        if dir.ends_with("server/updraft/src") || dir.ends_with("web/src") {
            continue;
        }
        for file in rust_files(&dir) {
            let text = std::fs::read_to_string(&file).expect("readable source");
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                if line.trim_start().starts_with("#[cfg(test)]") {
                    break;
                }
                let Some(rest) = line.trim_start().strip_prefix("pub ") else { continue };
                let Some(kind) = kinds.iter().find(|k| rest.starts_with(**k)) else { continue };
                // An item a macro defines is documented where the macro is called.
                if rest[kind.len()..].starts_with('$') {
                    continue;
                }
                if *kind == "mod " {
                    let name = rest["mod ".len()..].trim_end_matches(';').trim();
                    let folder = if file.ends_with("lib.rs") || file.ends_with("mod.rs") {
                        file.parent().map(Path::to_path_buf)
                    } else {
                        file.with_extension("").into()
                    };
                    if rest.ends_with(';') && folder.is_some_and(|f| module_documented(&f, name)) {
                        continue;
                    }
                }
                if !documented(&lines, i) {
                    wrong.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} public items without a doc comment (say what it is for, in a `///` line above it):\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// Every Rust file under `dir`, skipping hidden folders and build output.
fn all_rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            all_rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_doc_paragraph() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for top in ["server", "plugins", "web", "tests", "examples", "xtask"] {
        all_rust_files(&root.join(top), &mut files);
    }
    assert!(files.len() > 10, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
            !first.starts_with("//!")
        })
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a `//!` opening paragraph:\n{}", missing.join("\n"));
}

//! The DAG model: YAML DAG files to a validated, layered task graph.
//!
//! This crate does no I/O and uses no async runtime, so the very same code validates DAGs in
//! the server, in the CLI and, compiled to `wasm32-unknown-unknown`, in the browser editor.
//! Callers hand it file contents; `updraft-dagbag` is the caller that reads a DAGs folder.
//!
//! The flow: [`parse_dag_file`] and [`parse_task_file`] read YAML into located specs,
//! [`analyze_sql`] renders and parses a task's SQL, and [`assemble`] resolves defaults, infers
//! edges from tables, finds cycles, layers the graph and checks SQL against `depends_on`.

pub mod diag;
pub mod duration;
pub mod export;
pub mod graph;
pub mod layout;
pub mod operators;
pub mod params;
pub mod schedule;
pub mod spec;
pub mod sqlcheck;
mod suggest;
pub mod template;
pub mod yaml;

use std::sync::Arc;

pub use diag::{Diagnostic, Location, Pos, Severity};
pub use graph::{
    Dag, ExternalTable, Options, SqlAnalysis, SqlInput, SqlSource, Task, TaskInput, analyze_sql, assemble,
};
pub use layout::{Layout, layout, layout_edges};
pub use schedule::Schedule;
pub use spec::{DagSpec, TaskSpec, TriggerRule};

/// Reads a DAG file (`dag.yaml` of a folder DAG, or a one-file DAG with `tasks:`).
pub fn parse_dag_file(file: &Arc<str>, text: &str) -> Result<DagSpec, Vec<Diagnostic>> {
    let root = yaml::parse(file, text).map_err(|d| vec![d])?;
    let mut reader = spec::Reader::new(file);
    let dag = spec::read_dag(&mut reader, &root);
    match dag {
        Some(dag) if reader.diagnostics.is_empty() => Ok(dag),
        _ => Err(reader.diagnostics),
    }
}

/// Reads one task file of a folder DAG.
pub fn parse_task_file(file: &Arc<str>, text: &str) -> Result<TaskSpec, Vec<Diagnostic>> {
    let root = yaml::parse(file, text).map_err(|d| vec![d])?;
    let mut reader = spec::Reader::new(file);
    if let yaml::Value::Map(entries) = &root.value
        && let Some((key, _)) = entries.iter().find(|(k, _)| k.as_str() == Some("dag"))
    {
        reader.error(key.pos, "a DAG file inside another DAG's folder", Some("a folder DAG holds one dag.yaml; move this file out of the folder, or remove `dag:` and make it a task".to_owned()));
        return Err(reader.diagnostics);
    }
    let task = spec::read_task(&mut reader, &root);
    match task {
        Some(task) if reader.diagnostics.is_empty() => Ok(task),
        _ => Err(reader.diagnostics),
    }
}

/// Validates a one-file DAG given as text, without reading any SQL file. Inline SQL is still
/// rendered and parsed.
pub fn validate_source(file: &Arc<str>, text: &str, options: Options) -> (Option<Dag>, Vec<Diagnostic>) {
    validate_one_file::<true>(file, text, options)
}

/// [`validate_source`] without analysing any SQL: every rule but the SQL parse and the SQL vs
/// `depends_on` comparison. What the browser editor runs on every keystroke: SQL parsing and
/// Jinja stay out of its wasm (they would triple it); the server checks them on save.
pub fn validate_source_structure(file: &Arc<str>, text: &str, options: Options) -> (Option<Dag>, Vec<Diagnostic>) {
    validate_one_file::<false>(file, text, options)
}

/// `SQL` is a constant so that, without it, the SQL analysis is not even linked.
fn validate_one_file<const SQL: bool>(file: &Arc<str>, text: &str, options: Options) -> (Option<Dag>, Vec<Diagnostic>) {
    match parse_dag_file(file, text) {
        Err(diagnostics) => (None, diagnostics),
        Ok(mut dag) => {
            let inline = std::mem::take(&mut dag.tasks);
            let inputs = inline
                .into_iter()
                .map(|spec| {
                    let sql = match spec.sql.as_ref().map(|s| (s.pos.line, SqlSource::from_field(&s.value))) {
                        Some((line, SqlSource::Inline(text))) if SQL => {
                            SqlInput::Analyzed(analyze_sql(&dag, &spec, file, line, &text))
                        }
                        _ => SqlInput::NotChecked,
                    };
                    TaskInput { spec, sql }
                })
                .collect();
            assemble(dag, inputs, options)
        }
    }
}

#[cfg(test)]
mod tests;

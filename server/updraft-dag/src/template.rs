//! Jinja templating of SQL and params (`{{ ds }}`, `{{ params.x }}`, `{{ data_interval_start }}`),
//! through minijinja.
//!
//! At validation time templates are rendered with placeholder values, so that the SQL can be
//! parsed and its tables checked; at run time the scheduler renders them with the run's real
//! values. Rendering is bounded by fuel so a hostile template cannot spin forever.

use std::cell::RefCell;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

/// Instructions a single render may spend: far above any real SQL template.
const FUEL: u64 = 5_000_000;

/// The variables a template sees (the Airflow names users already know).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TemplateVars {
    /// Logical date as `YYYY-MM-DD`.
    pub ds: String,
    pub ds_nodash: String,
    /// Logical date-time in ISO 8601.
    pub ts: String,
    pub logical_date: String,
    pub data_interval_start: String,
    pub data_interval_end: String,
    pub run_id: String,
    pub dag_id: String,
    pub task_id: String,
    pub params: serde_json::Map<String, serde_json::Value>,
}

impl TemplateVars {
    /// Placeholder values used to render templates while validating.
    pub fn placeholder(dag_id: &str, task_id: &str, params: serde_json::Map<String, serde_json::Value>) -> Self {
        TemplateVars {
            ds: "2026-01-01".to_owned(),
            ds_nodash: "20260101".to_owned(),
            ts: "2026-01-01T00:00:00+00:00".to_owned(),
            logical_date: "2026-01-01T00:00:00+00:00".to_owned(),
            data_interval_start: "2026-01-01T00:00:00+00:00".to_owned(),
            data_interval_end: "2026-01-02T00:00:00+00:00".to_owned(),
            run_id: "validate__2026-01-01T00:00:00+00:00".to_owned(),
            dag_id: dag_id.to_owned(),
            task_id: task_id.to_owned(),
            params,
        }
    }
}

/// A template that failed to render: 1-based line within the template, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub line: u32,
    pub message: String,
}

thread_local! {
    static LENIENT: RefCell<Environment<'static>> = RefCell::new(environment(UndefinedBehavior::Lenient));
    static STRICT: RefCell<Environment<'static>> = RefCell::new(environment(UndefinedBehavior::Strict));
}

fn environment(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    env.set_fuel(Some(FUEL));
    env
}

/// True when the text holds Jinja syntax at all; plain SQL skips the template engine.
pub fn is_templated(source: &str) -> bool {
    source.contains("{{") || source.contains("{%") || source.contains("{#")
}

/// Renders `source` with `vars`. With `strict`, an undefined variable is an error (run time);
/// otherwise it renders empty (validation, where params may be supplied only at trigger time).
pub fn render(source: &str, vars: &TemplateVars, strict: bool) -> Result<String, TemplateError> {
    if !is_templated(source) {
        return Ok(source.to_owned());
    }
    if let Some(rendered) = substitute_simple(source, vars) {
        return Ok(rendered);
    }
    let ctx = minijinja::Value::from(minijinja::value::Serde(vars));
    let cell = if strict { &STRICT } else { &LENIENT };
    cell.with(|env| env.borrow().render_str(source, ctx)).map_err(|e| TemplateError {
        line: e.line().and_then(|l| u32::try_from(l).ok()).unwrap_or(1),
        message: match e.detail() {
            Some(detail) => format!("{}: {detail}", e.kind()),
            None => e.kind().to_string(),
        },
    })
}

/// Fast path for the common template: only `{{ name }}` or `{{ params.name }}` expressions
/// whose values are strings or numbers. Anything else (filters, blocks, comments, missing
/// names) returns `None` and goes through minijinja, so results never differ.
fn substitute_simple(source: &str, vars: &TemplateVars) -> Option<String> {
    if source.contains("{%") || source.contains("{#") {
        return None;
    }
    let mut out = String::with_capacity(source.len() + 16);
    let mut rest = source;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}")?;
        let expr = after[..end].trim();
        let value: std::borrow::Cow<'_, str> = match expr {
            "ds" => vars.ds.as_str().into(),
            "ds_nodash" => vars.ds_nodash.as_str().into(),
            "ts" => vars.ts.as_str().into(),
            "logical_date" => vars.logical_date.as_str().into(),
            "data_interval_start" => vars.data_interval_start.as_str().into(),
            "data_interval_end" => vars.data_interval_end.as_str().into(),
            "run_id" => vars.run_id.as_str().into(),
            "dag_id" => vars.dag_id.as_str().into(),
            "task_id" => vars.task_id.as_str().into(),
            _ => {
                let name = expr.strip_prefix("params.")?;
                match vars.params.get(name)? {
                    serde_json::Value::String(s) => s.as_str().into(),
                    serde_json::Value::Number(n) => n.to_string().into(),
                    _ => return None,
                }
            }
        };
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> TemplateVars {
        let mut params = serde_json::Map::new();
        params.insert("region".into(), "eu".into());
        TemplateVars::placeholder("d", "t", params)
    }

    #[test]
    fn renders_airflow_names() {
        let out = render("select '{{ ds }}', '{{ params.region }}', '{{ data_interval_start }}'", &vars(), true);
        assert_eq!(out.as_deref(), Ok("select '2026-01-01', 'eu', '2026-01-01T00:00:00+00:00'"));
    }

    #[test]
    fn fast_path_matches_minijinja() {
        let v = vars();
        for source in [
            "a {{ ds }} b {{params.region}} c",
            "{{ ds_nodash }}{{ run_id }}",
            "x {{ ds | upper }}",
            "{{ params.missing }}",
        ] {
            let fast = substitute_simple(source, &v);
            let ctx = minijinja::Value::from(minijinja::value::Serde(&v));
            let slow = LENIENT.with(|env| env.borrow().render_str(source, ctx)).expect("renders");
            if let Some(fast) = fast {
                assert_eq!(fast, slow, "{source}");
            }
        }
        assert!(substitute_simple("{{ ds | upper }}", &v).is_none());
    }

    #[test]
    fn syntax_errors_are_located() {
        let err = render("select 1\nfrom t where d = '{{ ds }'", &vars(), false).expect_err("bad");
        assert_eq!(err.line, 2);
        assert!(err.message.contains("syntax error"), "{}", err.message);
    }

    #[test]
    fn strict_mode_rejects_unknown_names() {
        assert!(render("{{ params.nope.deeper }}", &vars(), true).is_err());
        assert!(render("{{ nope }}", &vars(), false).is_ok());
    }

    #[test]
    fn runaway_templates_run_out_of_fuel() {
        let err =
            render("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}", &vars(), false)
                .expect_err("fuel");
        assert!(err.message.contains("fuel"), "{}", err.message);
    }
}

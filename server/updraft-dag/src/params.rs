//! Checks a task's `params` against the JSON Schema its operator describes.
//!
//! Operators publish a small subset of JSON Schema: `type` (one or a list), `properties`,
//! `required`, `additionalProperties` (boolean or schema), `enum`, `items`, `minimum` /
//! `maximum`, `minLength` / `maxLength` and `default`. This checker understands exactly that
//! subset, does no I/O and depends only on `serde_json`, so the browser editor runs it too.
//! Every error names the parameter's path and says what to write instead; keywords outside the
//! subset are ignored rather than guessed at.

use std::fmt;

use serde_json::{Map, Value};

/// One problem with a task's params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// Where, from the params object: `connection`, `headers.Accept`, `columns[2]`; empty for
    /// the params object itself.
    pub path: String,
    /// What is wrong and what to do, as a full sentence.
    pub message: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "params: {}", self.message)
        } else {
            write!(f, "param \"{}\": {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ParamError {}

/// Checks `params` against `schema`; returns every problem found (empty when they match).
/// A missing `params` should be passed as an empty object.
pub fn check_params(schema: &Value, params: &Value) -> Vec<ParamError> {
    let mut errors = Vec::new();
    check(schema, params, "", &mut errors);
    // By path, so the order does not depend on how serde_json orders object keys.
    errors.sort_by(|a, b| a.path.cmp(&b.path));
    errors
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

fn err(errors: &mut Vec<ParamError>, path: &str, message: String) {
    errors.push(ParamError { path: path.to_owned(), message });
}

/// The JSON type name of `value` as JSON Schema spells it ("integer" for whole numbers).
fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn matches_type(value: &Value, ty: &str) -> bool {
    let actual = type_of(value);
    actual == ty || (ty == "number" && actual == "integer")
}

fn article(ty: &str) -> String {
    match ty {
        "integer" | "array" | "object" => format!("an {ty}"),
        "null" => "null".to_owned(),
        _ => format!("a {ty}"),
    }
}

fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 { format!("{}…", text.chars().take(60).collect::<String>()) } else { text }
}

fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<ParamError>) {
    let Some(schema) = schema.as_object() else {
        // `true` or a non-object schema accepts anything; `false` accepts nothing.
        if schema == &Value::Bool(false) {
            err(errors, path, "is not accepted here: remove it".to_owned());
        }
        return;
    };
    if !check_type(schema, value, path, errors) {
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(show).collect();
        err(errors, path, format!("must be one of {}; got {}", list.join(", "), show(value)));
    }
    match value {
        Value::Number(n) => check_number(schema, n.as_f64().unwrap_or(f64::NAN), path, errors),
        Value::String(s) => check_length(schema, s.chars().count(), path, errors),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        Value::Object(map) => check_object(schema, map, path, errors),
        _ => {}
    }
}

/// Checks `type`; returns false when it does not match (further checks would only add noise).
fn check_type(schema: &Map<String, Value>, value: &Value, path: &str, errors: &mut Vec<ParamError>) -> bool {
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return true,
    };
    if types.is_empty() || types.iter().any(|t| matches_type(value, t)) {
        return true;
    }
    let expected: Vec<String> = types.iter().map(|t| article(t)).collect();
    let mut message = format!("must be {}, got {} ({})", expected.join(" or "), article(type_of(value)), show(value));
    if let Value::String(s) = value {
        let numeric = types.iter().any(|t| matches!(*t, "number" | "integer"));
        if (numeric && s.trim().parse::<f64>().is_ok())
            || (types.contains(&"boolean") && matches!(s.as_str(), "true" | "false"))
        {
            message.push_str(&format!(": write {s} without quotes"));
        }
    } else if types.contains(&"string") && !matches!(value, Value::Object(_) | Value::Array(_)) {
        message.push_str(": put it in quotes");
    }
    err(errors, path, message);
    false
}

fn check_number(schema: &Map<String, Value>, n: f64, path: &str, errors: &mut Vec<ParamError>) {
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && n < min
    {
        err(errors, path, format!("must be at least {min}, got {n}"));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && n > max
    {
        err(errors, path, format!("must be at most {max}, got {n}"));
    }
}

fn check_length(schema: &Map<String, Value>, len: usize, path: &str, errors: &mut Vec<ParamError>) {
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && (len as u64) < min
    {
        let what =
            if min == 1 { "must not be empty".to_owned() } else { format!("must be at least {min} characters long") };
        err(errors, path, format!("{what}, got {len} characters"));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && (len as u64) > max
    {
        err(errors, path, format!("must be at most {max} characters long, got {len}"));
    }
}

fn check_object(schema: &Map<String, Value>, map: &Map<String, Value>, path: &str, errors: &mut Vec<ParamError>) {
    let empty = Map::new();
    let properties = schema.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            let has_default =
                properties.get(name).and_then(Value::as_object).is_some_and(|p| p.contains_key("default"));
            if !map.contains_key(name) && !has_default {
                let hint = properties
                    .get(name)
                    .and_then(|p| p.get("type"))
                    .and_then(Value::as_str)
                    .map(|t| format!(" ({})", article(t)))
                    .unwrap_or_default();
                let parent = if path.is_empty() { "params".to_owned() } else { format!("\"{path}\"") };
                err(errors, &child(path, name), format!("is required: add {name}{hint} under {parent}"));
            }
        }
    }
    for (key, value) in map {
        let key_path = child(path, key);
        if let Some(prop) = properties.get(key) {
            check(prop, value, &key_path, errors);
            continue;
        }
        match schema.get("additionalProperties") {
            Some(Value::Bool(false)) => {
                let mut message = "is not a parameter of this operator".to_owned();
                if let Some(near) = closest(key, properties.keys()) {
                    message.push_str(&format!(": did you mean \"{near}\"?"));
                } else if properties.is_empty() {
                    message.push_str(": this operator takes no params, remove it");
                } else {
                    let names: Vec<&str> = properties.keys().map(String::as_str).collect();
                    message.push_str(&format!(": remove it (accepted: {})", names.join(", ")));
                }
                err(errors, &key_path, message);
            }
            Some(extra @ Value::Object(_)) => check(extra, value, &key_path, errors),
            _ => {}
        }
    }
}

/// The accepted name closest to a misspelt `key`, if it is close enough to be a typo.
fn closest<'a>(key: &str, names: impl Iterator<Item = &'a String>) -> Option<&'a str> {
    let key = key.to_lowercase();
    names
        .map(|n| (edit_distance(&key, &n.to_lowercase()), n))
        .filter(|(d, n)| *d <= 2.max(n.chars().count() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn http_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "url": {"type": "string", "minLength": 1},
                "method": {"type": "string", "enum": ["GET", "POST"], "default": "GET"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "success_codes": {"type": "array", "items": {"type": "integer", "minimum": 100, "maximum": 599}},
                "timeout_seconds": {"type": "integer", "minimum": 1},
                "retries": {"type": "integer", "default": 0}
            },
            "required": ["url", "retries"],
            "additionalProperties": false
        })
    }

    fn messages(params: Value) -> Vec<String> {
        check_params(&http_schema(), &params).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn valid_params_have_no_errors() {
        let ok = json!({"url": "http://x", "method": "POST", "headers": {"A": "b"}, "success_codes": [200, 204]});
        assert_eq!(messages(ok), Vec::<String>::new());
    }

    #[test]
    fn missing_required_param_says_what_to_add() {
        // `retries` is required but has a default, so it may be left out.
        assert_eq!(messages(json!({})), ["param \"url\": is required: add url (a string) under params"]);
    }

    #[test]
    fn wrong_type_names_expected_and_actual() {
        assert_eq!(
            messages(json!({"url": 5})),
            ["param \"url\": must be a string, got an integer (5): put it in quotes"]
        );
        assert_eq!(
            messages(json!({"url": "u", "timeout_seconds": "30"})),
            ["param \"timeout_seconds\": must be an integer, got a string (\"30\"): write 30 without quotes"]
        );
        assert_eq!(
            messages(json!({"url": "u", "timeout_seconds": 1.5})),
            ["param \"timeout_seconds\": must be an integer, got a number (1.5)"]
        );
    }

    #[test]
    fn unknown_param_suggests_the_closest_name() {
        assert_eq!(
            messages(json!({"url": "u", "methd": "GET"})),
            ["param \"methd\": is not a parameter of this operator: did you mean \"method\"?"]
        );
        let errors = messages(json!({"url": "u", "zzzzzz": 1}));
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].contains("remove it (accepted: headers, method, retries, success_codes, timeout_seconds, url)")
        );
        let none = check_params(&json!({"type": "object", "additionalProperties": false}), &json!({"x": 1}));
        assert_eq!(none[0].message, "is not a parameter of this operator: this operator takes no params, remove it");
    }

    #[test]
    fn enum_bounds_lengths_items_and_nested_paths() {
        assert_eq!(
            messages(json!({"url": "", "method": "GTE", "success_codes": [200, 700], "headers": {"A": 1}})),
            [
                "param \"headers.A\": must be a string, got an integer (1): put it in quotes",
                "param \"method\": must be one of \"GET\", \"POST\"; got \"GTE\"",
                "param \"success_codes[1]\": must be at most 599, got 700",
                "param \"url\": must not be empty, got 0 characters",
            ]
        );
        let s = json!({"type": "string", "maxLength": 3});
        assert_eq!(check_params(&s, &json!("abcd"))[0].message, "must be at most 3 characters long, got 4");
        let n = json!({"type": "number", "minimum": 0});
        assert_eq!(check_params(&n, &json!(-1))[0].message, "must be at least 0, got -1");
    }

    #[test]
    fn params_that_are_not_an_object() {
        let errors = check_params(&http_schema(), &json!([1]));
        assert_eq!(errors[0].to_string(), "params: must be an object, got an array ([1])");
    }

    #[test]
    fn type_lists_and_unknown_keywords() {
        let s = json!({"type": ["string", "null"], "format": "date"});
        assert!(check_params(&s, &Value::Null).is_empty());
        assert!(check_params(&s, &json!("x")).is_empty());
        assert_eq!(
            check_params(&s, &json!(true))[0].message,
            "must be a string or null, got a boolean (true): put it in quotes"
        );
        assert!(check_params(&json!({}), &json!({"anything": [1, 2]})).is_empty());
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
    }
}

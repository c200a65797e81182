//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902: add, remove, replace,
//! move, copy, test) and strategic merge patch, which is applied as a merge patch (the same
//! thing for the labels, annotations and scalar fields that Updraft patches).

use serde_json::Value;

use crate::status::ApiError;

/// The patch flavours of `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    Merge,
    Json,
    Strategic,
}

impl PatchType {
    pub(crate) fn from_content_type(content_type: &str) -> Result<PatchType, ApiError> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media {
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            _ => Err(ApiError::unsupported_media_type(content_type)),
        }
    }
}

/// Applies `patch` to `target`.
pub(crate) fn apply(kind: PatchType, target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    match kind {
        PatchType::Merge | PatchType::Strategic => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("error decoding patch: expected a JSON object"));
            }
            merge(target, patch);
            Ok(())
        }
        PatchType::Json => json_patch(target, patch),
    }
}

/// RFC 7386: objects merge recursively, `null` removes, anything else replaces.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    let Some(patch_map) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Some(target_map) = target.as_object_mut() {
        for (key, value) in patch_map {
            if value.is_null() {
                target_map.remove(key);
            } else {
                merge(target_map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<(String, String), ApiError> {
    if !path.starts_with('/') {
        return Err(ApiError::patch_failed(format!("add operation does not apply: doc is missing path: {path:?}")));
    }
    let (parent, last) = path.rsplit_once('/').unwrap_or(("", path));
    Ok((parent.to_owned(), unescape(last)))
}

fn missing(path: &str) -> ApiError {
    // The apiserver answers a JSON patch that does not apply with a bare 422.
    ApiError::patch_failed(format!("doc is missing path: {path:?}: missing value"))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    match doc.pointer_mut(&parent) {
        Some(Value::Object(map)) => {
            map.insert(last, value);
            Ok(())
        }
        Some(Value::Array(items)) => {
            if last == "-" {
                items.push(value);
                return Ok(());
            }
            let index: usize = last.parse().map_err(|_| missing(path))?;
            if index > items.len() {
                return Err(missing(path));
            }
            items.insert(index, value);
            Ok(())
        }
        _ => Err(missing(path)),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, ApiError> {
    let (parent, last) = split_pointer(path)?;
    match doc.pointer_mut(&parent) {
        Some(Value::Object(map)) => map.remove(&last).ok_or_else(|| missing(path)),
        Some(Value::Array(items)) => {
            let index: usize = last.parse().map_err(|_| missing(path))?;
            if index >= items.len() {
                return Err(missing(path));
            }
            Ok(items.remove(index))
        }
        _ => Err(missing(path)),
    }
}

fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops = patch.as_array().ok_or_else(|| ApiError::bad_request("json patch must be an array of operations"))?;
    // Operations apply atomically: work on a copy.
    let mut work = doc.clone();
    for op in ops {
        let name = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op.get("path").and_then(Value::as_str).unwrap_or("");
        let value =
            || op.get("value").cloned().ok_or_else(|| ApiError::bad_request(format!("{name} operation has no value")));
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request(format!("{name} operation has no from")))
        };
        match name {
            "add" => add(&mut work, path, value()?)?,
            "remove" => {
                remove(&mut work, path)?;
            }
            "replace" => {
                if work.pointer(path).is_none() {
                    return Err(missing(path));
                }
                remove(&mut work, path)?;
                add(&mut work, path, value()?)?;
            }
            "move" => {
                let moved = remove(&mut work, from()?)?;
                add(&mut work, path, moved)?;
            }
            "copy" => {
                let copied = work.pointer(from()?).cloned().ok_or_else(|| missing(path))?;
                add(&mut work, path, copied)?;
            }
            "test" => {
                if work.pointer(path) != Some(&value()?) {
                    return Err(ApiError::patch_failed(format!("testing value {path} failed: test failed")));
                }
            }
            other => return Err(ApiError::bad_request(format!("unexpected kind: {other:?}"))),
        }
    }
    *doc = work;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_adds_replaces_and_removes() {
        let mut doc = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        apply(PatchType::Merge, &mut doc, &json!({"metadata": {"labels": {"a": null, "c": "3"}}})).expect("applies");
        assert_eq!(doc, json!({"metadata": {"labels": {"b": "2", "c": "3"}}}));
    }

    #[test]
    fn json_patch_ops() {
        let mut doc = json!({"metadata": {"labels": {"a": "1"}}, "list": [1, 2]});
        let patch = json!([
            {"op": "test", "path": "/metadata/labels/a", "value": "1"},
            {"op": "add", "path": "/metadata/labels/done~1x", "value": "true"},
            {"op": "replace", "path": "/metadata/labels/a", "value": "9"},
            {"op": "remove", "path": "/list/0"},
            {"op": "add", "path": "/list/-", "value": 3}
        ]);
        apply(PatchType::Json, &mut doc, &patch).expect("applies");
        assert_eq!(doc, json!({"metadata": {"labels": {"a": "9", "done/x": "true"}}, "list": [2, 3]}));
        let failing = json!([{"op": "add", "path": "/x", "value": 1}, {"op": "test", "path": "/x", "value": 2}]);
        assert!(apply(PatchType::Json, &mut doc, &failing).is_err());
        assert!(doc.get("x").is_none(), "a failed patch leaves the document unchanged");
        assert!(apply(PatchType::Json, &mut doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}

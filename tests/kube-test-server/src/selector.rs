//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, exists, `!key`) and field selectors
//! (`=`, `==`, `!=` on the fields each resource supports), parsed and matched as the apiserver does.

use serde_json::Value;

use crate::status::ApiError;
use crate::store::Resource;

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed `labelSelector`; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LabelSelector(Vec<Requirement>);

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_error(text: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!("unable to parse requirement: {text:?}: {why}"))
}

fn check_key(key: &str, whole: &str) -> Result<String, ApiError> {
    if crate::validate::label_key_error(key).is_some() {
        return Err(parse_error(whole, &format!("invalid label key {key:?}")));
    }
    Ok(key.to_owned())
}

fn check_value(value: &str, whole: &str) -> Result<String, ApiError> {
    if crate::validate::label_value_error(value).is_some() {
        return Err(parse_error(whole, &format!("invalid label value {value:?}")));
    }
    Ok(value.to_owned())
}

fn parse_set(rest: &str, whole: &str) -> Result<Vec<String>, ApiError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| parse_error(whole, "expected a set in parentheses"))?;
    inner.split(',').map(|v| check_value(v.trim(), whole)).collect()
}

impl LabelSelector {
    pub(crate) fn parse(text: &str) -> Result<LabelSelector, ApiError> {
        let mut requirements = Vec::new();
        if text.trim().is_empty() {
            return Ok(LabelSelector(requirements));
        }
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                return Err(parse_error(text, "empty requirement"));
            }
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::DoesNotExist(check_key(key.trim(), part)?)
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(check_key(key.trim(), part)?, check_value(value.trim(), part)?)
            } else if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(check_key(key.trim(), part)?, check_value(value.trim(), part)?)
            } else if let Some((key, rest)) = part.split_once(" notin ") {
                Requirement::NotIn(check_key(key.trim(), part)?, parse_set(rest, part)?)
            } else if let Some((key, rest)) = part.split_once(" in ") {
                Requirement::In(check_key(key.trim(), part)?, parse_set(rest, part)?)
            } else {
                Requirement::Exists(check_key(part, part)?)
            };
            requirements.push(requirement);
        }
        Ok(LabelSelector(requirements))
    }

    /// Whether an object (its `metadata.labels`) satisfies every requirement.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels").and_then(Value::as_object);
        let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            // As in Kubernetes, `!=` and `notin` also match objects without the label.
            Requirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::DoesNotExist(k) => label(k).is_none(),
        })
    }
}

/// A parsed `fieldSelector`.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

/// The fields each resource can be selected by, with their JSON pointers.
fn field_pointer(resource: Resource, field: &str) -> Option<&'static str> {
    let common = match field {
        "metadata.name" => Some("/metadata/name"),
        "metadata.namespace" => Some("/metadata/namespace"),
        _ => None,
    };
    common.or(match (resource, field) {
        (Resource::Pods, "spec.nodeName") => Some("/spec/nodeName"),
        (Resource::Pods, "spec.restartPolicy") => Some("/spec/restartPolicy"),
        (Resource::Pods, "spec.schedulerName") => Some("/spec/schedulerName"),
        (Resource::Pods, "spec.serviceAccountName") => Some("/spec/serviceAccountName"),
        (Resource::Pods, "status.phase") => Some("/status/phase"),
        (Resource::Pods, "status.podIP") => Some("/status/podIP"),
        (Resource::Pods, "status.nominatedNodeName") => Some("/status/nominatedNodeName"),
        (Resource::Events, "involvedObject.kind") => Some("/involvedObject/kind"),
        (Resource::Events, "involvedObject.namespace") => Some("/involvedObject/namespace"),
        (Resource::Events, "involvedObject.name") => Some("/involvedObject/name"),
        (Resource::Events, "involvedObject.uid") => Some("/involvedObject/uid"),
        (Resource::Events, "involvedObject.apiVersion") => Some("/involvedObject/apiVersion"),
        (Resource::Events, "involvedObject.resourceVersion") => Some("/involvedObject/resourceVersion"),
        (Resource::Events, "involvedObject.fieldPath") => Some("/involvedObject/fieldPath"),
        (Resource::Events, "reason") => Some("/reason"),
        (Resource::Events, "reportingComponent") => Some("/reportingComponent"),
        (Resource::Events, "source") => Some("/source/component"),
        (Resource::Events, "type") => Some("/type"),
        (Resource::Namespaces, "status.phase") => Some("/status/phase"),
        _ => None,
    })
}

impl FieldSelector {
    pub(crate) fn parse(resource: Resource, text: &str) -> Result<FieldSelector, ApiError> {
        let mut terms = Vec::new();
        if text.trim().is_empty() {
            return Ok(FieldSelector(terms));
        }
        for part in text.split(',') {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!("invalid selector: '{text}'; can't understand '{part}'")));
            };
            let field = field.trim();
            if field_pointer(resource, field).is_none() {
                return Err(ApiError::bad_request(format!("field label not supported: {field}")));
            }
            terms.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(FieldSelector(terms))
    }

    pub(crate) fn matches(&self, resource: Resource, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, want)| {
            let actual =
                field_pointer(resource, field).and_then(|p| object.pointer(p)).and_then(Value::as_str).unwrap_or("");
            (actual == want) == *equal
        })
    }
}

/// A label and a field selector together.
#[derive(Debug, Clone)]
pub(crate) struct Selectors {
    pub(crate) resource: Resource,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
}

impl Selectors {
    pub(crate) fn parse(resource: Resource, labels: Option<&str>, fields: Option<&str>) -> Result<Selectors, ApiError> {
        Ok(Selectors {
            resource,
            labels: LabelSelector::parse(labels.unwrap_or(""))?,
            fields: FieldSelector::parse(resource, fields.unwrap_or(""))?,
        })
    }

    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(self.resource, object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labelled(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "labels": labels}, "status": {"phase": "Running"}})
    }

    #[test]
    fn label_selector_operators() {
        let pod = labelled(json!({"app": "web", "tier": "front"}));
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("app notin (db, cache)", true),
            ("missing notin (db)", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app=web,tier in (front),!missing", true),
            ("app=web,tier=back", false),
        ];
        for (text, want) in cases {
            let selector = LabelSelector::parse(text).expect(text);
            assert_eq!(selector.matches(&pod), want, "{text}");
        }
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("bad key!=x=").is_err());
    }

    #[test]
    fn field_selector_fields() {
        let pod = labelled(json!({}));
        let ok = |t: &str| FieldSelector::parse(Resource::Pods, t).expect(t).matches(Resource::Pods, &pod);
        assert!(ok("metadata.name=p"));
        assert!(ok("status.phase!=Succeeded,metadata.namespace=ns"));
        assert!(ok("spec.nodeName="));
        assert!(!ok("status.phase=Pending"));
        let error = FieldSelector::parse(Resource::Pods, "spec.foo=x").expect_err("unknown field");
        assert_eq!(error.code, 400);
        assert_eq!(error.message, "field label not supported: spec.foo");
    }
}

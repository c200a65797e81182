//! The task try an operator runs: identifiers, dates and the rendered parameters.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::Failure;
use crate::bindings::updraft::operator::types as wit;

/// Which task try is running, and its parameters (templates already rendered).
#[derive(Debug, Clone)]
pub struct Context {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    /// 1 for the first try.
    pub try_number: u32,
    /// RFC 3339 timestamps.
    pub logical_date: String,
    pub data_interval_start: String,
    pub data_interval_end: String,
    /// The task's `params` object.
    pub params: Map<String, Value>,
}

impl Context {
    pub(crate) fn from_wit(c: wit::TaskContext) -> Result<Self, Failure> {
        let params = match serde_json::from_str::<Value>(&c.params) {
            Ok(Value::Object(map)) => map,
            Ok(Value::Null) => Map::new(),
            Ok(other) => {
                return Err(Failure::permanent(format!("params must be a JSON object, got {other}")));
            }
            Err(e) => return Err(Failure::permanent(format!("params are not valid JSON: {e}"))),
        };
        Ok(Self {
            dag_id: c.dag_id,
            run_id: c.run_id,
            task_id: c.task_id,
            try_number: c.try_number,
            logical_date: c.logical_date,
            data_interval_start: c.data_interval_start,
            data_interval_end: c.data_interval_end,
            params,
        })
    }

    /// Deserializes all parameters into `P`; a mismatch is a permanent failure naming it.
    pub fn params<P: DeserializeOwned>(&self) -> Result<P, Failure> {
        serde_json::from_value(Value::Object(self.params.clone()))
            .map_err(|e| Failure::permanent(format!("invalid params: {e}")))
    }

    /// The string parameter `name`, if present and a string.
    pub fn param_str(&self, name: &str) -> Option<&str> {
        self.params.get(name).and_then(Value::as_str)
    }

    /// The string parameter `name`, or a permanent failure saying it is required.
    pub fn require_str(&self, name: &str) -> Result<&str, Failure> {
        self.param_str(name)
            .ok_or_else(|| Failure::permanent(format!("param \"{name}\" is required and must be a string")))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::{ErrorCode, HostError};

    fn wit_ctx(params: &str) -> wit::TaskContext {
        wit::TaskContext {
            dag_id: "d".into(),
            run_id: "r".into(),
            task_id: "t".into(),
            try_number: 2,
            logical_date: "2026-01-01T00:00:00Z".into(),
            data_interval_start: "2026-01-01T00:00:00Z".into(),
            data_interval_end: "2026-01-02T00:00:00Z".into(),
            params: params.into(),
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct P {
        #[allow(dead_code)]
        n: u32,
    }

    #[test]
    fn params_deserialize_or_fail_permanently() {
        let ctx = Context::from_wit(wit_ctx(r#"{"n": 3, "s": "x"}"#)).expect("ctx");
        assert_eq!(ctx.try_number, 2);
        assert_eq!(ctx.param_str("s"), Some("x"));
        let err = ctx.params::<P>().expect_err("unknown field");
        assert!(!err.retryable);
        assert!(err.message.starts_with("invalid params: unknown field `s`"), "{}", err.message);
        let err = ctx.require_str("missing").expect_err("missing");
        assert_eq!(err.message, "param \"missing\" is required and must be a string");
    }

    #[test]
    fn params_must_be_an_object() {
        assert!(Context::from_wit(wit_ctx("null")).expect("null is empty").params.is_empty());
        let err = Context::from_wit(wit_ctx("[1]")).expect_err("array");
        assert_eq!(err.message, "params must be a JSON object, got [1]");
        assert!(Context::from_wit(wit_ctx("{")).is_err());
    }

    #[test]
    fn host_errors_become_failures() {
        let denied = Failure::from(HostError { code: ErrorCode::NotGranted, message: "no".into() });
        assert!(!denied.retryable);
        let flaky = Failure::from(HostError { code: ErrorCode::Failed, message: "db down".into() });
        assert!(flaky.retryable);
        assert_eq!(flaky.message, "db down");
    }
}

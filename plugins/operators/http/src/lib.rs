//! The `http` operator: sends one HTTP request (URL and body templated by the server) to a
//! host the server allow-lists for this plugin, checks the status against `success_codes`
//! and passes the response downstream through XCom (`return_value`: status and body, the
//! body parsed as JSON when it is JSON).

use std::collections::BTreeMap;

use serde::Deserialize;
use updraft_plugin_sdk::{Capability, Context, Descriptor, Failure, Operator, Outcome, Value, http, json, log};

struct Http;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    url: String,
    #[serde(default = "default_method")]
    method: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    success_codes: Vec<u16>,
    #[serde(default)]
    timeout_seconds: Option<u32>,
}

fn default_method() -> String {
    "GET".to_owned()
}

impl Operator for Http {
    fn describe() -> Descriptor {
        Descriptor::new("http", env!("CARGO_PKG_VERSION"), "Sends an HTTP request; the response goes to XCom")
            .params_schema(json!({
                "type": "object",
                "properties": {
                    "url": {"type": "string", "minLength": 1},
                    "method": {"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"], "default": "GET"},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                    "body": {"type": "string"},
                    "success_codes": {"type": "array", "items": {"type": "integer", "minimum": 100, "maximum": 599}},
                    "timeout_seconds": {"type": "integer", "minimum": 1, "maximum": 3600}
                },
                "required": ["url"],
                "additionalProperties": false
            }))
            .capability(Capability::Http)
    }

    fn execute(ctx: Context) -> Result<Outcome, Failure> {
        let p: Params = ctx.params()?;
        let mut request = http::request(&p.method, &p.url);
        request.headers = p.headers.into_iter().collect();
        request.body = p.body.map(String::into_bytes);
        request.timeout_ms = p.timeout_seconds.map(|s| s.saturating_mul(1000));
        let response = http::send(&request)?;
        log::info(&format!("{} {} -> {}", p.method, p.url, response.status));
        let ok = if p.success_codes.is_empty() {
            (200..300).contains(&response.status)
        } else {
            p.success_codes.contains(&response.status)
        };
        let text = String::from_utf8_lossy(&response.body).into_owned();
        if !ok {
            let excerpt: String = text.chars().take(500).collect();
            return Err(Failure::new(format!(
                "{} {} returned status {}, not a success code: {excerpt}",
                p.method, p.url, response.status
            )));
        }
        let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
        Ok(Outcome::output(json!({"status": response.status, "body": body})))
    }
}

updraft_plugin_sdk::export!(Http);

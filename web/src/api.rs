//! The typed client of Updraft's REST API: `fetch` with the session cookie, the CSRF token on
//! every request that changes something, JSON in and out, and the server's problem details
//! turned into [`ApiError`] (its `detail` is what the user reads); and the loaders more than
//! one page needs (the operator plugins and their parameter schemas).

use std::cell::RefCell;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestCredentials, RequestInit, Response};

/// A failed call: the HTTP status (0 when the server was not reached) and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub detail: String,
    /// Located errors of a DAG file the server refused (422).
    pub errors: Vec<Located>,
}

/// An error or warning at a line of a DAG file.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub severity: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
    pub help: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

thread_local! {
    static CSRF: RefCell<Option<String>> = const { RefCell::new(None) };
    static ON_SIGNED_OUT: RefCell<Option<Box<dyn Fn()>>> = const { RefCell::new(None) };
}

/// Remembers the session's CSRF token (from sign-in or `/auth/session`).
pub fn set_csrf(token: Option<String>) {
    CSRF.with(|c| *c.borrow_mut() = token);
}

/// What to do when the server says the session is gone (401): show the sign-in page.
pub fn on_signed_out(f: impl Fn() + 'static) {
    ON_SIGNED_OUT.with(|c| *c.borrow_mut() = Some(Box::new(f)));
}

fn network(e: JsValue) -> ApiError {
    let text = e.as_string().or_else(|| js_sys::JSON::stringify(&e).ok().and_then(|s| s.as_string()));
    ApiError {
        status: 0,
        detail: format!("cannot reach the Updraft server ({}); check that it runs", text.unwrap_or_default()),
        errors: Vec::new(),
    }
}

/// A request body.
pub enum Body {
    Json(String),
    File(web_sys::File),
}

/// Sends a request; the status and the body text of any 2xx answer.
pub async fn call(method: &str, path: &str, body: Option<Body>) -> Result<(u16, String), ApiError> {
    let init = RequestInit::new();
    init.set_method(method);
    init.set_credentials(RequestCredentials::SameOrigin);
    let headers = web_sys::Headers::new().map_err(network)?;
    headers.set("Accept", "application/json").map_err(network)?;
    if method != "GET"
        && let Some(token) = CSRF.with(|c| c.borrow().clone())
    {
        headers.set("X-CSRF-Token", &token).map_err(network)?;
    }
    match body {
        None => {}
        Some(Body::Json(text)) => {
            headers.set("Content-Type", "application/json").map_err(network)?;
            init.set_body(&JsValue::from_str(&text));
        }
        Some(Body::File(file)) => {
            headers.set("Content-Type", "application/wasm").map_err(network)?;
            init.set_body(&file);
        }
    }
    init.set_headers(&headers);
    let request = Request::new_with_str_and_init(path, &init).map_err(network)?;
    let window = web_sys::window().ok_or_else(|| network(JsValue::from_str("no window")))?;
    let response: Response =
        JsFuture::from(window.fetch_with_request(&request)).await.map_err(network)?.unchecked_into();
    let status = response.status();
    let text = match response.text() {
        Ok(promise) => JsFuture::from(promise).await.map_err(network)?.as_string().unwrap_or_default(),
        Err(e) => return Err(network(e)),
    };
    if (200..300).contains(&status) {
        return Ok((status, text));
    }
    if status == 401 && !path.starts_with("/auth/") {
        ON_SIGNED_OUT.with(|c| {
            if let Some(f) = c.borrow().as_ref() {
                f();
            }
        });
    }
    Err(problem(status, &text))
}

/// Reads a problem-details body; anything else becomes a generic message with the status.
fn problem(status: u16, text: &str) -> ApiError {
    let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let detail = value
        .get("detail")
        .and_then(Value::as_str)
        .or_else(|| value.get("title").and_then(Value::as_str))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("the server answered {status}"));
    let errors = value
        .get("errors")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|e| Located {
                    severity: e.get("severity").and_then(Value::as_str).unwrap_or("error").to_owned(),
                    line: e.get("line").and_then(Value::as_u64).unwrap_or(0) as u32,
                    column: e.get("column").and_then(Value::as_u64).unwrap_or(0) as u32,
                    message: e.get("message").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    help: e.get("help").and_then(Value::as_str).map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default();
    ApiError { status, detail, errors }
}

fn decode<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError {
        status: 0,
        detail: format!("the server's answer was not understood ({e}); reload the page"),
        errors: Vec::new(),
    })
}

pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    let (_, text) = call("GET", path, None).await?;
    decode(&text)
}

/// Sends `body` as JSON with `method`; the answer decoded.
pub async fn send<T: DeserializeOwned>(method: &str, path: &str, body: &impl Serialize) -> Result<T, ApiError> {
    let json = serde_json::to_string(body).map_err(|e| ApiError {
        status: 0,
        detail: format!("cannot encode the request: {e}"),
        errors: Vec::new(),
    })?;
    let (_, text) = call(method, path, Some(Body::Json(json))).await?;
    if text.trim().is_empty() { decode("null") } else { decode(&text) }
}

/// A path segment, percent-encoded.
pub fn seg(text: &str) -> String {
    js_sys::encode_uri_component(text).as_string().unwrap_or_default()
}

/// `/api/updraft/plugins` as it answers: the operators and the files that are not valid ones.
pub async fn plugins() -> Result<Value, ApiError> {
    get::<Value>("/api/updraft/plugins").await
}

/// The operators' list, as `/api/updraft/plugins` answers it.
pub async fn load_operators() -> Result<Vec<Value>, ApiError> {
    let answer = plugins().await?;
    Ok(answer.get("operators").and_then(Value::as_array).cloned().unwrap_or_default())
}

/// A plugin's parameter schema as JSON, whether the server sends it as text or as an object.
pub fn schema_of(plugin: &Value) -> Value {
    match plugin.get("params_schema") {
        Some(Value::String(text)) => serde_json::from_str(text).unwrap_or(Value::Null),
        Some(other) => other.clone(),
        None => Value::Null,
    }
}

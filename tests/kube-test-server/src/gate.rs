//! What every request passes before its handler: the request log, injected faults,
//! authentication (bearer token → user, else 401) and RBAC authorisation of the verb and
//! resource the path and method stand for (else 403), as the apiserver's filter chain does.

use std::sync::{Arc, Mutex, PoisonError};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::rbac::{self, Attributes, User};
use crate::status::ApiError;
use crate::{Shared, lock};

/// A fault to inject: the next `times` requests whose method and path match fail this way.
#[derive(Debug, Clone)]
pub struct Fault {
    /// `GET`, `POST`, …; `None` matches every method.
    pub method: Option<String>,
    /// Matched against the path without the query, e.g. `/api/v1/namespaces/updraft/pods`.
    pub path_prefix: String,
    pub times: u32,
    pub kind: FaultKind,
}

impl Fault {
    /// A fault on the next matching request; use [`Fault::times`] for more.
    pub fn new(method: Option<&str>, path_prefix: &str, kind: FaultKind) -> Fault {
        Fault { method: method.map(str::to_ascii_uppercase), path_prefix: path_prefix.to_owned(), times: 1, kind }
    }

    pub fn times(mut self, times: u32) -> Fault {
        self.times = times;
        self
    }
}

/// How an injected fault fails a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// 429 TooManyRequests with `Retry-After` (API priority and fairness throttling).
    TooManyRequests { retry_after_seconds: u64 },
    /// 500 InternalError.
    InternalError,
    /// 503 ServiceUnavailable, with `Retry-After` if given.
    ServiceUnavailable { retry_after_seconds: Option<u64> },
    /// The connection is dropped without a response; the request has no effect.
    DropConnection,
    /// The request takes effect, then the connection is dropped before the response body
    /// arrives: the client cannot know whether e.g. its create happened.
    DropConnectionAfterProcessing,
}

/// One served request, for tests that assert what a client did.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub status: u16,
    /// The authenticated user, if any.
    pub user: Option<String>,
}

#[derive(Default)]
pub(crate) struct Gate {
    faults: Mutex<Vec<Fault>>,
    requests: Mutex<Vec<RequestRecord>>,
}

impl Gate {
    pub(crate) fn add_fault(&self, fault: Fault) {
        lock(&self.faults).push(fault);
    }

    pub(crate) fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.requests).clone()
    }

    fn take_fault(&self, method: &Method, path: &str) -> Option<FaultKind> {
        let mut faults = lock(&self.faults);
        let index = faults.iter().position(|f| {
            f.times > 0 && f.method.as_deref().is_none_or(|m| m == method.as_str()) && path.starts_with(&f.path_prefix)
        })?;
        let fault = &mut faults[index];
        fault.times -= 1;
        let kind = fault.kind.clone();
        if fault.times == 0 {
            faults.remove(index);
        }
        Some(kind)
    }
}

/// The authorisation attributes of a request, or `None` for non-resource paths (discovery,
/// `/version`), which every authenticated user may read.
pub(crate) fn attributes(method: &Method, path: &str, query: &str) -> Option<Attributes> {
    let (api_group, rest) = match path.strip_prefix("/api/v1/") {
        Some(rest) => ("", rest),
        None => {
            // `/apis/GROUP/VERSION/…`; the group and version documents themselves are discovery.
            let mut parts = path.strip_prefix("/apis/")?.splitn(3, '/');
            let (group, _version, rest) = (parts.next()?, parts.next()?, parts.next()?);
            (group, rest)
        }
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let (namespace, resource, name, sub) = match segments.as_slice() {
        ["namespaces"] => (None, "namespaces", None, None),
        // Requests on a namespace object are authorised within that namespace.
        ["namespaces", ns] => (Some(*ns), "namespaces", Some(*ns), None),
        ["namespaces", ns, sub @ ("status" | "finalize")] => (Some(*ns), "namespaces", Some(*ns), Some(*sub)),
        ["namespaces", ns, resource] => (Some(*ns), *resource, None, None),
        ["namespaces", ns, resource, name] => (Some(*ns), *resource, Some(*name), None),
        ["namespaces", ns, resource, name, sub] => (Some(*ns), *resource, Some(*name), Some(*sub)),
        [resource] => (None, *resource, None, None),
        _ => return None,
    };
    let watch = query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match method.as_str() {
        "GET" | "HEAD" if name.is_some() => "get",
        "GET" | "HEAD" if watch => "watch",
        "GET" | "HEAD" => "list",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" if name.is_some() => "delete",
        "DELETE" => "deletecollection",
        _ => return None,
    };
    let resource = match sub {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_owned(),
    };
    Some(Attributes {
        verb: verb.to_owned(),
        api_group: api_group.to_owned(),
        resource,
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
    })
}

fn bearer(request: &Request) -> Option<&str> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A body that fails at once: hyper then aborts the connection instead of finishing the response.
fn dropped_connection() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fault injected"))
    });
    Response::new(Body::from_stream(stream))
}

/// The middleware in front of every handler.
pub(crate) async fn gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let uri = request.uri().to_string();
    let user =
        bearer(&request).and_then(|t| shared.rbac.read().unwrap_or_else(PoisonError::into_inner).authenticate(t));
    let record = |status: u16| RequestRecord {
        method: method.to_string(),
        uri: uri.clone(),
        status,
        user: user.as_ref().map(|u| u.name.clone()),
    };
    let log = |status: u16| lock(&shared.gate.requests).push(record(status));

    let fault = shared.gate.take_fault(&method, &path);
    let response = match fault {
        Some(FaultKind::TooManyRequests { retry_after_seconds }) => {
            ApiError::too_many_requests(retry_after_seconds).into_response()
        }
        Some(FaultKind::InternalError) => ApiError::internal("injected fault").into_response(),
        Some(FaultKind::ServiceUnavailable { retry_after_seconds }) => {
            ApiError::service_unavailable(retry_after_seconds).into_response()
        }
        Some(FaultKind::DropConnection) => {
            log(0);
            return dropped_connection();
        }
        Some(FaultKind::DropConnectionAfterProcessing) | None => {
            let websocket = is_websocket(request.headers());
            match authorise(&shared, user.as_ref(), &method, &path, &query, websocket) {
                Err(error) => error.into_response(),
                Ok(()) => {
                    let mut request = request;
                    if let Some(user) = &user {
                        request.extensions_mut().insert(user.clone());
                    }
                    let response = next.run(request).await;
                    if fault.is_some() {
                        log(response.status().as_u16());
                        let (parts, _) = response.into_parts();
                        let mut dropped = dropped_connection();
                        *dropped.status_mut() = parts.status;
                        return dropped;
                    }
                    response
                }
            }
        }
    };
    log(response.status().as_u16());
    response
}

/// Whether the request upgrades to a WebSocket (`Upgrade: websocket`).
fn is_websocket(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("websocket")))
}

fn authorise(
    shared: &Shared,
    user: Option<&User>,
    method: &Method,
    path: &str,
    query: &str,
    websocket: bool,
) -> Result<(), ApiError> {
    let user = user.ok_or_else(ApiError::unauthorized)?;
    let Some(attrs) = attributes(method, path, query) else { return Ok(()) };
    let rbac = shared.rbac.read().unwrap_or_else(PoisonError::into_inner);
    let deny = |attrs: &Attributes| {
        let plural = attrs.resource.split('/').next().unwrap_or("");
        let qualified =
            if attrs.api_group.is_empty() { plural.to_owned() } else { format!("{plural}.{}", attrs.api_group) };
        Err(ApiError::forbidden(&qualified, attrs.name.as_deref(), &rbac::forbidden_reason(user, attrs)))
    };
    if !rbac.authorize(user, &attrs) {
        return deny(&attrs);
    }
    // A WebSocket GET on exec, attach or port-forward also needs `create`, as the apiserver
    // checks since Kubernetes 1.30 (the same stream a POST opens with SPDY).
    let streams = ["pods/exec", "pods/attach", "pods/portforward"].contains(&attrs.resource.as_str());
    if websocket && streams && attrs.verb == "get" {
        let create = Attributes { verb: "create".to_owned(), ..attrs };
        if !rbac.authorize(user, &create) {
            return deny(&create);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verb(method: Method, path: &str, query: &str) -> (String, String, Option<String>) {
        let a = attributes(&method, path, query).expect("a resource path");
        (a.verb, a.resource, a.name)
    }

    #[test]
    fn request_attributes() {
        let p = "/api/v1/namespaces/u/pods";
        assert_eq!(verb(Method::GET, p, ""), ("list".into(), "pods".into(), None));
        assert_eq!(verb(Method::GET, p, "watch=true&x=1").0, "watch");
        assert_eq!(verb(Method::POST, p, "").0, "create");
        assert_eq!(verb(Method::GET, "/api/v1/namespaces/u/pods/x/log", "").1, "pods/log");
        assert_eq!(verb(Method::PATCH, "/api/v1/namespaces/u/pods/x", "").0, "patch");
        assert_eq!(verb(Method::DELETE, "/api/v1/namespaces/u/pods/x", "").0, "delete");
        assert_eq!(
            verb(Method::GET, "/api/v1/namespaces/u", ""),
            ("get".into(), "namespaces".into(), Some("u".into()))
        );
        assert_eq!(verb(Method::GET, "/api/v1/namespaces", "").0, "list");
        assert!(attributes(&Method::GET, "/version", "").is_none());
        assert!(attributes(&Method::GET, "/api/v1", "").is_none());
        let deployment = attributes(&Method::GET, "/apis/apps/v1/namespaces/u/deployments/d", "").expect("resource");
        assert_eq!((deployment.api_group.as_str(), deployment.resource.as_str()), ("apps", "deployments"));
        assert!(attributes(&Method::GET, "/apis/apps/v1", "").is_none());
    }
}

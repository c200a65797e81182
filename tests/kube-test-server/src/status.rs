//! Kubernetes `Status` failures: the one error type of the HTTP layer, rendered as the
//! apiserver renders them (kind Status, status Failure, message, reason, details, code).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A failed request, answered with a `Status` body.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    pub(crate) details: Option<Value>,
    pub(crate) retry_after: Option<u64>,
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String, details: Option<Value>) -> ApiError {
        ApiError { code, reason, message, details, retry_after: None }
    }

    pub(crate) fn not_found(plural: &str, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{plural} \"{name}\" not found"),
            Some(json!({"name": name, "kind": plural})),
        )
    }

    /// The 404 of a path this server does not serve.
    pub(crate) fn no_route() -> ApiError {
        ApiError::new(404, "NotFound", "the server could not find the requested resource".to_owned(), Some(json!({})))
    }

    pub(crate) fn already_exists(plural: &str, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{plural} \"{name}\" already exists"),
            Some(json!({"name": name, "kind": plural})),
        )
    }

    pub(crate) fn conflict(plural: &str, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {plural} \"{name}\": {why}"),
            Some(json!({"name": name, "kind": plural})),
        )
    }

    pub(crate) fn modified(plural: &str, name: &str) -> ApiError {
        ApiError::conflict(
            plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with one cause per invalid field, e.g. `Pod "x" is invalid: spec.containers: Required value`.
    pub(crate) fn invalid(kind: &str, name: &str, causes: Vec<Cause>) -> ApiError {
        let summary = if causes.len() == 1 {
            causes[0].text()
        } else {
            format!("[{}]", causes.iter().map(Cause::text).collect::<Vec<_>>().join(", "))
        };
        let causes_json: Vec<Value> =
            causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect();
        ApiError::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {summary}"),
            Some(json!({"name": name, "kind": kind, "causes": causes_json})),
        )
    }

    /// 403 with the message format of the apiserver's `NewForbidden`.
    pub(crate) fn forbidden(plural: &str, name: Option<&str>, why: &str) -> ApiError {
        let (message, details) = match name {
            Some(name) => (format!("{plural} \"{name}\" is forbidden: {why}"), json!({"name": name, "kind": plural})),
            None => (format!("{plural} is forbidden: {why}"), json!({"kind": plural})),
        };
        ApiError::new(403, "Forbidden", message, Some(details))
    }

    /// A JSON patch that does not apply (the apiserver's bare 422).
    pub(crate) fn patch_failed(message: String) -> ApiError {
        ApiError::new(422, "Invalid", message, None)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message.into(), None)
    }

    pub(crate) fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized".to_owned(), None)
    }

    pub(crate) fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".to_owned(),
            Some(json!({})),
        )
    }

    pub(crate) fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type:?}; the Kubernetes API test server decodes protobuf only for Secrets and ConfigMaps)"
            ),
            None,
        )
    }

    /// 410 for a list `continue` token older than the compaction window.
    pub(crate) fn expired_continue() -> ApiError {
        ApiError::new(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.".to_owned(),
            None,
        )
    }

    pub(crate) fn too_many_requests(retry_after: u64) -> ApiError {
        let mut e = ApiError::new(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.".to_owned(),
            Some(json!({"retryAfterSeconds": retry_after})),
        );
        e.retry_after = Some(retry_after);
        e
    }

    pub(crate) fn internal(message: &str) -> ApiError {
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
            Some(json!({"causes": [{"message": message}]})),
        )
    }

    pub(crate) fn service_unavailable(retry_after: Option<u64>) -> ApiError {
        let mut e = ApiError::new(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request".to_owned(),
            None,
        );
        e.retry_after = retry_after;
        e
    }

    /// The `Status` object, as a body or as the object of a watch ERROR event.
    pub(crate) fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

/// One invalid field of a 422.
#[derive(Debug, Clone)]
pub(crate) struct Cause {
    pub(crate) reason: &'static str,
    pub(crate) field: String,
    pub(crate) message: String,
}

impl Cause {
    pub(crate) fn required(field: impl Into<String>) -> Cause {
        Cause { reason: "FieldValueRequired", field: field.into(), message: "Required value".to_owned() }
    }

    pub(crate) fn invalid(field: impl Into<String>, value: &str, why: &str) -> Cause {
        Cause { reason: "FieldValueInvalid", field: field.into(), message: format!("Invalid value: {value:?}: {why}") }
    }

    pub(crate) fn duplicate(field: impl Into<String>, value: &str) -> Cause {
        Cause { reason: "FieldValueDuplicate", field: field.into(), message: format!("Duplicate value: {value:?}") }
    }

    pub(crate) fn not_found(field: impl Into<String>, value: &str) -> Cause {
        Cause { reason: "FieldValueNotFound", field: field.into(), message: format!("Not found: {value:?}") }
    }

    pub(crate) fn forbidden(field: impl Into<String>, why: &str) -> Cause {
        Cause { reason: "FieldValueForbidden", field: field.into(), message: format!("Forbidden: {why}") }
    }

    pub(crate) fn too_long(field: impl Into<String>, max_bytes: usize) -> Cause {
        Cause {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: format!("Too long: may not be more than {max_bytes} bytes"),
        }
    }

    pub(crate) fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Cause {
        let list = supported.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
        Cause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!("Unsupported value: {value:?}: supported values: {list}"),
        }
    }

    fn text(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (code, axum::Json(self.to_status())).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

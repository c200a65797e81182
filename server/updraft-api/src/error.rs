//! The one error type of the API and how it becomes a response: an RFC 9457
//! `application/problem+json` body (`type`, `title`, `status`, `detail`), as Airflow's API
//! answers. `detail` is always a sentence a client can act on; a server-side failure is logged
//! in full and answered with a 500 that says nothing about the internals.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use updraft_db::DbError;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// No bearer token, or one that is malformed, badly signed or expired.
    #[error("Not authenticated")]
    Unauthenticated,
    /// A wrong username or password at `/auth/token`.
    #[error("Invalid credentials")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(String),
    /// Too many wrong passwords for a username: try again in `retry_after` seconds.
    #[error("too many failed sign-ins for this user: try again in {retry_after} s")]
    TooManyAttempts { retry_after: u64 },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    /// A DAG file that does not validate: 422 with every located diagnostic in `errors`.
    #[error("{detail}")]
    InvalidSource { detail: String, errors: serde_json::Value },
    /// An extractor's rejection (malformed JSON, wrong types, body too large, …) with the
    /// status it chose.
    #[error("{detail}")]
    Rejected { status: StatusCode, detail: String },
    /// A failure of the server itself; the message is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) | ApiError::InvalidSource { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Rejected { status, .. } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::NotFound(message) => ApiError::NotFound(message),
            DbError::Conflict(message) => ApiError::Conflict(message),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// A connection or variable from the cluster that cannot be read is the operator's to fix (422;
/// its message names the variable or file, never the value); the database's errors as usual.
impl From<updraft_secrets::SecretsError> for ApiError {
    fn from(error: updraft_secrets::SecretsError) -> Self {
        match error {
            updraft_secrets::SecretsError::Db(e) => e.into(),
            invalid @ updraft_secrets::SecretsError::Invalid { .. } => ApiError::Unprocessable(invalid.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::InvalidSource { detail, errors } = &self {
            return problem_with(status, detail, Some(errors));
        }
        let detail = match &self {
            ApiError::Internal(message) => {
                tracing::error!(%message, "API request failed");
                "the server failed to answer this request; its log says why".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = problem(status, &detail);
        if let ApiError::TooManyAttempts { retry_after } = self
            && let Ok(value) = header::HeaderValue::from_str(&retry_after.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// An `application/problem+json` response.
pub fn problem(status: StatusCode, detail: &str) -> Response {
    problem_with(status, detail, None)
}

/// A problem document, with an `errors` member when there is one.
fn problem_with(status: StatusCode, detail: &str, errors: Option<&serde_json::Value>) -> Response {
    let body = crate::models::Problem {
        kind: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("Error").into(),
        status: status.as_u16(),
        detail: detail.into(),
        errors: errors.cloned(),
    };
    let text = serde_json::to_string(&body).unwrap_or_default();
    let mut response = (status, [(header::CONTENT_TYPE, "application/problem+json")], text).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    }
    response
}

//! Extractors whose rejections are [`ApiError`]s, so that a malformed body (400), a body of the
//! wrong shape or types (422), an oversized body (413) or an undecodable path still get a
//! problem document; and [`Params`], the query string read by hand, because list filters
//! repeat keys (`?tags=a&tags=b`) and bad values must say which parameter is wrong; and
//! [`accepts_gzip`], read from the headers by the graph and the web app's files.

use std::collections::HashMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::header::ACCEPT_ENCODING;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON object body. Anything else is refused with 422: serde would otherwise read a struct
/// from an array.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => value,
            Err(rejection) => return Err(rejected(rejection)),
        };
        if !value.is_object() {
            return Err(ApiError::Unprocessable("the body must be a JSON object".into()));
        }
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|e| ApiError::Unprocessable(format!("the body does not fit: {e}")))
    }
}

fn rejected(rejection: JsonRejection) -> ApiError {
    ApiError::Rejected { status: rejection.status(), detail: rejection.body_text() }
}

/// Path parameters.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}

/// The query string, decoded, with typed getters that name the bad parameter.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, Vec<String>>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        if let Some(query) = parts.uri.query() {
            for (key, value) in form_urlencoded::parse(query.as_bytes()) {
                map.entry(key.into_owned()).or_default().push(value.into_owned());
            }
        }
        Ok(Params(map))
    }
}

impl Params {
    /// The first value of a query parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.last()).map(String::as_str)
    }

    /// Every value of a repeated parameter; comma-separated values are split too.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .get(name)
            .map(|v| v.iter().flat_map(|s| s.split(',')).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// An integer parameter within `min..=max` (`default` when absent); anything else is a 400 naming it.
    pub fn int(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => match text.parse::<i64>() {
                Ok(v) if (min..=max).contains(&v) => Ok(v),
                _ => {
                    Err(ApiError::BadRequest(format!("`{name}` must be an integer from {min} to {max}, not `{text}`")))
                }
            },
        }
    }

    /// A `true`/`false` parameter, if given; anything else is a 400 naming it.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some("true" | "True" | "1") => Ok(Some(true)),
            Some("false" | "False" | "0") => Ok(Some(false)),
            Some(text) => Err(ApiError::BadRequest(format!("`{name}` must be true or false, not `{text}`"))),
        }
    }

    /// `limit` (default 50, at most 100, as Airflow's default `maximum_page_limit`) and `offset`.
    pub fn page(&self) -> Result<(usize, usize), ApiError> {
        let limit = self.int("limit", 50, 0, 100)?;
        let offset = self.int("offset", 0, 0, i64::from(i32::MAX))?;
        Ok((usize::try_from(limit).unwrap_or(50), usize::try_from(offset).unwrap_or(0)))
    }
}

/// A page of `items`.
pub fn paginate<T>(items: Vec<T>, (limit, offset): (usize, usize)) -> Vec<T> {
    items.into_iter().skip(offset).take(limit).collect()
}

/// Whether the request says it accepts gzip (and not with `q=0`).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        parts.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip"))
            && !parts.any(|p| p.replace(' ', "").eq_ignore_ascii_case("q=0"))
    })
}

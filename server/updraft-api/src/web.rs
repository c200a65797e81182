//! The web app: its bundle (`updraft-web-assets`, embedded in the binary) under `/assets/`, and
//! `index.html` for every other GET outside the API, so that a client-side route (`/dags/x`)
//! survives a reload. Files go out gzip-compressed to clients that accept it; the bundle's
//! names carry a content hash, so they are cached for good, and `index.html` never is.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use updraft_web_assets::Asset;

use crate::error::ApiError;

/// The router's fallback: the API's JSON 404/405 under `/api/` and `/auth/`, else the app.
pub async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    let api = path.starts_with("/api/") || path.starts_with("/auth/") || path == "/metrics";
    if api {
        return crate::not_found().await.into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return crate::method_not_allowed().await.into_response();
    }
    let (asset, immutable) = match path.strip_prefix("/assets/") {
        Some(_) => match updraft_web_assets::find(path) {
            Some(asset) => (asset, true),
            None => {
                return ApiError::NotFound(format!("no file {path} in the web app (reload the page)")).into_response();
            }
        },
        None => (updraft_web_assets::index(), false),
    };
    send(asset, immutable, &headers)
}

fn send(asset: &'static Asset, immutable: bool, request: &HeaderMap) -> Response {
    let mut response = if crate::extract::accepts_gzip(request) {
        let mut response = asset.gzip.into_response();
        response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
    } else {
        match updraft_web_assets::decompress(asset) {
            Ok(bytes) => bytes.into_response(),
            Err(e) => return ApiError::Internal(format!("the embedded {}: {e}", asset.path)).into_response(),
        }
    };
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let cache = if immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if !immutable {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    }
    response
}

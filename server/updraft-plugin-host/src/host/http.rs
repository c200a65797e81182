//! `updraft:operator/http`: outgoing HTTP, only to hosts allow-listed for the plugin.
//! Redirects are not followed (a redirect could leave the allow-list); bodies are capped.

use std::time::Duration;

use crate::bindings::updraft::operator::http::{Host, Request, Response};
use crate::bindings::{ErrorCode, HostError};

use super::{HostState, host_error};

/// The process-wide HTTP client.
pub(crate) struct HttpClient(reqwest::Client);

impl HttpClient {
    pub fn new() -> Result<Self, String> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(300))
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map(HttpClient)
            .map_err(|e| e.to_string())
    }
}

impl HostState {
    async fn send_http(&mut self, req: Request) -> Result<Response, HostError> {
        let invalid = |m: String| host_error(ErrorCode::InvalidInput, m);
        let url = reqwest::Url::parse(&req.url).map_err(|e| invalid(format!("invalid URL {:?}: {e}", req.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!("URL {:?}: only http and https are supported", req.url)));
        }
        let host = url.host_str().ok_or_else(|| invalid(format!("URL {:?} has no host", req.url)))?.to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        if !self.grants.allows_http_host(&host, port) {
            return Err(self.not_granted(&format!("\"http\" host \"{host}\""), "allow_http_hosts"));
        }
        let method = reqwest::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| invalid(format!("invalid HTTP method {:?}", req.method)))?;
        let mut builder = self.services.http.0.request(method, url);
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        if let Some(ms) = req.timeout_ms {
            builder = builder.timeout(Duration::from_millis(u64::from(ms)));
        }
        let failed = |e: reqwest::Error| host_error(ErrorCode::Failed, format!("HTTP request to {host} failed: {e}"));
        let mut response = builder.send().await.map_err(failed)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let max = self.services.limits.max_http_response_bytes;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > max {
                return Err(host_error(
                    ErrorCode::LimitExceeded,
                    format!("the response from {host} is larger than the limit of {max} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response { status, headers, body })
    }
}

impl Host for HostState {
    async fn send(&mut self, request: Request) -> wasmtime::Result<Result<Response, HostError>> {
        Ok(self.send_http(request).await)
    }
}

//! `updraft:operator/http`: outgoing HTTP and HTTPS, only to hosts allow-listed for the plugin.
//! Redirects are not followed (a redirect could leave the allow-list); bodies are capped.

use std::path::Path;
use std::time::Duration;

use crate::bindings::updraft::operator::http::{Host, Request, Response};
use crate::bindings::{ErrorCode, HostError};
use crate::error::Error;

use super::{HostState, host_error};

/// The process-wide HTTP client: HTTPS through rustls (ring) with the platform's verifier and
/// root certificates, plus the CA certificates of `[http] extra_ca_file` when configured.
pub(crate) struct HttpClient(reqwest::Client);

impl HttpClient {
    /// A client trusting the platform's roots and, if given, the CAs in `extra_ca_file`.
    pub fn new(extra_ca_file: Option<&Path>) -> Result<Self, Error> {
        // reqwest is built without a bundled provider: make ring the process default (a
        // second call finds it installed and changes nothing).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(300))
            .connect_timeout(Duration::from_secs(30));
        if let Some(path) = extra_ca_file {
            builder = builder.tls_certs_merge(extra_cas(path)?);
        }
        builder.build().map(HttpClient).map_err(|e| Error::Config(format!("cannot create the HTTP client: {e}")))
    }
}

/// The certificates of a PEM bundle, or an error naming the file and the setting.
fn extra_cas(path: &Path) -> Result<Vec<reqwest::Certificate>, Error> {
    let setting = "[http] extra_ca_file (UPDRAFT__HTTP__EXTRA_CA_FILE)";
    let pem = std::fs::read(path)
        .map_err(|e| Error::Config(format!("cannot read the CA file {} of {setting}: {e}", path.display())))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| Error::Config(format!("the CA file {} of {setting} is not a PEM bundle: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "the CA file {} of {setting} holds no certificate (-----BEGIN CERTIFICATE----- blocks)",
            path.display()
        )));
    }
    Ok(certs)
}

/// Says why a request failed, with its causes (a certificate problem sits deep in the chain)
/// and, for an untrusted certificate, the setting that fixes it.
fn explain(host: &str, error: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        let text = e.to_string();
        if !causes.iter().any(|c: &String| c.contains(&text)) {
            causes.push(text);
        }
        source = e.source();
    }
    let chain = causes.join(": ");
    let hint = if chain.contains("UnknownIssuer") || chain.contains("UnknownCA") {
        format!(
            "; the certificate of {host} is not signed by a CA this server trusts: add that CA to [http] extra_ca_file (UPDRAFT__HTTP__EXTRA_CA_FILE)"
        )
    } else if chain.contains("NotValidForName") {
        format!("; the certificate is not valid for the name {host}: call the host by a name the certificate lists")
    } else if chain.contains("Expired") {
        format!("; the certificate of {host} has expired")
    } else {
        String::new()
    };
    format!("HTTP request to {host} failed: {chain}{hint}")
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
        let failed = |e: reqwest::Error| host_error(ErrorCode::Failed, explain(&host, &e));
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

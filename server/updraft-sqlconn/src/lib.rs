//! Opening SQL connections the way every Updraft process does, for the metadata database and
//! for the `sql`/`sql_sensor` operators' connections alike.
//!
//! A connection URL is checked before anything is sent: the `sslmode` is one PostgreSQL knows,
//! and the files `sslrootcert`, `sslcert` and `sslkey` name exist and hold PEM. Then one probe
//! connection is made on its own, because a connection pool retries a refused connection
//! until its acquire timeout and then reports only "pool timed out", hiding the cause. Every
//! failure becomes one [`ConnectError`] naming what was tried (host and port, or the SQLite
//! file; never a password) and saying what to set, printed once.
//!
//! TLS is rustls on ring (sqlx's `tls-rustls-ring-native-roots`): `sslmode` `disable`,
//! `prefer` (the default), `require` (encrypted, certificate not checked), `verify-ca` and
//! `verify-full` (checked against `sslrootcert` and the platform's roots; `verify-full` also
//! checks the host name); a client certificate with `sslcert` + `sslkey`.

mod url;

use std::path::Path;
use std::time::Duration;

use sqlx::Connection;

pub use url::{ConnUrl, redact};

/// A connection that could not be opened: what was tried and why, with what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot connect to {target}: {reason}")]
pub struct ConnectError {
    /// The host and port (and database), or the SQLite file; never a password.
    pub target: String,
    /// What failed and what to change.
    pub reason: String,
}

/// The PostgreSQL TLS modes, in the order of how much they check.
const SSL_MODES: &[&str] = &["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

/// The help appended when a server certificate is not trusted.
const CA_HELP: &str = "set the CA that signed it with `sslrootcert=/path/to/ca.pem` in the connection URL \
     (for Amazon RDS, the bundle https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem, \
     mounted from a ConfigMap)";

/// Checks a URL's options before connecting: a known `sslmode`, readable PEM files for
/// `sslrootcert`, `sslcert` and `sslkey` (the URL's, else `PGSSLROOTCERT` and the like, as
/// libpq reads them), and a client certificate given with its key.
pub fn check(url: &str) -> Result<(), ConnectError> {
    let parsed = ConnUrl::parse(url);
    let fail = |reason: String| ConnectError { target: parsed.target(), reason };
    if !parsed.is_postgres() {
        return Ok(());
    }
    if let Some(mode) = parsed.param_or_env("sslmode", "PGSSLMODE")
        && !SSL_MODES.contains(&mode.to_ascii_lowercase().as_str())
    {
        return Err(fail(format!("unknown sslmode `{mode}`: use one of {}", SSL_MODES.join(", "))));
    }
    for (param, env, what) in [
        ("sslrootcert", "PGSSLROOTCERT", "CERTIFICATE"),
        ("sslcert", "PGSSLCERT", "CERTIFICATE"),
        ("sslkey", "PGSSLKEY", "PRIVATE KEY"),
    ] {
        if let Some(path) = parsed.param_or_env(param, env) {
            check_pem(Path::new(&path), what).map_err(|e| fail(format!("{param}={path}: {e}")))?;
        }
    }
    let cert = parsed.param_or_env("sslcert", "PGSSLCERT");
    let key = parsed.param_or_env("sslkey", "PGSSLKEY");
    if cert.is_some() != key.is_some() {
        return Err(fail(
            "a client certificate needs both `sslcert` (the certificate) and `sslkey` (its private key)".into(),
        ));
    }
    Ok(())
}

/// A PEM file holding at least one block whose label contains `what`.
fn check_pem(path: &Path, what: &str) -> Result<(), String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let text = String::from_utf8_lossy(&text);
    let found = text.lines().any(|l| l.starts_with("-----BEGIN ") && l.contains(what));
    if !found {
        return Err(format!("the file holds no PEM `{what}` block (-----BEGIN … {what}-----)"));
    }
    Ok(())
}

/// Checks `url` and opens one connection to it, within `timeout`, then closes it: the real
/// cause of a failure, explained, rather than a pool's timeout.
pub async fn probe(url: &str, timeout: Duration) -> Result<(), ConnectError> {
    check(url)?;
    let parsed = ConnUrl::parse(url);
    let attempt = async {
        if parsed.is_postgres() {
            let connection = sqlx::PgConnection::connect(url).await?;
            connection.close().await
        } else if parsed.is_sqlite() {
            let connection = sqlx::SqliteConnection::connect(url).await?;
            connection.close().await
        } else {
            Ok(())
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(explain(url, &error)),
        Err(_) => Err(ConnectError {
            target: parsed.target(),
            reason: format!(
                "no answer within {} s: check the host and port, and that a firewall or security group lets this machine reach it",
                timeout.as_secs()
            ),
        }),
    }
}

/// Explains why connecting to `url` failed with `error`.
pub fn explain(url: &str, error: &sqlx::Error) -> ConnectError {
    let parsed = ConnUrl::parse(url);
    let target = parsed.target();
    let mode = parsed.param_or_env("sslmode", "PGSSLMODE").unwrap_or_else(|| "prefer".into());
    let root = parsed.param_or_env("sslrootcert", "PGSSLROOTCERT");
    // A failed handshake reaches us as a TLS error or, once the stream is wrapped, as an I/O
    // error carrying rustls' own: recognise it by what it says.
    let text = error.to_string();
    let tls_failure = [
        "invalid peer certificate",
        "UnknownIssuer",
        "NotValidForName",
        "not valid for name",
        "CertificateRequired",
        "certificate required",
    ]
    .iter()
    .any(|m| text.contains(m));
    let reason = match error {
        sqlx::Error::Tls(e) => explain_tls(&e.to_string(), &parsed, &mode, root.as_deref()),
        _ if tls_failure => explain_tls(&text, &parsed, &mode, root.as_deref()),
        sqlx::Error::Io(e) => match e.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                "connection refused: nothing listens there; check the host and port, and that the server is running"
                    .to_owned()
            }
            std::io::ErrorKind::TimedOut => {
                "the connection timed out: check the host and port, and that a firewall or security group lets this machine reach it".to_owned()
            }
            std::io::ErrorKind::NotFound if parsed.is_sqlite() => {
                "the database file does not exist (or its folder does not): check the path".to_owned()
            }
            _ => format!("{e}"),
        },
        sqlx::Error::Database(e) => {
            let message = e.message();
            match e.code().as_deref() {
                Some("28000") if message.contains("no encryption") => format!(
                    "the server refuses connections without TLS ({message}): add `sslmode=verify-full` (with `sslrootcert`) or `sslmode=require` to the URL"
                ),
                Some("28000") if message.contains("certificate") => format!(
                    "the server did not accept the client certificate ({message}): check `sslcert`/`sslkey` and that its common name is the user name"
                ),
                Some("28P01") => format!("{message}: check the user name and password"),
                Some("3D000") => format!("{message}: create the database or fix its name in the URL"),
                _ => message.to_owned(),
            }
        }
        sqlx::Error::Configuration(e) => format!("invalid connection options: {e}"),
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".to_owned(),
        other if parsed.is_sqlite() && other.to_string().contains("unable to open database file") => {
            "unable to open the database file: check that the path and its folder exist and can be written".to_owned()
        }
        other => other.to_string(),
    };
    ConnectError { target, reason }
}

/// The TLS part of [`explain`]: which certificate failed, and which option fixes it.
fn explain_tls(error: &str, url: &ConnUrl, mode: &str, root: Option<&str>) -> String {
    let host = url.host();
    let trusted = match root {
        Some(file) => format!("the CA certificates in sslrootcert={file} or the platform's roots"),
        None => "the platform's root certificates (no sslrootcert is set)".to_owned(),
    };
    if error.contains("server does not support TLS") {
        return format!(
            "the server does not offer TLS, and sslmode={mode} requires it: enable `ssl = on` on the server, or use sslmode=prefer"
        );
    }
    if error.contains("UnknownIssuer") || error.contains("UnknownCA") {
        return format!(
            "TLS: the server certificate of `{host}` is not signed by {trusted} (sslmode={mode}; {error}): {CA_HELP}"
        );
    }
    if error.contains("NotValidForName") || error.contains("not valid for name") {
        return format!(
            "TLS: the server certificate is not valid for the host name `{host}` (sslmode=verify-full checks it; {error}): connect with a name the certificate lists, or use sslmode=verify-ca"
        );
    }
    if error.contains("Expired") || error.contains("NotValidYet") {
        return format!("TLS: the server certificate of `{host}` is outside its validity period ({error})");
    }
    if error.contains("CertificateRequired") || error.contains("certificate required") {
        return format!(
            "TLS: the server requires a client certificate ({error}): set `sslcert` and `sslkey` in the URL"
        );
    }
    if error.contains("pem") || error.contains("PEM") || error.contains("Invalid certificate") {
        return format!(
            "TLS: a certificate or key file could not be read ({error}): check sslrootcert, sslcert and sslkey"
        );
    }
    format!("TLS handshake with `{host}` failed (sslmode={mode}): {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_before_connecting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").expect("write");
        let ok =
            format!("postgres://u:secret@db.example.com:5432/app?sslmode=verify-full&sslrootcert={}", ca.display());
        assert_eq!(check(&ok), Ok(()));

        let error = check("postgres://u:secret@db:5432/app?sslmode=verify").expect_err("bad mode");
        assert!(error.to_string().contains("unknown sslmode `verify`"), "{error}");
        assert!(!error.to_string().contains("secret"), "{error}");

        let error = check("postgres://db/app?sslmode=verify-full&sslrootcert=/nowhere/ca.pem").expect_err("no file");
        assert_eq!(error.target, "db:5432/app");
        assert!(error.reason.starts_with("sslrootcert=/nowhere/ca.pem: cannot read the file"), "{error}");

        let key = dir.path().join("not-a-cert.pem");
        std::fs::write(&key, "hello").expect("write");
        let error = check(&format!("postgres://db/app?sslrootcert={}", key.display())).expect_err("not PEM");
        assert!(error.reason.contains("holds no PEM `CERTIFICATE` block"), "{error}");

        let error = check(&format!("postgres://db/app?sslcert={}", ca.display())).expect_err("no key");
        assert!(error.reason.contains("needs both `sslcert`"), "{error}");
    }

    #[test]
    fn tls_failures_name_the_certificate_and_the_option_that_fixes_them() {
        let url = ConnUrl::parse("postgres://u@db.example.com/app?sslmode=verify-full&sslrootcert=/etc/ca.pem");
        let unknown = explain_tls("invalid peer certificate: UnknownIssuer", &url, "verify-full", Some("/etc/ca.pem"));
        assert!(unknown.starts_with("TLS: the server certificate of `db.example.com` is not signed by the CA certificates in sslrootcert=/etc/ca.pem"), "{unknown}");
        assert!(unknown.contains("set the CA that signed it with `sslrootcert="), "{unknown}");
        let name = explain_tls(
            r#"invalid peer certificate: certificate not valid for name "db.example.com"; certificate is only valid for DnsName("localhost")"#,
            &url,
            "verify-full",
            None,
        );
        assert!(
            name.starts_with("TLS: the server certificate is not valid for the host name `db.example.com`"),
            "{name}"
        );
        assert!(name.contains("or use sslmode=verify-ca"), "{name}");
        let plain = explain_tls("server does not support TLS", &url, "require", None);
        assert!(plain.contains("the server does not offer TLS, and sslmode=require requires it"), "{plain}");
    }

    #[tokio::test]
    async fn a_refused_connection_says_so_at_once_naming_host_and_port() {
        // Port 1 on loopback: nothing listens, the kernel refuses at once.
        let started = std::time::Instant::now();
        let error = probe("postgres://user:pw@127.0.0.1:1/app", Duration::from_secs(20)).await.expect_err("refused");
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
        assert_eq!(error.target, "127.0.0.1:1/app");
        assert!(error.reason.starts_with("connection refused"), "{error}");
        assert!(!error.to_string().contains("pw"), "{error}");
    }

    #[tokio::test]
    async fn a_missing_sqlite_folder_names_the_path() {
        let error = probe("sqlite:/nowhere/at/all/w.db", Duration::from_secs(5)).await.expect_err("no folder");
        assert_eq!(error.target, "/nowhere/at/all/w.db");
        assert!(error.reason.contains("database file"), "{error}");
    }
}

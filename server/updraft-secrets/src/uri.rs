//! How a connection is written, as Airflow writes it: a URI
//! (`postgres://LOGIN:PASSWORD@HOST:PORT/SCHEMA?sslmode=verify-full`, the query becoming the
//! connection's `extra`) or a JSON object (`{"conn_type": …, "host": …, "extra": {…}}`); and the
//! URL the SQL capability connects with, built back from the fields.

use std::path::Path;

use serde_json::{Map, Value};
use updraft_db::secrets::Connection;

/// The `extra` keys a PostgreSQL connection passes to the driver as URL parameters (libpq's
/// names, which sqlx reads): TLS and what the server sees of the client.
const POSTGRES_PARAMS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey", "application_name", "options"];

/// Reads a connection from a URI or a JSON object; `conn_id` names it. The error says what is
/// wrong without repeating the text (it may hold a password).
pub fn parse(conn_id: &str, text: &str) -> Result<Connection, String> {
    let text = text.trim();
    let mut connection = if text.starts_with('{') { from_json(text)? } else { from_uri(text)? };
    connection.conn_id = conn_id.to_owned();
    Ok(connection)
}

/// `TYPE://[LOGIN[:PASSWORD]@]HOST[:PORT][/SCHEMA][?KEY=VALUE&…]`, percent-escapes decoded.
fn from_uri(uri: &str) -> Result<Connection, String> {
    let (conn_type, rest) = uri
        .split_once("://")
        .ok_or("not a URI: write TYPE://[LOGIN[:PASSWORD]@]HOST[:PORT][/SCHEMA], or a JSON object")?;
    if conn_type.is_empty() {
        return Err("the connection URI needs a type, e.g. postgres://…".into());
    }
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, schema) = match rest.split_once('/') {
        Some((a, s)) if !s.is_empty() => (a, Some(decode(s)?)),
        Some((a, _)) => (a, None),
        None => (rest, None),
    };
    let (credentials, hostport) = match authority.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, authority),
    };
    let (login, password) = match credentials.map(|c| c.split_once(':').map_or((c, None), |(l, p)| (l, Some(p)))) {
        Some((login, password)) => (Some(decode(login)?), password.map(decode).transpose()?),
        None => (None, None),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() => {
            (h, Some(p.parse::<i32>().map_err(|_| format!("port `{p}` is not a number"))?))
        }
        _ => (hostport, None),
    };
    let mut extra = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        extra.insert(decode(key)?, Value::String(decode(value)?));
    }
    Ok(Connection {
        conn_type: conn_type.to_owned(),
        host: (!host.is_empty()).then(|| decode(host)).transpose()?,
        port,
        schema,
        login,
        password,
        extra: (!extra.is_empty()).then(|| Value::Object(extra).to_string()),
        ..Connection::default()
    })
}

/// Airflow's JSON form: `conn_type` required; `host`, `login`, `password`, `schema`, `port`,
/// `description` optional; `extra` an object or a string of JSON.
fn from_json(text: &str) -> Result<Connection, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e})"))?;
    let object = value.as_object().ok_or("the JSON form must be an object")?;
    let known = ["conn_type", "host", "login", "password", "schema", "port", "extra", "description"];
    if let Some(key) = object.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("unknown key `{key}` in the JSON form: the keys are {}", known.join(", ")));
    }
    let string = |key: &str| -> Result<Option<String>, String> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("`{key}` must be a string")),
        }
    };
    let conn_type = string("conn_type")?.ok_or("the JSON form needs `conn_type` (postgres, sqlite, http, …)")?;
    let port = match object.get("port") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_i64().and_then(|p| i32::try_from(p).ok()).ok_or("`port` is not a port")?),
        Some(Value::String(s)) => Some(s.parse::<i32>().map_err(|_| format!("port `{s}` is not a number"))?),
        Some(_) => return Err("`port` must be a number".into()),
    };
    let extra = match object.get("extra") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(Value::Object(o.clone()).to_string()),
        Some(Value::String(s)) => {
            serde_json::from_str::<Map<String, Value>>(s).map_err(|_| "`extra` must be a JSON object")?;
            Some(s.clone())
        }
        Some(_) => return Err("`extra` must be an object".into()),
    };
    Ok(Connection {
        conn_type,
        host: string("host")?,
        port,
        schema: string("schema")?,
        login: string("login")?,
        password: string("password")?,
        extra,
        description: string("description")?,
        ..Connection::default()
    })
}

fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).unwrap_or("");
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad percent escape `%{hex}`"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the URI is not UTF-8 once decoded".to_owned())
}

/// Percent-encodes what would break a URI part.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Makes a SQLite connection's file absolute, from `base` (the folder the command runs in), so
/// that every process finds the same file whatever its working folder.
pub fn absolutize_sqlite(connection: &mut Connection, base: &Path) {
    if connection.conn_type != "sqlite" {
        return;
    }
    let field = if connection.schema.is_some() { &mut connection.schema } else { &mut connection.host };
    if let Some(path) = field.as_mut()
        && !Path::new(path.as_str()).is_absolute()
    {
        *path = base.join(path.as_str()).display().to_string();
    }
}

/// The URL the SQL capability connects with: `postgres://…` with the TLS options of `extra`
/// as parameters, or `sqlite:PATH`.
pub fn sql_url(c: &Connection) -> Result<String, String> {
    match c.conn_type.as_str() {
        "postgres" | "postgresql" => {
            let auth = match (&c.login, &c.password) {
                (Some(l), Some(p)) => format!("{}:{}@", escape(l), escape(p)),
                (Some(l), None) => format!("{}@", escape(l)),
                _ => String::new(),
            };
            let port = c.port.map(|p| format!(":{p}")).unwrap_or_default();
            let db = c.schema.as_deref().map(|s| format!("/{}", escape(s))).unwrap_or_default();
            let mut params = Vec::new();
            if let Some(extra) = &c.extra {
                let extra: Map<String, Value> = serde_json::from_str(extra)
                    .map_err(|_| format!("connection `{}`: its extra is not a JSON object", c.conn_id))?;
                for key in POSTGRES_PARAMS {
                    match extra.get(*key) {
                        Some(Value::String(v)) => params.push(format!("{key}={}", escape(v))),
                        Some(Value::Null) | None => {}
                        Some(other) => params.push(format!("{key}={}", escape(&other.to_string()))),
                    }
                }
            }
            let query = if params.is_empty() { String::new() } else { format!("?{}", params.join("&")) };
            Ok(format!("postgres://{auth}{}{port}{db}{query}", c.host.as_deref().unwrap_or("localhost")))
        }
        "sqlite" => {
            let path = c
                .schema
                .as_deref()
                .or(c.host.as_deref())
                .ok_or("a sqlite connection needs a path: sqlite:////absolute/file.db")?;
            Ok(format!("sqlite:{path}"))
        }
        other => {
            Err(format!("connection type `{other}` is not supported by the SQL operators: use postgres or sqlite"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_with_tls_options_round_trip_to_the_driver_url() {
        let c = parse(
            "w",
            "postgres://etl:p%40ss@db.internal:5432/analytics?sslmode=verify-full&sslrootcert=%2Fetc%2Fupdraft%2Frds%2Fglobal-bundle.pem",
        )
        .expect("parses");
        assert_eq!(
            (c.login.as_deref(), c.password.as_deref(), c.host.as_deref(), c.port, c.schema.as_deref()),
            (Some("etl"), Some("p@ss"), Some("db.internal"), Some(5432), Some("analytics"))
        );
        assert_eq!(
            sql_url(&c).expect("url"),
            "postgres://etl:p%40ss@db.internal:5432/analytics?sslmode=verify-full&sslrootcert=%2Fetc%2Fupdraft%2Frds%2Fglobal-bundle.pem"
        );
    }

    #[test]
    fn the_json_form() {
        let c = parse(
            "w",
            r#"{"conn_type": "postgres", "host": "db", "port": "5432", "login": "etl", "password": "s3cret", "schema": "dw", "extra": {"sslmode": "require"}}"#,
        )
        .expect("parses");
        assert_eq!(sql_url(&c).expect("url"), "postgres://etl:s3cret@db:5432/dw?sslmode=require");
        let error = parse("w", r#"{"host": "db", "password": "s3cret"}"#).expect_err("no type");
        assert!(error.contains("needs `conn_type`") && !error.contains("s3cret"), "{error}");
        let error = parse("w", r#"{"conn_type": "postgres", "hots": "db"}"#).expect_err("typo");
        assert!(error.contains("unknown key `hots`"), "{error}");
        assert!(parse("w", "{not json").expect_err("bad").starts_with("not valid JSON"));
    }

    #[test]
    fn sqlite_paths_become_absolute() {
        let mut relative = parse("s", "sqlite:///data/warehouse.db").expect("parses");
        absolutize_sqlite(&mut relative, Path::new("/home/ana/project"));
        assert_eq!(sql_url(&relative).expect("url"), "sqlite:/home/ana/project/data/warehouse.db");
        let mut absolute = parse("s", "sqlite:////var/data/warehouse.db").expect("parses");
        absolutize_sqlite(&mut absolute, Path::new("/elsewhere"));
        assert_eq!(sql_url(&absolute).expect("url"), "sqlite:/var/data/warehouse.db");
    }

    #[test]
    fn bad_uris_say_what_is_wrong() {
        assert!(parse("x", "just-text").expect_err("no scheme").contains("not a URI"));
        assert!(parse("x", "postgres://h:port/db").expect_err("bad port").contains("port `port` is not a number"));
        assert!(parse("x", "postgres://u:%zz@h/db").expect_err("escape").contains("bad percent escape"));
    }
}

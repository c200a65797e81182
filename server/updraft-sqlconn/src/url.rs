//! A lenient reading of connection URLs, for checks and messages only: sqlx parses them for
//! real. It never fails, so a malformed URL still gets a message naming what it holds, and it
//! never keeps a password where a message could show it.

/// The parts of a connection URL that checks and messages need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnUrl {
    scheme: String,
    host: String,
    port: Option<String>,
    database: String,
    /// For SQLite: the file, as sqlx reads it (everything after `sqlite://` or `sqlite:`).
    path: String,
    query: Vec<(String, String)>,
}

impl ConnUrl {
    /// Reads `url`; whatever it cannot make sense of stays empty.
    pub fn parse(url: &str) -> ConnUrl {
        let (scheme, rest) = url.split_once(':').unwrap_or(("", url));
        let (body, query) = rest.split_once('?').unwrap_or((rest, ""));
        let query = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(k), decode(v))
            })
            .collect();
        let mut parsed = ConnUrl { scheme: scheme.to_ascii_lowercase(), query, ..ConnUrl::default() };
        if parsed.is_sqlite() {
            parsed.path = body.strip_prefix("//").unwrap_or(body).to_owned();
            return parsed;
        }
        let authority_and_path = body.strip_prefix("//").unwrap_or(body);
        let (authority, database) = authority_and_path.split_once('/').unwrap_or((authority_and_path, ""));
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = match hostport.rsplit_once(':') {
            // An IPv6 literal keeps its colons inside brackets.
            Some((h, p)) if !p.contains(']') => (h, Some(p.to_owned())),
            _ => (hostport, None),
        };
        parsed.host = decode(host);
        parsed.port = port;
        parsed.database = decode(database);
        parsed
    }

    /// Whether the URL names a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        matches!(self.scheme.as_str(), "postgres" | "postgresql")
    }

    /// Whether the URL names a SQLite file.
    pub fn is_sqlite(&self) -> bool {
        self.scheme == "sqlite"
    }

    /// The host name (or `localhost` when the URL leaves it out).
    pub fn host(&self) -> String {
        let from_query = self.param("host");
        match (self.host.is_empty(), from_query) {
            (_, Some(h)) => h,
            (true, None) => "localhost".to_owned(),
            (false, None) => self.host.clone(),
        }
    }

    /// What a message names as the thing tried: `host:port/database`, or the SQLite file.
    pub fn target(&self) -> String {
        if self.is_sqlite() {
            return self.path.clone();
        }
        let port = self.param("port").or_else(|| self.port.clone()).unwrap_or_else(|| "5432".to_owned());
        let database = if self.database.is_empty() { String::new() } else { format!("/{}", self.database) };
        format!("{}:{port}{database}", self.host())
    }

    /// The value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    /// The query parameter, else the libpq environment variable that sets it, as sqlx reads
    /// them (`PGSSLMODE`, `PGSSLROOTCERT`, …).
    pub fn param_or_env(&self, name: &str, env: &str) -> Option<String> {
        self.param(name).or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
    }
}

/// Percent-decodes, keeping anything malformed as it is.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Hides the password of a URL for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls() {
        let u = ConnUrl::parse(
            "postgres://etl:p%40ss@db.internal:6432/analytics?sslmode=verify-full&sslrootcert=%2Fca.pem",
        );
        assert!(u.is_postgres());
        assert_eq!(u.target(), "db.internal:6432/analytics");
        assert_eq!(u.param("sslrootcert").as_deref(), Some("/ca.pem"));
        let u = ConnUrl::parse("postgresql://localhost/app");
        assert_eq!(u.target(), "localhost:5432/app");
        assert_eq!(ConnUrl::parse("postgres:///app?host=/run/pg").host(), "/run/pg");
    }

    #[test]
    fn sqlite_urls() {
        assert_eq!(ConnUrl::parse("sqlite:///data/updraft.db?mode=rwc").target(), "/data/updraft.db");
        assert_eq!(ConnUrl::parse("sqlite:/abs/w.db").target(), "/abs/w.db");
        assert_eq!(ConnUrl::parse("sqlite://rel/w.db").target(), "rel/w.db");
    }

    #[test]
    fn redaction() {
        assert_eq!(redact("postgres://u:secret@h:5432/d"), "postgres://u:***@h:5432/d");
        assert_eq!(redact("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(redact("sqlite:///x.db"), "sqlite:///x.db");
    }
}

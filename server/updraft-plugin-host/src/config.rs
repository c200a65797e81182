//! Configuration of the plugin host: limits for every task try, and the capabilities granted
//! to each plugin (the `[plugins.NAME]` sections of the server's TOML file).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits applied to every task try. Defaults suit SQL-driving operators; raise them per
/// deployment, not per plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Linear memory one instance may grow to, in bytes.
    pub memory_bytes: u64,
    /// Deadline of a try whose task sets no `execution_timeout`.
    #[serde(with = "secs")]
    pub default_timeout: Duration,
    /// CPU time (WebAssembly execution, not waiting) a try may use, in milliseconds; 0 means
    /// no budget beyond the timeout. Measured in epoch ticks of 10 ms.
    pub max_cpu_ms: u64,
    /// Bytes of log (plugin log calls) kept per try; the rest is dropped with a notice.
    pub max_log_bytes: usize,
    /// Bytes of stdout/stderr kept per try.
    pub max_stderr_bytes: usize,
    /// Largest output (XCom `return_value`) or XCom value, in bytes of JSON.
    pub max_output_bytes: usize,
    /// Largest HTTP response body a plugin may receive.
    pub max_http_response_bytes: usize,
    /// Largest SQL result (as JSON) a plugin may receive.
    pub max_sql_result_bytes: usize,
    /// Instances that may be alive at once in this process (sizes the instance pool).
    pub max_instances: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 128 << 20,
            default_timeout: Duration::from_secs(3600),
            max_cpu_ms: 0,
            max_log_bytes: 1 << 20,
            max_stderr_bytes: 256 << 10,
            max_output_bytes: 1 << 20,
            max_http_response_bytes: 16 << 20,
            max_sql_result_bytes: 16 << 20,
            max_instances: 2000,
        }
    }
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Reads a whole number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

/// What one plugin may use, and its own limits (the `[plugins.NAME]` tables of the server's
/// configuration). Nothing is granted unless listed ("*" grants all of a kind); a limit left
/// out is the deployment's ([`Limits`]).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Grants {
    /// Connections the plugin may run SQL on.
    pub connections: Vec<String>,
    /// Hosts (`name` or `name:port`) the plugin may send HTTP requests to.
    pub allow_http_hosts: Vec<String>,
    /// Variables the plugin may read.
    pub variables: Vec<String>,
    /// Kubernetes namespaces the plugin may run pods in (`""` or the server's namespace
    /// name for the configured one).
    pub kubernetes_namespaces: Vec<String>,
    /// Linear memory one instance of this plugin may grow to, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// CPU time a try of this plugin may use, in milliseconds (0: no budget beyond the timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cpu_ms: Option<u64>,
    /// Deadline, in seconds, of a try of this plugin whose task sets no `execution_timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

/// The keys a `[plugins.NAME]` table may hold, for messages and for the environment form.
pub const GRANT_KEYS: &[&str] = &[
    "connections",
    "allow_http_hosts",
    "variables",
    "kubernetes_namespaces",
    "memory_bytes",
    "max_cpu_ms",
    "timeout_seconds",
];

impl Grants {
    /// Everything: for trusted in-house plugins.
    pub fn all() -> Self {
        let star = vec!["*".to_owned()];
        Self {
            connections: star.clone(),
            allow_http_hosts: star.clone(),
            variables: star.clone(),
            kubernetes_namespaces: star,
            ..Self::default()
        }
    }

    pub(crate) fn allows_connection(&self, name: &str) -> bool {
        self.connections.iter().any(|c| c == "*" || c == name)
    }

    pub(crate) fn allows_variable(&self, key: &str) -> bool {
        self.variables.iter().any(|c| c == "*" || c == key)
    }

    pub(crate) fn allows_namespace(&self, namespace: &str) -> bool {
        self.kubernetes_namespaces.iter().any(|c| c == "*" || c == namespace)
    }

    /// `host` is the URL's host name, `port` its effective port.
    pub(crate) fn allows_http_host(&self, host: &str, port: u16) -> bool {
        let with_port = format!("{host}:{port}");
        self.allow_http_hosts
            .iter()
            .any(|h| h == "*" || h.eq_ignore_ascii_case(host) || h.eq_ignore_ascii_case(&with_port))
    }
}

/// Configuration of the plugin host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    /// Folder of third-party `.wasm` plugins, scanned at start and watched.
    pub plugins_dir: Option<PathBuf>,
    /// Folder of compiled components; `None` compiles every plugin at every start.
    pub cache_dir: Option<PathBuf>,
    pub limits: Limits,
    /// Grants per plugin name (`[plugins.NAME]`).
    pub plugins: BTreeMap<String, Grants>,
    /// A PEM file of CA certificates the `http` capability trusts besides the platform's root
    /// certificates (`[http] extra_ca_file`), for services signed by a private CA.
    pub http_extra_ca_file: Option<PathBuf>,
}

impl HostConfig {
    /// The most memory any plugin may have: the instance pool's slot size.
    pub fn max_memory_bytes(&self) -> u64 {
        self.plugins.values().filter_map(|g| g.memory_bytes).fold(self.limits.memory_bytes, u64::max)
    }

    /// The limits a try of a plugin with `grants` runs under: the deployment's, with the
    /// plugin's own where it has them.
    pub fn limits_for(&self, grants: &Grants) -> Limits {
        let mut limits = self.limits.clone();
        if let Some(bytes) = grants.memory_bytes {
            limits.memory_bytes = bytes;
        }
        if let Some(ms) = grants.max_cpu_ms {
            limits.max_cpu_ms = ms;
        }
        if let Some(seconds) = grants.timeout_seconds {
            limits.default_timeout = Duration::from_secs(seconds);
        }
        limits
    }

    /// The grants of plugin `name`. The built-in `sql` and `sql_sensor` may use every
    /// connection unless configured otherwise, as Airflow's SQL operators may: the DAG names
    /// the connection, and the built-ins are part of the server. The built-in
    /// `kubernetes_pod` may use every namespace: the ServiceAccount's RBAC bounds it.
    pub fn grants_for(&self, name: &str, builtin: bool) -> Grants {
        if let Some(g) = self.plugins.get(name) {
            return g.clone();
        }
        if builtin && matches!(name, "sql" | "sql_sensor") {
            return Grants { connections: vec!["*".to_owned()], ..Grants::default() };
        }
        if builtin && name == "kubernetes_pod" {
            return Grants { kubernetes_namespaces: vec!["*".to_owned()], ..Grants::default() };
        }
        Grants::default()
    }
}

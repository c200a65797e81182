//! One container: what its image means here (Updraft's worker, a shell image, a scripted
//! image, or one that cannot be pulled), its environment as the kubelet builds it, and running
//! it as a local child process (or a script) until it exits or the pod is stopped.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;

use super::logs::LogBuffer;
use super::{Control, Kubelet, Script};
use crate::Shared;

/// What an image stands for on the fake node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Image {
    /// Updraft's own image: runs `FakeKubeConfig::worker_binary`.
    Worker(PathBuf),
    /// A general-purpose image (busybox, alpine, debian, ubuntu, bash): runs its command locally.
    Shell,
    /// `fake/scripted`: behaves as the pod's `fake.updraft.dev/…` annotations say.
    Scripted,
    /// An image no registry has (pull fails), with the puller's message.
    Missing(String),
    /// An unparsable reference.
    Invalid,
}

const SHELL_IMAGES: &[&str] = &["busybox", "alpine", "debian", "ubuntu", "bash"];

pub(crate) fn classify(image: &str, worker: Option<&Path>) -> Image {
    let reference = image.split('@').next().unwrap_or("");
    let repository = match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => reference,
    };
    let bad = image.is_empty()
        || image.trim() != image
        || image.contains("::")
        || image.chars().any(char::is_whitespace)
        || repository.chars().any(|c| c.is_ascii_uppercase())
        || repository.is_empty();
    if bad {
        return Image::Invalid;
    }
    let mut segments: Vec<&str> = repository.split('/').collect();
    if segments.len() > 1 && (segments[0].contains('.') || segments[0].contains(':') || segments[0] == "localhost") {
        segments.remove(0);
    }
    let first = segments.first().copied().unwrap_or("");
    let last = segments.last().copied().unwrap_or("");
    if first.starts_with("updraft") || last.starts_with("updraft") {
        return match worker {
            Some(path) => Image::Worker(path.to_owned()),
            None => Image::Missing(format!(
                "Failed to pull image \"{image}\": image not present on the fake node (FakeKubeConfig::worker_binary is not set)"
            )),
        };
    }
    if segments.as_slice() == ["fake", "scripted"] {
        return Image::Scripted;
    }
    if SHELL_IMAGES.contains(&last) {
        return Image::Shell;
    }
    let full = if segments.len() == 1 { format!("docker.io/library/{image}") } else { format!("docker.io/{image}") };
    Image::Missing(format!(
        "Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{full}\": failed to resolve reference \"{full}\": {full}: not found"
    ))
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
}

/// Expands `$(VAR)` references as the kubelet does (`$$` escapes a `$`; unknown references stay).
pub(crate) fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some(value) = env.get(&inner[..end])
        {
            out.push_str(value);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

pub(crate) fn field_ref(pod: &Value, path: &str) -> Option<String> {
    let meta = |f: &str| pod.pointer(&format!("/metadata/{f}")).and_then(Value::as_str).map(str::to_owned);
    let quoted = |prefix: &str| path.strip_prefix(prefix)?.strip_suffix("']").map(str::to_owned);
    if let Some(key) = quoted("metadata.labels['") {
        return pod.pointer("/metadata/labels").and_then(|l| l.get(&key)).and_then(Value::as_str).map(str::to_owned);
    }
    if let Some(key) = quoted("metadata.annotations['") {
        return pod
            .pointer("/metadata/annotations")
            .and_then(|l| l.get(&key))
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    match path {
        "metadata.name" => meta("name"),
        "metadata.namespace" => meta("namespace"),
        "metadata.uid" => meta("uid"),
        "spec.nodeName" => Some(super::NODE_NAME.to_owned()),
        "spec.serviceAccountName" => pod.pointer("/spec/serviceAccountName").and_then(Value::as_str).map(str::to_owned),
        "status.podIP" | "status.hostIP" => Some("127.0.0.1".to_owned()),
        _ => None,
    }
}

/// The container's environment, or the message of a `CreateContainerConfigError`.
pub(crate) fn environment(shared: &Shared, pod: &Value, container: &Value) -> Result<BTreeMap<String, String>, String> {
    let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("").to_owned();
    let source = |secret: bool, name: &str| {
        let data = if secret { shared.secret(&namespace, name) } else { shared.config_map(&namespace, name) };
        data.ok_or_else(|| {
            if secret { format!("secret \"{name}\" not found") } else { format!("configmap \"{name}\" not found") }
        })
    };
    let mut env = BTreeMap::new();
    for from in container.get("envFrom").and_then(Value::as_array).into_iter().flatten() {
        let prefix = from.get("prefix").and_then(Value::as_str).unwrap_or("");
        for (key, secret) in [("secretRef", true), ("configMapRef", false)] {
            let Some(reference) = from.get(key) else { continue };
            let name = reference.get("name").and_then(Value::as_str).unwrap_or("");
            let optional = reference.get("optional").and_then(Value::as_bool).unwrap_or(false);
            match source(secret, name) {
                Ok(data) => env.extend(
                    data.iter().map(|(k, v)| (format!("{prefix}{k}"), String::from_utf8_lossy(v).into_owned())),
                ),
                Err(_) if optional => {}
                Err(message) => return Err(message),
            }
        }
    }
    for var in container.get("env").and_then(Value::as_array).into_iter().flatten() {
        let name = var.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
        let value = if let Some(value) = var.get("value").and_then(Value::as_str) {
            expand(value, &env)
        } else if let Some(from) = var.get("valueFrom") {
            let mut resolved = None;
            for (key, secret, kind) in [("secretKeyRef", true, "Secret"), ("configMapKeyRef", false, "ConfigMap")] {
                let Some(reference) = from.get(key) else { continue };
                let source_name = reference.get("name").and_then(Value::as_str).unwrap_or("");
                let wanted = reference.get("key").and_then(Value::as_str).unwrap_or("");
                let optional = reference.get("optional").and_then(Value::as_bool).unwrap_or(false);
                let value =
                    |data: BTreeMap<String, Vec<u8>>| data.get(wanted).map(|v| String::from_utf8_lossy(v).into_owned());
                match source(secret, source_name).map(value) {
                    Ok(Some(value)) => resolved = Some(value),
                    Ok(None) | Err(_) if optional => {}
                    Ok(None) => return Err(format!("couldn't find key {wanted} in {kind} {namespace}/{source_name}")),
                    Err(message) => return Err(message),
                }
            }
            if let Some(path) = from.pointer("/fieldRef/fieldPath").and_then(Value::as_str) {
                resolved = Some(field_ref(pod, path).ok_or_else(|| format!("unsupported fieldPath: {path}"))?);
            }
            if from.get("resourceFieldRef").is_some() {
                resolved = Some("0".to_owned());
            }
            match resolved {
                Some(value) => value,
                None => continue,
            }
        } else {
            String::new()
        };
        env.insert(name, value);
    }
    Ok(env)
}

/// How a container ended.
#[derive(Debug, Clone)]
pub(crate) struct Exit {
    pub(crate) code: i32,
    pub(crate) reason: &'static str,
    pub(crate) message: Option<String>,
}

impl Exit {
    fn from_code(code: i32) -> Exit {
        Exit { code, reason: if code == 0 { "Completed" } else { "Error" }, message: None }
    }
}

/// Waits until the pod is told to stop, and says how long the container may take to exit.
async fn stop_requested(control: &mut watch::Receiver<Control>) -> Duration {
    loop {
        let current = *control.borrow_and_update();
        match current {
            Control::Run => {}
            Control::Terminate(grace) => return grace,
            Control::Evict | Control::StopNow => return Duration::ZERO,
        }
        if control.changed().await.is_err() {
            return Duration::ZERO;
        }
    }
}

/// Runs a scripted container: prints the script's log, sleeps `run-ms`, then exits as told.
pub(crate) async fn run_scripted(script: &Script, log: &LogBuffer, mut control: watch::Receiver<Control>) -> Exit {
    for line in script.log.lines() {
        log.push(Bytes::from(format!("{line}\n")));
    }
    tokio::select! {
        _ = tokio::time::sleep(script.run) => {}
        // A script honours SIGTERM at once.
        _ = stop_requested(&mut control) => return Exit::from_code(143),
    }
    if script.oom_kill {
        return Exit { code: 137, reason: "OOMKilled", message: None };
    }
    Exit::from_code(script.exit_code)
}

/// A command line ready to start.
pub(crate) struct Launch {
    pub(crate) argv: Vec<String>,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) dir: PathBuf,
    /// The runtime's message when the container cannot start (a mount that cannot be made).
    pub(crate) failure: Option<String>,
    /// Where the container's sandbox reports a failed set-up, if it runs in one.
    pub(crate) report: Option<PathBuf>,
}

/// The argv of a container with Docker's semantics: `command` replaces the entrypoint, `args`
/// the default command. Updraft's image has the worker binary as its entrypoint.
pub(crate) fn argv(image: &Image, container: &Value, env: &BTreeMap<String, String>) -> Vec<String> {
    let command: Vec<String> = strings(container.get("command")).iter().map(|s| expand(s, env)).collect();
    let args: Vec<String> = strings(container.get("args")).iter().map(|s| expand(s, env)).collect();
    match image {
        Image::Worker(binary) => {
            let binary = binary.display().to_string();
            match command.split_first() {
                None => std::iter::once(binary).chain(args).collect(),
                Some((program, rest)) => {
                    let name = Path::new(program).file_name().and_then(|n| n.to_str()).unwrap_or("");
                    let program = if name.starts_with("updraft") { binary } else { program.clone() };
                    std::iter::once(program).chain(rest.iter().cloned()).chain(args).collect()
                }
            }
        }
        _ if command.is_empty() && args.is_empty() => vec!["sh".to_owned()],
        _ => command.into_iter().chain(args).collect(),
    }
}

async fn pump(reader: impl AsyncRead + Unpin, log: Arc<LogBuffer>) {
    let mut reader = BufReader::new(reader);
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => log.push(Bytes::from(line)),
        }
    }
}

fn signal_group(pgid: i32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
        // The group may already be gone.
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// Runs a container's command as a child process in its own process group, capturing its
/// output, until it exits; a stop request sends SIGTERM, then SIGKILL after the grace period.
/// `Err` is a start failure (the runtime's `StartError` message).
pub(crate) async fn run_process(
    kubelet: &Kubelet,
    launch: Launch,
    log: Arc<LogBuffer>,
    mut control: watch::Receiver<Control>,
    started: impl FnOnce(i32),
) -> Result<Exit, String> {
    let Some((program, args)) = launch.argv.split_first() else { return Err("no command".to_owned()) };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(&launch.env)
        .current_dir(&launch.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::NotFound {
            format!("exec: {program:?}: executable file not found in $PATH")
        } else {
            format!("exec: {program:?}: {e}")
        };
        format!(
            "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: {why}: unknown"
        )
    })?;
    let pgid = child.id().and_then(|id| i32::try_from(id).ok()).unwrap_or(0);
    kubelet.track_group(pgid, true);
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(out, log.clone())));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(err, log.clone())));
    }
    started(pgid);
    let status = tokio::select! {
        status = child.wait() => status,
        grace = stop_requested(&mut control) => {
            signal_group(pgid, rustix::process::Signal::TERM);
            match tokio::time::timeout(grace, child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    signal_group(pgid, rustix::process::Signal::KILL);
                    child.wait().await
                }
            }
        }
    };
    // Descendants that outlive the main process die with the container, as in a PID namespace.
    signal_group(pgid, rustix::process::Signal::KILL);
    kubelet.track_group(pgid, false);
    for pump in pumps {
        let _ = tokio::time::timeout(Duration::from_secs(2), pump).await;
    }
    let code = match status {
        Ok(status) => status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(9)),
        Err(_) => 137,
    };
    Ok(Exit::from_code(code))
}

/// Environment every container gets from the kubelet, before its own `env`.
pub(crate) fn base_env(pod_name: &str, port: u16, home: &Path) -> BTreeMap<String, String> {
    let path = std::env::var("PATH")
        .unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned());
    HashMap::from([
        ("PATH", path),
        ("HOSTNAME", pod_name.to_owned()),
        ("HOME", home.display().to_string()),
        ("KUBERNETES_SERVICE_HOST", "127.0.0.1".to_owned()),
        ("KUBERNETES_SERVICE_PORT", port.to_string()),
        ("KUBERNETES_PORT", format!("tcp://127.0.0.1:{port}")),
    ])
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn images() {
        let worker = Path::new("/bin/updraft");
        assert_eq!(classify("updraft/worker:dev", Some(worker)), Image::Worker(worker.to_owned()));
        assert_eq!(classify("updraft:latest", Some(worker)), Image::Worker(worker.to_owned()));
        assert!(matches!(classify("updraft:latest", None), Image::Missing(_)));
        assert_eq!(classify("busybox", None), Image::Shell);
        assert_eq!(classify("docker.io/library/alpine:3.20", None), Image::Shell);
        assert_eq!(classify("fake/scripted", None), Image::Scripted);
        assert!(matches!(classify("does-not-exist/nope:1", None), Image::Missing(_)));
        assert_eq!(classify("invalid::name", None), Image::Invalid);
        assert_eq!(classify("Busybox", None), Image::Invalid);
    }

    #[test]
    fn argv_follows_docker_semantics() {
        let env = BTreeMap::from([("WHO".to_owned(), "world".to_owned())]);
        let worker = Image::Worker(PathBuf::from("/w/updraft"));
        let c = json!({"args": ["worker", "--try", "$(WHO)", "$$(WHO)"]});
        assert_eq!(argv(&worker, &c, &env), ["/w/updraft", "worker", "--try", "world", "$(WHO)"]);
        let c = json!({"command": ["updraft"], "args": ["run"]});
        assert_eq!(argv(&worker, &c, &env), ["/w/updraft", "run"]);
        let c = json!({"command": ["sh", "-c", "echo hi"]});
        assert_eq!(argv(&Image::Shell, &c, &env), ["sh", "-c", "echo hi"]);
        assert_eq!(argv(&Image::Shell, &json!({}), &env), ["sh"]);
    }
}

//! A cluster for the rendered manifests: the Kubernetes API test server with real volumes,
//! Updraft's image mapped to this build's binary, and what the test needs to act as the
//! Deployment controller (a pod from a Deployment's template) and as an operator looking at it
//! (pods, their logs, a failing container reported with its log; `kubectl` and shell commands
//! with an administrator's kubeconfig). Plus a small HTTP/1.1 client for the API server and the
//! test server's plain-HTTP listener.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use updraft_fake_kube::{FakeKube, FakeKubeConfig, Irsa};

/// The namespace of the deployment.
pub const NS: &str = "updraft";

/// One request to `127.0.0.1:port` over plain HTTP/1.1: the status and the body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAccept: application/json\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, rest) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    Ok((status, if chunked { dechunk(rest) } else { rest.to_owned() }))
}

/// The body of a chunked response.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// The test server, started for a rendering, and the processes it runs.
pub struct Cluster {
    pub fake: FakeKube,
    /// Port of the test server's plain-HTTP listener (the test talks to it as an administrator).
    api_port: u16,
    /// No wait goes past this: a run of the deployment is bounded as a whole.
    deadline: Instant,
    /// The administrator's kubeconfig and a home folder for kubectl (its discovery cache).
    home: tempfile::TempDir,
}

/// How long one run of the deployment may take, all waits together.
const RUN_LIMIT: Duration = Duration::from_secs(240);

impl Cluster {
    /// A test server with real volumes whose node runs Updraft's image (any `…/updraft:…`) as
    /// this build's `updraft`, loaded with the rendering's ConfigMaps, Secrets and RBAC only.
    pub fn start(rendered: &str) -> Cluster {
        Cluster::start_with(rendered, None)
    }

    /// Like [`Cluster::start`], on a cluster with EKS's pod identity webhook when `irsa` is set.
    pub fn start_with(rendered: &str, irsa: Option<Irsa>) -> Cluster {
        let fake = FakeKube::start(FakeKubeConfig {
            rbac_dir: None,
            worker_binary: Some(PathBuf::from(env!("CARGO_BIN_EXE_updraft"))),
            mount_volumes: true,
            irsa,
            ..FakeKubeConfig::default()
        })
        .expect("the Kubernetes API test server starts (as root, with unshare)");
        fake.load_manifests(rendered).expect("the rendering loads");
        let api_port = fake.http_url().rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
        let home = tempfile::tempdir().expect("a home for kubectl");
        fake.write_admin_kubeconfig(&home.path().join("kubeconfig"), NS).expect("the admin's kubeconfig");
        Cluster { fake, api_port, deadline: Instant::now() + RUN_LIMIT, home }
    }

    /// The administrator's kubeconfig (what `kubectl` uses in [`Cluster::sh`]).
    pub fn kubeconfig(&self) -> PathBuf {
        self.home.path().join("kubeconfig")
    }

    /// Runs `script` with `sh -e` in the workspace root, as a user at a terminal runs a guide's
    /// commands: `kubectl` (at /usr/bin/kubectl) talks to this cluster as the administrator.
    pub fn sh(&self, script: &str) -> Output {
        Command::new("/bin/sh")
            .args(["-ec", script])
            .current_dir(crate::common::workspace())
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.home.path())
            .output()
            .expect("sh runs")
    }

    /// `kubectl ARGS` as the administrator; its stdout, or a failure with its stderr.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("/usr/bin/kubectl")
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.home.path())
            .output()
            .expect("kubectl runs");
        let stdout = crate::common::text(&out.stdout);
        assert!(out.status.success(), "kubectl {}: {}\n{stdout}", args.join(" "), crate::common::text(&out.stderr));
        stdout
    }

    /// A request to the test server as the cluster administrator.
    fn kube(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
        http(self.api_port, method, path, Some(&self.fake.admin_token()), body).expect("the test server answers")
    }

    /// Creates a pod as Deployment `deployment`'s ReplicaSet would: the template's labels (with
    /// `pod-template-hash`, so the pod matches the Deployment's selector as its own pods do),
    /// annotations and spec, a generated name `DEPLOYMENT-HASH-XXXXX`. Returns its name.
    pub fn create_pod(&self, deployment: &str, template: &Value) -> String {
        // A stable hash of the template, as the ReplicaSet's name carries one.
        let hash = template
            .to_string()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        let hash = format!("{:x}", hash % 0xff_ffff_ffff);
        let mut labels = template.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
        labels["pod-template-hash"] = json!(hash);
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": format!("{deployment}-{hash}-"),
                "labels": labels,
                "annotations": template.pointer("/metadata/annotations").cloned().unwrap_or(json!({})),
            },
            "spec": template["spec"],
        });
        let (status, body) = self.kube("POST", &format!("/api/v1/namespaces/{NS}/pods"), Some(&pod));
        assert_eq!(status, 201, "creating a {deployment} pod: {body}");
        let created: Value = serde_json::from_str(&body).expect("a pod");
        created["metadata"]["name"].as_str().expect("a name").to_owned()
    }

    /// The log of one container, as `kubectl logs POD -c CONTAINER` shows it.
    pub fn log(&self, pod: &str, container: &str) -> String {
        let (_, body) =
            self.kube("GET", &format!("/api/v1/namespaces/{NS}/pods/{pod}/log?container={container}"), None);
        body
    }

    pub fn pod(&self, name: &str) -> Value {
        self.fake.pod(NS, name).unwrap_or_else(|| panic!("pod {name} is gone"))
    }

    /// Why some container of the namespace cannot run: it ended with a non-zero exit code or
    /// cannot start (configuration, image, volume); each with its log or events. `None` if all is
    /// well so far.
    pub fn failures(&self) -> Option<String> {
        let mut report = String::new();
        for pod in self.fake.pods(NS) {
            let name = pod["metadata"]["name"].as_str().unwrap_or("").to_owned();
            for list in ["initContainerStatuses", "containerStatuses"] {
                for status in pod["status"][list].as_array().into_iter().flatten() {
                    let container = status["name"].as_str().unwrap_or("");
                    let code = status.pointer("/state/terminated/exitCode").and_then(Value::as_i64);
                    let waiting = status.pointer("/state/waiting/reason").and_then(Value::as_str).unwrap_or("");
                    let stuck = matches!(
                        waiting,
                        "CreateContainerConfigError"
                            | "CreateContainerError"
                            | "ErrImagePull"
                            | "ImagePullBackOff"
                            | "InvalidImageName"
                    );
                    if code.is_some_and(|c| c != 0) || stuck {
                        report.push_str(&format!(
                            "\n--- pod {name}, container {container}: {}\n{}\n",
                            status["state"],
                            self.log(&name, container)
                        ));
                    }
                }
            }
            for event in self.fake.pod_events(NS, &name) {
                if event["reason"] == "FailedMount" {
                    report.push_str(&format!("\n--- pod {name}: {}\n", event["message"]));
                }
            }
        }
        (!report.is_empty()).then_some(report)
    }

    /// Polls `check` every 250 ms until it gives a value; fails the test at once, with the
    /// containers' logs, if a container fails, and after `timeout` with `what` and `context()`.
    pub fn wait_for<T>(&self, what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = (Instant::now() + timeout).min(self.deadline);
        loop {
            if let Some(report) = self.failures() {
                panic!("a container failed while waiting for {what}:{report}");
            }
            if let Some(value) = check() {
                return value;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {what} (at most {} s; {} s for the whole run){}",
                    timeout.as_secs(),
                    RUN_LIMIT.as_secs(),
                    self.describe()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Every pod's phase and containers' states and logs, for a failure message.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for pod in self.fake.pods(NS) {
            let name = pod["metadata"]["name"].as_str().unwrap_or("").to_owned();
            out.push_str(&format!("\n--- pod {name}: {}", pod["status"]["phase"]));
            for list in ["initContainerStatuses", "containerStatuses"] {
                for status in pod["status"][list].as_array().into_iter().flatten() {
                    let container = status["name"].as_str().unwrap_or("");
                    out.push_str(&format!("\n  {container}: {}\n{}", status["state"], self.log(&name, container)));
                }
            }
        }
        out
    }

    /// Whether every container of the pod runs (its init containers done).
    pub fn running(&self, name: &str) -> bool {
        let pod = self.pod(name);
        pod["status"]["phase"] == "Running"
            && pod["status"]["containerStatuses"]
                .as_array()
                .is_some_and(|s| s.iter().all(|c| c.pointer("/state/running").is_some()))
    }
}

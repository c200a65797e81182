//! The deployment run as written: an overlay rendered with `kubectl kustomize`, its ConfigMaps,
//! Secrets and RBAC loaded into the Kubernetes API test server, and real pods made from the
//! scheduler's and the API server's Deployment templates. The test server's kubelet runs them as
//! a cluster's would: init containers in order (`db migrate`, `db check --wait …`), then
//! `updraft scheduler` (the kubernetes executor, with its in-cluster ServiceAccount) and
//! `updraft api-server`, each with the ConfigMap's `updraft.toml`, the claims and emptyDirs
//! mounted where the manifests mount them, and the Secret's environment. A DAG put on the
//! `updraft-dags` claim is triggered through the API and run to success by the task pods the
//! scheduler makes from the pod template (`updraft tasks run …`); its log is read back through
//! the API. The first user is made with `kubectl exec deploy/updraft-api-server -- updraft users
//! create …`, as the guide says. [`Running`] lets a test go on with the deployment (the guide's
//! commands, `guide.rs`).
//!
//! [`substitutions`] is the one list of what the test changes in the rendering, each with why:
//! only what a test machine cannot have (the in-cluster database, fixed ports on a shared host
//! network). Everything else runs as rendered.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::{Cluster, NS, http};
use crate::common::{free_port, psql, text, workspace};

const DAG_ID: &str = "k8s_hello";

/// A triggered DAG small enough to be quick: two tasks, so the second's pod starts only after
/// the first's try was recorded, and a log with known lines.
const DAG: &str = "dag: k8s_hello\nschedule: null\ntasks:\n  - {id: first, operator: noop}\n  - {id: second, operator: sleep, params: {seconds: 1}, upstream: [first]}\n";

/// What a [`Substitution`] changes in a value.
#[derive(Clone, Copy)]
pub enum Find {
    /// This text in the value (it must be there).
    Text(&'static str),
    /// The whole value (the key must be there).
    Whole,
    /// A key the object does not have yet.
    NewKey,
    /// The end of the value: the text is appended.
    Append,
}

/// One change to a value of a ConfigMap or Secret of the rendering.
#[derive(Clone)]
pub struct Substitution {
    pub kind: &'static str,
    pub name: &'static str,
    pub key: String,
    pub find: Find,
    pub replace: String,
    /// Why a cluster has it and this test cannot (or which step of the guide it is).
    pub why: &'static str,
}

/// What this run uses instead of a cluster's.
pub struct Local {
    /// For `local`, the database URL; for `eks`, what replaces the RDS endpoint's
    /// `user:password@host:port/database` (the manifest's TLS options, `sslmode=verify-full` and
    /// `sslrootcert`, are kept).
    pub database: String,
    /// For `eks`: the CA that signed the test database server's certificate.
    pub database_ca: Option<String>,
    pub api_port: u16,
    pub metrics_port: u16,
    /// More changes to the rendering: the steps of the guide a run follows (`guide.rs`).
    pub extra: Vec<Substitution>,
    /// EKS's pod identity webhook on the test server (IAM roles for service accounts).
    pub irsa: Option<updraft_fake_kube::Irsa>,
}

/// The RDS endpoint and credentials in `overlays/eks/secret.yaml`.
const RDS_ENDPOINT: &str = "updraft:CHANGE-ME@updraft.abcdefghijkl.eu-west-1.rds.amazonaws.com:5432/updraft";

/// What the test substitutes in an overlay's rendering, and nothing else. Not substituted
/// either, but worth saying: the image (the test server's node runs any `…/updraft:…` image as
/// this build's binary), the Ingress, Service and PodDisruptionBudget (the test server serves
/// pods, Secrets, ConfigMaps and Deployments only), the PersistentVolumes and claims (the node
/// gives each claim name one folder), the ServiceAccounts' IAM role annotations (for `eks` the
/// test server runs EKS's pod identity webhook, which acts on them), and the replicas (one pod
/// per Deployment, made by the test from its template: on one host network two API servers
/// would share a port).
pub fn substitutions(overlay: &str, local: &Local) -> Vec<Substitution> {
    let config = |find: &'static str, replace: String, why: &'static str| Substitution {
        kind: "ConfigMap",
        name: "updraft-config",
        key: "updraft.toml".to_owned(),
        find: Find::Text(find),
        replace,
        why,
    };
    let secret = |key: &'static str, find: Find, replace: String, why: &'static str| Substitution {
        kind: "Secret",
        name: "updraft-secrets",
        key: key.to_owned(),
        find,
        replace,
        why,
    };
    let own_network =
        "a pod has a network namespace of its own; here pods share the test machine's, where the port may be taken";
    let mut list = vec![
        config(
            "\nhost = \"0.0.0.0\"",
            "\nhost = \"127.0.0.1\"".to_owned(),
            "pods share the test machine's network: listen on loopback only",
        ),
        config("\nport = 8080", format!("\nport = {}", local.api_port), own_network),
        config("\nmetrics_port = 9090", format!("\nmetrics_port = {}", local.metrics_port), own_network),
    ];
    match overlay {
        "local" => list.push(secret(
            "UPDRAFT__DATABASE__URL",
            Find::Whole,
            local.database.clone(),
            "the overlay's database is the in-cluster `postgres` StatefulSet (postgres.yaml), which the test server \
             cannot run: a fresh database on the local PostgreSQL instead",
        )),
        "eks" => {
            let placeholder = "a CHANGE-ME placeholder the guide has you replace";
            list.extend([
                secret(
                    "UPDRAFT__DATABASE__URL",
                    Find::Text(RDS_ENDPOINT),
                    local.database.clone(),
                    "the RDS endpoint: a fresh database on a PostgreSQL the test starts with a certificate of its own CA, \
                     reached with the manifest's own sslmode=verify-full and sslrootcert",
                ),
                Substitution {
                    kind: "ConfigMap",
                    name: "updraft-ca-certs",
                    key: "rds-global-bundle.pem".to_owned(),
                    find: Find::Whole,
                    replace: local.database_ca.clone().expect("the eks overlay needs the database's CA"),
                    why: "the RDS CA bundle the guide has you download (the file in git is a placeholder): the test \
                          database's CA instead",
                },
                secret(
                    "UPDRAFT__CORE__ENCRYPTION_KEY",
                    Find::Whole,
                    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_owned(),
                    placeholder,
                ),
                secret(
                    "UPDRAFT__API__JWT_SECRET",
                    Find::Whole,
                    "eks-overlay-test-jwt-secret-at-least-32-characters".to_owned(),
                    placeholder,
                ),
            ]);
        }
        other => panic!("no substitutions for overlay {other}"),
    }
    list
}

/// Applies `substitutions` to the rendering's documents; panics if one finds nothing, so a
/// manifest change that moves a value shows up here.
fn substitute(docs: &mut [Value], substitutions: &[Substitution]) {
    for s in substitutions {
        let doc = docs
            .iter_mut()
            .find(|d| d["kind"] == s.kind && d["metadata"]["name"] == s.name)
            .unwrap_or_else(|| panic!("the rendering has no {} {}", s.kind, s.name));
        if let Find::NewKey = s.find {
            let field = if s.kind == "Secret" { "stringData" } else { "data" };
            assert!(
                doc["data"].get(&s.key).is_none() && doc["stringData"].get(&s.key).is_none(),
                "{} {} already has {}",
                s.kind,
                s.name,
                s.key
            );
            if !doc[field].is_object() {
                doc[field] = json!({});
            }
            doc[field][&s.key] = json!(s.replace);
            continue;
        }
        let field = ["data", "stringData"]
            .into_iter()
            .find(|f| doc[*f].get(&s.key).is_some())
            .unwrap_or_else(|| panic!("{} {} has no key {}", s.kind, s.name, s.key));
        assert!(
            !(s.kind == "Secret" && field == "data"),
            "{} {}: the test edits stringData, not base64 data",
            s.kind,
            s.name
        );
        let value = doc[field][&s.key].as_str().unwrap_or_default().to_owned();
        let new = match s.find {
            Find::Whole | Find::NewKey => s.replace.clone(),
            Find::Append => format!("{value}\n{}", s.replace),
            Find::Text(find) => {
                assert!(
                    value.contains(find),
                    "{} {} {}: no {find:?} to replace ({}) in:\n{value}",
                    s.kind,
                    s.name,
                    s.key,
                    s.why
                );
                value.replacen(find, &s.replace, 1)
            }
        };
        doc[field][&s.key] = json!(new);
    }
}

/// The pod template of Deployment `name`.
fn template<'a>(docs: &'a [Value], name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == name)
        .map(|d| &d["spec"]["template"])
        .unwrap_or_else(|| panic!("the rendering has no Deployment {name}"))
}

/// A fresh database on the local PostgreSQL, dropped (with its connections) at the end.
pub struct Database {
    pub name: String,
}

impl Database {
    pub fn create(tag: &str) -> Database {
        let name = format!("updraft_k8s_{tag}_{}", std::process::id());
        let _ = psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), "postgres");
        let out = psql(&format!("CREATE DATABASE {name}"), "postgres");
        assert!(out.status.success(), "PostgreSQL must run at 127.0.0.1:5432: {}", text(&out.stderr));
        Database { name }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name), "postgres");
    }
}

/// The documents of `overlay`'s rendering with `substitutions` made, and the same as one YAML
/// stream (JSON is YAML) for the test server.
fn rendered(overlay: &str, substitutions: &[Substitution]) -> (Vec<Value>, String) {
    let text = crate::render(&workspace().join("k8s/overlays").join(overlay));
    let mut docs = updraft_fake_kube::parse_manifests(&text).expect("the rendering parses");
    substitute(&mut docs, substitutions);
    let yaml = docs.iter().map(Value::to_string).collect::<Vec<_>>().join("\n---\n");
    (docs, yaml)
}

/// The deployment of an overlay, running on the test server: what a test needs to go on with
/// it (the cluster, the rendering, an API token, the claims' folders).
pub struct Running {
    pub cluster: Cluster,
    pub docs: Vec<Value>,
    /// A bearer token of the API server's first user (`admin`).
    pub token: String,
    pub api_port: u16,
    pub dags: PathBuf,
    pub logs: PathBuf,
    overlay: String,
    started: Instant,
    /// The mount points of the manifests, which the containers see and the host must not get,
    /// and whether each existed before.
    host_paths: Vec<(&'static str, bool)>,
}

/// Renders `overlay`, substitutes (with `local.extra`), runs the scheduler and the API server
/// from their Deployments, creates the first user and runs a DAG through task pods; panics with
/// the containers' logs if anything fails.
pub fn run_as_written(overlay: &str, local: &Local) -> Running {
    let mut changes = substitutions(overlay, local);
    changes.extend(local.extra.iter().cloned());
    let (docs, yaml) = rendered(overlay, &changes);
    let host_paths = ["/etc/updraft", "/opt/updraft", "/var/lib/updraft", "/run/secrets"]
        .into_iter()
        .map(|p| (p, Path::new(p).exists()))
        .collect();
    let cluster = Cluster::start_with(&yaml, local.irsa.clone());
    let dags = cluster.fake.claim_dir(NS, "updraft-dags").expect("the DAGs claim");
    std::fs::write(dags.join("hello.yaml"), DAG).expect("a DAG on the claim");
    let logs = cluster.fake.claim_dir(NS, "updraft-logs").expect("the logs claim");
    let started = Instant::now();

    // Both Deployments at once, as `kubectl apply` creates them: the API server's init
    // container waits while the scheduler's migrates the empty database.
    let scheduler = cluster.create_pod("updraft-scheduler", template(&docs, "updraft-scheduler"));
    let api_server = cluster.create_pod("updraft-api-server", template(&docs, "updraft-api-server"));
    cluster.wait_for("the scheduler and the API server to run", Duration::from_secs(120), || {
        (cluster.running(&scheduler) && cluster.running(&api_server)).then_some(())
    });
    let waited = cluster.log(&api_server, "wait-for-db");
    assert!(waited.contains("current"), "the API server's init container ended once the schema was current:\n{waited}");
    let migrated = cluster.log(&scheduler, "migrate");
    assert!(migrated.contains("current"), "the scheduler's init container migrated:\n{migrated}");

    // Probes: the API server's health endpoint, the scheduler's /health.
    let health = cluster.wait_for("the API server's health endpoint", Duration::from_secs(60), || {
        http(local.api_port, "GET", "/api/v2/monitor/health", None, None).ok().filter(|(status, _)| *status == 200)
    });
    let health: Value = serde_json::from_str(&health.1).expect("health JSON");
    assert_eq!(health["metadatabase"]["status"], "healthy", "{health}");
    cluster.wait_for("the scheduler's /health", Duration::from_secs(60), || {
        http(local.metrics_port, "GET", "/health", None, None).ok().filter(|(status, _)| *status == 200)
    });

    // The first user, as the guide creates it (`kubectl -n updraft exec deploy/updraft-api-server
    // -- updraft users create …`): in the API server's container, with its env and mounts.
    let created = cluster.kubectl(&[
        "-n",
        NS,
        "exec",
        "deploy/updraft-api-server",
        "--",
        "updraft",
        "users",
        "create",
        "--username",
        "admin",
        "--password",
        "k8s-test-password",
        "--role",
        "admin",
    ]);
    assert!(created.contains("admin"), "{created}");
    let (status, body) = http(
        local.api_port,
        "POST",
        "/auth/token",
        None,
        Some(&json!({"username": "admin", "password": "k8s-test-password"})),
    )
    .expect("POST /auth/token");
    assert_eq!(status, 201, "{body}");
    let token: Value = serde_json::from_str(&body).expect("JSON");
    let token = token["access_token"].as_str().expect("a token").to_owned();
    let running = Running {
        cluster,
        docs,
        token,
        api_port: local.api_port,
        dags,
        logs,
        overlay: overlay.to_owned(),
        started,
        host_paths,
    };

    let state = running.trigger(DAG_ID, "r1");
    assert_eq!(
        state,
        "success",
        "the run failed; task logs:\n{}{}",
        task_logs(&running.logs),
        running.cluster.describe()
    );
    // The task pods: made by the scheduler as its ServiceAccount (its in-cluster token), from
    // the pod template, one per try.
    let creates: Vec<_> = running
        .cluster
        .fake
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "POST" && r.uri.starts_with(&format!("/api/v1/namespaces/{NS}/pods")) && r.status == 201
        })
        .filter(|r| r.user.as_deref() == Some("system:serviceaccount:updraft:updraft-scheduler"))
        .collect();
    assert_eq!(creates.len(), 2, "one task pod per task, created by the scheduler's ServiceAccount: {creates:?}");
    let worker_log =
        std::fs::read_to_string(running.logs.join(format!("dag_id={DAG_ID}/run_id=r1/task_id=second/attempt=1.log")))
            .unwrap_or_else(|e| {
                panic!("the task pod wrote its log on the logs claim: {e}\n{}", task_logs(&running.logs))
            });
    assert!(worker_log.contains("slept 1.0 of 1 s"), "{worker_log}");
    // The log through the API server, which mounts the logs claim read-only.
    let body = running.task_log(DAG_ID, "r1", "second", 1);
    assert!(body.contains("slept 1.0 of 1 s"), "{body}");
    running
}

impl Running {
    /// A request to the API server as its first user.
    pub fn api(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
        http(self.api_port, method, path, Some(&self.token), body).expect("the API server answers")
    }

    /// Triggers run `run_id` of `dag_id` through the API (once the scheduler has parsed the DAG:
    /// the trigger answers 404 until then) and waits for it to end; its state.
    pub fn trigger(&self, dag_id: &str, run_id: &str) -> String {
        let trigger = json!({"dag_run_id": run_id, "logical_date": null});
        self.cluster.wait_for(&format!("DAG {dag_id} to be triggered"), Duration::from_secs(60), || {
            let (status, body) = self.api("POST", &format!("/api/v2/dags/{dag_id}/dagRuns"), Some(&trigger));
            assert!(status == 200 || status == 404, "trigger: {status} {body}");
            (status == 200).then_some(())
        });
        self.cluster.wait_for(&format!("run {run_id} of {dag_id} to end"), Duration::from_secs(150), || {
            let (_, body) = self.api("GET", &format!("/api/v2/dags/{dag_id}/dagRuns/{run_id}"), None);
            let run: Value = serde_json::from_str(&body).ok()?;
            let state = run["state"].as_str()?.to_owned();
            matches!(state.as_str(), "success" | "failed").then_some(state)
        })
    }

    /// A try's log through the API server.
    pub fn task_log(&self, dag_id: &str, run_id: &str, task_id: &str, attempt: u32) -> String {
        let (status, body) = self.api(
            "GET",
            &format!("/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{attempt}"),
            None,
        );
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Every task log on the logs claim, for a failure message.
    pub fn task_logs(&self) -> String {
        task_logs(&self.logs)
    }

    /// Checks that no container failed and the host kept its folders, and says how long it took.
    pub fn finish(self) {
        if let Some(report) = self.cluster.failures() {
            panic!("a container failed:{report}");
        }
        for (path, existed) in &self.host_paths {
            assert_eq!(Path::new(path).exists(), *existed, "{path}: the containers' mounts changed the host");
        }
        eprintln!("overlay {} ran as written in {:.1} s", self.overlay, self.started.elapsed().as_secs_f64());
    }
}

/// Every task log on the logs claim, for a failure message.
fn task_logs(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push_str(&format!(
                    "--- {}\n{}\n",
                    path.display(),
                    std::fs::read_to_string(&path).unwrap_or_default()
                ));
            }
        }
    }
    out
}

#[test]
fn the_local_overlay_runs_as_written() {
    let database = Database::create("local");
    let local = Local {
        database: format!("postgres://postgres@127.0.0.1:5432/{}", database.name),
        database_ca: None,
        api_port: free_port(),
        metrics_port: free_port(),
        extra: Vec::new(),
        irsa: None,
    };
    run_as_written("local", &local).finish();
}

#[test]
fn the_eks_overlay_runs_as_written() {
    // RDS's stand-in: a PostgreSQL that accepts only TLS, with a certificate for localhost
    // signed by a CA of the test's; stopped (with its databases) when the test ends.
    let postgres = crate::common::TlsPostgres::start();
    let name = postgres.database(&format!("updraft_k8s_eks_{}", std::process::id()));
    let ca = std::fs::read_to_string(&postgres.ca).expect("the test CA");
    // S3 and STS: moto over HTTPS with a CA of its own, which the guide's private CA file (its
    // `[http] extra_ca_file`) holds here; the bucket the guide names.
    let moto = crate::moto::Moto::start();
    let readme = crate::guide::readme();
    let (bucket, _) = crate::guide::remote_logs(&readme);
    moto.create_bucket(&bucket);
    let mut extra = crate::guide::edits(&readme, std::fs::read_to_string(moto.ca_file()).expect("moto's CA"));
    extra.extend(crate::guide::s3_substitutions(&moto));
    let local = Local {
        database: format!("postgres@localhost:{}/{name}", postgres.port),
        database_ca: Some(ca),
        api_port: free_port(),
        metrics_port: free_port(),
        // The guide's steps for this overlay (k8s/README.md): its grants and private CA.
        extra,
        // EKS gives the pods of the overlay's annotated ServiceAccounts their IAM role, with the
        // cluster's region; STS is moto here.
        irsa: Some(updraft_fake_kube::Irsa {
            region: Some("eu-west-1".to_owned()),
            sts_endpoint: Some(moto.endpoint()),
        }),
    };
    let running = run_as_written("eks", &local);
    // Then every command of the guide's sections on RDS, plugin grants, Secrets and S3 logs.
    crate::guide::run_the_guide(&running, &postgres, &moto);
    running.finish();

    // The CA bundle really is what the processes verify the database with: with the placeholder
    // in git instead, the scheduler's first command stops at once and says why.
    let mut without_bundle = substitutions("eks", &local);
    without_bundle.retain(|s| s.name != "updraft-ca-certs");
    let (docs, yaml) = rendered("eks", &without_bundle);
    let cluster = Cluster::start(&yaml);
    let pod = cluster.create_pod("updraft-scheduler", template(&docs, "updraft-scheduler"));
    crate::common::wait_for("the scheduler pod to fail", Duration::from_secs(60), || {
        cluster.pod(&pod)["status"]["phase"] == "Failed"
    });
    let log = cluster.log(&pod, "migrate");
    assert!(
        log.contains("/etc/updraft/ca/rds-global-bundle.pem") && log.contains("no PEM `CERTIFICATE` block"),
        "{log}"
    );
}

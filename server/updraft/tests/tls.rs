//! TLS to PostgreSQL, as production reaches Amazon RDS: the metadata database and a `sql` task's
//! connection, over TLS with `sslmode=require` (the shared PostgreSQL at 127.0.0.1:5432, which
//! has `ssl = on`) and `sslmode=verify-full` against a TLS-only cluster the test starts with its
//! own CA (`common::TlsPostgres`). A wrong CA, a missing CA file, a plain connection and a
//! missing client certificate each fail with one clear message that says what to set.

mod common;

use common::{TlsPostgres, final_state, psql, task_logs, text, workspace};

use std::process::{Command, Output};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// `updraft ARGS` with the metadata database at `url` and a data folder of its own.
fn updraft(data: &std::path::Path, url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_updraft"))
        .args(args)
        .current_dir(workspace())
        .env("UPDRAFT__DATABASE__URL", url)
        .env("UPDRAFT__CORE__ENCRYPTION_KEY", KEY)
        .env("UPDRAFT__CORE__DATA_DIR", data)
        .env_remove("UPDRAFT_CONFIG")
        .output()
        .expect("updraft runs")
}

fn stderr(out: &Output) -> String {
    text(&out.stderr)
}

#[test]
fn the_metadata_database_over_tls_verify_full_and_what_each_mistake_says() {
    let pg = TlsPostgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = pg.database("meta");

    // verify-full with the CA that signed the server's certificate, by name and by address.
    for host in ["localhost", "127.0.0.1"] {
        let url = pg.url("postgres", host, &db, &pg.verify_full(&pg.ca));
        let out = updraft(dir.path(), &url, &["db", "migrate"]);
        assert!(out.status.success(), "{host}: {}", stderr(&out));
        let out = updraft(dir.path(), &url, &["db", "check", "--wait", "5"]);
        assert!(out.status.success(), "{host}: {}", stderr(&out));
        assert!(text(&out.stdout).contains("current"), "{}", text(&out.stdout));
    }
    // The connections really are encrypted: the server's own view of them.
    let url = pg.url("postgres", "localhost", &db, &pg.verify_full(&pg.ca));
    let out = updraft(dir.path(), &url, &["variables", "set", "tls_probe", "yes"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A CA that did not sign the certificate: one message naming the host, the file and the fix.
    let url = pg.url("postgres", "localhost", &db, &pg.verify_full(&pg.other_ca));
    let out = updraft(dir.path(), &url, &["db", "check"]);
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert!(
        message.contains("the server certificate of `localhost` is not signed by the CA certificates in sslrootcert="),
        "{message}"
    );
    assert!(message.contains("set the CA that signed it with `sslrootcert=/path/to/ca.pem`"), "{message}");
    assert_eq!(message.matches("UnknownIssuer").count(), 1, "said once: {message}");
    assert_eq!(message.matches("cannot connect").count(), 1, "said once: {message}");

    // A CA file that is not there.
    let url = pg.url("postgres", "localhost", &db, "sslmode=verify-full&sslrootcert=/etc/updraft/rds/missing.pem");
    let message = stderr(&updraft(dir.path(), &url, &["db", "check"]));
    assert!(message.contains("sslrootcert=/etc/updraft/rds/missing.pem: cannot read the file"), "{message}");

    // A plain connection to a server that requires TLS (as RDS does by default).
    let url = pg.url("postgres", "127.0.0.1", &db, "sslmode=disable");
    let message = stderr(&updraft(dir.path(), &url, &["db", "check"]));
    assert!(message.contains("the server refuses connections without TLS"), "{message}");
    assert!(message.contains("add `sslmode=verify-full` (with `sslrootcert`)"), "{message}");

    // A client certificate: accepted with its key, refused without.
    let with_cert =
        format!("{}&sslcert={}&sslkey={}", pg.verify_full(&pg.ca), pg.client_cert.display(), pg.client_key.display());
    let out = updraft(dir.path(), &pg.url("certuser", "localhost", &db, &with_cert), &["db", "check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = updraft(dir.path(), &pg.url("certuser", "localhost", &db, &pg.verify_full(&pg.ca)), &["db", "check"]);
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert!(message.contains("client certificate"), "{message}");
}

#[test]
fn sslmode_require_reaches_the_shared_postgresql() {
    // The form k8s/overlays/eks/secret.yaml shipped before it moved to verify-full: it used to
    // fail with "SQLx was built without TLS support".
    let name = format!("updraft_tls_require_{}", std::process::id());
    let out = psql(&format!("CREATE DATABASE {name}"), "postgres");
    assert!(out.status.success(), "PostgreSQL must run at 127.0.0.1:5432: {}", text(&out.stderr));
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}?sslmode=require");
    let out = updraft(dir.path(), &url, &["db", "migrate"]);
    let _ = psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), "postgres");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text(&out.stdout).contains("current"), "{}", text(&out.stdout));
}

#[test]
fn a_sql_task_runs_on_a_verify_full_connection_and_a_wrong_ca_fails_the_try_clearly() {
    let pg = TlsPostgres::start();
    let warehouse = pg.database("warehouse");
    let dir = tempfile::tempdir().expect("tempdir");
    let dags = dir.path().join("dags");
    std::fs::create_dir(&dags).expect("dags");
    std::fs::write(
        dags.join("tls.yaml"),
        "dag: tls_sql\nschedule: null\ndefaults: {retries: 0}\ntasks:\n  - id: loaded\n    connection: secure\n    sql: \"CREATE TABLE loaded AS SELECT ssl::text AS encrypted FROM pg_stat_ssl WHERE pid = pg_backend_pid()\"\n  - id: refused\n    connection: wrong_ca\n    sql: \"SELECT 1\"\n",
    )
    .expect("dag");
    let meta = format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display());
    let secure = format!("postgres://postgres@localhost:{}/{warehouse}?{}", pg.port, pg.verify_full(&pg.ca));
    let wrong = format!("postgres://postgres@localhost:{}/{warehouse}?{}", pg.port, pg.verify_full(&pg.other_ca));
    for (id, uri) in [("secure", &secure), ("wrong_ca", &wrong)] {
        let out = updraft(dir.path(), &meta, &["db", "migrate"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = updraft(dir.path(), &meta, &["connections", "add", id, "--conn-uri", uri]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let dags_arg = dags.display().to_string();
    let out = updraft(dir.path(), &meta, &["dags", "test", "tls_sql", "--dags", &dags_arg]);
    let stdout = text(&out.stdout);
    assert_eq!(final_state(&stdout, "loaded"), "success", "{stdout}\n{}", stderr(&out));
    assert_eq!(final_state(&stdout, "refused"), "failed", "{stdout}");
    // The table was written over an encrypted connection, as the server itself reports.
    assert_eq!(pg.psql("SELECT encrypted FROM loaded", &warehouse).trim(), "true");
    let log = task_logs(&dir.path().join("logs"), "refused");
    assert!(log.contains("connection \"wrong_ca\": cannot connect to localhost:"), "{log}");
    assert!(log.contains("is not signed by the CA certificates in sslrootcert="), "{log}");
}

//! moto (PyPI `moto[server]`) on loopback over HTTPS, as the S3 and STS of the remote-log tests:
//! `tests/moto/serve.py` makes a CA for the run and serves moto with a certificate it signed,
//! and `tests/moto/s3.py` (boto3) checks what Updraft stored with a second client.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{free_port, python_venv, text, wait_for, workspace};

/// The moto release the tests install.
const MOTO: &str = "moto[server]==5.2.6";

/// How an Updraft process authenticates to S3.
#[derive(Debug, Clone, Copy)]
pub enum Identity {
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    Keys,
    /// What IRSA injects: `AWS_ROLE_ARN` and `AWS_WEB_IDENTITY_TOKEN_FILE`, exchanged at STS.
    WebIdentity,
}

pub struct Moto {
    dir: tempfile::TempDir,
    port: u16,
    python: PathBuf,
    child: Child,
}

impl Moto {
    /// Starts moto on a free port and waits until it answers.
    pub fn start() -> Moto {
        let python = python_venv("moto-venv", &[MOTO]);
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("moto.log")).expect("log file");
        let child = Command::new(&python)
            .arg(workspace().join("tests/moto/serve.py"))
            .arg(dir.path())
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("moto starts");
        let moto = Moto { dir, port, python, child };
        wait_for("moto to listen", Duration::from_secs(60), || {
            moto.dir.path().join("ca.pem").exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The CA that signed moto's certificate (what `[http] extra_ca_file` must name).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Everything moto logged: one line per request, and `sts: AssumeRoleWithWebIdentity` per
    /// web-identity exchange.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }

    fn s3(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new(&self.python)
            .arg(workspace().join("tests/moto/s3.py"))
            .arg(self.endpoint())
            .arg(self.ca_file())
            .args(args)
            .output()
            .expect("s3.py runs");
        assert!(out.status.success(), "s3.py {}: {}", args.join(" "), text(&out.stderr));
        out.stdout
    }

    pub fn create_bucket(&self, bucket: &str) {
        self.s3(&["create-bucket", bucket]);
    }

    /// The keys under a prefix, sorted.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = text(&self.s3(&["list", bucket, prefix])).lines().map(str::to_owned).collect();
        keys.sort();
        keys
    }

    pub fn object(&self, bucket: &str, key: &str) -> String {
        text(&self.s3(&["get", bucket, key]))
    }

    /// Sets up an Updraft command to reach this S3 as `identity`, trusting moto's CA through
    /// `UPDRAFT__HTTP__EXTRA_CA_FILE`; AWS settings of the test's own environment are removed.
    pub fn configure(&self, command: &mut Command, identity: Identity) {
        for name in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ENDPOINT_URL_STS",
            "AWS_PROFILE",
        ] {
            command.env_remove(name);
        }
        command
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("UPDRAFT__HTTP__EXTRA_CA_FILE", self.ca_file());
        match identity {
            Identity::Keys => {
                command.env("AWS_ACCESS_KEY_ID", "test").env("AWS_SECRET_ACCESS_KEY", "test");
            }
            Identity::WebIdentity => {
                let token = self.dir.path().join("token");
                std::fs::write(&token, "a-projected-service-account-token").expect("token file");
                command
                    .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/updraft-api-server")
                    .env("AWS_WEB_IDENTITY_TOKEN_FILE", token)
                    .env("AWS_ENDPOINT_URL_STS", self.endpoint());
            }
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

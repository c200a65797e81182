//! TLS peers of a test's own, with certificates from CAs made for the test (openssl, EC P-256):
//!
//! - [`TlsPostgres`]: a PostgreSQL cluster that speaks only TLS, as Amazon RDS does with
//!   `rds.force_ssl`: `initdb` and `pg_ctl` (as the `postgres` user) on a free port of
//!   127.0.0.1, a server certificate for `localhost` and `127.0.0.1`, plain connections refused
//!   by `pg_hba.conf`, and a user `certuser` who signs in with a client certificate only. The
//!   shared PostgreSQL at 5432 is never touched. Dropping it stops the cluster.
//! - [`HttpsServer`]: Python's HTTP server behind TLS on a free port, answering every GET with
//!   a small JSON body.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{free_port, text};

/// A running TLS-only PostgreSQL and the files a client needs.
pub struct TlsPostgres {
    pub port: u16,
    /// The CA that signed the server's certificate (what `sslrootcert` must name).
    pub ca: PathBuf,
    /// A CA that signed nothing of this server's: `verify-full` against it must fail.
    pub other_ca: PathBuf,
    /// The certificate and key of `certuser`, signed by `ca`.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    _dir: tempfile::TempDir,
}

fn run(what: &str, command: &mut Command) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(out.status.success(), "{what} failed:\n{}{}", text(&out.stdout), text(&out.stderr));
}

fn openssl(dir: &Path, args: &[&str]) {
    run(&format!("openssl {}", args.join(" ")), Command::new("openssl").current_dir(dir).args(args));
}

/// An EC P-256 key and a certificate for `subject`, signed by `ca` (`None`: self-signed CA),
/// with the X.509 extensions in `extensions` (openssl's config syntax): `dir/NAME.pem` and
/// `dir/NAME.key`.
pub fn certificate(dir: &Path, name: &str, subject: &str, ca: Option<&str>, extensions: &str) {
    let key = format!("{name}.key");
    let pem = format!("{name}.pem");
    std::fs::write(dir.join(format!("{name}.ext")), extensions).expect("write extensions");
    let ext = format!("{name}.ext");
    match ca {
        None => openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &pem,
                "-days",
                "2",
                "-subj",
                subject,
                "-extensions",
                "v3",
                "-config",
                &ext,
            ],
        ),
        Some(ca) => {
            let csr = format!("{name}.csr");
            openssl(
                dir,
                &[
                    "req",
                    "-new",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    &key,
                    "-out",
                    &csr,
                    "-subj",
                    subject,
                ],
            );
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &format!("{ca}.pem"),
                    "-CAkey",
                    &format!("{ca}.key"),
                    "-CAcreateserial",
                    "-out",
                    &pem,
                    "-days",
                    "2",
                    "-extfile",
                    &ext,
                    "-extensions",
                    "v3",
                ],
            );
        }
    }
}

pub const CA_EXTENSIONS: &str = "[req]\ndistinguished_name = dn\n[dn]\n[v3]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n";

/// The extensions of a server certificate for `localhost` and `127.0.0.1`.
pub const SERVER_EXTENSIONS: &str = "[v3]\nsubjectAltName = DNS:localhost, IP:127.0.0.1\nbasicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n";

impl TlsPostgres {
    /// Starts the cluster (a few seconds: initdb, then pg_ctl).
    pub fn start() -> TlsPostgres {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        certificate(root, "ca", "/CN=Updraft test CA", None, CA_EXTENSIONS);
        certificate(root, "other-ca", "/CN=Some other CA", None, CA_EXTENSIONS);
        certificate(root, "server", "/CN=localhost", Some("ca"), SERVER_EXTENSIONS);
        certificate(
            root,
            "client",
            "/CN=certuser",
            Some("ca"),
            "[v3]\nbasicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\n",
        );
        // The server runs as `postgres`: it owns its folder and its key (0600, as it insists).
        let cluster = root.join("cluster");
        std::fs::create_dir(&cluster).expect("cluster folder");
        for file in ["server.pem", "server.key", "ca.pem"] {
            std::fs::copy(root.join(file), cluster.join(file)).expect("copy");
        }
        run("chmod", Command::new("chmod").arg("755").arg(root));
        run("chmod", Command::new("chmod").arg("600").arg(cluster.join("server.key")));
        run("chown", Command::new("chown").args(["-R", "postgres:postgres"]).arg(&cluster));
        let data = cluster.join("data");
        run(
            "initdb",
            Command::new("runuser")
                .args(["-u", "postgres", "--", "initdb", "-A", "trust", "-U", "postgres", "--no-sync", "-D"])
                .arg(&data),
        );
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all certuser 127.0.0.1/32 cert\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("pg_hba.conf");
        let port = free_port();
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c ssl=on -c ssl_cert_file={} -c ssl_key_file={} -c ssl_ca_file={} -c fsync=off",
            cluster.display(),
            cluster.join("server.pem").display(),
            cluster.join("server.key").display(),
            cluster.join("ca.pem").display(),
        );
        run(
            "pg_ctl start",
            Command::new("runuser")
                .args(["-u", "postgres", "--", "pg_ctl", "-w", "-t", "60", "-D"])
                .arg(&data)
                .arg("-l")
                .arg(cluster.join("server.log"))
                .args(["-o", &options, "start"]),
        );
        let server = TlsPostgres {
            port,
            ca: root.join("ca.pem"),
            other_ca: root.join("other-ca.pem"),
            client_cert: root.join("client.pem"),
            client_key: root.join("client.key"),
            data,
            socket_dir: cluster,
            _dir: dir,
        };
        server.psql("CREATE ROLE certuser LOGIN SUPERUSER", "postgres");
        server
    }

    /// Runs one statement as `postgres` over the cluster's Unix socket.
    pub fn psql(&self, sql: &str, db: &str) -> String {
        let out = Command::new("psql")
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db, "-tAc", sql])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "psql {sql}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// Creates database `name` and returns its URL for `user` at `host` (`localhost` or
    /// `127.0.0.1`) with the query `params` (`sslmode=verify-full&sslrootcert=…`).
    pub fn database(&self, name: &str) -> String {
        self.psql(&format!("CREATE DATABASE {name}"), "postgres");
        name.to_owned()
    }

    /// Creates a login `user` whose TCP connections must give `password` (SCRAM), as a managed
    /// database's users do; other users keep trust authentication.
    pub fn password_user(&self, user: &str, password: &str) {
        self.psql(&format!("CREATE ROLE {user} LOGIN PASSWORD '{password}'"), "postgres");
        let hba = self.data.join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).expect("pg_hba.conf");
        std::fs::write(&hba, format!("hostssl all {user} 127.0.0.1/32 scram-sha-256\n{rules}")).expect("pg_hba.conf");
        self.psql("SELECT pg_reload_conf()", "postgres");
    }

    pub fn url(&self, user: &str, host: &str, db: &str, params: &str) -> String {
        format!("postgres://{user}@{host}:{}/{db}?{params}", self.port)
    }

    /// `sslmode=verify-full&sslrootcert=CA`: what the eks overlay does with the RDS bundle.
    pub fn verify_full(&self, ca: &Path) -> String {
        format!("sslmode=verify-full&sslrootcert={}", ca.display())
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", "pg_ctl", "-m", "immediate", "-D"])
            .arg(&self.data)
            .arg("stop")
            .output();
    }
}

/// Python's HTTP server behind TLS on 127.0.0.1, with a certificate for `localhost` and
/// `127.0.0.1` signed by `ca` (whose PEM is kept for the client): every GET answers 200 with
/// `{"path": PATH}`.
pub struct HttpsServer {
    pub port: u16,
    pub ca: PathBuf,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl HttpsServer {
    pub fn start() -> HttpsServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        certificate(root, "ca", "/CN=Updraft test HTTPS CA", None, CA_EXTENSIONS);
        certificate(root, "server", "/CN=localhost", Some("ca"), SERVER_EXTENSIONS);
        let port = free_port();
        let script = r#"
import http.server, json, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[2], sys.argv[3])
server.socket = context.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
"#;
        let mut child = Command::new("python3")
            .args(["-c", script, &port.to_string()])
            .arg(root.join("server.pem"))
            .arg(root.join("server.key"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("reads");
        assert_eq!(line.trim(), "ready", "the HTTPS server did not start");
        HttpsServer { port, ca: root.join("ca.pem"), child, _dir: dir }
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

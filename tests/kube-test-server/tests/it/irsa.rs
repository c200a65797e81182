//! IAM roles for service accounts (`FakeKubeConfig::irsa`): a pod whose ServiceAccount is
//! annotated `eks.amazonaws.com/role-arn` gets what EKS's pod identity webhook adds (the role's
//! environment, a web-identity token for `sts.amazonaws.com` at the documented path); a variable
//! the container sets itself is kept; a pod of an account without the annotation gets nothing;
//! the token is not one the API server accepts.

use kube::api::{LogParams, PostParams};
use serde_json::json;
use updraft_fake_kube::{FakeKube, FakeKubeConfig, Irsa};

use crate::{phase, scheduler_pods, wait_for};

const ACCOUNTS: &str = "
apiVersion: v1
kind: ServiceAccount
metadata:
  name: with-role
  namespace: updraft
  annotations:
    eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/logs
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: without-role, namespace: updraft}
";

#[tokio::test]
async fn pods_of_an_annotated_service_account_get_the_roles_environment_and_token() {
    let fake = FakeKube::start(FakeKubeConfig {
        mount_volumes: true,
        irsa: Some(Irsa { region: Some("eu-west-1".to_owned()), sts_endpoint: Some("https://127.0.0.1:1".to_owned()) }),
        ..FakeKubeConfig::default()
    })
    .expect("the server starts");
    fake.apply_rbac_yaml(ACCOUNTS).expect("accounts");
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    let script = "env | grep ^AWS_ | sort; cat $AWS_WEB_IDENTITY_TOKEN_FILE";
    let spec = |name: &str, account: &str| {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "serviceAccountName": account,
                "containers": [{"name": "base", "image": "busybox", "command": ["sh", "-c", script],
                    "env": [{"name": "AWS_REGION", "value": "us-east-2"}]}],
            },
        }))
        .expect("a pod")
    };
    pods.create(&PostParams::default(), &spec("with", "with-role")).await.expect("create");
    pods.create(&PostParams::default(), &spec("without", "without-role")).await.expect("create");
    let with = wait_for(&pods, "with", "Succeeded", |p| phase(p) == "Succeeded").await;
    wait_for(&pods, "without", "ended", |p| matches!(phase(p), "Succeeded" | "Failed")).await;

    let log = pods.logs("with", &LogParams::default()).await.expect("log");
    let (env, token) = log
        .split_once("AWS_WEB_IDENTITY_TOKEN_FILE=/var/run/secrets/eks.amazonaws.com/serviceaccount/token\n")
        .unwrap_or_else(|| panic!("the token file variable: {log}"));
    assert_eq!(
        env,
        "AWS_DEFAULT_REGION=eu-west-1\nAWS_ENDPOINT_URL_STS=https://127.0.0.1:1\nAWS_REGION=us-east-2\n\
         AWS_ROLE_ARN=arn:aws:iam::123456789012:role/logs\nAWS_STS_REGIONAL_ENDPOINTS=regional\n",
        "the container's own AWS_REGION is kept"
    );
    assert!(token.contains("with-role") && token.contains("sts.amazonaws.com"), "{token}");
    let spec = with.spec.expect("spec");
    let volume = spec.volumes.unwrap_or_default().into_iter().find(|v| v.name == "aws-iam-token").expect("the volume");
    let source = volume.projected.and_then(|p| p.sources).unwrap_or_default();
    let token_source = source[0].service_account_token.as_ref().expect("a token source");
    assert_eq!(
        (token_source.audience.as_deref(), token_source.expiration_seconds),
        (Some("sts.amazonaws.com"), Some(86400))
    );

    // The token is for STS: the API server refuses it.
    let port: u16 = fake.http_url().rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    use std::io::{Read, Write};
    write!(
        stream,
        "GET /api/v1/namespaces/updraft/pods HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\r\n",
        token.trim()
    )
    .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    // No annotation, no role: `grep` finds nothing and the token file variable is unset.
    let without = pods.logs("without", &LogParams::default()).await.expect("log");
    assert!(!without.contains("AWS_ROLE_ARN"), "{without}");
}

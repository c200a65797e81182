//! `pods/{name}/exec`: a command run in a running container, streamed over a WebSocket with the
//! channel protocol `v5.channel.k8s.io` (or `v4`), as kubectl 1.32 asks for it: binary messages
//! whose first byte is the channel (0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize; in v5, 255
//! closes a channel, `[255, 0]` ends stdin). The server first sends an empty message on the
//! lowest output channel, then the command's output, then on channel 3 the `Status` the kubelet
//! writes (Success, `NonZeroExitCode` with the exit code as a cause, or an internal error from the
//! runtime), then closes. Requests are checked as the apiserver checks them (the pod, its node,
//! the container, at least one stream and command) before the upgrade. SPDY (a POST with
//! `Upgrade: SPDY/3.1`, kubectl's fallback) gets the same checks, then a 400 saying that only
//! WebSocket is served. A terminal (`tty=true`) is not supported.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::meta_str;
use super::websocket::{self, Message, MessageReader, OP_BINARY, OP_CLOSE, OP_PONG};
use crate::status::{ApiError, ApiResult};
use crate::store::Resource;
use crate::{Shared, kubelet};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const CLOSE_CHANNEL: u8 = 255;

/// The channel protocols this server speaks, best first.
const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// The query of an exec request (`PodExecOptions`).
#[derive(Debug, Default)]
struct Options {
    command: Vec<String>,
    container: Option<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

impl Options {
    fn parse(query: &str) -> Options {
        let mut options = Options::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let yes = value == "true" || value == "1";
            match key.as_ref() {
                "command" => options.command.push(value.into_owned()),
                "container" if !value.is_empty() => options.container = Some(value.into_owned()),
                "stdin" => options.stdin = yes,
                "stdout" => options.stdout = yes,
                "stderr" => options.stderr = yes,
                "tty" => options.tty = yes,
                _ => {}
            }
        }
        options
    }
}

/// The container an exec runs in: the one named, or the pod's only container.
fn container_name(pod: &Value, options: &Options) -> ApiResult<String> {
    let names = |list: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect()
    };
    let (main, init) = (names("containers"), names("initContainers"));
    let pod_name = meta_str(pod, "name");
    match &options.container {
        Some(name) if main.contains(name) || init.contains(name) => Ok(name.clone()),
        Some(name) => Err(ApiError::bad_request(format!("container {name} is not valid for pod {pod_name}"))),
        None if main.len() == 1 => Ok(main[0].clone()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}] or one of the init containers: [{}]",
            main.join(" "),
            init.join(" ")
        ))),
    }
}

fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
}

pub(crate) async fn exec(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    request: Request,
) -> Response {
    start(shared, &ns, &name, request).unwrap_or_else(IntoResponse::into_response)
}

fn start(shared: Arc<Shared>, ns: &str, name: &str, mut request: Request) -> ApiResult<Response> {
    let options = Options::parse(request.uri().query().unwrap_or(""));
    let pod = shared.store().get(Resource::Pods, ns, name).cloned().ok_or_else(|| ApiError::not_found("pods", name))?;
    if !(options.stdin || options.stdout || options.stderr) {
        return Err(ApiError::bad_request("you must specify at least 1 of stdin, stdout, stderr"));
    }
    if options.command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least one command for the container"));
    }
    let container = container_name(&pod, &options)?;
    if pod.pointer("/spec/nodeName").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(format!("pod {name} does not have a host assigned")));
    }
    if options.tty {
        return Err(ApiError::bad_request("the Kubernetes API test server does not support a terminal (tty) for exec"));
    }
    let target = kubelet::exec_target(&shared, meta_str(&pod, "uid"), &container)
        .ok_or_else(|| ApiError::bad_request(format!("container not found ({container:?})")))?;
    let headers = request.headers();
    let websocket = request.method() == Method::GET
        && header_has(headers, header::UPGRADE, "websocket")
        && header_has(headers, header::CONNECTION, "upgrade");
    if !websocket {
        return Err(ApiError::bad_request(
            "the Kubernetes API test server serves exec over WebSocket only (v5.channel.k8s.io or v4.channel.k8s.io), not SPDY",
        ));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request("missing Sec-WebSocket-Key"))?
        .to_owned();
    if headers.get(header::SEC_WEBSOCKET_VERSION).and_then(|v| v.to_str().ok()) != Some("13") {
        return Err(ApiError::bad_request("unsupported Sec-WebSocket-Version: only 13 is served"));
    }
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
        .collect();
    let protocol = PROTOCOLS.iter().find(|p| offered.iter().any(|o| o == *p)).ok_or_else(|| {
        ApiError::bad_request(format!("none of the offered subprotocols {offered:?} is supported: {PROTOCOLS:?}"))
    })?;
    let on_upgrade = hyper::upgrade::on(&mut request);
    let session = Session { shared, target, options, v5: *protocol == PROTOCOLS[0] };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => session.run(hyper_util::rt::TokioIo::new(upgraded)).await,
            Err(error) => tracing::warn!(%error, "exec: the WebSocket upgrade failed"),
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let set = |response: &mut Response, name: header::HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(name, value);
        }
    };
    set(&mut response, header::UPGRADE, "websocket");
    set(&mut response, header::CONNECTION, "Upgrade");
    set(&mut response, header::SEC_WEBSOCKET_ACCEPT, &websocket::accept_key(&key));
    set(&mut response, header::SEC_WEBSOCKET_PROTOCOL, protocol);
    Ok(response)
}

/// A channel message: the channel byte, then the data.
fn message(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(data.len() + 1);
    payload.push(channel);
    payload.extend_from_slice(data);
    websocket::frame(OP_BINARY, &payload)
}

/// The `Status` the kubelet writes on channel 3 for a command that ran.
fn exit_status(command: &[String], code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: command '{}' exited with {code}", command.join(" ")),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// One exec: the process and the streams between it and the client.
struct Session {
    shared: Arc<Shared>,
    target: kubelet::exec::Target,
    options: Options,
    v5: bool,
}

async fn pump(mut from: impl AsyncRead + Unpin, channel: Option<u8>, to: mpsc::Sender<Vec<u8>>) {
    let mut buffer = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Some(channel) = channel
                    && to.send(message(channel, &buffer[..n])).await.is_err()
                {
                    return;
                }
            }
        }
    }
}

impl Session {
    async fn run<S>(self, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        let (read_half, mut write_half) = tokio::io::split(stream);
        let (frames, mut outgoing) = mpsc::channel::<Vec<u8>>(64);
        let writer = tokio::spawn(async move {
            while let Some(frame) = outgoing.recv().await {
                if write_half.write_all(&frame).await.is_err() || write_half.flush().await.is_err() {
                    return;
                }
            }
            let _ = write_half.shutdown().await;
        });
        // The lowest output channel tells the client that the streams are up.
        let first = if self.options.stdout {
            STDOUT
        } else if self.options.stderr {
            STDERR
        } else {
            STATUS
        };
        let _ = frames.send(message(first, &[])).await;
        let status = self.execute(read_half, frames.clone()).await;
        let _ = frames.send(message(STATUS, status.to_string().as_bytes())).await;
        let _ = frames.send(websocket::frame(OP_CLOSE, &1000u16.to_be_bytes())).await;
        drop(frames);
        let _ = writer.await;
    }

    /// Runs the command, streaming its input and output; returns the status for channel 3.
    async fn execute<R>(&self, read_half: R, frames: mpsc::Sender<Vec<u8>>) -> Value
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let (serial, prepared) = kubelet::prepare_exec(&self.shared, &self.target, &self.options.command).await;
        let exec_id = format!("{:016x}{:016x}", self.target.pid, serial.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let internal = |why: &str| ApiError::internal(&kubelet::exec::runtime_error(&exec_id, why)).to_status();
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(why) => return internal(&why),
        };
        let mut command = prepared.command;
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let program = self.options.command.first().cloned().unwrap_or_default();
                return internal(&format!("exec: {program:?}: executable file not found in $PATH"));
            }
            Err(error) => return internal(&format!("exec: {error}")),
        };
        let pgid = child.id().and_then(|id| i32::try_from(id).ok()).unwrap_or(0);
        self.shared.kubelet.track_group(pgid, true);
        let mut stdin = child.stdin.take().filter(|_| self.options.stdin);
        let mut pumps = Vec::new();
        if let Some(out) = child.stdout.take() {
            pumps.push(tokio::spawn(pump(out, self.options.stdout.then_some(STDOUT), frames.clone())));
        }
        if let Some(err) = child.stderr.take() {
            pumps.push(tokio::spawn(pump(err, self.options.stderr.then_some(STDERR), frames.clone())));
        }
        // The client's messages: stdin, the end of stdin (v5), pings; its leaving ends the exec.
        let (gone_tx, gone) = oneshot::channel::<()>();
        let (stdin_tx, mut stdin_rx) = mpsc::channel::<Option<Vec<u8>>>(16);
        let v5 = self.v5;
        let reader = tokio::spawn(async move {
            let mut reader = MessageReader::new(read_half);
            loop {
                match reader.next().await {
                    Ok(Message::Data(data)) => match data.split_first() {
                        Some((&STDIN, rest)) => {
                            let _ = stdin_tx.send(Some(rest.to_vec())).await;
                        }
                        Some((&CLOSE_CHANNEL, [STDIN])) if v5 => {
                            let _ = stdin_tx.send(None).await;
                        }
                        _ => {}
                    },
                    Ok(Message::Ping(payload)) => {
                        let _ = frames.send(websocket::frame(OP_PONG, &payload)).await;
                    }
                    Ok(Message::Pong) => {}
                    Ok(Message::Close) | Err(_) => {
                        let _ = gone_tx.send(());
                        return;
                    }
                }
            }
        });
        let feed = async {
            while let Some(chunk) = stdin_rx.recv().await {
                match (chunk, stdin.as_mut()) {
                    (Some(data), Some(input)) => {
                        if input.write_all(&data).await.is_err() {
                            stdin = None;
                        }
                    }
                    (None, _) => stdin = None,
                    (Some(_), None) => {}
                }
            }
            std::future::pending::<()>().await
        };
        let status = tokio::select! {
            status = child.wait() => status.ok(),
            _ = feed => None,
            _ = gone => None,
        };
        // The client left (or the process could not be waited for): the exec ends with it.
        let status = match status {
            Some(status) => Some(status),
            None => {
                kill_group(pgid);
                child.wait().await.ok()
            }
        };
        kill_group(pgid);
        self.shared.kubelet.track_group(pgid, false);
        // Output still in the pipes arrives; a descendant that escaped the group and holds them
        // open does not keep the stream (and kubectl) waiting.
        for mut pump in pumps {
            if tokio::time::timeout(Duration::from_secs(2), &mut pump).await.is_err() {
                pump.abort();
            }
        }
        reader.abort();
        if let Some(report) = &prepared.report
            && let Ok(why) = std::fs::read_to_string(report)
        {
            let _ = std::fs::remove_file(report);
            return internal(&why);
        }
        let code = status.map_or(137, |s| {
            use std::os::unix::process::ExitStatusExt;
            s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9))
        });
        exit_status(&self.options.command, code)
    }
}

fn kill_group(pgid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_keep_every_command_word_in_order() {
        let options = Options::parse(
            "command=updraft&command=plugins&command=inspect&command=a%20b&container=api&stdout=true&stderr=true",
        );
        assert_eq!(options.command, ["updraft", "plugins", "inspect", "a b"]);
        assert_eq!(options.container.as_deref(), Some("api"));
        assert!(options.stdout && options.stderr && !options.stdin && !options.tty);
    }

    #[test]
    fn a_failing_command_reports_its_exit_code() {
        let status = exit_status(&["sh".to_owned(), "-c".to_owned(), "exit 3".to_owned()], 3);
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(status["details"]["causes"][0]["message"], "3");
        assert_eq!(exit_status(&[], 0)["status"], "Success");
    }
}

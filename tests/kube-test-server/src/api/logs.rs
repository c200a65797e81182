//! `pods/{name}/log`: a container's output with `container`, `follow`, `tailLines`,
//! `sinceSeconds`, `sinceTime`, `timestamps` and `limitBytes`, and the kubelet's 400 while the
//! container is still waiting to start.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{Params, flag, meta_str};
use crate::kubelet::logs::LogLine;
use crate::status::{ApiError, ApiResult};
use crate::store::Resource;
use crate::{Shared, kubelet, time};

fn names(pod: &Value, list: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// Why the container cannot serve logs yet, if it is waiting.
fn waiting_reason(pod: &Value, container: &str) -> Option<String> {
    let status = ["containerStatuses", "initContainerStatuses"]
        .iter()
        .filter_map(|list| pod.pointer(&format!("/status/{list}")).and_then(Value::as_array))
        .flatten()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(container));
    let Some(status) = status else { return Some("ContainerCreating".to_owned()) };
    let reason = status.pointer("/state/waiting/reason").and_then(Value::as_str)?;
    Some(match reason {
        "ErrImagePull" | "ImagePullBackOff" => "trying and failing to pull image".to_owned(),
        "InvalidImageName" => "image is not valid".to_owned(),
        other => other.to_owned(),
    })
}

struct Options {
    timestamps: bool,
    since: Option<DateTime<Utc>>,
    tail: Option<usize>,
    limit: Option<usize>,
}

impl Options {
    fn parse(params: &Params) -> ApiResult<Options> {
        let number = |name: &str| -> ApiResult<Option<i64>> {
            match params.get(name).filter(|v| !v.is_empty()) {
                Some(v) => v.parse().map(Some).map_err(|_| ApiError::bad_request(format!("invalid {name} {v:?}"))),
                None => Ok(None),
            }
        };
        let mut since = number("sinceSeconds")?.map(|s| time::now() - chrono::Duration::seconds(s.max(0)));
        if let Some(t) = params.get("sinceTime").filter(|v| !v.is_empty()) {
            let parsed = DateTime::parse_from_rfc3339(t)
                .map_err(|_| ApiError::bad_request(format!("invalid sinceTime {t:?}")))?;
            since = Some(parsed.with_timezone(&Utc));
        }
        Ok(Options {
            timestamps: flag(params, "timestamps"),
            since,
            tail: number("tailLines")?.map(|n| n.max(0) as usize),
            limit: number("limitBytes")?.map(|n| n.max(1) as usize),
        })
    }

    fn render(&self, line: &LogLine) -> Bytes {
        if !self.timestamps {
            return line.text.clone();
        }
        let mut out = format!("{} ", time::rfc3339_nanos(line.at)).into_bytes();
        out.extend_from_slice(&line.text);
        Bytes::from(out)
    }

    fn keep(&self, line: &LogLine) -> bool {
        self.since.is_none_or(|since| line.at >= since)
    }
}

pub(crate) async fn log(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let pod =
        shared.store().get(Resource::Pods, &ns, &name).cloned().ok_or_else(|| ApiError::not_found("pods", &name))?;
    let containers = names(&pod, "containers");
    let init_containers = names(&pod, "initContainers");
    let container = match params.get("container").filter(|c| !c.is_empty()) {
        Some(c) if containers.contains(c) || init_containers.contains(c) => c.clone(),
        Some(c) => return Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}"))),
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            let mut message =
                format!("a container name must be specified for pod {name}, choose one of: [{}]", containers.join(" "));
            if !init_containers.is_empty() {
                message.push_str(&format!(" or one of the init containers: [{}]", init_containers.join(" ")));
            }
            return Err(ApiError::bad_request(message));
        }
    };
    if flag(&params, "previous") {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    if let Some(reason) = waiting_reason(&pod, &container) {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    }
    let options = Options::parse(&params)?;
    let buffer = kubelet::logs(&shared, meta_str(&pod, "uid"), &container);
    let (lines, finished) = buffer.as_ref().map(|b| b.read_from(0)).unwrap_or((Vec::new(), true));
    let mut selected: Vec<&LogLine> = lines.iter().filter(|l| options.keep(l)).collect();
    if let Some(tail) = options.tail {
        selected.drain(..selected.len().saturating_sub(tail));
    }
    let mut budget = options.limit.unwrap_or(usize::MAX);
    let mut first = Vec::new();
    for line in selected {
        if budget == 0 {
            break;
        }
        let mut chunk = options.render(line);
        if chunk.len() > budget {
            chunk.truncate(budget);
        }
        budget -= chunk.len();
        first.extend_from_slice(&chunk);
    }
    let follow = flag(&params, "follow") && !finished && budget > 0;
    let Some(buffer) = buffer.filter(|_| follow) else {
        let mut response = Body::from(first).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return Ok(response);
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let mut next = lines.len();
    tokio::spawn(async move {
        if !first.is_empty() && tx.send(Bytes::from(first)).await.is_err() {
            return;
        }
        let mut progress = buffer.subscribe();
        loop {
            let (more, finished) = buffer.read_from(next);
            next += more.len();
            for line in more.iter().filter(|l| options.keep(l)) {
                let mut chunk = options.render(line);
                if chunk.len() > budget {
                    chunk.truncate(budget);
                }
                budget -= chunk.len();
                if tx.send(chunk).await.is_err() || budget == 0 {
                    return;
                }
            }
            if finished {
                return;
            }
            tokio::select! {
                changed = progress.changed() => if changed.is_err() { return },
                _ = tx.closed() => return,
            }
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok::<Bytes, std::convert::Infallible>(chunk), rx))
    }));
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

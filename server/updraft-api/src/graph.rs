//! `/api/updraft/dags/{dag_id}/graph`: the graph the web app draws (nodes with their
//! positions, edges with their bend points, external tables, layers:
//! `updraft_dag::export::graph_json`, the same JSON `updraft dags show --format json` prints)
//! with the task states of the DAG's latest run. The graph part is laid out and serialised once
//! per DAG version and kept in memory, with its deflate stream when clients accept gzip; only
//! the states are read (and compressed) on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE, VARY};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use updraft_types::DagId;

use crate::auth::Viewer;
use crate::error::ApiError;
use crate::extract::{ApiPath, accepts_gzip};
use crate::{AppState, dag_files, lookup};

/// The routes of this resource, merged into the app.
pub fn router() -> Router<AppState> {
    Router::new().route("/dags/{dag_id}/graph", get(graph))
}

/// The serialised graph JSON of the latest version of each DAG seen. Laying out a large DAG
/// takes a while (about a second at 100,000 tasks), and a DAG's drawing changes only with its
/// files, which give it a new version when the scheduler parses them.
#[derive(Debug, Default)]
pub(crate) struct GraphCache(Mutex<HashMap<String, (i32, Arc<CachedGraph>)>>);

/// A DAG's graph JSON without its closing brace (the run's fields follow it), and that prefix
/// compressed once.
#[derive(Debug)]
pub(crate) struct CachedGraph {
    open: String,
    gzip: gzip::Prefix,
}

impl GraphCache {
    fn get(&self, dag_id: &str, version: i32) -> Option<Arc<CachedGraph>> {
        let graphs = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        graphs.get(dag_id).filter(|(v, _)| *v == version).map(|(_, json)| Arc::clone(json))
    }

    /// Keeps `json` unless a newer version is already kept (a slow request finishing late).
    fn put(&self, dag_id: &str, version: i32, json: Arc<CachedGraph>) {
        let mut graphs = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if graphs.get(dag_id).is_none_or(|(v, _)| *v <= version) {
            graphs.insert(dag_id.to_owned(), (version, json));
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/updraft/dags/{dag_id}/graph",
    tag = "updraft",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
    ),
    responses(
        (status = 200, description = "nodes (with positions), edges (with bend points), layers, external tables and the latest run's states", body = Object),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn graph(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath(dag_id): ApiPath<DagId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let row = lookup::dag(&state, &dag_id).await?;
    let graph = match state.graphs().get(dag_id.as_str(), row.version) {
        Some(graph) => graph,
        None => {
            let loaded = dag_files::load(&row).await?;
            // The layout and the compression are CPU work: keep them off the async workers.
            let graph = tokio::task::spawn_blocking(move || {
                let mut text = serde_json::to_string(&updraft_dag::export::graph_json(&loaded.dag))
                    .map_err(|e| ApiError::Internal(format!("graph JSON: {e}")))?;
                if text.pop() != Some('}') {
                    return Err(ApiError::Internal("graph JSON is not an object".into()));
                }
                let gzip = gzip::Prefix::new(text.as_bytes());
                Ok(CachedGraph { open: text, gzip })
            })
            .await
            .map_err(|e| ApiError::Internal(format!("laying out a DAG: {e}")))??;
            let graph = Arc::new(graph);
            state.graphs().put(dag_id.as_str(), row.version, Arc::clone(&graph));
            graph
        }
    };
    let latest = state.db().list_runs(dag_id.as_str(), 1, 0).await?.into_iter().next();
    let (run, states) = match latest {
        Some(run) => {
            let states: Map<String, Value> = state
                .db()
                .task_instances(run.id)
                .await?
                .into_iter()
                .map(|t| (t.task_id.into_string(), json!(t.state.as_str())))
                .collect();
            (json!({ "dag_run_id": run.run_id, "state": run.state.as_str() }), states)
        }
        None => (Value::Null, Map::new()),
    };
    // The cached object, reopened to add the run's fields: no parse of a multi-megabyte JSON.
    let run = serde_json::to_string(&run).map_err(|e| ApiError::Internal(format!("graph JSON: {e}")))?;
    let states = serde_json::to_string(&states).map_err(|e| ApiError::Internal(format!("graph JSON: {e}")))?;
    let rest = format!(",\"latest_run\":{run},\"states\":{states}}}");
    if accepts_gzip(&headers) {
        let body = tokio::task::spawn_blocking(move || graph.gzip.finish(rest.as_bytes()))
            .await
            .map_err(|e| ApiError::Internal(format!("compressing a graph: {e}")))?;
        return Ok(([(CONTENT_TYPE, "application/json"), (CONTENT_ENCODING, "gzip"), (VARY, "accept-encoding")], body)
            .into_response());
    }
    let body = format!("{}{rest}", graph.open);
    Ok(([(CONTENT_TYPE, "application/json"), (VARY, "accept-encoding")], body).into_response())
}

/// gzip of a body whose long prefix is the same on every request: the prefix is deflated once,
/// at the best compression (it is paid once per DAG version), ending on a byte boundary without
/// closing the stream (a sync flush), and each request only deflates its own tail into a new
/// block and writes the trailer (the CRC of the whole body: the prefix's, combined with the
/// tail's).
mod gzip {
    use flate2::{Compress, Compression, Crc, FlushCompress};

    /// The gzip header: magic, deflate, no flags, no time, no extra flags, unknown OS.
    const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

    #[derive(Debug)]
    pub(crate) struct Prefix {
        deflated: Vec<u8>,
        crc: Crc,
    }

    fn deflate(compress: &mut Compress, input: &[u8], out: &mut Vec<u8>, flush: FlushCompress) {
        let mut offset = 0;
        loop {
            out.reserve(input.len().saturating_sub(offset) / 4 + 1024);
            let before = compress.total_in();
            // Only a full output buffer stops deflate early, and `reserve` made room.
            let status = compress.compress_vec(&input[offset..], out, flush);
            offset += (compress.total_in() - before) as usize;
            match status {
                Ok(flate2::Status::StreamEnd) => return,
                Ok(_) if offset >= input.len() && out.len() < out.capacity() => return,
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    impl Prefix {
        pub(crate) fn new(prefix: &[u8]) -> Prefix {
            let mut deflated = HEADER.to_vec();
            let mut compress = Compress::new(Compression::best(), false);
            deflate(&mut compress, prefix, &mut deflated, FlushCompress::Sync);
            let mut crc = Crc::new();
            crc.update(prefix);
            Prefix { deflated, crc }
        }

        /// The whole body, gzipped: the cached prefix, then `tail`.
        pub(crate) fn finish(&self, tail: &[u8]) -> Vec<u8> {
            let mut out = Vec::with_capacity(self.deflated.len() + tail.len() / 3 + 64);
            out.extend_from_slice(&self.deflated);
            let mut compress = Compress::new(Compression::default(), false);
            deflate(&mut compress, tail, &mut out, FlushCompress::Finish);
            let mut tail_crc = Crc::new();
            tail_crc.update(tail);
            let mut crc = Crc::new();
            crc.combine(&self.crc);
            crc.combine(&tail_crc);
            out.extend_from_slice(&crc.sum().to_le_bytes());
            out.extend_from_slice(&crc.amount().to_le_bytes());
            out
        }
    }

    #[cfg(test)]
    mod tests {
        use std::io::Read;

        use super::Prefix;

        #[test]
        fn a_cached_prefix_and_a_fresh_tail_make_one_gzip_body() {
            let prefix: String = (0..20_000).map(|i| format!("{{\"id\":\"t{i:05}\",\"x\":{}}},", i * 240)).collect();
            for tail in ["", "}", &"abc".repeat(50_000)] {
                let body = Prefix::new(prefix.as_bytes()).finish(tail.as_bytes());
                let mut text = String::new();
                flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut text).expect("valid gzip");
                assert_eq!(text, format!("{prefix}{tail}"));
                assert!(body.len() < (prefix.len() + tail.len()) / 3, "compressed: {} bytes", body.len());
            }
        }
    }
}

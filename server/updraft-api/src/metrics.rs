//! `/metrics`: the API server's request latencies in the Prometheus text format, one histogram
//! per method, route (the matched path template, so ids do not explode the label set) and status
//! class, recorded by a middleware around every route. Like `/monitor/health` it needs no
//! token: scrapers reach it from inside the cluster.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use updraft_metrics::{CONTENT_TYPE, Histogram, SECONDS_BUCKETS, escape_label, family};

use crate::AppState;

/// What a request is counted under: method, route, status class.
type Series = (String, String, &'static str);

/// Latency histograms by series.
#[derive(Debug, Default)]
pub struct RequestMetrics(Mutex<BTreeMap<Series, Arc<Histogram>>>);

impl RequestMetrics {
    fn histogram(&self, method: &str, route: &str, status: u16) -> Arc<Histogram> {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            map.entry((method.to_owned(), route.to_owned(), class))
                .or_insert_with(|| Arc::new(Histogram::new(SECONDS_BUCKETS))),
        )
    }

    fn render(&self, out: &mut String) {
        family(
            out,
            "updraft_api_request_duration_seconds",
            "histogram",
            "Time to answer an API request, by method, route and status class.",
        );
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for ((method, route, class), histogram) in map.iter() {
            let labels = format!("method=\"{method}\",route=\"{}\",status=\"{class}\"", escape_label(route));
            histogram.write(out, "updraft_api_request_duration_seconds", &labels);
        }
    }
}

/// Times every request. Routes no handler matched count as `unmatched`.
pub(crate) async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let response = next.run(request).await;
    state.request_metrics().histogram(&method, &route, response.status().as_u16()).observe(started.elapsed());
    response
}

pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    state.request_metrics().render(&mut out);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], out)
}

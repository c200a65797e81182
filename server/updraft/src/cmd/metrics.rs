//! The scheduler's small HTTP server (`--metrics-port`): `/health` for Kubernetes probes, 200
//! while the scheduler loop keeps turning, and `/metrics` in the Prometheus text format (the
//! scheduler's own metrics, then the kubernetes executor's pod counters when it runs); and the
//! StatsD push (`--statsd-address`) for setups that collect metrics that way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use updraft_executor_kubernetes::KubernetesExecutor;
use updraft_scheduler::metrics::{SchedulerMetrics, StatsdCounters};

/// A loop that has not ended for this long means the scheduler is stuck: restart it.
const STUCK_AFTER: Duration = Duration::from_secs(60);

pub fn router(metrics: Arc<SchedulerMetrics>, pods: Option<Arc<KubernetesExecutor>>) -> Router {
    let started = Instant::now();
    let for_health = Arc::clone(&metrics);
    Router::new()
        .route(
            "/health",
            get(move || {
                let metrics = Arc::clone(&for_health);
                async move {
                    let since = metrics.since_last_loop().unwrap_or_else(|| started.elapsed());
                    if since < STUCK_AFTER {
                        (StatusCode::OK, format!("ok: the scheduler loop last ended {:.1} s ago\n", since.as_secs_f64()))
                    } else {
                        let message = format!(
                            "stuck: the scheduler loop has not ended for {:.0} s (its database may be unreachable; see the scheduler's log)\n",
                            since.as_secs_f64()
                        );
                        (StatusCode::SERVICE_UNAVAILABLE, message)
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let (metrics, pods) = (Arc::clone(&metrics), pods.clone());
                async move {
                    let mut out = String::new();
                    metrics.render(&mut out);
                    if let Some(pods) = &pods {
                        pods.render_metrics(&mut out);
                    }
                    ([(header::CONTENT_TYPE, updraft_metrics::CONTENT_TYPE)], out).into_response()
                }
            }),
        )
}

/// Sends the metrics to the StatsD server `socket` is connected to, every `period`, in
/// datagrams of at most ~1,400 bytes (one MTU). A send that fails is logged, not fatal.
pub async fn push_statsd(socket: tokio::net::UdpSocket, metrics: Arc<SchedulerMetrics>, period: Duration) {
    let mut sent = StatsdCounters::default();
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        let mut datagram = String::new();
        for line in metrics.statsd_lines(&mut sent) {
            if !datagram.is_empty() && datagram.len() + line.len() + 1 > 1400 {
                send(&socket, &datagram).await;
                datagram.clear();
            }
            if !datagram.is_empty() {
                datagram.push('\n');
            }
            datagram.push_str(&line);
        }
        if !datagram.is_empty() {
            send(&socket, &datagram).await;
        }
    }
}

async fn send(socket: &tokio::net::UdpSocket, datagram: &str) {
    if let Err(error) = socket.send(datagram.as_bytes()).await {
        tracing::warn!(%error, "sending metrics to StatsD failed");
    }
}

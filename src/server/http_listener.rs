//! The HTTP listener beside gRPC, for what is not gRPC: providers' webhooks
//! (`POST /webhooks/{provider}`), Prometheus `/metrics`, and plain liveness and readiness checks
//! for tools that cannot speak gRPC health.

use crate::app::App;
use crate::app::webhooks::{MAX_BODY_BYTES, Verdict};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use std::sync::Arc;

/// The HTTP routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/webhooks/{provider}", post(webhook))
        .with_state(app)
}

/// One webhook delivery: verified, kept, answered with its verdict's status and label.
async fn webhook(
    State(app): State<Arc<App>>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> (StatusCode, String) {
    // Read at most the cap: a larger body is refused without being read to the end.
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES).await.ok();
    let verdict = app.receive_webhook(&provider, &headers, body.as_deref()).await;
    (status_of(verdict), format!("{}\n", verdict.label()))
}

/// The HTTP answer to a verdict: 2xx stops the provider's retries, 5xx asks for them, 4xx refuses.
fn status_of(verdict: Verdict) -> StatusCode {
    match verdict {
        Verdict::Accepted | Verdict::Duplicate => StatusCode::OK,
        Verdict::UnknownProvider => StatusCode::NOT_FOUND,
        Verdict::Oversized => StatusCode::PAYLOAD_TOO_LARGE,
        Verdict::Malformed => StatusCode::BAD_REQUEST,
        Verdict::MissingSignature
        | Verdict::WrongAlgorithm
        | Verdict::WrongType
        | Verdict::UnknownKey
        | Verdict::BadSignature
        | Verdict::Stale
        | Verdict::BodyMismatch => StatusCode::UNAUTHORIZED,
        Verdict::KeyUnavailable | Verdict::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Every metric, in the Prometheus text format.
async fn metrics() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::telemetry::metrics::render())
}

/// 200 when the database answers, 503 otherwise.
async fn ready(State(app): State<Arc<App>>) -> (StatusCode, &'static str) {
    // Bounded like the readiness probe: a probe that hangs is an outage, not a slow answer.
    match tokio::time::timeout(crate::server::readiness::PROBE_TIMEOUT, app.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n"),
    }
}

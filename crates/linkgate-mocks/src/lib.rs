//! Faithful mock servers of the upstream providers, for tests, demos and load tests: the same
//! paths, methods, headers, status codes, JSON shapes and token rules as the real APIs
//! (reference: docs/providers/; `[I]` marks a behaviour the provider does not publish, the
//! mock's reading), scriptable through an admin API. Run one as its own process with
//! `linkgate-mock <provider> --addr 127.0.0.1:PORT`, or in a test with `linkgate_mocks::deck::spawn`.
//!
//! Every mock shares the machinery of this module: the HTTP server (hyper, so a scripted fault can
//! drop a connection without answering), per-endpoint call counts, and scripted faults. The admin
//! API, under `/__admin/`:
//!
//! | request | effect |
//! |---|---|
//! | `POST /__admin/faults` with a [`FaultRule`] (or a list) | queue faults; each applies to the next `times` matching calls |
//! | `GET /__admin/faults` | the faults still queued |
//! | `DELETE /__admin/faults` | forget every queued fault |
//! | `GET /__admin/calls` | `{"total": N, "calls": {"/path": N, …}, "log": […], "traceparents": […]}`: calls received per endpoint (faulted ones included), the latest 100 of them as `"METHOD /path?query"` in order, and the latest 100 W3C `traceparent` headers received |
//! | `POST /__admin/reset` | forget faults and call counts |
//!
//! Fault rules, as JSON: `{"kind": "status", "status": 500, "times": 2, "path": "/link/connect"}`
//! (`path` optional: without it every endpoint matches; paths are the provider's, without the
//! base path), `{"kind": "delay", "delay_ms": 2000}` (then answers normally), `{"kind":
//! "rate_limit", "retry_after": 1}` (429 with `Retry-After`), `{"kind": "malformed"}` (200 with
//! broken JSON), `{"kind": "oversized", "bytes": 5242880}` (200 with a streamed body of that
//! size), `{"kind": "drop"}` (closes the connection without answering). `times` defaults to 1.
//! Each provider's mock adds its own admin routes (see its module).

pub mod catalogue;
pub mod deck;
pub mod jws;
pub mod moneykit;
pub mod vumi;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// One scripted fault and what it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// What happens.
    #[serde(flatten)]
    pub fault: Fault,
    /// Only calls to this endpoint (the provider's path, e.g. `/link/connect`); every endpoint
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// How many matching calls it applies to.
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

/// What a scripted fault does to a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer with this status and the provider's error body.
    Status {
        /// HTTP status.
        status: u16,
    },
    /// Wait, then answer normally.
    Delay {
        /// Milliseconds.
        delay_ms: u64,
    },
    /// 429 with `Retry-After`.
    RateLimit {
        /// Seconds.
        retry_after: u64,
    },
    /// 200 with a body that is not JSON.
    Malformed,
    /// 200 with a streamed body of `bytes` bytes (no `Content-Length`).
    Oversized {
        /// Body size.
        #[serde(default = "five_mebibytes")]
        bytes: usize,
    },
    /// Close the connection without answering.
    Drop,
}

fn five_mebibytes() -> usize {
    5 * 1024 * 1024
}

/// Parses a `--fault` flag: a [`FaultRule`] as JSON.
pub fn parse_fault(text: &str) -> Result<FaultRule, String> {
    serde_json::from_str(text)
        .map_err(|e| format!("not a fault rule ({e}); e.g. {{\"kind\":\"status\",\"status\":500}}"))
}

/// What a provider's mock tells the shared machinery.
pub(crate) struct Harness {
    /// The base path of the API (`/api/v1`); calls are counted by the path after it.
    api_prefix: &'static str,
    /// The provider's error body for a scripted status.
    error_body: fn(StatusCode) -> serde_json::Value,
    faults: Mutex<Vec<FaultRule>>,
    calls: Mutex<BTreeMap<String, u64>>,
    /// The latest calls, oldest first, as `METHOD /path?query`, so tests can see what a caller
    /// asked for (a cursor, a page).
    log: Mutex<VecDeque<String>>,
    /// The W3C `traceparent` of the latest calls that carried one, oldest first, so tests can
    /// see a caller's trace reach the provider.
    traceparents: Mutex<VecDeque<String>>,
}

/// How many calls and `traceparent` values the call report keeps.
const REPORT_KEPT: usize = 100;

impl Harness {
    pub(crate) fn new(
        api_prefix: &'static str,
        error_body: fn(StatusCode) -> serde_json::Value,
        faults: Vec<FaultRule>,
    ) -> Arc<Self> {
        Arc::new(Self {
            api_prefix,
            error_body,
            faults: Mutex::new(faults),
            calls: Mutex::default(),
            log: Mutex::default(),
            traceparents: Mutex::default(),
        })
    }

    /// Counts a call to `path` (logged as `line`) and takes the fault that applies to it, if any.
    fn record(&self, path: &str, line: String, traceparent: Option<&str>) -> Option<Fault> {
        *self.calls.lock().expect("calls lock").entry(path.to_owned()).or_default() += 1;
        keep_latest(&self.log, line);
        if let Some(traceparent) = traceparent {
            keep_latest(&self.traceparents, traceparent.to_owned());
        }
        let mut faults = self.faults.lock().expect("faults lock");
        let index = faults.iter().position(|rule| rule.times > 0 && rule.path.as_deref().is_none_or(|p| p == path))?;
        let rule = &mut faults[index];
        rule.times -= 1;
        let fault = rule.fault.clone();
        if rule.times == 0 {
            faults.remove(index);
        }
        Some(fault)
    }

    fn calls_report(&self) -> serde_json::Value {
        let calls = self.calls.lock().expect("calls lock").clone();
        let log = self.log.lock().expect("log lock").clone();
        let traceparents = self.traceparents.lock().expect("traceparents lock").clone();
        serde_json::json!({
            "total": calls.values().sum::<u64>(), "calls": calls, "log": log, "traceparents": traceparents,
        })
    }
}

/// Appends `item` to `kept`, dropping the oldest beyond [`REPORT_KEPT`].
fn keep_latest(kept: &Mutex<VecDeque<String>>, item: String) {
    let mut kept = kept.lock().expect("call report lock");
    if kept.len() == REPORT_KEPT {
        kept.pop_front();
    }
    kept.push_back(item);
}

/// The client a mock delivers webhooks with: plain HTTP to linkgate on loopback, no redirects.
/// Its TLS set-up trusts no root, since a delivery never leaves the machine.
pub(crate) fn webhook_client() -> reqwest::Client {
    let tls =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("the webhook client builds")
}

/// The admin routes every mock has.
pub(crate) fn admin_routes(harness: Arc<Harness>) -> Router {
    Router::new()
        .route("/__admin/faults", post(add_faults).get(list_faults).delete(clear_faults))
        .route("/__admin/calls", get(|State(h): State<Arc<Harness>>| async move { axum::Json(h.calls_report()) }))
        .route(
            "/__admin/reset",
            post(|State(h): State<Arc<Harness>>| async move {
                h.faults.lock().expect("faults lock").clear();
                h.calls.lock().expect("calls lock").clear();
                h.log.lock().expect("log lock").clear();
                h.traceparents.lock().expect("traceparents lock").clear();
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(harness)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<FaultRule>),
    One(FaultRule),
}

async fn add_faults(State(harness): State<Arc<Harness>>, body: Bytes) -> Response<Body> {
    let rules = match serde_json::from_slice::<OneOrMany>(&body) {
        Ok(OneOrMany::One(rule)) => vec![rule],
        Ok(OneOrMany::Many(rules)) => rules,
        Err(error) => return (StatusCode::BAD_REQUEST, format!("not a fault rule: {error}\n")).into_response(),
    };
    let queued = rules.len();
    harness.faults.lock().expect("faults lock").extend(rules);
    axum::Json(serde_json::json!({ "queued": queued })).into_response()
}

async fn list_faults(State(harness): State<Arc<Harness>>) -> axum::Json<Vec<FaultRule>> {
    axum::Json(harness.faults.lock().expect("faults lock").clone())
}

async fn clear_faults(State(harness): State<Arc<Harness>>) -> StatusCode {
    harness.faults.lock().expect("faults lock").clear();
    StatusCode::NO_CONTENT
}

/// A running mock. Stops when dropped (or with [`MockServer::stop`]).
pub struct MockServer {
    addr: SocketAddr,
    api_prefix: &'static str,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MockServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's base URL, as a provider's `BASE_URL` setting takes it (`http://ADDR/api/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.addr, self.api_prefix)
    }

    /// The admin API's root (`http://ADDR/__admin`).
    pub fn admin_url(&self) -> String {
        format!("http://{}/__admin", self.addr)
    }

    /// Stops accepting, closes open connections and waits for the server to end.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Runs until `signal` resolves, then stops.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        self.stop().await;
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The error hyper sees when a scripted fault drops the connection: it closes the connection
/// without writing a response.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("scripted fault: connection dropped")
    }
}

impl std::error::Error for DropConnection {}

/// Serves `router` (the provider's API and admin routes) on `listener`, with the harness's call
/// counting and faults in front of every API call.
pub(crate) fn serve(listener: TcpListener, harness: Arc<Harness>, router: Router) -> std::io::Result<MockServer> {
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let api_prefix = harness.api_prefix;
    let task = {
        let stop = stop.clone();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = stop.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(error) => {
                            tracing::warn!(error = %error, "mock: accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let (harness, router, stop) = (harness.clone(), router.clone(), stop.clone());
                // Each connection ends with the server: `stop` closes it.
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let (harness, router) = (harness.clone(), router.clone());
                        async move { handle(&harness, router, request.map(Body::new)).await }
                    });
                    let connection =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = connection => {}
                        _ = stop.cancelled() => {}
                    }
                });
            }
        })
    };
    Ok(MockServer { addr, api_prefix, stop, task: Some(task) })
}

async fn handle(harness: &Harness, router: Router, request: Request<Body>) -> Result<Response<Body>, DropConnection> {
    let path = request.uri().path().to_owned();
    // A mock at the host root (MoneyKit) has its admin API beside its own: neither counted nor faulted.
    let api_path = path.strip_prefix(harness.api_prefix).filter(|p| p.starts_with('/') && !p.starts_with("/__admin/"));
    if let Some(api_path) = api_path {
        let traceparent = request.headers().get("traceparent").and_then(|value| value.to_str().ok());
        let line = match request.uri().query() {
            Some(query) => format!("{} {api_path}?{query}", request.method()),
            None => format!("{} {api_path}", request.method()),
        };
        match harness.record(api_path, line, traceparent) {
            None => {}
            Some(Fault::Delay { delay_ms }) => tokio::time::sleep(Duration::from_millis(delay_ms)).await,
            Some(Fault::Drop) => {
                tracing::debug!(path = api_path, "mock: scripted drop");
                return Err(DropConnection);
            }
            Some(Fault::Status { status }) => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return Ok((status, axum::Json((harness.error_body)(status))).into_response());
            }
            Some(Fault::RateLimit { retry_after }) => {
                let mut response =
                    (StatusCode::TOO_MANY_REQUESTS, axum::Json((harness.error_body)(StatusCode::TOO_MANY_REQUESTS)))
                        .into_response();
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                return Ok(response);
            }
            Some(Fault::Malformed) => {
                return Ok((
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    "{\"status\": \"Connected\", \"access_token\": ",
                )
                    .into_response());
            }
            Some(Fault::Oversized { bytes }) => return Ok(oversized(bytes)),
        }
    }
    let response = router.oneshot(request).await.unwrap_or_else(|never| match never {});
    tracing::debug!(path = %path, status = response.status().as_u16(), "mock: answered");
    Ok(response)
}

/// A 200 whose JSON-looking body streams `bytes` bytes without announcing its length.
fn oversized(bytes: usize) -> Response<Body> {
    const CHUNK: usize = 64 * 1024;
    let mut remaining = bytes;
    let chunks = std::iter::from_fn(move || {
        (remaining > 0).then(|| {
            let size = remaining.min(CHUNK);
            remaining -= size;
            Ok::<_, std::convert::Infallible>(Bytes::from(vec![b' '; size]))
        })
    });
    let body = Body::from_stream(futures::stream::iter(
        std::iter::once(Ok(Bytes::from_static(b"{\"padding\": \""))).chain(chunks),
    ));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("a static response builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_rules_read_as_documented() {
        let rule = parse_fault(r#"{"kind":"status","status":500,"times":2,"path":"/link/connect"}"#).unwrap();
        assert_eq!(
            rule,
            FaultRule { fault: Fault::Status { status: 500 }, path: Some("/link/connect".into()), times: 2 }
        );
        assert_eq!(parse_fault(r#"{"kind":"drop"}"#).unwrap().times, 1);
        assert_eq!(parse_fault(r#"{"kind":"oversized"}"#).unwrap().fault, Fault::Oversized { bytes: 5 * 1024 * 1024 });
        assert!(parse_fault(r#"{"kind":"explode"}"#).is_err());
    }

    #[test]
    fn faults_apply_to_matching_calls_in_order_and_run_out() {
        let harness = Harness::new("/api", |_| serde_json::json!({}), Vec::new());
        harness.faults.lock().unwrap().extend([
            FaultRule { fault: Fault::Drop, path: Some("/b".into()), times: 1 },
            FaultRule { fault: Fault::Status { status: 503 }, path: None, times: 2 },
        ]);
        assert_eq!(harness.record("/a", "GET /a".into(), None), Some(Fault::Status { status: 503 }));
        assert_eq!(harness.record("/b", "GET /b".into(), Some("00-t-p-01")), Some(Fault::Drop));
        assert_eq!(harness.record("/b", "GET /b?page=2".into(), None), Some(Fault::Status { status: 503 }));
        assert_eq!(harness.record("/b", "POST /b".into(), None), None);
        assert_eq!(
            harness.calls_report(),
            serde_json::json!({
                "total": 4, "calls": {"/a": 1, "/b": 3}, "log": ["GET /a", "GET /b", "GET /b?page=2", "POST /b"],
                "traceparents": ["00-t-p-01"],
            })
        );
    }
}

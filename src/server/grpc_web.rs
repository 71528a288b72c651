//! gRPC-Web on the gRPC port, so browsers (`@connectrpc/connect-web`, grpc-web) call linkgate
//! without a proxy: tonic-web translates each gRPC-Web request into gRPC before the admission and
//! auth layers see it, and its answer back, so keys, scopes, limits, metrics and errors are those
//! of gRPC. Unary calls and server streams work; the contract has no client streams.
//!
//! Which web pages may call is CORS, answered here for the origins
//! `LINKGATE_GRPC_WEB_ALLOWED_ORIGINS` lists (none by default, so a page elsewhere cannot reach a
//! loopback linkgate in dev mode). Calls carry their key in `authorization`, never in cookies, so
//! credentials mode stays off.

use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may reuse a preflight's answer (Chromium caps it at two hours).
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(2 * 3600);

/// The request headers gRPC-Web clients send: the content type and its marker, the client's
/// user agent, the key, the deadline, the caller's request id and trace context.
const ALLOWED_HEADERS: [&str; 6] =
    ["x-grpc-web", "x-user-agent", "grpc-timeout", linkgate_client::REQUEST_ID_HEADER, "traceparent", "tracestate"];

/// The response headers a page's client must read: a trailers-only answer's status and its
/// details (ErrorInfo and the rest), and the request id to quote. The other trailers travel in
/// the body, where CORS does not hide them.
const EXPOSED_HEADERS: [&str; 4] =
    ["grpc-status", "grpc-message", "grpc-status-details-bin", linkgate_client::REQUEST_ID_HEADER];

/// CORS for gRPC-Web calls from pages of `origins`: a preflight from any other origin is answered
/// without `Access-Control-Allow-Origin`, so the browser never sends the call.
pub fn cors(origins: &[HeaderValue]) -> CorsLayer {
    let names = |names: &[&'static str]| names.iter().map(|name| HeaderName::from_static(name)).collect::<Vec<_>>();
    let mut allowed = names(&ALLOWED_HEADERS);
    allowed.extend([CONTENT_TYPE, AUTHORIZATION]);
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([Method::POST])
        .allow_headers(allowed)
        .expose_headers(names(&EXPOSED_HEADERS))
        .max_age(PREFLIGHT_MAX_AGE)
}

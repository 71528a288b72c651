//! The one HTTP client every provider adapter calls its upstream through.
//!
//! It owns what adapters must not each get slightly wrong:
//!
//! - **Bounded time.** A connect timeout, a timeout per attempt, and a deadline per call (the
//!   earliest of the adapter's call budget, an explicit [`UpstreamRequest::deadline`] and the
//!   gRPC caller's, set for the whole call with [`within`] without changing the provider trait).
//! - **Correlation.** Every attempt carries linkgate's own `x-request-id` (one per attempt) and
//!   a W3C `traceparent` (the caller's, or the attempt's own span's when traces are exported);
//!   adapters send the caller's request id under the provider's own trace header
//!   ([`caller_request_id`]). Each attempt is a CLIENT trace span
//!   ([`crate::telemetry::http_client`]) named by the path template the adapter gives
//!   ([`UpstreamRequest::template`]), never by the URL, whose path carries ids and tokens.
//! - **Retries that cannot make things worse.** Up to `max_attempts` attempts on 5xx, 429,
//!   timeouts and dropped connections, with exponential backoff and full jitter, never on other
//!   4xx. `Retry-After` (delay-seconds or an HTTP date; a date already past means now) is honoured
//!   when it fits the deadline and the cap; otherwise the call gives up at once and hands the
//!   delay to its caller. Requests that are not idempotent
//!   upstream ([`Retry::OnlyUnprocessed`]: submitting credentials, answering MFA) are retried only
//!   when the upstream cannot have processed them: the connection was never made, 429, 503.
//! - **Bounded answers.** Bodies above `max_body_bytes` are refused unread past the cap; an
//!   oversized, truncated or malformed answer is [`ProviderError::Protocol`], never a panic.
//! - **No surprises.** No redirects (a 3xx is a protocol error), TLS verified against the Mozilla
//!   roots with rustls and ring, no cookies.
//! - **Masked logs.** One event per attempt (`provider`, `operation`, `http.status`,
//!   `latency_ms`, `attempt`, `call_id`, `upstream_request_id`, `outcome`) under the
//!   `linkgate::upstream` target. Bodies, headers, URLs' secrets and upstream error texts are
//!   never logged; secret headers are exposed only while the request is built and are marked
//!   sensitive.
//!
//! Classification: 2xx and the 4xx other than 429 come back as an [`UpstreamReply`] for the
//! adapter to parse (its own error table reads the 4xx bodies); 5xx, timeouts and connection
//! failures end as [`ProviderError::Unavailable`], 429 as [`ProviderError::RateLimited`], both
//! with the upstream's `Retry-After` when it sent one.

use super::ProviderError;
use crate::telemetry::http_client::{self, Attempt};
use bytes::{Bytes, BytesMut};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tracing::Instrument;

/// The tracing target of upstream call events.
pub const LOG_TARGET: &str = "linkgate::upstream";
/// Largest upstream answer read, by default.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// How long establishing a connection (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest `Retry-After` believed; larger values are clamped before being passed on.
const RETRY_AFTER_CEILING: Duration = Duration::from_secs(3600);
/// The header carrying linkgate's id for each attempt, so upstream support can find the call.
const CALL_ID_HEADER: &str = "x-request-id";
/// Headers an upstream may name its own request id in, tried in order.
const UPSTREAM_REQUEST_ID_HEADERS: [&str; 4] = ["x-request-id", "x-correlation-id", "request-id", "x-amzn-requestid"];

/// The process-wide HTTP client: one connection pool for every adapter. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
}

impl HttpClient {
    /// The client shared by every adapter of this process, built on first use.
    pub fn shared() -> Result<Self, String> {
        static SHARED: OnceLock<Result<HttpClient, String>> = OnceLock::new();
        SHARED.get_or_init(|| Self::new(CONNECT_TIMEOUT).map_err(|e| format!("{e:#}"))).clone()
    }

    /// A client with its own pool: TLS verified against the Mozilla roots, no redirects, no proxy
    /// from the environment unless `HTTPS_PROXY`/`HTTP_PROXY` say so.
    pub fn new(connect_timeout: Duration) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let inner = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("linkgate/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { inner })
    }
}

/// How hard to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (at least 1).
    pub max_attempts: u32,
    /// Backoff before the second attempt, doubled for each later one (then jittered).
    pub base_delay: Duration,
    /// Most backoff between two attempts.
    pub max_delay: Duration,
    /// Longest `Retry-After` waited for inside one call; longer ones end the call.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(5),
        }
    }
}

/// One adapter's way of calling its upstream.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Provider id, for the logs.
    pub provider: &'static str,
    /// Longest one attempt may take.
    pub attempt_timeout: Duration,
    /// Longest one call may take, retries included, when nothing shorter is asked for.
    pub call_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Largest answer read.
    pub max_body_bytes: usize,
}

impl UpstreamConfig {
    /// The usual configuration: an adapter's timeouts and attempts, the default backoff and
    /// size cap.
    pub fn new(provider: &'static str, attempt_timeout: Duration, call_timeout: Duration, max_attempts: u32) -> Self {
        Self {
            provider,
            attempt_timeout,
            call_timeout,
            retry: RetryPolicy { max_attempts: max_attempts.max(1), ..RetryPolicy::default() },
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// An adapter's handle on the shared client.
#[derive(Debug, Clone)]
pub struct Upstream {
    http: HttpClient,
    config: UpstreamConfig,
}

/// Whether a request may be sent again after an attempt whose fate upstream is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Repeating it is harmless: retry every transient failure.
    Idempotent,
    /// Repeating it may act twice (a second login attempt): retry only when the upstream cannot
    /// have processed it (no connection, 429, 503).
    OnlyUnprocessed,
}

enum Header {
    Plain(HeaderValue),
    Secret(SecretString),
}

/// One upstream call, before it is sent. Its body and secret headers never appear in `Debug`.
pub struct UpstreamRequest {
    operation: &'static str,
    method: Method,
    url: Url,
    template: Option<Cow<'static, str>>,
    headers: Vec<(HeaderName, Header)>,
    body: Option<Bytes>,
    retry: Retry,
    deadline: Option<Instant>,
}

impl std::fmt::Debug for UpstreamRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamRequest")
            .field("operation", &self.operation)
            .field("method", &self.method)
            .field("template", &self.template)
            .field("headers", &self.headers.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl UpstreamRequest {
    fn new(operation: &'static str, method: Method, url: Url) -> Self {
        Self {
            operation,
            method,
            url,
            template: None,
            headers: Vec::new(),
            body: None,
            retry: Retry::Idempotent,
            deadline: None,
        }
    }

    /// A GET of `url` (put query parameters on the URL). `operation` names the call in logs.
    pub fn get(operation: &'static str, url: Url) -> Self {
        Self::new(operation, Method::GET, url)
    }

    /// A DELETE of `url`.
    pub fn delete(operation: &'static str, url: Url) -> Self {
        Self::new(operation, Method::DELETE, url)
    }

    /// A POST without a body (commands addressed entirely by their path).
    pub fn post(operation: &'static str, url: Url) -> Self {
        Self::new(operation, Method::POST, url)
    }

    /// A POST of `body` as JSON to `url`.
    pub fn post_json(operation: &'static str, url: Url, body: &impl Serialize) -> Result<Self, ProviderError> {
        let body = serde_json::to_vec(body).map_err(|_| unserializable(operation))?;
        Ok(Self::post(operation, url).with_body("application/json", body))
    }

    /// A PATCH of `body` as JSON (a partial update).
    pub fn patch_json(operation: &'static str, url: Url, body: &impl Serialize) -> Result<Self, ProviderError> {
        let body = serde_json::to_vec(body).map_err(|_| unserializable(operation))?;
        Ok(Self::new(operation, Method::PATCH, url).with_body("application/json", body))
    }

    /// A POST of `fields` form-encoded (`application/x-www-form-urlencoded`), as OAuth2 token
    /// endpoints expect.
    pub fn post_form(operation: &'static str, url: Url, fields: &[(&str, &str)]) -> Self {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        Self::post(operation, url).with_body("application/x-www-form-urlencoded", body.into_bytes())
    }

    fn with_body(mut self, content_type: &'static str, body: Vec<u8>) -> Self {
        self.headers.push((CONTENT_TYPE, Header::Plain(HeaderValue::from_static(content_type))));
        self.body = Some(Bytes::from(body));
        self
    }

    /// Adds a header whose value is not secret.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, Header::Plain(value)));
        self
    }

    /// Adds a header whose value is secret: exposed only while each attempt is built, marked
    /// sensitive, never logged.
    pub fn secret_header(mut self, name: HeaderName, value: &SecretString) -> Self {
        self.headers.push((name, Header::Secret(value.clone())));
        self
    }

    /// Names the URL's path template relative to the provider's base URL, every id and token a
    /// `{placeholder}` (`/links/{link_id}`): the attempts' trace spans are named by it, as they
    /// must never record the URL itself.
    pub fn template(mut self, template: impl Into<Cow<'static, str>>) -> Self {
        self.template = Some(template.into());
        self
    }

    /// Sets the retry rule (default [`Retry::Idempotent`]).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Ends the call at `deadline` at the latest.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    fn build(&self, client: &reqwest::Client, timeout: Duration, call_id: &str) -> Result<reqwest::Request, String> {
        let mut headers = HeaderMap::with_capacity(self.headers.len() + 2);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(
            HeaderName::from_static(CALL_ID_HEADER),
            HeaderValue::from_str(call_id).map_err(|e| e.to_string())?,
        );
        // Validated where it came in; a value HTTP cannot carry is dropped, not fatal.
        let traceparent = crate::telemetry::outgoing_traceparent(ambient_traceparent());
        if let Some(value) = traceparent.and_then(|value| HeaderValue::from_str(&value).ok()) {
            headers.insert(HeaderName::from_static("traceparent"), value);
        }
        for (name, value) in &self.headers {
            let value = match value {
                Header::Plain(value) => value.clone(),
                Header::Secret(secret) => {
                    let mut value = HeaderValue::from_str(secret.expose_secret())
                        .map_err(|_| format!("the {name} header value is not valid in HTTP"))?;
                    value.set_sensitive(true);
                    value
                }
            };
            headers.insert(name.clone(), value);
        }
        let mut builder = client.request(self.method.clone(), self.url.clone()).headers(headers).timeout(timeout);
        if let Some(body) = &self.body {
            builder = builder.body(body.clone());
        }
        builder.build().map_err(|_| "the request could not be built".to_owned())
    }
}

fn unserializable(operation: &str) -> ProviderError {
    ProviderError::Protocol { detail: format!("{operation}: the request body did not serialize") }
}

/// An answer the adapter reads: a 2xx, or a 4xx other than 429 for its error table.
#[derive(Clone)]
pub struct UpstreamReply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body, at most `max_body_bytes`.
    pub body: Bytes,
    /// The upstream's id for the request, when it sent one.
    pub request_id: Option<String>,
    operation: &'static str,
}

impl std::fmt::Debug for UpstreamReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamReply")
            .field("operation", &self.operation)
            .field("status", &self.status)
            .field("body_bytes", &self.body.len())
            .field("request_id", &self.request_id)
            .finish()
    }
}

impl UpstreamReply {
    /// Whether the upstream answered 2xx.
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body as `T`; a body that is not that JSON is a protocol error whose detail says where
    /// parsing stopped, never what the body held.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ProviderError> {
        parse_json(self.operation, &self.body)
    }
}

/// Parses `body` as `T` for `operation`; failures are [`ProviderError::Protocol`] without body text.
pub fn parse_json<T: DeserializeOwned>(operation: &str, body: &[u8]) -> Result<T, ProviderError> {
    serde_json::from_slice(body).map_err(|error| ProviderError::Protocol {
        detail: format!(
            "{operation}: {} JSON answer (line {}, column {})",
            match error.classify() {
                serde_json::error::Category::Io | serde_json::error::Category::Syntax => "malformed",
                serde_json::error::Category::Data => "unexpected",
                serde_json::error::Category::Eof => "truncated",
            },
            error.line(),
            error.column()
        ),
    })
}

/// What the gRPC call on whose behalf upstream calls are made tells them: when to give up, and
/// how to correlate them with the caller's request and trace.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The caller's deadline; no upstream call inside the call outlives it.
    pub deadline: Option<Instant>,
    /// linkgate's request id of the call, for providers that take a client trace id.
    pub request_id: Option<String>,
    /// The caller's W3C `traceparent`, sent on to every provider unchanged unless traces are
    /// exported (then the attempt's own span is the parent).
    pub traceparent: Option<String>,
}

tokio::task_local! {
    static CALL_CONTEXT: CallContext;
}

/// Runs `future` with every upstream call inside it bound by `context` (the gRPC layer wraps each
/// request's work in this, so neither deadlines nor trace context need threading through the
/// provider trait). Nested contexts keep the earlier deadline.
pub async fn within<F: Future>(mut context: CallContext, future: F) -> F::Output {
    if let Ok(Some(outer)) = CALL_CONTEXT.try_with(|outer| outer.deadline) {
        context.deadline = Some(context.deadline.map_or(outer, |inner| inner.min(outer)));
    }
    CALL_CONTEXT.scope(context, future).await
}

/// The request id of the gRPC call being served, if any (adapters send it as the provider's
/// client trace id header).
pub fn caller_request_id() -> Option<String> {
    CALL_CONTEXT.try_with(|context| context.request_id.clone()).ok().flatten()
}

fn ambient_deadline() -> Option<Instant> {
    CALL_CONTEXT.try_with(|context| context.deadline).ok().flatten()
}

fn ambient_traceparent() -> Option<String> {
    CALL_CONTEXT.try_with(|context| context.traceparent.clone()).ok().flatten()
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// An answer, read in full.
    Answer { status: StatusCode, retry_after: Option<Duration> },
    /// No connection could be made: the request never left.
    Connect,
    /// The attempt's time ran out; the upstream may have processed the request.
    Timeout,
    /// The connection broke after the request was sent, before a full answer.
    Interrupted,
    /// The answer was larger than the cap.
    TooLarge,
    /// The request could not be built (a header value that HTTP cannot carry).
    Unbuildable(String),
}

/// What to do after an attempt.
#[derive(Debug)]
#[cfg_attr(test, derive(PartialEq, Eq))]
enum Verdict {
    /// Hand the answer to the adapter.
    Accept,
    /// Try again if attempts and time allow; otherwise end with `error`.
    Retry { error: ProviderError, retry_after: Option<Duration> },
    /// End the call with `error`.
    Fail(ProviderError),
}

#[cfg(test)]
impl PartialEq for ProviderError {
    fn eq(&self, other: &Self) -> bool {
        use ProviderError as E;
        match (self, other) {
            (E::Unavailable { retry_after: a }, E::Unavailable { retry_after: b })
            | (E::RateLimited { retry_after: a }, E::RateLimited { retry_after: b }) => a == b,
            (E::Rejected { detail: a }, E::Rejected { detail: b })
            | (E::Protocol { detail: a }, E::Protocol { detail: b }) => a == b,
            (E::Unsupported(a), E::Unsupported(b)) => a == b,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

#[cfg(test)]
impl Eq for ProviderError {}

/// The one classification of attempts.
fn verdict(operation: &str, outcome: &Outcome, retry: Retry) -> Verdict {
    let unprocessed_only = retry == Retry::OnlyUnprocessed;
    let unavailable = |retry_after| ProviderError::Unavailable { retry_after };
    match outcome {
        Outcome::Answer { status, retry_after } => {
            let retry_after = *retry_after;
            if status.is_success() || (status.is_client_error() && *status != StatusCode::TOO_MANY_REQUESTS) {
                Verdict::Accept
            } else if *status == StatusCode::TOO_MANY_REQUESTS {
                Verdict::Retry { error: ProviderError::RateLimited { retry_after }, retry_after }
            } else if *status == StatusCode::SERVICE_UNAVAILABLE || (status.is_server_error() && !unprocessed_only) {
                Verdict::Retry { error: unavailable(retry_after), retry_after }
            } else if status.is_server_error() {
                Verdict::Fail(unavailable(retry_after))
            } else if status.is_redirection() {
                Verdict::Fail(ProviderError::Protocol { detail: format!("{operation}: refused a redirect ({status})") })
            } else {
                Verdict::Fail(ProviderError::Protocol { detail: format!("{operation}: unexpected status {status}") })
            }
        }
        Outcome::Connect => Verdict::Retry { error: unavailable(None), retry_after: None },
        Outcome::Timeout | Outcome::Interrupted if unprocessed_only => Verdict::Fail(unavailable(None)),
        Outcome::Timeout | Outcome::Interrupted => Verdict::Retry { error: unavailable(None), retry_after: None },
        Outcome::TooLarge => Verdict::Fail(ProviderError::Protocol {
            detail: format!("{operation}: the answer is larger than the size cap"),
        }),
        Outcome::Unbuildable(why) => Verdict::Fail(ProviderError::Protocol { detail: format!("{operation}: {why}") }),
    }
}

/// Full-jitter exponential backoff before attempt `attempt + 1`: a uniform pick (`unit` in
/// [0, 1)) between zero and `base * 2^(attempt - 1)`, capped at `max_delay`.
fn backoff(policy: &RetryPolicy, attempt: u32, unit: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    let ceiling = policy.base_delay.saturating_mul(1 << exponent).min(policy.max_delay);
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

/// How long to wait before the next attempt, or `None` when the call should end now: attempts
/// are used up, the upstream asked for more than the cap, or the wait would pass the deadline.
fn next_wait(
    policy: &RetryPolicy,
    attempt: u32,
    retry_after: Option<Duration>,
    unit: f64,
    now: Instant,
    deadline: Instant,
) -> Option<Duration> {
    if attempt >= policy.max_attempts {
        return None;
    }
    let wait = match retry_after {
        Some(asked) if asked > policy.max_retry_after => return None,
        Some(asked) => asked,
        None => backoff(policy, attempt, unit),
    };
    // Leave room for the next attempt to do something.
    (now + wait + Duration::from_millis(10) < deadline).then_some(wait)
}

/// `Retry-After` (RFC 9110 §10.2.3) as a delay from `now`: delay-seconds, or an HTTP date (the
/// IMF-fixdate, and the obsolete RFC 850 and asctime forms a recipient must also read), a date
/// already past meaning no delay. Both are clamped to [`RETRY_AFTER_CEILING`]; garbage is ignored
/// (backoff applies).
fn parse_retry_after(value: Option<&HeaderValue>, now: SystemTime) -> Option<Duration> {
    let text = value?.to_str().ok()?.trim();
    let delay = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(text).ok()?.duration_since(now).unwrap_or(Duration::ZERO),
    };
    Some(delay.min(RETRY_AFTER_CEILING))
}

fn upstream_request_id(headers: &HeaderMap) -> Option<String> {
    UPSTREAM_REQUEST_ID_HEADERS.iter().find_map(|name| {
        let value = headers.get(*name)?.to_str().ok()?;
        // Ids are short tokens; anything else is not worth logging.
        (value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic())).then(|| value.to_owned())
    })
}

impl Upstream {
    /// An adapter's view of the shared client.
    pub fn new(http: HttpClient, config: UpstreamConfig) -> Self {
        Self { http, config }
    }

    /// The adapter's settings.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Sends `request`, retrying as the module documentation says, and returns a 2xx or a
    /// non-429 4xx answer for the adapter to read.
    pub async fn send(&self, request: UpstreamRequest) -> Result<UpstreamReply, ProviderError> {
        let started = Instant::now();
        let deadline = [Some(started + self.config.call_timeout), request.deadline, ambient_deadline()]
            .into_iter()
            .flatten()
            .min()
            .expect("the call budget is always there");
        let call_id = uuid::Uuid::now_v7().to_string();
        let max_attempts = self.config.retry.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let now = Instant::now();
            if now >= deadline {
                self.log_gave_up(&request, &call_id, attempt - 1, started, "deadline passed before the attempt");
                return Err(ProviderError::Unavailable { retry_after: None });
            }
            let timeout = self.config.attempt_timeout.min(deadline - now);
            let span = http_client::attempt_span(&Attempt {
                provider: self.config.provider,
                operation: request.operation,
                method: request.method.as_str(),
                url: &request.url,
                template: request.template.as_deref(),
                number: attempt,
            });
            let (outcome, answer) = self.attempt(&request, timeout, &call_id).instrument(span.clone()).await;
            let latency = now.elapsed();
            match &outcome {
                Outcome::Answer { status, .. } => http_client::record_answer(&span, status.as_u16()),
                failure => http_client::record_failure(&span, error_type(failure)),
            }
            let verdict = verdict(request.operation, &outcome, request.retry);
            let wait = match &verdict {
                Verdict::Retry { retry_after, .. } => {
                    let policy = RetryPolicy { max_attempts, ..self.config.retry.clone() };
                    next_wait(&policy, attempt, *retry_after, rand::random::<f64>(), Instant::now(), deadline)
                }
                Verdict::Accept | Verdict::Fail(_) => None,
            };
            let result = match (&verdict, wait) {
                (Verdict::Accept, _) => "accepted",
                (Verdict::Fail(_), _) => "failed",
                (Verdict::Retry { .. }, Some(_)) => "retrying",
                (Verdict::Retry { .. }, None) => "gave up",
            };
            let request_id = answer.as_ref().and_then(|a| a.request_id.as_deref());
            span.in_scope(|| self.log_attempt(&request, &call_id, attempt, latency, &outcome, request_id, result));
            match verdict {
                Verdict::Accept => return Ok(answer.expect("an accepted outcome carries its answer")),
                Verdict::Fail(error) => return Err(error),
                Verdict::Retry { error, .. } => match wait {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => return Err(error),
                },
            }
        }
    }

    /// One attempt, bounded by `timeout` from connecting to the last byte of the answer.
    async fn attempt(
        &self,
        request: &UpstreamRequest,
        timeout: Duration,
        call_id: &str,
    ) -> (Outcome, Option<UpstreamReply>) {
        let built = match request.build(&self.http.inner, timeout, call_id) {
            Ok(built) => built,
            Err(why) => return (Outcome::Unbuildable(why), None),
        };
        let exchange = async {
            let mut response = match self.http.inner.execute(built).await {
                Ok(response) => response,
                Err(error) if error.is_timeout() => return (Outcome::Timeout, None),
                Err(error) if error.is_connect() => return (Outcome::Connect, None),
                Err(_) => return (Outcome::Interrupted, None),
            };
            let status = response.status();
            let retry_after = parse_retry_after(response.headers().get(RETRY_AFTER), SystemTime::now());
            let request_id = upstream_request_id(response.headers());
            let cap = self.config.max_body_bytes;
            if response.content_length().is_some_and(|length| length > cap as u64) {
                return (Outcome::TooLarge, None);
            }
            let mut body = BytesMut::new();
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) if body.len() + chunk.len() > cap => return (Outcome::TooLarge, None),
                    Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                    Ok(None) => break,
                    Err(error) if error.is_timeout() => return (Outcome::Timeout, None),
                    Err(_) => return (Outcome::Interrupted, None),
                }
            }
            let reply = UpstreamReply { status, body: body.freeze(), request_id, operation: request.operation };
            (Outcome::Answer { status, retry_after }, Some(reply))
        };
        // reqwest's own timeout covers the same span; this one also bounds a stalled body read.
        tokio::time::timeout(timeout, exchange).await.unwrap_or((Outcome::Timeout, None))
    }

    #[allow(clippy::too_many_arguments)]
    fn log_attempt(
        &self,
        request: &UpstreamRequest,
        call_id: &str,
        attempt: u32,
        latency: Duration,
        outcome: &Outcome,
        upstream_request_id: Option<&str>,
        result: &'static str,
    ) {
        let provider = self.config.provider;
        let operation = request.operation;
        let latency_ms = latency.as_millis() as u64;
        let upstream_request_id = upstream_request_id.unwrap_or("");
        match outcome {
            Outcome::Answer { status, .. } if result == "accepted" => tracing::info!(
                target: LOG_TARGET, provider, operation, http.status = status.as_u16(), latency_ms, attempt, call_id,
                upstream_request_id, outcome = result, "upstream call"
            ),
            Outcome::Answer { status, .. } => tracing::warn!(
                target: LOG_TARGET, provider, operation, http.status = status.as_u16(), latency_ms, attempt, call_id,
                upstream_request_id, outcome = result, "upstream call"
            ),
            failure => tracing::warn!(
                target: LOG_TARGET, provider, operation, latency_ms, attempt, call_id, outcome = result,
                error = failure_label(failure), "upstream call"
            ),
        }
    }

    fn log_gave_up(&self, request: &UpstreamRequest, call_id: &str, attempts: u32, started: Instant, why: &str) {
        tracing::warn!(
            target: LOG_TARGET, provider = self.config.provider, operation = request.operation, call_id,
            attempts, latency_ms = started.elapsed().as_millis() as u64, outcome = "gave up", error = why, "upstream call"
        );
    }
}

/// What failed, as a span's `error.type`: a short fixed token, unlike the log's words.
fn error_type(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Answer { .. } => "answer",
        Outcome::Connect => "connection_failed",
        Outcome::Timeout => "timeout",
        Outcome::Interrupted => "connection_dropped",
        Outcome::TooLarge => "response_too_large",
        Outcome::Unbuildable(_) => "request_unbuildable",
    }
}

fn failure_label(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Answer { .. } => "answer",
        Outcome::Connect => "connect failed",
        Outcome::Timeout => "timed out",
        Outcome::Interrupted => "connection dropped",
        Outcome::TooLarge => "answer over the size cap",
        Outcome::Unbuildable(why) => why,
    }
}

/// Parses an upstream base URL: https, or http on a loopback address (a local mock); no
/// credentials, query or fragment.
pub fn parse_base_url(text: &str) -> Result<Url, String> {
    let url: Url = text.trim().parse().map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the base URL must not carry credentials".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the base URL must not have a query or fragment".to_owned());
    }
    let loopback = url.host_str().is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(format!("{text:?} is plain http; use https (http is accepted on loopback addresses only)")),
        scheme => Err(format!("{text:?} has scheme {scheme:?}; use https")),
    }
}

/// Whether `segment`, which a caller or an upstream supplied, can go into a URL path as one
/// segment: `.` and `..` would be read as steps up the path and reach another endpoint.
pub fn is_plain_segment(segment: &str) -> bool {
    !matches!(segment, "" | "." | "..")
}

/// `base` with `path` appended (`https://host/api/v1` + `/link/connect`).
pub fn endpoint(base: &Url, path: &str) -> Url {
    let joined = format!("{}/{}", base.as_str().trim_end_matches('/'), path.trim_start_matches('/'));
    joined.parse().expect("a valid base URL with a literal path is a valid URL")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(2),
        }
    }

    fn answer(status: u16, retry_after: Option<u64>) -> Outcome {
        Outcome::Answer {
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn every_outcome_is_classified_once() {
        use ProviderError as E;
        let unavailable = |after: Option<u64>| E::Unavailable { retry_after: after.map(Duration::from_secs) };
        let retry = |error, after: Option<u64>| Verdict::Retry { error, retry_after: after.map(Duration::from_secs) };
        let cases = [
            ("200 is read", answer(200, None), Retry::Idempotent, Verdict::Accept),
            ("204 is read", answer(204, None), Retry::OnlyUnprocessed, Verdict::Accept),
            ("400 goes to the adapter's table", answer(400, None), Retry::Idempotent, Verdict::Accept),
            ("401 goes to the adapter's table", answer(401, None), Retry::Idempotent, Verdict::Accept),
            ("404 is never retried", answer(404, Some(1)), Retry::Idempotent, Verdict::Accept),
            (
                "429 is retried",
                answer(429, Some(1)),
                Retry::Idempotent,
                retry(E::RateLimited { retry_after: Some(Duration::from_secs(1)) }, Some(1)),
            ),
            (
                "429 was not processed",
                answer(429, None),
                Retry::OnlyUnprocessed,
                retry(E::RateLimited { retry_after: None }, None),
            ),
            ("500 is retried", answer(500, None), Retry::Idempotent, retry(unavailable(None), None)),
            ("500 may have acted", answer(500, None), Retry::OnlyUnprocessed, Verdict::Fail(unavailable(None))),
            ("502 is retried", answer(502, None), Retry::Idempotent, retry(unavailable(None), None)),
            (
                "503 was not processed",
                answer(503, Some(3)),
                Retry::OnlyUnprocessed,
                retry(unavailable(Some(3)), Some(3)),
            ),
            ("connect failures never left", Outcome::Connect, Retry::OnlyUnprocessed, retry(unavailable(None), None)),
            ("timeouts are retried", Outcome::Timeout, Retry::Idempotent, retry(unavailable(None), None)),
            ("timeouts may have acted", Outcome::Timeout, Retry::OnlyUnprocessed, Verdict::Fail(unavailable(None))),
            ("drops are retried", Outcome::Interrupted, Retry::Idempotent, retry(unavailable(None), None)),
            ("drops may have acted", Outcome::Interrupted, Retry::OnlyUnprocessed, Verdict::Fail(unavailable(None))),
        ];
        for (case, outcome, rule, expected) in cases {
            assert_eq!(verdict("op", &outcome, rule), expected, "{case}");
        }
        for (case, outcome) in [
            ("redirects are refused", answer(302, None)),
            ("1xx is not an answer", answer(101, None)),
            ("oversized answers", Outcome::TooLarge),
            ("unbuildable requests", Outcome::Unbuildable("bad header".into())),
        ] {
            assert!(
                matches!(verdict("op", &outcome, Retry::Idempotent), Verdict::Fail(ProviderError::Protocol { .. })),
                "{case}"
            );
        }
    }

    #[test]
    fn backoff_is_full_jitter_under_an_exponential_ceiling() {
        let policy = policy();
        assert_eq!(backoff(&policy, 1, 0.0), Duration::ZERO);
        assert_eq!(backoff(&policy, 1, 0.5), Duration::from_millis(50));
        assert_eq!(backoff(&policy, 2, 0.5), Duration::from_millis(100));
        // Capped at max_delay however many attempts, and never above it whatever the draw.
        assert_eq!(backoff(&policy, 3, 1.0), Duration::from_millis(250));
        assert_eq!(backoff(&policy, 40, 1.0), Duration::from_millis(250));
        assert_eq!(backoff(&policy, 2, 7.0), Duration::from_millis(200));
        let draws: Vec<Duration> = (0..100).map(|_| backoff(&policy, 2, rand::random())).collect();
        assert!(draws.iter().all(|d| *d <= Duration::from_millis(200)));
        assert!(draws.iter().any(|d| *d != draws[0]), "jitter varies the waits");
    }

    #[test]
    fn waits_respect_attempts_retry_after_its_cap_and_the_deadline() {
        let policy = policy();
        let now = Instant::now();
        let far = now + Duration::from_secs(60);
        assert_eq!(next_wait(&policy, 1, None, 0.5, now, far), Some(Duration::from_millis(50)));
        assert_eq!(next_wait(&policy, 1, Some(Duration::from_secs(1)), 0.5, now, far), Some(Duration::from_secs(1)));
        assert_eq!(next_wait(&policy, 3, None, 0.5, now, far), None, "attempts used up");
        assert_eq!(next_wait(&policy, 1, Some(Duration::from_secs(3)), 0.5, now, far), None, "over the cap");
        let near = now + Duration::from_millis(500);
        assert_eq!(next_wait(&policy, 1, Some(Duration::from_secs(1)), 0.5, now, near), None, "past the deadline");
    }

    #[test]
    fn retry_after_reads_seconds_and_is_clamped() {
        let header = |text: &str| HeaderValue::from_str(text).unwrap();
        let now = SystemTime::now();
        assert_eq!(parse_retry_after(Some(&header("3")), now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(Some(&header(" 0 ")), now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(Some(&header("99999999")), now), Some(RETRY_AFTER_CEILING));
        assert_eq!(parse_retry_after(Some(&header("-1")), now), None);
        assert_eq!(parse_retry_after(Some(&header("1.5")), now), None);
        assert_eq!(parse_retry_after(None, now), None);
    }

    #[test]
    fn retry_after_reads_http_dates_as_a_delay_from_now() {
        let header = |text: &str| HeaderValue::from_str(text).unwrap();
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        let after = |text: &str| parse_retry_after(Some(&header(text)), now);
        assert_eq!(after("Wed, 21 Oct 2015 07:28:30 GMT"), Some(Duration::from_secs(30)));
        assert_eq!(after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(after("Tue, 20 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "a past date means now");
        assert_eq!(after("Wednesday, 21-Oct-15 07:29:00 GMT"), Some(Duration::from_secs(60)), "RFC 850");
        assert_eq!(after("Wed Oct 21 07:30:00 2015"), Some(Duration::from_secs(120)), "asctime");
        assert_eq!(after("Fri, 01 Jan 2100 00:00:00 GMT"), Some(RETRY_AFTER_CEILING), "clamped like seconds");
        for garbage in ["Wed, 21 Oct 2015 07:28:30", "21 Oct 2015", "soon", ""] {
            assert_eq!(after(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn upstream_request_ids_are_read_when_they_look_like_ids() {
        let mut headers = HeaderMap::new();
        assert_eq!(upstream_request_id(&headers), None);
        headers.insert("x-correlation-id", HeaderValue::from_static("corr-1"));
        assert_eq!(upstream_request_id(&headers).as_deref(), Some("corr-1"));
        headers.insert("x-request-id", HeaderValue::from_static("req-9"));
        assert_eq!(upstream_request_id(&headers).as_deref(), Some("req-9"), "x-request-id first");
        headers.insert("x-request-id", HeaderValue::from_static("has space"));
        assert_eq!(upstream_request_id(&headers).as_deref(), Some("corr-1"), "odd values are skipped");
    }

    #[test]
    fn base_urls_are_https_or_loopback_http_without_credentials() {
        assert!(parse_base_url("https://sandbox.deck.co/api/v1").is_ok());
        assert!(parse_base_url("http://127.0.0.1:9103/api/v1").is_ok());
        assert!(parse_base_url("http://localhost:9103/api/v1").is_ok());
        assert!(parse_base_url("http://[::1]:9103/api/v1").is_ok());
        assert!(parse_base_url("http://deck.example/api/v1").is_err());
        assert!(parse_base_url("https://user:pw@deck.example/api/v1").is_err());
        assert!(parse_base_url("https://deck.example/api/v1?x=1").is_err());
        assert!(parse_base_url("ftp://deck.example").is_err());
        let base = parse_base_url("https://sandbox.deck.co/api/v1/").unwrap();
        assert_eq!(endpoint(&base, "/link/connect").as_str(), "https://sandbox.deck.co/api/v1/link/connect");
    }

    #[test]
    fn protocol_details_never_quote_the_body() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Token {
            access_token: u32,
        }
        let error = parse_json::<Token>("exchange", br#"{"access_token": "access-sandbox-secret"}"#).unwrap_err();
        let ProviderError::Protocol { detail } = error else { panic!("protocol error expected") };
        assert!(!detail.contains("access-sandbox-secret"), "{detail}");
        assert!(detail.contains("unexpected JSON"), "{detail}");
        let error = parse_json::<Token>("exchange", b"{\"access_to").unwrap_err();
        assert!(matches!(error, ProviderError::Protocol { detail } if detail.contains("truncated")));
    }

    /// A loopback server whose handler sees the attempt number (from 1).
    async fn server(handler: fn(usize) -> axum::response::Response) -> (Url, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().route(
            "/call",
            axum::routing::post(move || {
                let counter = counter.clone();
                async move { handler(counter.fetch_add(1, Ordering::SeqCst) + 1) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/call").parse().unwrap(), hits)
    }

    fn upstream(max_body_bytes: usize) -> Upstream {
        Upstream::new(
            HttpClient::new(Duration::from_secs(1)).unwrap(),
            UpstreamConfig {
                provider: "test",
                attempt_timeout: Duration::from_millis(300),
                call_timeout: Duration::from_secs(3),
                retry: RetryPolicy { base_delay: Duration::from_millis(10), ..policy() },
                max_body_bytes,
            },
        )
    }

    fn status(code: u16, retry_after: Option<&'static str>) -> axum::response::Response {
        use axum::response::IntoResponse;
        let mut response = (StatusCode::from_u16(code).unwrap(), "{}").into_response();
        if let Some(after) = retry_after {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static(after));
        }
        response
    }

    fn status_until(code: u16, date: SystemTime) -> axum::response::Response {
        let mut response = status(code, None);
        let date = HeaderValue::from_str(&httpdate::fmt_http_date(date)).unwrap();
        response.headers_mut().insert(RETRY_AFTER, date);
        response
    }

    fn call(url: &Url) -> UpstreamRequest {
        UpstreamRequest::post_json("test call", url.clone(), &serde_json::json!({"k": "v"})).unwrap()
    }

    #[tokio::test]
    async fn a_5xx_burst_is_retried_until_an_answer() {
        let (url, hits) = server(|n| if n < 3 { status(500, None) } else { status(200, None) }).await;
        let reply = upstream(1024).send(call(&url)).await.expect("third attempt answers");
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn attempts_are_bounded_and_end_unavailable() {
        let (url, hits) = server(|_| status(502, None)).await;
        let error = upstream(1024).send(call(&url)).await.unwrap_err();
        assert_eq!(error, ProviderError::Unavailable { retry_after: None });
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn client_errors_are_answered_once() {
        let (url, hits) = server(|_| status(400, None)).await;
        let reply = upstream(1024).send(call(&url)).await.expect("a 400 is an answer for the adapter");
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn unprocessed_only_requests_are_not_repeated_after_a_500() {
        let (url, hits) = server(|_| status(500, None)).await;
        let error = upstream(1024).send(call(&url).retry(Retry::OnlyUnprocessed)).await.unwrap_err();
        assert_eq!(error, ProviderError::Unavailable { retry_after: None });
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn retry_after_is_waited_for_and_a_long_one_is_handed_back() {
        let (url, hits) = server(|n| if n == 1 { status(429, Some("1")) } else { status(200, None) }).await;
        let started = Instant::now();
        upstream(1024).send(call(&url)).await.expect("answers after the pause");
        assert!(started.elapsed() >= Duration::from_secs(1), "waited {:?}", started.elapsed());
        assert_eq!(hits.load(Ordering::SeqCst), 2);

        let (url, hits) = server(|_| status(429, Some("60"))).await;
        let error = upstream(1024).send(call(&url)).await.unwrap_err();
        assert_eq!(error, ProviderError::RateLimited { retry_after: Some(Duration::from_secs(60)) });
        assert_eq!(hits.load(Ordering::SeqCst), 1, "a pause over the cap ends the call at once");
    }

    #[tokio::test]
    async fn retry_after_as_an_http_date_is_waited_for_past_dates_mean_now_and_far_ones_are_handed_back() {
        // The date has whole seconds, so two seconds ahead is a wait of one to two.
        let (url, hits) = server(|n| {
            if n == 1 { status_until(503, SystemTime::now() + Duration::from_secs(2)) } else { status(200, None) }
        })
        .await;
        let started = Instant::now();
        upstream(1024).send(call(&url)).await.expect("answers after the pause");
        assert!(started.elapsed() >= Duration::from_millis(900), "waited {:?}", started.elapsed());
        assert_eq!(hits.load(Ordering::SeqCst), 2);

        let (url, hits) =
            server(|n| if n == 1 { status(429, Some("Wed, 21 Oct 2015 07:28:00 GMT")) } else { status(200, None) })
                .await;
        let started = Instant::now();
        upstream(1024).send(call(&url)).await.expect("a past date is retried at once");
        assert!(started.elapsed() < Duration::from_millis(500), "took {:?}", started.elapsed());
        assert_eq!(hits.load(Ordering::SeqCst), 2);

        let (url, hits) = server(|_| status(429, Some("Fri, 01 Jan 2100 00:00:00 GMT"))).await;
        let error = upstream(1024).send(call(&url)).await.unwrap_err();
        assert_eq!(error, ProviderError::RateLimited { retry_after: Some(RETRY_AFTER_CEILING) });
        assert_eq!(hits.load(Ordering::SeqCst), 1, "a date past the cap ends the call at once");
    }

    #[tokio::test]
    async fn slow_answers_time_out_within_the_deadline() {
        // A listener that never accepts: connections queue in the backlog and nothing answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: Url = format!("http://{}/call", silent.local_addr().unwrap()).parse().unwrap();
        let started = Instant::now();
        let deadline = started + Duration::from_millis(700);
        let error = upstream(1024).send(call(&url).deadline(deadline)).await.unwrap_err();
        assert_eq!(error, ProviderError::Unavailable { retry_after: None });
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_millis(900), "the deadline bounds the call ({elapsed:?})");
    }

    #[tokio::test]
    async fn an_ambient_deadline_bounds_calls_inside_it() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: Url = format!("http://{}/call", silent.local_addr().unwrap()).parse().unwrap();
        let started = Instant::now();
        let context = CallContext { deadline: Some(started + Duration::from_millis(150)), ..CallContext::default() };
        let error = within(context, upstream(1024).send(call(&url))).await;
        assert!(error.is_err());
        assert!(started.elapsed() < Duration::from_millis(290), "ended by the ambient deadline");
    }

    #[tokio::test]
    async fn oversized_and_malformed_answers_are_protocol_errors() {
        let (url, hits) = server(|_| {
            use axum::response::IntoResponse;
            (StatusCode::OK, "x".repeat(4096)).into_response()
        })
        .await;
        let error = upstream(1024).send(call(&url)).await.unwrap_err();
        assert!(matches!(error, ProviderError::Protocol { .. }), "{error:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 1, "protocol errors are not retried");

        let (url, _) = server(|_| {
            use axum::response::IntoResponse;
            (StatusCode::OK, "{\"not json").into_response()
        })
        .await;
        let reply = upstream(1024).send(call(&url)).await.unwrap();
        assert!(matches!(reply.json::<serde_json::Value>(), Err(ProviderError::Protocol { .. })));
    }
}

//! A mock of Deck's legacy product API (docs/providers/deck.md): every endpoint is a `POST` of
//! JSON under `/api/v1`, authenticated by `x-deck-client-id` / `x-deck-secret` (401 with
//! `INVALID_API_KEYS` otherwise; the real Deck does not check keys on `/link/*`, the mock does),
//! answering 400 with Deck's error body `{error_category, error_code, error_message,
//! display_message}` for every refusal.
//!
//! Sources (D3 `/link/sources`): the three named ones links connect to and 600 made-up utilities
//! ([`CATALOGUE_EXTRA`]). Without a search term D3 answers the first [`MOST_COMMON`]; `search`
//! (3 to 255 characters, else `VALIDATION_FAILED`) answers every source whose name contains it;
//! `source_id` answers that source and wins over `search`.
//!
//! Requests are held to Deck's published OpenAPI definition (buildwithdeck/sdk-go,
//! `.speakeasy/out.openapi.yaml`), whose request bodies are closed (`additionalProperties:
//! false`): another method than `POST` is 405, a body that is not JSON (`application/json`,
//! `text/json` or `application/*+json`, as the definition lists) is 415, and a body with a key the
//! endpoint does not document, a required one missing, or a value of the wrong type is 400
//! `VALIDATION_FAILED`, each with Deck's error body. `GET /__admin/requests` lists the latest 500
//! requests as `{"path", "content_type", "body"}` (the body as JSON, null when it is not), so a
//! test can hold what a client sent against the definition.
//!
//! Behaviour, scripted by username (password `pass_good`; any other password is
//! `InvalidCredentials`):
//!
//! | username | D5 status after D4 `/link/connect` |
//! |---|---|
//! | `user_good` | `Connecting` for `--connect-delay`, then `Connected` |
//! | `user_mfa` | `Connecting`, then `MfaQuestion`; answer `1234` → `Connecting` → `Connected`; a wrong answer → `MfaQuestionInvalidAnswer` (answering again is allowed) |
//! | `user_mfa_choice` | `Connecting`, then `MfaMethodChoice` with the methods [`MFA_METHODS`] in `additional_information`, one per line; D7 with one of them as the answer → `MfaQuestion` as for `user_mfa` (any other answer: `VALIDATION_FAILED`) |
//! | `user_security` | as `user_mfa`, with `SecurityQuestion` |
//! | `user_select` | `Connecting`, then `AccountSelection` until D9 `/link/account/select`, then `Connected` |
//! | `user_error` | `Connecting`, then `Error` |
//! | anyone else | `Connecting`, then `InvalidCredentials` |
//!
//! D6 `/link/authentication/mfa/get` answers only while D5 says `MfaQuestion` or
//! `SecurityQuestion` (`SECURITY_QUESTION_NOT_FOUND` otherwise, a method choice and a rejected
//! answer included). A question unanswered for 5 minutes becomes `MfaQuestionNoAnswer`. Token rules: link tokens
//! live 20 minutes, public tokens (issued by D4 at once) 30 minutes and once, access tokens until
//! D15 rotates or D19 destroys them. Product data (D20 `/sustainability/get`) answers 400
//! `PRODUCT_NOT_READY` until `--extraction-delay` after the connection connected; D12
//! `/connection/context` meanwhile says `Connected` / `ConnectedCredentials` (so a client must
//! ask D20 to learn readiness), then `DataFound`; D17 `/connection/refresh` shows
//! `ExecutingJob` for `--refresh-delay`, then `CompletedJob`. Data is deterministic: each
//! connection has two utility accounts with three monthly statements each, derived from the
//! source and the username.
//!
//! Admin routes beside the shared ones (see [`crate`]): `GET /__admin/tokens` (every token
//! issued, for tests that check nothing leaks), `POST /__admin/clock/advance` with `{"seconds":
//! N}` (moves the mock's clock, to expire tokens), `POST /__admin/extraction/finish` (makes
//! every connected connection's data ready now), `POST /__admin/connections/require-login` with
//! `{"access_token": "..."}` or nothing (makes that connection, or every connected one, need its
//! user again: D12 says `Error` / `InvalidCredentials`, D17 is accepted but changes nothing).
//!
//! Update mode (repair): D1 with `update: {access_token, mode}` (a live access token, else
//! `INVALID_ACCESS_TOKEN`; `mode` one of `UpdateCredentials`, `Refresh`,
//! `UpdateAccountSelection`, else `VALIDATION_FAILED`) makes a link token for that connection
//! (D2 then reports the mode). D4 on it must name the connection's source, answers
//! `{public_token: null, job_guid}`, and runs a new attempt on the same connection, scripted by
//! username as above; once `Connected` the connection's login is restored under the same access
//! token and connection id, with the same data.

use super::{FaultRule, Harness, MockServer, admin_routes, parse_fault, serve};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::Bytes;
use chrono::{Months, NaiveDate};
use humantime::parse_duration;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The API's base path: the base URL of a mock is `http://ADDR/api/v1`, like Deck's.
pub const API_PREFIX: &str = "/api/v1";
/// Source ids of the mock's three utilities.
pub const NATIONAL_GRID: &str = "5f0b6a7e-2c1d-4e8a-9b3f-1a2b3c4d5e6f";
/// Iberdrola (ES, EUR).
pub const IBERDROLA: &str = "8d3e1f2a-4b5c-4d6e-8f70-9a1b2c3d4e5f";
/// Thames Water (GB, GBP).
pub const THAMES_WATER: &str = "c2a4e6f8-1b3d-4f5a-8c7e-9d0b1a2c3e4f";
/// The password every scripted user logs in with.
pub const GOOD_PASSWORD: &str = "pass_good";
/// The answer to every question.
pub const MFA_ANSWER: &str = "1234";
/// The MFA methods `user_mfa_choice` is offered, as D5 lists them.
pub const MFA_METHODS: [&str; 2] = ["SMS to ***-***-1234", "E-mail to j***@example.com"];
/// How long an unanswered question waits.
const QUESTION_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The billing month the newest statement ends in (data does not move with the calendar).
const NEWEST_STATEMENT_END: (i32, u32, u32) = (2025, 11, 25);

/// How the Deck mock behaves (`linkgate-mock deck --help`).
#[derive(Debug, Clone, clap::Args)]
pub struct DeckMockOptions {
    /// Client id accepted in `x-deck-client-id`.
    #[arg(long, default_value = "test-client")]
    pub client_id: String,

    /// Secret accepted in `x-deck-secret`.
    #[arg(long, default_value = "test-secret")]
    pub secret: String,

    /// Accept any (or no) API keys.
    #[arg(long)]
    pub no_auth: bool,

    /// How long a connection attempt stays `Connecting` before its next status.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub connect_delay: Duration,

    /// How long after connecting product data answers `PRODUCT_NOT_READY`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub extraction_delay: Duration,

    /// How long a refresh (D17) runs.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub refresh_delay: Duration,

    /// How long link tokens live.
    #[arg(long, default_value = "20m", value_parser = parse_duration)]
    pub link_token_ttl: Duration,

    /// How long public tokens stay exchangeable.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub public_token_ttl: Duration,

    /// A fault to script from the start, as the admin API takes it (repeatable), e.g.
    /// `--fault '{"kind":"status","status":500,"times":2,"path":"/link/connect"}'`. Kinds:
    /// status, delay (delay_ms), rate_limit (retry_after), malformed, oversized (bytes), drop.
    #[arg(long = "fault", value_parser = parse_fault)]
    pub faults: Vec<FaultRule>,
}

impl Default for DeckMockOptions {
    fn default() -> Self {
        Self {
            client_id: "test-client".to_owned(),
            secret: "test-secret".to_owned(),
            no_auth: false,
            connect_delay: Duration::from_secs(1),
            extraction_delay: Duration::from_secs(10),
            refresh_delay: Duration::from_secs(2),
            link_token_ttl: Duration::from_secs(20 * 60),
            public_token_ttl: Duration::from_secs(30 * 60),
            faults: Vec::new(),
        }
    }
}

/// Starts the mock on `addr` (port 0 picks one; [`MockServer::addr`] tells which).
pub async fn spawn(addr: SocketAddr, options: DeckMockOptions) -> std::io::Result<MockServer> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let harness = Harness::new(API_PREFIX, error_body_for_status, options.faults.clone());
    let mock = Arc::new(Mock { options, world: Mutex::default(), requests: Mutex::default() });
    let mut router = Router::new();
    for route in ROUTES {
        let route = *route;
        let endpoint = post(move |State(mock): State<Arc<Mock>>, headers: HeaderMap, body: Bytes| async move {
            mock.dispatch(route, &headers, &body)
        })
        .fallback(|| async { ApiError::method_not_allowed().into_response() });
        router = router.route(&format!("{API_PREFIX}{}", route.0), endpoint);
    }
    let router = router
        .route("/__admin/tokens", get(|State(mock): State<Arc<Mock>>| async move { mock.tokens() }))
        .route("/__admin/requests", get(|State(mock): State<Arc<Mock>>| async move { mock.requests() }))
        .route("/__admin/clock/advance", post(advance_clock))
        .route(
            "/__admin/extraction/finish",
            post(|State(mock): State<Arc<Mock>>| async move { mock.finish_extraction() }),
        )
        .route(
            "/__admin/connections/require-login",
            post(|State(mock): State<Arc<Mock>>, body: Bytes| async move { mock.require_login(&body) }),
        )
        .with_state(mock)
        .merge(admin_routes(harness.clone()));
    serve(listener, harness, router)
}

type Handler = fn(&Mock, &mut World, &[u8]) -> Result<Answer, ApiError>;

/// One endpoint: its path under [`API_PREFIX`], its handler, and the keys its request body may
/// have (the properties of its request schema in Deck's definition; `/link/connect` also takes
/// the legacy guide's flat `username` / `password`, `/sustainability/get`, absent from the
/// definition, takes what its guide sends).
type Route = (&'static str, Handler, &'static [&'static str]);

const LINK_TOKEN: &[&str] = &["link_token"];
const ACCESS_TOKEN: &[&str] = &["access_token"];

/// Every endpoint the mock serves.
const ROUTES: &[Route] = &[
    (
        "/link/token/create",
        Mock::link_token_create,
        &[
            "language",
            "countries",
            "source_ids",
            "source_types",
            "beta_source_status",
            "update",
            "webhook_url",
            "auto_refresh",
            "parsing_method",
            "latest_invoice_only",
            "customization_name",
        ],
    ),
    ("/link/info", Mock::link_info, LINK_TOKEN),
    ("/link/sources", Mock::link_sources, &["link_token", "source_id", "search"]),
    (
        "/link/connect",
        Mock::link_connect,
        &["link_token", "source_id", "fields", "terms_of_use_url", "privacy_policy_url", "username", "password"],
    ),
    ("/link/connection/status", Mock::link_connection_status, LINK_TOKEN),
    ("/link/authentication/mfa/get", Mock::mfa_get, LINK_TOKEN),
    ("/link/authentication/mfa/answer", Mock::mfa_answer, &["link_token", "answer"]),
    ("/link/account/list", Mock::account_list, LINK_TOKEN),
    ("/link/account/select", Mock::account_select, &["link_token", "accounts"]),
    ("/link/token/get", Mock::link_token_get, LINK_TOKEN),
    ("/connection/public_token/exchange", Mock::public_token_exchange, &["public_token"]),
    ("/connection/context", Mock::connection_context, ACCESS_TOKEN),
    ("/connection/accounts", Mock::connection_accounts, ACCESS_TOKEN),
    ("/connection/accounts/select", Mock::connection_ok, &["access_token", "accounts"]),
    ("/connection/access_token/invalidate", Mock::access_token_invalidate, ACCESS_TOKEN),
    ("/connection/auto_refresh/update", Mock::connection_ok, &["access_token", "auto_refresh"]),
    ("/connection/refresh", Mock::connection_refresh, &["access_token", "account_numbers"]),
    ("/connection/webhook/update", Mock::connection_ok, &["access_token", "url", "is_active"]),
    ("/connection/destroy", Mock::connection_destroy, ACCESS_TOKEN),
    ("/sustainability/get", Mock::sustainability_get, ACCESS_TOKEN),
];

/// How many requests `GET /__admin/requests` keeps.
const REQUEST_LOG: usize = 500;

struct Mock {
    options: DeckMockOptions,
    world: Mutex<World>,
    /// The latest requests, oldest first, for `GET /__admin/requests`.
    requests: Mutex<std::collections::VecDeque<serde_json::Value>>,
}

/// Everything the mock remembers.
#[derive(Default)]
struct World {
    clock_offset: Duration,
    link_tokens: HashMap<String, LinkToken>,
    public_tokens: HashMap<String, PublicToken>,
    access_tokens: HashMap<String, String>,
    connections: HashMap<String, Connection>,
    /// Every access token ever issued (rotated and destroyed ones included), for the admin API.
    issued_access_tokens: Vec<String>,
}

impl World {
    fn now(&self) -> Instant {
        Instant::now() + self.clock_offset
    }
}

struct LinkToken {
    created_at: Instant,
    source_ids: Vec<String>,
    connection_id: Option<String>,
    /// Update mode: the connection the session repairs, and D1's `update.mode`.
    update: Option<(String, String)>,
}

/// D1's `update` modes.
const UPDATE_MODES: [&str; 3] = ["UpdateCredentials", "Refresh", "UpdateAccountSelection"];

struct PublicToken {
    connection_id: String,
    issued_at: Instant,
    used: bool,
}

struct Source {
    id: &'static str,
    name: &'static str,
    country: &'static str,
    currency: &'static str,
    website: &'static str,
}

const SOURCES: [Source; 3] = [
    Source {
        id: NATIONAL_GRID,
        name: "National Grid",
        country: "US",
        currency: "USD",
        website: "https://www.nationalgrid.com",
    },
    Source { id: IBERDROLA, name: "Iberdrola", country: "ES", currency: "EUR", website: "https://www.iberdrola.es" },
    Source {
        id: THAMES_WATER,
        name: "Thames Water",
        country: "GB",
        currency: "GBP",
        website: "https://www.thameswater.co.uk",
    },
];

fn source(id: &str) -> Option<&'static Source> {
    SOURCES.iter().find(|s| s.id == id)
}

/// Utilities in the catalogue besides the named sources links connect to, as many as Deck lists
/// in the hundreds; D3 finds them by search or id.
pub const CATALOGUE_EXTRA: usize = 600;
/// How many sources D3 answers without a search term (Deck's "15 most common").
pub const MOST_COMMON: usize = 15;

/// Every source D3 knows as Deck answers it, most common first.
static CATALOGUE: std::sync::LazyLock<Vec<serde_json::Value>> = std::sync::LazyLock::new(|| {
    let named = SOURCES.iter().map(|s| (s.id.to_owned(), s.name.to_owned(), s.country, s.website.to_owned()));
    let generated = crate::catalogue::generated(CATALOGUE_EXTRA, &["Electric", "Gas", "Water", "Power & Light"]);
    let others = generated.into_iter().enumerate().map(|(n, g)| {
        let id = uuid::Uuid::from_u128(0x0dec_0000_0000_4000_8000_0000_0000_0000 | n as u128).to_string();
        (id, g.name, "US", format!("https://{}.example", g.slug))
    });
    named
        .chain(others)
        .map(|(id, name, country, website)| {
            serde_json::json!({
                "source_id": id, "name": name, "logo_url": null, "country": country, "website": website,
                "fields": [
                    {"field_number": 1, "field_name": "username", "field_label": "Username", "field_value": null, "field_type": "Text"},
                    {"field_number": 2, "field_name": "password", "field_label": "Password", "field_value": null, "field_type": "Password"},
                ],
            })
        })
        .collect()
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Question {
    Mfa,
    Security,
}

/// Where a connection attempt is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting { until: Instant, next: Next },
    Question { kind: Question, invalid: bool },
    ChoosingMethod,
    Selecting,
    Connected,
    InvalidCredentials,
    Error,
}

/// What a `Connecting` phase turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Connected,
    Question(Question),
    ChoosingMethod,
    Selecting,
    InvalidCredentials,
    Error,
}

struct Connection {
    id: String,
    source: &'static Source,
    username: String,
    phase: Phase,
    phase_since: Instant,
    data_ready_at: Option<Instant>,
    refresh_until: Option<Instant>,
    refreshed: bool,
    destroyed: bool,
}

impl Connection {
    /// Moves the attempt along to `now`.
    fn advance(&mut self, now: Instant, extraction_delay: Duration) {
        while let Phase::Connecting { until, next } = self.phase {
            if now < until {
                return;
            }
            self.phase_since = until;
            self.phase = match next {
                Next::Connected => {
                    self.data_ready_at = Some(until + extraction_delay);
                    Phase::Connected
                }
                Next::Question(kind) => Phase::Question { kind, invalid: false },
                Next::ChoosingMethod => Phase::ChoosingMethod,
                Next::Selecting => Phase::Selecting,
                Next::InvalidCredentials => Phase::InvalidCredentials,
                Next::Error => Phase::Error,
            };
        }
    }

    /// D5's `LinkConnectionStatus`.
    fn link_status(&self, now: Instant) -> &'static str {
        match self.phase {
            Phase::Connecting { .. } => "Connecting",
            Phase::Question { .. } if now.duration_since(self.phase_since) > QUESTION_TIMEOUT => "MfaQuestionNoAnswer",
            Phase::Question { invalid: true, .. } => "MfaQuestionInvalidAnswer",
            Phase::Question { kind: Question::Mfa, .. } => "MfaQuestion",
            Phase::Question { kind: Question::Security, .. } => "SecurityQuestion",
            Phase::ChoosingMethod if now.duration_since(self.phase_since) > QUESTION_TIMEOUT => "MfaQuestionNoAnswer",
            Phase::ChoosingMethod => "MfaMethodChoice",
            Phase::Selecting => "AccountSelection",
            Phase::Connected => "Connected",
            Phase::InvalidCredentials => "InvalidCredentials",
            Phase::Error => "Error",
        }
    }

    /// D12's `ConnectivityStatus` and `ScrapingStatus`.
    fn context_status(&self, now: Instant) -> (&'static str, &'static str) {
        match self.phase {
            Phase::Connecting { .. } => ("Connecting", "CredentialsSent"),
            Phase::Question { kind: Question::Mfa, invalid: false } => ("Connecting", "MfaCodeRequired"),
            Phase::Question { kind: Question::Mfa, invalid: true } => ("Connecting", "MfaCodeInvalid"),
            Phase::Question { kind: Question::Security, invalid: false } => ("Connecting", "SecurityAnswerRequired"),
            Phase::Question { kind: Question::Security, invalid: true } => ("Connecting", "SecurityAnswerInvalid"),
            Phase::ChoosingMethod => ("Connecting", "MfaMethodChoiceRequired"),
            Phase::Selecting => ("Connecting", "AccountSelectionRequired"),
            Phase::InvalidCredentials => ("Error", "InvalidCredentials"),
            Phase::Error => ("Error", "Error"),
            Phase::Connected if self.refresh_until.is_some_and(|until| now < until) => ("Connected", "ExecutingJob"),
            Phase::Connected if !self.data_ready(now) => ("Connected", "ConnectedCredentials"),
            Phase::Connected if self.refreshed => ("Connected", "CompletedJob"),
            Phase::Connected => ("Connected", "DataFound"),
        }
    }

    fn data_ready(&self, now: Instant) -> bool {
        self.data_ready_at.is_some_and(|at| now >= at)
    }

    /// The connection's utility accounts with their statements.
    fn accounts(&self) -> Vec<(String, Vec<MockStatement>)> {
        let seed = fnv(&format!("{}/{}", self.source.id, self.username));
        let newest = NaiveDate::from_ymd_opt(NEWEST_STATEMENT_END.0, NEWEST_STATEMENT_END.1, NEWEST_STATEMENT_END.2)
            .expect("a valid date");
        (0..2u64)
            .map(|a| {
                let number = format!("{:09}", fnv(&format!("{seed}/{a}")) % 1_000_000_000);
                let statements = (0..3u64)
                    .map(|s| {
                        let key = fnv(&format!("{seed}/{a}/{s}"));
                        let id = uuid::Uuid::from_u64_pair(key, fnv(&format!("{key}")));
                        let end = newest - Months::new(s as u32);
                        (id.to_string(), end, 3_000 + key % 20_000)
                    })
                    .collect();
                (number, statements)
            })
            .collect()
    }
}

/// What an attempt with these credentials turns into (the table in the module documentation).
fn script(username: &str, password: &str) -> Next {
    match username {
        _ if password != GOOD_PASSWORD => Next::InvalidCredentials,
        "user_good" => Next::Connected,
        "user_mfa" => Next::Question(Question::Mfa),
        "user_mfa_choice" => Next::ChoosingMethod,
        "user_security" => Next::Question(Question::Security),
        "user_select" => Next::Selecting,
        "user_error" => Next::Error,
        _ => Next::InvalidCredentials,
    }
}

/// A random (version 4) UUID, as Deck's tokens carry.
fn random_uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

/// A generated statement: its id, the last day it bills, its total in cents.
type MockStatement = (String, NaiveDate, u64);

/// FNV-1a: a hash that stays the same across Rust versions, so mock data never changes.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// A successful answer.
enum Answer {
    Json(Vec<u8>),
    Empty,
}

fn json(value: &impl Serialize) -> Result<Answer, ApiError> {
    Ok(Answer::Json(serde_json::to_vec(value).expect("mock answers serialize")))
}

/// A refusal, as Deck's error body.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    category: &'static str,
    code: &'static str,
    message: &'static str,
    display: Option<&'static str>,
}

impl ApiError {
    fn new(category: &'static str, code: &'static str, message: &'static str) -> Self {
        Self { status: StatusCode::BAD_REQUEST, category, code, message, display: None }
    }
    fn invalid_api_keys() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            ..Self::new("INVALID_REQUEST", "INVALID_API_KEYS", "Invalid API keys")
        }
    }
    fn validation(message: &'static str) -> Self {
        Self::new("INVALID_REQUEST", "VALIDATION_FAILED", message)
    }
    fn method_not_allowed() -> Self {
        Self { status: StatusCode::METHOD_NOT_ALLOWED, ..Self::new("INVALID_REQUEST", "NOT_SUPPORTED", "Use POST") }
    }
    fn media_type() -> Self {
        Self {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ..Self::new("INVALID_REQUEST", "VALIDATION_FAILED", "The request body must be JSON")
        }
    }
    fn into_response(self) -> Response<Body> {
        (self.status, axum::Json(self.body())).into_response()
    }
    fn link_token() -> Self {
        Self::new("INVALID_INPUT", "INVALID_LINK_TOKEN", "Could not find matching link token")
    }
    fn public_token() -> Self {
        Self::new("INVALID_INPUT", "INVALID_PUBLIC_TOKEN", "Could not find matching public token")
    }
    fn access_token() -> Self {
        Self::new("INVALID_INPUT", "INVALID_ACCESS_TOKEN", "Could not find matching access token")
    }
    fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error_category": self.category,
            "error_code": self.code,
            "error_message": self.message,
            "display_message": self.display,
        })
    }
}

/// Deck's error body for a scripted status.
fn error_body_for_status(status: StatusCode) -> serde_json::Value {
    let error = match status {
        StatusCode::TOO_MANY_REQUESTS => {
            ApiError::new("RATE_LIMIT_EXCEEDED", "RATE_LIMIT_EXCEEDED", "Too many requests")
        }
        StatusCode::UNAUTHORIZED => ApiError::invalid_api_keys(),
        status if status.is_server_error() => ApiError::new("API_ERROR", "UNEXPECTED_ERROR", "Unexpected error"),
        _ => ApiError::validation("Scripted failure"),
    };
    error.body()
}

/// Whether a `Content-Type` is one Deck's definition lists for request bodies.
fn is_json(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    media == "application/json"
        || media == "text/json"
        || media.strip_prefix("application/").is_some_and(|subtype| subtype.ends_with("+json"))
}

/// A body that is a JSON object with no key but `keys` (Deck's request schemas are closed).
fn closed(body: &[u8], keys: &[&str]) -> Result<(), ApiError> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(|_| ApiError::validation("The request body must be a JSON object"))?;
    match object.keys().any(|key| !keys.contains(&key.as_str())) {
        true => Err(ApiError::validation("The request body has a property the endpoint does not define")),
        false => Ok(()),
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|_| ApiError::validation("The request body is not valid"))
}

#[derive(Deserialize)]
struct LinkTokenBody {
    link_token: String,
}

#[derive(Deserialize)]
struct AccessTokenBody {
    access_token: String,
}

impl Mock {
    fn dispatch(&self, (path, handler, keys): Route, headers: &HeaderMap, body: &[u8]) -> Response<Body> {
        let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let content_type = header(header::CONTENT_TYPE).unwrap_or_default();
        self.record(path, content_type, body);
        let authorised = self.options.no_auth || {
            header(header::HeaderName::from_static("x-deck-client-id")) == Some(self.options.client_id.as_str())
                && header(header::HeaderName::from_static("x-deck-secret")) == Some(self.options.secret.as_str())
        };
        let answer = if !is_json(content_type) {
            Err(ApiError::media_type())
        } else if !authorised {
            Err(ApiError::invalid_api_keys())
        } else {
            closed(body, keys).and_then(|()| {
                let mut world = self.world.lock().expect("mock world lock");
                handler(self, &mut world, body)
            })
        };
        match answer {
            Ok(Answer::Json(bytes)) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
            Ok(Answer::Empty) => StatusCode::OK.into_response(),
            Err(error) => error.into_response(),
        }
    }

    fn record(&self, path: &str, content_type: &str, body: &[u8]) {
        let mut requests = self.requests.lock().expect("request log lock");
        if requests.len() == REQUEST_LOG {
            requests.pop_front();
        }
        let body = serde_json::from_slice::<serde_json::Value>(body).unwrap_or(serde_json::Value::Null);
        requests.push_back(serde_json::json!({ "path": path, "content_type": content_type, "body": body }));
    }

    fn requests(&self) -> axum::Json<serde_json::Value> {
        let requests = self.requests.lock().expect("request log lock");
        axum::Json(serde_json::json!({ "requests": *requests }))
    }

    /// The live link token `token`.
    fn link_token<'w>(&self, world: &'w mut World, token: &str) -> Result<&'w mut LinkToken, ApiError> {
        let now = world.now();
        let ttl = self.options.link_token_ttl;
        world
            .link_tokens
            .get_mut(token)
            .filter(|t| now.duration_since(t.created_at) < ttl)
            .ok_or_else(ApiError::link_token)
    }

    /// The attempt behind a link token, moved along to now.
    fn attempt<'w>(&self, world: &'w mut World, token: &str) -> Result<Option<&'w mut Connection>, ApiError> {
        let now = world.now();
        let connection_id = self.link_token(world, token)?.connection_id.clone();
        Ok(match connection_id {
            Some(id) => {
                let connection = world.connections.get_mut(&id).expect("attempts point at connections");
                connection.advance(now, self.options.extraction_delay);
                Some(connection)
            }
            None => None,
        })
    }

    /// The live connection of an access token, moved along to now.
    fn connection<'w>(&self, world: &'w mut World, body: &[u8]) -> Result<&'w mut Connection, ApiError> {
        let request: AccessTokenBody = parse(body)?;
        let now = world.now();
        let id = world.access_tokens.get(&request.access_token).ok_or_else(ApiError::access_token)?.clone();
        let connection = world.connections.get_mut(&id).filter(|c| !c.destroyed).ok_or_else(ApiError::access_token)?;
        connection.advance(now, self.options.extraction_delay);
        Ok(connection)
    }

    fn link_token_create(&self, world: &mut World, body: &[u8]) -> Result<Answer, ApiError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Update {
            access_token: String,
            mode: String,
        }
        #[derive(Deserialize)]
        struct Request {
            source_ids: Option<Vec<String>>,
            update: Option<Update>,
        }
        let request: Request = parse(body)?;
        let update = match request.update {
            Some(update) => {
                if !UPDATE_MODES.contains(&update.mode.as_str()) {
                    return Err(ApiError::validation("update.mode is not a known mode"));
                }
                let body = serde_json::to_vec(&serde_json::json!({ "access_token": update.access_token }))
                    .expect("a JSON body");
                let connection = self.connection(world, &body)?;
                Some((connection.id.clone(), update.mode))
            }
            None => None,
        };
        let token = format!("link-sandbox-{}", random_uuid());
        let created_at = world.now();
        world.link_tokens.insert(
            token.clone(),
            LinkToken { created_at, source_ids: request.source_ids.unwrap_or_default(), connection_id: None, update },
        );
        json(&serde_json::json!({ "link_token": token }))
    }

    fn link_info(&self, world: &mut World, body: &[u8]) -> Result<Answer, ApiError> {
        let request: LinkTokenBody = parse(body)?;
        let update = self.link_token(world, &request.link_token)?.update.clone();
        let (mode, update_mode) = match &update {
            Some((connection_id, mode)) => {
                let source = world.connections[connection_id].source.id;
                (mode.clone(), serde_json::json!({ "source": source }))
            }
            None => ("Normal".to_owned(), serde_json::Value::Null),
        };
        json(&serde_json::json!({
            "name": "linkgate mock", "image_url": "", "language": "EN", "mode": mode, "update_mode": update_mode,
            "account_select_mode": "All", "allow_document_upload": false, "show_step_consent": true,
            "show_step_add_source": true, "show_step_select_account": true, "show_step_add_account": true,
        }))
    }

    fn link_token_get(&self, world: &mut World, body: &[u8]) -> Result<Answer, ApiError> {
        let request: LinkTokenBody = parse(body)?;
        let token = self.link_token(world, &request.link_token)?;
        json(&serde_json::json!({ "language": "EN", "countries": [], "source_guids": token.source_ids }))
    }

    fn link_sources(&self, world: &mut World, body: &[u8]) -> Result<Answer, ApiError> {
        #[derive(Deserialize)]
        struct Request {
            link_token: String,
            source_id: Option<String>,
            search: Option<String>,
        }
        let request: Request = parse(body)?;
        if request.search.as_ref().is_some_and(|search| !(3..=255).contains(&search.chars().count())) {
            return Err(ApiError::validation("search must be 3 to 255 characters"));
        }
        self.link_token(world, &request.link_token)?;
        // A source id wins over a search; an empty search is none (the most common sources).
        let sources: Vec<&serde_json::Value> = match (&request.source_id, request.search.as_deref()) {
            (Some(id), _) => {
                uuid::Uuid::parse_str(id).map_err(|_| ApiError::validation("source_id must be a UUID"))?;
                let found = CATALOGUE.iter().find(|s| s["source_id"] == id.as_str());
                vec![found.ok_or(ApiError::new("INVALID_INPUT", "DATA_SOURCE_NOT_FOUND", "Source not found"))?]
            }
            (None, None | Some("")) => CATALOGUE.iter().take(MOST_COMMON).collect(),
            (None, Some(search)) => {
                if !(3..=255).contains(&search.chars().count()) {
                    return Err(ApiError::validation("search must be 3 to 255 characters"));
                }
                let search = search.to_lowercase();
                let named =
                    |s: &&serde_json::Value| s["name"].as_str().is_some_and(|n| n.to_lowercase().contains(&search));
                CATALOGUE.iter().filter(named).collect()
            }
        };
        json(&serde_json::json!({ "sources": sources }))
    }

    fn link_connect(&self, world: &mut World, body: &[u8]) -> Result<Answer, ApiError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Field {
            field_name: String,
            field_value: String,
        }
        /// Both shapes: the 2025 `fields` list and the legacy guide's flat username/password.
        #[derive(Deserialize)]
        struct Request {
            link_token: String,
            source_id: String,
            fields: Option<Vec<Field>>,
            username: Option<String>,
            password: Option<String>,
        }
        let request: Request = parse(body)?;
        let (username, password) = match &request.fields {
            Some(fields) => {
                let field = |name: &str| fields.iter().find(|f| f.field_name == name).map(|f| f.field_value.clone());
                (field("username"), field("password"))
            }
            None => (request.username.clone(), request.password.clone()),
        };
        let (Some(username), Some(password)) = (username, password) else {
            return Err(ApiError::validation("username and password are required"));
        };
        let now = world.now();
        let token = self.link_token(world, &request.link_token)?;
        if let Some((connection_id, _)) = token.update.clone() {
            return self.reconnect(
                world,
                &request.link_token,
                &connection_id,
                &request.source_id,
                &username,
                &password,
            );
        }
        let source = source(&request.source_id)
            .filter(|s| token.source_ids.is_empty() || token.source_ids.iter().any(|id| id == s.id))
            .ok_or(ApiError::new(
                "INVALID_INPUT",
                "INVALID_SOURCE",
                "The source is not available for this link token",
            ))?;
        if token.connection_id.is_some() {
            return Err(ApiError::new(
                "INVALID_REQUEST",
                "ACTIVE_CONNECTION_EXISTS",
                "A connection attempt already exists for this link token",
            ));
        }
        let next = script(&username, &password);
        let connection_id = random_uuid().to_string();
        token.connection_id = Some(connection_id.clone());
        let public_token = format!("public-sandbox-{}", random_uuid());
        world.public_tokens.insert(
            public_token.clone(),
            PublicToken { connection_id: connection_id.clone(), issued_at: now, used: false },
        );
        world.connections.insert(
            connection_id.clone(),
            Connection {
                id: connection_id,
                source,
                username,
                phase: Phase::Connecting { until: now + self.options.connect_delay, next },
                phase_since: now,
                data_ready_at: None,
                refresh_until: None,
                refreshed: false,
                destroyed: false,
            },
        );
        json(&serde_json::json!({ "public_token": public_token, "job_guid": null }))
    }

    /// D4 in update mode: a new attempt on the existing connection behind the link token, under
    /// its access token; no public token is issued.
    fn reconnect(
        &self,
        world: &mut World,
        link_token: &str,
        connection_id: &str,
        source_id: &str,
        username: &str,
        password: &str,
    ) -> Result<Answer, ApiError> {
        let now = world.now();
        let token = self.link_token(world, link_token)?;
        if token.connection_id.is_some() {
            return Err(ApiError::new(
                "INVALID_REQUEST",
                "ACTIVE_CONNECTION_EXISTS",
                "A connection attempt already exists for this link token",
            ));
        }
        let connection =
            world.connections.get_mut(connection_id).filter(|c| !c.destroyed).ok_or_else(ApiError::access_token)?;
        if connection.source.id != source_id {
            return Err(ApiError::new("INVALID_INPUT", "INVALID_SOURCE", "The source is not the connection's source"));
        }

        // The portal account (and so the data) stays the connection's; only the login is new.
        connection.phase =
            Phase::Connecting { until: now + self.options.connect_delay, next: script(username, password) };
        connection.phase_since = now;
        connection.data_ready_at = None;
        connection.refresh_until = None;
        // Only an attempt that starts ties the link token to the connection: a refused one may be
        // made again.
        self.link_token(world, link_token)?.connection_id = Some(connection_id.to_owned());
        json(&serde_json::json!({ "public_token": null, "job_guid": random_uuid() }))
    }

    /// Makes connections need their user again, as when a portal password changed: D12 says
    /// `Error` / `InvalidCredentials` until an update-mode session signs in again.
    fn require_login(&self, body: &[u8]) -> StatusCode {
        #[derive(Deserialize)]
        struct Request {
            access_token: Option<String>,
        }
        let Ok(request) = serde_json::from_slice::<Request>(if body.is_empty() { b"{}" } else { body }) else {
            return StatusCode::BAD_REQUEST;
        };
        let mut world = self.world.lock().expect("mock world lock");
        let now = world.now();
        let only = match &request.access_token {
            Some(token) => match world.access_tokens.get(token) {
                Some(id) => Some(id.clone()),
                None => return StatusCode::NOT_FOUND,
            },
            None => None,
        };
        for connection in world.connections.values_mut() {
            connection.advance(now, self.options.extraction_delay);
            if connection.phase == Phase::Connected && only.as_ref().is_none_or(|id| *id == connection.id) {
                connection.phase = Phase::InvalidCredentials;
                connection.phase_since = now;
                connection.refresh_until = None;
            }
        }
        StatusCode::NO_CONTENT
    }

    fn link_connection_status(&self, world: &mut World, body: &[u8]) -> Result<Answer, ApiError> {
        let request: LinkTokenBody = parse(body)?;
        let now = world.now();
        let attempt = self.attempt(world, &request.link_token)?;
        let status = attempt.as_ref().map_or("New", |c| c.link_status(now));
        let information = (status == "MfaMethodChoice").then(|| MFA_METHODS.join("\n"));
        json(&serde_json::json!({ "status": status, "additional_information": information }))
    }

    fn mfa_get(&self, world: &mut World, body: &[u8]) -> Result<Answer, ApiError> {
        let request: LinkTokenBody = parse(body)?;
        let now = world.now();
        let pending = self.attempt(world, &request.link_token)?.map(|c| (c.phase, c.link_status(now)));
        let question = match pending {
            Some((_, "MfaQuestion")) => {
                format!("Enter the code we sent to your phone (mock: {MFA_ANSWER})")
            }
            Some((_, "SecurityQuestion")) => {
                format!("What was the name of your first pet? (mock: {MFA_ANSWER})")
            }
            _ => return Err(ApiError::new("INVALID_REQUEST", "SECURITY_QUESTION_NOT_FOUND", "No question is pending")),
        };
        json(&serde_json::json!({ "question": question }))
    }

    fn mfa_answer(&self, world: &mut World, body: &[u8]) -> Result<Answer, ApiError> {
        #[derive(Deserialize)]
        struct Request {
            link_token: String,
            answer: String,
        }
        let request: Request = parse(body)?;
        let now = world.now();
        let connect_delay = self.options.connect_delay;
        let connection = self.attempt(world, &request.link_token)?;
        let Some(connection) = connection.filter(|c| matches!(c.phase, Phase::Question { .. } | Phase::ChoosingMethod))
        else {
            return Err(ApiError::new("INVALID_REQUEST", "SECURITY_QUESTION_NOT_FOUND", "No question is pending"));
        };
        if connection.link_status(now) == "MfaQuestionNoAnswer" {
            return Err(ApiError::new("INVALID_REQUEST", "SECURITY_QUESTION_NOT_FOUND", "The question timed out"));
        }
        if connection.phase == Phase::ChoosingMethod {
            if !MFA_METHODS.contains(&request.answer.as_str()) {
                return Err(ApiError::validation("answer is not one of the MFA methods offered"));
            }
            // The code is on its way: Deck now asks for it.
            connection.phase = Phase::Question { kind: Question::Mfa, invalid: false };
        } else if request.answer.trim() == MFA_ANSWER {
            connection.phase = Phase::Connecting { until: now + connect_delay, next: Next::Connected };
        } else if let Phase::Question { kind, .. } = connection.phase {
            connection.phase = Phase::Question { kind, invalid: true };
        }
        connection.phase_since = now;
        Ok(Answer::Empty)
    }

    fn account_list(&self, world: &mut World, body: &[u8]) -> Result<Answer, ApiError> {
        let request: LinkTokenBody = parse(body)?;
        let accounts: Vec<serde_json::Value> = match self.attempt(world, &request.link_token)? {
            Some(connection) => connection
                .accounts()
                .into_iter()
                .map(|(number, _)| {
                    let id = uuid::Uuid::from_u64_pair(fnv(&connection.id), fnv(&number));
                    serde_json::json!({ "account_id": id, "account_number": number, "account_address": null })
                })
                .collect(),
            None => Vec::new(),
        };
        json(&serde_json::json!({ "accounts": accounts }))
    }

    fn account_select(&self, world: &mut World, body: &[u8]) -> Result<Answer, ApiError> {
        let request: LinkTokenBody = parse(body)?;
        let now = world.now();
        let connect_delay = self.options.connect_delay;
        match self.attempt(world, &request.link_token)? {
            Some(connection) if connection.phase == Phase::Selecting => {
                connection.phase = Phase::Connecting { until: now + connect_delay, next: Next::Connected };
                connection.phase_since = now;
                Ok(Answer::Empty)
            }
            _ => Err(ApiError::validation("No account selection is pending")),
        }
    }

    fn public_token_exchange(&self, world: &mut World, body: &[u8]) -> Result<Answer, ApiError> {
        #[derive(Deserialize)]
        struct Request {
            public_token: String,
        }
        let request: Request = parse(body)?;
        if request.public_token.is_empty() {
            return Err(ApiError::validation("public_token must not be empty"));
        }
        let now = world.now();
        let ttl = self.options.public_token_ttl;
        let token = world
            .public_tokens
            .get_mut(&request.public_token)
            .filter(|t| !t.used && now.duration_since(t.issued_at) < ttl)
            .ok_or_else(ApiError::public_token)?;
        token.used = true;
        let connection_id = token.connection_id.clone();
        let access_token = format!("access-sandbox-{}", random_uuid());
        world.access_tokens.insert(access_token.clone(), connection_id.clone());
        world.issued_access_tokens.push(access_token.clone());
        let username = world.connections[&connection_id].username.clone();
        json(&serde_json::json!({
            "access_token": access_token,
            "connection_id": connection_id,
            "fields": [{"field_name": "username", "field_value": username}],
        }))
    }

    fn connection_context(&self, world: &mut World, body: &[u8]) -> Result<Answer, ApiError> {
        let now = world.now();
        let connection = self.connection(world, body)?;
        let (status, reason) = connection.context_status(now);
        let entities: Vec<serde_json::Value> = connection
            .accounts()
            .into_iter()
            .map(|(number, _)| serde_json::json!({ "account_number": number }))
            .collect();
        let since = chrono::Utc::now() - now.duration_since(connection.phase_since);
        json(&serde_json::json!({
            "connection_id": connection.id,
            "provider": { "id": connection.source.id, "name": connection.source.name },
            "connection_status": status,
            "connection_status_timestamp": since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "connection_status_reason": reason,
            "num_of_entities": entities.len(),
            "entities": entities,
        }))
    }

    fn connection_accounts(&self, world: &mut World, body: &[u8]) -> Result<Answer, ApiError> {
        let connection = self.connection(world, body)?;
        let accounts: Vec<serde_json::Value> = connection
            .accounts()
            .into_iter()
            .map(|(number, _)| serde_json::json!({ "account_number": number, "is_selected": true }))
            .collect();
        json(&serde_json::json!({ "accounts": accounts }))
    }

    /// Endpoints that only need a live access token and answer 200 with nothing.
    fn connection_ok(&self, world: &mut World, body: &[u8]) -> Result<Answer, ApiError> {
        self.connection(world, body)?;
        Ok(Answer::Empty)
    }

    fn access_token_invalidate(&self, world: &mut World, body: &[u8]) -> Result<Answer, ApiError> {
        let request: AccessTokenBody = parse(body)?;
        self.connection(world, body)?;
        let connection_id = world.access_tokens.remove(&request.access_token).expect("checked just above");
        let new_token = format!("access-sandbox-{}", random_uuid());
        world.access_tokens.insert(new_token.clone(), connection_id);
        world.issued_access_tokens.push(new_token.clone());
        json(&serde_json::json!({ "new_access_token": new_token }))
    }

    fn connection_refresh(&self, world: &mut World, body: &[u8]) -> Result<Answer, ApiError> {
        let now = world.now();
        let refresh_delay = self.options.refresh_delay;
        let connection = self.connection(world, body)?;
        if connection.phase == Phase::InvalidCredentials {
            // A new scraping session starts and fails on the portal's login again.
            return Ok(Answer::Empty);
        }
        if connection.phase != Phase::Connected {
            return Err(ApiError::new("CONNECTION_ERROR", "CONNECTION_FAILED", "The connection is not connected"));
        }
        connection.refresh_until = Some(now + refresh_delay);
        connection.refreshed = true;
        Ok(Answer::Empty)
    }

    fn connection_destroy(&self, world: &mut World, body: &[u8]) -> Result<Answer, ApiError> {
        let connection = self.connection(world, body)?;
        connection.destroyed = true;
        let id = connection.id.clone();
        world.access_tokens.retain(|_, connection_id| *connection_id != id);
        Ok(Answer::Empty)
    }

    fn sustainability_get(&self, world: &mut World, body: &[u8]) -> Result<Answer, ApiError> {
        let now = world.now();
        let connection = self.connection(world, body)?;
        if connection.phase != Phase::Connected || !connection.data_ready(now) {
            return Err(ApiError::new(
                "CONNECTION_ERROR",
                "PRODUCT_NOT_READY",
                "This connection is still ongoing, try again later",
            ));
        }
        json(&sustainability(connection))
    }

    fn tokens(&self) -> axum::Json<serde_json::Value> {
        let world = self.world.lock().expect("mock world lock");
        axum::Json(serde_json::json!({
            "link_tokens": world.link_tokens.keys().collect::<Vec<_>>(),
            "public_tokens": world.public_tokens.keys().collect::<Vec<_>>(),
            "access_tokens": world.issued_access_tokens,
        }))
    }

    fn finish_extraction(&self) -> StatusCode {
        let mut world = self.world.lock().expect("mock world lock");
        let now = world.now();
        for connection in world.connections.values_mut() {
            connection.advance(now, self.options.extraction_delay);
            if connection.phase == Phase::Connected {
                connection.data_ready_at = Some(now);
                connection.refresh_until = None;
            }
        }
        StatusCode::NO_CONTENT
    }
}

async fn advance_clock(State(mock): State<Arc<Mock>>, body: Bytes) -> StatusCode {
    #[derive(Deserialize)]
    struct Request {
        seconds: u64,
    }
    match serde_json::from_slice::<Request>(&body) {
        Ok(request) => {
            mock.world.lock().expect("mock world lock").clock_offset += Duration::from_secs(request.seconds);
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// A statement in D20's shape; amounts are written as exact JSON number text.
#[derive(Serialize)]
struct StatementOut {
    statement_id: String,
    customer_name: String,
    customer_number: String,
    account_number: String,
    statement_number: Option<String>,
    billing_address: String,
    billing_period_start_date: NaiveDate,
    billing_period_end_date: NaiveDate,
    billing_period_duration_days: i64,
    billing_date: NaiveDate,
    next_billing_date: NaiveDate,
    payment_due_date: NaiveDate,
    auto_pay_date: Option<NaiveDate>,
    previous_total_due_amount: Box<RawValue>,
    balance_forward: Box<RawValue>,
    total_due_amount: Box<RawValue>,
    currency_code: &'static str,
    payments: Vec<serde_json::Value>,
}

fn amount(cents: u64) -> Box<RawValue> {
    RawValue::from_string(format!("{}.{:02}", cents / 100, cents % 100)).expect("a decimal is a JSON number")
}

/// D20's payload.
#[derive(Serialize)]
struct SustainabilityOut {
    source_name: &'static str,
    source_country: &'static str,
    username: String,
    accounts: Vec<AccountOut>,
}

#[derive(Serialize)]
struct AccountOut {
    account_number: String,
    statements: Vec<StatementOut>,
}

/// D20's payload for `connection`, serialized as is (a `serde_json::Value` would turn the exact
/// amounts into floats).
fn sustainability(connection: &Connection) -> SustainabilityOut {
    let accounts = connection
        .accounts()
        .into_iter()
        .map(|(number, statements)| {
            let customer_number = format!("CUS-{}", &number[..5]);
            let mut previous = 0;
            let statements = statements
                .iter()
                .rev()
                .map(|(id, end, cents)| {
                    let start = *end - Months::new(1);
                    let out = StatementOut {
                        statement_id: id.clone(),
                        customer_name: "Mock Customer".to_owned(),
                        customer_number: customer_number.clone(),
                        account_number: number.clone(),
                        statement_number: None,
                        billing_address: "Mock Customer\n1 Test Street".to_owned(),
                        billing_period_start_date: start,
                        billing_period_end_date: *end,
                        billing_period_duration_days: (*end - start).num_days(),
                        billing_date: *end,
                        next_billing_date: *end + Months::new(1),
                        payment_due_date: *end + chrono::Days::new(18),
                        auto_pay_date: None,
                        previous_total_due_amount: amount(previous),
                        balance_forward: RawValue::from_string("0".to_owned()).expect("zero is JSON"),
                        total_due_amount: amount(*cents),
                        currency_code: connection.source.currency,
                        payments: Vec::new(),
                    };
                    previous = *cents;
                    out
                })
                .collect();
            AccountOut { account_number: number, statements }
        })
        .collect();
    SustainabilityOut {
        source_name: connection.source.name,
        source_country: connection.source.country,
        username: connection.username.clone(),
        accounts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_amounts_keep_their_exact_text() {
        let connection = Connection {
            id: "c".into(),
            source: &SOURCES[0],
            username: "user_good".into(),
            phase: Phase::Connected,
            phase_since: Instant::now(),
            data_ready_at: Some(Instant::now()),
            refresh_until: None,
            refreshed: false,
            destroyed: false,
        };
        let text = serde_json::to_string(&sustainability(&connection)).unwrap();
        let payload: serde_json::Value = serde_json::from_str(&text).unwrap();
        let accounts = payload["accounts"].as_array().unwrap();
        assert_eq!(accounts.len(), 2);
        assert_eq!(accounts[0]["statements"].as_array().unwrap().len(), 3);
        assert!(text.contains("\"previous_total_due_amount\":0.00,"), "amounts keep two decimals: {text}");
        assert_eq!(connection.accounts(), connection.accounts(), "deterministic");
    }

    #[test]
    fn attempts_progress_over_time() {
        let start = Instant::now();
        let mut connection = Connection {
            id: "c".into(),
            source: &SOURCES[0],
            username: "user_mfa".into(),
            phase: Phase::Connecting { until: start + Duration::from_secs(1), next: Next::Question(Question::Mfa) },
            phase_since: start,
            data_ready_at: None,
            refresh_until: None,
            refreshed: false,
            destroyed: false,
        };
        connection.advance(start, Duration::from_secs(5));
        assert_eq!(connection.link_status(start), "Connecting");
        let later = start + Duration::from_secs(2);
        connection.advance(later, Duration::from_secs(5));
        assert_eq!(connection.link_status(later), "MfaQuestion");
        assert_eq!(connection.link_status(later + QUESTION_TIMEOUT + Duration::from_secs(2)), "MfaQuestionNoAnswer");
    }
}

//! A mock of Vumi Finlink's API (docs/providers/vumi.md) under `/api/v1`: JSON answers, refusals
//! as `{"message": ...}`, `X-Request-ID` on every answer and `X-Client-Trace-ID` echoed.
//!
//! Token rules, as Vumi states them:
//!
//! - **Sessions.** `POST /auth/login` with the configured `clientId`/`clientSecret` returns an
//!   ES256 JWT that expires after `--session-ttl` (1 hour). Only one session lives at a time: a
//!   new login ends the previous one, whose calls then answer 401, as does any expired or unknown
//!   token.
//! - **Public tokens** come from the widget, which the mock does not serve: `POST
//!   /__admin/connect` with `{"externalId": ..., "entity": ..., "storeCredentials"?}` plays the
//!   user completing it (letting Vumi keep their credentials unless `storeCredentials` is false:
//!   V5's `hasCredentials`) and returns `{"publicToken": ...}`. Unexchanged tokens are listed by
//!   `GET /queries/connections/pending`; exchange is single use (404 the second time).
//! - **Connections** are `PENDING` for `--import-delay` after the exchange, then `READY`, with
//!   `credentialsToken` equal to the exchanged `connectionToken`; `DELETE` removes them (404
//!   afterwards).
//!
//! Data is deterministic per connection: a broker cash account (`OTHER`) tied to one stock
//! portfolio, a bank account (`CASH_ACCOUNT`), two positions (a Spanish stock and a US ETF), the
//! two instruments, three account transactions and three portfolio transactions. Fields of
//! account and portfolio transactions, which Vumi does not document, follow the adapter's
//! inferred shapes.
//!
//! Requests are held to what Vumi documents: another method than an endpoint's is 405, a body
//! that is not `application/json` 415, and a login or start-flow body with a property Vumi does
//! not list (or an exchange with any body) 400, each as `{"message"}`.
//!
//! Webhooks: `GET /webhook_verification/{keyId}` serves the mock's public key. With
//! `--webhook-url`, the mock POSTs `{"event": "CONNECTION_STATUS", "credentialsToken", "status",
//! "externalId"}` when a connection is exchanged and when its import finishes, signed in the
//! `vumi-verification` header (ES256 JWT with `iat` and `request_body_sha256`);
//! `POST /__admin/webhook` with `{"connectionToken": ...}` sends one now. Vumi publishes neither
//! the payload nor the claims, so tests also need deliveries shaped otherwise:
//! `POST /__admin/webhook/raw` with `{"url", "body", "typ"?}` signs `body` as it is (header `typ`
//! as given, absent when null; default `JWT`) and POSTs it to `url`, answering
//! `{"delivered": status, "answer": text}`.
//!
//! Restore and manual update (repair): `POST /__admin/connections/require-restore` with
//! `{"connectionToken": ...}` makes a connection need its user (credentials changed at the
//! entity): V5 says `UPDATE_ERROR` with `errorDetails` and a `restoreToken`.
//! `POST /__admin/connections/require-update` makes its daily refresh impossible (an MFA
//! connection: only the user can update it): V5 says `UPDATE_ERROR` with `errorDetails` and an
//! `updateToken`. Either way its data stays served and a webhook announces the new token, as Vumi
//! announces restore and update tokens. `POST /__admin/widget` with `{"id": <redirect id>,
//! "restore_token": ...}` or `{"id", "update_token": ...}` plays the user completing the widget
//! started with those link parameters: the token (which must be the one offered under that
//! parameter) is consumed, the connection is `UPDATING` for `--import-delay`, then `READY`, under
//! the same connection token, and no public token is issued (what Vumi does here is undocumented;
//! this is the mock's reading, as are the `errorDetails` reasons).
//!
//! Entities (V3 `GET /queries/entities`, path and fields inferred): the app's [`ENTITIES`], a bare
//! array of `{id, name, type, level}`.
//!
//! Admin routes beside the shared ones (see [`crate`]): `/__admin/connect` (above),
//! `POST /__admin/session/expire` (ends the live session, as its hour running out would),
//! `GET /__admin/tokens` (every session, public and connection token issued, for tests that
//! check nothing leaks), `GET /__admin/trace_ids` (every `X-Client-Trace-ID` received).

use super::{FaultRule, Harness, MockServer, admin_routes, parse_fault, serve};
use crate::jws::{SigningKey, body_sha256};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use bytes::Bytes;
use humantime::parse_duration;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The API's base path: the base URL of a mock is `http://ADDR/api/v1`, like Vumi's.
pub const API_PREFIX: &str = "/api/v1";
/// The id of the mock's webhook signing key.
pub const WEBHOOK_KEY_ID: &str = "6f1c2b9e-3d4a-4e5f-8a7b-1c2d3e4f5a6b";

/// How the Vumi mock behaves (`linkgate-mock vumi --help`).
#[derive(Debug, Clone, clap::Args)]
pub struct VumiMockOptions {
    /// Client id accepted by `/auth/login`.
    #[arg(long, default_value = "test-client")]
    pub client_id: String,

    /// Client secret accepted by `/auth/login`.
    #[arg(long, default_value = "test-secret")]
    pub secret: String,

    /// How long a session JWT lives.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub session_ttl: Duration,

    /// How long a connection stays `PENDING` after its exchange.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub import_delay: Duration,

    /// Where to POST signed webhooks (none when absent).
    #[arg(long)]
    pub webhook_url: Option<String>,

    /// A fault to script from the start, as the admin API takes it (repeatable), e.g.
    /// `--fault '{"kind":"status","status":500,"times":2,"path":"/auth/login"}'`.
    #[arg(long = "fault", value_parser = parse_fault)]
    pub faults: Vec<FaultRule>,
}

impl Default for VumiMockOptions {
    fn default() -> Self {
        Self {
            client_id: "test-client".to_owned(),
            secret: "test-secret".to_owned(),
            session_ttl: Duration::from_secs(3600),
            import_delay: Duration::from_secs(2),
            webhook_url: None,
            faults: Vec::new(),
        }
    }
}

/// Starts the mock on `addr` (port 0 picks one; [`MockServer::addr`] tells which).
pub async fn spawn(addr: SocketAddr, options: VumiMockOptions) -> std::io::Result<MockServer> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let harness =
        Harness::new(API_PREFIX, |status| json!({ "message": status.canonical_reason() }), options.faults.clone());
    let mock = Arc::new(Mock {
        options,
        key: SigningKey::generate(WEBHOOK_KEY_ID),
        webhooks: super::webhook_client(),
        world: Mutex::default(),
    });
    let api = |path: &str| format!("{API_PREFIX}{path}");
    let router = Router::new()
        .route(&api("/auth/login"), post(login))
        .route(&api("/commands/connections/start-flow"), post(start_flow))
        .route(&api("/commands/connections/exchange/{public_token}"), post(exchange))
        .route(&api("/commands/connections/{token}"), delete(delete_connection))
        .route(&api("/queries/entities"), get(list_entities))
        .route(&api("/queries/connections"), get(list_connections))
        .route(&api("/queries/connections/pending"), get(pending_tokens))
        .route(&api("/queries/connections/{token}"), get(connection_status))
        .route(&api("/queries/connections/{token}/{*listing}"), get(listing))
        .route(&api("/webhook_verification/{key_id}"), get(verification_key))
        .route("/__admin/connect", post(admin_connect))
        .route("/__admin/session/expire", post(admin_expire))
        .route("/__admin/connections/require-restore", post(admin_require_restore))
        .route("/__admin/connections/require-update", post(admin_require_update))
        .route("/__admin/widget", post(admin_widget))
        .route("/__admin/tokens", get(admin_tokens))
        .route("/__admin/trace_ids", get(admin_trace_ids))
        .route("/__admin/webhook", post(admin_webhook))
        .route("/__admin/webhook/raw", post(admin_raw_webhook))
        .method_not_allowed_fallback(|| async { refuse(StatusCode::METHOD_NOT_ALLOWED, "method not allowed") })
        .with_state(mock)
        .merge(admin_routes(harness.clone()));
    serve(listener, harness, router)
}

struct Mock {
    options: VumiMockOptions,
    key: SigningKey,
    webhooks: reqwest::Client,
    world: Mutex<World>,
}

/// Everything the mock remembers.
#[derive(Default)]
struct World {
    /// The one live session and when it ends.
    session: Option<(String, Instant)>,
    sessions_issued: Vec<String>,
    public_tokens: HashMap<String, PublicToken>,
    connections: HashMap<String, Connection>,
    request_count: u64,
    /// Every `X-Client-Trace-ID` received, in order.
    client_trace_ids: Vec<String>,
}

struct PublicToken {
    external_id: Option<String>,
    entity: String,
    created_at: chrono::DateTime<chrono::Utc>,
    used: bool,
    /// Whether the user let Vumi keep their credentials (V5 `hasCredentials`).
    has_credentials: bool,
}

struct Connection {
    /// The public token it was exchanged from.
    public_token: String,
    entity: String,
    external_id: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    exchanged_at: Instant,
    /// Set while the user must restore the connection in the widget (`restore_token`).
    restore_token: Option<String>,
    /// Set while only a manual update by the user in the widget can refresh it (`update_token`).
    update_token: Option<String>,
    /// When the user last restored it: an update runs for the import delay.
    restored_at: Option<Instant>,
    /// Whether Vumi keeps the user's credentials (and so updates it daily by itself).
    has_credentials: bool,
}

impl Connection {
    fn status(&self, import_delay: Duration) -> &'static str {
        if self.restore_token.is_some() || self.update_token.is_some() {
            // The data already extracted stays served.
            "UPDATE_ERROR"
        } else if self.restored_at.is_some_and(|at| at.elapsed() < import_delay) {
            "UPDATING"
        } else if self.exchanged_at.elapsed() < import_delay {
            "PENDING"
        } else {
            "READY"
        }
    }
}

/// A refusal with Vumi's (inferred) error body.
fn refuse(status: StatusCode, message: &str) -> Response<Body> {
    (status, axum::Json(json!({ "message": message }))).into_response()
}

/// The refusal of a request body that is not what the endpoint documents: not JSON
/// (`Content-Type: application/json`, as every documented request has), not an object, or with
/// a property the endpoint does not list. Vumi's own answer is unpublished; the mock answers as
/// its documented 400 ("missing or incorrect information") and 415 would.
fn documented_body(headers: &HeaderMap, body: &[u8], keys: &[&str]) -> Option<Response<Body>> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !content_type.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/json") {
        return Some(refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "the body must be application/json"));
    }
    let Ok(object) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body) else {
        return Some(refuse(StatusCode::BAD_REQUEST, "the body must be a JSON object"));
    };
    let unknown = object.keys().find(|key| !keys.contains(&key.as_str()))?;
    Some(refuse(StatusCode::BAD_REQUEST, &format!("unknown property {unknown:?}")))
}

/// A JSON answer.
fn answer(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    (status, axum::Json(body)).into_response()
}

fn random_uuid() -> String {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string()
}

/// A JSON number from its exact text, as Vumi writes amounts.
fn number(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).expect("literal numbers are valid JSON")
}

/// Adds `X-Request-ID` and echoes `X-Client-Trace-ID`, as Vumi does on every answer.
fn traced(world: &mut World, headers: &HeaderMap, mut response: Response<Body>) -> Response<Body> {
    world.request_count += 1;
    let id = format!("vumi-req-{:08}", world.request_count);
    response.headers_mut().insert("x-request-id", HeaderValue::from_str(&id).expect("an ascii id"));
    if let Some(trace) = headers.get("x-client-trace-id") {
        world.client_trace_ids.push(trace.to_str().unwrap_or("?").to_owned());
        response.headers_mut().insert("x-client-trace-id", trace.clone());
    }
    response
}

type Handler = fn(&Mock, &mut World, &str, &Uri) -> Response<Body>;

/// Runs `handler` when the bearer token is the live session; 401 otherwise.
async fn authorised(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    uri: Uri,
    argument: String,
    handler: Handler,
) -> Response<Body> {
    let mut world = mock.world.lock().expect("mock world lock");
    let bearer =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let live = matches!((&world.session, bearer), (Some((token, until)), Some(bearer)) if token == bearer && Instant::now() < *until);
    let response = if live {
        handler(&mock, &mut world, &argument, &uri)
    } else {
        refuse(StatusCode::UNAUTHORIZED, "invalid or expired session token")
    };
    traced(&mut world, &headers, response)
}

async fn login(State(mock): State<Arc<Mock>>, headers: HeaderMap, body: Bytes) -> Response<Body> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Login {
        client_id: String,
        client_secret: String,
    }
    let mut world = mock.world.lock().expect("mock world lock");
    if let Some(refused) = documented_body(&headers, &body, &["clientId", "clientSecret", "scopes"]) {
        return traced(&mut world, &headers, refused);
    }
    let response = match serde_json::from_slice::<Login>(&body) {
        Err(_) => refuse(StatusCode::BAD_REQUEST, "clientId and clientSecret are required"),
        Ok(login) if login.client_id != mock.options.client_id || login.client_secret != mock.options.secret => {
            refuse(StatusCode::UNAUTHORIZED, "invalid credentials")
        }
        Ok(_) => {
            let issued = chrono::Utc::now();
            let ttl = mock.options.session_ttl;
            let claims = json!({
                "sub": mock.options.client_id, "jti": random_uuid(),
                "iat": issued.timestamp(), "exp": issued.timestamp() + ttl.as_secs() as i64,
            });
            let token = mock.key.sign(&claims);
            // One live session per credential pair: this one ends the previous.
            world.session = Some((token.clone(), Instant::now() + ttl));
            world.sessions_issued.push(token.clone());
            answer(StatusCode::OK, json!({ "token": token }))
        }
    };
    traced(&mut world, &headers, response)
}

async fn start_flow(state: State<Arc<Mock>>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response<Body> {
    let keys = ["id", "product", "subproduct", "entity", "externalId", "desiredOwners"];
    if let Some(refused) = documented_body(&headers, &body, &keys) {
        return refused;
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    authorised(state, headers, uri, body, |mock, _, body, _| {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct StartFlow {
            id: uuid::Uuid,
            product: String,
            #[serde(default)]
            external_id: Option<String>,
        }
        match serde_json::from_str::<StartFlow>(body) {
            Ok(flow) => {
                let claims = json!({
                    "redirect": flow.id, "product": flow.product, "externalId": flow.external_id,
                    "iat": chrono::Utc::now().timestamp(),
                });
                answer(StatusCode::OK, json!({ "token": mock.key.sign(&claims) }))
            }
            Err(_) => refuse(StatusCode::BAD_REQUEST, "id (uuid) and product are required"),
        }
    })
    .await
}

async fn exchange(
    state: State<Arc<Mock>>,
    headers: HeaderMap,
    uri: Uri,
    Path(token): Path<String>,
    body: Bytes,
) -> Response<Body> {
    // The public token is in the path; Vumi documents no body.
    if !body.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "this endpoint takes no body");
    }
    let (mock, public_token) = (state.0.clone(), token.clone());
    let response = authorised(state, headers, uri, token, |_, world, public_token, _| {
        let Some(public) = world.public_tokens.get_mut(public_token).filter(|p| !p.used) else {
            return refuse(
                StatusCode::NOT_FOUND,
                "connection not found with the given public token for the current app",
            );
        };
        public.used = true;
        let connection = Connection {
            public_token: public_token.to_owned(),
            entity: public.entity.clone(),
            external_id: public.external_id.clone(),
            created_at: public.created_at,
            exchanged_at: Instant::now(),
            restore_token: None,
            update_token: None,
            restored_at: None,
            has_credentials: public.has_credentials,
        };
        let token = format!("conn-{}", random_uuid());
        world.connections.insert(token.clone(), connection);
        answer(StatusCode::OK, json!({ "connectionToken": token }))
    })
    .await;
    if response.status().is_success() {
        mock.announce_exchange(&public_token);
    }
    response
}

async fn delete_connection(
    state: State<Arc<Mock>>,
    headers: HeaderMap,
    uri: Uri,
    Path(token): Path<String>,
) -> Response<Body> {
    authorised(state, headers, uri, token, |_, world, token, _| match world.connections.remove(token) {
        Some(_) => answer(StatusCode::OK, json!({ "message": "success" })),
        None => refuse(StatusCode::NOT_FOUND, "connection not found with the given token for the current app"),
    })
    .await
}

async fn listing(
    state: State<Arc<Mock>>,
    headers: HeaderMap,
    uri: Uri,
    Path((token, listing)): Path<(String, String)>,
) -> Response<Body> {
    authorised(state, headers, uri, format!("{token}\n{listing}"), |_, world, argument, _| {
        let (token, listing) = argument.split_once('\n').expect("joined above");
        if !world.connections.contains_key(token) {
            return refuse(StatusCode::NOT_FOUND, "connection not found with the given token for the current app");
        }
        match mock_data(token, listing) {
            Some(data) => answer(StatusCode::OK, data),
            None => refuse(StatusCode::NOT_FOUND, "not found"),
        }
    })
    .await
}

/// The entities the mock's app exposes, as `(id, name, type)`: Spanish banks, brokers and
/// crypto exchanges, in no particular order.
pub const ENTITIES: [(&str, &str, &str); 36] = [
    ("santander", "Banco Santander", "BANK"),
    ("bbva", "BBVA", "BANK"),
    ("caixabank", "CaixaBank", "BANK"),
    ("sabadell", "Banco Sabadell", "BANK"),
    ("bankinter", "Bankinter", "BANK"),
    ("ing", "ING España", "BANK"),
    ("openbank", "Openbank", "BANK"),
    ("kutxabank", "Kutxabank", "BANK"),
    ("unicaja", "Unicaja Banco", "BANK"),
    ("abanca", "ABANCA", "BANK"),
    ("ibercaja", "Ibercaja", "BANK"),
    ("cajamar", "Cajamar", "BANK"),
    ("evo", "EVO Banco", "BANK"),
    ("deutsche-bank-es", "Deutsche Bank España", "BANK"),
    ("laboral-kutxa", "Laboral Kutxa", "BANK"),
    ("caja-rural", "Caja Rural", "BANK"),
    ("self-bank", "Self Bank", "BANK"),
    ("n26", "N26", "BANK"),
    ("revolut", "Revolut", "BANK"),
    ("myinvestor", "MyInvestor", "BROKER"),
    ("renta4", "Renta 4 Banco", "BROKER"),
    ("degiro", "DEGIRO", "BROKER"),
    ("interactive-brokers", "Interactive Brokers", "BROKER"),
    ("trade-republic", "Trade Republic", "BROKER"),
    ("indexa-capital", "Indexa Capital", "BROKER"),
    ("finizens", "Finizens", "BROKER"),
    ("inversis", "Inversis", "BROKER"),
    ("andbank", "Andbank España", "BROKER"),
    ("mapfre-inversion", "Mapfre Inversión", "BROKER"),
    ("xtb", "XTB", "BROKER"),
    ("etoro", "eToro", "BROKER"),
    ("scalable-capital", "Scalable Capital", "BROKER"),
    ("bit2me", "Bit2Me", "CRYPTO"),
    ("binance", "Binance", "CRYPTO"),
    ("coinbase", "Coinbase", "CRYPTO"),
    ("kraken", "Kraken", "CRYPTO"),
];

/// "List entities for app": a bare array, like Vumi's other lists (the entity fields are the
/// mock's reading; Vumi's page does not show them).
async fn list_entities(state: State<Arc<Mock>>, headers: HeaderMap, uri: Uri) -> Response<Body> {
    authorised(state, headers, uri, String::new(), |_, _, _, _| {
        let entities: Vec<serde_json::Value> = ENTITIES
            .iter()
            .map(|(id, name, kind)| json!({ "id": id, "name": name, "type": kind, "level": "PROD" }))
            .collect();
        answer(StatusCode::OK, json!(entities))
    })
    .await
}

async fn list_connections(state: State<Arc<Mock>>, headers: HeaderMap, uri: Uri) -> Response<Body> {
    authorised(state, headers, uri, String::new(), Mock::list).await
}

async fn pending_tokens(state: State<Arc<Mock>>, headers: HeaderMap, uri: Uri) -> Response<Body> {
    authorised(state, headers, uri, String::new(), Mock::pending).await
}

async fn connection_status(
    state: State<Arc<Mock>>,
    headers: HeaderMap,
    uri: Uri,
    Path(token): Path<String>,
) -> Response<Body> {
    authorised(state, headers, uri, token, Mock::status).await
}

async fn verification_key(
    state: State<Arc<Mock>>,
    headers: HeaderMap,
    uri: Uri,
    Path(key_id): Path<String>,
) -> Response<Body> {
    authorised(state, headers, uri, key_id, Mock::jwk).await
}

/// The `externalId` query parameter.
fn external_id(uri: &Uri) -> Option<String> {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "externalId")
        .map(|(_, value)| value.into_owned())
}

impl Mock {
    fn connection_json(&self, token: &str, connection: &Connection) -> serde_json::Value {
        let created = connection.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let status = connection.status(self.options.import_delay);
        let error_details = match (&connection.restore_token, &connection.update_token) {
            (Some(_), _) => Some(json!({ "reason": "USER_ACTION_REQUIRED", "type": "USER_ERROR", "retryable": false })),
            (None, Some(_)) => {
                Some(json!({ "reason": "MANUAL_UPDATE_REQUIRED", "type": "USER_ERROR", "retryable": false }))
            }
            (None, None) => None,
        };
        let synced = status == "READY" || connection.exchanged_at.elapsed() >= self.options.import_delay;
        json!({
            "credentialsToken": token, "status": status, "errorDetails": error_details, "entity": connection.entity,
            "createdAt": created, "updatedAt": created, "lastSync": synced.then_some(&created),
            "updateToken": connection.update_token, "restoreToken": connection.restore_token, "twoFactorEnabled": false, "hasCredentials": connection.has_credentials,
            "externalId": connection.external_id,
        })
    }

    fn list(&self, world: &mut World, _: &str, uri: &Uri) -> Response<Body> {
        let filter = external_id(uri);
        let listed: Vec<_> = world
            .connections
            .iter()
            .filter(|(_, c)| filter.is_none() || c.external_id == filter)
            .map(|(token, c)| self.connection_json(token, c))
            .collect();
        answer(StatusCode::OK, json!(listed))
    }

    fn pending(&self, world: &mut World, _: &str, uri: &Uri) -> Response<Body> {
        let filter = external_id(uri);
        let listed: Vec<_> = world
            .public_tokens
            .iter()
            .filter(|(_, p)| !p.used && (filter.is_none() || p.external_id == filter))
            .map(|(token, p)| {
                json!({
                    "publicToken": token, "externalId": p.external_id,
                    "createdAt": p.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                })
            })
            .collect();
        answer(StatusCode::OK, json!(listed))
    }

    fn status(&self, world: &mut World, token: &str, _: &Uri) -> Response<Body> {
        match world.connections.get(token) {
            Some(connection) => answer(StatusCode::OK, self.connection_json(token, connection)),
            None => refuse(StatusCode::NOT_FOUND, "connection not found with the given token for the current app"),
        }
    }

    fn jwk(&self, _: &mut World, key_id: &str, _: &Uri) -> Response<Body> {
        if key_id == self.key.kid() {
            answer(StatusCode::OK, self.key.jwk())
        } else {
            refuse(StatusCode::NOT_FOUND, "key not found for the given ID")
        }
    }

    /// Sends the status webhook of the connection exchanged from `public_token` now, and again
    /// once its import finished.
    fn announce_exchange(self: &Arc<Self>, public_token: &str) {
        if self.options.webhook_url.is_none() {
            return;
        }
        let exchanged = {
            let world = self.world.lock().expect("mock world lock");
            world.connections.iter().find(|(_, c)| c.public_token == public_token).map(|(token, _)| token.clone())
        };
        if let Some(token) = exchanged {
            let mock = self.clone();
            tokio::spawn(async move {
                mock.send_webhook(&token).await;
                tokio::time::sleep(mock.options.import_delay).await;
                mock.send_webhook(&token).await;
            });
        }
    }

    /// Sends connection `token`'s status webhook now and, when `again`, once more after the
    /// import delay (an update that runs).
    fn announce(self: &Arc<Self>, token: String, again: bool) {
        if self.options.webhook_url.is_none() {
            return;
        }
        let mock = self.clone();
        tokio::spawn(async move {
            mock.send_webhook(&token).await;
            if again {
                tokio::time::sleep(mock.options.import_delay).await;
                mock.send_webhook(&token).await;
            }
        });
    }

    /// POSTs the connection's status to the webhook URL, signed; returns the receiver's status.
    async fn send_webhook(&self, token: &str) -> Option<StatusCode> {
        let url = self.options.webhook_url.as_ref()?;
        let body = {
            let world = self.world.lock().expect("mock world lock");
            let connection = world.connections.get(token)?;
            json!({
                "event": "CONNECTION_STATUS", "credentialsToken": token,
                "status": connection.status(self.options.import_delay), "externalId": connection.external_id,
            })
            .to_string()
        };
        let signature = self.key.sign(&json!({
            "iat": chrono::Utc::now().timestamp(), "request_body_sha256": body_sha256(body.as_bytes()),
        }));
        let sent = self
            .webhooks
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header("vumi-verification", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) => Some(response.status()),
            Err(error) => {
                tracing::warn!(error = %error, "mock: webhook delivery failed");
                None
            }
        }
    }
}

async fn admin_connect(State(mock): State<Arc<Mock>>, body: Bytes) -> Response<Body> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Connect {
        #[serde(default)]
        external_id: Option<String>,
        #[serde(default)]
        entity: Option<String>,
        #[serde(default)]
        store_credentials: Option<bool>,
    }
    let Ok(connect) = serde_json::from_slice::<Connect>(&body) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "expected {\"externalId\": ..., \"entity\": ..., \"storeCredentials\"?}",
        );
    };
    let token = random_uuid();
    let public = PublicToken {
        external_id: connect.external_id,
        entity: connect.entity.unwrap_or_else(|| "santander".to_owned()),
        created_at: chrono::Utc::now(),
        used: false,
        has_credentials: connect.store_credentials.unwrap_or(true),
    };
    mock.world.lock().expect("mock world lock").public_tokens.insert(token.clone(), public);
    answer(StatusCode::OK, json!({ "publicToken": token }))
}

/// The user action a connection may wait for in the widget, by its link parameter.
#[derive(Clone, Copy)]
enum UserAction {
    /// `restore_token`: the connection is blocked (credentials changed at the entity).
    Restore,
    /// `update_token`: only a manual update by the user refreshes it.
    Update,
}

impl UserAction {
    /// The token the connection offers for this action.
    fn offered(self, connection: &Connection) -> Option<&str> {
        match self {
            Self::Restore => connection.restore_token.as_deref(),
            Self::Update => connection.update_token.as_deref(),
        }
    }

    /// Where the connection keeps that token.
    fn slot(self, connection: &mut Connection) -> &mut Option<String> {
        match self {
            Self::Restore => &mut connection.restore_token,
            Self::Update => &mut connection.update_token,
        }
    }
}

/// Makes a connection need its user (credentials changed at the entity): `UPDATE_ERROR` with a
/// `restoreToken`, announced by webhook as Vumi announces new restore tokens.
async fn admin_require_restore(State(mock): State<Arc<Mock>>, body: Bytes) -> Response<Body> {
    require_action(&mock, &body, UserAction::Restore, "restoreToken")
}

/// Makes a connection need a manual update (an MFA connection Vumi cannot refresh on its own):
/// `UPDATE_ERROR` with an `updateToken`, announced by webhook as Vumi announces new update tokens.
async fn admin_require_update(State(mock): State<Arc<Mock>>, body: Bytes) -> Response<Body> {
    require_action(&mock, &body, UserAction::Update, "updateToken")
}

/// Offers a new token for `action` on the connection `body` names, answered as `{field: token}`.
fn require_action(mock: &Arc<Mock>, body: &[u8], action: UserAction, field: &str) -> Response<Body> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Block {
        connection_token: String,
    }
    let Ok(block) = serde_json::from_slice::<Block>(body) else {
        return refuse(StatusCode::BAD_REQUEST, "expected {\"connectionToken\": ...}");
    };
    let token = random_uuid();
    {
        let mut world = mock.world.lock().expect("mock world lock");
        let Some(connection) = world.connections.get_mut(&block.connection_token) else {
            return refuse(StatusCode::NOT_FOUND, "connection not found with the given token for the current app");
        };
        *action.slot(connection) = Some(token.clone());
    }
    mock.announce(block.connection_token, false);
    answer(StatusCode::OK, json!({ field: token }))
}

/// The user completing the widget started with link parameters `id` and `restore_token` (or
/// `update_token`): the same connection updates under the same connection token; no public token
/// is issued.
async fn admin_widget(State(mock): State<Arc<Mock>>, body: Bytes) -> Response<Body> {
    #[derive(Deserialize)]
    struct Widget {
        id: uuid::Uuid,
        #[serde(default)]
        restore_token: Option<String>,
        #[serde(default)]
        update_token: Option<String>,
    }
    let Ok(widget) = serde_json::from_slice::<Widget>(&body) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "expected {\"id\": <redirect uuid>, \"restore_token\" or \"update_token\": ...}",
        );
    };
    // The redirect id is required for updates too.
    if widget.id.is_nil() {
        return refuse(StatusCode::BAD_REQUEST, "id must be the app's redirect id");
    }
    let (action, token) = match (widget.restore_token, widget.update_token) {
        (Some(token), None) => (UserAction::Restore, token),
        (None, Some(token)) => (UserAction::Update, token),
        _ => return refuse(StatusCode::BAD_REQUEST, "exactly one of restore_token and update_token"),
    };
    let restored = {
        let mut world = mock.world.lock().expect("mock world lock");
        let found = world.connections.iter_mut().find(|(_, c)| action.offered(c) == Some(token.as_str()));
        let Some((connection_token, connection)) = found else {
            return refuse(StatusCode::NOT_FOUND, "no connection offers this token under this parameter");
        };
        *action.slot(connection) = None;
        connection.restored_at = Some(Instant::now());
        connection_token.clone()
    };
    mock.announce(restored, true);
    answer(StatusCode::OK, json!({}))
}

async fn admin_expire(State(mock): State<Arc<Mock>>) -> StatusCode {
    mock.world.lock().expect("mock world lock").session = None;
    StatusCode::NO_CONTENT
}

async fn admin_tokens(State(mock): State<Arc<Mock>>) -> axum::Json<serde_json::Value> {
    let world = mock.world.lock().expect("mock world lock");
    axum::Json(json!({
        "sessions": world.sessions_issued,
        "public_tokens": world.public_tokens.keys().collect::<Vec<_>>(),
        "connection_tokens": world.connections.keys().collect::<Vec<_>>(),
    }))
}

async fn admin_trace_ids(State(mock): State<Arc<Mock>>) -> axum::Json<Vec<String>> {
    axum::Json(mock.world.lock().expect("mock world lock").client_trace_ids.clone())
}

async fn admin_webhook(State(mock): State<Arc<Mock>>, body: Bytes) -> Response<Body> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Send {
        connection_token: String,
    }
    let Ok(send) = serde_json::from_slice::<Send>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "expected {\"connectionToken\": ...}");
    };
    match mock.send_webhook(&send.connection_token).await {
        Some(status) => answer(StatusCode::OK, json!({ "delivered": status.as_u16() })),
        None => refuse(StatusCode::CONFLICT, "no webhook URL, unknown connection, or delivery failed"),
    }
}

async fn admin_raw_webhook(State(mock): State<Arc<Mock>>, body: Bytes) -> Response<Body> {
    #[derive(Deserialize)]
    struct Send {
        url: String,
        body: String,
        #[serde(default = "jwt")]
        typ: Option<String>,
    }
    fn jwt() -> Option<String> {
        Some("JWT".to_owned())
    }
    let Ok(send) = serde_json::from_slice::<Send>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "expected {\"url\", \"body\", \"typ\"?}");
    };
    let mut header = json!({ "alg": "ES256", "kid": mock.key.kid() });
    if let Some(typ) = send.typ {
        header["typ"] = json!(typ);
    }
    let claims = json!({
        "iat": chrono::Utc::now().timestamp(), "request_body_sha256": body_sha256(send.body.as_bytes()),
    });
    let signature = mock.key.sign_with_header(&header, &claims);
    let sent = mock
        .webhooks
        .post(&send.url)
        .header(header::CONTENT_TYPE, "application/json")
        .header("vumi-verification", signature)
        .body(send.body)
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            answer(StatusCode::OK, json!({ "delivered": status, "answer": text.trim() }))
        }
        Err(_) => refuse(StatusCode::BAD_GATEWAY, "the delivery failed"),
    }
}

/// A connection's deterministic data for one listing path (`accounts`, `portfolios/transactions`).
fn mock_data(token: &str, listing: &str) -> Option<serde_json::Value> {
    let id =
        |what: &str| uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{token}/{what}").as_bytes()).to_string();
    let (cash, bank, portfolio, san, etf) = (id("cash"), id("bank"), id("portfolio"), id("san"), id("etf"));
    let stamp = "2025-11-20T08:00:00.000Z";
    Some(match listing {
        "accounts" => json!([
            {"id": cash, "portfolio": portfolio, "iban": "ES7921000813610123456789", "type": "OTHER",
             "alias": "Cuenta de valores", "balance": number("1520.35"), "currency": "EUR",
             "updatedAt": stamp, "createdAt": stamp, "owners": ["Ana García"]},
            {"id": bank, "portfolio": null, "iban": "ES9121000418450200051332", "type": "CASH_ACCOUNT",
             "alias": "Cuenta nómina", "balance": number("2480.10"), "currency": "EUR",
             "updatedAt": stamp, "createdAt": stamp, "owners": ["Ana García"]},
        ]),
        "accounts/transactions" => json!([
            {"id": id("t1"), "account": bank, "type": "DEPOSIT", "amount": number("1800.00"), "currency": "EUR",
             "date": "2025-11-01", "description": "Nómina noviembre"},
            {"id": id("t2"), "account": bank, "type": "WITHDRAWAL", "amount": number("-64.99"), "currency": "EUR",
             "date": "2025-11-05", "description": "Recibo luz"},
            {"id": id("t3"), "account": cash, "type": "DIVIDENDS", "amount": number("12.30"), "currency": "EUR",
             "date": "2025-11-03", "description": "Dividendo SAN"},
        ]),
        "portfolios" => json!([
            {"id": portfolio, "type": "STOCK_PORTFOLIO", "owners": ["Ana García"], "balance": number("3250.75"),
             "currency": "EUR", "createdAt": stamp, "updatedAt": stamp},
        ]),
        "portfolios/transactions" => json!([
            {"id": id("p1"), "portfolio": portfolio, "investment": san, "type": "BUY", "titles": number("250"),
             "price": number("4.1020"), "amount": number("-1025.50"), "currency": "EUR", "date": "2025-03-14"},
            {"id": id("p2"), "portfolio": portfolio, "investment": etf, "type": "BUY", "titles": number("3.5"),
             "price": number("512.3400"), "amount": number("-1793.19"), "currency": "EUR", "date": "2025-04-02"},
            {"id": id("p3"), "portfolio": portfolio, "investment": san, "type": "DIVIDENDS", "amount": number("12.30"),
             "currency": "EUR", "date": "2025-11-03"},
        ]),
        "portfolios/active-positions" => json!([
            {"portfolio": portfolio, "investment": san, "name": "Banco Santander", "isin": "ES0113900J37",
             "currency": "EUR", "localCurrency": "EUR", "exchange": "BMEX", "assetType": "STOCK",
             "titles": number("250"), "amount": number("1163.75"), "localAmount": number("1163.75"),
             "price": number("4.655"), "localPrice": number("4.655"), "exchangeRate": number("1"), "weight": number("0.3580")},
            {"portfolio": portfolio, "investment": etf, "name": "Vanguard S&P 500 ETF", "isin": "US9229083632",
             "currency": "EUR", "localCurrency": "USD", "exchange": "ARCX", "assetType": "ETF",
             "titles": number("3.5"), "amount": number("2087.00"), "localAmount": number("2464.53"),
             "price": number("596.2857"), "localPrice": number("704.1514"), "exchangeRate": number("1.1809"),
             "weight": number("0.6420")},
        ]),
        "investments" => json!([
            {"id": san, "name": "Banco Santander", "isin": "ES0113900J37", "currency": "EUR", "exchange": "BMEX",
             "assetType": "STOCK", "unknown": false, "relatedSecurity": null, "spanishTaxExempt": false,
             "managementCompany": null},
            {"id": etf, "name": "Vanguard S&P 500 ETF", "isin": "US9229083632", "currency": "USD", "exchange": "ARCX",
             "assetType": "ETF", "unknown": false, "relatedSecurity": null, "spanishTaxExempt": false,
             "managementCompany": {"name": "Vanguard", "cif": "A00000000"}},
        ]),
        _ => return None,
    })
}

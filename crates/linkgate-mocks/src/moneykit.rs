//! A mock of MoneyKit's API (docs/providers/moneykit.md) at the host root, like `api.moneykit.com`.
//!
//! Rules it enforces as MoneyKit does: `POST /auth/token` takes a form-encoded client-credentials
//! grant with `--client-id` / `--client-secret` and answers 201 with a bearer token that lapses
//! after `--token-ttl` (401 `api_error.auth.expired_access_token` afterwards; unknown tokens get
//! `api_error.auth.unauthorized`); every other call needs the bearer and a `MoneyKit-Version`
//! header naming a version MoneyKit publishes (422 `api_error.request.validation_failed`
//! otherwise). Every JSON body is checked against MoneyKit's published request model ([`schema`]):
//! one that is not JSON, carries a key the model does not list (anywhere, nested too) or lacks a
//! required field is refused with 422 `api_error.request.validation_failed` whose
//! `validation_errors` say where and why; the token grant refuses unknown form fields the same
//! way. Unknown paths answer 404 and wrong methods 405, in MoneyKit's error shape.
//! Link sessions (M4, 201) live `--link-session-ttl`; exchangeable tokens are single
//! use (400 `link_session_error.invalid_token_exchange` on reuse, or when unknown or older than
//! `--exchange-ttl`); exchange answers 201, product refresh 202, delete an empty 204.
//!
//! The Connect widget is simulated by `POST /__admin/connect` with `{"link_session_token": …,
//! "institution_id": "chase"}` (institution optional when the session named one): it answers
//! `{"exchangeable_token": …, "link_id": …}` and the link waits in `awaiting_token_exchange`. Once
//! exchanged the link is `connected` and each product is `pending` for half of
//! `--import-delay`, then `in_progress`, then `completed` (REST answers show this through
//! `last_attempted_at` and `refreshed_at`); data endpoints answer whatever is "cached", so empty
//! lists before then, and 422 `link_error.bad_state` on a link that is not connected. Deleted
//! links still answer `GET /links/{id}` (state `deleted`) and 410 `link_error.deleted` elsewhere;
//! `POST /links/{id}/reset` (MoneyKit's testing hook) puts a link in `error` / `auth_expired`.
//! `PATCH /links/{id}` (M8) sets the link's `webhook` (`null` removes it) and tags, answering the
//! link. A link session's settings name the products besides accounts, which every link has; a
//! session naming none links the app's defaults (accounts, transactions, investments).
//!
//! Reconnecting: a link session with `existing_link_id` (a live link of the app, else 404
//! `link_error.not_found` or 410 `link_error.deleted`; `institution_id` is then ignored) makes
//! `POST /__admin/connect` relink that link: the same link, with the same data, waits in
//! `awaiting_token_exchange`, and the exchange answers its link id and starts a new import. The
//! reconnecting session's `webhook` and tags replace the link's (left out, they are removed). With
//! `"new_link_id": true` the relinked link moves to a new link id (the old one answers 404),
//! for clients that must cope with MoneyKit answering a different id.
//!
//! Data is deterministic with MoneyKit's types and signs: four accounts (checking, savings, a
//! credit card whose balance is positive when owed, a brokerage account) with balances as JSON
//! numbers; 520 transactions (two of them pending) with non-negative decimal-string amounts and a
//! `credit`/`debit` type, served page-numbered (M18) and through the sync feed (M19, at most 500 a
//! page, so a full sync takes two pages); three holdings with their securities, one of them priced
//! in euros but held, like every holding, in the account's dollars; four investment transactions
//! (positive amount = money out; a fee names no security), in the account's dollars too. A link whose session asked for `account_numbers`
//! serves M16 `GET /links/{id}/accounts/numbers` (every account with its `numbers`; only checking
//! and savings have any, in the forms of the institution's country: ACH for US, BACS and IBAN for
//! GB, EFT for CA); one that asked for `identity` serves M17 `GET /links/{id}/identity` (the
//! accounts named by repeated `account_ids`, or all, each with its `owners`; savings is held
//! jointly). A link that did not link the product gets 403 `link_error.forbidden_action`.
//!
//! The sync feed (M19) as MoneyKit publishes it: without a cursor it serves every transaction as
//! created; from a cursor (an earlier read's `cursor.next`) the booked transactions created,
//! updated and removed since, and every pending transaction among the created ones (pending ones
//! are never reported removed: the caller replaces its pending set wholesale). Each read pages
//! while `has_more` over the changes up to where it began. MoneyKit keeps no client cursors, so a
//! cursor names the link and a position in its history and any the mock issued for the link stays
//! usable; one it did not issue for this link (altered, another link's, or the link's old id
//! after a relink under a new one) is refused with 422 `api_error.request.validation_failed` [I],
//! as is a malformed query parameter. A read from a cursor that finds nothing changed leaves
//! `cursor.next` out (the caller's cursor stands) [I].
//!
//! Institutions (M26): the three featured ones links connect to and 2,397 made-up US banks
//! ([`CATALOGUE_EXTRA`]), in MoneyKit's order rather than by name. `name` keeps those whose name
//! contains it (case-insensitively; MoneyKit's matching is not published [I]), `featured=true`
//! the featured ones; pages hold `limit` (1 to 1000, default 50) from `cursor`, the next page's
//! in `cursors.next`, absent on the last. M27 finds any of them by id.
//!
//! Refreshes (M13) name products the link has (403 `link_error.forbidden_action` otherwise) and
//! honour MoneyKit's published limits per product and link: accounts and transactions once an
//! hour, account numbers and identity once a day; a product asked for again sooner is refused
//! with 429 `api_error.rate_limit_exceeded` [I] (MoneyKit publishes the limits, not its refusal).
//!
//! Webhooks: the signing key is published at `GET /.well-known/jwks.json`. A link receives
//! webhooks only at the URL its session named as `webhook` (or M8 set since), as MoneyKit
//! delivers them; one without a URL receives none. It receives `link.state_changed` on
//! exchange and deletion, `link.product_refresh` as each product completes and
//! `transactions.updates_available` with it, signed as MoneyKit signs them: header
//! `MoneyKit-Signature` (ES256 JWT with `iat` and `request_body_sha256`),
//! `MoneyKit-Delivery-Token`, `MoneyKit-Delivery-Attempt`. `POST /__admin/webhooks` with
//! `{"link_id": …, "webhook_event": …}` sends one on demand and answers the delivery.
//!
//! Admin routes beside the shared ones (see [`crate`]): `GET /__admin/requests` (the latest 1000
//! API requests received, oldest first: `{method, path, query, headers, body}`, headers those MoneyKit reads,
//! the body as JSON or, form-encoded, as an object of its fields), `POST /__admin/connect`,
//! `POST /__admin/tokens/expire` (every access token issued so far lapses now), `GET
//! /__admin/tokens` (every token and link id issued, for tests that check nothing leaks), `POST
//! /__admin/import/finish` (every link's products complete now), `POST /__admin/webhooks`,
//! `GET /__admin/refreshes` (every M13 refresh accepted: `[{"link_id", "products"}]`), and the
//! bank changing a link's transactions: `POST /__admin/transactions` with `{"link_id": …,
//! "changes": [{"op": "post", "transaction_id": …}, {"op": "modify", "transaction_id": …,
//! "description": …, "amount": …}, {"op": "withdraw", "transaction_id": …}]}` (`post`: a pending
//! transaction books under a new id a day later; `modify`: fields change, the id stays;
//! `withdraw`: it goes) answers `{"transaction_ids": […]}`, each change's transaction (a posted
//! one's new id); `GET /__admin/transactions?link_id=…` answers `{"transactions": […]}`, the
//! link's transactions now.

pub mod schema;

use super::{FaultRule, Harness, MockServer, admin_routes, parse_fault, serve};
use crate::jws::{SigningKey, body_sha256};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::Bytes;
use chrono::{Days, NaiveDate};
use humantime::parse_duration;
use schema::{Shape, Violation};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// API versions the mock accepts in `MoneyKit-Version`.
pub const API_VERSIONS: &[&str] = &["2023-02-18"];
/// The institution every link connects to unless told otherwise.
pub const CHASE: &str = "chase";
/// Products a link gets when its session named none (the app's default).
const DEFAULT_PRODUCTS: &[&str] = &["accounts", "transactions", "investments"];
/// Products MoneyKit links when a session asks for them (`available_products`).
const AVAILABLE_PRODUCTS: &[&str] = &["accounts", "transactions", "investments", "identity", "account_numbers"];
/// Cash transactions per link.
const TRANSACTIONS_PER_LINK: usize = 520;
/// The newest transaction's date (data does not move with the calendar).
const NEWEST: (i32, u32, u32) = (2025, 11, 20);
/// Largest sync page MoneyKit serves.
const MAX_SYNC_PAGE: usize = 500;
/// MoneyKit's published limits on refreshing a product of a link on demand (M13).
const REFRESH_LIMITS: &[(&str, Duration)] = &[
    ("accounts", Duration::from_secs(3600)),
    ("transactions", Duration::from_secs(3600)),
    ("account_numbers", Duration::from_secs(24 * 3600)),
    ("identity", Duration::from_secs(24 * 3600)),
];

/// How the MoneyKit mock behaves (`linkgate-mock moneykit --help`).
#[derive(Debug, Clone, clap::Args)]
pub struct MoneyKitMockOptions {
    /// Client id accepted at `/auth/token`.
    #[arg(long, default_value = "test-client")]
    pub client_id: String,

    /// Client secret accepted at `/auth/token`.
    #[arg(long, default_value = "test-secret")]
    pub client_secret: String,

    /// How long access tokens live (`expires_in`).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub token_ttl: Duration,

    /// How long a link session stays usable in Connect.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub link_session_ttl: Duration,

    /// How long an exchangeable token stays exchangeable.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub exchange_ttl: Duration,

    /// How long a linked product takes to import (pending for half, then in progress).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub import_delay: Duration,

    /// A fault to script from the start, as the admin API takes it (repeatable), e.g.
    /// `--fault '{"kind":"status","status":500,"times":2,"path":"/link-session/exchange-token"}'`.
    #[arg(long = "fault", value_parser = parse_fault)]
    pub faults: Vec<FaultRule>,
}

impl Default for MoneyKitMockOptions {
    fn default() -> Self {
        Self {
            client_id: "test-client".to_owned(),
            client_secret: "test-secret".to_owned(),
            token_ttl: Duration::from_secs(3600),
            link_session_ttl: Duration::from_secs(30 * 60),
            exchange_ttl: Duration::from_secs(30 * 60),
            import_delay: Duration::from_secs(5),
            faults: Vec::new(),
        }
    }
}

/// Starts the mock on `addr` (port 0 picks one; [`MockServer::addr`] tells which).
pub async fn spawn(addr: SocketAddr, options: MoneyKitMockOptions) -> std::io::Result<MockServer> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let harness = Harness::new("", error_body_for_status, options.faults.clone());
    let mock = Arc::new(Mock {
        options,
        world: Mutex::default(),
        key: Arc::new(SigningKey::generate("moneykit-mock-1")),
        webhooks: super::webhook_client(),
        requests: Mutex::default(),
    });
    // Ends by itself once the server (and with it the router's hold on the mock) is gone.
    tokio::spawn(deliver_product_webhooks(Arc::downgrade(&mock)));
    let router = Router::new()
        .route("/auth/token", post(token))
        .route("/.well-known/jwks.json", get(|State(mock): State<Arc<Mock>>| async move {
            axum::Json(json!({ "keys": [mock.key.jwk()] }))
        }))
        .route("/institutions", get(|State(mock): State<Arc<Mock>>, headers: HeaderMap, RawQuery(query): RawQuery| async move {
            mock.authorised(&headers, |_, _| search_institutions(query.as_deref()))
        }))
        .route("/institutions/{id}", get(|State(mock): State<Arc<Mock>>, headers: HeaderMap, Path(id): Path<String>| async move {
            mock.authorised(&headers, |_, _| {
                let found = CATALOGUE.iter().find(|i| i["institution_id"] == id.as_str());
                let found = found.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "institution_error.not_found", "Institution not found"))?;
                Ok(ok(found.clone()))
            })
        }))
        .route("/link-session", post(|State(mock): State<Arc<Mock>>, headers: HeaderMap, body: Bytes| async move {
            mock.authorised(&headers, |mock, world| mock.create_link_session(world, &headers, &body))
        }))
        .route("/link-session/exchange-token", post(|State(mock): State<Arc<Mock>>, headers: HeaderMap, body: Bytes| async move {
            mock.authorised(&headers, |mock, world| mock.exchange(world, &headers, &body))
        }))
        .route("/links/{id}", get(|State(mock): State<Arc<Mock>>, headers: HeaderMap, Path(id): Path<String>| async move {
            mock.authorised(&headers, |mock, world| {
                let link = world.links.get(&id).ok_or_else(ApiError::link_not_found)?;
                Ok(ok(mock.link_json(link, Instant::now())))
            })
        }).delete(|State(mock): State<Arc<Mock>>, headers: HeaderMap, Path(id): Path<String>| async move {
            mock.authorised(&headers, |mock, world| mock.delete(world, &id))
        }).patch(|State(mock): State<Arc<Mock>>, headers: HeaderMap, Path(id): Path<String>, body: Bytes| async move {
            mock.authorised(&headers, |mock, world| mock.update_link(world, &id, &headers, &body))
        }))
        .route("/links/{id}/products", post(|State(mock): State<Arc<Mock>>, headers: HeaderMap, Path(id): Path<String>, body: Bytes| async move {
            mock.authorised(&headers, |mock, world| mock.refresh(world, &id, &headers, &body))
        }))
        .route("/links/{id}/reset", post(|State(mock): State<Arc<Mock>>, headers: HeaderMap, Path(id): Path<String>| async move {
            mock.authorised(&headers, |mock, world| mock.reset(world, &id))
        }))
        .route("/links/{id}/accounts", get(|State(mock): State<Arc<Mock>>, headers: HeaderMap, Path(id): Path<String>| async move {
            mock.data(&headers, &id, |mock, link, now| {
                let accounts = if mock.delivered(link, "accounts", now) { accounts(link) } else { Vec::new() };
                Ok(json!({ "accounts": accounts, "link": mock.link_json(link, now) }))
            })
        }))
        .route("/links/{id}/accounts/numbers", get(|State(mock): State<Arc<Mock>>, headers: HeaderMap, Path(id): Path<String>| async move {
            mock.data(&headers, &id, |mock, link, now| {
                mock.linked(link, "account_numbers")?;
                let accounts = if mock.delivered(link, "account_numbers", now) { accounts_with_numbers(link) } else { Vec::new() };
                Ok(json!({ "accounts": accounts, "link": mock.link_json(link, now) }))
            })
        }))
        .route("/links/{id}/identity", get(|State(mock): State<Arc<Mock>>, headers: HeaderMap, Path(id): Path<String>, RawQuery(query): RawQuery| async move {
            mock.data(&headers, &id, |mock, link, now| {
                mock.linked(link, "identity")?;
                let pairs = query_pairs(query.as_deref());
                let wanted: Vec<&str> = pairs.iter().filter(|(key, _)| key == "account_ids").map(|(_, id)| id.as_str()).collect();
                let accounts: Vec<Value> = if mock.delivered(link, "identity", now) { accounts_with_owners(link) } else { Vec::new() };
                let accounts: Vec<Value> = accounts
                    .into_iter()
                    .filter(|account| wanted.is_empty() || wanted.contains(&account["account_id"].as_str().unwrap_or("")))
                    .collect();
                Ok(json!({ "accounts": accounts, "link": mock.link_json(link, now) }))
            })
        }))
        .route("/links/{id}/transactions", get(|State(mock): State<Arc<Mock>>, headers: HeaderMap, Path(id): Path<String>, RawQuery(query): RawQuery| async move {
            mock.data(&headers, &id, |mock, link, now| mock.transactions_page(link, now, query.as_deref()))
        }))
        .route("/links/{id}/transactions/sync", get(|State(mock): State<Arc<Mock>>, headers: HeaderMap, Path(id): Path<String>, RawQuery(query): RawQuery| async move {
            mock.data(&headers, &id, |mock, link, now| mock.transactions_sync(link, now, query.as_deref()))
        }))
        .route("/links/{id}/investments/holdings", get(|State(mock): State<Arc<Mock>>, headers: HeaderMap, Path(id): Path<String>| async move {
            mock.data(&headers, &id, |mock, link, now| {
                let (holdings, securities) = if mock.delivered(link, "investments", now) { holdings(link) } else { (Vec::new(), Vec::new()) };
                Ok(json!({ "holdings": holdings, "securities": securities, "accounts": investment_accounts(link), "link": mock.link_json(link, now) }))
            })
        }))
        .route("/links/{id}/investments/transactions", get(|State(mock): State<Arc<Mock>>, headers: HeaderMap, Path(id): Path<String>, RawQuery(query): RawQuery| async move {
            mock.data(&headers, &id, |mock, link, now| mock.investment_transactions(link, now, query.as_deref()))
        }))
        .route("/__admin/connect", post(|State(mock): State<Arc<Mock>>, body: Bytes| async move { mock.connect(&body) }))
        .route("/__admin/tokens", get(|State(mock): State<Arc<Mock>>| async move { mock.tokens() }))
        .route("/__admin/tokens/expire", post(|State(mock): State<Arc<Mock>>| async move { mock.expire_tokens() }))
        .route("/__admin/import/finish", post(|State(mock): State<Arc<Mock>>| async move { mock.finish_import() }))
        .route("/__admin/webhooks", post(|State(mock): State<Arc<Mock>>, body: Bytes| async move { mock.send_webhook(&body).await }))
        .route("/__admin/refreshes", get(|State(mock): State<Arc<Mock>>| async move {
            axum::Json(json!(mock.world.lock().expect("mock world lock").refreshes))
        }))
        .route("/__admin/transactions", post(|State(mock): State<Arc<Mock>>, body: Bytes| async move {
            mock.change_transactions(&body)
        }).get(|State(mock): State<Arc<Mock>>, RawQuery(query): RawQuery| async move { mock.current_transactions(query.as_deref()) }))
        .route("/__admin/requests", get(|State(mock): State<Arc<Mock>>| async move {
            axum::Json(json!(mock.requests.lock().expect("requests lock").clone()))
        }))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "api_error.not_found", "Not Found") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "api_error.method_not_allowed", "Method Not Allowed")
        })
        .layer(axum::middleware::from_fn_with_state(mock.clone(), keep_request))
        .with_state(mock)
        .merge(admin_routes(harness.clone()));
    serve(listener, harness, router)
}

struct Mock {
    options: MoneyKitMockOptions,
    world: Mutex<World>,
    key: Arc<SigningKey>,
    webhooks: reqwest::Client,
    /// The latest [`REQUESTS_KEPT`] API requests, oldest first, for `GET /__admin/requests`.
    requests: Mutex<VecDeque<Value>>,
}

/// How many requests the mock keeps whole: a test's flow fits, a long-running mock stays small.
const REQUESTS_KEPT: usize = 1000;

/// Keeps each API request as `{method, path, query, headers, body}` (headers the ones MoneyKit
/// reads, lower case; the body as JSON when it is, as an object of its fields when form-encoded,
/// else as text) and passes it on.
async fn keep_request(
    State(mock): State<Arc<Mock>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response<Body> {
    if request.uri().path().starts_with("/__admin/") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return ApiError::validation("The request body is too large").into_response();
    };
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let kept_body = if bytes.is_empty() {
        Value::Null
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        json!(form_urlencoded::parse(&bytes).into_owned().collect::<BTreeMap<String, String>>())
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)))
    };
    let headers: BTreeMap<&str, &str> = ["authorization", "content-type", "moneykit-version", "x-client-id"]
        .into_iter()
        .filter_map(|name| Some((name, parts.headers.get(name)?.to_str().ok()?)))
        .collect();
    let request = json!({
        "method": parts.method.as_str(), "path": parts.uri.path(), "query": parts.uri.query(),
        "headers": headers, "body": kept_body,
    });
    {
        let mut kept = mock.requests.lock().expect("requests lock");
        if kept.len() == REQUESTS_KEPT {
            kept.pop_front();
        }
        kept.push_back(request);
    }
    next.run(axum::extract::Request::from_parts(parts, Body::from(bytes))).await
}

/// Everything the mock remembers.
#[derive(Default)]
struct World {
    access_tokens: HashMap<String, Instant>,
    link_sessions: HashMap<String, LinkSession>,
    exchangeable: HashMap<String, Exchangeable>,
    links: BTreeMap<String, Link>,
    /// Every token and link id issued, for the admin API.
    issued: Vec<String>,
    /// Every refresh accepted (M13), oldest first.
    refreshes: Vec<Value>,
}

struct LinkSession {
    created_at: Instant,
    institution_id: Option<String>,
    /// The link this session reconnects (`existing_link_id`).
    existing_link_id: Option<String>,
    products: Vec<String>,
    webhook: Option<String>,
    tags: Vec<String>,
}

struct Exchangeable {
    link_id: String,
    issued_at: Instant,
    used: bool,
}

struct Link {
    id: String,
    /// What the link's data ids derive from: its first id, kept when a relink gives it a new one.
    seed: String,
    institution: &'static MockInstitution,
    state: &'static str,
    /// `PublicLinkError`, while `state` is `error`.
    error_code: Option<&'static str>,
    products: Vec<String>,
    webhook: Option<String>,
    tags: Vec<String>,
    /// When the first import started (at the exchange).
    import_started: Option<Instant>,
    /// Products whose completion was announced by webhook.
    announced: Vec<String>,
    /// What the bank changed in the link's transactions since they were generated, oldest first:
    /// each sets a transaction (by id) or, `None`, removes it. Position `n` of the link's history
    /// is its transactions after the first `n` changes.
    history: Vec<(String, Option<Value>)>,
    /// When each product was last refreshed on demand (M13).
    refreshed: HashMap<String, Instant>,
}

/// The link `id`, unless it is unknown or deleted (MoneyKit's 404 and its `link_error.deleted`).
fn live_link<'w>(world: &'w mut World, id: &str) -> Result<&'w mut Link, ApiError> {
    let link = world.links.get_mut(id).ok_or_else(ApiError::link_not_found)?;
    if link.state == "deleted" {
        return Err(ApiError::link_deleted());
    }
    Ok(link)
}

/// One entry of a sync read.
enum SyncChange {
    Created(Value),
    Updated(Value),
    Removed(String),
}

/// A sync cursor the mock issued: bound to its link by a check value over the link id, so one
/// altered or issued for another link is told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SyncCursor {
    /// Where a finished read left the link's history: the next read reports what changed since.
    Resume(usize),
    /// The next page of a read between `from` (the start when `None`) and `to`.
    Page { from: Option<usize>, to: usize, offset: usize },
}

impl SyncCursor {
    fn encode(self, link: &Link) -> String {
        let body = match self {
            Self::Resume(position) => format!("mkc.{position}"),
            Self::Page { from, to, offset } => {
                format!("mkc.{}.{to}.{offset}", from.map_or_else(|| "start".to_owned(), |f| f.to_string()))
            }
        };
        format!("{body}.{:016x}", fnv(&format!("{}/{body}", link.id)))
    }

    /// The cursor `text` names on `link`; 422 unless the mock issued it for this link.
    fn decode(link: &Link, text: &str) -> Result<Self, ApiError> {
        let refused = || ApiError::validation("The cursor is not valid");
        let (body, check) = text.rsplit_once('.').ok_or_else(refused)?;
        if check != format!("{:016x}", fnv(&format!("{}/{body}", link.id))) {
            return Err(refused());
        }
        let number = |text: &str| text.parse::<usize>().ok().filter(|n| *n <= link.history.len());
        let cursor = match body.split('.').collect::<Vec<_>>()[..] {
            ["mkc", position] => number(position).map(Self::Resume),
            ["mkc", from, to, offset] => {
                let from = if from == "start" { Some(None) } else { number(from).map(Some) };
                match (from, number(to), offset.parse().ok()) {
                    (Some(from), Some(to), Some(offset)) => Some(Self::Page { from, to, offset }),
                    _ => None,
                }
            }
            _ => None,
        };
        cursor.ok_or_else(refused)
    }
}

/// MoneyKit's `LinkProductState` of a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pending,
    InProgress,
    Completed,
}

impl Link {
    /// The link's transactions at `position` of its history, by id.
    fn transactions_at(&self, position: usize) -> BTreeMap<String, Value> {
        let mut transactions: BTreeMap<String, Value> = generated_transactions(self)
            .into_iter()
            .map(|t| (t["transaction_id"].as_str().expect("generated ids").to_owned(), t))
            .collect();
        for (id, change) in &self.history[..position] {
            match change {
                Some(transaction) => transactions.insert(id.clone(), transaction.clone()),
                None => transactions.remove(id),
            };
        }
        transactions
    }

    /// What a sync read reports between `from` (the start when `None`) and `to` in the link's
    /// history, in the order pages serve it.
    fn sync_changes(&self, from: Option<usize>, to: usize) -> Vec<SyncChange> {
        let now = self.transactions_at(to);
        let Some(from) = from else { return now.into_values().map(SyncChange::Created).collect() };
        let before = self.transactions_at(from);
        fn booked(t: Option<&Value>) -> Option<&Value> {
            t.filter(|t| t["pending"] != true)
        }
        let touched: BTreeSet<&str> = self.history[from..to].iter().map(|(id, _)| id.as_str()).collect();
        let (mut created, mut updated, mut removed) = (Vec::new(), Vec::new(), Vec::new());
        for id in touched {
            match (booked(before.get(id)), booked(now.get(id))) {
                (None, Some(t)) => created.push(SyncChange::Created(t.clone())),
                (Some(old), Some(t)) if old != t => updated.push(SyncChange::Updated(t.clone())),
                (Some(_), None) => removed.push(SyncChange::Removed(id.to_owned())),
                _ => {}
            }
        }
        // Every pending transaction, every time: the caller replaces its pending set with them.
        created.extend(now.into_values().filter(|t| t["pending"] == true).map(SyncChange::Created));
        created.into_iter().chain(updated).chain(removed).collect()
    }

    fn phase(&self, import_delay: Duration, now: Instant) -> Phase {
        match self.import_started {
            None => Phase::Pending,
            Some(started) if now >= started + import_delay => Phase::Completed,
            Some(started) if now >= started + import_delay / 2 => Phase::InProgress,
            Some(_) => Phase::Pending,
        }
    }
}

struct MockInstitution {
    id: &'static str,
    name: &'static str,
    country: &'static str,
    domain: &'static str,
}

impl MockInstitution {
    fn json(&self) -> Value {
        json!({
            "institution_id": self.id, "institution_id_aliases": [], "name": self.name, "country": self.country,
            "domain": self.domain, "color": "#117ACA", "color_dark": "#0B4E82", "is_featured": true,
        })
    }
}

const INSTITUTIONS: [MockInstitution; 3] = [
    MockInstitution { id: CHASE, name: "Chase", country: "US", domain: "chase.com" },
    MockInstitution { id: "barclays", name: "Barclays", country: "GB", domain: "barclays.co.uk" },
    MockInstitution { id: "rbc", name: "RBC Royal Bank", country: "CA", domain: "rbcroyalbank.com" },
];

fn institution(id: &str) -> Option<&'static MockInstitution> {
    INSTITUTIONS.iter().find(|i| i.id == id)
}

/// Institutions in the catalogue besides the featured ones that links connect to: US banks and
/// credit unions, as many as MoneyKit lists in the thousands.
pub const CATALOGUE_EXTRA: usize = 2397;

/// Every institution M26 lists, in the mock's order (featured first, then by place; not by name).
static CATALOGUE: std::sync::LazyLock<Vec<Value>> = std::sync::LazyLock::new(|| {
    let generated = crate::catalogue::generated(CATALOGUE_EXTRA, &["Bank", "Credit Union", "Savings Bank"]);
    let others = generated.into_iter().map(|g| {
        let id = g.slug.replace('-', "_");
        json!({
            "institution_id": id, "institution_id_aliases": [], "name": g.name, "country": "US",
            "domain": format!("{}.example", g.slug), "color": "#2F4F4F", "color_dark": "#1C2F2F", "is_featured": false,
        })
    });
    INSTITUTIONS.iter().map(MockInstitution::json).chain(others).collect()
});

/// M26 `GET /institutions`: `name` (case-insensitive part of the name), `featured`, and pages of
/// `limit` (1 to 1000, default 50) from `cursor`, the next one named in `cursors.next`.
fn search_institutions(query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let pairs = query_pairs(query);
    let param = |name: &str| pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let limit = query_number(&pairs, "limit", 50, 1..=1000)?;
    let featured = match param("featured") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::validation("featured must be a boolean")),
    };
    let start = match param("cursor") {
        None => 0,
        Some(cursor) => cursor
            .strip_prefix("inst_")
            .and_then(|offset| offset.parse::<usize>().ok())
            .ok_or(ApiError::validation("The cursor is not valid"))?,
    };
    let name = param("name").unwrap_or("").to_lowercase();
    let matching: Vec<&Value> = CATALOGUE
        .iter()
        .filter(|i| !featured || i["is_featured"] == true)
        .filter(|i| i["name"].as_str().is_some_and(|n| n.to_lowercase().contains(&name)))
        .collect();
    let page: Vec<&Value> = matching.iter().skip(start).take(limit).copied().collect();
    let end = start + page.len();
    let cursors = if end < matching.len() { json!({ "next": format!("inst_{end}") }) } else { json!({}) };
    Ok(ok(json!({ "institutions": page, "cursors": cursors })))
}

/// A refusal, as MoneyKit's error body.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    link_error_code: Option<&'static str>,
    /// With `api_error.request.validation_failed`: what failed where (one entry for the body
    /// when empty).
    violations: Vec<Violation>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self { status, code, message: message.into(), link_error_code: None, violations: Vec::new() }
    }
    fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "api_error.auth.unauthorized", "Not authorized.")
    }
    fn validation(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "api_error.request.validation_failed", message)
    }
    /// 422 listing `violations` of a request model.
    fn invalid_body(violations: Vec<Violation>) -> Self {
        Self { violations, ..Self::validation("Request validation error") }
    }
    fn link_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "link_error.not_found", "Link not found.")
    }
    fn link_deleted() -> Self {
        Self::new(StatusCode::GONE, "link_error.deleted", "This link was deleted at some earlier time.")
    }
    fn body(&self) -> Value {
        let mut body = json!({
            "error_code": self.code,
            "error_message": self.message,
            "documentation_url": "https://docs.moneykit.com/reference/errors",
        });
        if let Some(code) = self.link_error_code {
            body["link_error_code"] = json!(code);
        }
        if self.code == "api_error.request.validation_failed" {
            body["validation_errors"] = if self.violations.is_empty() {
                json!([{"location": ["body"], "message": self.message, "type": "value_error"}])
            } else {
                self.violations
                    .iter()
                    .map(|v| json!({"location": v.location, "message": v.message, "type": v.kind}))
                    .collect()
            };
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response<Body> {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// MoneyKit's error body for a scripted status.
fn error_body_for_status(status: StatusCode) -> Value {
    match status {
        StatusCode::TOO_MANY_REQUESTS => {
            ApiError::new(status, "api_error.rate_limit_exceeded", "Rate limit exceeded").body()
        }
        StatusCode::UNAUTHORIZED => ApiError::unauthorized().body(),
        StatusCode::NOT_FOUND => ApiError::link_not_found().body(),
        status if status.is_server_error() => {
            json!({ "error_code": "api_error.server_error", "error_message": "Internal server error" })
        }
        _ => ApiError::validation("Scripted failure").body(),
    }
}

/// A JSON body of a published request model: 422 unless it is sent as JSON and fits `model`
/// (closed: no key the model does not list, every required one present).
fn read_body<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8], model: &Shape) -> Result<T, ApiError> {
    let json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let not_an_object = || {
        ApiError::invalid_body(vec![Violation {
            location: vec!["body".to_owned()],
            message: "Input should be a valid dictionary or object to extract fields from".to_owned(),
            kind: "model_attributes_type",
        }])
    };
    if !json.starts_with("application/json") {
        return Err(not_an_object());
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| not_an_object())?;
    let violations = schema::check(&value, model);
    if !violations.is_empty() {
        return Err(ApiError::invalid_body(violations));
    }
    serde_json::from_value(value).map_err(|_| ApiError::validation("The request body is not valid"))
}

fn ok(body: Value) -> Response<Body> {
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn created(body: Value) -> Response<Body> {
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

fn random_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Builder::from_random_bytes(rand::random()).into_uuid().simple())
}

/// MoneyKit's timestamps, as its examples show them: UTC, no offset.
fn timestamp(at: Instant, now: Instant) -> String {
    let ago = chrono::Duration::from_std(now.saturating_duration_since(at)).unwrap_or_default();
    (chrono::Utc::now() - ago).format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// FNV-1a: a hash that stays the same across Rust versions, so mock data never changes.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// Query parameters, repeated ones kept in order.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect()
}

fn query_number(
    pairs: &[(String, String)],
    name: &str,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, ApiError> {
    match pairs.iter().find(|(key, _)| key == name) {
        None => Ok(default),
        Some((_, value)) => value
            .parse()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or(ApiError::validation("A query parameter is out of range")),
    }
}

async fn token(State(mock): State<Arc<Mock>>, headers: HeaderMap, body: Bytes) -> Response<Body> {
    let form = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !form.starts_with("application/x-www-form-urlencoded") {
        return ApiError::validation("The token request must be form-encoded").into_response();
    }
    let fields: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let unknown: Vec<Violation> = fields
        .keys()
        .filter(|key| !["grant_type", "client_id", "client_secret", "scope"].contains(&key.as_str()))
        .map(|key| Violation {
            location: vec!["body".to_owned(), key.clone()],
            message: "Extra inputs are not permitted".to_owned(),
            kind: "extra_forbidden",
        })
        .collect();
    if !unknown.is_empty() {
        return ApiError::invalid_body(unknown).into_response();
    }
    let field = |name: &str| fields.get(name).map(String::as_str);
    if field("grant_type") != Some("client_credentials") {
        return ApiError::new(StatusCode::BAD_REQUEST, "api_error.auth.unauthorized", "Unsupported grant type.")
            .into_response();
    }
    if field("client_id") != Some(mock.options.client_id.as_str())
        || field("client_secret") != Some(mock.options.client_secret.as_str())
    {
        return ApiError::new(StatusCode::BAD_REQUEST, "api_error.auth.unauthorized", "Invalid client credentials.")
            .into_response();
    }
    let token = random_id("mk_at_");
    let mut world = mock.world.lock().expect("mock world lock");
    let expires = Instant::now() + mock.options.token_ttl;
    world.access_tokens.insert(token.clone(), expires);
    world.issued.push(token.clone());
    created(json!({ "access_token": token, "token_type": "bearer", "expires_in": mock.options.token_ttl.as_secs() }))
}

#[derive(Deserialize)]
struct CreateLinkSessionBody {
    redirect_uri: String,
    #[serde(default)]
    institution_id: Option<String>,
    #[serde(default)]
    existing_link_id: Option<String>,
    #[serde(default)]
    webhook: Option<String>,
    #[serde(default)]
    link_tags: Vec<String>,
    #[serde(default)]
    settings: Option<SessionSettings>,
}

#[derive(Deserialize)]
struct SessionSettings {
    #[serde(default)]
    products: Option<BTreeMap<String, Value>>,
}

impl Mock {
    /// Runs `handler` for a caller with a live bearer token and a known API version.
    fn authorised(
        &self,
        headers: &HeaderMap,
        handler: impl FnOnce(&Mock, &mut World) -> Result<Response<Body>, ApiError>,
    ) -> Response<Body> {
        let mut world = self.world.lock().expect("mock world lock");
        let bearer =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let now = Instant::now();
        let checked = match bearer.and_then(|token| world.access_tokens.get(token)) {
            None => Err(ApiError::unauthorized()),
            Some(expires) if now >= *expires => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "api_error.auth.expired_access_token",
                "Access token expired",
            )),
            Some(_) => {
                let version = headers.get("moneykit-version").and_then(|v| v.to_str().ok());
                if version.is_some_and(|v| API_VERSIONS.contains(&v)) {
                    Ok(())
                } else {
                    Err(ApiError::validation("The MoneyKit-Version header is missing or unknown"))
                }
            }
        };
        match checked.and_then(|()| handler(self, &mut world)) {
            Ok(response) => response,
            Err(error) => error.into_response(),
        }
    }

    /// A data endpoint of link `id`: 404, 410 or 422 unless it is connected.
    fn data(
        &self,
        headers: &HeaderMap,
        id: &str,
        answer: impl FnOnce(&Mock, &Link, Instant) -> Result<Value, ApiError>,
    ) -> Response<Body> {
        self.authorised(headers, |mock, world| {
            let now = Instant::now();
            let link = world.links.get(id).ok_or_else(ApiError::link_not_found)?;
            match link.state {
                "connected" => answer(mock, link, now).map(ok),
                "deleted" => Err(ApiError::link_deleted()),
                _ => Err(ApiError {
                    link_error_code: Some(link.error_code.unwrap_or("incomplete")),
                    ..ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "link_error.bad_state",
                        "The link is not connected.",
                    )
                }),
            }
        })
    }

    fn create_link_session(
        &self,
        world: &mut World,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response<Body>, ApiError> {
        let request: CreateLinkSessionBody = read_body(headers, body, &schema::CREATE_LINK_SESSION)?;
        if request.redirect_uri.contains('?') {
            return Err(ApiError::validation("redirect_uri must have no query"));
        }
        if let Some(id) = &request.existing_link_id {
            match world.links.get(id) {
                None => return Err(ApiError::link_not_found()),
                Some(link) if link.state == "deleted" => return Err(ApiError::link_deleted()),
                Some(_) => {}
            }
        }
        // MoneyKit ignores the institution when reconnecting a link.
        if let Some(id) = request.institution_id.as_ref().filter(|_| request.existing_link_id.is_none())
            && institution(id).is_none()
        {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "institution_error.not_found", "Institution not found"));
        }
        // Every link has its accounts; the settings name the other products, else the app's
        // default ones are linked.
        let products: Vec<String> = match request.settings.and_then(|s| s.products) {
            Some(products) if !products.is_empty() => {
                std::iter::once("accounts".to_owned()).chain(products.into_keys()).collect()
            }
            _ => DEFAULT_PRODUCTS.iter().map(|p| (*p).to_owned()).collect(),
        };
        let token = random_id("mk_ls_");
        let created_at = Instant::now();
        world.issued.push(token.clone());
        world.link_sessions.insert(
            token.clone(),
            LinkSession {
                created_at,
                institution_id: request.institution_id,
                existing_link_id: request.existing_link_id,
                products,
                webhook: request.webhook,
                tags: request.link_tags,
            },
        );
        Ok(created(json!({ "link_session_token": token })))
    }

    /// The Connect widget: the user picks an institution and logs in.
    fn connect(&self, body: &[u8]) -> Response<Body> {
        #[derive(Deserialize)]
        struct Request {
            link_session_token: String,
            #[serde(default)]
            institution_id: Option<String>,
            /// On a reconnect session: MoneyKit relinks under a new link id (the old one is gone).
            #[serde(default)]
            new_link_id: bool,
        }
        let Ok(request) = serde_json::from_slice::<Request>(body) else {
            return (StatusCode::BAD_REQUEST, "expected {\"link_session_token\": ..., \"institution_id\": ...}\n")
                .into_response();
        };
        let mut world = self.world.lock().expect("mock world lock");
        let now = Instant::now();
        let Some(session) = world
            .link_sessions
            .get(&request.link_session_token)
            .filter(|s| now.duration_since(s.created_at) < self.options.link_session_ttl)
        else {
            return (StatusCode::NOT_FOUND, "no live link session with that token\n").into_response();
        };
        if let Some(existing) = session.existing_link_id.clone() {
            // The reconnect session's webhook and tags replace the link's (left out: removed).
            let (webhook, tags) = (session.webhook.clone(), session.tags.clone());
            return self.reconnect(&mut world, &existing, (webhook, tags), request.new_link_id, now);
        }
        let chosen =
            request.institution_id.or_else(|| session.institution_id.clone()).unwrap_or_else(|| CHASE.to_owned());
        let Some(institution) = institution(&chosen) else {
            return (StatusCode::NOT_FOUND, "unknown institution\n").into_response();
        };
        let id = random_id("mk_");
        let link = Link {
            seed: id.clone(),
            id,
            institution,
            state: "awaiting_token_exchange",
            error_code: None,
            products: session.products.clone(),
            webhook: session.webhook.clone(),
            tags: session.tags.clone(),
            import_started: None,
            announced: Vec::new(),
            history: Vec::new(),
            refreshed: HashMap::new(),
        };
        let token = random_id("");
        let link_id = link.id.clone();
        world.issued.extend([token.clone(), link_id.clone()]);
        world
            .exchangeable
            .insert(token.clone(), Exchangeable { link_id: link_id.clone(), issued_at: now, used: false });
        world.links.insert(link_id.clone(), link);
        axum::Json(json!({ "exchangeable_token": token, "link_id": link_id })).into_response()
    }
}

impl Mock {
    /// Connect on a session with `existing_link_id`: the user signs in again and the same link
    /// (same data) waits for its token exchange, under its id or, with `new_link_id`, a new one.
    fn reconnect(
        &self,
        world: &mut World,
        existing: &str,
        (webhook, tags): (Option<String>, Vec<String>),
        new_link_id: bool,
        now: Instant,
    ) -> Response<Body> {
        let Some(mut link) = world.links.remove(existing).filter(|l| l.state != "deleted") else {
            return (StatusCode::GONE, "the link to reconnect is gone\n").into_response();
        };
        link.webhook = webhook;
        link.tags = tags;
        if new_link_id {
            link.id = random_id("mk_");
        }
        link.state = "awaiting_token_exchange";
        link.error_code = None;
        let token = random_id("");
        let link_id = link.id.clone();
        world.issued.push(token.clone());
        if new_link_id {
            world.issued.push(link_id.clone());
        }
        world
            .exchangeable
            .insert(token.clone(), Exchangeable { link_id: link_id.clone(), issued_at: now, used: false });
        world.links.insert(link_id.clone(), link);
        axum::Json(json!({ "exchangeable_token": token, "link_id": link_id })).into_response()
    }
}

/// One webhook to deliver.
struct Delivery {
    url: String,
    payload: Value,
}

impl Mock {
    /// 403 `link_error.forbidden_action` unless the link linked `product`.
    fn linked(&self, link: &Link, product: &str) -> Result<(), ApiError> {
        if link.products.iter().any(|p| p == product) {
            return Ok(());
        }
        Err(ApiError::new(StatusCode::FORBIDDEN, "link_error.forbidden_action", "Product not enabled for this link."))
    }

    /// Whether `product` was linked and its import is over: data endpoints serve it then.
    fn delivered(&self, link: &Link, product: &str, now: Instant) -> bool {
        link.products.iter().any(|p| p == product) && link.phase(self.options.import_delay, now) == Phase::Completed
    }

    /// `LinkCommon`, 2025 shape (with the deprecated aliases MoneyKit still sends).
    fn link_json(&self, link: &Link, now: Instant) -> Value {
        let phase = link.phase(self.options.import_delay, now);
        let started = link.import_started.unwrap_or(now);
        let products: serde_json::Map<String, Value> = link
            .products
            .iter()
            .map(|product| {
                let mut state = json!({ "settings": { "required": false, "prefetch": true } });
                if phase != Phase::Pending {
                    state["last_attempted_at"] = json!(timestamp(started, now));
                }
                if phase == Phase::Completed {
                    state["refreshed_at"] = json!(timestamp(started + self.options.import_delay, now));
                }
                if product == "transactions" {
                    state["has_history"] = json!(phase == Phase::Completed);
                }
                (product.clone(), state)
            })
            .collect();
        json!({
            "link_id": link.id,
            "institution_id": link.institution.id,
            "institution_name": link.institution.name,
            "institution_avatar": format!("https://cdn.moneykit.com/institutions/{}.png", link.institution.id),
            "state": link.state,
            "error_code": link.error_code,
            "last_synced_at": (phase == Phase::Completed).then(|| timestamp(started + self.options.import_delay, now)),
            "provider": "moneykit",
            "link_tags": link.tags,
            "tags": link.tags,
            "webhook": link.webhook,
            "products": products,
            "available_products": AVAILABLE_PRODUCTS,
        })
    }

    fn exchange(&self, world: &mut World, headers: &HeaderMap, body: &[u8]) -> Result<Response<Body>, ApiError> {
        #[derive(Deserialize)]
        struct Request {
            exchangeable_token: String,
        }
        let request: Request = read_body(headers, body, &schema::EXCHANGE_TOKEN)?;
        let now = Instant::now();
        let invalid = || {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "link_session_error.invalid_token_exchange",
                "The exchangeable token is invalid, expired or already used.",
            )
        };
        let token = world.exchangeable.get_mut(&request.exchangeable_token).ok_or_else(invalid)?;
        if token.used || now.duration_since(token.issued_at) >= self.options.exchange_ttl {
            return Err(invalid());
        }
        token.used = true;
        let link_id = token.link_id.clone();
        let link = world.links.get_mut(&link_id).expect("exchangeable tokens point at links");
        link.state = "connected";
        link.error_code = None;
        link.import_started = Some(now);
        link.announced.clear();
        let link = &world.links[&link_id];
        self.announce(link, state_changed(link));
        Ok(created(json!({ "link_id": link_id, "link": self.link_json(link, now) })))
    }

    fn delete(&self, world: &mut World, id: &str) -> Result<Response<Body>, ApiError> {
        let link = live_link(world, id)?;
        link.state = "deleted";
        self.announce(link, state_changed(link));
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    /// M8: sets or (with `null`) removes the link's webhook, and its tags; a key left out keeps
    /// what the link has.
    fn update_link(
        &self,
        world: &mut World,
        id: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response<Body>, ApiError> {
        #[derive(Deserialize)]
        struct Request {
            #[serde(default, deserialize_with = "present")]
            webhook: Option<Option<String>>,
            #[serde(default)]
            link_tags: Option<Vec<String>>,
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        fn present<'de, D: serde::Deserializer<'de>>(value: D) -> Result<Option<Option<String>>, D::Error> {
            Option::<String>::deserialize(value).map(Some)
        }
        let request: Request = read_body(headers, body, &schema::UPDATE_LINK)?;
        let link = live_link(world, id)?;
        if let Some(webhook) = request.webhook {
            link.webhook = webhook;
        }
        if let Some(tags) = request.link_tags.or(request.tags) {
            link.tags = tags;
        }
        Ok(ok(self.link_json(link, Instant::now())))
    }

    /// M10: a testing hook that disconnects a connected link as if its consent had expired.
    fn reset(&self, world: &mut World, id: &str) -> Result<Response<Body>, ApiError> {
        let now = Instant::now();
        let link = live_link(world, id)?;
        link.state = "error";
        link.error_code = Some("auth_expired");
        let mut payload = state_changed(link);
        payload["error"] = json!("auth_expired");
        self.announce(link, payload);
        Ok(ok(self.link_json(link, now)))
    }

    fn refresh(
        &self,
        world: &mut World,
        id: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response<Body>, ApiError> {
        #[derive(Deserialize)]
        struct Request {
            products: Vec<String>,
        }
        let request: Request = read_body(headers, body, &schema::REFRESH_PRODUCTS)?;
        let now = Instant::now();
        let link = world.links.get(id).ok_or_else(ApiError::link_not_found)?;
        if request.products.is_empty() {
            return Err(ApiError::validation("At least one product is required"));
        }
        if request.products.iter().any(|p| !link.products.contains(p)) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "link_error.forbidden_action",
                "Product not enabled for this link.",
            ));
        }
        if link.state != "connected" {
            return Err(ApiError {
                link_error_code: Some("incomplete"),
                ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "link_error.bad_state", "The link is not connected.")
            });
        }
        let too_soon = request.products.iter().any(|product| {
            let limit = REFRESH_LIMITS.iter().find(|(name, _)| name == product).map(|(_, limit)| *limit);
            matches!((limit, link.refreshed.get(product)), (Some(limit), Some(last)) if now < *last + limit)
        });
        if too_soon {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "api_error.rate_limit_exceeded",
                "Rate limit exceeded",
            ));
        }
        let link = world.links.get_mut(id).expect("found above");
        for product in &request.products {
            link.refreshed.insert(product.clone(), now);
        }
        let answer = self.link_json(link, now);
        world.refreshes.push(json!({ "link_id": id, "products": request.products }));
        Ok((StatusCode::ACCEPTED, axum::Json(answer)).into_response())
    }

    /// M18: page-numbered, newest first, filtered by date and account.
    fn transactions_page(&self, link: &Link, now: Instant, query: Option<&str>) -> Result<Value, ApiError> {
        let pairs = query_pairs(query);
        let page = query_number(&pairs, "page", 1, 1..=usize::MAX)?;
        let size = query_number(&pairs, "size", 50, 1..=1000)?;
        let date = |name: &str, default: NaiveDate| match pairs.iter().find(|(key, _)| key == name) {
            None => Ok(default),
            Some((_, value)) => value.parse::<NaiveDate>().map_err(|_| ApiError::validation("A date is not valid")),
        };
        let end = date("end_date", chrono::Utc::now().date_naive())?;
        let start = date("start_date", end - Days::new(90))?;
        let accounts_wanted: Vec<&str> =
            pairs.iter().filter(|(k, _)| k == "account_ids").map(|(_, v)| v.as_str()).collect();
        let all = if self.delivered(link, "transactions", now) { newest_first(link) } else { Vec::new() };
        let matching: Vec<Value> = all
            .into_iter()
            .filter(|t| {
                let date: NaiveDate = t["date"].as_str().and_then(|d| d.parse().ok()).expect("mock dates parse");
                date >= start
                    && date <= end
                    && (accounts_wanted.is_empty() || accounts_wanted.contains(&t["account_id"].as_str().unwrap_or("")))
            })
            .collect();
        let total = matching.len();
        let batch: Vec<Value> = matching.into_iter().skip((page - 1).saturating_mul(size)).take(size).collect();
        Ok(
            json!({ "total": total, "page": page, "size": batch.len(), "transactions": batch, "accounts": accounts(link), "link": self.link_json(link, now) }),
        )
    }

    /// M19: the sync feed (see the module documentation).
    fn transactions_sync(&self, link: &Link, now: Instant, query: Option<&str>) -> Result<Value, ApiError> {
        let pairs = query_pairs(query);
        let size = query_number(&pairs, "size", 50, 1..=MAX_SYNC_PAGE)?;
        let cursor = pairs.iter().find(|(key, _)| key == "cursor").map(|(_, c)| SyncCursor::decode(link, c));
        let cursor = cursor.transpose()?;
        let answer = |changes: &[SyncChange], next: Option<SyncCursor>, has_more: bool| {
            let created: Vec<&Value> =
                changes.iter().filter_map(|c| if let SyncChange::Created(t) = c { Some(t) } else { None }).collect();
            let updated: Vec<&Value> =
                changes.iter().filter_map(|c| if let SyncChange::Updated(t) = c { Some(t) } else { None }).collect();
            let removed: Vec<&str> = changes
                .iter()
                .filter_map(|c| if let SyncChange::Removed(id) = c { Some(id.as_str()) } else { None })
                .collect();
            let cursor = next.map_or_else(|| json!({}), |next| json!({ "next": next.encode(link) }));
            json!({
                "transactions": { "created": created, "updated": updated, "removed": removed },
                "accounts": accounts(link),
                "cursor": cursor,
                "has_more": has_more,
                "link": self.link_json(link, now),
            })
        };
        if !self.delivered(link, "transactions", now) {
            return Ok(answer(&[], None, false));
        }
        let (from, to, offset) = match cursor {
            None => (None, link.history.len(), 0),
            Some(SyncCursor::Resume(position)) => (Some(position), link.history.len(), 0),
            Some(SyncCursor::Page { from, to, offset }) => (from, to, offset),
        };
        let changes = link.sync_changes(from, to);
        let page: Vec<SyncChange> = changes.into_iter().skip(offset).collect();
        let has_more = page.len() > size;
        let next = if has_more {
            Some(SyncCursor::Page { from, to, offset: offset + size })
        } else if from == Some(to) {
            // Nothing moved: the caller's cursor stands.
            None
        } else {
            Some(SyncCursor::Resume(to))
        };
        Ok(answer(&page[..page.len().min(size)], next, has_more))
    }

    /// `POST /__admin/transactions`: the bank changes a link's transactions.
    fn change_transactions(&self, body: &[u8]) -> Response<Body> {
        #[derive(Deserialize)]
        #[serde(tag = "op", rename_all = "snake_case")]
        enum Change {
            Post { transaction_id: String },
            Modify { transaction_id: String, description: Option<String>, amount: Option<String> },
            Withdraw { transaction_id: String },
        }
        #[derive(Deserialize)]
        struct Request {
            link_id: String,
            changes: Vec<Change>,
        }
        let Ok(request) = serde_json::from_slice::<Request>(body) else {
            return (StatusCode::BAD_REQUEST, "expected {\"link_id\": ..., \"changes\": [{\"op\": ...}]}\n")
                .into_response();
        };
        let mut world = self.world.lock().expect("mock world lock");
        let Some(link) = world.links.get_mut(&request.link_id) else {
            return ApiError::link_not_found().into_response();
        };
        let mut ids = Vec::new();
        for change in request.changes {
            let current = link.transactions_at(link.history.len());
            let id = match &change {
                Change::Post { transaction_id }
                | Change::Modify { transaction_id, .. }
                | Change::Withdraw { transaction_id } => transaction_id,
            };
            let Some(mut transaction) = current.get(id).cloned() else {
                return (StatusCode::NOT_FOUND, format!("the link has no transaction {id}\n")).into_response();
            };
            match change {
                Change::Post { transaction_id } => {
                    if transaction["pending"] != true {
                        return (StatusCode::CONFLICT, "only a pending transaction posts\n").into_response();
                    }
                    let posted_id = format!("txn_{:016x}", fnv(&format!("{transaction_id}/posted")));
                    let date: NaiveDate =
                        transaction["date"].as_str().and_then(|d| d.parse().ok()).expect("mock dates parse");
                    transaction["transaction_id"] = json!(posted_id);
                    transaction["pending"] = json!(false);
                    transaction["date"] = json!((date + Days::new(1)).to_string());
                    link.history.push((transaction_id, None));
                    link.history.push((posted_id.clone(), Some(transaction)));
                    ids.push(posted_id);
                }
                Change::Modify { transaction_id, description, amount } => {
                    if let Some(description) = description {
                        transaction["raw_description"] = json!(description.to_uppercase());
                        transaction["description"] = json!(description);
                    }
                    if let Some(amount) = amount {
                        transaction["amount"] = json!(amount);
                    }
                    link.history.push((transaction_id.clone(), Some(transaction)));
                    ids.push(transaction_id);
                }
                Change::Withdraw { transaction_id } => {
                    link.history.push((transaction_id.clone(), None));
                    ids.push(transaction_id);
                }
            }
        }
        axum::Json(json!({ "transaction_ids": ids })).into_response()
    }

    /// `GET /__admin/transactions?link_id=…`: the link's transactions now.
    fn current_transactions(&self, query: Option<&str>) -> Response<Body> {
        let pairs = query_pairs(query);
        let Some((_, link_id)) = pairs.iter().find(|(key, _)| key == "link_id") else {
            return (StatusCode::BAD_REQUEST, "expected ?link_id=...\n").into_response();
        };
        let world = self.world.lock().expect("mock world lock");
        let Some(link) = world.links.get(link_id) else {
            return ApiError::link_not_found().into_response();
        };
        axum::Json(json!({ "transactions": newest_first(link) })).into_response()
    }

    /// M22: page-numbered investment transactions.
    fn investment_transactions(&self, link: &Link, now: Instant, query: Option<&str>) -> Result<Value, ApiError> {
        let pairs = query_pairs(query);
        let page = query_number(&pairs, "page", 1, 1..=usize::MAX)?;
        let size = query_number(&pairs, "size", 50, 1..=1000)?;
        let start = pairs.iter().find(|(key, _)| key == "start_date").map(|(_, v)| v.parse::<NaiveDate>()).transpose();
        let start = start
            .map_err(|_| ApiError::validation("A date is not valid"))?
            .unwrap_or_else(|| chrono::Utc::now().date_naive() - Days::new(90));
        let (all, securities) = if self.delivered(link, "investments", now) {
            investment_transactions(link)
        } else {
            (Vec::new(), Vec::new())
        };
        let matching: Vec<Value> = all
            .into_iter()
            .filter(|t| t["date"].as_str().and_then(|d| d.parse::<NaiveDate>().ok()).is_some_and(|d| d >= start))
            .collect();
        let total = matching.len();
        let batch: Vec<Value> = matching.into_iter().skip((page - 1).saturating_mul(size)).take(size).collect();
        Ok(json!({
            "total": total, "page": page, "size": batch.len(), "investment_transactions": batch,
            "securities": securities, "accounts": investment_accounts(link), "link": self.link_json(link, now),
        }))
    }

    fn tokens(&self) -> axum::Json<Value> {
        axum::Json(json!(self.world.lock().expect("mock world lock").issued))
    }

    fn expire_tokens(&self) -> axum::Json<Value> {
        let mut world = self.world.lock().expect("mock world lock");
        let now = Instant::now();
        for expires in world.access_tokens.values_mut() {
            *expires = now;
        }
        axum::Json(json!({ "expired": world.access_tokens.len() }))
    }

    fn finish_import(&self) -> StatusCode {
        let mut world = self.world.lock().expect("mock world lock");
        let now = Instant::now();
        let delay = self.options.import_delay;
        for link in world.links.values_mut() {
            if link.import_started.is_some() {
                link.import_started = now.checked_sub(delay).or(Some(now));
            }
        }
        StatusCode::NO_CONTENT
    }

    /// Sends `payload` to the link's webhook, if it has one, in the background.
    fn announce(&self, link: &Link, payload: Value) {
        if let Some(url) = &link.webhook {
            let (client, key, url) = (self.webhooks.clone(), self.key.clone(), url.clone());
            tokio::spawn(async move {
                deliver(&client, &key, &Delivery { url, payload }).await;
            });
        }
    }

    /// `POST /__admin/webhooks`: one event for one link, delivered now.
    async fn send_webhook(&self, body: &[u8]) -> Response<Body> {
        #[derive(Deserialize)]
        struct Request {
            link_id: String,
            webhook_event: String,
        }
        let Ok(request) = serde_json::from_slice::<Request>(body) else {
            return (StatusCode::BAD_REQUEST, "expected {\"link_id\": ..., \"webhook_event\": ...}\n").into_response();
        };
        let delivery = {
            let world = self.world.lock().expect("mock world lock");
            let now = Instant::now();
            let Some(link) = world.links.get(&request.link_id) else {
                return ApiError::link_not_found().into_response();
            };
            let Some(url) = link.webhook.clone() else {
                return ApiError::new(StatusCode::BAD_REQUEST, "link_error.bad_config", "The link has no webhook URL.")
                    .into_response();
            };
            let payload = match request.webhook_event.as_str() {
                "link.state_changed" => state_changed(link),
                "link.product_refresh" => {
                    product_refresh(link, "transactions", link.phase(self.options.import_delay, now), now)
                }
                "transactions.updates_available" => updates_available(link),
                _ => return ApiError::validation("Unknown webhook_event").into_response(),
            };
            Delivery { url, payload }
        };
        let (status, delivery_token) = deliver(&self.webhooks, &self.key, &delivery).await;
        axum::Json(json!({ "delivery_token": delivery_token, "status": status })).into_response()
    }
}

fn webhook_common(event: &str, link: &Link) -> Value {
    json!({
        "webhook_event": event,
        "webhook_major_version": 1,
        "webhook_minor_version": 0,
        "webhook_timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "webhook_idempotency_key": random_id("whk_"),
        "link_id": link.id,
        "link_tags": link.tags,
    })
}

fn state_changed(link: &Link) -> Value {
    let mut payload = webhook_common("link.state_changed", link);
    payload["state"] = json!(link.state);
    payload
}

fn product_refresh(link: &Link, product: &str, phase: Phase, now: Instant) -> Value {
    let mut payload = webhook_common("link.product_refresh", link);
    payload["product"] = json!(product);
    payload["state"] = json!(match phase {
        Phase::Pending => "pending",
        Phase::InProgress => "in_progress",
        Phase::Completed => "completed",
    });
    payload["state_changed_at"] = json!(timestamp(now, now));
    payload
}

fn updates_available(link: &Link) -> Value {
    let mut payload = webhook_common("transactions.updates_available", link);
    payload["has_history"] = json!(true);
    payload
}

/// The client that delivers webhooks (plain http to loopback receivers, or https).
/// Delivers one webhook, signed, retrying a non-2xx answer twice with backoff (same idempotency
/// key and timestamp). Returns the last HTTP status (0 when none came) and the delivery token.
async fn deliver(client: &reqwest::Client, key: &SigningKey, delivery: &Delivery) -> (u16, String) {
    let body = serde_json::to_vec(&delivery.payload).expect("webhooks serialize");
    let delivery_token = random_id("dlv_");
    let mut status = 0;
    for attempt in 1..=3u32 {
        let claims = json!({ "iat": chrono::Utc::now().timestamp(), "request_body_sha256": body_sha256(&body) });
        let sent = client
            .post(&delivery.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header("MoneyKit-Signature", key.sign(&claims))
            .header("MoneyKit-Delivery-Token", &delivery_token)
            .header("MoneyKit-Delivery-Attempt", attempt.to_string())
            .body(body.clone())
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        status = sent.as_ref().map_or(0, |r| r.status().as_u16());
        if (200..300).contains(&status) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
    }
    (status, delivery_token)
}

/// Announces each product of each link as it completes (`link.product_refresh`, and
/// `transactions.updates_available` for transactions), until the mock is gone.
async fn deliver_product_webhooks(mock: std::sync::Weak<Mock>) {
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Some(mock) = mock.upgrade() else { return };
        let deliveries: Vec<Delivery> = {
            let mut world = mock.world.lock().expect("mock world lock");
            let now = Instant::now();
            let delay = mock.options.import_delay;
            let mut deliveries = Vec::new();
            for link in world.links.values_mut() {
                let Some(url) = link.webhook.clone() else { continue };
                if link.state != "connected" || link.phase(delay, now) != Phase::Completed {
                    continue;
                }
                for product in link.products.clone() {
                    if link.announced.contains(&product) {
                        continue;
                    }
                    deliveries.push(Delivery {
                        url: url.clone(),
                        payload: product_refresh(link, &product, Phase::Completed, now),
                    });
                    if product == "transactions" {
                        deliveries.push(Delivery { url: url.clone(), payload: updates_available(link) });
                    }
                    link.announced.push(product);
                }
            }
            deliveries
        };
        for delivery in deliveries {
            let (client, key) = (mock.webhooks.clone(), mock.key.clone());
            tokio::spawn(async move {
                deliver(&client, &key, &delivery).await;
            });
        }
    }
}

/// An id derived from the link, so every link has its own.
fn derived_id(prefix: &str, link: &Link, what: &str) -> String {
    format!("{prefix}{:016x}", fnv(&format!("{}/{what}", link.seed)))
}

/// The link's accounts: balances are JSON numbers, the card's positive when owed.
fn accounts(link: &Link) -> Vec<Value> {
    let account = |what: &str, account_type: &str, name: &str, mask: &str, balances: Value| {
        json!({
            "account_id": derived_id("acc_", link, what), "account_type": account_type, "name": name,
            "nickname": null, "account_mask": mask, "balances": balances, "original_id": null, "closed": false,
        })
    };
    vec![
        account(
            "checking",
            "depository.checking",
            "Everyday Checking",
            "1111",
            json!({"currency": "USD", "available": 1204.5, "current": 1250.75, "limit": null, "balance_date": "2025-11-20T08:00:00"}),
        ),
        account(
            "savings",
            "depository.savings",
            "High-Yield Savings",
            "2222",
            json!({"currency": "USD", "available": 10000, "current": 10000.0}),
        ),
        account(
            "card",
            "liability.credit_card",
            "Rewards Card",
            "3333",
            json!({"currency": "USD", "available": 4749.25, "current": 250.75, "limit": 5000}),
        ),
        investment_account(link),
    ]
}

/// `AccountWithNumbers` of each account: checking and savings have numbers in the forms of the
/// institution's country (US account numbers end in the account's mask); the others none.
fn accounts_with_numbers(link: &Link) -> Vec<Value> {
    accounts(link)
        .into_iter()
        .map(|mut account| {
            let kind = account["account_type"].as_str().unwrap_or_default().to_owned();
            let mask = account["account_mask"].as_str().unwrap_or_default().to_owned();
            let mut numbers = json!({ "ach": [], "eft": [], "bacs": [], "international": [] });
            if kind.starts_with("depository.") {
                let savings = kind == "depository.savings";
                match link.institution.country {
                    "US" => {
                        let leading = fnv(&format!("{}/{kind}/number", link.seed)) % 100_000_000;
                        numbers["ach"] = json!([{
                            "account_number": format!("{leading:08}{mask}"), "routing_number": "021000021",
                            "wire_routing_number": if savings { Value::Null } else { json!("021000089") },
                        }]);
                    }
                    "GB" => {
                        let (account_number, sort_code, iban, bic) = if savings {
                            ("30093459", "102015", "GB94BARC10201530093459", "BARCGB22")
                        } else {
                            ("31926819", "601613", "GB29NWBK60161331926819", "NWBKGB2L")
                        };
                        numbers["bacs"] = json!([{ "account_number": account_number, "sort_code": sort_code }]);
                        numbers["international"] = json!([{ "iban": iban, "bic": bic }]);
                    }
                    _ => {
                        numbers["eft"] = json!([{
                            "account_number": format!("{}{mask}", if savings { "5071" } else { "1023" }),
                            "institution_number": "003", "branch_number": "00002",
                        }]);
                    }
                }
            }
            account["numbers"] = numbers;
            account
        })
        .collect()
}

/// `AccountIdentity` of each account: one owner, two for the joint savings account.
fn accounts_with_owners(link: &Link) -> Vec<Value> {
    let jordan = json!({
        "names": ["Jordan Avery"],
        "addresses": [{"city": "Columbus", "country": "US", "postal_code": "43215", "region": "OH",
                       "street": "100 Main St", "primary": true}],
        "phone_numbers": [{"number": "+16145550123", "primary": true, "type": "mobile"}],
        "emails": [{"address": "jordan.avery@example.com", "primary": true}],
    });
    let casey = json!({
        "names": ["Casey Avery"],
        "addresses": [],
        "phone_numbers": [{"number": "+16145550187", "primary": false, "type": "work"}],
        "emails": [{"address": "casey.avery@example.com", "primary": true}],
    });
    accounts(link)
        .into_iter()
        .map(|mut account| {
            let joint = account["account_type"] == "depository.savings";
            account["owners"] = if joint { json!([jordan, casey]) } else { json!([jordan]) };
            account
        })
        .collect()
}

fn investment_account(link: &Link) -> Value {
    json!({
        "account_id": derived_id("acc_", link, "brokerage"), "account_type": "investment.brokerage",
        "name": "Brokerage", "account_mask": "4444", "balances": {"currency": "USD", "current": 2963.63},
    })
}

fn investment_accounts(link: &Link) -> Vec<Value> {
    vec![investment_account(link)]
}

/// The link's transactions now, newest first.
fn newest_first(link: &Link) -> Vec<Value> {
    let mut transactions: Vec<Value> = link.transactions_at(link.history.len()).into_values().collect();
    let date = |t: &Value| t["date"].as_str().unwrap_or_default().to_owned();
    transactions.sort_by_key(|t| std::cmp::Reverse(date(t)));
    transactions
}

/// The link's cash transactions as the bank first served them, newest first: amounts are
/// non-negative decimal strings with a `credit`/`debit` type.
fn generated_transactions(link: &Link) -> Vec<Value> {
    let newest = NaiveDate::from_ymd_opt(NEWEST.0, NEWEST.1, NEWEST.2).expect("a valid date");
    let checking = derived_id("acc_", link, "checking");
    let card = derived_id("acc_", link, "card");
    (0..TRANSACTIONS_PER_LINK)
        .map(|i| {
            let key = fnv(&format!("{}/{i}", link.seed));
            let (account, amount, kind, description, pending) = match i {
                0 => (&checking, "2500.00".to_owned(), "credit", "Payroll ACME Corp".to_owned(), false),
                1 => (&checking, "4.50".to_owned(), "debit", "Blue Bottle Coffee".to_owned(), true),
                2 => (&card, "18.20".to_owned(), "debit", "Corner Store".to_owned(), true),
                _ => {
                    let cents = 100 + key % 20_000;
                    let kind = if i % 7 == 0 { "credit" } else { "debit" };
                    let account = if i % 4 == 3 { &card } else { &checking };
                    (
                        account,
                        format!("{}.{:02}", cents / 100, cents % 100),
                        kind,
                        format!("Merchant {}", key % 97),
                        false,
                    )
                }
            };
            json!({
                "transaction_id": format!("txn_{key:016x}"),
                "account_id": account,
                "amount": amount,
                "type": kind,
                "currency": "USD",
                "date": (newest - Days::new(i as u64 / 3)).to_string(),
                "datetime": null,
                "description": description,
                "raw_description": description.to_uppercase(),
                "pending": pending,
                "category": "shopping",
                "enrichment": {"category": {"value": "shopping", "confidence": 90}},
                "original_id": null,
            })
        })
        .collect()
}

fn securities() -> Vec<Value> {
    vec![
        json!({"security_id": "sec_aapl", "name": "Apple Inc.", "type": "equity", "currency": "USD", "ticker": "AAPL",
               "isin": "US0378331005", "sedol": null, "close_price": "189.25", "close_date": "2025-11-20"}),
        json!({"security_id": "sec_vti", "name": "Vanguard Total Stock Market ETF", "type": "etf", "currency": "USD",
               "ticker": "VTI", "isin": "US9229087690", "close_price": "245.50", "close_date": "2025-11-20"}),
        // Priced in euros on Euronext; held in a dollar account, so its holding is in dollars.
        json!({"security_id": "sec_asml", "name": "ASML Holding N.V.", "type": "equity", "currency": "EUR",
               "ticker": "ASML", "isin": "NL0010273215", "close_price": "640.10", "close_date": "2025-11-20"}),
    ]
}

/// Holdings of the brokerage account: decimal strings.
fn holdings(link: &Link) -> (Vec<Value>, Vec<Value>) {
    let account = derived_id("acc_", link, "brokerage");
    let holdings = vec![
        json!({"account_id": account, "security_id": "sec_aapl", "quantity": "10.5", "price": "189.25",
               "price_datetime": "2025-11-20T21:00:00", "value": "1987.125", "cost_basis": "1500.00"}),
        json!({"account_id": account, "security_id": "sec_vti", "quantity": "3", "price": "245.50",
               "value": "736.50", "cost_basis": "700.00"}),
        json!({"account_id": account, "security_id": "sec_asml", "quantity": "2", "price": "695.20",
               "value": "1390.40", "cost_basis": "1200.00"}),
    ];
    (holdings, securities())
}

/// Investment transactions, newest first: a positive amount is money out.
fn investment_transactions(link: &Link) -> (Vec<Value>, Vec<Value>) {
    let account = derived_id("acc_", link, "brokerage");
    let transactions = vec![
        json!({"investment_transaction_id": derived_id("itx_", link, "buy"), "account_id": account, "amount": "945.50",
               "date": "2025-11-18", "description": "Buy AAPL", "type": "buy", "fees": "0.00", "price": "189.10",
               "quantity": "5", "security_id": "sec_aapl"}),
        json!({"investment_transaction_id": derived_id("itx_", link, "asml"), "account_id": account, "amount": "1390.40",
               "date": "2025-11-12", "description": "Buy ASML", "type": "buy", "fees": "0.00", "price": "695.20",
               "quantity": "2", "forex_rate": "1.0861", "security_id": "sec_asml"}),
        json!({"investment_transaction_id": derived_id("itx_", link, "dividend"), "account_id": account, "amount": "-12.34",
               "date": "2025-11-10", "description": "VTI dividend", "type": "cash.dividend", "security_id": "sec_vti"}),
        json!({"investment_transaction_id": derived_id("itx_", link, "fee"), "account_id": account, "amount": "1.00",
               "date": "2025-11-01", "description": "Account fee", "type": "fee"}),
    ];
    (transactions, securities())
}

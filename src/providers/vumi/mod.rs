//! Vumi Finlink: Spanish brokers and banks through Vumi's hosted Link widget (reference, with the
//! source of each fact: docs/providers/vumi.md).
//!
//! Every call carries `Authorization: Bearer <session JWT>` and the caller's request id as
//! `X-Client-Trace-ID`, through the shared client in [`super::upstream_client`] (which logs Vumi's
//! `X-Request-ID`). The flow, and what each step maps to:
//!
//! | linkgate | Vumi |
//! |---|---|
//! | session token | V1 `POST /auth/login`, shared by every replica ([`super::session`]) |
//! | `start_link` | V2 `POST /commands/connections/start-flow`: the widget's start token is `LinkStart.link_token` |
//! | `poll_link` | V7 `GET /queries/connections/pending?externalId=<link session id>` |
//! | `exchange_public_token` | V4 `POST /commands/connections/exchange/{publicToken}`, then V5 for the entity |
//! | `connection_status` | V5 `GET /queries/connections/{token}` |
//! | `fetch_data` | V11 accounts, V12 account transactions, V13 portfolios, V14 portfolio transactions, V15 active positions, V9 instruments |
//! | `delete_connection` | V8 `DELETE /commands/connections/{token}` |
//! | `institutions` / `institution` | V3 `GET /queries/entities` (path and shape inferred) |
//! | repair: `start_link` / `poll_link` | V5 for the connection's `restoreToken` / `updateToken`; V5 until the widget consumed it |
//!
//! Choices where Vumi leaves room:
//!
//! - **One session per credential pair.** A second login ends the first session, so the JWT is
//!   held in the store under a login lease: one replica logs in, the others read what it stored.
//!   A 401 means the session ended (expired, or replaced): the adapter logs in once more, unless
//!   another replica already did, and repeats the call once.
//! - **The widget's tag** (`externalId`) is the link session id, not the caller's user id: Vumi's
//!   pending tokens are visible to the whole app, so tagging by session keeps each tenant's
//!   tokens apart and finds exactly the session's token. ListPublicTokens then serves them from
//!   the store, filtered by the session's external user id like every provider's.
//! - **The widget** has no documented host, so sessions carry no `hosted_link_url`: the caller's
//!   front end opens Vumi's widget with the start token. A user who abandons the widget leaves
//!   no trace upstream; the session simply expires.
//! - **Public tokens** have no documented lifetime; linkgate accepts them for
//!   24 hours (`PUBLIC_TOKEN_TTL`) after the widget issued them.
//! - **Institutions** are the app's entities from V3, kept for `LINKGATE_VUMI_INSTITUTIONS_TTL`
//!   and searched by name in linkgate. V3's path and fields are not published: an answer that
//!   says the guess is wrong makes listing unsupported, and an entity-like id (`santander`) is
//!   then handed to the widget, which knows the app's entities.
//! - **Repair** runs in the widget with Vumi's link parameters: a repair session's `link_token` is
//!   the widget's query string, `id=<redirect id>&restore_token=<token>` (V5's `restoreToken`),
//!   or `update_token` when Vumi offers only a manual update. The token stays sealed in the
//!   session's upstream state, and the query string is made from it only when the session is
//!   served ([`Provider::sealed_link_token`]). A failed connection (`ERRORED`, `UPDATE_ERROR`)
//!   that offers either token needs its user: LOGIN_REQUIRED. Vumi documents no public token for
//!   these flows and the connection token stays the connection's, so the session polls V5 until
//!   the token it started with is no longer offered and the connection is `UPDATING`, `PENDING`
//!   or `READY`, then ends `LinkProgress::Repaired` with the handle unchanged.
//! - **Refresh** has no API: Vumi updates a connection by itself (daily) when it keeps the user's
//!   credentials (V5 `hasCredentials`) and no manual update is due; otherwise only the user can
//!   update it, in the widget (V5 `updateToken`). So `refresh` asks V5 first ([`refresh_rule`]):
//!   a connection Vumi updates by itself is read again from Vumi (its newest extraction), one
//!   that offers an update token needs its user (LOGIN_REQUIRED: a repair session runs the
//!   update), and one whose credentials Vumi does not keep cannot be refreshed (unsupported).
//! - **Account numbers and owners** come with the accounts and portfolios Vumi serves anyway (no
//!   call of their own): an account's `iban` is its number (international, without a BIC, which
//!   Vumi does not give), and the `owners` of accounts and portfolios are names only, one owner
//!   per name. Portfolios are named after their type, never after their owners, so no owner
//!   reaches a read that needs no scope.

mod data;
mod wire;

use super::catalogue::{Catalogue, matching};
use super::session::{SessionToken, SharedSessions};
use super::upstream_client::{
    HttpClient, Retry, Upstream, UpstreamConfig, UpstreamReply, UpstreamRequest, caller_request_id, endpoint,
    is_plain_segment,
};
use super::{
    Credentials, ExchangedConnection, Institution, InstitutionKind, LinkContext, LinkProgress, LinkStart, LinkStep,
    Provider, ProviderError, ProviderInfo, ProviderResult, UpstreamStatus, WebhookNotice, WebhookScheme, log_safe,
};
use crate::config::VumiSettings;
use crate::crypto::jws::Jwk;
use crate::domain::{LinkFlow, Product, Timestamp, now};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use data::{Fetched, connection_data};
use reqwest::StatusCode;
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// The provider id.
pub const ID: &str = "vumi";
/// The provider's display name.
pub const DISPLAY_NAME: &str = "Vumi Finlink";
/// Products a Vumi connection delivers.
const PRODUCTS: &[Product] =
    &[Product::Accounts, Product::Transactions, Product::Investments, Product::Identity, Product::AccountNumbers];
/// How long a public token is accepted after the widget issued it (Vumi documents no limit).
const PUBLIC_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// A session's lifetime when its JWT does not say (Vumi documents one hour).
const SESSION_TTL: Duration = Duration::from_secs(3600);
/// Budget of the V5 call that names the entity after an exchange: the exchange itself already
/// succeeded, so this one must not hold it up for long.
const EXCHANGE_STATUS_BUDGET: Duration = Duration::from_secs(10);
/// New sessions tried after a 401, per call: the first may be another replica's newer session
/// that Vumi has already ended too; the second is then a login of this replica's own.
const SESSION_RENEWALS: u32 = 2;
/// The product the widget is started for (the only documented one besides assets transfer).
const WIDGET_PRODUCT: &str = "TRANSACTIONS";

const TRACE_HEADER: HeaderName = HeaderName::from_static("x-client-trace-id");

/// The Vumi provider.
pub struct Vumi {
    info: ProviderInfo,
    upstream: Upstream,
    base_url: Url,
    client_id: String,
    secret: SecretString,
    redirect_id: String,
    sessions: SharedSessions,
    session_key: String,
    /// This replica's copy of the shared session; its lock makes logins single-flight here.
    current: tokio::sync::Mutex<Option<SessionToken>>,
    /// The app's entities, kept for `LINKGATE_VUMI_INSTITUTIONS_TTL`.
    catalogue: Catalogue,
}

impl Vumi {
    /// Vumi as the settings configure it, or `None` when it is not to be offered (no
    /// credentials) or cannot be (a setting is unusable; logged).
    pub fn from_settings(settings: &VumiSettings, sessions: SharedSessions) -> Option<Self> {
        let secret = settings.client_secret.as_ref();
        super::with_credentials(ID, settings.client_id.as_deref(), secret, |http| Self::new(settings, http, sessions))
    }

    /// Vumi over `http` with `settings`, which must hold credentials and the redirect id.
    pub fn new(settings: &VumiSettings, http: HttpClient, sessions: SharedSessions) -> Result<Self, String> {
        let (Some(client_id), Some(secret), Some(redirect_id)) =
            (&settings.client_id, &settings.client_secret, &settings.redirect_id)
        else {
            return Err("set LINKGATE_VUMI_CLIENT_ID, LINKGATE_VUMI_CLIENT_SECRET and LINKGATE_VUMI_REDIRECT_ID".into());
        };
        let base_url = super::upstream_client::parse_base_url(settings.base_url.as_str())?;
        let upstream = Upstream::new(
            http,
            UpstreamConfig::new(ID, settings.request_timeout, settings.call_timeout, settings.max_attempts),
        );
        Ok(Self {
            info: ProviderInfo {
                id: ID,
                display_name: DISPLAY_NAME,
                flows: &[LinkFlow::Hosted],
                products: PRODUCTS,
                poll_interval: settings.poll_interval,
                // Vumi refreshes connections daily.
                refresh_interval: Duration::from_secs(24 * 3600),
                consent_lifetime: None,
                refresh_limits: &[],
                required_inputs: &[],
                min_external_user_id_chars: 1,
            },
            // One session per credential pair at one API: the pair's key in the shared store.
            session_key: format!("{ID} {} {client_id}", base_url.as_str().trim_end_matches('/')),
            upstream,
            base_url,
            client_id: client_id.clone(),
            secret: secret.clone(),
            redirect_id: redirect_id.clone(),
            sessions,
            current: tokio::sync::Mutex::default(),
            catalogue: Catalogue::new(settings.institutions_ttl),
        })
    }

    /// A session token other than `stale`: this replica's, the store's, or a new login.
    async fn session(&self, stale: Option<&SecretString>) -> ProviderResult<SecretString> {
        let mut current = self.current.lock().await;
        if let Some(session) = current.as_ref().filter(|s| s.usable(stale)) {
            return Ok(session.token.clone());
        }
        let budget = self.upstream.config().call_timeout;
        let fresh =
            self.sessions.token(&self.session_key, stale, budget, Instant::now() + budget, || self.login()).await?;
        let token = fresh.token.clone();
        *current = Some(fresh);
        Ok(token)
    }

    /// V1: a new session (which ends the previous one, everywhere).
    async fn login(&self) -> ProviderResult<SessionToken> {
        let body = wire::Login { client_id: &self.client_id, client_secret: self.secret.expose_secret() };
        // A repeated login is harmless: only the session from the last answer is kept.
        let request = UpstreamRequest::post_json("vumi.auth_login", endpoint(&self.base_url, "/auth/login"), &body)?
            .template("/auth/login");
        let reply = self.upstream.send(traced(request)).await?;
        if !reply.is_success() {
            return Err(ProviderError::Rejected {
                detail: format!("vumi.auth_login: the client id or secret was not accepted (HTTP {})", reply.status),
            });
        }
        let answer: wire::TokenAnswer = reply.json()?;
        let expires_at = jwt_expiry(&answer.token).unwrap_or_else(|| now() + SESSION_TTL);
        tracing::info!(provider = ID, %expires_at, "logged in to Vumi");
        Ok(SessionToken { token: SecretString::from(answer.token), expires_at })
    }

    /// One authenticated call: a 401 is answered with a new session and another try.
    async fn send(&self, route: &Route<'_>, deadline: Option<Instant>) -> Result<UpstreamReply, Failure> {
        let mut stale: Option<SecretString> = None;
        let mut renewals = 0;
        loop {
            let token = self.session(stale.as_ref()).await.map_err(Failure::Other)?;
            let bearer = SecretString::from(format!("Bearer {}", token.expose_secret()));
            let mut request =
                route.request(&self.base_url).map_err(Failure::Other)?.secret_header(AUTHORIZATION, &bearer);
            if let Some(deadline) = deadline {
                request = request.deadline(deadline);
            }
            let reply = self.upstream.send(traced(request)).await.map_err(Failure::Other)?;
            if reply.status == StatusCode::UNAUTHORIZED && renewals < SESSION_RENEWALS {
                renewals += 1;
                tracing::info!(
                    provider = ID,
                    operation = route.operation(),
                    "Vumi ended the session; logging in again"
                );
                stale = Some(token);
                continue;
            }
            return if reply.is_success() {
                Ok(reply)
            } else {
                Err(Failure::Refused { operation: route.operation(), status: reply.status })
            };
        }
    }

    async fn get<T: DeserializeOwned>(&self, route: Route<'_>) -> Result<T, Failure> {
        self.send(&route, None).await?.json().map_err(Failure::Other)
    }

    /// One of the connection's data listings; a 404 means the connection is gone for this app.
    async fn read<T: DeserializeOwned>(&self, token: &str, data: Data) -> ProviderResult<Vec<T>> {
        match self.get(Route::Data { token, data }).await {
            Ok(items) => Ok(items),
            Err(failure) if failure.is_not_found() => Err(ProviderError::LoginRequired),
            Err(failure) => Err(failure.into()),
        }
    }
}

/// Adds the caller's request id as Vumi's client trace id (Vumi echoes it).
fn traced(request: UpstreamRequest) -> UpstreamRequest {
    match caller_request_id().and_then(|id| HeaderValue::from_str(&id).ok()) {
        Some(id) => request.header(TRACE_HEADER, id),
        None => request,
    }
}

/// The `exp` claim of a JWT, read without verifying it (linkgate only needs to know when to stop
/// using the token; Vumi is what checks it).
fn jwt_expiry(token: &str) -> Option<Timestamp> {
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    chrono::DateTime::from_timestamp(claims.get("exp")?.as_i64()?, 0)
}

/// The Vumi endpoints linkgate calls. Connection and public tokens go in paths, escaped.
enum Route<'a> {
    StartFlow(wire::StartFlow<'a>),
    Pending { external_id: &'a str },
    Exchange { public_token: &'a str },
    Status { token: &'a str },
    Entities,
    Delete { token: &'a str },
    Data { token: &'a str, data: Data },
    WebhookKey { key_id: &'a str },
}

/// The read endpoints under `/queries/connections/{token}`.
#[derive(Debug, Clone, Copy)]
enum Data {
    Accounts,
    AccountTransactions,
    Portfolios,
    PortfolioTransactions,
    Positions,
    Investments,
}

impl Data {
    fn spec(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Self::Accounts => ("vumi.accounts", &["accounts"]),
            Self::AccountTransactions => ("vumi.account_transactions", &["accounts", "transactions"]),
            Self::Portfolios => ("vumi.portfolios", &["portfolios"]),
            Self::PortfolioTransactions => ("vumi.portfolio_transactions", &["portfolios", "transactions"]),
            Self::Positions => ("vumi.active_positions", &["portfolios", "active-positions"]),
            Self::Investments => ("vumi.investments", &["investments"]),
        }
    }
}

impl Route<'_> {
    fn operation(&self) -> &'static str {
        match self {
            Self::StartFlow(_) => "vumi.start_flow",
            Self::Pending { .. } => "vumi.pending_public_tokens",
            Self::Exchange { .. } => "vumi.exchange",
            Self::Status { .. } => "vumi.connection",
            Self::Entities => "vumi.entities",
            Self::Delete { .. } => "vumi.delete_connection",
            Self::Data { data, .. } => data.spec().0,
            Self::WebhookKey { .. } => "vumi.webhook_verification_key",
        }
    }

    fn request(&self, base: &Url) -> ProviderResult<UpstreamRequest> {
        let operation = self.operation();
        let at = |path: &str, segments: &[&str]| {
            let mut url = endpoint(base, path);
            url.path_segments_mut().expect("an http URL has a path").extend(segments);
            url
        };
        let request = match self {
            Self::StartFlow(body) => {
                UpstreamRequest::post_json(operation, at("/commands/connections/start-flow", &[]), body)?
                    .template("/commands/connections/start-flow")
            }
            Self::Pending { external_id } => {
                let mut url = at("/queries/connections/pending", &[]);
                url.query_pairs_mut().append_pair("externalId", external_id);
                UpstreamRequest::get(operation, url).template("/queries/connections/pending")
            }
            // Single use: when an attempt consumed the token and its answer was lost, a retry
            // answers 404, which is no worse than not retrying; when it did not, it saves the link.
            Self::Exchange { public_token } => {
                UpstreamRequest::post(operation, at("/commands/connections/exchange", &[public_token]))
                    .retry(Retry::Idempotent)
                    .template("/commands/connections/exchange/{public_token}")
            }
            Self::Status { token } => UpstreamRequest::get(operation, at("/queries/connections", &[token]))
                .template("/queries/connections/{token}"),
            Self::Entities => {
                UpstreamRequest::get(operation, at("/queries/entities", &[])).template("/queries/entities")
            }
            Self::Delete { token } => UpstreamRequest::delete(operation, at("/commands/connections", &[token]))
                .template("/commands/connections/{token}"),
            Self::Data { token, data } => {
                let mut url = at("/queries/connections", &[token]);
                url.path_segments_mut().expect("an http URL has a path").extend(data.spec().1);
                UpstreamRequest::get(operation, url)
                    .template(format!("/queries/connections/{{token}}/{}", data.spec().1.join("/")))
            }
            Self::WebhookKey { key_id } => UpstreamRequest::get(operation, at("/webhook_verification", &[key_id]))
                .template("/webhook_verification/{key_id}"),
        };
        Ok(request)
    }
}

/// Why a call did not answer 2xx: Vumi refused it, or it failed below that.
enum Failure {
    Refused { operation: &'static str, status: StatusCode },
    Other(ProviderError),
}

impl Failure {
    fn is_not_found(&self) -> bool {
        matches!(self, Self::Refused { status: StatusCode::NOT_FOUND, .. })
    }
}

impl From<Failure> for ProviderError {
    /// THE table from Vumi's refusals to linkgate's errors (Vumi's error bodies are undocumented,
    /// so only the status counts; operations make their own exceptions for 404).
    fn from(failure: Failure) -> Self {
        let (operation, status) = match failure {
            Failure::Refused { operation, status } => (operation, status),
            Failure::Other(error) => return error,
        };
        let why = match status {
            StatusCode::UNAUTHORIZED => "the session was refused even after a new login",
            StatusCode::FORBIDDEN => "the app's credentials lack the scope for this call",
            StatusCode::NOT_FOUND => "the resource does not exist for this app",
            StatusCode::BAD_REQUEST => "the request was not valid for Vumi",
            _ => "an answer linkgate does not know",
        };
        ProviderError::Rejected { detail: format!("{operation}: Vumi refused the call: {why} (HTTP {status})") }
    }
}

/// What a repair session remembers: the widget parameter it was started with and its token, which
/// Vumi stops offering once the user went through the widget.
#[derive(serde::Serialize, serde::Deserialize)]
struct RepairState {
    parameter: String,
    token: String,
}

impl Vumi {
    /// A repair session's start: the connection's restore token (or, without one, its update
    /// token) from V5, handed to the front end as the widget's query parameters.
    async fn start_repair(&self, handle: &SecretString) -> ProviderResult<LinkStart> {
        let connection: wire::Connection = match self.get(Route::Status { token: handle.expose_secret() }).await {
            Ok(connection) => connection,
            Err(failure) if failure.is_not_found() => {
                return Err(ProviderError::Rejected {
                    detail: "vumi.connection_status: the connection to repair does not exist for this app".to_owned(),
                });
            }
            Err(failure) => return Err(failure.into()),
        };
        let (parameter, token) = match (connection.restore_token, connection.update_token) {
            (Some(token), _) => ("restore_token", token),
            (None, Some(token)) => ("update_token", token),
            (None, None) => {
                return Err(ProviderError::Rejected {
                    detail: "vumi.connection_status: Vumi offers no restore or update of this connection now"
                        .to_owned(),
                });
            }
        };
        let state = RepairState { parameter: parameter.to_owned(), token };
        let state = serde_json::to_string(&state).expect("repair state serializes");
        // The token lets its holder act on the user's connection: it stays in the sealed state,
        // and the widget's parameters are made from it whenever the session is served.
        Ok(LinkStart { link_token: None, hosted_link_url: None, upstream_state: Some(SecretString::from(state)) })
    }

    /// Where a repair stands: over once V5 no longer offers the token the widget was started
    /// with and the connection is importing or ready again.
    async fn repair_progress(&self, link: &LinkContext, handle: &SecretString) -> ProviderResult<LinkProgress> {
        let state: RepairState = link
            .upstream_state
            .as_ref()
            .and_then(|state| serde_json::from_str(state.expose_secret()).ok())
            .ok_or_else(|| ProviderError::Protocol { detail: "malformed Vumi repair state".to_owned() })?;
        let connection: wire::Connection = match self.get(Route::Status { token: handle.expose_secret() }).await {
            Ok(connection) => connection,
            Err(failure) if failure.is_not_found() => {
                return Ok(LinkProgress::Failed {
                    reason: crate::domain::ErrorReason::ProviderRejected,
                    message: "Vumi no longer knows this connection; link it again.".to_owned(),
                });
            }
            Err(failure) => return Err(failure.into()),
        };
        let offered = match state.parameter.as_str() {
            "restore_token" => connection.restore_token.as_deref(),
            _ => connection.update_token.as_deref(),
        };
        if offered == Some(state.token.as_str()) {
            return Ok(LinkProgress::Connecting);
        }
        Ok(match connection.status.as_str() {
            "PENDING" | "UPDATING" | "READY" => LinkProgress::Repaired { handle: None },
            _ => {
                tracing::info!(provider = ID, link_session_id = %link.link_session_id, vumi_status = log_safe(&connection.status), "Vumi repair token replaced without the connection recovering");
                LinkProgress::Failed {
                    reason: crate::domain::ErrorReason::ProviderRejected,
                    message: "Vumi still needs the user to restore the connection; start a new repair session."
                        .to_owned(),
                }
            }
        })
    }
}

impl Vumi {
    /// V3: the entities enabled for the app, from the catalogue while it is fresh. V3's path and
    /// shape are inferred, so an answer that says they are wrong (the path or method unknown, a
    /// body that is not a list of entities) is `Unsupported`, not a failure of Vumi's.
    async fn entities(&self) -> ProviderResult<std::sync::Arc<[Institution]>> {
        self.catalogue
            .list("", async {
                let entities: Vec<wire::Entity> = match self.get(Route::Entities).await {
                    Ok(entities) => entities,
                    Err(Failure::Refused {
                        status: StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::BAD_REQUEST,
                        ..
                    })
                    | Err(Failure::Other(ProviderError::Protocol { .. })) => {
                        tracing::warn!(provider = ID, "Vumi's entity list is not where or what linkgate expects");
                        return Err(ProviderError::Unsupported("listing Vumi's entities"));
                    }
                    Err(failure) => return Err(failure.into()),
                };
                Ok(entities.into_iter().filter(|e| entity_like(&e.id)).map(entity).collect())
            })
            .await
    }
}

/// Whether `id` can be a Vumi entity id (`santander`, `bbva`): one plain lowercase segment.
fn entity_like(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// An entity as an institution: a bank when Vumi says so, else a broker (Vumi's focus). Every
/// entity is Spanish and linked in the widget, so it has no login form of linkgate's.
fn entity(entity: wire::Entity) -> Institution {
    let bank = entity.kind.as_deref().is_some_and(|kind| kind.eq_ignore_ascii_case("BANK"));
    Institution {
        name: entity.name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| entity.id.clone()),
        id: entity.id,
        kind: if bank { InstitutionKind::Bank } else { InstitutionKind::Broker },
        products: PRODUCTS.to_vec(),
        credential_fields: Vec::new(),
        country_codes: vec!["ES".to_owned()],
    }
}

/// THE table of V5 connection statuses; `false` for a value Vumi did not document (treated as
/// still importing, so nothing is fetched or failed on a guess).
fn connection_state(connection: &wire::Connection) -> (UpstreamStatus, bool) {
    let retryable = connection.error_details.as_ref().and_then(|d| d.retryable).unwrap_or(false);
    let failed = |message: &str| UpstreamStatus::Failed { message: message.to_owned(), retryable };
    match connection.status.as_str() {
        // An update runs on data that stays served: wait for it to settle.
        "PENDING" | "UPDATING" => (UpstreamStatus::Importing, true),
        "READY" => (UpstreamStatus::Ready, true),
        // A restore token, or an update token (only a manual update can refresh it), on a failed
        // connection means only the user can bring it back, in the widget.
        "ERRORED" | "UPDATE_ERROR" if connection.restore_token.is_some() || connection.update_token.is_some() => {
            (UpstreamStatus::LoginRequired, true)
        }
        "ERRORED" => (failed("Vumi could not extract the connection's data"), true),
        "UPDATE_ERROR" => (failed("Vumi's last update of the connection failed"), true),
        _ => (UpstreamStatus::Importing, false),
    }
}

/// THE rule for a refresh from V5: what Vumi updates by itself is read again; an update only the
/// user can run (`updateToken`) needs them; without stored credentials nothing can refresh it.
fn refresh_rule(connection: &wire::Connection) -> ProviderResult<()> {
    match (connection.has_credentials, &connection.update_token) {
        (_, Some(_)) => Err(ProviderError::LoginRequired),
        (Some(true), None) => Ok(()),
        _ => Err(ProviderError::Unsupported(
            "refresh of this connection: Vumi keeps no credentials for it, so only its user can update it",
        )),
    }
}

#[async_trait::async_trait]
impl Provider for Vumi {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn institutions(&self, query: &str) -> ProviderResult<Vec<Institution>> {
        Ok(matching(&self.entities().await?, query))
    }

    async fn institution(&self, id: &str) -> ProviderResult<Option<Institution>> {
        match self.entities().await {
            Ok(entities) => Ok(entities.iter().find(|e| e.id == id).cloned()),
            // V3's path and shape are inferred: should they be wrong, an entity-like id still
            // reaches the widget, which knows the app's entities.
            Err(ProviderError::Unsupported(_)) => {
                Ok(entity_like(id).then(|| entity(wire::Entity { id: id.to_owned(), name: None, kind: None })))
            }
            Err(error) => Err(error),
        }
    }

    async fn start_link(&self, link: &LinkContext) -> ProviderResult<LinkStart> {
        if let Some(handle) = &link.repair {
            return self.start_repair(handle).await;
        }
        let external_id = link.link_session_id.to_string();
        let body = wire::StartFlow {
            id: &self.redirect_id,
            product: WIDGET_PRODUCT,
            entity: link.institution_id.as_deref(),
            external_id: &external_id,
        };
        let started: wire::TokenAnswer = self.get(Route::StartFlow(body)).await?;
        Ok(LinkStart { link_token: Some(started.token), hosted_link_url: None, upstream_state: None })
    }

    async fn submit_credentials(&self, _link: &LinkContext, _credentials: Credentials) -> ProviderResult<LinkStep> {
        Err(ProviderError::Unsupported("the credentials flow: Vumi's widget collects credentials"))
    }

    async fn answer_mfa(&self, _link: &LinkContext, _answer: SecretString) -> ProviderResult<LinkStep> {
        Err(ProviderError::Unsupported("MFA answers: Vumi's widget handles MFA"))
    }

    async fn poll_link(&self, link: &LinkContext) -> ProviderResult<LinkStep> {
        if let Some(handle) = &link.repair {
            return self.repair_progress(link, handle).await.map(LinkStep::from);
        }
        let external_id = link.link_session_id.to_string();
        let pending: Vec<wire::PendingToken> = self.get(Route::Pending { external_id: &external_id }).await?;
        // The first token issued for the session: a second widget run is a second connection,
        // left for ListPublicTokens' callers to find on a new session.
        let first =
            pending.into_iter().filter(|p| p.external_id.as_deref() == Some(&external_id)).min_by_key(|p| p.created_at);
        Ok(match first {
            Some(token) => LinkProgress::Succeeded {
                public_token: SecretString::from(token.public_token),
                institution_id: link.institution_id.clone().unwrap_or_default(),
                expires_at: token.created_at + PUBLIC_TOKEN_TTL,
            },
            None => LinkProgress::Connecting,
        }
        .into())
    }

    async fn exchange_public_token(&self, public_token: &SecretString) -> ProviderResult<ExchangedConnection> {
        // The token goes into the path: `..` would address another endpoint.
        if !is_plain_segment(public_token.expose_secret()) {
            return Err(ProviderError::InvalidPublicToken);
        }
        let exchanged: wire::Exchanged =
            match self.get(Route::Exchange { public_token: public_token.expose_secret() }).await {
                Ok(exchanged) => exchanged,
                Err(failure) if failure.is_not_found() => return Err(ProviderError::InvalidPublicToken),
                Err(failure) => return Err(failure.into()),
            };
        let handle = SecretString::from(exchanged.connection_token);
        // The token is spent: from here on nothing may fail the exchange.
        let deadline = Instant::now() + EXCHANGE_STATUS_BUDGET;
        let route = Route::Status { token: handle.expose_secret() };
        let entity = match self.send(&route, Some(deadline)).await.and_then(|r| r.json().map_err(Failure::Other)) {
            Ok(wire::Connection { entity, .. }) => entity,
            Err(failure) => {
                tracing::warn!(provider = ID, error = %ProviderError::from(failure), "Vumi did not name the entity of an exchanged connection");
                None
            }
        };
        let entity = entity.unwrap_or_default();
        Ok(ExchangedConnection {
            handle,
            institution_name: if entity.is_empty() { "Vumi entity".to_owned() } else { entity.clone() },
            institution_id: entity,
            products: PRODUCTS.to_vec(),
            // Vumi's webhooks name connections by their connection token, the handle itself.
            upstream_ref: None,
            webhook_url: None,
        })
    }

    async fn connection_status(&self, handle: &SecretString) -> ProviderResult<UpstreamStatus> {
        let connection: wire::Connection = match self.get(Route::Status { token: handle.expose_secret() }).await {
            Ok(connection) => connection,
            // Deleted upstream, or never this app's.
            Err(failure) if failure.is_not_found() => return Ok(UpstreamStatus::Disconnected),
            Err(failure) => return Err(failure.into()),
        };
        let (status, known) = connection_state(&connection);
        if !known {
            tracing::warn!(provider = ID, vumi_status = log_safe(&connection.status), mapped = ?status, "unknown Vumi connection status");
        }
        if let Some(details) = &connection.error_details {
            tracing::info!(
                provider = ID,
                vumi_status = log_safe(&connection.status),
                vumi_reason = log_safe(details.reason.as_deref().unwrap_or_default()),
                "Vumi reports a connection error"
            );
        }
        Ok(status)
    }

    async fn fetch_data(
        &self,
        handle: &SecretString,
        connection_id: Uuid,
        products: &[Product],
        _cursor: Option<&str>,
    ) -> ProviderResult<super::Fetched> {
        // Vumi's lists are bare arrays with no paging or change feed: every fetch is whole.
        let token = handle.expose_secret();
        let wanted = |product| products.contains(&product);
        let investments = wanted(Product::Investments);
        let owners = wanted(Product::Identity);
        let mut fetched = Fetched {
            accounts: Vec::new(),
            account_transactions: Vec::new(),
            portfolios: Vec::new(),
            portfolio_transactions: Vec::new(),
            positions: Vec::new(),
            investments: Vec::new(),
        };
        // Portfolios name their cash account, so investments need the accounts too; numbers and
        // owners are fields of accounts (and of portfolios, for owners).
        if wanted(Product::Accounts) || investments || owners || wanted(Product::AccountNumbers) {
            fetched.accounts = self.read(token, Data::Accounts).await?;
        }
        if wanted(Product::Transactions) {
            fetched.account_transactions = self.read(token, Data::AccountTransactions).await?;
        }
        if investments || owners {
            fetched.portfolios = self.read(token, Data::Portfolios).await?;
        }
        if investments {
            fetched.positions = self.read(token, Data::Positions).await?;
            fetched.portfolio_transactions = self.read(token, Data::PortfolioTransactions).await?;
            fetched.investments = self.read(token, Data::Investments).await?;
        }
        let mut data = connection_data(fetched, connection_id);
        if !wanted(Product::Accounts) {
            data.accounts.clear();
        }
        if !investments {
            data.portfolios.clear();
        }
        if !wanted(Product::AccountNumbers) {
            data.details.numbers.clear();
        }
        if !owners {
            data.details.owners.clear();
        }
        Ok(data.into())
    }

    async fn refresh(&self, handle: &SecretString, _products: &[Product]) -> ProviderResult<()> {
        let connection: wire::Connection = self.get(Route::Status { token: handle.expose_secret() }).await?;
        refresh_rule(&connection)
    }

    async fn delete_connection(&self, handle: &SecretString) -> ProviderResult<()> {
        match self.send(&Route::Delete { token: handle.expose_secret() }, None).await {
            Ok(_) => Ok(()),
            // Already deleted is what was asked.
            Err(failure) if failure.is_not_found() => Ok(()),
            Err(failure) => Err(failure.into()),
        }
    }

    /// A repair session's link token: the widget's query string, `id=<redirect id>&` and the
    /// repair parameter with its token.
    fn sealed_link_token(&self, upstream_state: &SecretString) -> Option<SecretString> {
        let state: RepairState = serde_json::from_str(upstream_state.expose_secret()).ok()?;
        // Encoded as a query string, so no token can smuggle in other parameters.
        let parameters = form_urlencoded::Serializer::new(String::new())
            .append_pair("id", &self.redirect_id)
            .append_pair(&state.parameter, &state.token)
            .finish();
        Some(SecretString::from(parameters))
    }

    fn webhooks(&self) -> Option<&dyn WebhookScheme> {
        Some(self)
    }
}

/// Vumi signs webhooks with an ES256 JWT in `vumi-verification`, its key served by V10 (which
/// needs a session); Vumi says to refuse a token whose header does not name `alg` ES256 and `typ`
/// JWT (docs.vumi.io developer-resources/webhooks-and-security/webhook-verification). The claim
/// binding the body and the body's shape are not documented: `request_body_sha256` is checked
/// whenever it is present, and a verified body that does not read as linkgate expects is kept
/// anyway (it makes every Vumi connection still importing due). Deliveries carry no idempotency
/// key, so identical bodies are one delivery.
#[async_trait::async_trait]
impl WebhookScheme for Vumi {
    fn signature_header(&self) -> &'static str {
        "vumi-verification"
    }

    fn token_type(&self) -> Option<&'static str> {
        Some("JWT")
    }

    fn body_hash_required(&self) -> bool {
        false
    }

    async fn signing_key(&self, kid: &str) -> ProviderResult<Option<Jwk>> {
        // The kid comes from an unverified token and goes into the path.
        if !is_plain_segment(kid) {
            return Ok(None);
        }
        match self.get::<Jwk>(Route::WebhookKey { key_id: kid }).await {
            Ok(key) => Ok(Some(Jwk { kid: Some(kid.to_owned()), ..key })),
            Err(failure) if failure.is_not_found() => Ok(None),
            Err(failure) => Err(failure.into()),
        }
    }

    fn read(&self, body: &[u8]) -> ProviderResult<WebhookNotice> {
        let delivery: wire::Webhook = super::upstream_client::parse_json("vumi.webhook", body)?;
        Ok(WebhookNotice {
            idempotency_key: None,
            event: log_safe(&delivery.event).to_owned(),
            upstream_ref: delivery.credentials_token.map(SecretString::from),
        })
    }
}

#[cfg(test)]
mod tests;

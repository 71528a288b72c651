//! Deck: utility portals (electricity, gas, water) through Deck's legacy product API, linkless
//! flow with polling (reference, with the source of each fact: docs/providers/deck.md).
//!
//! Every call is a JSON `POST` with `x-deck-client-id` and `x-deck-secret`, through the shared
//! client in [`super::upstream_client`]. The flow, and what each step maps to:
//!
//! | linkgate | Deck |
//! |---|---|
//! | `start_link` | D1 `/link/token/create` (limited to the chosen source); the link token is `LinkStart.link_token` |
//! | `submit_credentials` | D4 `/link/connect` (2025 `fields` shape), then D5 `/link/connection/status` |
//! | `answer_mfa` | D7 `/link/authentication/mfa/answer` (the answer, or the MFA method chosen), then D5 |
//! | `poll_link` | D5 (D6 for the text of an `MfaQuestion` or `SecurityQuestion`, D8 + D9 to keep every account on `AccountSelection`) |
//! | `exchange_public_token` | D11 `/connection/public_token/exchange`, then D12 for the source's id and name |
//! | `connection_status` | D12 `/connection/context` |
//! | `fetch_data` | D20 `/sustainability/get`: utility accounts and their statements |
//! | `refresh` / `delete_connection` | D17 `/connection/refresh` / D19 `/connection/destroy` |
//! | `institutions` | D1 + D3 `/link/sources` |
//! | repair (`LinkContext::repair`) | D1 with `update: {access_token, mode: "UpdateCredentials"}`, then D4, D5 (and MFA) as above |
//!
//! Choices where Deck leaves room:
//!
//! - **The public token** arrives from D4, before the attempt settles. It is kept in the session's
//!   sealed upstream state and surfaces only once D5 says `Connected`; it expires 30 minutes
//!   after D4 issued it.
//! - **A wrong MFA answer** (`MfaQuestionInvalidAnswer`, D12's `MfaCodeInvalid`) leaves the
//!   question open at Deck (docs.deck.co docs/mfa-code-invalid), so the session stays
//!   `MfaRequired` for another answer: the question asked before, remembered in the session's
//!   sealed state (D6 is for a pending `MfaQuestion` only), prefixed with [`WRONG_ANSWER`].
//!   Deck ends the attempt itself (`MfaQuestionNoAnswer`) when nobody answers in 5 minutes.
//! - **An MFA method choice** (`MfaMethodChoice`, docs.deck.co docs/mfa-method-choice-required)
//!   is offered to the caller as the session's MFA methods, read from D5's
//!   `additional_information` one per line (Deck documents no other place that lists them); the
//!   method chosen goes back through D7 as the answer, and Deck then asks for the code. A choice
//!   naming no method fails the session (`PROVIDER_PROTOCOL`): nothing could be offered.
//! - **After D4 or D7 succeeded** nothing is reported as failed: if the status check that follows
//!   fails, the session is `Connecting` and polling carries on. D4 and D7 themselves are retried
//!   only when Deck cannot have acted on them (a second login attempt could lock the account).
//! - **Institutions.** D3 needs a link token: one is created with D1 and reused for 15 minutes
//!   (Deck's last 20). Deck lists its catalogue only through a search of at least three
//!   characters, so a query's first three are the search term and linkgate narrows the answer to
//!   the whole query; each answer is kept per term for `LINKGATE_DECK_INSTITUTIONS_TTL`, so typing
//!   a name costs one D3 call. Shorter queries narrow Deck's 15 most common sources; a source is
//!   looked up by id with D3's `source_id`.
//! - **Connection handles** are JSON `{access_token, connection_id}` (webhooks name connections by
//!   `connection_id`), sealed by linkgate like every handle.
//! - **Readiness.** D12 saying `Connected` is not enough: the data is ready when D20 stops
//!   answering `PRODUCT_NOT_READY` ([`ProviderError::ProductNotReady`], which the sync engine
//!   treats as still importing). D12 reasons that say extraction is running skip the D20 call.
//! - **Repair** runs Deck's update mode: D4 issues no public token, and D5 saying `Connected`
//!   ends the session [`LinkProgress::Repaired`] with the access token unchanged. A public token
//!   Deck might issue anyway is not kept: the repaired connection is the only one.

mod wire;

use super::catalogue::{Catalogue, matching};
use super::upstream_client::{HttpClient, Retry, Upstream, UpstreamConfig, UpstreamReply, UpstreamRequest, endpoint};
use super::{
    CredentialField, Credentials, ExchangedConnection, Fetched, Institution, InstitutionKind, LinkContext,
    LinkProgress, LinkStart, LinkStep, Provider, ProviderError, ProviderInfo, ProviderResult, UpstreamStatus, log_safe,
    log_safe_code,
};
use crate::config::DeckSettings;
use crate::domain::ErrorReason;
use crate::domain::{
    Account, AccountType, ConnectionData, LinkFlow, MfaMethod, Money, Product, Statement, Timestamp, now, stable_id,
};
use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// The provider id.
pub const ID: &str = "deck";
/// The provider's display name.
pub const DISPLAY_NAME: &str = "Deck";
/// Products a Deck connection delivers (from the Sustainability product).
const PRODUCTS: &[Product] = &[Product::Accounts, Product::Statements];
/// How long a public token stays exchangeable after D4 issued it.
const PUBLIC_TOKEN_TTL: Duration = Duration::from_secs(30 * 60);
/// How long the link token used for D3 lookups is reused (Deck's live 20 minutes).
const CATALOGUE_TOKEN_REUSE: Duration = Duration::from_secs(15 * 60);
/// The shortest search term D3 takes; shorter queries are answered from the most common sources.
const SEARCH_MIN_CHARS: usize = 3;
/// Budget of the D12 call that names the source after an exchange: the exchange itself already
/// succeeded, so this one must not hold it up for long.
const EXCHANGE_CONTEXT_BUDGET: Duration = Duration::from_secs(10);
/// The update mode of a repair session: the user signs in again with new credentials.
const UPDATE_MODE: &str = "UpdateCredentials";
/// What a question asked again after a wrong answer starts with.
const WRONG_ANSWER: &str = "That answer was not accepted.";
/// The prompt of an MFA method choice.
const CHOOSE_METHOD: &str = "Choose how to receive your security code.";
/// Most MFA methods offered, and the longest label kept (as AnswerMfa's limit on an answer).
const MAX_MFA_METHODS: usize = 10;
const MAX_MFA_METHOD_LEN: usize = 256;
/// Currency of an account whose statements name none (ISO 4217 "no currency").
const NO_CURRENCY: &str = "XXX";

const CLIENT_ID_HEADER: HeaderName = HeaderName::from_static("x-deck-client-id");
const SECRET_HEADER: HeaderName = HeaderName::from_static("x-deck-secret");

/// The Deck provider.
pub struct Deck {
    info: ProviderInfo,
    upstream: Upstream,
    base_url: Url,
    client_id: HeaderValue,
    secret: SecretString,
    /// The link token D3 lookups are made with, and when it was created.
    catalogue_token: tokio::sync::Mutex<Option<(Instant, String)>>,
    /// Sources found, by search term or id, kept for `LINKGATE_DECK_INSTITUTIONS_TTL`.
    catalogue: Catalogue,
}

impl Deck {
    /// Deck as the settings configure it, or `None` when it is not to be offered (no credentials)
    /// or cannot be (a setting is unusable; logged).
    pub fn from_settings(settings: &DeckSettings) -> Option<Self> {
        let secret = settings.client_secret.as_ref();
        super::with_credentials(ID, settings.client_id.as_deref(), secret, |http| Self::new(settings, http))
    }

    /// Deck over `http` with `settings`, which must hold credentials.
    pub fn new(settings: &DeckSettings, http: HttpClient) -> Result<Self, String> {
        let (Some(client_id), Some(secret)) = (&settings.client_id, &settings.client_secret) else {
            return Err("the Deck client id and secret are required".to_owned());
        };
        let client_id = HeaderValue::from_str(client_id)
            .map_err(|_| "the Deck client id is not a valid header value".to_owned())?;
        let base_url = super::upstream_client::parse_base_url(settings.base_url.as_str())?;
        let upstream = Upstream::new(
            http,
            UpstreamConfig::new(ID, settings.request_timeout, settings.call_timeout, settings.max_attempts),
        );
        Ok(Self {
            info: ProviderInfo {
                id: ID,
                display_name: DISPLAY_NAME,
                flows: &[LinkFlow::Credentials],
                products: PRODUCTS,
                poll_interval: settings.poll_interval,
                // Deck refreshes utility portals about daily; asking more often finds nothing new.
                refresh_interval: Duration::from_secs(24 * 3600),
                consent_lifetime: None,
                refresh_limits: &[],
                required_inputs: &[],
                min_external_user_id_chars: 1,
            },
            upstream,
            base_url,
            client_id,
            secret: secret.clone(),
            catalogue_token: tokio::sync::Mutex::default(),
            catalogue: Catalogue::new(settings.institutions_ttl),
        })
    }

    /// One call to `route` with `body`: Deck's answer read as `T`, or why not.
    async fn call<T: DeserializeOwned>(
        &self,
        route: Route,
        body: &impl Serialize,
        deadline: Option<Instant>,
    ) -> Result<T, Failure> {
        let reply = self.send(route, body, deadline).await?;
        reply.json().map_err(Failure::Other)
    }

    /// One call to an endpoint that answers 200 with an empty body.
    async fn call_empty(&self, route: Route, body: &impl Serialize) -> Result<(), Failure> {
        self.send(route, body, None).await.map(drop)
    }

    async fn send(
        &self,
        route: Route,
        body: &impl Serialize,
        deadline: Option<Instant>,
    ) -> Result<UpstreamReply, Failure> {
        let (operation, path, retry) = route.spec();
        let mut request = UpstreamRequest::post_json(operation, endpoint(&self.base_url, path), body)
            .map_err(Failure::Other)?
            .template(path)
            .header(CLIENT_ID_HEADER, self.client_id.clone())
            .secret_header(SECRET_HEADER, &self.secret)
            .retry(retry);
        if let Some(deadline) = deadline {
            request = request.deadline(deadline);
        }
        let reply = self.upstream.send(request).await.map_err(Failure::Other)?;
        if reply.is_success() { Ok(reply) } else { Err(Failure::Refused(DeckError::read(operation, &reply))) }
    }

    /// D3 through a link token reused across lookups (D1 when there is none or it lapsed): one
    /// source by id, the sources whose names match `search`, or without either the most common.
    async fn sources(&self, source_id: Option<&str>, search: Option<&str>) -> Result<Vec<wire::Source>, Failure> {
        let mut token = self.catalogue_token.lock().await;
        for fresh_token in [false, true] {
            let reusable = token.as_ref().filter(|(at, _)| !fresh_token && at.elapsed() < CATALOGUE_TOKEN_REUSE);
            let link_token = match reusable {
                Some((_, token)) => token.clone(),
                None => {
                    let created: wire::LinkTokenCreated =
                        self.call(Route::LinkTokenCreate, &wire::LinkTokenCreate::default(), None).await?;
                    *token = Some((Instant::now(), created.link_token.clone()));
                    created.link_token
                }
            };
            let request = wire::Sources { link_token: &link_token, source_id, search };
            match self.call::<wire::SourceList>(Route::Sources, &request, None).await {
                Ok(list) => return Ok(list.sources),
                // The reused token lapsed early: once more with a new one.
                Err(Failure::Refused(error)) if !fresh_token && error.is("INVALID_LINK_TOKEN") => continue,
                Err(failure) => return Err(failure),
            }
        }
        unreachable!("the loop returns on its second pass")
    }

    /// Where the attempt behind `link` stands, from D5 (and D6, D8, D9 when it waits on
    /// something), with `state` as it is to be remembered afterwards.
    async fn progress(&self, link: &LinkContext, mut state: LinkState) -> Result<LinkStep, Failure> {
        let link_token = link_token(link)?;
        let status: wire::LinkStatus = self.call(Route::LinkStatus, &wire::LinkTokenOnly { link_token }, None).await?;
        let progress = match link_status(&status.status) {
            Some(LinkStatusMeaning::Connected) => match &state.issued {
                // Update mode: the user signed in again; Deck keeps the access token.
                _ if link.repair.is_some() => LinkProgress::Repaired { handle: None },
                Some(issued) => LinkProgress::Succeeded {
                    public_token: SecretString::from(issued.public_token.clone()),
                    institution_id: link.institution_id.clone().unwrap_or_default(),
                    expires_at: issued.issued_at + PUBLIC_TOKEN_TTL,
                },
                None => {
                    tracing::error!(provider = ID, link_session_id = %link.link_session_id, "Deck connected a session whose public token linkgate never received");
                    LinkProgress::Failed {
                        reason: ErrorReason::ProviderProtocol,
                        message: "The connection was made but no public token was issued; link again.".to_owned(),
                    }
                }
            },
            Some(LinkStatusMeaning::Question) => {
                let asked: wire::MfaQuestion =
                    self.call(Route::MfaGet, &wire::LinkTokenOnly { link_token }, None).await?;
                state.question = Some(asked.question.clone());
                LinkProgress::MfaRequired { question: asked.question, methods: Vec::new() }
            }
            Some(LinkStatusMeaning::AnswerRejected) => LinkProgress::MfaRequired {
                question: match &state.question {
                    Some(question) => format!("{WRONG_ANSWER} {question}"),
                    None => format!("{WRONG_ANSWER} Enter it again."),
                },
                methods: Vec::new(),
            },
            Some(LinkStatusMeaning::ChooseMethod) => {
                let methods = mfa_methods(status.additional_information.as_deref());
                if methods.is_empty() {
                    tracing::warn!(provider = ID, link_session_id = %link.link_session_id, "Deck asked for an MFA method choice without naming the methods");
                    LinkProgress::Failed {
                        reason: ErrorReason::ProviderProtocol,
                        message: "The institution asked how to send its security code but offered no way; link again."
                            .to_owned(),
                    }
                } else {
                    LinkProgress::MfaRequired { question: CHOOSE_METHOD.to_owned(), methods }
                }
            }
            Some(LinkStatusMeaning::SelectAccounts) => {
                let found: wire::LinkAccounts =
                    self.call(Route::AccountList, &wire::LinkTokenOnly { link_token }, None).await?;
                let accounts = found.accounts.iter().map(|a| a.account_id.as_str()).collect();
                self.call_empty(Route::AccountSelect, &wire::SelectAccounts { link_token, accounts }).await?;
                LinkProgress::Connecting
            }
            Some(LinkStatusMeaning::Wait) => LinkProgress::Connecting,
            Some(LinkStatusMeaning::Fail(reason, message)) => {
                tracing::info!(provider = ID, link_session_id = %link.link_session_id, deck_status = %status.status, "Deck link attempt failed");
                LinkProgress::Failed { reason, message: message.to_owned() }
            }
            None => {
                tracing::warn!(provider = ID, link_session_id = %link.link_session_id, deck_status = %log_safe(&status.status), "unknown Deck link status; still waiting");
                LinkProgress::Connecting
            }
        };
        Ok(LinkStep { progress, upstream_state: Some(state.seal()) })
    }

    /// [`Deck::progress`] after a step Deck accepted (D4, D7): a failure to learn the outcome
    /// leaves the session connecting, to be polled, rather than failing what already happened.
    async fn progress_after_step(&self, link: &LinkContext, state: LinkState) -> LinkStep {
        let sealed = state.seal();
        match self.progress(link, state).await {
            Ok(step) => step,
            Err(failure) => {
                let progress = link_failure(failure).unwrap_or_else(|error| {
                    tracing::warn!(provider = ID, link_session_id = %link.link_session_id, error = %error, "Deck status check failed after a step it accepted; polling on");
                    LinkProgress::Connecting
                });
                LinkStep { progress, upstream_state: Some(sealed) }
            }
        }
    }
}

/// The Deck endpoints linkgate calls.
#[derive(Debug, Clone, Copy)]
enum Route {
    LinkTokenCreate,
    Sources,
    Connect,
    LinkStatus,
    MfaGet,
    MfaAnswer,
    AccountList,
    AccountSelect,
    Exchange,
    Context,
    Refresh,
    Destroy,
    Rotate,
    Sustainability,
}

impl Route {
    /// Operation name for logs, path, and whether a retry could act twice.
    fn spec(self) -> (&'static str, &'static str, Retry) {
        use Retry::{Idempotent, OnlyUnprocessed};
        match self {
            // A spare link token is harmless.
            Self::LinkTokenCreate => ("deck.link_token_create", "/link/token/create", Idempotent),
            Self::Sources => ("deck.link_sources", "/link/sources", Idempotent),
            // A second login attempt at the utility could count against the user's lockout.
            Self::Connect => ("deck.link_connect", "/link/connect", OnlyUnprocessed),
            Self::LinkStatus => ("deck.link_connection_status", "/link/connection/status", Idempotent),
            Self::MfaGet => ("deck.link_mfa_get", "/link/authentication/mfa/get", Idempotent),
            Self::MfaAnswer => ("deck.link_mfa_answer", "/link/authentication/mfa/answer", OnlyUnprocessed),
            Self::AccountList => ("deck.link_account_list", "/link/account/list", Idempotent),
            Self::AccountSelect => ("deck.link_account_select", "/link/account/select", Idempotent),
            // Single use: when an attempt consumed the token and its answer was lost, a retry
            // answers INVALID_PUBLIC_TOKEN, which is no worse than not retrying; when it did not,
            // the retry saves the link.
            Self::Exchange => ("deck.public_token_exchange", "/connection/public_token/exchange", Idempotent),
            Self::Context => ("deck.connection_context", "/connection/context", Idempotent),
            Self::Refresh => ("deck.connection_refresh", "/connection/refresh", Idempotent),
            Self::Destroy => ("deck.connection_destroy", "/connection/destroy", Idempotent),
            // After a lost answer the old token is dead either way: a retry could only fail.
            Self::Rotate => ("deck.access_token_invalidate", "/connection/access_token/invalidate", OnlyUnprocessed),
            Self::Sustainability => ("deck.sustainability_get", "/sustainability/get", Idempotent),
        }
    }
}

/// Why a Deck call did not answer 200: Deck refused it with its error body, or the call failed
/// below that (transport, protocol).
enum Failure {
    Refused(DeckError),
    Other(ProviderError),
}

impl From<Failure> for ProviderError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Refused(error) => error.classify(),
            Failure::Other(error) => error,
        }
    }
}

/// Deck's error body, with its codes checked to be plain identifiers (they reach the logs).
#[derive(Debug, Clone)]
struct DeckError {
    operation: &'static str,
    status: u16,
    category: String,
    code: String,
}

impl DeckError {
    fn read(operation: &'static str, reply: &UpstreamReply) -> Self {
        let body: wire::ErrorBody = serde_json::from_slice(&reply.body).unwrap_or_default();
        Self {
            operation,
            status: reply.status.as_u16(),
            category: log_safe_code(body.error_category),
            code: log_safe_code(body.error_code),
        }
    }

    fn is(&self, code: &str) -> bool {
        self.code == code
    }

    /// THE table from Deck's errors to linkgate's (operation-specific exceptions, such as an
    /// already destroyed connection counting as deleted, are made by the operations).
    fn classify(&self) -> ProviderError {
        use ProviderError as E;
        let (status, category, code) = (self.status, self.category.as_str(), self.code.as_str());
        let rejected = |why: &str| E::Rejected {
            detail: format!("{}: Deck refused the call: {why} (HTTP {status}, {category}/{code})", self.operation),
        };
        if status == 401 || status == 403 || code == "INVALID_API_KEYS" {
            return rejected("the client id or secret was not accepted for this environment");
        }
        match code {
            "INVALID_PUBLIC_TOKEN" => E::InvalidPublicToken,
            "PRODUCT_NOT_READY" => E::ProductNotReady,
            "INVALID_ACCESS_TOKEN"
            | "CONNECTION_NOT_FOUND"
            | "NO_ACTIVE_CONNECTION"
            | "INVALID_CREDENTIALS"
            | "CONSENT_REQUIRED"
            | "BLOCKED_BY_PIN"
            | "CONNECTION_LOCKED" => E::LoginRequired,
            "RATE_LIMIT_EXCEEDED" => E::RateLimited { retry_after: None },
            "DATA_SOURCE_NOT_RESPONDING" | "PLANNED_MAINTENANCE" | "UNEXPECTED_ERROR" | "CONNECTION_FAILED" => {
                E::Unavailable { retry_after: None }
            }
            "PRODUCT_NOT_ENABLED" | "LIVE_CONNECTIVITY_NOT_ENABLED" | "NOT_SUPPORTED" => {
                E::Unsupported("this Deck product or environment for the configured keys")
            }
            "INVALID_LINK_TOKEN" => rejected("the link token is unknown or expired"),
            "DATA_SOURCE_NOT_FOUND" | "INVALID_SOURCE" => rejected("the source is unknown"),
            "NO_ACCOUNTS" | "NO_STATEMENTS" => rejected("the connection has no data"),
            "VALIDATION_FAILED"
            | "INVALID_ARGUMENT"
            | "INVALID_ACCOUNT_ID"
            | "INVALID_STATEMENT_ID"
            | "SECURITY_QUESTION_NOT_FOUND"
            | "SECURITY_CAPTCHA_NOT_FOUND"
            | "ACTIVE_CONNECTION_EXISTS"
            | "DOMAIN_BLACKLISTED" => rejected("the request was not valid for Deck"),
            _ => {
                tracing::warn!(
                    provider = ID,
                    operation = self.operation,
                    http.status = status,
                    deck_category = category,
                    deck_code = code,
                    "unknown Deck error code; classified by category"
                );
                match category {
                    "RATE_LIMIT_EXCEEDED" => E::RateLimited { retry_after: None },
                    "API_ERROR" => E::Unavailable { retry_after: None },
                    _ => rejected("an error linkgate does not know"),
                }
            }
        }
    }
}

/// What a D5 `LinkConnectionStatus` means for a link session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkStatusMeaning {
    /// Still working.
    Wait,
    /// Connected: the public token may be handed out.
    Connected,
    /// A question awaits an answer (D6 has its text).
    Question,
    /// The last answer was wrong; the question stays open for another.
    AnswerRejected,
    /// The institution asks how to deliver its code (D5's `additional_information` lists how).
    ChooseMethod,
    /// Deck waits for accounts to be chosen: linkgate keeps them all.
    SelectAccounts,
    /// Over, for this reason.
    Fail(ErrorReason, &'static str),
}

/// THE table of D5 statuses; `None` for a value Deck did not document (treated as waiting).
fn link_status(status: &str) -> Option<LinkStatusMeaning> {
    use LinkStatusMeaning::*;
    Some(match status {
        "New" | "Connecting" => Wait,
        "Connected" => Connected,
        "MfaQuestion" | "SecurityQuestion" => Question,
        "MfaQuestionInvalidAnswer" => AnswerRejected,
        "MfaMethodChoice" => ChooseMethod,
        "AccountSelection" => SelectAccounts,
        "InvalidCredentials" => Fail(ErrorReason::InvalidCredentials, "The username or password is incorrect."),
        "MfaQuestionNoAnswer" => Fail(ErrorReason::LinkSessionExpired, "The question was not answered in time."),
        "Captcha" => Fail(
            ErrorReason::CapabilityUnsupported,
            "The institution asks for a captcha, which only Deck's own widget can show.",
        ),
        "Error" => Fail(ErrorReason::ProviderRejected, "Deck could not connect to the institution."),
        _ => return None,
    })
}

/// THE table of D12 (`ConnectivityStatusEnum`, `ScrapingStatusEnum`) pairs. Unknown values
/// count as still importing (the D20 call that follows a `Ready` is what proves data is there).
fn connection_state(connectivity: Option<&str>, reason: Option<&str>) -> (UpstreamStatus, bool) {
    use UpstreamStatus::*;
    let failed = |message: &str, retryable| Failed { message: message.to_owned(), retryable };
    let needs_user = matches!(
        reason,
        Some(
            "InvalidCredentials"
                | "SecurityAnswerRequired"
                | "SecurityAnswerInvalid"
                | "SecurityQuestionTimeout"
                | "MfaMethodChoiceRequired"
                | "MfaCodeRequired"
                | "MfaCodeInvalid"
                | "MfaCodeTimeout"
                | "MfaActionRequired"
                | "BlockedByPin"
                | "AccountSelectionRequired"
        )
    );
    let extracting = matches!(
        reason,
        Some(
            "New"
                | "Connecting"
                | "CredentialsSent"
                | "WaitingForJob"
                | "ExecutingJob"
                | "RetryLater"
                | "ConnectedWaitingOnDataExtraction"
        )
    );
    let known_reason = reason.is_none()
        || needs_user
        || extracting
        || matches!(
            reason,
            Some("ConnectedCredentials" | "CompletedJob" | "DataFound" | "NoDataFound" | "NoStatement" | "Error")
        );
    let (status, known) = match connectivity {
        _ if needs_user => (LoginRequired, true),
        Some("Disconnected") => (Disconnected, true),
        Some("Error") => (failed("Deck reports the connection in error", true), true),
        Some("New" | "Connecting") => (Importing, true),
        Some("Connected") if extracting => (Importing, true),
        Some("Connected") if reason == Some("Error") => (failed("Deck's last data extraction failed", true), true),
        Some("Connected") => (Ready, true),
        _ => (Importing, false),
    };
    (status, known && known_reason)
}

/// What a link session remembers between calls, sealed: the public token D4 issued, kept until
/// D5 says `Connected`, and the last question asked, to ask again after a wrong answer.
#[derive(Default, Serialize, serde::Deserialize)]
struct LinkState {
    #[serde(flatten)]
    issued: Option<Issued>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    question: Option<String>,
}

/// A public token and when D4 issued it (none in update mode).
#[derive(Serialize, serde::Deserialize)]
struct Issued {
    public_token: String,
    issued_at: Timestamp,
}

impl LinkState {
    fn seal(&self) -> SecretString {
        SecretString::from(serde_json::to_string(self).expect("link state serializes"))
    }

    fn open(link: &LinkContext) -> Result<Self, ProviderError> {
        let Some(state) = &link.upstream_state else { return Ok(Self::default()) };
        serde_json::from_str(state.expose_secret())
            .map_err(|_| ProviderError::Protocol { detail: "malformed Deck link state".to_owned() })
    }
}

/// The MFA methods D5's `additional_information` lists, one per line; each is offered with its
/// own text as id and label, as D7 takes it back.
fn mfa_methods(listed: Option<&str>) -> Vec<MfaMethod> {
    let mut methods: Vec<MfaMethod> = Vec::new();
    for line in listed.unwrap_or_default().lines().map(str::trim) {
        let usable = !line.is_empty() && line.chars().count() <= MAX_MFA_METHOD_LEN;
        if usable && methods.len() < MAX_MFA_METHODS && !methods.iter().any(|m| m.id == line) {
            methods.push(MfaMethod { id: line.to_owned(), label: line.to_owned() });
        }
    }
    methods
}

/// A connection handle: Deck's access token and connection id.
#[derive(Serialize, serde::Deserialize)]
struct Handle {
    access_token: String,
    connection_id: String,
}

impl Handle {
    fn seal(&self) -> SecretString {
        SecretString::from(serde_json::to_string(self).expect("handle serializes"))
    }

    fn open(handle: &SecretString) -> ProviderResult<Self> {
        serde_json::from_str(handle.expose_secret())
            .map_err(|_| ProviderError::Protocol { detail: "malformed Deck connection handle".to_owned() })
    }

    fn body(&self) -> wire::AccessToken<'_> {
        wire::AccessToken { access_token: &self.access_token }
    }
}

fn link_token(link: &LinkContext) -> Result<&str, Failure> {
    link.link_token.as_deref().ok_or_else(|| {
        Failure::Other(ProviderError::Protocol { detail: "Deck link session without a link token".to_owned() })
    })
}

/// Refusals that end a link attempt rather than fail the call.
fn link_failure(failure: Failure) -> ProviderResult<LinkProgress> {
    match failure {
        Failure::Refused(error) if error.is("INVALID_LINK_TOKEN") => Ok(LinkProgress::Failed {
            reason: ErrorReason::LinkSessionExpired,
            message: "The Deck session behind this link session expired; start a new one.".to_owned(),
        }),
        Failure::Refused(error) if error.is("INVALID_CREDENTIALS") => Ok(LinkProgress::Failed {
            reason: ErrorReason::InvalidCredentials,
            message: "The username or password is incorrect.".to_owned(),
        }),
        other => Err(other.into()),
    }
}

fn institution(source: wire::Source) -> Institution {
    let mut fields = source.fields;
    fields.sort_by_key(|f| f.field_number.unwrap_or(i64::MAX));
    Institution {
        id: source.source_id,
        name: source.name,
        kind: InstitutionKind::Utility,
        products: PRODUCTS.to_vec(),
        credential_fields: fields
            .into_iter()
            .map(|f| CredentialField {
                label: f.field_label.clone().unwrap_or_else(|| f.field_name.clone()).into(),
                secret: f.field_type.as_deref() == Some("Password"),
                name: f.field_name.into(),
            })
            .collect(),
        country_codes: source.country.into_iter().map(|c| c.to_ascii_uppercase()).collect(),
    }
}

/// An ISO 4217 code, or [`NO_CURRENCY`].
fn currency(code: Option<&str>) -> Option<String> {
    let code = code?.trim();
    (code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic())).then(|| code.to_ascii_uppercase())
}

/// Sustainability data as linkgate's accounts (type UTILITY) and statements.
fn connection_data(payload: wire::Sustainability, connection_id: Uuid, products: &[Product]) -> ConnectionData {
    let source = payload.source_name.unwrap_or_else(|| "Utility".to_owned());
    let mut data = ConnectionData::default();
    let mut incomplete = 0;
    for account in payload.accounts {
        let account_id = stable_id(connection_id, "account", &account.account_number);
        let account_currency = account
            .statements
            .iter()
            .find_map(|s| currency(s.currency_code.as_deref()))
            .unwrap_or_else(|| NO_CURRENCY.to_owned());
        let digits = account.account_number.chars().count();
        let mask: String = account.account_number.chars().skip(digits.saturating_sub(4)).collect();
        for statement in account.statements {
            let (Some(start), Some(end), Some(total)) =
                (statement.billing_period_start_date, statement.billing_period_end_date, statement.total_due_amount)
            else {
                incomplete += 1;
                continue;
            };
            let upstream_id = statement
                .statement_id
                .or(statement.statement_number)
                .unwrap_or_else(|| format!("{}/{end}", account.account_number));
            let currency = currency(statement.currency_code.as_deref()).unwrap_or_else(|| account_currency.clone());
            data.statements.push(Statement {
                id: stable_id(connection_id, "statement", &upstream_id),
                account_id,
                period_start: start,
                period_end: end,
                issued_on: statement.billing_date.unwrap_or(end),
                due_on: statement.payment_due_date,
                total_due: Money::new(total, &currency),
                usage: None,
            });
        }
        data.accounts.push(Account {
            id: account_id,
            kind: AccountType::Utility,
            name: format!("{source} account"),
            mask: (!mask.is_empty()).then_some(mask),
            currency: account_currency,
            current: None,
            available: None,
            limit: None,
        });
    }
    if incomplete > 0 {
        tracing::warn!(provider = ID, %connection_id, incomplete, "Deck statements without a period or an amount were left out");
    }
    if !products.contains(&Product::Accounts) {
        data.accounts.clear();
    }
    if !products.contains(&Product::Statements) {
        data.statements.clear();
    }
    data
}

#[async_trait::async_trait]
impl Provider for Deck {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn institutions(&self, query: &str) -> ProviderResult<Vec<Institution>> {
        // D3 searches by a term of its own: the query's first characters, kept for the TTL, serve
        // every longer query that starts with them, so typing a name costs one call, not one per
        // keystroke. Deck filters by name; linkgate then keeps the names that contain the query.
        let query = query.trim().to_lowercase();
        let term: String = query.chars().take(SEARCH_MIN_CHARS).collect();
        let search = (term.chars().count() == SEARCH_MIN_CHARS).then_some(term);
        let key = search.as_deref().map_or_else(|| "common".to_owned(), |term| format!("search {term}"));
        let found = self
            .catalogue
            .list(&key, async {
                let sources = self.sources(None, search.as_deref()).await?;
                Ok(sources.into_iter().map(institution).collect())
            })
            .await?;
        Ok(matching(&found, &query))
    }

    async fn institution(&self, id: &str) -> ProviderResult<Option<Institution>> {
        // Deck's source ids are UUIDs: anything else cannot be one.
        if Uuid::parse_str(id).is_err() {
            return Ok(None);
        }
        let found = self
            .catalogue
            .list(&format!("id {id}"), async {
                match self.sources(Some(id), None).await {
                    Ok(sources) => Ok(sources.into_iter().filter(|s| s.source_id == id).map(institution).collect()),
                    Err(Failure::Refused(error)) if error.is("DATA_SOURCE_NOT_FOUND") || error.is("INVALID_SOURCE") => {
                        Ok(Vec::new())
                    }
                    Err(failure) => Err(failure.into()),
                }
            })
            .await?;
        Ok(found.first().cloned())
    }

    async fn start_link(&self, link: &LinkContext) -> ProviderResult<LinkStart> {
        let repaired = link.repair.as_ref().map(Handle::open).transpose()?;
        let request = match &repaired {
            // Update mode names the connection; its source comes with it.
            Some(handle) => wire::LinkTokenCreate {
                source_ids: Vec::new(),
                update: Some(wire::Update { access_token: &handle.access_token, mode: UPDATE_MODE }),
            },
            None => {
                wire::LinkTokenCreate { source_ids: link.institution_id.as_deref().into_iter().collect(), update: None }
            }
        };
        let created: wire::LinkTokenCreated = self.call(Route::LinkTokenCreate, &request, None).await?;
        Ok(LinkStart { link_token: Some(created.link_token), hosted_link_url: None, upstream_state: None })
    }

    async fn submit_credentials(&self, link: &LinkContext, credentials: Credentials) -> ProviderResult<LinkStep> {
        let link_token = link_token(link)?;
        let source_id = link.institution_id.as_deref().ok_or_else(|| ProviderError::Rejected {
            detail: "Deck credentials submitted without a source".to_owned(),
        })?;
        let fields = credentials
            .0
            .iter()
            .map(|(name, value)| wire::FieldValue { field_name: name, field_value: value.expose_secret() })
            .collect();
        let request = wire::Connect { link_token, source_id, fields };
        let started: wire::ConnectStarted = match self.call(Route::Connect, &request, None).await {
            Ok(started) => started,
            Err(failure) => return link_failure(failure).map(LinkStep::from),
        };
        // Update mode issues no public token: the connection keeps its access token.
        let issued = match started.public_token {
            Some(public_token) if link.repair.is_none() => Some(Issued { public_token, issued_at: now() }),
            _ => None,
        };
        if issued.is_none() && link.repair.is_none() {
            tracing::warn!(provider = ID, link_session_id = %link.link_session_id, "Deck accepted credentials without issuing a public token");
        }
        Ok(self.progress_after_step(link, LinkState { issued, question: None }).await)
    }

    async fn answer_mfa(&self, link: &LinkContext, answer: SecretString) -> ProviderResult<LinkStep> {
        let state = LinkState::open(link)?;
        let link_token = link_token(link)?;
        let request = wire::MfaAnswer { link_token, answer: answer.expose_secret() };
        if let Err(failure) = self.call_empty(Route::MfaAnswer, &request).await {
            return link_failure(failure).map(LinkStep::from);
        }
        Ok(self.progress_after_step(link, state).await)
    }

    async fn poll_link(&self, link: &LinkContext) -> ProviderResult<LinkStep> {
        let state = LinkState::open(link)?;
        match self.progress(link, state).await {
            Ok(step) => Ok(step),
            Err(failure) => link_failure(failure).map(LinkStep::from),
        }
    }

    async fn exchange_public_token(&self, public_token: &SecretString) -> ProviderResult<ExchangedConnection> {
        let request = wire::PublicToken { public_token: public_token.expose_secret() };
        let exchanged: wire::Exchanged = self.call(Route::Exchange, &request, None).await?;
        let handle = Handle { access_token: exchanged.access_token, connection_id: exchanged.connection_id };
        // The token is spent: from here on nothing may fail the exchange.
        let deadline = Instant::now() + EXCHANGE_CONTEXT_BUDGET;
        let source = match self.call::<wire::ConnectionContext>(Route::Context, &handle.body(), Some(deadline)).await {
            Ok(context) => context.provider,
            Err(failure) => {
                tracing::warn!(provider = ID, error = %ProviderError::from(failure), "Deck did not name the source of an exchanged connection");
                None
            }
        };
        let (institution_id, institution_name) =
            source.map(|s| (s.id, s.name)).unwrap_or_else(|| (String::new(), "Deck source".to_owned()));
        // Deck's webhooks name connections by connection_id, not by the access token.
        let upstream_ref = Some(SecretString::from(handle.connection_id.clone()));
        Ok(ExchangedConnection {
            handle: handle.seal(),
            institution_id,
            institution_name,
            products: PRODUCTS.to_vec(),
            upstream_ref,
            webhook_url: None,
        })
    }

    async fn connection_status(&self, handle: &SecretString) -> ProviderResult<UpstreamStatus> {
        let handle = Handle::open(handle)?;
        let context: wire::ConnectionContext = match self.call(Route::Context, &handle.body(), None).await {
            Ok(context) => context,
            Err(Failure::Refused(error))
                if error.is("INVALID_ACCESS_TOKEN")
                    || error.is("CONNECTION_NOT_FOUND")
                    || error.is("NO_ACTIVE_CONNECTION") =>
            {
                return Ok(UpstreamStatus::Disconnected);
            }
            Err(failure) => return Err(failure.into()),
        };
        let (connectivity, reason) =
            (context.connection_status.as_deref(), context.connection_status_reason.as_deref());
        let (status, known) = connection_state(connectivity, reason);
        if !known {
            tracing::warn!(
                provider = ID, connection_status = %log_safe(connectivity.unwrap_or("")),
                connection_status_reason = %log_safe(reason.unwrap_or("")), mapped = ?status,
                "unknown Deck connection status"
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
    ) -> ProviderResult<Fetched> {
        // D20 answers everything in one body: no change feed, so every fetch is whole.
        let handle = Handle::open(handle)?;
        match self.call::<wire::Sustainability>(Route::Sustainability, &handle.body(), None).await {
            Ok(payload) => Ok(connection_data(payload, connection_id, products).into()),
            Err(Failure::Refused(error)) if error.is("NO_ACCOUNTS") || error.is("NO_STATEMENTS") => {
                Ok(ConnectionData::default().into())
            }
            Err(failure) => Err(failure.into()),
        }
    }

    async fn refresh(&self, handle: &SecretString, _products: &[Product]) -> ProviderResult<()> {
        // D17 starts a new scraping session of the whole connection.

        let handle = Handle::open(handle)?;
        Ok(self.call_empty(Route::Refresh, &handle.body()).await?)
    }

    async fn rotate_handle(&self, handle: &SecretString) -> ProviderResult<SecretString> {
        let handle = Handle::open(handle)?;
        let rotated: wire::RotatedToken = self.call(Route::Rotate, &handle.body(), None).await?;
        Ok(Handle { access_token: rotated.new_access_token, connection_id: handle.connection_id }.seal())
    }

    async fn delete_connection(&self, handle: &SecretString) -> ProviderResult<()> {
        let handle = Handle::open(handle)?;
        match self.call_empty(Route::Destroy, &handle.body()).await {
            Ok(()) => Ok(()),
            // Already destroyed is what was asked.
            Err(Failure::Refused(error)) if error.is("INVALID_ACCESS_TOKEN") || error.is("CONNECTION_NOT_FOUND") => {
                Ok(())
            }
            Err(failure) => Err(failure.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, category: &str, code: &str) -> ProviderError {
        DeckError { operation: "test", status, category: category.to_owned(), code: code.to_owned() }.classify()
    }

    #[test]
    fn deck_errors_map_through_one_table() {
        use ProviderError as E;
        assert!(matches!(refused(400, "INVALID_INPUT", "INVALID_PUBLIC_TOKEN"), E::InvalidPublicToken));
        assert!(matches!(refused(400, "CONNECTION_ERROR", "PRODUCT_NOT_READY"), E::ProductNotReady));
        assert!(matches!(refused(401, "", ""), E::Rejected { .. }));
        assert!(matches!(refused(400, "INVALID_REQUEST", "INVALID_API_KEYS"), E::Rejected { .. }));
        assert!(matches!(refused(400, "INVALID_INPUT", "INVALID_ACCESS_TOKEN"), E::LoginRequired));
        assert!(matches!(refused(400, "RATE_LIMIT_EXCEEDED", "RATE_LIMIT_EXCEEDED"), E::RateLimited { .. }));
        assert!(matches!(refused(400, "API_ERROR", "PLANNED_MAINTENANCE"), E::Unavailable { .. }));
        assert!(matches!(refused(400, "INVALID_REQUEST", "PRODUCT_NOT_ENABLED"), E::Unsupported(_)));
        // Unknown codes fall back on their category, and otherwise to a refusal.
        assert!(matches!(refused(400, "API_ERROR", "SOMETHING_NEW"), E::Unavailable { .. }));
        assert!(matches!(refused(400, "RATE_LIMIT_EXCEEDED", "SOMETHING_NEW"), E::RateLimited { .. }));
        assert!(matches!(refused(400, "INVALID_INPUT", "SOMETHING_NEW"), E::Rejected { .. }));
        let E::Rejected { detail } = refused(400, "INVALID_INPUT", "INVALID_LINK_TOKEN") else { panic!() };
        assert!(detail.contains("INVALID_LINK_TOKEN") && detail.contains("400"), "{detail}");
    }

    #[test]
    fn every_documented_link_status_has_a_meaning() {
        let documented = [
            "New",
            "Connecting",
            "Connected",
            "InvalidCredentials",
            "Error",
            "MfaMethodChoice",
            "MfaQuestion",
            "MfaQuestionInvalidAnswer",
            "MfaQuestionNoAnswer",
            "Captcha",
            "SecurityQuestion",
            "AccountSelection",
        ];
        for status in documented {
            assert!(link_status(status).is_some(), "{status}");
        }
        assert_eq!(link_status("Connected"), Some(LinkStatusMeaning::Connected));
        assert_eq!(link_status("MfaQuestion"), Some(LinkStatusMeaning::Question));
        assert!(matches!(
            link_status("InvalidCredentials"),
            Some(LinkStatusMeaning::Fail(ErrorReason::InvalidCredentials, _))
        ));
        assert_eq!(link_status("MfaQuestionInvalidAnswer"), Some(LinkStatusMeaning::AnswerRejected));
        assert_eq!(link_status("MfaMethodChoice"), Some(LinkStatusMeaning::ChooseMethod));
        assert_eq!(link_status("Teleporting"), None);
    }

    #[test]
    fn connection_context_maps_through_one_table() {
        use UpstreamStatus::*;
        let cases = [
            (Some("Connected"), Some("DataFound"), Ready),
            (Some("Connected"), Some("ConnectedCredentials"), Ready),
            (Some("Connected"), Some("CompletedJob"), Ready),
            (Some("Connected"), Some("NoStatement"), Ready),
            (Some("Connected"), None, Ready),
            (Some("Connected"), Some("ConnectedWaitingOnDataExtraction"), Importing),
            (Some("Connected"), Some("ExecutingJob"), Importing),
            (Some("Connecting"), Some("CredentialsSent"), Importing),
            (Some("New"), Some("New"), Importing),
            (Some("Connecting"), Some("MfaCodeRequired"), LoginRequired),
            (Some("Error"), Some("InvalidCredentials"), LoginRequired),
            (Some("Connected"), Some("BlockedByPin"), LoginRequired),
            (Some("Disconnected"), None, Disconnected),
        ];
        for (connectivity, reason, expected) in cases {
            assert_eq!(connection_state(connectivity, reason), (expected, true), "{connectivity:?}/{reason:?}");
        }
        assert!(matches!(connection_state(Some("Error"), Some("Error")), (Failed { retryable: true, .. }, true)));
        assert_eq!(connection_state(Some("Sleeping"), None), (Importing, false), "unknown values keep polling");
        assert_eq!(connection_state(Some("Connected"), Some("Dreaming")), (Ready, false));
    }

    #[test]
    fn sustainability_maps_to_utility_accounts_and_exact_statements() {
        let payload: wire::Sustainability = serde_json::from_str(
            r#"{"source_name": "National Grid", "source_country": "US", "username": "someone",
                "accounts": [{"account_number": "987654321", "statements": [
                  {"statement_id": "st-1", "billing_period_start_date": "2025-01-25",
                   "billing_period_end_date": "2025-02-25", "billing_date": "2025-02-25",
                   "payment_due_date": "2025-03-15", "total_due_amount": 11450.45, "currency_code": "usd",
                   "previous_total_due_amount": 12500.00, "payments": [{"date": "2025-02-01"}]},
                  {"statement_id": "st-2", "billing_period_start_date": "2025-02-25"}]}]}"#,
        )
        .unwrap();
        let connection_id = Uuid::now_v7();
        let data = connection_data(payload, connection_id, PRODUCTS);
        assert_eq!(data.accounts.len(), 1);
        let account = &data.accounts[0];
        assert_eq!(account.kind, AccountType::Utility);
        assert_eq!(account.mask.as_deref(), Some("4321"));
        assert_eq!(account.currency, "USD");
        assert_eq!(data.statements.len(), 1, "the incomplete statement is left out");
        let statement = &data.statements[0];
        assert_eq!(statement.account_id, account.id);
        assert_eq!(statement.total_due.amount_text(), "11450.45");
        assert_eq!(statement.total_due.currency, "USD");
        assert_eq!(statement.due_on, Some("2025-03-15".parse().unwrap()));
        assert_eq!(statement.id, stable_id(connection_id, "statement", "st-1"));
        let only_accounts = connection_data(
            serde_json::from_str(r#"{"accounts": [{"account_number": "1"}]}"#).unwrap(),
            connection_id,
            &[Product::Accounts],
        );
        assert_eq!(only_accounts.accounts[0].currency, NO_CURRENCY);
        assert!(only_accounts.statements.is_empty());
    }

    #[test]
    fn sealed_state_and_handles_round_trip() {
        let handle = Handle { access_token: "access-sandbox-1".into(), connection_id: "c-1".into() }.seal();
        let opened = Handle::open(&handle).unwrap();
        assert_eq!((opened.access_token.as_str(), opened.connection_id.as_str()), ("access-sandbox-1", "c-1"));
        assert!(Handle::open(&SecretString::from("access-sandbox-1")).is_err());
    }
}

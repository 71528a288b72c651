//! Upstream providers behind one trait.
//!
//! An adapter only translates: between linkgate's domain types and a provider's wire format, and
//! between the provider's states and ours. It keeps no state of its own and orchestrates nothing;
//! link flows, exchange, sync and storage live in `link`, `sync` and `store`. Adding a provider is
//! a new module plus one line in [`Registry::from_settings`].

pub mod catalogue;
pub mod deck;
pub mod json;
mod metered;
pub mod moneykit;
pub mod sandbox;
pub mod session;
pub mod upstream_client;
pub mod vumi;

use crate::domain::ErrorReason;
use crate::domain::{ConnectionData, LinkFlow, Product, Timestamp};
use secrecy::{ExposeSecret, SecretString};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// What a provider offers, for ListProviders and request validation.
#[derive(Debug, Clone)]
pub struct ProviderInfo {
    /// Stable id used in the API.
    pub id: &'static str,
    /// Display name.
    pub display_name: &'static str,
    /// Supported flows; the first is the default.
    pub flows: &'static [LinkFlow],
    /// Products the provider can deliver.
    pub products: &'static [Product],
    /// How often to poll an unsettled link session or connection.
    pub poll_interval: Duration,
    /// How often a settled (READY) connection's data is fetched again: the provider's own
    /// refresh rhythm, so linkgate's copy follows it without asking more often than it changes.
    pub refresh_interval: Duration,
    /// How long a user's consent lasts from each sign-in (exchange or repair), where the provider
    /// or the institution's regime fixes a term; `None` when neither publishes one.
    pub consent_lifetime: Option<Duration>,
    /// The provider's published limits on refreshing a product on demand, one line per limited
    /// product: RefreshConnection answers RATE_LIMITED rather than ask again sooner.
    pub refresh_limits: &'static [RefreshLimit],
    /// CreateLinkSession inputs the provider cannot start a link session without: a session
    /// missing one is refused before any upstream call.
    pub required_inputs: &'static [LinkInput],
    /// The fewest characters of `external_user_id` the provider accepts for its end-user id
    /// (linkgate's own bounds are 1 to 128): a shorter one is refused before any upstream call.
    pub min_external_user_id_chars: usize,
}

/// An optional CreateLinkSession input that a provider may require.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkInput {
    /// `redirect_uri`: where the provider's hosted page returns the user (MoneyKit's OAuth
    /// institutions need it on every link session).
    RedirectUri,
}

impl LinkInput {
    /// The CreateLinkSessionRequest field that carries it.
    pub fn field(self) -> &'static str {
        match self {
            Self::RedirectUri => "redirect_uri",
        }
    }
}

impl ProviderInfo {
    /// How often `product` may be refreshed on demand; `None` when the provider sets no limit.
    pub fn refresh_limit(&self, product: Product) -> Option<Duration> {
        self.refresh_limits.iter().find(|limit| limit.product == product).map(|limit| limit.once_per)
    }
}

/// A provider's published limit on refreshing one product of a connection on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshLimit {
    /// The product.
    pub product: Product,
    /// At most one refresh per this long.
    pub once_per: Duration,
}

/// What one fetch of a connection's data yields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// The data, whole or, where the provider has a change feed, partly a delta
    /// ([`ConnectionData::transaction_delta`]).
    pub data: ConnectionData,
    /// Where the provider's change feed stands after this fetch, to hand to the next one; `None`
    /// when there is none to resume from (the next fetch is a whole one).
    pub cursor: Option<String>,
}

impl From<ConnectionData> for Fetched {
    /// A whole fetch of a provider without a change feed.
    fn from(data: ConnectionData) -> Self {
        Self { data, cursor: None }
    }
}

/// An institution reachable through a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Institution {
    /// Provider's id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Kind.
    pub kind: InstitutionKind,
    /// Products offered.
    pub products: Vec<Product>,
    /// Credential fields of the linkless flow.
    pub credential_fields: Vec<CredentialField>,
    /// Countries served.
    pub country_codes: Vec<String>,
}

/// The kind of institution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstitutionKind {
    /// Bank.
    Bank,
    /// Broker.
    Broker,
    /// Utility.
    Utility,
}

/// One field of an institution's login form. Names and labels are the provider's own, which some
/// providers (Deck) only tell at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialField {
    /// Key in SubmitCredentials.
    pub name: Cow<'static, str>,
    /// Label for the end user.
    pub label: Cow<'static, str>,
    /// Mask it in UIs.
    pub secret: bool,
}

/// What linkgate knows of a link session when it asks the provider about it.
#[derive(Debug, Clone)]
pub struct LinkContext {
    /// linkgate's session id (providers may use it as their client reference).
    pub link_session_id: Uuid,
    /// Institution, once known.
    pub institution_id: Option<String>,
    /// Caller's id for the end user.
    pub external_user_id: String,
    /// Flow.
    pub flow: LinkFlow,
    /// Products requested.
    pub products: Vec<Product>,
    /// Where the hosted page returns the user.
    pub redirect_uri: Option<String>,
    /// When the session was created.
    pub created_at: Timestamp,
    /// The widget or session token the provider issued at [`Provider::start_link`], if any.
    pub link_token: Option<String>,
    /// What the provider asked linkgate to remember between calls (see [`LinkStep`]), opened.
    pub upstream_state: Option<SecretString>,
    /// For a repair session, the handle of the connection it repairs, opened: the provider's
    /// repair flow names the connection by it (Deck's `update.access_token`).
    pub repair: Option<SecretString>,
}

/// What a provider answers when a link session starts.
#[derive(Debug, Clone, Default)]
pub struct LinkStart {
    /// Widget initialisation token, stored with the session as it is. A token that carries a
    /// secret is left out and made from the sealed `upstream_state` when the session is served
    /// instead (see [`Provider::sealed_link_token`]).
    pub link_token: Option<String>,
    /// Hosted page URL, stored as it is (so it must carry no secret either).
    pub hosted_link_url: Option<String>,
    /// Upstream state to keep for later calls, sealed by linkgate.
    pub upstream_state: Option<SecretString>,
}

/// The user's credentials. Never stored, never logged: the values are secret.
pub struct Credentials(pub BTreeMap<String, SecretString>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Where a link attempt stands upstream.
#[derive(Debug, Clone)]
pub enum LinkProgress {
    /// Still working; ask again after the provider's poll interval.
    Connecting,
    /// The institution asks a question, or asks the user to choose how to receive its code.
    MfaRequired {
        /// The question (or the prompt to choose a method) to show the user.
        question: String,
        /// The delivery methods to choose from; empty when the institution asks a question. The
        /// chosen method's id comes back to [`Provider::answer_mfa`] as the answer.
        methods: Vec<crate::domain::MfaMethod>,
    },
    /// Connected; the public token can be exchanged.
    Succeeded {
        /// The issued public token.
        public_token: SecretString,
        /// The institution linked.
        institution_id: String,
        /// Exchangeable until.
        expires_at: Timestamp,
    },
    /// A repair session's user signed in again: the connection works once more, with the same
    /// upstream records. No public token is issued.
    Repaired {
        /// The connection's new handle, when the provider issued one; `None` keeps the old one.
        handle: Option<SecretString>,
    },
    /// The attempt failed for a reason the user or caller must address.
    Failed {
        /// Why.
        reason: ErrorReason,
        /// Explanation safe for end users.
        message: String,
    },
}

/// A provider's answer about a link attempt, with anything it must see again on the next call
/// (an upstream session id, a public token issued before MFA finished). linkgate seals that state
/// on the link session and hands it back in [`LinkContext::upstream_state`]; adapters stay
/// stateless.
#[derive(Debug, Clone)]
pub struct LinkStep {
    /// Where the attempt stands.
    pub progress: LinkProgress,
    /// New state to remember; `None` keeps what is remembered.
    pub upstream_state: Option<SecretString>,
}

impl From<LinkProgress> for LinkStep {
    fn from(progress: LinkProgress) -> Self {
        Self { progress, upstream_state: None }
    }
}

/// What a successful exchange yields: the permanent handle, sealed by linkgate before storage.
#[derive(Debug)]
pub struct ExchangedConnection {
    /// The provider's permanent handle (access token, connection token, link id).
    pub handle: SecretString,
    /// The institution connected.
    pub institution_id: String,
    /// Its display name.
    pub institution_name: String,
    /// Products linked, with those the institution cannot deliver left out.
    pub products: Vec<Product>,
    /// The provider's id of the connection in its webhooks, when it is not the handle itself.
    pub upstream_ref: Option<SecretString>,
    /// Where the provider says it delivers this connection's webhooks, for a provider told one
    /// per connection ([`WebhookTarget::PerConnection`]); `None` otherwise, or when it delivers none.
    pub webhook_url: Option<String>,
}

/// How a provider learns where to deliver a connection's webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookTarget<'a> {
    /// Not per connection: it is told once, outside linkgate (a dashboard), or sends none.
    NotPerConnection,
    /// Each connection's upstream link is told its URL; this is the one linkgate gives now
    /// (`None`: no public webhook URL is configured, so the provider delivers nothing).
    PerConnection(Option<&'a str>),
}

/// How far the provider has got with a connection's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamStatus {
    /// Still importing; ask again later.
    Importing,
    /// Data ready to fetch.
    Ready,
    /// The user must sign in again.
    LoginRequired,
    /// Revoked or deleted upstream.
    Disconnected,
    /// Failed upstream.
    Failed {
        /// Explanation without upstream bodies.
        message: String,
        /// Whether retrying later can help.
        retryable: bool,
    },
}

/// A failed provider call, classified.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Unknown, malformed or already used public token.
    #[error("invalid public token")]
    InvalidPublicToken,
    /// The user must sign in again.
    #[error("login required")]
    LoginRequired,
    /// The provider does not offer this.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// 5xx, timeout, connection failure.
    #[error("provider unavailable")]
    Unavailable {
        /// When to try again, if the provider said.
        retry_after: Option<Duration>,
    },
    /// 429.
    #[error("provider rate limited")]
    RateLimited {
        /// When to try again, if the provider said.
        retry_after: Option<Duration>,
    },
    /// A refusal retrying cannot fix.
    #[error("provider rejected the request: {detail}")]
    Rejected {
        /// Masked detail for the log.
        detail: String,
    },
    /// The product's data is still being extracted upstream; try again later. Not a failure.
    #[error("product not ready upstream")]
    ProductNotReady,
    /// An answer linkgate cannot understand.
    #[error("provider protocol error: {detail}")]
    Protocol {
        /// Masked detail for the log.
        detail: String,
    },
}

impl ProviderError {
    /// Whether the same call may succeed later without anyone acting.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::RateLimited { .. } | Self::ProductNotReady)
    }
}

/// An upstream identifier, code or enum value fit for logs: `[A-Za-z0-9_.]`, at most 64
/// characters, else `"?"` (a value that is not a plain identifier may carry a token or a user's
/// data).
pub fn log_safe(text: &str) -> &str {
    let plain = !text.is_empty()
        && text.len() <= 64
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if plain { text } else { "?" }
}

/// Builds an adapter that needs a client id and secret: `None` without either (the provider is
/// not offered), and `None` with the reason logged when only one is set or `build` fails, since
/// both are deployment mistakes an operator must see.
pub(crate) fn with_credentials<T>(
    provider: &'static str,
    client_id: Option<&str>,
    client_secret: Option<&SecretString>,
    build: impl FnOnce(upstream_client::HttpClient) -> Result<T, String>,
) -> Option<T> {
    match (client_id, client_secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.expose_secret().is_empty() => {}
        (None, None) => return None,
        _ => {
            tracing::warn!(provider, "not offered: its client id and client secret must both be set");
            return None;
        }
    }
    let built = upstream_client::HttpClient::shared().and_then(build);
    built.inspect_err(|error| tracing::error!(provider, error, "not offered")).ok()
}

/// An optional upstream code fit for logs (see [`log_safe`]); empty when absent.
pub fn log_safe_code(text: Option<String>) -> String {
    text.map(|text| log_safe(&text).to_owned()).unwrap_or_default()
}

/// Shorthand for provider call results.
pub type ProviderResult<T> = Result<T, ProviderError>;

/// One upstream provider. Every method is a translation of one upstream interaction.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + 'static {
    /// What the provider offers.
    fn info(&self) -> &ProviderInfo;

    /// The institutions reachable through the provider whose name contains `query` (matched
    /// case-insensitively; empty: every one), ordered by name then id. The whole catalogue is
    /// searched, from a copy kept for a while ([`catalogue::Catalogue`]), so callers may ask per
    /// keystroke; a provider that cannot list its catalogue without a search term answers its
    /// most common institutions to a query too short to search with.
    async fn institutions(&self, query: &str) -> ProviderResult<Vec<Institution>>;

    /// The institution `id`, also when [`Provider::institutions`] does not list it.
    async fn institution(&self, id: &str) -> ProviderResult<Option<Institution>> {
        Ok(self.institutions("").await?.into_iter().find(|i| i.id == id))
    }

    /// Starts a link session upstream.
    async fn start_link(&self, link: &LinkContext) -> ProviderResult<LinkStart>;

    /// Forwards the user's credentials (linkless flow).
    async fn submit_credentials(&self, link: &LinkContext, credentials: Credentials) -> ProviderResult<LinkStep>;

    /// Forwards the user's MFA answer: the answer to the question asked, or the id of the method
    /// chosen among those offered (linkgate checked it is one of them).
    async fn answer_mfa(&self, link: &LinkContext, answer: SecretString) -> ProviderResult<LinkStep>;

    /// Asks where an unsettled link session stands.
    async fn poll_link(&self, link: &LinkContext) -> ProviderResult<LinkStep>;

    /// Exchanges a public token for the permanent handle. Not idempotent upstream: linkgate calls
    /// it once per token.
    async fn exchange_public_token(&self, public_token: &SecretString) -> ProviderResult<ExchangedConnection>;

    /// Asks how far the provider has got with a connection.
    async fn connection_status(&self, handle: &SecretString) -> ProviderResult<UpstreamStatus>;

    /// Fetches what `products` deliver. `connection_id` seeds the stable ids. `cursor` is where
    /// the provider's change feed stood after the last stored fetch ([`Fetched::cursor`]): a
    /// provider with a feed serves only what changed since (a delta), one without ignores it.
    /// Without a cursor, or when the provider no longer knows it, the fetch is whole.
    async fn fetch_data(
        &self,
        handle: &SecretString,
        connection_id: Uuid,
        products: &[Product],
        cursor: Option<&str>,
    ) -> ProviderResult<Fetched>;

    /// Asks the provider to refresh `products` of the connection now (a provider that refreshes
    /// connections whole refreshes them all).
    async fn refresh(&self, handle: &SecretString, products: &[Product]) -> ProviderResult<()>;

    /// Revokes the connection upstream.
    async fn delete_connection(&self, handle: &SecretString) -> ProviderResult<()>;

    /// Replaces the connection's access token upstream and returns the new handle; the old one
    /// stops working at once (see `crate::cli::rotation` for how linkgate stores it safely).
    async fn rotate_handle(&self, handle: &SecretString) -> ProviderResult<SecretString> {
        let _ = handle;
        Err(ProviderError::Unsupported("rotating a connection's access token"))
    }

    /// The link token a session serves its caller when the provider keeps it out of the stored
    /// session because it carries a secret (Vumi's repair widget parameters hold the connection's
    /// restore token): made from the session's upstream state, opened, each time the session is
    /// served. `None`, the default, serves the stored [`LinkStart::link_token`].
    fn sealed_link_token(&self, _upstream_state: &SecretString) -> Option<SecretString> {
        None
    }

    /// How the provider learns where to deliver a connection's webhooks.
    fn webhook_target(&self) -> WebhookTarget<'_> {
        WebhookTarget::NotPerConnection
    }

    /// Points the connection's webhooks at `url` upstream (`None`: stops them), for a provider
    /// told one per connection.
    async fn set_webhook_url(&self, handle: &SecretString, url: Option<&str>) -> ProviderResult<()> {
        let _ = (handle, url);
        Err(ProviderError::Unsupported("a webhook URL per connection"))
    }

    /// How the provider signs its webhooks; `None` when it sends none linkgate can verify (an
    /// unverifiable webhook is refused rather than trusted).
    fn webhooks(&self) -> Option<&dyn WebhookScheme> {
        None
    }

    /// How the provider has been answering lately (the registry's metering wrapper tracks it).
    fn health(&self) -> ProviderHealth {
        ProviderHealth::Unknown
    }
}

/// How a provider has been answering lately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderHealth {
    /// No call made recently.
    Unknown,
    /// Recent calls succeeded, or failed for reasons of the caller's or user's own.
    Healthy,
    /// Several recent calls failed upstream: unavailable, rate limited or answered garbage.
    Degraded,
}

/// A provider's webhook signature scheme: an ES256 JWT in a header, its key fetched by `kid`.
/// linkgate verifies (see `crate::app::webhooks`); the adapter only says where things are.
#[async_trait::async_trait]
pub trait WebhookScheme: Send + Sync {
    /// The header carrying the JWT (`vumi-verification`, `MoneyKit-Signature`).
    fn signature_header(&self) -> &'static str;

    /// The `typ` the JWT's header must name, when the provider says so (Vumi: `JWT`); `None`
    /// accepts any or none.
    fn token_type(&self) -> Option<&'static str> {
        None
    }

    /// Whether the JWT must bind the body with a `request_body_sha256` claim; when `false` the
    /// claim is still checked whenever it is present.
    fn body_hash_required(&self) -> bool;

    /// Fetches the public key `kid` from the provider: `None` when the provider has no such key.
    async fn signing_key(&self, kid: &str) -> ProviderResult<Option<crate::crypto::jws::Jwk>>;

    /// Reads a delivery whose signature verified. A delivery it cannot read is kept all the
    /// same, naming no connection: see `crate::app::webhooks`.
    fn read(&self, body: &[u8]) -> ProviderResult<WebhookNotice>;
}

/// What a verified webhook says, as far as linkgate acts on it: which connection to look at
/// again. Its payload is otherwise not trusted: the poll that follows reads the provider's state.
#[derive(Debug, Clone)]
pub struct WebhookNotice {
    /// The provider's idempotency key of the delivery, identical across its retries.
    pub idempotency_key: Option<String>,
    /// The provider's event name.
    pub event: String,
    /// The provider's id of the connection concerned (see [`ExchangedConnection::upstream_ref`]).
    pub upstream_ref: Option<SecretString>,
}

/// The providers this deployment knows, by id.
#[derive(Clone, Default)]
pub struct Registry {
    providers: BTreeMap<&'static str, Arc<dyn Provider>>,
    /// Providers linkgate supports that this deployment does not offer (no credentials, or
    /// switched off), by id, with their display names.
    disabled: BTreeMap<&'static str, &'static str>,
}

impl Registry {
    /// The registry with every provider the settings enable; providers that share one upstream
    /// session across replicas keep it in `sessions`, and the sandbox keeps callers' changes in
    /// `store`.
    pub fn from_settings(
        settings: &crate::config::ProviderSettings,
        store: Arc<dyn crate::store::Store>,
        sessions: &session::SharedSessions,
    ) -> Self {
        let mut registry = Self::default();
        if settings.sandbox.enabled {
            let ledger = sandbox::Ledger::new(store);
            registry.register(Arc::new(sandbox::Sandbox::new(settings.sandbox.clone(), ledger)));
        } else {
            registry.disabled.insert(sandbox::ID, sandbox::DISPLAY_NAME);
        }
        match deck::Deck::from_settings(&settings.deck) {
            Some(deck) => registry.register(Arc::new(deck)),
            None => _ = registry.disabled.insert(deck::ID, deck::DISPLAY_NAME),
        }
        match vumi::Vumi::from_settings(&settings.vumi, sessions.clone()) {
            Some(vumi) => registry.register(Arc::new(vumi)),
            None => _ = registry.disabled.insert(vumi::ID, vumi::DISPLAY_NAME),
        }
        match moneykit::MoneyKit::from_settings(&settings.moneykit, settings.public_webhook_url.as_ref()) {
            Some(moneykit) => registry.register(Arc::new(moneykit)),
            None => _ = registry.disabled.insert(moneykit::ID, moneykit::DISPLAY_NAME),
        }
        registry
    }

    /// Adds a provider; its calls are metered.
    pub fn register(&mut self, provider: Arc<dyn Provider>) {
        self.providers.insert(provider.info().id, Arc::new(metered::Metered::new(provider)));
    }

    /// The provider with `id`, if enabled.
    pub fn get(&self, id: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(id)
    }

    /// Every enabled provider, ordered by id.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.providers.values()
    }

    /// Every supported provider this deployment does not offer: id and display name, by id.
    pub fn disabled(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.disabled.iter().map(|(id, name)| (*id, *name))
    }
}

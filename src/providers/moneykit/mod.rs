//! MoneyKit: US, UK and CA banks through MoneyKit's API, hosted link flow (MoneyKit Connect in the
//! user's browser). Reference, with the source of each fact: docs/providers/moneykit.md.
//!
//! Every call carries `MoneyKit-Version` and a bearer token from the OAuth2 client-credentials
//! grant (M1 `POST /auth/token`, form-encoded, answered 201). The token is kept in this process
//! until shortly before `expires_in` runs out; a call refused with
//! `api_error.auth.expired_access_token` renews it once and is sent once more. Renewal is
//! single-flight: concurrent calls wait for the one renewal instead of each asking for a token.
//!
//! | linkgate | MoneyKit |
//! |---|---|
//! | `start_link` | M4 `POST /link-session` (201): `link_session_token` is the session's `link_token` |
//! | `poll_link` | nothing to ask: MoneyKit has no API for a Connect session's outcome |
//! | `exchange_public_token` | M5 `POST /link-session/exchange-token` (201) |
//! | `connection_status` | M7 `GET /links/{id}`: link `state` and per-product freshness |
//! | `fetch_data` | M14 accounts, M19 transactions sync feed (from the stored cursor), M21 holdings, M22 investment transactions (page-numbered), M16 account numbers, M17 identity |
//! | `refresh` / `delete_connection` | M13 `POST /links/{id}/products` (202) naming the products asked / M9 `DELETE /links/{id}` |
//! | `set_webhook_url` | M8 `PATCH /links/{id}` with `{"webhook": url}` (`null` removes it) |
//! | `institutions` / `institution` | M26 every page, kept for `LINKGATE_MONEYKIT_INSTITUTIONS_TTL`; M27 for an id not kept |
//! | repair (`LinkContext::repair`) | M4 with `existing_link_id`, then M5 at ExchangePublicToken |
//!
//! **The link flow.** CreateLinkSession (hosted flow) creates a MoneyKit link session for the
//! caller's user (`customer_user.id` is the external user id; `redirect_uri` is required by
//! MoneyKit, so the provider declares it in [`ProviderInfo::required_inputs`] and linkgate refuses
//! a session without one before calling) with every requested product prefetched, and returns `link_session_token` as the
//! session's `link_token`. The caller's front end opens MoneyKit Connect with it; Connect's
//! success callback hands the front end an `exchangeable_token`, which the caller passes to
//! ExchangePublicToken as the public token (with `external_user_id`: linkgate never saw this token
//! issued, so it records it at the exchange; the session itself stays CONNECTING until it
//! expires). The exchange yields the `link_id`, the connection's handle, which linkgate seals and
//! never hands out; the connection is PENDING until every linked product's first import is over.
//!
//! **Documented keys only.** Request bodies carry only what MoneyKit's published request models
//! (its SDK's `CreateLinkSessionRequest`, `ProductsSettings`, `UpdateLinkRequest`, …) list:
//! product settings name `transactions`, `investments`, `account_numbers` and `identity`, never
//! `accounts`, which come with every link.
//!
//! **Webhooks.** MoneyKit delivers a link's webhooks to the URL its link session named
//! (`webhook`) or M8 set later, nowhere else. With a public webhook URL configured
//! (`LINKGATE_PUBLIC_WEBHOOK_URL`), every session, new or repair, names linkgate's route under it
//! (a reconnect session without one would remove the link's); M5's answer says what the link was
//! given, which linkgate records, and the sync engine moves a link given another URL with M8
//! ([`WebhookTarget::PerConnection`]). Without the setting links name none and linkgate polls.
//!
//! **Repair.** A repair session's M4 carries `existing_link_id` (the connection's link id, its
//! handle) instead of an institution, so Connect relinks that link. Its outcome reaches linkgate
//! as ever through ExchangePublicToken: M5 answers the same link id, which linkgate recognises as
//! the connection's (see `crate::app::repair`), so the exchange repairs that connection instead of
//! making a second one.
//!
//! **Account numbers and identity.** MoneyKit's `account_numbers` and `identity` products are
//! linked only when the caller's link session asks for them (PRODUCT_ACCOUNT_NUMBERS,
//! PRODUCT_IDENTITY): MoneyKit asks the user's permission for each. They are read (M16, M17) with
//! every import that covers them, as MoneyKit last fetched them (see [`details`]).
//!
//! **Incremental transactions.** M19 is MoneyKit's change feed: read without a cursor it serves
//! the whole history, read from a cursor what was created, updated and removed since, each
//! sequence paged while `has_more` with the cursor's `next`. MoneyKit keeps no client cursors, so
//! linkgate stores the last `next` with the import it came with and reads from it next time: the
//! import is then a delta ([`TransactionDelta`]). Pending transactions only ever appear among the
//! created ones, all of them on every read, and are never reported removed: the delta's pending set
//! is complete. A `next` MoneyKit leaves out keeps the cursor read from. A cursor MoneyKit refuses
//! (422 `api_error.request.validation_failed`; it publishes no error for cursors, so whatever it
//! refuses is treated so) is dropped and the feed read whole again. Accounts (M14), holdings
//! (M21), investment transactions (M22, page-numbered), account numbers (M16) and identity (M17)
//! have no feed and are read whole.
//!
//! **Refresh limits.** RefreshConnection asks MoneyKit (M13) to fetch exactly the products it
//! names again. MoneyKit publishes how often each may be refreshed on demand: [`REFRESH_LIMITS`],
//! one line per product, which RefreshConnection honours.
//!
//! **Money.** Balances are JSON numbers, everything else decimal strings; both are read exactly.
//! Transaction amounts are non-negative with a `credit`/`debit` type (debits become negative);
//! a liability's `current` balance is positive when owed (it becomes negative), while its
//! `available` (the credit still available to use) and `limit` keep their sign; investment
//! transaction amounts are positive for money out (they are negated). Holdings (`price`, `value`,
//! `cost_basis`) and investment transactions (`amount`, `price`) are in their account's currency,
//! whatever currency the security is priced in (that one prices only its `close_price`, used as a
//! price only when the two agree); an investment account without a currency is left out. Every
//! cursor read is optional where MoneyKit's models say so (M19's `cursor.next`).
//!
//! States and errors map through the one table in [`states`].

mod details;
pub mod states;
mod wire;

use super::catalogue::{Catalogue, matching};
use super::upstream_client::{
    HttpClient, Retry, Upstream, UpstreamConfig, UpstreamReply, UpstreamRequest, endpoint, is_plain_segment,
};
use super::{
    Credentials, ExchangedConnection, Fetched, Institution, InstitutionKind, LinkContext, LinkInput, LinkProgress,
    LinkStart, LinkStep, Provider, ProviderError, ProviderInfo, ProviderResult, RefreshLimit, UpstreamStatus,
    WebhookNotice, WebhookScheme, WebhookTarget, log_safe, log_safe_code,
};
use crate::config::MoneyKitSettings;
use crate::crypto::jws::Jwk;
use crate::domain::{
    Account, AccountType, AssetType, ConnectionData, Decimal, Instrument, LinkFlow, Money, Portfolio,
    PortfolioTransaction, PortfolioTransactionType, PortfolioType, Position, Product, Transaction, TransactionDelta,
    stable_id,
};
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use states::{ApiError, ProductPhase};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// The provider id.
pub const ID: &str = "moneykit";
/// The provider's display name.
pub const DISPLAY_NAME: &str = "MoneyKit";
/// Products a MoneyKit connection delivers.
const PRODUCTS: &[Product] =
    &[Product::Accounts, Product::Transactions, Product::Investments, Product::Identity, Product::AccountNumbers];
/// Products a link session that names none links: identity and account numbers only when asked for.
const DEFAULT_PRODUCTS: &[Product] = &[Product::Accounts, Product::Transactions, Product::Investments];
/// MoneyKit's published limits on refreshing a link's products on demand (M13), one line per
/// product it limits (docs/providers/moneykit.md).
pub const REFRESH_LIMITS: &[RefreshLimit] = &[
    RefreshLimit { product: Product::Accounts, once_per: HOUR },
    RefreshLimit { product: Product::Transactions, once_per: HOUR },
    RefreshLimit { product: Product::AccountNumbers, once_per: DAY },
    RefreshLimit { product: Product::Identity, once_per: DAY },
];
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
/// How long before `expires_in` runs out a token is renewed, at most (a tenth of its life when
/// that is shorter), so a call never starts with a token about to lapse.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// The header naming the API version linkgate reads.
const VERSION_HEADER: HeaderName = HeaderName::from_static("moneykit-version");
/// Transactions per M19 page (MoneyKit's maximum is 500).
const SYNC_PAGE_SIZE: &str = "500";
/// Investment transactions per M22 page (MoneyKit's maximum is 1000).
const INVESTMENT_PAGE_SIZE: u64 = 1000;
/// Pages read per feed at most, so a provider that never says "done" cannot loop linkgate.
const MAX_PAGES: usize = 1000;
/// Institutions per M26 page (MoneyKit's maximum is 1000).
const INSTITUTION_LIMIT: &str = "1000";
/// Currency of a balance MoneyKit names none for (ISO 4217 "no currency").
const NO_CURRENCY: &str = "XXX";

/// The MoneyKit provider.
pub struct MoneyKit {
    info: ProviderInfo,
    upstream: Upstream,
    base_url: Url,
    client_id: String,
    client_secret: SecretString,
    version: HeaderValue,
    tokens: tokio::sync::Mutex<TokenCache>,
    /// Every institution, kept for `LINKGATE_MONEYKIT_INSTITUTIONS_TTL`.
    catalogue: Catalogue,
    /// The URL of linkgate's MoneyKit webhook route every link is given, when a public webhook
    /// URL is configured.
    webhook_url: Option<String>,
}

/// The app's access token. Held in the lock while it is renewed, which makes renewal
/// single-flight.
#[derive(Default)]
struct TokenCache {
    current: Option<Bearer>,
    generation: u64,
}

/// One issued access token.
#[derive(Clone)]
struct Bearer {
    header: SecretString,
    renew_at: Instant,
    generation: u64,
}

/// The MoneyKit endpoints linkgate calls.
#[derive(Debug, Clone, Copy)]
enum Route {
    Token,
    Jwks,
    Institutions,
    Institution,
    LinkSession,
    Exchange,
    Link,
    UpdateLink,
    Accounts,
    AccountNumbers,
    Identity,
    TransactionSync,
    Holdings,
    InvestmentTransactions,
    Refresh,
    Delete,
}

impl Route {
    /// Operation name for logs and whether a retry could act twice.
    fn spec(self) -> (&'static str, Retry) {
        use Retry::{Idempotent, OnlyUnprocessed};
        match self {
            Self::Token => ("moneykit.auth_token", Idempotent),
            Self::Jwks => ("moneykit.jwks", Idempotent),
            Self::Institutions => ("moneykit.institutions", Idempotent),
            Self::Institution => ("moneykit.institution", Idempotent),
            // A second session is harmless: the first is never opened.
            Self::LinkSession => ("moneykit.link_session", Idempotent),
            // Single use: when an attempt consumed the token and its answer was lost, a retry
            // answers invalid_token_exchange, which is no worse than not retrying; when it did
            // not, the retry saves the link.
            Self::Exchange => ("moneykit.exchange_token", Idempotent),
            Self::Link => ("moneykit.link", Idempotent),
            // Setting the same URL twice sets it once.
            Self::UpdateLink => ("moneykit.update_link", Idempotent),
            Self::Accounts => ("moneykit.accounts", Idempotent),
            Self::AccountNumbers => ("moneykit.account_numbers", Idempotent),
            Self::Identity => ("moneykit.identity", Idempotent),
            Self::TransactionSync => ("moneykit.transactions_sync", Idempotent),
            Self::Holdings => ("moneykit.holdings", Idempotent),
            Self::InvestmentTransactions => ("moneykit.investment_transactions", Idempotent),
            // Refreshes are rate limited and may be billed: never sent twice blindly.
            Self::Refresh => ("moneykit.refresh_products", OnlyUnprocessed),
            Self::Delete => ("moneykit.delete_link", Idempotent),
        }
    }

    /// The path template, for traces: the URLs themselves carry link ids.
    fn template(self) -> &'static str {
        match self {
            Self::Token => "/auth/token",
            Self::Jwks => "/.well-known/jwks.json",
            Self::Institutions => "/institutions",
            Self::Institution => "/institutions/{institution_id}",
            Self::LinkSession => "/link-session",
            Self::Exchange => "/link-session/exchange-token",
            Self::Link | Self::UpdateLink | Self::Delete => "/links/{link_id}",
            Self::Accounts => "/links/{link_id}/accounts",
            Self::AccountNumbers => "/links/{link_id}/accounts/numbers",
            Self::Identity => "/links/{link_id}/identity",
            Self::TransactionSync => "/links/{link_id}/transactions/sync",
            Self::Holdings => "/links/{link_id}/investments/holdings",
            Self::InvestmentTransactions => "/links/{link_id}/investments/transactions",
            Self::Refresh => "/links/{link_id}/products",
        }
    }
}

/// How a call is sent.
enum Method {
    Get,
    Delete,
    PostJson(serde_json::Value),
    PatchJson(serde_json::Value),
}

/// Why a MoneyKit call did not answer 2xx: MoneyKit refused it with its error body, or the call
/// failed below that (transport, protocol).
enum Failure {
    Refused(ApiError),
    Other(ProviderError),
}

impl From<Failure> for ProviderError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Refused(error) => states::classify(&error),
            Failure::Other(error) => error,
        }
    }
}

impl From<ProviderError> for Failure {
    fn from(error: ProviderError) -> Self {
        Self::Other(error)
    }
}

impl MoneyKit {
    /// MoneyKit as the settings configure it, or `None` when it is not to be offered (no
    /// credentials) or cannot be (a setting is unusable; logged). Links are given linkgate's
    /// webhook route under `public_webhook_url`, when it is set.
    pub fn from_settings(settings: &MoneyKitSettings, public_webhook_url: Option<&Url>) -> Option<Self> {
        let secret = settings.client_secret.as_ref();
        super::with_credentials(ID, settings.client_id.as_deref(), secret, |http| {
            Self::new(settings, public_webhook_url, http)
        })
    }

    /// MoneyKit over `http` with `settings`, which must hold credentials.
    pub fn new(
        settings: &MoneyKitSettings,
        public_webhook_url: Option<&Url>,
        http: HttpClient,
    ) -> Result<Self, String> {
        let (Some(client_id), Some(client_secret)) = (&settings.client_id, &settings.client_secret) else {
            return Err("the MoneyKit client id and secret are required".to_owned());
        };
        let version = HeaderValue::from_str(&settings.api_version)
            .map_err(|_| "the MoneyKit API version is not a valid header value".to_owned())?;
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
                // MoneyKit refreshes linked accounts about daily; data endpoints never fetch.
                refresh_interval: Duration::from_secs(12 * 3600),
                consent_lifetime: None,
                refresh_limits: REFRESH_LIMITS,
                // MoneyKit refuses a link session without one: its OAuth institutions return the user there.
                required_inputs: &[LinkInput::RedirectUri],
                // `customer_user.id` takes 4 to 150 characters; linkgate's ids stop at 128.
                min_external_user_id_chars: 4,
            },
            upstream,
            base_url,
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            version,
            tokens: tokio::sync::Mutex::default(),
            catalogue: Catalogue::new(settings.institutions_ttl),
            webhook_url: public_webhook_url.map(|base| endpoint(base, "webhooks/moneykit").to_string()),
        })
    }

    /// The URL of `segments` under the base URL (each segment percent-encoded), with `query`.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = endpoint(&self.base_url, "");
        url.path_segments_mut().expect("an http(s) base URL has a path").pop_if_empty().extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// A usable access token: the cached one unless it is about to lapse or is generation
    /// `stale` (refused as expired), else a new one. Concurrent callers wait for one renewal.
    async fn bearer(&self, stale: Option<u64>) -> Result<Bearer, Failure> {
        let mut cache = self.tokens.lock().await;
        if let Some(bearer) = &cache.current
            && Some(bearer.generation) != stale
            && Instant::now() < bearer.renew_at
        {
            return Ok(bearer.clone());
        }
        let fields = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
        ];
        let (operation, retry) = Route::Token.spec();
        let request = UpstreamRequest::post_form(operation, self.url(&["auth", "token"], &[]), &fields)
            .template(Route::Token.template())
            .header(VERSION_HEADER, self.version.clone())
            .retry(retry);
        let reply = self.upstream.send(request).await?;
        if !reply.is_success() {
            return Err(Failure::Refused(api_error(operation, &reply)));
        }
        let issued: wire::AccessToken = reply.json()?;
        let life = Duration::from_secs(issued.expires_in);
        cache.generation += 1;
        let bearer = Bearer {
            header: SecretString::from(format!("Bearer {}", issued.access_token)),
            renew_at: Instant::now() + life - TOKEN_MARGIN.min(life / 10),
            generation: cache.generation,
        };
        tracing::debug!(
            provider = ID,
            expires_in = issued.expires_in,
            renewal = stale.is_some(),
            "MoneyKit access token issued"
        );
        cache.current = Some(bearer.clone());
        Ok(bearer)
    }

    /// One call: the 2xx answer, or why not. An expired token is renewed once and the call sent
    /// once more.
    async fn send(&self, route: Route, url: Url, method: &Method) -> Result<UpstreamReply, Failure> {
        let (operation, retry) = route.spec();
        let mut stale = None;
        loop {
            let bearer = self.bearer(stale).await?;
            let request = match method {
                Method::Get => UpstreamRequest::get(operation, url.clone()),
                Method::Delete => UpstreamRequest::delete(operation, url.clone()),
                Method::PostJson(body) => UpstreamRequest::post_json(operation, url.clone(), body)?,
                Method::PatchJson(body) => UpstreamRequest::patch_json(operation, url.clone(), body)?,
            }
            .header(VERSION_HEADER, self.version.clone())
            .secret_header(AUTHORIZATION, &bearer.header)
            .retry(retry)
            .template(route.template());
            let reply = self.upstream.send(request).await?;
            if reply.is_success() {
                return Ok(reply);
            }
            let error = api_error(operation, &reply);
            if error.code == "api_error.auth.expired_access_token" && stale.is_none() {
                tracing::info!(provider = ID, operation, "MoneyKit access token expired; renewing it once");
                stale = Some(bearer.generation);
                continue;
            }
            return Err(Failure::Refused(error));
        }
    }

    /// One call whose answer is read as `T`.
    async fn call<T: DeserializeOwned>(&self, route: Route, url: Url, method: Method) -> Result<T, Failure> {
        Ok(self.send(route, url, &method).await?.json()?)
    }

    async fn link(&self, link_id: &str) -> Result<wire::Link, Failure> {
        self.call(Route::Link, self.url(&["links", link_id], &[]), Method::Get).await
    }

    /// The link's transactions from the sync feed: from `cursor` when there is one, else from
    /// the start. A cursor MoneyKit refuses is dropped and the feed read from the start.
    async fn transactions(&self, link_id: &str, cursor: Option<&str>) -> Result<TransactionFeed, Failure> {
        if let Some(cursor) = cursor {
            match self.transaction_feed(link_id, Some(cursor)).await {
                Err(Failure::Refused(error)) if error.code == "api_error.request.validation_failed" => {
                    tracing::warn!(
                        provider = ID,
                        "MoneyKit refused the stored transaction sync cursor; reading the whole feed"
                    );
                }
                read => return read,
            }
        }
        self.transaction_feed(link_id, None).await
    }

    /// One read of the sync feed from `start` (the start of the history when `None`), every page
    /// of it, with changes reported on later pages applied over earlier ones.
    async fn transaction_feed(&self, link_id: &str, start: Option<&str>) -> Result<TransactionFeed, Failure> {
        let mut changed: BTreeMap<String, wire::Transaction> = BTreeMap::new();
        let mut removed: BTreeSet<String> = BTreeSet::new();
        let mut cursor = start.map(str::to_owned);
        for _ in 0..MAX_PAGES {
            let mut query = vec![("size", SYNC_PAGE_SIZE)];
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor.as_str()));
            }
            let url = self.url(&["links", link_id, "transactions", "sync"], &query);
            let page: wire::TransactionSync = self.call(Route::TransactionSync, url, Method::Get).await?;
            for transaction in page.transactions.created.into_iter().chain(page.transactions.updated) {
                removed.remove(&transaction.transaction_id);
                changed.insert(transaction.transaction_id.clone(), transaction);
            }
            for id in page.transactions.removed {
                changed.remove(&id);
                removed.insert(id);
            }
            let next = page.cursor.next.filter(|next| !next.is_empty());
            if !page.has_more {
                return Ok(TransactionFeed {
                    transactions: changed.into_values().collect(),
                    // From the start, a removal only undoes an earlier page.
                    removed: start.map(|_| removed.into_iter().collect()),
                    // Absent, the cursor read from stands.
                    cursor: next.or(cursor),
                });
            }
            if next.is_none() {
                return Err(Failure::Other(ProviderError::Protocol {
                    detail: format!("{}: more pages and no cursor to read them", Route::TransactionSync.spec().0),
                }));
            }
            cursor = next;
        }
        Err(Failure::Other(ProviderError::Protocol {
            detail: format!("{}: the sync feed did not end after {MAX_PAGES} pages", Route::TransactionSync.spec().0),
        }))
    }

    /// Every investment transaction of the link, page by page, with the securities and accounts
    /// they name, beside the link's `holdings`.
    async fn investment_transactions(&self, link_id: &str, holdings: wire::Holdings) -> Result<Investments, Failure> {
        let (mut all, mut securities, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
        let size = INVESTMENT_PAGE_SIZE.to_string();
        for page in 1..=MAX_PAGES {
            let page_text = page.to_string();
            // MoneyKit's default window is 90 days; linkgate keeps the whole history.
            let query = [("page", page_text.as_str()), ("size", size.as_str()), ("start_date", "1900-01-01")];
            let url = self.url(&["links", link_id, "investments", "transactions"], &query);
            let answer: wire::InvestmentTransactions =
                self.call(Route::InvestmentTransactions, url, Method::Get).await?;
            let received = answer.investment_transactions.len();
            all.extend(answer.investment_transactions);
            securities.extend(answer.securities);
            accounts.extend(answer.accounts);
            if received == 0 || all.len() as u64 >= answer.total {
                return Ok(Investments { holdings, transactions: all, securities, accounts });
            }
        }
        Err(Failure::Other(ProviderError::Protocol {
            detail: format!("{}: more than {MAX_PAGES} pages", Route::InvestmentTransactions.spec().0),
        }))
    }
}

/// One read of the transaction sync feed.
struct TransactionFeed {
    /// Read from the start: every transaction. From a cursor: those created or updated since,
    /// which include every pending one.
    transactions: Vec<wire::Transaction>,
    /// Read from a cursor: the ids removed since.
    removed: Option<Vec<String>>,
    /// Where to read from next time.
    cursor: Option<String>,
}

/// MoneyKit's error body of `reply`, its codes made fit for logs.
fn api_error(operation: &'static str, reply: &UpstreamReply) -> ApiError {
    let body: wire::ErrorBody = serde_json::from_slice(&reply.body).unwrap_or_default();
    ApiError {
        operation,
        status: reply.status.as_u16(),
        code: log_safe_code(body.error_code),
        link_error_code: log_safe_code(body.link_error_code),
    }
}

/// MoneyKit's name of a product.
fn product_name(product: Product) -> Option<&'static str> {
    match product {
        Product::Accounts => Some("accounts"),
        Product::Transactions => Some("transactions"),
        Product::Investments => Some("investments"),
        Product::Identity => Some("identity"),
        Product::AccountNumbers => Some("account_numbers"),
        Product::Statements => None,
    }
}

/// Where the linked `products` stand on `link`; a product MoneyKit does not list was not linked.
fn phases(link: &wire::Link, products: &[Product]) -> Vec<(Product, ProductPhase)> {
    products
        .iter()
        .filter_map(|&product| {
            let name = product_name(product)?;
            let phase = link.products.get(name).map_or(ProductPhase::Unsupported, ProductPhase::of);
            Some((product, phase))
        })
        .collect()
}

/// An ISO 4217 code, upper case.
fn currency(code: Option<&str>) -> Option<String> {
    let code = code?.trim();
    (code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic())).then(|| code.to_ascii_uppercase())
}

/// linkgate's account type of a dotted MoneyKit `account_type`.
fn account_type(account_type: &str) -> AccountType {
    match account_type {
        "depository.checking" | "depository.cash_management" | "depository.prepaid" => AccountType::Checking,
        "depository.savings" | "depository.money_market" | "depository.cd" => AccountType::Savings,
        "liability.credit_card" | "liability.line_of_credit" => AccountType::CreditCard,
        other if other.starts_with("liability.") => AccountType::Loan,
        other if other.starts_with("depository.") => AccountType::Checking,
        _ => AccountType::Other,
    }
}

fn account(connection_id: Uuid, account: &wire::Account) -> Account {
    let currency = currency(account.balances.currency.as_deref()).unwrap_or_else(|| NO_CURRENCY.to_owned());
    // MoneyKit reports what is owed on a liability (`current`) as a positive balance; linkgate's
    // is negative. `available` is the credit still available to use, positive either way.
    let sign = if account.account_type.starts_with("liability.") { Decimal::NEGATIVE_ONE } else { Decimal::ONE };
    let money = |amount: Option<Decimal>, signed: bool| {
        amount.map(|amount| Money::new(if signed { amount * sign } else { amount }, &currency))
    };
    Account {
        id: stable_id(connection_id, "account", &account.account_id),
        kind: account_type(&account.account_type),
        name: account.name.clone(),
        mask: account.account_mask.clone().filter(|m| !m.is_empty()),
        current: money(account.balances.current, true),
        available: money(account.balances.available, false),
        limit: money(account.balances.limit, false),
        currency,
    }
}

/// A cash transaction with its sign: debits leave the account. `None` for a type MoneyKit did
/// not document (logged), whose direction linkgate cannot know.
fn transaction(connection_id: Uuid, transaction: wire::Transaction) -> Option<Transaction> {
    let amount = match transaction.kind.as_str() {
        "credit" => transaction.amount,
        "debit" => -transaction.amount,
        other => {
            tracing::warn!(provider = ID, %connection_id, transaction_type = %log_safe(other), "MoneyKit transaction of an unknown type left out");
            return None;
        }
    };
    let currency = currency(Some(&transaction.currency)).unwrap_or_else(|| NO_CURRENCY.to_owned());
    Some(Transaction {
        id: stable_id(connection_id, "transaction", &transaction.transaction_id),
        account_id: stable_id(connection_id, "account", &transaction.account_id),
        amount: Money::new(amount, &currency),
        date: transaction.date,
        description: transaction.description.or(transaction.raw_description).unwrap_or_default(),
        pending: transaction.pending,
        pending_transaction_id: None,
    })
}

fn instrument(security: &wire::Security) -> Instrument {
    Instrument {
        isin: security.isin.clone(),
        ticker: security.ticker.clone(),
        name: security.name.clone(),
        asset_type: match security.kind.as_str() {
            "equity" => AssetType::Equity,
            "etf" => AssetType::Etf,
            "fund" => AssetType::Fund,
            "bond" => AssetType::Bond,
            "cash" => AssetType::Cash,
            _ => AssetType::Other,
        },
        currency: currency(Some(&security.currency)).unwrap_or_else(|| NO_CURRENCY.to_owned()),
        exchange: None,
    }
}

/// linkgate's type of an investment transaction, from MoneyKit's (dotted) type and the sign of
/// its cash effect.
fn portfolio_transaction_type(kind: &str, cash_in: bool) -> PortfolioTransactionType {
    use PortfolioTransactionType as T;
    let (main, sub) = kind.split_once('.').unwrap_or((kind, ""));
    match main {
        "buy" => T::Buy,
        "sell" => T::Sell,
        "fee" => T::Fee,
        "cash" if sub.contains("dividend") || sub.contains("interest") => T::Dividend,
        "cash" | "transfer" if cash_in => T::Deposit,
        "cash" | "transfer" => T::Withdrawal,
        _ => T::Other,
    }
}

/// Investment accounts' holdings and history, as MoneyKit serves them (M21, M22).
struct Investments {
    holdings: wire::Holdings,
    transactions: Vec<wire::InvestmentTransaction>,
    /// The securities M22 names beside those of M21.
    securities: Vec<wire::Security>,
    /// The accounts M22 names beside those of M21 and M14.
    accounts: Vec<wire::Account>,
}

/// Portfolios (one per investment account), positions and portfolio transactions. MoneyKit
/// denominates holdings and investment transactions in their account's currency (a security's
/// own currency only prices its `close_price`): an account whose currency MoneyKit does not name
/// is left out with its positions and transactions (logged), as linkgate cannot say what its
/// amounts are in.
fn investments(connection_id: Uuid, accounts: &[wire::Account], investments: Investments, data: &mut ConnectionData) {
    let Investments { holdings, transactions, securities, accounts: more_accounts } = investments;
    let account_currency: HashMap<&str, String> = accounts
        .iter()
        .chain(&holdings.accounts)
        .chain(&more_accounts)
        .filter_map(|account| Some((account.account_id.as_str(), currency(account.balances.currency.as_deref())?)))
        .collect();
    let currency_of = |account_id: &str| {
        let found = account_currency.get(account_id).cloned();
        if found.is_none() {
            tracing::warn!(provider = ID, %connection_id, "MoneyKit investment record of an account without a currency left out");
        }
        found
    };
    let securities: HashMap<String, wire::Security> = holdings
        .securities
        .into_iter()
        .chain(securities)
        .map(|security| (security.security_id.clone(), security))
        .collect();
    let portfolio_id = |account_id: &str| stable_id(connection_id, "portfolio", account_id);
    let mut values: HashMap<String, Decimal> = HashMap::new();
    for holding in holdings.holdings {
        let Some(security) = securities.get(&holding.security_id) else {
            tracing::warn!(provider = ID, %connection_id, "MoneyKit holding of an unlisted security left out");
            continue;
        };
        let Some(currency) = currency_of(&holding.account_id) else { continue };
        let instrument = instrument(security);
        // The last close is in the security's currency: a price only where that is the account's.
        let close = security.close_price.filter(|_| instrument.currency == currency);
        let price = holding.price.or(close).or_else(|| {
            let value = holding.value?;
            (!holding.quantity.is_zero()).then(|| value / holding.quantity)
        });
        let Some(price) = price else {
            tracing::warn!(provider = ID, %connection_id, "MoneyKit holding without a price in its account's currency left out");
            continue;
        };
        let value = holding.value.unwrap_or(holding.quantity * price);
        *values.entry(holding.account_id.clone()).or_default() += value;
        data.positions.push(Position {
            id: stable_id(connection_id, "position", &format!("{}/{}", holding.account_id, holding.security_id)),
            portfolio_id: portfolio_id(&holding.account_id),
            price: Money::new(price, &currency),
            market_value: Money::new(value, &currency),
            cost_basis: holding.cost_basis.map(|c| Money::new(c, &currency)),
            quantity: holding.quantity,
            instrument,
        });
    }
    for account in &holdings.accounts {
        let Some(currency) = currency_of(&account.account_id) else { continue };
        let value = values.get(&account.account_id).copied().or(account.balances.current).unwrap_or_default();
        data.portfolios.push(Portfolio {
            id: portfolio_id(&account.account_id),
            kind: if account.account_type.contains("retirement") || account.account_type.contains("401k") {
                PortfolioType::Retirement
            } else {
                PortfolioType::Brokerage
            },
            name: account.name.clone(),
            value: Money::new(value, &currency),
            cash_account_id: Some(stable_id(connection_id, "account", &account.account_id)),
        });
    }
    for transaction in transactions {
        let Some(currency) = currency_of(&transaction.account_id) else { continue };
        let instrument = transaction.security_id.as_ref().and_then(|id| securities.get(id)).map(instrument);
        // MoneyKit: positive is money out of the account; linkgate: negative is.
        let amount = -transaction.amount;
        data.portfolio_transactions.push(PortfolioTransaction {
            id: stable_id(connection_id, "portfolio_transaction", &transaction.investment_transaction_id),
            portfolio_id: portfolio_id(&transaction.account_id),
            kind: portfolio_transaction_type(&transaction.kind, amount > Decimal::ZERO),
            date: transaction.date,
            quantity: transaction.quantity,
            price: transaction.price.map(|p| Money::new(p, &currency)),
            amount: Money::new(amount, &currency),
            description: transaction.description.unwrap_or_default(),
            instrument,
        });
    }
}

impl MoneyKit {
    /// M26 page by page through `cursors.next`: MoneyKit's whole catalogue.
    async fn every_institution(&self) -> ProviderResult<Vec<Institution>> {
        let mut every = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("limit", INSTITUTION_LIMIT)];
            query.extend(cursor.as_deref().map(|cursor| ("cursor", cursor)));
            let url = self.url(&["institutions"], &query);
            let page: wire::Institutions = self.call(Route::Institutions, url, Method::Get).await?;
            let ended = page.institutions.is_empty();
            every.extend(page.institutions.into_iter().map(institution));
            match page.cursors.next.filter(|next| !next.is_empty() && !ended) {
                Some(next) => cursor = Some(next),
                None => return Ok(every),
            }
        }
        Err(ProviderError::Protocol { detail: format!("moneykit.institutions: more than {MAX_PAGES} pages") })
    }
}

fn institution(institution: wire::Institution) -> Institution {
    Institution {
        id: institution.institution_id,
        name: institution.name,
        kind: InstitutionKind::Bank,
        products: PRODUCTS.to_vec(),
        credential_fields: Vec::new(),
        country_codes: institution.country.into_iter().map(|c| c.to_ascii_uppercase()).collect(),
    }
}

#[async_trait::async_trait]
impl Provider for MoneyKit {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn institutions(&self, query: &str) -> ProviderResult<Vec<Institution>> {
        let every = self.catalogue.list("", self.every_institution()).await?;
        Ok(matching(&every, query))
    }

    async fn institution(&self, id: &str) -> ProviderResult<Option<Institution>> {
        // The caller's id goes into the path: `..` would address another endpoint.
        if !is_plain_segment(id) {
            return Ok(None);
        }
        if let Some(found) = self.catalogue.fresh("").and_then(|every| every.iter().find(|i| i.id == id).cloned()) {
            return Ok(Some(found));
        }
        let url = self.url(&["institutions", id], &[]);
        match self.call::<wire::Institution>(Route::Institution, url, Method::Get).await {
            Ok(found) => Ok(Some(institution(found))),
            Err(Failure::Refused(error)) if error.code == "institution_error.not_found" => Ok(None),
            Err(failure) => Err(failure.into()),
        }
    }

    async fn start_link(&self, link: &LinkContext) -> ProviderResult<LinkStart> {
        let redirect_uri = link.redirect_uri.as_deref().ok_or_else(|| ProviderError::Rejected {
            detail: "MoneyKit link sessions need a redirect_uri".to_owned(),
        })?;
        let products = if link.products.is_empty() { DEFAULT_PRODUCTS } else { link.products.as_slice() };
        let settings = wire::LinkSessionSettings {
            products: products
                .iter()
                // Accounts come with every link: MoneyKit's product settings do not list them.
                .filter(|&&p| p != Product::Accounts)
                .filter_map(|&p| product_name(p))
                .map(|name| (name, wire::ProductSettings { required: false, prefetch: true }))
                .collect(),
        };
        // A repair relinks the connection's link: its id is the handle.
        let existing_link_id = link.repair.as_ref().map(|handle| handle.expose_secret());
        let request = wire::CreateLinkSession {
            customer_user: wire::CustomerUser { id: &link.external_user_id },
            redirect_uri,
            institution_id: if existing_link_id.is_some() { None } else { link.institution_id.as_deref() },
            existing_link_id,
            // On every session: a reconnect left without one would remove the link's webhook.
            webhook: self.webhook_url.as_deref(),
            settings,
        };
        let body = serde_json::to_value(&request).map_err(|_| ProviderError::Protocol {
            detail: "moneykit.link_session: the request body did not serialize".to_owned(),
        })?;
        let created: wire::LinkSessionCreated =
            self.call(Route::LinkSession, self.url(&["link-session"], &[]), Method::PostJson(body)).await?;
        Ok(LinkStart { link_token: Some(created.link_session_token), hosted_link_url: None, upstream_state: None })
    }

    async fn submit_credentials(&self, _link: &LinkContext, _credentials: Credentials) -> ProviderResult<LinkStep> {
        Err(ProviderError::Unsupported("the credentials flow (MoneyKit links through Connect)"))
    }

    async fn answer_mfa(&self, _link: &LinkContext, _answer: SecretString) -> ProviderResult<LinkStep> {
        Err(ProviderError::Unsupported("MFA answers (MoneyKit Connect asks the user itself)"))
    }

    async fn poll_link(&self, _link: &LinkContext) -> ProviderResult<LinkStep> {
        // Connect hands its outcome to the caller's front end, never to linkgate.
        Ok(LinkProgress::Connecting.into())
    }

    async fn exchange_public_token(&self, public_token: &SecretString) -> ProviderResult<ExchangedConnection> {
        let body = serde_json::json!(wire::ExchangeToken { exchangeable_token: public_token.expose_secret() });
        let url = self.url(&["link-session", "exchange-token"], &[]);
        let exchanged: wire::Exchanged = self.call(Route::Exchange, url, Method::PostJson(body)).await?;
        let link = exchanged.link;
        let linked: Vec<Product> = phases(&link, PRODUCTS)
            .into_iter()
            .filter(|(_, phase)| *phase != ProductPhase::Unsupported)
            .map(|(product, _)| product)
            .collect();
        Ok(ExchangedConnection {
            handle: SecretString::from(link.link_id),
            institution_name: link.institution_name.unwrap_or_else(|| "MoneyKit institution".to_owned()),
            institution_id: link.institution_id.unwrap_or_default(),
            products: if linked.is_empty() { PRODUCTS.to_vec() } else { linked },
            // Webhooks name the link by its id, which is the handle.
            upstream_ref: None,
            webhook_url: link.webhook,
        })
    }

    async fn connection_status(&self, handle: &SecretString) -> ProviderResult<UpstreamStatus> {
        let link = match self.link(handle.expose_secret()).await {
            Ok(link) => link,
            Err(Failure::Refused(error)) if states::link_gone(&error.code) => return Ok(UpstreamStatus::Disconnected),
            Err(failure) => return Err(failure.into()),
        };
        let settled = phases(&link, PRODUCTS).iter().all(|(_, phase)| phase.is_settled());
        let (status, known) = states::link_status(&link.state, link.error_code.as_deref(), settled);
        if !known {
            tracing::warn!(
                provider = ID, link_state = %log_safe(&link.state),
                link_error = %log_safe(link.error_code.as_deref().unwrap_or("")), mapped = ?status,
                "unknown MoneyKit link state"
            );
        }
        Ok(status)
    }

    async fn fetch_data(
        &self,
        handle: &SecretString,
        connection_id: Uuid,
        products: &[Product],
        cursor: Option<&str>,
    ) -> ProviderResult<Fetched> {
        let link_id = handle.expose_secret();
        let answer: wire::Accounts =
            self.call(Route::Accounts, self.url(&["links", link_id, "accounts"], &[]), Method::Get).await?;
        // Data endpoints answer with whatever MoneyKit has cached: a product whose first import
        // is still running is not ready, not empty.
        let phases = phases(&answer.link, products);
        if phases.iter().any(|(_, phase)| !phase.is_settled()) {
            return Err(ProviderError::ProductNotReady);
        }
        let delivered = |product| phases.iter().any(|(p, phase)| *p == product && *phase == ProductPhase::Completed);
        let mut data = ConnectionData::default();
        // Unless transactions are read, the feed stays where it was.
        let mut next_cursor = cursor.map(str::to_owned);
        if delivered(Product::Accounts) {
            data.accounts = answer.accounts.iter().map(|a| account(connection_id, a)).collect();
        }
        if delivered(Product::Transactions) {
            let feed = self.transactions(link_id, cursor).await?;
            data.transactions = feed.transactions.into_iter().filter_map(|t| transaction(connection_id, t)).collect();
            data.transaction_delta = feed.removed.map(|removed| TransactionDelta {
                removed: removed.iter().map(|id| stable_id(connection_id, "transaction", id)).collect(),
            });
            next_cursor = feed.cursor;
        }
        if delivered(Product::Investments) {
            let url = self.url(&["links", link_id, "investments", "holdings"], &[]);
            let holdings: wire::Holdings = self.call(Route::Holdings, url, Method::Get).await?;
            let history = self.investment_transactions(link_id, holdings).await?;
            investments(connection_id, &answer.accounts, history, &mut data);
        }
        if delivered(Product::AccountNumbers) {
            let url = self.url(&["links", link_id, "accounts", "numbers"], &[]);
            let answer: wire::AccountNumbers = self.call(Route::AccountNumbers, url, Method::Get).await?;
            data.details.numbers = details::account_numbers(connection_id, answer);
        }
        if delivered(Product::Identity) {
            let url = self.url(&["links", link_id, "identity"], &[]);
            let answer: wire::Identity = self.call(Route::Identity, url, Method::Get).await?;
            data.details.owners = details::account_owners(connection_id, answer);
        }
        Ok(Fetched { data, cursor: next_cursor })
    }

    async fn refresh(&self, handle: &SecretString, products: &[Product]) -> ProviderResult<()> {
        let link_id = handle.expose_secret();
        let link = self.link(link_id).await?;
        // MoneyKit refuses refreshes of a link that is not connected (422 bad_state): say why
        // without asking.
        match states::link_status(&link.state, link.error_code.as_deref(), true).0 {
            UpstreamStatus::Ready => {}
            UpstreamStatus::Importing => return Ok(()),
            UpstreamStatus::LoginRequired | UpstreamStatus::Disconnected => return Err(ProviderError::LoginRequired),
            UpstreamStatus::Failed { .. } => return Err(ProviderError::Unavailable { retry_after: None }),
        }
        // Exactly the products asked for that the link delivers.
        let products: Vec<&'static str> = phases(&link, products)
            .into_iter()
            .filter(|(_, phase)| *phase != ProductPhase::Unsupported)
            .filter_map(|(product, _)| product_name(product))
            .collect();
        if products.is_empty() {
            return Ok(());
        }
        let body = serde_json::json!(wire::RefreshProducts { products });
        let url = self.url(&["links", link_id, "products"], &[]);
        self.send(Route::Refresh, url, &Method::PostJson(body)).await?;
        Ok(())
    }

    async fn delete_connection(&self, handle: &SecretString) -> ProviderResult<()> {
        let url = self.url(&["links", handle.expose_secret()], &[]);
        match self.send(Route::Delete, url, &Method::Delete).await {
            Ok(_) => Ok(()),
            // Already gone is what was asked.
            Err(Failure::Refused(error)) if states::link_gone(&error.code) => Ok(()),
            Err(failure) => Err(failure.into()),
        }
    }

    fn webhook_target(&self) -> WebhookTarget<'_> {
        WebhookTarget::PerConnection(self.webhook_url.as_deref())
    }

    async fn set_webhook_url(&self, handle: &SecretString, url: Option<&str>) -> ProviderResult<()> {
        let body = serde_json::json!(wire::UpdateLink { webhook: url });
        let url = self.url(&["links", handle.expose_secret()], &[]);
        self.send(Route::UpdateLink, url, &Method::PatchJson(body)).await?;
        Ok(())
    }

    fn webhooks(&self) -> Option<&dyn WebhookScheme> {
        Some(self)
    }
}

/// MoneyKit signs webhooks with an ES256 JWT in `MoneyKit-Signature` whose
/// `request_body_sha256` claim binds the body; keys are served as a JWKS that needs no token,
/// only `X-Client-Id`. Deliveries carry `webhook_idempotency_key`, the same across retries.
#[async_trait::async_trait]
impl WebhookScheme for MoneyKit {
    fn signature_header(&self) -> &'static str {
        "moneykit-signature"
    }

    fn body_hash_required(&self) -> bool {
        true
    }

    async fn signing_key(&self, kid: &str) -> ProviderResult<Option<Jwk>> {
        let (operation, retry) = Route::Jwks.spec();
        let request = UpstreamRequest::get(operation, self.url(&[".well-known", "jwks.json"], &[]))
            .template(Route::Jwks.template())
            .header(
                HeaderName::from_static("x-client-id"),
                HeaderValue::from_str(&self.client_id).map_err(|_| ProviderError::Protocol {
                    detail: "the MoneyKit client id is not a valid header value".to_owned(),
                })?,
            )
            .retry(retry);
        let reply = self.upstream.send(request).await?;
        if !reply.is_success() {
            return Err(states::classify(&api_error(operation, &reply)));
        }
        let keys: wire::Jwks = reply.json()?;
        Ok(keys.keys.into_iter().find(|key| key.kid.as_deref() == Some(kid)))
    }

    fn read(&self, body: &[u8]) -> ProviderResult<WebhookNotice> {
        let delivery: wire::Webhook = super::upstream_client::parse_json("moneykit.webhook", body)?;
        Ok(WebhookNotice {
            idempotency_key: Some(delivery.webhook_idempotency_key),
            event: log_safe(&delivery.webhook_event).to_owned(),
            upstream_ref: delivery.link_id.map(SecretString::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_follow_moneykit_conventions() {
        let connection_id = Uuid::now_v7();
        let card: wire::Account = serde_json::from_str(
            r#"{"account_id": "acc_2", "account_type": "liability.credit_card", "name": "Card",
                "balances": {"currency": "usd", "current": 250.75, "limit": 5000}}"#,
        )
        .unwrap();
        let card = account(connection_id, &card);
        assert_eq!(card.kind, AccountType::CreditCard);
        assert_eq!(card.current.unwrap().amount_text(), "-250.75", "owed is negative");
        assert_eq!(card.limit.unwrap().amount_text(), "5000.00", "a limit keeps its sign");
        assert_eq!(card.currency, "USD");
        let debit: wire::Transaction = serde_json::from_str(
            r#"{"transaction_id": "t1", "account_id": "acc_1", "amount": "4.50", "type": "debit",
                "currency": "USD", "date": "2025-01-02"}"#,
        )
        .unwrap();
        assert_eq!(transaction(connection_id, debit).unwrap().amount.amount_text(), "-4.50");
        let odd: wire::Transaction = serde_json::from_str(
            r#"{"transaction_id": "t2", "account_id": "acc_1", "amount": "1", "type": "sideways",
                "currency": "USD", "date": "2025-01-02"}"#,
        )
        .unwrap();
        assert!(transaction(connection_id, odd).is_none(), "an unknown direction is left out");
        assert_eq!(portfolio_transaction_type("cash.dividend", true), PortfolioTransactionType::Dividend);
        assert_eq!(portfolio_transaction_type("buy.buy_to_cover", false), PortfolioTransactionType::Buy);
        assert_eq!(portfolio_transaction_type("transfer", false), PortfolioTransactionType::Withdrawal);
    }
}

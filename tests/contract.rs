//! The provider contract: one set of checks every adapter behind `linkgate::providers::Provider`
//! must pass, run against each adapter in turn (the in-process sandbox, and Deck, Vumi and
//! MoneyKit against their in-process mocks).
//!
//! linkgate's link, sync and store code is written once for every provider, so it relies on
//! promises the trait only states in prose: a garbage or spent public token is
//! `InvalidPublicToken` (the API maps it to a caller error, anything else to an upstream
//! failure); a connection settles to `Ready`; fetching is deterministic, with ids that stay the
//! same across refreshes and are the connection's own; each product delivers its own part of the
//! data; amounts are exact decimals; transactions, statements and account details point at
//! accounts that exist (callers list them by account); deleting is idempotent (a retried
//! DeleteConnection must not fail); and no secret (account numbers and owners included) reaches
//! the logs. The end-to-end tests of each provider prove its own
//! flow through the gRPC API; this file proves the adapters agree with each other, talking to
//! them directly (no server, no PostgreSQL), so a new adapter gets the whole contract by
//! implementing [`ContractSubject`] once.
//!
//! Where an adapter documents a different behaviour (Vumi lists no institutions, the stateless
//! sandbox cannot refuse a spent token or forget a deleted connection), its subject says so in
//! one constant and the contract asserts the documented behaviour instead.

#[path = "support/mod.rs"]
mod support;

use linkgate::config::ProviderSettings;
use linkgate::crypto::Sealer;
use linkgate::domain::{AccountDetails, ConnectionData, Decimal, LinkFlow, Money, OwnersOf, Product, now};
use linkgate::providers::deck::Deck;
use linkgate::providers::moneykit::MoneyKit;
use linkgate::providers::sandbox::{Ledger, Sandbox};
use linkgate::providers::session::SharedSessions;
use linkgate::providers::vumi::Vumi;
use linkgate::providers::{
    self, Credentials, LinkContext, LinkProgress, LinkStep, Provider, ProviderError, Registry, UpstreamStatus,
};
use linkgate::store::Store;
use linkgate_mocks::MockServer;
use linkgate_mocks::deck::DeckMockOptions;
use linkgate_mocks::moneykit::MoneyKitMockOptions;
use linkgate_mocks::vumi::VumiMockOptions;
use secrecy::{ExposeSecret, SecretString};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::database::{Backend, TestDatabase};
use support::server::{QUICK, SECRET, provider_flags};
use tokio::time::Instant;
use uuid::Uuid;

/// How long any wait may take before the contract fails: far above the mocks' delays, so only
/// a connection or link that never settles trips it.
const PATIENCE: Duration = Duration::from_secs(10);
/// Polling as fast as this keeps the file quick while still going through `Importing`.
const POLL_INTERVAL: &str = "50ms";
/// How long the mocks keep a connection importing: long enough that the status loop sees
/// `Importing` at least once, short enough for a fast file.
const IMPORT_DELAY: Duration = Duration::from_millis(300);
/// The most fractional digits an exact amount has (crypto-style unit prices use 8); a float
/// pushed through a decimal shows 15 or more (`0.30000000000000004`).
const MAX_SCALE: u32 = 8;
/// Public tokens no provider issued: unknown, malformed (the sandbox's shape with a bad nonce)
/// and ones that would change the path of a provider that puts tokens in URLs. Not the empty
/// token: the API refuses it as a missing field before any adapter sees it.
const GARBAGE_TOKENS: &[&str] = &[
    "no-such-public-token-7f3c",
    "public-sandbox-ins_sandbox_bank-nothex",
    "../../queries/connections/pending",
    "a b?c#d",
    ".",
    "..",
];

/// One provider under contract: how to reach its upstream and how to link through it. Everything
/// provider-specific lives in the implementations of this trait; the checks are generic.
trait ContractSubject {
    /// The id the registry offers the provider under.
    const ID: &'static str;
    /// The institution the link flow connects.
    const INSTITUTION: &'static str;
    /// Whether the adapter itself refuses a public token exchanged before.
    const SINGLE_USE_TOKENS: bool = true;
    /// What `connection_status` answers about a deleted connection.
    const AFTER_DELETE: UpstreamStatus = UpstreamStatus::Disconnected;
    /// Whether `Ready` means the data can be fetched at once, as `UpstreamStatus::Ready` says.
    const READY_MEANS_DATA: bool = true;

    /// Starts the provider's upstream (its mock), configured to settle quickly.
    async fn start() -> Self;

    /// The mock standing in for the upstream, when there is one.
    fn mock(&self) -> Option<&MockServer>;

    /// `linkgate serve` flags that point the adapter at the upstream.
    fn flags(&self) -> Vec<(String, String)>;

    /// The adapter, built the way the registry builds it from `settings`.
    fn build(
        settings: &ProviderSettings,
        store: &Arc<dyn Store>,
        sessions: &SharedSessions,
    ) -> Option<Arc<dyn Provider>>;

    /// A fresh public token from the provider's own link flow for [`Self::INSTITUTION`].
    async fn public_token(&self, provider: &dyn Provider) -> SecretString;
}

/// The built-in sandbox: no upstream, everything travels in its tokens.
struct SandboxSubject;

impl ContractSubject for SandboxSubject {
    const ID: &'static str = providers::sandbox::ID;
    const INSTITUTION: &'static str = providers::sandbox::BANK;
    // Stateless by design (its module doc): nothing remembers that a token was spent, so a
    // second exchange issues a second handle; linkgate's store is what makes tokens single use.
    const SINGLE_USE_TOKENS: bool = false;
    // Stateless as well: deleting only validates the handle, which stays as valid as before.
    const AFTER_DELETE: UpstreamStatus = UpstreamStatus::Ready;

    async fn start() -> Self {
        Self
    }

    fn mock(&self) -> Option<&MockServer> {
        None
    }

    fn flags(&self) -> Vec<(String, String)> {
        let import_delay = format!("{}ms", IMPORT_DELAY.as_millis());
        flags(&[("--sandbox-import-delay", &import_delay), ("--sandbox-poll-interval", POLL_INTERVAL)])
    }

    fn build(
        settings: &ProviderSettings,
        store: &Arc<dyn Store>,
        _sessions: &SharedSessions,
    ) -> Option<Arc<dyn Provider>> {
        let ledger = Ledger::new(store.clone());
        settings.sandbox.enabled.then(|| Arc::new(Sandbox::new(settings.sandbox.clone(), ledger)) as Arc<dyn Provider>)
    }

    async fn public_token(&self, provider: &dyn Provider) -> SecretString {
        link_with_credentials(provider, Self::INSTITUTION).await
    }
}

/// Deck's legacy API, played by its mock.
struct DeckSubject {
    mock: MockServer,
}

impl ContractSubject for DeckSubject {
    const ID: &'static str = providers::deck::ID;
    const INSTITUTION: &'static str = linkgate_mocks::deck::NATIONAL_GRID;
    // D12 says `Connected` while Deck still extracts the data; only D20 tells when it is there
    // (the adapter's module doc, "Readiness"), answering `ProductNotReady` until then.
    const READY_MEANS_DATA: bool = false;

    async fn start() -> Self {
        // A non-zero extraction delay exercises the `ProductNotReady` answers after `Ready`.
        let options = DeckMockOptions {
            connect_delay: Duration::from_millis(100),
            extraction_delay: IMPORT_DELAY,
            ..DeckMockOptions::default()
        };
        Self { mock: linkgate_mocks::deck::spawn(localhost(), options).await.expect("the Deck mock binds") }
    }

    fn mock(&self) -> Option<&MockServer> {
        Some(&self.mock)
    }

    fn flags(&self) -> Vec<(String, String)> {
        upstream_flags(Self::ID, &self.mock)
    }

    fn build(
        settings: &ProviderSettings,
        _store: &Arc<dyn Store>,
        _sessions: &SharedSessions,
    ) -> Option<Arc<dyn Provider>> {
        Deck::from_settings(&settings.deck).map(|deck| Arc::new(deck) as Arc<dyn Provider>)
    }

    async fn public_token(&self, provider: &dyn Provider) -> SecretString {
        link_with_credentials(provider, Self::INSTITUTION).await
    }
}

/// Vumi Finlink, played by its mock.
struct VumiSubject {
    mock: MockServer,
}

impl ContractSubject for VumiSubject {
    const ID: &'static str = providers::vumi::ID;
    const INSTITUTION: &'static str = "santander";

    async fn start() -> Self {
        let options = VumiMockOptions { import_delay: IMPORT_DELAY, ..VumiMockOptions::default() };
        Self { mock: linkgate_mocks::vumi::spawn(localhost(), options).await.expect("the Vumi mock binds") }
    }

    fn mock(&self) -> Option<&MockServer> {
        Some(&self.mock)
    }

    fn flags(&self) -> Vec<(String, String)> {
        let mut flags = upstream_flags(Self::ID, &self.mock);
        flags.push(("--vumi-redirect-id".to_owned(), "0b6f3c1e-9a2d-4c5b-8e7f-112233445566".to_owned()));
        flags
    }

    fn build(
        settings: &ProviderSettings,
        _store: &Arc<dyn Store>,
        sessions: &SharedSessions,
    ) -> Option<Arc<dyn Provider>> {
        Vumi::from_settings(&settings.vumi, sessions.clone()).map(|vumi| Arc::new(vumi) as Arc<dyn Provider>)
    }

    async fn public_token(&self, provider: &dyn Provider) -> SecretString {
        let mut link = link_context(LinkFlow::Hosted, Self::INSTITUTION);
        link.link_token = provider.start_link(&link).await.expect("the widget starts").link_token;
        assert!(link.link_token.is_some(), "the widget needs its start token");
        // The user completes the widget, which Vumi tags with the link session's id.
        let widget = serde_json::json!({"externalId": link.link_session_id.to_string(), "entity": Self::INSTITUTION});
        admin_post(&self.mock, "connect", widget).await;
        let step = provider.poll_link(&link).await.expect("the pending token is found");
        settle(provider, link, step).await
    }
}

/// MoneyKit, played by its mock.
struct MoneyKitSubject {
    mock: MockServer,
}

impl ContractSubject for MoneyKitSubject {
    const ID: &'static str = providers::moneykit::ID;
    const INSTITUTION: &'static str = linkgate_mocks::moneykit::CHASE;

    async fn start() -> Self {
        let options = MoneyKitMockOptions { import_delay: IMPORT_DELAY, ..MoneyKitMockOptions::default() };
        Self { mock: linkgate_mocks::moneykit::spawn(localhost(), options).await.expect("the MoneyKit mock binds") }
    }

    fn mock(&self) -> Option<&MockServer> {
        Some(&self.mock)
    }

    fn flags(&self) -> Vec<(String, String)> {
        upstream_flags(Self::ID, &self.mock)
    }

    fn build(
        settings: &ProviderSettings,
        _store: &Arc<dyn Store>,
        _sessions: &SharedSessions,
    ) -> Option<Arc<dyn Provider>> {
        MoneyKit::from_settings(&settings.moneykit, settings.public_webhook_url.as_ref())
            .map(|moneykit| Arc::new(moneykit) as Arc<dyn Provider>)
    }

    async fn public_token(&self, provider: &dyn Provider) -> SecretString {
        let mut link = link_context(LinkFlow::Hosted, Self::INSTITUTION);
        // Identity and account numbers are linked only when asked for: ask for every product.
        link.products = provider.info().products.to_vec();
        let started = provider.start_link(&link).await.expect("the link session starts");
        // Connect hands its outcome to the caller's front end, never to linkgate (`poll_link`
        // stays `Connecting`): the exchangeable token comes from the widget itself.
        let answer = admin_post(&self.mock, "connect", serde_json::json!({"link_session_token": started.link_token}))
            .await
            .json::<serde_json::Value>()
            .await
            .expect("Connect answers JSON");
        SecretString::from(answer["exchangeable_token"].as_str().expect("an exchangeable token").to_owned())
    }
}

/// One test per provider, each running the whole contract in its own process (nextest), so each
/// owns its log capture.
macro_rules! contract {
    ($($provider:ident: $subject:ty),* $(,)?) => {
        $(
            mod $provider {
                #[tokio::test]
                async fn keeps_the_provider_contract() {
                    super::contract::<$subject>().await;
                }
            }
        )*
    };
}

contract! {
    sandbox: super::SandboxSubject,
    deck: super::DeckSubject,
    vumi: super::VumiSubject,
    moneykit: super::MoneyKitSubject,
}

/// The whole contract, in the order linkgate uses a provider: describe, list, link, exchange,
/// wait, fetch, delete; then the logs of all of it.
async fn contract<S: ContractSubject>() {
    let logs = support::logs::capture_logs();
    // Only the admin client needs a process-wide provider; linkgate's own client brings ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let subject = S::start().await;
    let flags = subject.flags();
    let flags: Vec<(&str, &str)> = flags.iter().map(|(flag, value)| (flag.as_str(), value.as_str())).collect();
    let settings = support::server::serve_settings(&flags).providers;
    // Vumi keeps its upstream session in the store, as every replica shares it.
    let database = TestDatabase::create(Backend::Sqlite).await;
    let store = linkgate::store::open(&database.url, 2, false).await.expect("the store opens");
    let sessions = SharedSessions::new(store.clone(), Sealer::from_keys(&[[7; 32]]), "contract");
    let provider = S::build(&settings, &store, &sessions).expect("the adapter is offered with the mock's credentials");
    let provider = provider.as_ref();

    info_is_sane::<S>(provider, &Registry::from_settings(&settings, store.clone(), &sessions));
    institutions_answer::<S>(provider).await;
    garbage_tokens_are_invalid(provider).await;
    // A refused token is still a caller's secret (an expired or mistyped real one): error paths
    // are where one would be logged. (`.` and `..` are too short to find in a log.)
    let mut secrets: Vec<String> = std::iter::once(SECRET)
        .chain(GARBAGE_TOKENS.iter().copied().filter(|token| token.len() > 2))
        .map(str::to_owned)
        .collect();
    let (handle, products) = exchange_is_single_use(&subject, provider, &mut secrets).await;
    connection_becomes_ready(provider, &handle).await;
    let data = data_is_stable_and_exact::<S>(provider, &handle, &products).await;
    secrets.extend(detail_values(&data.details));
    deletion_is_idempotent::<S>(provider, &handle).await;
    if let Some(mock) = subject.mock() {
        secrets.extend(issued_tokens(mock).await);
    }
    no_secret_in_logs(&logs, subject.mock().is_some(), &secrets);
}

/// Check 1: what the provider says of itself is what the registry offers, and usable for
/// scheduling.
fn info_is_sane<S: ContractSubject>(provider: &dyn Provider, registry: &Registry) {
    let info = provider.info();
    assert_eq!(info.id, S::ID, "the adapter's id");
    let registered = registry.get(S::ID).expect("the registry offers the provider under its id").info();
    assert_eq!(registered.id, info.id, "the registry's adapter has the same id");
    assert_eq!((registered.flows, registered.products), (info.flows, info.products), "the registry's adapter");
    assert!(!info.display_name.is_empty(), "a display name");
    assert!(!info.flows.is_empty(), "at least one flow (the first is the default)");
    assert!(!info.products.is_empty(), "at least one product");
    assert_eq!(info.products.iter().collect::<HashSet<_>>().len(), info.products.len(), "products listed once");
    // Zero would make the sync engine spin on the provider.
    assert!(!info.poll_interval.is_zero(), "a poll interval");
    assert!(!info.refresh_interval.is_zero(), "a refresh interval");
}

/// Check 2: the catalogue answers, each listed institution is found again by id, and a search
/// answers the listed institutions whose names contain it.
async fn institutions_answer<S: ContractSubject>(provider: &dyn Provider) {
    let info = provider.info();
    let listed = provider.institutions("").await.expect("institutions answer");
    assert!(!listed.is_empty(), "institutions listed");
    assert!(listed.is_sorted_by(|a, b| (&a.name, &a.id) <= (&b.name, &b.id)), "ordered by name: {listed:?}");
    let ids: HashSet<&str> = listed.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids.len(), listed.len(), "ids listed once");
    assert!(ids.contains(S::INSTITUTION), "the linked institution is listed");
    for institution in &listed {
        let found = provider.institution(&institution.id).await.expect("an institution lookup answers");
        assert_eq!(found.as_ref(), Some(institution), "looked up by id, as listed");
        assert!(!institution.products.is_empty(), "{} offers products", institution.id);
        assert!(
            institution.products.iter().all(|p| info.products.contains(p)),
            "{} offers only {info:?}",
            institution.id
        );
    }
    let linked = provider.institution(S::INSTITUTION).await.expect("an institution lookup answers");
    assert_eq!(linked.map(|i| i.id).as_deref(), Some(S::INSTITUTION), "the linked institution is known");
    let unknown = provider.institution("no-such-institution").await.expect("an unknown institution is an answer");
    assert!(unknown.is_none(), "an unknown institution: {unknown:?}");
    for steps in [".", ".."] {
        let found = provider.institution(steps).await.expect("a path-like id is an answer, not a failure");
        assert!(found.is_none(), "{steps:?} names no institution");
    }

    let wanted = listed.iter().find(|i| i.name.chars().count() >= 5).expect("an institution with a longer name");
    let term: String = wanted.name.chars().skip(1).take(4).collect::<String>().to_uppercase();
    let found = provider.institutions(&term).await.expect("a search answers");
    assert!(found.contains(wanted), "searching {term:?} finds {}", wanted.name);
    let term = term.to_lowercase();
    assert!(found.iter().all(|i| i.name.to_lowercase().contains(&term)), "only names containing {term:?}: {found:?}");
    assert!(found.is_sorted_by(|a, b| (&a.name, &a.id) <= (&b.name, &b.id)), "ordered by name: {found:?}");
    let none = provider.institutions("zzzz-no-such-name").await.expect("a search answers");
    assert!(none.is_empty(), "nothing is named so: {none:?}");
}

/// Check 3: a token the provider never issued is the caller's mistake, not an upstream failure.
async fn garbage_tokens_are_invalid(provider: &dyn Provider) {
    for token in GARBAGE_TOKENS {
        match provider.exchange_public_token(&SecretString::from(*token)).await {
            Err(ProviderError::InvalidPublicToken) => {}
            other => panic!("exchanging {token:?}: expected InvalidPublicToken, got {other:?}"),
        }
    }
}

/// Check 4: a fresh token exchanges once for a handle to the linked institution, with products
/// the provider offers. Returns the handle and those products; records both secrets.
async fn exchange_is_single_use<S: ContractSubject>(
    subject: &S,
    provider: &dyn Provider,
    secrets: &mut Vec<String>,
) -> (SecretString, Vec<Product>) {
    let public_token = subject.public_token(provider).await;
    secrets.push(public_token.expose_secret().to_owned());
    let exchanged = provider.exchange_public_token(&public_token).await.expect("a fresh public token exchanges");
    secrets.push(exchanged.handle.expose_secret().to_owned());
    assert_eq!(exchanged.institution_id, S::INSTITUTION, "the linked institution");
    assert!(!exchanged.institution_name.is_empty(), "the institution is named");
    let offered = provider.info().products;
    assert!(!exchanged.products.is_empty(), "products linked");
    assert!(exchanged.products.iter().all(|p| offered.contains(p)), "{:?} ⊆ {offered:?}", exchanged.products);
    let again = provider.exchange_public_token(&public_token).await;
    if S::SINGLE_USE_TOKENS {
        assert!(matches!(again, Err(ProviderError::InvalidPublicToken)), "a spent token: {again:?}");
    } else {
        let again = again.expect("the stateless sandbox exchanges a token again");
        secrets.push(again.handle.expose_secret().to_owned());
        assert_ne!(again.handle.expose_secret(), exchanged.handle.expose_secret(), "a second connection");
    }
    (exchanged.handle, exchanged.products)
}

/// Check 5: the first import finishes: `Importing` until `Ready`, and nothing else on the way.
async fn connection_becomes_ready(provider: &dyn Provider, handle: &SecretString) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match provider.connection_status(handle).await.expect("the status answers") {
            UpstreamStatus::Ready => return,
            UpstreamStatus::Importing => {}
            other => panic!("an importing connection became {other:?}"),
        }
        assert!(Instant::now() < deadline, "the connection never became ready");
        tokio::time::sleep(provider.info().poll_interval).await;
    }
}

/// Check 6: data is delivered for every linked product, identical when fetched again (also when
/// read from the cursor of a provider's change feed), with ids of its own connection only, exact
/// amounts and references that resolve. Returns the data.
async fn data_is_stable_and_exact<S: ContractSubject>(
    provider: &dyn Provider,
    handle: &SecretString,
    products: &[Product],
) -> ConnectionData {
    let connection_id = Uuid::now_v7();
    let patience = if S::READY_MEANS_DATA { Duration::ZERO } else { PATIENCE };
    let data = fetch(provider, handle, connection_id, products, patience).await;
    // Data once there stays there: no more waiting.
    let again = fetch(provider, handle, connection_id, products, Duration::ZERO).await;
    assert_eq!(data, again, "fetching twice yields the same data");
    // A provider with a change feed hands out a cursor: read from it with nothing changed
    // upstream, it serves a delta that leaves the data as it was, and a cursor to go on from.
    let whole = provider.fetch_data(handle, connection_id, products, None).await.expect("a whole fetch");
    if let Some(cursor) = whole.cursor.as_deref() {
        let next = provider.fetch_data(handle, connection_id, products, Some(cursor)).await.expect("a fetch from it");
        assert!(next.cursor.is_some(), "the feed goes on from a cursor");
        assert_eq!(sorted(applied(&whole.data, next.data)), sorted(whole.data), "a delta of nothing changes nothing");
    }
    for &product in products {
        assert_ne!(only(&data, product), ConnectionData::default(), "{product:?} is linked but delivered nothing");
        // Products are fetched on their own too (a session may link fewer than the provider
        // offers): each delivers exactly its part of the whole, nothing of the others.
        let alone = fetch(provider, handle, connection_id, &[product], Duration::ZERO).await;
        assert_eq!(alone, only(&data, product), "{product:?} fetched alone");
    }

    let own = ids(&data);
    assert_eq!(own.iter().collect::<HashSet<_>>().len(), own.len(), "every object has an id of its own");
    let elsewhere: HashSet<Uuid> =
        ids(&fetch(provider, handle, Uuid::now_v7(), products, Duration::ZERO).await).into_iter().collect();
    assert!(own.iter().all(|id| !elsewhere.contains(id)), "ids are seeded by the connection id");

    let accounts: HashSet<Uuid> = data.accounts.iter().map(|a| a.id).collect();
    let portfolios: HashSet<Uuid> = data.portfolios.iter().map(|p| p.id).collect();
    assert!(data.transactions.iter().all(|t| accounts.contains(&t.account_id)), "transactions name known accounts");
    assert!(data.statements.iter().all(|s| accounts.contains(&s.account_id)), "statements name known accounts");
    assert!(
        data.portfolios.iter().filter_map(|p| p.cash_account_id).all(|id| accounts.contains(&id)),
        "portfolios name known cash accounts"
    );
    assert!(data.positions.iter().all(|p| portfolios.contains(&p.portfolio_id)), "positions name known portfolios");
    assert!(
        data.portfolio_transactions.iter().all(|t| portfolios.contains(&t.portfolio_id)),
        "portfolio transactions name known portfolios"
    );
    // Details name accounts and portfolios of their connection (listed when those are linked).
    let with_accounts = products.contains(&Product::Accounts);
    let with_portfolios = products.contains(&Product::Investments);
    assert!(
        !with_accounts || data.details.numbers.iter().all(|n| accounts.contains(&n.account_id)),
        "account numbers name known accounts"
    );
    assert!(
        data.details.owners.iter().all(|o| match o.of {
            OwnersOf::Account(id) => !with_accounts || accounts.contains(&id),
            OwnersOf::Portfolio(id) => !with_portfolios || portfolios.contains(&id),
        }),
        "owners name known accounts and portfolios"
    );
    for account in &data.accounts {
        assert!(is_currency(&account.currency), "account currency {:?}", account.currency);
    }
    for money in amounts(&data) {
        assert_exact(money);
    }
    data
}

/// The account details' values distinctive enough to look for in logs: account numbers, IBANs,
/// names, emails, phone numbers and streets (not 3-digit institution numbers, which any text
/// may hold).
fn detail_values(details: &AccountDetails) -> Vec<String> {
    let numbers = details.numbers.iter().flat_map(|n| {
        (n.ach.iter().map(|a| a.account_number.clone()))
            .chain(n.eft.iter().map(|e| e.account_number.clone()))
            .chain(n.bacs.iter().map(|b| b.account_number.clone()))
            .chain(n.international.iter().map(|i| i.iban.clone()))
    });
    let owners = details.owners.iter().flat_map(|o| &o.owners).flat_map(|owner| {
        (owner.names.iter().cloned())
            .chain(owner.emails.iter().map(|e| e.address.clone()))
            .chain(owner.phone_numbers.iter().map(|p| p.number.clone()))
            .chain(owner.addresses.iter().filter_map(|a| a.street.clone()))
    });
    numbers.chain(owners).filter(|value| value.len() >= 8).collect()
}

/// Check 7: deleting succeeds, and again (a retried DeleteConnection must not fail); the
/// provider then reports the connection gone.
async fn deletion_is_idempotent<S: ContractSubject>(provider: &dyn Provider, handle: &SecretString) {
    provider.delete_connection(handle).await.expect("the connection is deleted");
    provider.delete_connection(handle).await.expect("deleting again succeeds");
    let status = provider.connection_status(handle).await.expect("a deleted connection's status answers");
    assert_eq!(status, S::AFTER_DELETE, "status after deletion");
}

/// Check 8: nothing secret reached linkgate's logs during the whole run. The mocks play
/// providers that know every token, so only linkgate's own lines count.
fn no_secret_in_logs(logs: &Mutex<Vec<u8>>, upstream: bool, secrets: &[String]) {
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let text: Vec<&str> = text.lines().filter(|line| !line.contains(" linkgate_mocks")).collect();
    let text = text.join("\n");
    if upstream {
        // Proves the capture saw the adapter at work, so a clean log is evidence.
        assert!(text.contains("upstream call"), "upstream calls are logged");
    }
    for secret in secrets {
        // An empty "secret" would be found in any text and mean the check lost its subject.
        assert!(!secret.is_empty(), "a secret to look for is empty");
        let line = text.lines().find(|line| line.contains(secret.as_str()));
        assert!(line.is_none(), "a secret appears in the logs: {line:?}");
    }
}

/// The link flow of providers that take credentials (sandbox and Deck script the same user).
async fn link_with_credentials(provider: &dyn Provider, institution: &str) -> SecretString {
    let mut link = link_context(LinkFlow::Credentials, institution);
    link.link_token = provider.start_link(&link).await.expect("the link starts").link_token;
    let credentials = Credentials(BTreeMap::from([
        ("username".to_owned(), SecretString::from("user_good")),
        ("password".to_owned(), SecretString::from(linkgate_mocks::deck::GOOD_PASSWORD)),
    ]));
    let step = provider.submit_credentials(&link, credentials).await.expect("the credentials are forwarded");
    settle(provider, link, step).await
}

/// Polls a link attempt, remembering what the provider asks to be remembered as linkgate does,
/// until it succeeds; its public token.
async fn settle(provider: &dyn Provider, mut link: LinkContext, mut step: LinkStep) -> SecretString {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if step.upstream_state.is_some() {
            link.upstream_state = step.upstream_state;
        }
        match step.progress {
            LinkProgress::Succeeded { public_token, institution_id, expires_at } => {
                assert_eq!(Some(institution_id), link.institution_id, "the token is for the chosen institution");
                assert!(expires_at > now(), "the token is still exchangeable");
                return public_token;
            }
            LinkProgress::Connecting => {}
            other => panic!("the link attempt did not succeed: {other:?}"),
        }
        assert!(Instant::now() < deadline, "the link attempt never settled");
        tokio::time::sleep(provider.info().poll_interval).await;
        step = provider.poll_link(&link).await.expect("the link attempt's progress answers");
    }
}

/// A new link session as linkgate would describe it to a provider.
fn link_context(flow: LinkFlow, institution: &str) -> LinkContext {
    LinkContext {
        link_session_id: Uuid::now_v7(),
        institution_id: Some(institution.to_owned()),
        external_user_id: "contract-user".to_owned(),
        flow,
        products: Vec::new(),
        redirect_uri: Some("https://app.example/linked".to_owned()),
        created_at: now(),
        link_token: None,
        upstream_state: None,
        repair: None,
    }
}

/// Fetches data, waiting out `ProductNotReady` (which the trait documents as "not a failure")
/// for up to `patience`.
async fn fetch(
    provider: &dyn Provider,
    handle: &SecretString,
    connection_id: Uuid,
    products: &[Product],
    patience: Duration,
) -> ConnectionData {
    let deadline = Instant::now() + patience;
    loop {
        match provider.fetch_data(handle, connection_id, products, None).await {
            Ok(fetched) => return fetched.data,
            Err(ProviderError::ProductNotReady) => {}
            Err(error) => panic!("fetching data failed: {error:?}"),
        }
        assert!(Instant::now() < deadline, "the data was not ready {patience:?} after the connection was");
        tokio::time::sleep(provider.info().poll_interval).await;
    }
}

/// What `product` contributes to `data`.
fn only(data: &ConnectionData, product: Product) -> ConnectionData {
    let mut part: ConnectionData = ConnectionData::default();
    match product {
        Product::Accounts => part.accounts.clone_from(&data.accounts),
        Product::Transactions => part.transactions.clone_from(&data.transactions),
        Product::Investments => {
            part.portfolios.clone_from(&data.portfolios);
            part.positions.clone_from(&data.positions);
            part.portfolio_transactions.clone_from(&data.portfolio_transactions);
        }
        Product::Statements => part.statements.clone_from(&data.statements),
        Product::Identity => part.details.owners.clone_from(&data.details.owners),
        Product::AccountNumbers => part.details.numbers.clone_from(&data.details.numbers),
    }
    part
}

/// `next` stored over `base`: a transaction delta keeps the booked transactions it does not
/// mention and drops those it removes and every pending one it does not serve again.
fn applied(base: &ConnectionData, mut next: ConnectionData) -> ConnectionData {
    if let Some(delta) = next.transaction_delta.take() {
        let kept = base.transactions.iter().filter(|t| !t.pending && !delta.removed.contains(&t.id));
        let served: HashSet<Uuid> = next.transactions.iter().map(|t| t.id).collect();
        next.transactions.extend(kept.filter(|t| !served.contains(&t.id)).cloned());
    }
    next
}

/// `data` with its transactions ordered by id.
fn sorted(mut data: ConnectionData) -> ConnectionData {
    data.transactions.sort_by_key(|t| t.id);
    data
}

/// Every object id in `data`, in order.
fn ids(data: &ConnectionData) -> Vec<Uuid> {
    (data.accounts.iter().map(|a| a.id))
        .chain(data.transactions.iter().map(|t| t.id))
        .chain(data.portfolios.iter().map(|p| p.id))
        .chain(data.positions.iter().map(|p| p.id))
        .chain(data.portfolio_transactions.iter().map(|t| t.id))
        .chain(data.statements.iter().map(|s| s.id))
        .collect()
}

/// Every amount of money in `data`.
fn amounts(data: &ConnectionData) -> Vec<&Money> {
    let accounts = data.accounts.iter().flat_map(|a| [&a.current, &a.available, &a.limit]).flatten();
    let positions = data.positions.iter().flat_map(|p| [Some(&p.price), Some(&p.market_value), p.cost_basis.as_ref()]);
    let trades = data.portfolio_transactions.iter().flat_map(|t| [t.price.as_ref(), Some(&t.amount)]);
    accounts
        .chain(data.transactions.iter().map(|t| &t.amount))
        .chain(data.portfolios.iter().map(|p| &p.value))
        .chain(positions.chain(trades).flatten())
        .chain(data.statements.iter().map(|s| &s.total_due))
        .collect()
}

/// An amount is an exact decimal: it travels as a decimal string that reads back to itself, and
/// carries no float artefact.
fn assert_exact(money: &Money) {
    let wire = serde_json::to_value(money).expect("money serializes");
    let text = wire["amount"].as_str().unwrap_or_else(|| panic!("the amount travels as a string: {wire}"));
    assert_eq!(Decimal::from_str(text).ok(), Some(money.amount), "{text} reads back exactly");
    assert!(money.amount.normalize().scale() <= MAX_SCALE, "{text} looks like a float artefact");
    assert!(is_currency(&money.currency), "currency {:?} of {text}", money.currency);
}

/// An ISO 4217 code: three upper-case letters.
fn is_currency(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// Flags from pairs.
fn flags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(flag, value)| ((*flag).to_owned(), (*value).to_owned())).collect()
}

/// The flags that point an HTTP adapter at `mock` with the mock's credentials and quick timings.
fn upstream_flags(id: &str, mock: &MockServer) -> Vec<(String, String)> {
    provider_flags(id, &mock.base_url(), SECRET, &QUICK, POLL_INTERVAL)
}

/// A free port on the loopback interface.
fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Calls a mock's admin API.
async fn admin_post(mock: &MockServer, path: &str, body: serde_json::Value) -> reqwest::Response {
    let url = format!("{}/{path}", mock.admin_url());
    let response = reqwest::Client::new().post(url).json(&body).send().await.expect("the mock's admin API answers");
    assert!(response.status().is_success(), "admin {path} accepted {body}");
    response
}

/// Every token the mock issued, whatever its kind: each mock's `/__admin/tokens` lists them.
async fn issued_tokens(mock: &MockServer) -> Vec<String> {
    fn strings(value: serde_json::Value, into: &mut Vec<String>) {
        match value {
            serde_json::Value::String(text) => into.push(text),
            serde_json::Value::Array(items) => items.into_iter().for_each(|item| strings(item, into)),
            serde_json::Value::Object(fields) => fields.into_iter().for_each(|(_, item)| strings(item, into)),
            _ => {}
        }
    }
    let url = format!("{}/tokens", mock.admin_url());
    let tokens = reqwest::Client::new().get(url).send().await.expect("the mock's admin API answers");
    let mut issued = Vec::new();
    strings(tokens.json().await.expect("tokens as JSON"), &mut issued);
    assert!(!issued.is_empty(), "the mock issued tokens");
    issued
}

//! The store conformance suite: what every `Store` backend must do, written once. Every case runs
//! on both backends: on SQLite (a file in a temporary directory) and on PostgreSQL (a fresh
//! database per test on `LINKGATE_TEST_POSTGRES_URL`, dropped afterwards even when the test
//! panics). `conformance!` expands each case into a `sqlite` and a `postgres` test, so a failure
//! names its backend.
//!
//! This file holds the backends and the fixtures; the cases sit in one module per concern of the
//! store, as `src/store/` splits it.

use chrono::{Duration, NaiveDate};
use linkgate::domain::ErrorReason;
use linkgate::domain::{
    Account, AccountType, AssetType, Connection, ConnectionData, ConnectionError, ConnectionEvent, ConnectionEventType,
    ConnectionState, Date, Decimal, Instrument, LinkFlow, LinkSession, LinkSessionState, Money, Portfolio,
    PortfolioTransaction, PortfolioTransactionType, PortfolioType, Position, Product, ProductState, ProductStatus,
    Sealed, SealedAccountDetails, Statement, TenantId, Timestamp, Transaction, Usage, now, stable_id,
};
use linkgate::store::{
    Claim, ConnectionFilter, DateRange, Erased, EventFilter, Import, InboxDelivery, IssuedToken, Lease,
    LinkSessionUpdate, Page, PageOf, RecordKind, RecordQuery, Repair, Store, StoredRecord, TokenClaim,
    WebhooksProcessed,
};
use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::sync::Arc;
use uuid::Uuid;

#[path = "../support/mod.rs"]
mod support;
use support::database::{Backend, TestDatabase};

// ---------------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------------

/// Expands the case `async fn $name(store: Arc<dyn Store>)` into `mod $name` holding a test per
/// backend, so a failure names its backend. Attributes given first (an `#[ignore = "..."]`) go on
/// both tests.
macro_rules! conformance {
    ($(#[$attr:meta])* $name:ident) => {
        mod $name {
            #[tokio::test]
            $(#[$attr])*
            async fn sqlite() {
                let (store, _database) = super::open(super::Backend::Sqlite).await;
                super::$name(store).await;
            }

            #[tokio::test]
            $(#[$attr])*
            async fn postgres() {
                let (store, _database) = super::open(super::Backend::Postgres).await;
                super::$name(store).await;
            }
        }
    };
}

// The cases, a module per concern of the store, declared after `conformance!` so they can use it.
mod account_details;
mod audit;
mod changes;
mod connections;
mod erasure;
mod errors;
mod events;
mod link_sessions;
mod provider_sessions;
mod public_tokens;
mod records;
mod tenants;
mod webhook_inbox;

/// Pool size of every test store: more than one, so a backend that keeps state per connection
/// (an in-memory SQLite database) would show.
const MAX_CONNECTIONS: u32 = 4;

/// A migrated store on a fresh database, and the guard that removes the database.
async fn open(backend: Backend) -> (Arc<dyn Store>, TestDatabase) {
    let database = TestDatabase::create(backend).await;
    let store = linkgate::store::open(&database.url, MAX_CONNECTIONS, false).await.expect("store opens");
    (store, database)
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const PROVIDER: &str = "sandbox";
const INSTITUTION: &str = "ins_first_bank";

fn new_tenant() -> TenantId {
    TenantId(Uuid::now_v7())
}

/// A fresh SHA-256, the form in which the store keys public tokens.
fn token_hash() -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, Uuid::now_v7().as_bytes()).as_ref().to_vec()
}

/// A hosted-flow link session just created for `external_user_id`.
fn link_session(tenant: TenantId, external_user_id: &str) -> LinkSession {
    let created_at = now();
    LinkSession {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        provider: PROVIDER.to_owned(),
        institution_id: None,
        external_user_id: external_user_id.to_owned(),
        state: LinkSessionState::Created,
        flow: LinkFlow::Hosted,
        products: vec![Product::Accounts, Product::Transactions],
        link_token: Some("link-sandbox-token".to_owned()),
        hosted_link_url: Some("https://sandbox.example/link".to_owned()),
        mfa_question: None,
        mfa_methods: Vec::new(),
        public_token: None,
        public_token_expires_at: None,
        upstream_state: None,
        failure_reason: None,
        failure_message: None,
        redirect_uri: Some("https://app.example/linked".to_owned()),
        last_request_id: None,
        created_at,
        updated_at: created_at,
        expires_at: created_at + Duration::minutes(30),
        repair_connection_id: None,
    }
}

/// Stores a new link session without a request id and returns it.
async fn create_session(store: &dyn Store, tenant: TenantId, external_user_id: &str) -> LinkSession {
    let session = link_session(tenant, external_user_id);
    let stored = store.create_link_session(&session, None, None).await.unwrap();
    assert_eq!(stored, session, "create returns the session it stored");
    session
}

/// Moves a stored session to SUCCEEDED with a public token exchangeable until `expires_at`, as
/// the link flow does, and returns the session and the token.
async fn succeed(store: &dyn Store, session: &LinkSession, expires_at: Timestamp) -> (LinkSession, IssuedToken) {
    let token = IssuedToken {
        id: Uuid::now_v7(),
        provider: session.provider.clone(),
        token_hash: token_hash(),
        institution_id: INSTITUTION.to_owned(),
        expires_at,
    };
    let mut succeeded = session.clone();
    succeeded.state = LinkSessionState::Succeeded;
    succeeded.institution_id = Some(INSTITUTION.to_owned());
    succeeded.public_token = Some(Sealed(format!("sealed public token {}", token.id).into_bytes()));
    succeeded.public_token_expires_at = Some(expires_at);
    succeeded.updated_at = now();
    let update =
        LinkSessionUpdate { session: &succeeded, from: session.state, next_poll_at: None, issued: Some(&token) };
    assert!(store.update_link_session(update).await.unwrap(), "the session succeeds");
    (succeeded, token)
}

/// A connection just exchanged, linking every product.
fn connection(tenant: TenantId, external_user_id: &str, provider: &str) -> Connection {
    let created_at = now();
    Connection {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        provider: provider.to_owned(),
        institution_id: INSTITUTION.to_owned(),
        institution_name: "First Bank".to_owned(),
        external_user_id: external_user_id.to_owned(),
        state: ConnectionState::Pending,
        error: None,
        products: [Product::Accounts, Product::Transactions, Product::Investments, Product::Statements]
            .into_iter()
            .map(ProductStatus::not_ready)
            .collect(),
        created_at,
        updated_at: created_at,
        last_synced_at: None,
        link_session_id: None,
        consent_expires_at: None,
        consent_warned_for: None,
        duplicate_of: None,
    }
}

/// The sealed provider handle stored with a connection.
fn handle_of(connection: &Connection) -> Vec<u8> {
    format!("sealed handle of {}", connection.id).into_bytes()
}

/// The hash by which webhooks find `connection`: its provider's id is `upstream-<connection id>`.
fn upstream_ref_of(connection: &Connection) -> Vec<u8> {
    linkgate::crypto::upstream_ref_hash(&connection.provider, &format!("upstream-{}", connection.id))
}

/// Stores a connection as an exchange of a token first seen at exchange does (claim, then record)
/// and returns its event.
async fn create_connection(store: &dyn Store, connection: &Connection, next_poll_at: Timestamp) -> ConnectionEvent {
    let hash = token_hash();
    let claim_id = won_claim(store, connection.tenant_id, &connection.provider, &hash, now()).await;
    let claim = TokenClaim { token_hash: &hash, claim_id };
    let recorded = store
        .create_connection(connection, &handle_of(connection), &upstream_ref_of(connection), claim, next_poll_at)
        .await;
    assert!(recorded.unwrap(), "the claim holds");
    latest_event(store, connection).await
}

/// Moves committed events into the log, as each replica's sequencer does after every write:
/// until then the log's readers do not see them (PostgreSQL; SQLite appends to the log itself).
async fn sequence(store: &dyn Store) {
    while store.sequence_events(1000).await.unwrap() == 1000 {}
}

/// The log's newest event id once what was committed is sequenced.
async fn last_event_id(store: &dyn Store) -> i64 {
    sequence(store).await;
    store.last_event_id().await.unwrap()
}

/// `connection`'s newest event in the log, once what was committed is sequenced.
async fn latest_event(store: &dyn Store, connection: &Connection) -> ConnectionEvent {
    sequence(store).await;
    let filter = EventFilter { connection_id: Some(connection.id), ..EventFilter::default() };
    let events = store.events_after(connection.tenant_id, &filter, 0, 10_000).await.unwrap();
    events.into_iter().next_back().expect("the connection has events")
}

/// Claims the public token hashed `hash` at `at` for 30 seconds, which must be won; the claim's id.
async fn won_claim(store: &dyn Store, tenant: TenantId, provider: &str, hash: &[u8], at: Timestamp) -> Uuid {
    match store.claim_public_token(tenant, provider, hash, at, at + Duration::seconds(30)).await.unwrap() {
        Claim::Won { claim_id, .. } => claim_id,
        other => panic!("the claim is not won: {other:?}"),
    }
}

/// Stores a fresh connection of `tenant` and returns it.
async fn new_connection(store: &dyn Store, tenant: TenantId, external_user_id: &str, provider: &str) -> Connection {
    let connection = connection(tenant, external_user_id, provider);
    create_connection(store, &connection, now() + Duration::hours(1)).await;
    connection
}

/// `connection` moved to `state` now.
fn moved(connection: &Connection, state: ConnectionState) -> Connection {
    let mut next = connection.clone();
    next.state = state;
    next.updated_at = now();
    if state == ConnectionState::Ready {
        for product in &mut next.products {
            product.state = ProductState::Ready;
            product.refreshed_at = Some(next.updated_at);
            product.last_attempted_at = Some(next.updated_at);
        }
        next.last_synced_at = Some(next.updated_at);
    }
    next
}

/// Saves `connection` in `state` with no data and no next poll; returns the saved connection.
async fn save_in_state(
    store: &dyn Store,
    connection: &Connection,
    state: ConnectionState,
) -> (Connection, ConnectionEvent) {
    let next = moved(connection, state);
    let saved = store.save_connection(&next, None, None, ConnectionEventType::StateChanged).await.unwrap();
    assert!(saved, "a live connection saves");
    let event = latest_event(store, &next).await;
    (next, event)
}

/// An amount of euros, given in cents.
fn eur(cents: i64) -> Money {
    Money::new(Decimal::new(cents, 2), "EUR")
}

fn day(year: i32, month: u32, day: u32) -> Date {
    NaiveDate::from_ymd_opt(year, month, day).expect("valid date")
}

/// An import with something to sort and filter in every kind of record, and the ids tests need.
struct Sample {
    data: ConnectionData<SealedAccountDetails>,
    /// "alpha Checking": five transactions, two of them on 5 January (as is one of savings).
    checking: Uuid,
    /// "Zeta Savings": two transactions.
    savings: Uuid,
    /// "Retirement Fund": three positions, three portfolio transactions.
    retirement: Uuid,
}

fn instrument(name: &str, asset_type: AssetType, isin: &str) -> Instrument {
    Instrument {
        isin: Some(isin.to_owned()),
        ticker: None,
        name: name.to_owned(),
        asset_type,
        currency: "EUR".to_owned(),
        exchange: Some("XETR".to_owned()),
    }
}

/// Accounts whose names sort differently from their order here (and differently with and
/// without case; two differ only in case, so listings must break the tie), transactions on two accounts over several days with ties on one day, two
/// portfolios with positions and trades, and utility statements.
/// `data` as an import of every product, so kinds it lacks are removed.
fn import_of(data: &ConnectionData<SealedAccountDetails>) -> Import<'_> {
    const EVERY_PRODUCT: &[Product] = &[
        Product::Accounts,
        Product::Transactions,
        Product::Investments,
        Product::Statements,
        Product::AccountNumbers,
        Product::Identity,
    ];
    Import { data, products: EVERY_PRODUCT, cursor: None }
}

fn sample(connection_id: Uuid) -> Sample {
    let id = |kind: &str, upstream: &str| stable_id(connection_id, kind, upstream);
    let account = |upstream: &str, kind: AccountType, name: &str| Account {
        id: id("account", upstream),
        kind,
        name: name.to_owned(),
        mask: Some("4242".to_owned()),
        currency: "EUR".to_owned(),
        current: Some(eur(123456)),
        available: Some(eur(100000)),
        limit: None,
    };
    let accounts = vec![
        account("acc-zeta", AccountType::Savings, "Zeta Savings"),
        account("acc-alpha", AccountType::Checking, "alpha Checking"),
        account("acc-mid", AccountType::CreditCard, "Mid Card"),
        account("acc-bills", AccountType::Utility, "Bills"),
        account("acc-zeta-2", AccountType::Savings, "ZETA SAVINGS"),
    ];
    let (checking, savings, bills) =
        (id("account", "acc-alpha"), id("account", "acc-zeta"), id("account", "acc-bills"));
    let transaction = |upstream: &str, account_id: Uuid, date: Date, cents: i64| Transaction {
        id: id("transaction", upstream),
        account_id,
        amount: eur(cents),
        date,
        description: format!("transaction {upstream}"),
        pending: false,
        pending_transaction_id: None,
    };
    let transactions = vec![
        transaction("tx-a4", checking, day(2026, 1, 7), -1250),
        transaction("tx-a1", checking, day(2026, 1, 3), -499),
        transaction("tx-a5", checking, day(2026, 1, 10), 250000),
        transaction("tx-a2", checking, day(2026, 1, 5), -6000),
        transaction("tx-z1", savings, day(2026, 1, 5), 10000),
        transaction("tx-a3", checking, day(2026, 1, 5), -720),
        transaction("tx-z2", savings, day(2026, 1, 8), 5000),
    ];
    let retirement = id("portfolio", "pf-retirement");
    let brokerage = id("portfolio", "pf-brokerage");
    let portfolios = vec![
        Portfolio {
            id: retirement,
            kind: PortfolioType::Retirement,
            name: "Retirement Fund".to_owned(),
            value: eur(2000000),
            cash_account_id: None,
        },
        Portfolio {
            id: brokerage,
            kind: PortfolioType::Brokerage,
            name: "brokerage".to_owned(),
            value: eur(500000),
            cash_account_id: Some(checking),
        },
    ];
    let position = |upstream: &str, portfolio_id: Uuid, instrument: Instrument, units: i64| Position {
        id: id("position", upstream),
        portfolio_id,
        instrument,
        quantity: Decimal::new(units, 3),
        price: eur(10125),
        market_value: eur(units * 10125 / 1000),
        cost_basis: Some(eur(9000)),
    };
    let positions = vec![
        position("pos-vwrl", retirement, instrument("Vanguard FTSE All-World", AssetType::Etf, "IE00B3RBWM25"), 12_500),
        position("pos-aapl", retirement, instrument("Apple Inc.", AssetType::Equity, "US0378331005"), 3_000),
        position("pos-ishares", retirement, instrument("iShares Core MSCI", AssetType::Etf, "IE00B4L5Y983"), 7_125),
        position("pos-bund", brokerage, instrument("Bund 2030", AssetType::Bond, "DE0001102507"), 1_000),
    ];
    let trade = |upstream: &str, portfolio_id: Uuid, kind: PortfolioTransactionType, date: Date, cents: i64| {
        PortfolioTransaction {
            id: id("portfolio_transaction", upstream),
            portfolio_id,
            kind,
            date,
            instrument: (kind != PortfolioTransactionType::Deposit)
                .then(|| instrument("Apple Inc.", AssetType::Equity, "US0378331005")),
            quantity: (kind == PortfolioTransactionType::Buy).then(|| Decimal::new(3_000, 3)),
            price: (kind == PortfolioTransactionType::Buy).then(|| eur(10125)),
            amount: eur(cents),
            description: format!("trade {upstream}"),
        }
    };
    let portfolio_transactions = vec![
        trade("pt-dividend", retirement, PortfolioTransactionType::Dividend, day(2026, 1, 9), 310),
        trade("pt-buy", retirement, PortfolioTransactionType::Buy, day(2026, 1, 4), -30375),
        trade("pt-deposit", brokerage, PortfolioTransactionType::Deposit, day(2026, 1, 2), 100000),
        trade("pt-fee", retirement, PortfolioTransactionType::Fee, day(2026, 1, 9), -100),
    ];
    let statement = |upstream: &str, start: Date, end: Date, cents: i64| Statement {
        id: id("statement", upstream),
        account_id: bills,
        period_start: start,
        period_end: end,
        issued_on: end + Duration::days(2),
        due_on: Some(end + Duration::days(16)),
        total_due: eur(cents),
        usage: Some(Usage { quantity: Decimal::new(3125, 1), unit: "kWh".to_owned() }),
    };
    let statements = vec![
        statement("st-dec", day(2025, 12, 1), day(2025, 12, 31), 8840),
        statement("st-jan", day(2026, 1, 1), day(2026, 1, 31), 9115),
        statement("st-nov", day(2025, 11, 1), day(2025, 11, 30), 7999),
    ];
    Sample {
        data: ConnectionData {
            accounts,
            transactions,
            portfolios,
            positions,
            portfolio_transactions,
            statements,
            transaction_delta: None,
            details: sealed_details(connection_id, "first import"),
        },
        checking,
        savings,
        retirement,
    }
}

/// Account details as the service hands them to the store: sealed, which to the store is any
/// bytes (these name the connection and `import`, so tests can tell imports apart).
fn sealed_details(connection_id: Uuid, import: &str) -> SealedAccountDetails {
    SealedAccountDetails {
        numbers: Some(Sealed(format!("sealed numbers of {connection_id}, {import}").into_bytes())),
        owners: Some(Sealed(format!("sealed owners of {connection_id}, {import}").into_bytes())),
    }
}

/// A connection of `tenant` whose first import stored the sample data.
async fn connection_with_sample(store: &dyn Store, tenant: TenantId) -> (Connection, Sample) {
    let created = new_connection(store, tenant, "user-1", PROVIDER).await;
    let sample = sample(created.id);
    let ready = moved(&created, ConnectionState::Ready);
    let saved = store.save_connection(&ready, None, Some(import_of(&sample.data)), ConnectionEventType::StateChanged);
    assert!(saved.await.unwrap(), "a live connection saves");
    (ready, sample)
}

/// Every record of one kind of a connection, as one page.
fn records_of(connection: &Connection, kind: RecordKind) -> RecordQuery {
    RecordQuery {
        tenant: connection.tenant_id,
        connection_id: connection.id,
        kind,
        parent_id: None,
        dates: DateRange::default(),
        page: Page { size: 100, after: None },
    }
}

/// The records `query` selects, from one page that must hold them all.
async fn list_records(store: &dyn Store, query: &RecordQuery) -> Vec<StoredRecord> {
    let page = store.list_records(query).await.unwrap();
    assert!(page.next.is_none(), "one page of {} holds every record", query.page.size);
    page.items
}

/// Decodes the bodies of stored records.
fn decode<T: serde::de::DeserializeOwned>(records: Vec<StoredRecord>) -> Vec<T> {
    records.into_iter().map(|r| r.decode().expect("stored record decodes")).collect()
}

/// `items` in the order of listings by name: ascending, case-insensitive.
fn by_name<T: Clone>(items: &[T], key: impl Fn(&T) -> (String, Uuid)) -> Vec<T> {
    let mut sorted = items.to_vec();
    sorted.sort_by_key(|item| {
        let (name, id) = key(item);
        (name.to_lowercase(), id)
    });
    sorted
}

/// `items` in the order of dated listings: newest first, ties by id, descending, so both
/// backends agree on one order.
fn newest_first<T: Clone>(items: &[T], key: impl Fn(&T) -> (Date, Uuid)) -> Vec<T> {
    let mut sorted = items.to_vec();
    sorted.sort_by_key(|item| Reverse(key(item)));
    sorted
}

/// Follows a listing's cursors from its first page to its last, checking that every page holds
/// at most `size` rows and that a cursor never leads to an empty page. Returns every row and the
/// number of pages.
async fn all_pages<T>(size: usize, mut fetch: impl AsyncFnMut(Page) -> PageOf<T>) -> (Vec<T>, usize) {
    let (mut rows, mut pages, mut after) = (Vec::new(), 0, None);
    loop {
        let page = fetch(Page { size, after: after.take() }).await;
        pages += 1;
        assert!(page.items.len() <= size, "page {pages} holds {} rows, more than {size}", page.items.len());
        assert!(pages == 1 || !page.items.is_empty(), "the cursor of page {} led to an empty page", pages - 1);
        rows.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => return (rows, pages),
        }
        assert!(pages < 1000, "paging never ends");
    }
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> Uuid) -> Vec<Uuid> {
    items.iter().map(id).collect()
}

fn connection_ids(connections: &[Connection]) -> Vec<Uuid> {
    ids(connections, |c| c.id)
}

fn session_ids(sessions: &[LinkSession]) -> BTreeSet<Uuid> {
    sessions.iter().map(|s| s.id).collect()
}

fn leased_ids(connections: &[Connection]) -> BTreeSet<Uuid> {
    connections.iter().map(|c| c.id).collect()
}

/// A lease by `owner` at `at`, lapsing 30 seconds later.
fn lease(owner: &str, at: Timestamp, limit: i64) -> Lease {
    let providers = vec![PROVIDER.to_owned()];
    Lease { owner: owner.to_owned(), now: at, until: at + Duration::seconds(30), limit, providers }
}

fn first_page(size: usize) -> Page {
    Page { size, after: None }
}

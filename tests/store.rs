//! The store conformance suite: what every `Store` backend must do, written once. Every case runs
//! on both backends: on SQLite (a file in a temporary directory) and on PostgreSQL (a fresh
//! database per test on `LINKGATE_TEST_POSTGRES_URL`, dropped afterwards even when the test
//! panics). `conformance!` expands each case into a `sqlite` and a `postgres` test, so a failure
//! names its backend.

use chrono::{Duration, NaiveDate};
use linkgate::domain::{
    Account, AccountType, AssetType, Connection, ConnectionData, ConnectionError, ConnectionEvent, ConnectionState,
    Date, Decimal, Instrument, LinkFlow, LinkSession, LinkSessionState, Money, Portfolio, PortfolioTransaction,
    PortfolioTransactionType, PortfolioType, Position, Product, ProductState, ProductStatus, Sealed, Statement,
    TenantId, Timestamp, Transaction, Usage, now, stable_id,
};
use linkgate::pb::ErrorReason;
use linkgate::store::{
    Claim, ConnectionFilter, DateRange, EventFilter, InboxDelivery, IssuedToken, Lease, LinkSessionUpdate, Page,
    PageOf, RecordKind, RecordQuery, Store, StoredRecord, WebhooksProcessed,
};
use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::sync::Arc;
use uuid::Uuid;

#[path = "support/mod.rs"]
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

/// Stores a connection as an exchange does (for a token nobody claimed) and returns its event.
async fn create_connection(store: &dyn Store, connection: &Connection, next_poll_at: Timestamp) -> ConnectionEvent {
    store
        .create_connection(
            connection,
            &handle_of(connection),
            &upstream_ref_of(connection),
            &token_hash(),
            next_poll_at,
        )
        .await
        .unwrap()
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
    let event = store.save_connection(&next, None, None).await.unwrap().expect("a live connection saves");
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
    data: ConnectionData,
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
        data: ConnectionData { accounts, transactions, portfolios, positions, portfolio_transactions, statements },
        checking,
        savings,
        retirement,
    }
}

/// A connection of `tenant` whose first import stored the sample data.
async fn connection_with_sample(store: &dyn Store, tenant: TenantId) -> (Connection, Sample) {
    let created = new_connection(store, tenant, "user-1", PROVIDER).await;
    let sample = sample(created.id);
    let ready = moved(&created, ConnectionState::Ready);
    store.save_connection(&ready, None, Some(&sample.data)).await.unwrap().expect("a live connection saves");
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
    Lease { owner: owner.to_owned(), now: at, until: at + Duration::seconds(30), limit }
}

fn first_page(size: usize) -> Page {
    Page { size, after: None }
}

// ---------------------------------------------------------------------------------------------
// Link sessions
// ---------------------------------------------------------------------------------------------

async fn a_created_link_session_reads_back_equal_and_only_for_its_tenant(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let session = create_session(&*store, tenant, "user-1").await;
    let mut bare = link_session(tenant, "user-2");
    bare.products = Vec::new();
    bare.link_token = None;
    bare.hosted_link_url = None;
    bare.redirect_uri = None;
    bare.flow = LinkFlow::Credentials;
    store.create_link_session(&bare, None, None).await.unwrap();

    assert_eq!(store.get_link_session(tenant, session.id).await.unwrap(), Some(session.clone()));
    assert_eq!(
        store.get_link_session(tenant, bare.id).await.unwrap(),
        Some(bare),
        "empty and absent fields round-trip"
    );
    assert_eq!(store.get_link_session(new_tenant(), session.id).await.unwrap(), None, "another tenant's get");
    assert_eq!(store.get_link_session(tenant, Uuid::now_v7()).await.unwrap(), None, "an unknown id");
}
conformance!(a_created_link_session_reads_back_equal_and_only_for_its_tenant);

async fn creating_with_a_used_request_id_returns_the_first_session(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let mut first = link_session(tenant, "user-1");
    first.last_request_id = Some("req-1".to_owned());
    assert_eq!(store.create_link_session(&first, Some("req-1"), None).await.unwrap(), first);

    let mut retry = link_session(tenant, "user-2");
    retry.products = vec![Product::Investments];
    retry.last_request_id = Some("req-1".to_owned());
    let returned = store.create_link_session(&retry, Some("req-1"), Some(now())).await.unwrap();

    assert_eq!(returned, first, "the retry gets the first call's session");
    assert_eq!(store.get_link_session(tenant, retry.id).await.unwrap(), None, "the retry inserted nothing");
    assert_eq!(store.find_link_session_by_request(tenant, "req-1").await.unwrap(), Some(first.clone()));
    assert_eq!(store.find_link_session_by_request(tenant, "req-2").await.unwrap(), None);

    // Request ids are the tenant's own: another tenant's "req-1" is a different request.
    let other_tenant = new_tenant();
    assert_eq!(store.find_link_session_by_request(other_tenant, "req-1").await.unwrap(), None);
    let mut other = link_session(other_tenant, "user-1");
    other.last_request_id = Some("req-1".to_owned());
    assert_eq!(store.create_link_session(&other, Some("req-1"), None).await.unwrap(), other);
    assert_eq!(store.find_link_session_by_request(other_tenant, "req-1").await.unwrap(), Some(other));
    assert_eq!(store.find_link_session_by_request(tenant, "req-1").await.unwrap(), Some(first));
}
conformance!(creating_with_a_used_request_id_returns_the_first_session);

async fn link_session_updates_apply_only_from_the_expected_state(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let created = create_session(&*store, tenant, "user-1").await;

    let mut connecting = created.clone();
    connecting.state = LinkSessionState::Connecting;
    connecting.institution_id = Some(INSTITUTION.to_owned());
    connecting.last_request_id = Some("req-submit".to_owned());
    connecting.updated_at = now();
    let from_wrong_state = LinkSessionUpdate {
        session: &connecting,
        from: LinkSessionState::MfaRequired,
        next_poll_at: None,
        issued: None,
    };
    assert!(!store.update_link_session(from_wrong_state).await.unwrap(), "an update from the wrong state applies");
    assert_eq!(store.get_link_session(tenant, created.id).await.unwrap(), Some(created.clone()), "nothing changed");

    let update =
        LinkSessionUpdate { session: &connecting, from: LinkSessionState::Created, next_poll_at: None, issued: None };
    assert!(store.update_link_session(update.clone()).await.unwrap());
    assert_eq!(store.get_link_session(tenant, created.id).await.unwrap(), Some(connecting.clone()));
    assert!(!store.update_link_session(update).await.unwrap(), "the same update applies twice");

    let mut failed = connecting.clone();
    failed.state = LinkSessionState::Failed;
    failed.failure_reason = Some(ErrorReason::InvalidCredentials);
    failed.failure_message = Some("The bank did not accept these credentials.".to_owned());
    failed.updated_at = now();
    let update =
        LinkSessionUpdate { session: &failed, from: LinkSessionState::Connecting, next_poll_at: None, issued: None };
    assert!(store.update_link_session(update).await.unwrap());
    assert_eq!(store.get_link_session(tenant, created.id).await.unwrap(), Some(failed));

    let mut foreign = connecting.clone();
    foreign.tenant_id = new_tenant();
    let update =
        LinkSessionUpdate { session: &foreign, from: LinkSessionState::Failed, next_poll_at: None, issued: None };
    assert!(!store.update_link_session(update).await.unwrap(), "another tenant updated the session");
}
conformance!(link_session_updates_apply_only_from_the_expected_state);

async fn a_succeeded_session_lists_its_public_token(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let session = create_session(&*store, tenant, "user-1").await;
    let (succeeded, token) = succeed(&*store, &session, now() + Duration::minutes(30)).await;
    assert_eq!(store.get_link_session(tenant, session.id).await.unwrap(), Some(succeeded.clone()));

    let page = store.list_public_tokens(tenant, None, None, now(), &first_page(10)).await.unwrap();
    assert!(page.next.is_none());
    let [listed] = page.items.as_slice() else { panic!("expected one token, got {:?}", page.items) };
    assert_eq!(listed.id, token.id);
    assert_eq!(listed.provider, token.provider);
    assert_eq!(Some(&listed.token_sealed), succeeded.public_token.as_ref(), "the token sealed on the session");
    assert_eq!(listed.link_session_id, session.id);
    assert_eq!(listed.institution_id, token.institution_id);
    assert_eq!(listed.external_user_id, "user-1");
    assert_eq!(listed.created_at, succeeded.updated_at);
    assert_eq!(listed.expires_at, token.expires_at);

    let count = async |provider: Option<&str>, user: Option<&str>| {
        store.list_public_tokens(tenant, provider, user, now(), &first_page(10)).await.unwrap().items.len()
    };
    assert_eq!(count(Some(PROVIDER), None).await, 1);
    assert_eq!(count(Some("vumi"), None).await, 0, "filtered by provider");
    assert_eq!(count(None, Some("user-1")).await, 1);
    assert_eq!(count(None, Some("user-2")).await, 0, "filtered by end user");
}
conformance!(a_succeeded_session_lists_its_public_token);

async fn expired_foreign_and_exchanged_tokens_are_not_listed(store: Arc<dyn Store>) {
    let (tenant, other_tenant) = (new_tenant(), new_tenant());
    let t0 = now();
    let expiring = create_session(&*store, tenant, "user-1").await;
    let (_, expiring_token) = succeed(&*store, &expiring, t0 + Duration::minutes(10)).await;
    let exchanged = create_session(&*store, tenant, "user-1").await;
    let (_, exchanged_token) = succeed(&*store, &exchanged, t0 + Duration::minutes(30)).await;
    let foreign = create_session(&*store, other_tenant, "user-1").await;
    let (_, foreign_token) = succeed(&*store, &foreign, t0 + Duration::minutes(30)).await;
    let claim = store.claim_public_token(tenant, PROVIDER, &exchanged_token.token_hash, t0, t0 + Duration::seconds(30));
    assert!(matches!(claim.await.unwrap(), Claim::Won { .. }));
    store
        .create_connection(&connection(tenant, "user-1", PROVIDER), b"handle", b"ref", &exchanged_token.token_hash, t0)
        .await
        .unwrap();

    let listed = async |tenant: TenantId, at: Timestamp| {
        let page = store.list_public_tokens(tenant, None, None, at, &first_page(10)).await.unwrap();
        ids(&page.items, |t| t.id)
    };
    assert_eq!(listed(tenant, t0).await, vec![expiring_token.id], "neither exchanged nor another tenant's");
    assert_eq!(listed(tenant, t0 + Duration::minutes(11)).await, Vec::<Uuid>::new(), "expired");
    assert_eq!(listed(other_tenant, t0).await, vec![foreign_token.id]);
}
conformance!(expired_foreign_and_exchanged_tokens_are_not_listed);

async fn public_tokens_page_newest_first_without_gaps_or_repeats(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let mut issued = Vec::new();
    for _ in 0..5 {
        let session = create_session(&*store, tenant, "user-1").await;
        issued.push(succeed(&*store, &session, now() + Duration::minutes(30)).await.1.id);
    }
    issued.reverse();
    let at = now();

    for size in [1, 2, 5] {
        let (tokens, pages) =
            all_pages(size, async |page| store.list_public_tokens(tenant, None, None, at, &page).await.unwrap()).await;
        assert_eq!(ids(&tokens, |t| t.id), issued, "pages of {size}");
        assert_eq!(pages, issued.len().div_ceil(size), "pages of {size}");
    }
}
conformance!(public_tokens_page_newest_first_without_gaps_or_repeats);

// ---------------------------------------------------------------------------------------------
// Public token claims
// ---------------------------------------------------------------------------------------------

async fn claiming_an_issued_token_wins_and_names_its_link_session(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let session = create_session(&*store, tenant, "user-1").await;
    let (_, token) = succeed(&*store, &session, now() + Duration::minutes(30)).await;
    let at = now();

    let claim = store.claim_public_token(tenant, PROVIDER, &token.token_hash, at, at + Duration::seconds(30)).await;
    let stored = store.get_link_session(tenant, session.id).await.unwrap().map(Box::new);
    assert_eq!(claim.unwrap(), Claim::Won { link_session: stored }, "the session as stored, read with the claim");
    let listed = store.list_public_tokens(tenant, None, None, at, &first_page(10)).await.unwrap();
    assert!(listed.items.is_empty(), "a token being exchanged is still listed");
}
conformance!(claiming_an_issued_token_wins_and_names_its_link_session);

/// The link session a won claim names; `None` when the claim was not won.
fn won_by(claim: Claim) -> Option<Option<Uuid>> {
    match claim {
        Claim::Won { link_session } => Some(link_session.map(|session| session.id)),
        _ => None,
    }
}

async fn claiming_a_token_twice_leaves_the_second_caller_busy(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let session = create_session(&*store, tenant, "user-1").await;
    let (_, token) = succeed(&*store, &session, now() + Duration::minutes(30)).await;
    let t0 = now();
    let claim = async |at: Timestamp| {
        store.claim_public_token(tenant, PROVIDER, &token.token_hash, at, at + Duration::seconds(30)).await.unwrap()
    };

    assert_eq!(won_by(claim(t0).await), Some(Some(session.id)));
    assert_eq!(claim(t0).await, Claim::Busy);
    assert_eq!(claim(t0 + Duration::seconds(29)).await, Claim::Busy, "the first claim still holds");
}
conformance!(claiming_a_token_twice_leaves_the_second_caller_busy);

async fn a_lapsed_claim_can_be_taken_over(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let session = create_session(&*store, tenant, "user-1").await;
    let (_, token) = succeed(&*store, &session, now() + Duration::minutes(30)).await;
    let never_seen = token_hash();
    let t0 = now();
    let claim = async |hash: &[u8], at: Timestamp| {
        store.claim_public_token(tenant, PROVIDER, hash, at, at + Duration::seconds(30)).await.unwrap()
    };

    assert_eq!(won_by(claim(&token.token_hash, t0).await), Some(Some(session.id)));
    let later = t0 + Duration::seconds(31);
    assert_eq!(won_by(claim(&token.token_hash, later).await), Some(Some(session.id)));
    assert_eq!(claim(&token.token_hash, later).await, Claim::Busy, "the new claim holds");

    assert_eq!(won_by(claim(&never_seen, t0).await), Some(None));
    assert_eq!(won_by(claim(&never_seen, later).await), Some(None), "a never-seen token too");
    assert_eq!(claim(&never_seen, later).await, Claim::Busy);
}
conformance!(a_lapsed_claim_can_be_taken_over);

async fn another_tenant_claiming_a_token_gets_foreign(store: Arc<dyn Store>) {
    let (tenant, other_tenant) = (new_tenant(), new_tenant());
    let session = create_session(&*store, tenant, "user-1").await;
    let (_, issued) = succeed(&*store, &session, now() + Duration::minutes(30)).await;
    let (never_seen, exchanged) = (token_hash(), token_hash());
    let at = now();
    let claim = async |tenant: TenantId, hash: &[u8]| {
        store.claim_public_token(tenant, PROVIDER, hash, at, at + Duration::seconds(30)).await.unwrap()
    };

    assert_eq!(claim(other_tenant, &issued.token_hash).await, Claim::Foreign, "an issued token");
    assert_eq!(won_by(claim(tenant, &issued.token_hash).await), Some(Some(session.id)));
    assert_eq!(claim(other_tenant, &issued.token_hash).await, Claim::Foreign, "a claimed token");

    assert_eq!(won_by(claim(tenant, &never_seen).await), Some(None));
    assert_eq!(claim(other_tenant, &never_seen).await, Claim::Foreign, "a token first seen at exchange");

    assert_eq!(won_by(claim(tenant, &exchanged).await), Some(None));
    store.create_connection(&connection(tenant, "user-1", PROVIDER), b"handle", b"ref", &exchanged, at).await.unwrap();
    assert_eq!(claim(other_tenant, &exchanged).await, Claim::Foreign, "an exchanged token names no connection");
}
conformance!(another_tenant_claiming_a_token_gets_foreign);

async fn concurrent_claims_of_one_token_have_exactly_one_winner(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let session = create_session(&*store, tenant, "user-1").await;
    let (_, issued) = succeed(&*store, &session, now() + Duration::minutes(30)).await;

    for (hash, what) in [(issued.token_hash, "an issued token"), (token_hash(), "a never-seen token")] {
        let at = now();
        let claims = futures::future::join_all(
            (0..8).map(|_| store.claim_public_token(tenant, PROVIDER, &hash, at, at + Duration::seconds(30))),
        )
        .await;
        let claims: Vec<Claim> = claims.into_iter().map(|claim| claim.expect("claim answers")).collect();
        let winners = claims.iter().filter(|claim| matches!(claim, Claim::Won { .. })).count();
        assert_eq!(winners, 1, "{what}: {claims:?}");
        assert!(claims.iter().all(|claim| matches!(claim, Claim::Won { .. } | Claim::Busy)), "{what}: {claims:?}");
    }
}
conformance!(concurrent_claims_of_one_token_have_exactly_one_winner);

async fn an_exchanged_token_claims_as_exchanged_for_good(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let session = create_session(&*store, tenant, "user-1").await;
    let (_, token) = succeed(&*store, &session, now() + Duration::minutes(30)).await;
    let t0 = now();
    let claim = async |at: Timestamp| {
        store.claim_public_token(tenant, PROVIDER, &token.token_hash, at, at + Duration::seconds(30)).await.unwrap()
    };
    assert_eq!(won_by(claim(t0).await), Some(Some(session.id)));
    let mut exchanged = connection(tenant, "user-1", PROVIDER);
    exchanged.link_session_id = Some(session.id);
    store.create_connection(&exchanged, b"handle", b"ref", &token.token_hash, t0).await.unwrap();

    let expected = Claim::Exchanged { connection_id: exchanged.id };
    assert_eq!(claim(t0).await, expected);
    assert_eq!(claim(t0 + Duration::minutes(5)).await, expected, "after the claim lapsed");
    assert_eq!(claim(t0 + Duration::hours(2)).await, expected, "after the token's exchange window");
    store.release_public_token(tenant, PROVIDER, &token.token_hash).await.unwrap();
    assert_eq!(claim(t0).await, expected, "a release after the exchange");
    assert!(store.list_public_tokens(tenant, None, None, t0, &first_page(10)).await.unwrap().items.is_empty());
}
conformance!(an_exchanged_token_claims_as_exchanged_for_good);

async fn an_expired_token_claims_as_expired(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let session = create_session(&*store, tenant, "user-1").await;
    let expires_at = now() + Duration::minutes(10);
    let (_, token) = succeed(&*store, &session, expires_at).await;

    let at = expires_at + Duration::seconds(1);
    let claim = store.claim_public_token(tenant, PROVIDER, &token.token_hash, at, at + Duration::seconds(30)).await;
    assert_eq!(claim.unwrap(), Claim::Expired);
}
conformance!(an_expired_token_claims_as_expired);

async fn a_lapsed_claim_on_an_expired_token_claims_as_expired(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let session = create_session(&*store, tenant, "user-1").await;
    let expires_at = now() + Duration::minutes(10);
    let (_, token) = succeed(&*store, &session, expires_at).await;
    let claim = async |at: Timestamp| {
        store.claim_public_token(tenant, PROVIDER, &token.token_hash, at, at + Duration::seconds(30)).await.unwrap()
    };
    // A replica claims the token just before it expires, then crashes without releasing it.
    let claimed_at = expires_at - Duration::seconds(5);
    assert_eq!(won_by(claim(claimed_at).await), Some(Some(session.id)));

    // Nobody holds an unexpired claim any more and the window has passed: the caller must
    // learn the token expired, not wait for an exchange that will never finish.
    assert_eq!(claim(claimed_at + Duration::minutes(1)).await, Claim::Expired);
}
conformance!(a_lapsed_claim_on_an_expired_token_claims_as_expired);

async fn a_never_seen_token_is_won_and_forgotten_on_release(store: Arc<dyn Store>) {
    let (tenant, other_tenant) = (new_tenant(), new_tenant());
    let hash = token_hash();
    let at = now();
    let claim = async |tenant: TenantId| {
        store.claim_public_token(tenant, PROVIDER, &hash, at, at + Duration::seconds(30)).await.unwrap()
    };

    assert_eq!(won_by(claim(tenant).await), Some(None));
    assert_eq!(claim(tenant).await, Claim::Busy);
    assert!(store.list_public_tokens(tenant, None, None, at, &first_page(10)).await.unwrap().items.is_empty());
    store.release_public_token(tenant, PROVIDER, &hash).await.unwrap();
    assert_eq!(won_by(claim(tenant).await), Some(None), "claimable again after the release");
    assert!(store.list_public_tokens(tenant, None, None, at, &first_page(10)).await.unwrap().items.is_empty());

    // Forgotten, not merely freed: no tenant owns it any more, so the next claimer may be anyone.
    store.release_public_token(tenant, PROVIDER, &hash).await.unwrap();
    assert_eq!(won_by(claim(other_tenant).await), Some(None));
}
conformance!(a_never_seen_token_is_won_and_forgotten_on_release);

async fn releasing_an_issued_token_makes_it_claimable_and_listable_again(store: Arc<dyn Store>) {
    let (tenant, other_tenant) = (new_tenant(), new_tenant());
    let session = create_session(&*store, tenant, "user-1").await;
    let (_, token) = succeed(&*store, &session, now() + Duration::minutes(30)).await;
    let at = now();
    let claim = async || {
        store.claim_public_token(tenant, PROVIDER, &token.token_hash, at, at + Duration::seconds(30)).await.unwrap()
    };
    let listed = async || {
        let page = store.list_public_tokens(tenant, None, None, at, &first_page(10)).await.unwrap();
        ids(&page.items, |t| t.id)
    };

    assert_eq!(won_by(claim().await), Some(Some(session.id)));
    store.release_public_token(other_tenant, PROVIDER, &token.token_hash).await.unwrap();
    assert_eq!(claim().await, Claim::Busy, "another tenant's release freed the claim");
    assert_eq!(listed().await, Vec::<Uuid>::new());

    store.release_public_token(tenant, PROVIDER, &token.token_hash).await.unwrap();
    assert_eq!(listed().await, vec![token.id], "listed again");
    assert_eq!(won_by(claim().await), Some(Some(session.id)), "claimable again");
}
conformance!(releasing_an_issued_token_makes_it_claimable_and_listable_again);

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

async fn a_created_connection_reads_back_only_for_its_tenant(store: Arc<dyn Store>) {
    let (tenant, other_tenant) = (new_tenant(), new_tenant());
    let created = connection(tenant, "user-1", PROVIDER);
    let event = create_connection(&*store, &created, now()).await;
    assert_eq!(event.connection, created);
    assert_eq!(event.occurred_at, created.updated_at);

    assert_eq!(store.get_connection(tenant, created.id).await.unwrap(), Some(created.clone()));
    assert_eq!(store.connection_handle(tenant, created.id).await.unwrap(), Some(handle_of(&created)));
    let listed = store.list_connections(tenant, &ConnectionFilter::default(), &first_page(10)).await.unwrap();
    assert_eq!(listed.items, vec![created.clone()]);

    assert_eq!(store.get_connection(other_tenant, created.id).await.unwrap(), None);
    assert_eq!(store.connection_handle(other_tenant, created.id).await.unwrap(), None);
    let listed = store.list_connections(other_tenant, &ConnectionFilter::default(), &first_page(10)).await.unwrap();
    assert!(listed.items.is_empty());

    // Writes through another tenant change nothing either.
    let mut foreign = moved(&created, ConnectionState::Ready);
    foreign.tenant_id = other_tenant;
    assert_eq!(store.save_connection(&foreign, None, None).await.unwrap(), None);
    foreign.state = ConnectionState::Deleted;
    assert_eq!(store.delete_connection(&foreign).await.unwrap(), None);
    assert_eq!(store.get_connection(tenant, created.id).await.unwrap(), Some(created.clone()));
    assert_eq!(store.connection_handle(tenant, created.id).await.unwrap(), Some(handle_of(&created)));
    assert_eq!(store.last_event_id().await.unwrap(), event.event_id, "no event appended");
}
conformance!(a_created_connection_reads_back_only_for_its_tenant);

async fn every_connection_change_appends_an_event_with_a_higher_id(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let first = connection(tenant, "user-1", PROVIDER);
    let second = connection(tenant, "user-2", PROVIDER);
    let mut events = vec![create_connection(&*store, &first, now()).await];
    events.push(create_connection(&*store, &second, now()).await);
    let (ready, saved) = save_in_state(&*store, &first, ConnectionState::Ready).await;
    assert_eq!(saved.connection, ready);
    events.push(saved);
    let mut failed = moved(&second, ConnectionState::Error);
    failed.error = Some(ConnectionError {
        reason: ErrorReason::LoginRequired,
        message: "Sign in again.".to_owned(),
        retryable: false,
        user_action_required: true,
    });
    events.push(store.save_connection(&failed, None, None).await.unwrap().expect("saved"));
    events.push(store.delete_connection(&moved(&ready, ConnectionState::Deleted)).await.unwrap().expect("deleted"));

    let event_ids: Vec<i64> = events.iter().map(|e| e.event_id).collect();
    assert!(event_ids.windows(2).all(|w| w[0] < w[1]), "event ids increase: {event_ids:?}");
    assert_eq!(store.tail_events(0, 100).await.unwrap(), events, "events read back as returned");
}
conformance!(every_connection_change_appends_an_event_with_a_higher_id);

/// The property the watch streams stand on: a reader that has seen event N has seen every event
/// before it. Here a writer holds an uncommitted event (as a slow transaction would) while the
/// store writes another; a reader following the log ("after the last id I saw", as the tailer
/// and resuming watchers read) must still get both. Were the later id allowed to commit first,
/// the reader would step past the earlier one and never see it.
#[tokio::test]
async fn on_postgres_a_slow_writer_cannot_be_overtaken_so_log_readers_miss_nothing() {
    use sqlx::Connection as _;
    let (store, database) = open(Backend::Postgres).await;
    let tenant = new_tenant();
    let first = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    let second = new_connection(&*store, tenant, "user-2", PROVIDER).await;
    let start = store.last_event_id().await.unwrap();

    // The slow writer takes the lock first, as the store's own append would, and pauses.
    let mut slow = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let mut transaction = slow.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(4242001)").execute(&mut *transaction).await.unwrap();

    // A fast writer through the store, concurrently: it must wait for the lock before it draws
    // its event's id, or the slow writer's later id would commit first.
    let fast = tokio::spawn({
        let store = store.clone();
        let next = moved(&second, ConnectionState::Ready);
        async move { store.save_connection(&next, None, None).await.unwrap().expect("saved").event_id }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (slow_id,): (i64,) = sqlx::query_as(
        "INSERT INTO connection_events (tenant_id, connection_id, provider, external_user_id, state, snapshot, \
         occurred_at) SELECT tenant_id, id, provider, external_user_id, state, snapshot, now() FROM connections \
         WHERE id = $1 RETURNING id",
    )
    .bind(first.id)
    .fetch_one(&mut *transaction)
    .await
    .unwrap();

    // A reader follows the log while the slow writer has not committed.
    let mut cursor = start;
    let mut seen = Vec::new();
    for event in store.tail_events(cursor, 100).await.unwrap() {
        cursor = event.event_id;
        seen.push(event.event_id);
    }
    transaction.commit().await.unwrap();
    let fast_id = fast.await.unwrap();
    for event in store.tail_events(cursor, 100).await.unwrap() {
        seen.push(event.event_id);
    }
    assert!(slow_id < fast_id, "ids are taken in lock order");
    assert_eq!(seen, [slow_id, fast_id], "the reader saw both events, once, in order");
}

async fn pruning_keeps_each_live_connections_latest_event_and_records_the_horizon(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let live = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    let gone = new_connection(&*store, tenant, "user-2", PROVIDER).await;
    let (ready, _) = save_in_state(&*store, &live, ConnectionState::Ready).await;
    store.delete_connection(&moved(&gone, ConnectionState::Deleted)).await.unwrap().expect("deleted");
    let latest_of_live = store.tail_events(0, 100).await.unwrap().into_iter().rfind(|e| e.connection.id == live.id);
    assert_eq!(store.pruned_through().await.unwrap(), 0);

    let pruned = store.prune_events(now() + Duration::seconds(1), 100).await.unwrap();
    let left = store.tail_events(0, 100).await.unwrap();
    assert_eq!(left.len(), 1, "only the live connection's latest event is kept: {left:?}");
    assert_eq!(Some(&left[0]), latest_of_live.as_ref());
    assert_eq!(left[0].connection, ready);
    assert_eq!(pruned, 3, "the live connection's first event and both of the deleted one's");
    assert!(store.pruned_through().await.unwrap() > 0);
    let current = store.current_events(tenant, &EventFilter::default()).await.unwrap();
    assert_eq!(current.len(), 1, "the current state survives pruning");

    // Nothing newer than the cutoff is touched.
    assert_eq!(store.prune_events(now() - Duration::days(1), 100).await.unwrap(), 0);
}
conformance!(pruning_keeps_each_live_connections_latest_event_and_records_the_horizon);

async fn listing_connections_pages_newest_first_without_gaps_or_repeats(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let mut created = Vec::new();
    for user in ["user-1", "user-2", "user-3", "user-4", "user-5"] {
        created.push(new_connection(&*store, tenant, user, PROVIDER).await.id);
    }
    new_connection(&*store, new_tenant(), "user-1", PROVIDER).await;
    created.reverse();

    let filter = ConnectionFilter::default();
    for size in [1, 2, 5] {
        let (listed, pages) =
            all_pages(size, async |page| store.list_connections(tenant, &filter, &page).await.unwrap()).await;
        assert_eq!(connection_ids(&listed), created, "pages of {size}");
        assert_eq!(pages, created.len().div_ceil(size), "pages of {size}");
    }
}
conformance!(listing_connections_pages_newest_first_without_gaps_or_repeats);

async fn listing_connections_filters_by_user_provider_and_state(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let ready = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    save_in_state(&*store, &ready, ConnectionState::Ready).await;
    let pending = new_connection(&*store, tenant, "user-2", PROVIDER).await;
    let other_provider = new_connection(&*store, tenant, "user-1", "vumi").await;
    save_in_state(&*store, &other_provider, ConnectionState::Stale).await;
    new_connection(&*store, new_tenant(), "user-1", PROVIDER).await;

    let list = async |filter: ConnectionFilter| {
        let (listed, _) =
            all_pages(10, async |page| store.list_connections(tenant, &filter, &page).await.unwrap()).await;
        connection_ids(&listed)
    };
    let filter = |user: Option<&str>, provider: Option<&str>, state: Option<ConnectionState>| ConnectionFilter {
        external_user_id: user.map(str::to_owned),
        provider: provider.map(str::to_owned),
        state,
    };
    assert_eq!(list(filter(None, None, None)).await, vec![other_provider.id, pending.id, ready.id]);
    assert_eq!(list(filter(Some("user-1"), None, None)).await, vec![other_provider.id, ready.id]);
    assert_eq!(list(filter(None, Some(PROVIDER), None)).await, vec![pending.id, ready.id]);
    assert_eq!(list(filter(None, None, Some(ConnectionState::Ready))).await, vec![ready.id]);
    assert_eq!(list(filter(None, None, Some(ConnectionState::Pending))).await, vec![pending.id]);
    assert_eq!(list(filter(Some("user-1"), Some(PROVIDER), Some(ConnectionState::Ready))).await, vec![ready.id]);
    assert_eq!(list(filter(Some("user-2"), Some("vumi"), None)).await, Vec::<Uuid>::new());
    assert_eq!(list(filter(None, None, Some(ConnectionState::Error))).await, Vec::<Uuid>::new());
}
conformance!(listing_connections_filters_by_user_provider_and_state);

async fn deleted_connections_are_listed_only_when_asked_for(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let kept = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    let removed = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    let deleted = moved(&removed, ConnectionState::Deleted);
    store.delete_connection(&deleted).await.unwrap().expect("deleted");

    let list = async |state: Option<ConnectionState>| {
        let filter = ConnectionFilter { state, ..ConnectionFilter::default() };
        store.list_connections(tenant, &filter, &first_page(10)).await.unwrap().items
    };
    assert_eq!(connection_ids(&list(None).await), vec![kept.id]);
    assert_eq!(list(Some(ConnectionState::Deleted)).await, vec![deleted.clone()]);
    assert_eq!(store.get_connection(tenant, removed.id).await.unwrap(), Some(deleted), "get still finds it");
}
conformance!(deleted_connections_are_listed_only_when_asked_for);

async fn saving_a_connection_with_data_replaces_its_records(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let (ready, sample) = connection_with_sample(&*store, tenant).await;
    assert_eq!(store.get_connection(tenant, ready.id).await.unwrap(), Some(ready.clone()));
    let accounts = records_of(&ready, RecordKind::Account);
    assert_eq!(list_records(&*store, &accounts).await.len(), sample.data.accounts.len());

    // A save without data keeps the records.
    let (refreshing, _) = save_in_state(&*store, &ready, ConnectionState::Refreshing).await;
    assert_eq!(list_records(&*store, &accounts).await.len(), sample.data.accounts.len());

    let mut renamed = sample.data.accounts[1].clone();
    renamed.name = "Everyday Account".to_owned();
    renamed.current = Some(eur(9900));
    let replacement = ConnectionData { accounts: vec![renamed.clone()], ..ConnectionData::default() };
    let ready_again = moved(&refreshing, ConnectionState::Ready);
    store.save_connection(&ready_again, None, Some(&replacement)).await.unwrap().expect("saved");

    assert_eq!(decode::<Account>(list_records(&*store, &accounts).await), vec![renamed]);
    let transactions = records_of(&ready, RecordKind::Transaction);
    assert!(list_records(&*store, &transactions).await.is_empty(), "old transactions remain");
    let old_transaction = sample.data.transactions[0].id;
    assert!(!store.has_record(tenant, ready.id, RecordKind::Transaction, old_transaction).await.unwrap());
    assert_eq!(store.get_connection(tenant, ready.id).await.unwrap(), Some(ready_again));
}
conformance!(saving_a_connection_with_data_replaces_its_records);

async fn a_deleted_connection_cannot_be_saved(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let created = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    let deleted = moved(&created, ConnectionState::Deleted);
    store.delete_connection(&deleted).await.unwrap().expect("deleted");
    let last_event = store.last_event_id().await.unwrap();

    // A sync that finished after the delete must not bring the connection or its data back.
    let ready = moved(&created, ConnectionState::Ready);
    let data = sample(created.id).data;
    assert_eq!(store.save_connection(&ready, Some(now()), Some(&data)).await.unwrap(), None);

    assert_eq!(store.get_connection(tenant, created.id).await.unwrap(), Some(deleted));
    assert_eq!(store.connection_handle(tenant, created.id).await.unwrap(), None);
    assert!(list_records(&*store, &records_of(&created, RecordKind::Account)).await.is_empty());
    assert_eq!(store.last_event_id().await.unwrap(), last_event, "no event appended");
    let leased = store.lease_connections(&lease("replica-a", now() + Duration::days(1), 10)).await.unwrap().items;
    assert!(leased.is_empty(), "the deleted connection became due again");
}
conformance!(a_deleted_connection_cannot_be_saved);

async fn deleting_a_connection_destroys_its_handle_and_records_once(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let (ready, sample) = connection_with_sample(&*store, tenant).await;
    let survivor = new_connection(&*store, tenant, "user-2", PROVIDER).await;
    store.save_connection(&moved(&survivor, ConnectionState::Ready), None, Some(&sample.data)).await.unwrap();

    let deleted = moved(&ready, ConnectionState::Deleted);
    let event = store.delete_connection(&deleted).await.unwrap().expect("the first delete applies");
    assert_eq!(event.connection, deleted);
    assert_eq!(event.occurred_at, deleted.updated_at);

    assert_eq!(store.connection_handle(tenant, ready.id).await.unwrap(), None, "the handle survived");
    assert_eq!(store.get_connection(tenant, ready.id).await.unwrap(), Some(deleted.clone()));
    for kind in [RecordKind::Account, RecordKind::Transaction, RecordKind::Position, RecordKind::Statement] {
        assert!(list_records(&*store, &records_of(&ready, kind)).await.is_empty(), "{kind:?} records remain");
    }
    assert!(!store.has_record(tenant, ready.id, RecordKind::Account, sample.checking).await.unwrap());

    let again = moved(&deleted, ConnectionState::Deleted);
    assert_eq!(store.delete_connection(&again).await.unwrap(), None, "the second delete applies");
    assert_eq!(store.last_event_id().await.unwrap(), event.event_id, "the second delete appended an event");
    assert_eq!(store.get_connection(tenant, ready.id).await.unwrap(), Some(deleted));

    // Another connection's identical data is untouched.
    assert_eq!(store.connection_handle(tenant, survivor.id).await.unwrap(), Some(handle_of(&survivor)));
    let survivors = list_records(&*store, &records_of(&survivor, RecordKind::Account)).await;
    assert_eq!(survivors.len(), sample.data.accounts.len());
}
conformance!(deleting_a_connection_destroys_its_handle_and_records_once);

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

async fn named_records_list_by_name_ascending(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let (ready, sample) = connection_with_sample(&*store, tenant).await;
    let data = &sample.data;

    let accounts = decode::<Account>(list_records(&*store, &records_of(&ready, RecordKind::Account)).await);
    assert_eq!(accounts, by_name(&data.accounts, |a| (a.name.clone(), a.id)));
    let names: Vec<String> = accounts.iter().map(|a| a.name.to_lowercase()).collect();
    assert_eq!(names, ["alpha checking", "bills", "mid card", "zeta savings", "zeta savings"]);

    let portfolios = decode::<Portfolio>(list_records(&*store, &records_of(&ready, RecordKind::Portfolio)).await);
    assert_eq!(portfolios, by_name(&data.portfolios, |p| (p.name.clone(), p.id)));

    let positions = decode::<Position>(list_records(&*store, &records_of(&ready, RecordKind::Position)).await);
    assert_eq!(positions, by_name(&data.positions, |p| (p.instrument.name.clone(), p.id)));
}
conformance!(named_records_list_by_name_ascending);

async fn dated_records_list_newest_first(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let (ready, sample) = connection_with_sample(&*store, tenant).await;
    let data = &sample.data;

    let transactions = decode::<Transaction>(list_records(&*store, &records_of(&ready, RecordKind::Transaction)).await);
    assert_eq!(transactions, newest_first(&data.transactions, |t| (t.date, t.id)));

    let trades = records_of(&ready, RecordKind::PortfolioTransaction);
    let trades = decode::<PortfolioTransaction>(list_records(&*store, &trades).await);
    assert_eq!(trades, newest_first(&data.portfolio_transactions, |t| (t.date, t.id)));

    let statements = decode::<Statement>(list_records(&*store, &records_of(&ready, RecordKind::Statement)).await);
    assert_eq!(statements, newest_first(&data.statements, |s| (s.period_start, s.id)));
    let periods: Vec<Date> = statements.iter().map(|s| s.period_start).collect();
    assert_eq!(periods, [day(2026, 1, 1), day(2025, 12, 1), day(2025, 11, 1)]);
}
conformance!(dated_records_list_newest_first);

async fn paging_records_yields_each_once_in_the_order_of_one_page(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let (ready, sample) = connection_with_sample(&*store, tenant).await;
    let data = &sample.data;
    let kinds = [
        (RecordKind::Account, data.accounts.len()),
        (RecordKind::Transaction, data.transactions.len()),
        (RecordKind::Portfolio, data.portfolios.len()),
        (RecordKind::Position, data.positions.len()),
        (RecordKind::PortfolioTransaction, data.portfolio_transactions.len()),
        (RecordKind::Statement, data.statements.len()),
    ];

    for (kind, count) in kinds {
        let query = records_of(&ready, kind);
        let one_page = ids(&list_records(&*store, &query).await, |r| r.id);
        assert_eq!(one_page.len(), count, "{kind:?}: one page");
        let (paged, pages) =
            all_pages(2, async |page| store.list_records(&RecordQuery { page, ..query.clone() }).await.unwrap()).await;
        assert_eq!(ids(&paged, |r| r.id), one_page, "{kind:?}: pages of 2");
        assert_eq!(pages, count.div_ceil(2), "{kind:?}: pages of 2");
    }

    // Cursors combine with filters: the checking account's transactions of 5 to 7 January,
    // one per page, across the two on the 5th.
    let query = RecordQuery {
        parent_id: Some(sample.checking),
        dates: DateRange { start: Some(day(2026, 1, 5)), end: Some(day(2026, 1, 7)) },
        ..records_of(&ready, RecordKind::Transaction)
    };
    let (paged, _) =
        all_pages(1, async |page| store.list_records(&RecordQuery { page, ..query.clone() }).await.unwrap()).await;
    let in_range: Vec<Transaction> = data
        .transactions
        .iter()
        .filter(|t| t.account_id == sample.checking && (day(2026, 1, 5)..=day(2026, 1, 7)).contains(&t.date))
        .cloned()
        .collect();
    assert_eq!(in_range.len(), 3);
    assert_eq!(decode::<Transaction>(paged), newest_first(&in_range, |t| (t.date, t.id)));
}
conformance!(paging_records_yields_each_once_in_the_order_of_one_page);

async fn records_filter_by_parent_and_inclusive_date_range(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let (ready, sample) = connection_with_sample(&*store, tenant).await;
    let data = &sample.data;
    let transactions = async |parent_id: Option<Uuid>, start: Option<Date>, end: Option<Date>| {
        let query =
            RecordQuery { parent_id, dates: DateRange { start, end }, ..records_of(&ready, RecordKind::Transaction) };
        decode::<Transaction>(list_records(&*store, &query).await)
    };
    let expected = |keep: &dyn Fn(&Transaction) -> bool| {
        let kept: Vec<Transaction> = data.transactions.iter().filter(|t| keep(t)).cloned().collect();
        newest_first(&kept, |t| (t.date, t.id))
    };

    let savings = transactions(Some(sample.savings), None, None).await;
    assert_eq!(savings, expected(&|t| t.account_id == sample.savings));
    assert_eq!(savings.len(), 2);

    let (start, end) = (day(2026, 1, 5), day(2026, 1, 8));
    let bounded = transactions(None, Some(start), Some(end)).await;
    assert_eq!(bounded, expected(&|t| t.date >= start && t.date <= end), "both bounds are inclusive");
    assert_eq!(bounded.len(), 5);
    assert_eq!(transactions(None, Some(start), None).await, expected(&|t| t.date >= start));
    assert_eq!(transactions(None, None, Some(end)).await, expected(&|t| t.date <= end));
    let one_day = transactions(Some(sample.checking), Some(start), Some(start)).await;
    assert_eq!(one_day, expected(&|t| t.account_id == sample.checking && t.date == start));
    assert_eq!(one_day.len(), 2);
    assert!(transactions(None, Some(day(2026, 1, 11)), None).await.is_empty());

    let positions = RecordQuery { parent_id: Some(sample.retirement), ..records_of(&ready, RecordKind::Position) };
    let positions = decode::<Position>(list_records(&*store, &positions).await);
    let retirement: Vec<Position> =
        data.positions.iter().filter(|p| p.portfolio_id == sample.retirement).cloned().collect();
    assert_eq!(positions, by_name(&retirement, |p| (p.instrument.name.clone(), p.id)));
    assert_eq!(positions.len(), 3);

    let statements = RecordQuery {
        dates: DateRange { start: Some(day(2025, 12, 1)), end: Some(day(2025, 12, 1)) },
        ..records_of(&ready, RecordKind::Statement)
    };
    let statements = decode::<Statement>(list_records(&*store, &statements).await);
    let december: Vec<Uuid> = statements.iter().map(|s| s.id).collect();
    assert_eq!(december, vec![stable_id(ready.id, "statement", "st-dec")], "statements are dated by period start");
}
conformance!(records_filter_by_parent_and_inclusive_date_range);

async fn has_record_knows_exactly_the_stored_records(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let (ready, sample) = connection_with_sample(&*store, tenant).await;
    let other = new_connection(&*store, tenant, "user-2", PROVIDER).await;
    let transaction = sample.data.transactions[0].id;

    assert!(store.has_record(tenant, ready.id, RecordKind::Account, sample.checking).await.unwrap());
    assert!(store.has_record(tenant, ready.id, RecordKind::Transaction, transaction).await.unwrap());
    assert!(store.has_record(tenant, ready.id, RecordKind::Portfolio, sample.retirement).await.unwrap());
    assert!(!store.has_record(tenant, ready.id, RecordKind::Portfolio, sample.checking).await.unwrap(), "wrong kind");
    assert!(!store.has_record(tenant, ready.id, RecordKind::Account, Uuid::now_v7()).await.unwrap(), "unknown id");
    assert!(
        !store.has_record(tenant, other.id, RecordKind::Account, sample.checking).await.unwrap(),
        "other connection"
    );
    assert!(
        !store.has_record(new_tenant(), ready.id, RecordKind::Account, sample.checking).await.unwrap(),
        "other tenant"
    );
}
conformance!(has_record_knows_exactly_the_stored_records);

async fn another_tenant_sees_none_of_a_connections_records(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let (ready, _) = connection_with_sample(&*store, tenant).await;
    let intruder = new_tenant();
    for kind in [RecordKind::Account, RecordKind::Transaction, RecordKind::Portfolio, RecordKind::Statement] {
        let query = RecordQuery { tenant: intruder, ..records_of(&ready, kind) };
        assert!(store.list_records(&query).await.unwrap().items.is_empty(), "{kind:?}");
        assert!(!list_records(&*store, &records_of(&ready, kind)).await.is_empty(), "{kind:?} of the owner");
    }
}
conformance!(another_tenant_sees_none_of_a_connections_records);

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// Two tenants' connections and their events, in the order they happened.
struct History {
    tenant: TenantId,
    other_tenant: TenantId,
    /// Tenant's user-1 at the sandbox.
    first: Connection,
    /// Tenant's user-2 at vumi.
    second: Connection,
    /// Events: first created, other tenant's created, second created, first ready, second ready.
    events: Vec<ConnectionEvent>,
}

async fn history(store: &dyn Store) -> History {
    let (tenant, other_tenant) = (new_tenant(), new_tenant());
    let first = connection(tenant, "user-1", PROVIDER);
    let foreign = connection(other_tenant, "user-1", PROVIDER);
    let second = connection(tenant, "user-2", "vumi");
    let mut events = vec![
        create_connection(store, &first, now()).await,
        create_connection(store, &foreign, now()).await,
        create_connection(store, &second, now()).await,
    ];
    let (first, event) = save_in_state(store, &first, ConnectionState::Ready).await;
    events.push(event);
    let (second, event) = save_in_state(store, &second, ConnectionState::Ready).await;
    events.push(event);
    History { tenant, other_tenant, first, second, events }
}

async fn events_after_returns_the_tenants_later_events_in_order(store: Arc<dyn Store>) {
    let History { tenant, other_tenant, first, second, events } = history(&*store).await;
    let after = async |tenant: TenantId, filter: EventFilter, after: i64, limit: i64| {
        store.events_after(tenant, &filter, after, limit).await.unwrap()
    };
    let pick = |indexes: &[usize]| indexes.iter().map(|&i| events[i].clone()).collect::<Vec<_>>();
    let all = EventFilter::default();

    assert_eq!(after(tenant, all.clone(), 0, 100).await, pick(&[0, 2, 3, 4]));
    assert_eq!(after(tenant, all.clone(), events[2].event_id, 100).await, pick(&[3, 4]), "only later events");
    assert_eq!(after(tenant, all.clone(), 0, 2).await, pick(&[0, 2]), "the oldest up to the limit");
    assert_eq!(after(tenant, all.clone(), events[4].event_id, 100).await, pick(&[]));
    assert_eq!(after(other_tenant, all.clone(), 0, 100).await, pick(&[1]));

    let by_connection = EventFilter { connection_id: Some(first.id), ..EventFilter::default() };
    assert_eq!(after(tenant, by_connection.clone(), 0, 100).await, pick(&[0, 3]));
    assert_eq!(after(other_tenant, by_connection, 0, 100).await, pick(&[]), "another tenant's connection");
    let by_user = EventFilter { external_user_id: Some("user-2".to_owned()), ..EventFilter::default() };
    assert_eq!(after(tenant, by_user, 0, 100).await, pick(&[2, 4]));
    let by_provider = EventFilter { provider: Some(PROVIDER.to_owned()), ..EventFilter::default() };
    assert_eq!(after(tenant, by_provider, 0, 100).await, pick(&[0, 3]));
    let mismatched = EventFilter { connection_id: Some(second.id), provider: Some(PROVIDER.to_owned()), ..all };
    assert_eq!(after(tenant, mismatched, 0, 100).await, pick(&[]), "filters combine");
}
conformance!(events_after_returns_the_tenants_later_events_in_order);

async fn tail_events_returns_every_tenants_events_in_order(store: Arc<dyn Store>) {
    let History { events, .. } = history(&*store).await;
    assert_eq!(store.tail_events(0, 100).await.unwrap(), events);
    assert_eq!(store.tail_events(events[1].event_id, 2).await.unwrap(), events[2..4].to_vec());
    assert_eq!(store.tail_events(events[4].event_id, 100).await.unwrap(), Vec::new());
}
conformance!(tail_events_returns_every_tenants_events_in_order);

async fn last_event_id_is_the_newest_event_or_zero(store: Arc<dyn Store>) {
    assert_eq!(store.last_event_id().await.unwrap(), 0, "an empty store");
    let History { events, .. } = history(&*store).await;
    let newest = events.iter().map(|e| e.event_id).max().unwrap();
    assert_eq!(store.last_event_id().await.unwrap(), newest);
}
conformance!(last_event_id_is_the_newest_event_or_zero);

async fn current_events_hold_the_latest_event_of_each_live_connection(store: Arc<dyn Store>) {
    let History { tenant, other_tenant, first, second, events } = history(&*store).await;
    let current = async |tenant: TenantId, filter: EventFilter| store.current_events(tenant, &filter).await.unwrap();
    let all = EventFilter::default();

    assert_eq!(current(tenant, all.clone()).await, vec![events[3].clone(), events[4].clone()]);
    assert_eq!(current(other_tenant, all.clone()).await, vec![events[1].clone()]);
    let by_user = EventFilter { external_user_id: Some("user-2".to_owned()), ..EventFilter::default() };
    assert_eq!(current(tenant, by_user).await, vec![events[4].clone()]);

    let (refreshed, refresh) = save_in_state(&*store, &first, ConnectionState::Refreshing).await;
    assert_eq!(current(tenant, all.clone()).await, vec![events[4].clone(), refresh], "oldest first");

    let deleted = store.delete_connection(&moved(&second, ConnectionState::Deleted)).await.unwrap().expect("deleted");
    let (_, refresh) = save_in_state(&*store, &refreshed, ConnectionState::Ready).await;
    assert_eq!(current(tenant, all).await, vec![refresh], "a deleted connection is left out");
    let named = EventFilter { connection_id: Some(second.id), ..EventFilter::default() };
    assert_eq!(current(tenant, named).await, vec![deleted], "unless the filter names it");
    let by_provider = EventFilter { provider: Some("vumi".to_owned()), ..EventFilter::default() };
    assert_eq!(current(tenant, by_provider).await, Vec::new(), "a filter that does not name it");
}
conformance!(current_events_hold_the_latest_event_of_each_live_connection);

// ---------------------------------------------------------------------------------------------
// Leases
// ---------------------------------------------------------------------------------------------

async fn due_connections_are_leased_once_until_the_lease_lapses(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let t0 = now();
    let overdue = connection(tenant, "user-1", PROVIDER);
    let due_now = connection(tenant, "user-2", PROVIDER);
    let later = connection(tenant, "user-3", PROVIDER);
    create_connection(&*store, &overdue, t0 - Duration::seconds(1)).await;
    create_connection(&*store, &due_now, t0).await;
    create_connection(&*store, &later, t0 + Duration::hours(1)).await;
    let take = async |owner: &str, at: Timestamp, limit: i64| {
        store.lease_connections(&lease(owner, at, limit)).await.unwrap().items
    };

    assert_eq!(take("replica-a", t0, 1).await, vec![overdue.clone()], "the longest due first, up to the limit");
    assert_eq!(take("replica-a", t0, 10).await, vec![due_now.clone()]);
    assert!(take("replica-b", t0, 10).await.is_empty(), "leased work was leased again");
    assert!(take("replica-b", t0 + Duration::seconds(29), 10).await.is_empty(), "a live lease was taken over");
    let taken_over = store.lease_connections(&lease("replica-b", t0 + Duration::seconds(31), 10)).await.unwrap();
    assert_eq!(leased_ids(&taken_over.items), BTreeSet::from([overdue.id, due_now.id]), "lapsed leases");
    assert_eq!(taken_over.taken_over, 2, "both were taken over from a lapsed lease");
    assert!(!leased_ids(&take("replica-c", t0 + Duration::minutes(59), 10).await).contains(&later.id));
}
conformance!(due_connections_are_leased_once_until_the_lease_lapses);

async fn rescheduling_or_saving_a_connection_frees_its_lease(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let t0 = now();
    let polled = connection(tenant, "user-1", PROVIDER);
    let synced = connection(tenant, "user-2", PROVIDER);
    let settled = connection(tenant, "user-3", PROVIDER);
    for connection in [&polled, &synced, &settled] {
        create_connection(&*store, connection, t0).await;
    }
    let take = async |owner: &str, at: Timestamp| {
        leased_ids(&store.lease_connections(&lease(owner, at, 10)).await.unwrap().items)
    };
    assert_eq!(take("replica-a", t0).await.len(), 3);

    // Before replica-a's lease lapses (t0 + 30 s): each change frees the lease at once.
    store.reschedule_connection(tenant, polled.id, t0 + Duration::seconds(10)).await.unwrap();
    let synced_again = moved(&synced, ConnectionState::Refreshing);
    store.save_connection(&synced_again, Some(t0 + Duration::seconds(10)), None).await.unwrap().expect("saved");
    store.save_connection(&moved(&settled, ConnectionState::Ready), None, None).await.unwrap().expect("saved");
    assert_eq!(take("replica-b", t0 + Duration::seconds(9)).await, BTreeSet::new(), "not yet due again");
    let released = store.lease_connections(&lease("replica-b", t0 + Duration::seconds(10), 10)).await.unwrap();
    assert_eq!(leased_ids(&released.items), BTreeSet::from([polled.id, synced.id]));
    assert_eq!(released.taken_over, 0, "released leases are not takeovers");

    // A connection saved with no next poll is never due.
    assert!(!take("replica-c", t0 + Duration::days(365)).await.contains(&settled.id));
    // Rescheduling through another tenant does nothing.
    store.reschedule_connection(new_tenant(), settled.id, t0).await.unwrap();
    assert!(!take("replica-c", t0 + Duration::days(366)).await.contains(&settled.id));
}
conformance!(rescheduling_or_saving_a_connection_frees_its_lease);

async fn due_link_sessions_are_leased_once_until_the_lease_lapses(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let t0 = now();
    let create = async |next_poll_at: Option<Timestamp>| {
        let session = link_session(tenant, "user-1");
        store.create_link_session(&session, None, next_poll_at).await.unwrap()
    };
    let overdue = create(Some(t0 - Duration::seconds(1))).await;
    let due_now = create(Some(t0)).await;
    let later = create(Some(t0 + Duration::hours(1))).await;
    let settled = create(None).await;
    let take = async |owner: &str, at: Timestamp, limit: i64| {
        store.lease_link_sessions(&lease(owner, at, limit)).await.unwrap().items
    };

    assert_eq!(take("replica-a", t0, 1).await, vec![overdue.clone()], "the longest due first, up to the limit");
    assert_eq!(take("replica-a", t0, 10).await, vec![due_now.clone()]);
    assert!(take("replica-b", t0, 10).await.is_empty(), "leased work was leased again");
    assert!(take("replica-b", t0 + Duration::seconds(29), 10).await.is_empty(), "a live lease was taken over");
    let taken_over = store.lease_link_sessions(&lease("replica-b", t0 + Duration::seconds(31), 10)).await.unwrap();
    assert_eq!(session_ids(&taken_over.items), BTreeSet::from([overdue.id, due_now.id]), "lapsed leases");
    assert_eq!(taken_over.taken_over, 2, "both were taken over from a lapsed lease");
    let much_later = session_ids(&take("replica-c", t0 + Duration::days(1), 10).await);
    assert!(much_later.contains(&later.id));
    assert!(!much_later.contains(&settled.id), "a session with no next poll was leased");
}
conformance!(due_link_sessions_are_leased_once_until_the_lease_lapses);

async fn rescheduling_or_updating_a_link_session_frees_its_lease(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let t0 = now();
    let polled = link_session(tenant, "user-1");
    let progressed = link_session(tenant, "user-2");
    let finished = link_session(tenant, "user-3");
    for session in [&polled, &progressed, &finished] {
        store.create_link_session(session, None, Some(t0)).await.unwrap();
    }
    let take = async |owner: &str, at: Timestamp| {
        session_ids(&store.lease_link_sessions(&lease(owner, at, 10)).await.unwrap().items)
    };
    assert_eq!(take("replica-a", t0).await.len(), 3);

    // Before replica-a's lease lapses (t0 + 30 s): each change frees the lease at once.
    store.reschedule_link_session(tenant, polled.id, t0 + Duration::seconds(10)).await.unwrap();
    let mut connecting = progressed.clone();
    connecting.state = LinkSessionState::Connecting;
    connecting.updated_at = now();
    let update = LinkSessionUpdate {
        session: &connecting,
        from: LinkSessionState::Created,
        next_poll_at: Some(t0 + Duration::seconds(10)),
        issued: None,
    };
    assert!(store.update_link_session(update).await.unwrap());
    let mut failed = finished.clone();
    failed.state = LinkSessionState::Failed;
    failed.failure_reason = Some(ErrorReason::InvalidCredentials);
    failed.updated_at = now();
    let update =
        LinkSessionUpdate { session: &failed, from: LinkSessionState::Created, next_poll_at: None, issued: None };
    assert!(store.update_link_session(update).await.unwrap());
    assert_eq!(take("replica-b", t0 + Duration::seconds(9)).await, BTreeSet::new(), "not yet due again");
    let leased = store.lease_link_sessions(&lease("replica-b", t0 + Duration::seconds(10), 10)).await.unwrap().items;
    assert_eq!(session_ids(&leased), BTreeSet::from([polled.id, progressed.id]));
    assert!(leased.contains(&connecting), "a leased session reads as updated");

    // A session updated with no next poll is never due.
    assert!(!take("replica-c", t0 + Duration::days(365)).await.contains(&finished.id));
}
conformance!(rescheduling_or_updating_a_link_session_frees_its_lease);

async fn concurrent_leases_never_hand_out_the_same_work_twice(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let t0 = now();
    let (mut connections, mut sessions) = (BTreeSet::new(), BTreeSet::new());
    for i in 0..12 {
        let connection = connection(tenant, &format!("user-{i}"), PROVIDER);
        create_connection(&*store, &connection, t0).await;
        connections.insert(connection.id);
        let session = link_session(tenant, &format!("user-{i}"));
        store.create_link_session(&session, None, Some(t0)).await.unwrap();
        sessions.insert(session.id);
    }
    let leases: Vec<Lease> = (0..4).map(|i| lease(&format!("replica-{i}"), t0, 3)).collect();
    let latecomer = lease("replica-late", t0, 100);

    let taken = futures::future::join_all(leases.iter().map(|lease| store.lease_connections(lease))).await;
    let mut leased = BTreeSet::new();
    for connection in taken.into_iter().flat_map(|taken| taken.expect("lease answers").items) {
        assert!(leased.insert(connection.id), "connection {} leased twice", connection.id);
    }
    for connection in store.lease_connections(&latecomer).await.unwrap().items {
        assert!(leased.insert(connection.id), "connection {} leased twice", connection.id);
    }
    assert_eq!(leased, connections, "every due connection leased once");

    let taken = futures::future::join_all(leases.iter().map(|lease| store.lease_link_sessions(lease))).await;
    let mut leased = BTreeSet::new();
    for session in taken.into_iter().flat_map(|taken| taken.expect("lease answers").items) {
        assert!(leased.insert(session.id), "link session {} leased twice", session.id);
    }
    for session in store.lease_link_sessions(&latecomer).await.unwrap().items {
        assert!(leased.insert(session.id), "link session {} leased twice", session.id);
    }
    assert_eq!(leased, sessions, "every due link session leased once");
}
conformance!(concurrent_leases_never_hand_out_the_same_work_twice);

fn delivery(provider: &str, key: &str, subject: Option<Vec<u8>>, received_at: Timestamp) -> InboxDelivery {
    InboxDelivery {
        provider: provider.to_owned(),
        delivery_key: key.to_owned(),
        event: "connection.updated".to_owned(),
        subject_hash: subject,
        body_sealed: format!("{{\"key\":\"{key}\"}}").into_bytes(),
        received_at,
    }
}

async fn webhook_deliveries_are_kept_once_and_make_their_connection_due_once(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let t0 = now();
    let named = connection(tenant, "user-1", PROVIDER);
    let other = connection(tenant, "user-2", PROVIDER);
    create_connection(&*store, &named, t0 + Duration::hours(6)).await;
    create_connection(&*store, &other, t0 + Duration::hours(6)).await;

    let first = delivery(PROVIDER, "whk_1", Some(upstream_ref_of(&named)), t0);
    assert!(store.record_webhook(&first).await.unwrap(), "a new delivery is kept");
    assert!(!store.record_webhook(&first).await.unwrap(), "a retried delivery is a duplicate");
    assert!(store.record_webhook(&delivery("other", "whk_1", None, t0)).await.unwrap(), "keys are per provider");
    let unknown_subject = linkgate::crypto::upstream_ref_hash(PROVIDER, "nobody");
    assert!(store.record_webhook(&delivery(PROVIDER, "whk_2", Some(unknown_subject), t0)).await.unwrap());
    // Another provider's id that happens to hash-collide on the id alone does not match.
    let wrong_provider = linkgate::crypto::upstream_ref_hash("other", &format!("upstream-{}", other.id));
    assert!(store.record_webhook(&delivery(PROVIDER, "whk_3", Some(wrong_provider), t0)).await.unwrap());

    let processed = store.process_webhooks(t0, 2).await.unwrap();
    assert_eq!(processed, WebhooksProcessed { deliveries: 2, connections: 1 }, "oldest first, up to the limit");
    let processed = store.process_webhooks(t0, 10).await.unwrap();
    assert_eq!(processed, WebhooksProcessed { deliveries: 2, connections: 0 });
    assert_eq!(store.process_webhooks(t0, 10).await.unwrap(), WebhooksProcessed::default(), "processed once");

    let due = leased_ids(&store.lease_connections(&lease("replica-a", t0, 10)).await.unwrap().items);
    assert_eq!(due, BTreeSet::from([named.id]), "only the named connection became due");
}
conformance!(webhook_deliveries_are_kept_once_and_make_their_connection_due_once);

async fn deleted_connections_are_not_woken_and_old_processed_deliveries_are_pruned(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let t0 = now();
    let deleted = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    let deleted = store.get_connection(tenant, deleted.id).await.unwrap().unwrap();
    store.delete_connection(&deleted).await.unwrap();
    let subject = Some(upstream_ref_of(&deleted));
    store.record_webhook(&delivery(PROVIDER, "old", subject.clone(), t0 - Duration::days(8))).await.unwrap();
    store.record_webhook(&delivery(PROVIDER, "new", subject, t0)).await.unwrap();

    assert_eq!(store.prune_webhooks(t0 - Duration::days(7), 10).await.unwrap(), 0, "unprocessed ones stay");
    assert_eq!(store.process_webhooks(t0, 10).await.unwrap(), WebhooksProcessed { deliveries: 2, connections: 0 });
    assert_eq!(store.prune_webhooks(t0 - Duration::days(7), 10).await.unwrap(), 1, "only the old one");
    assert!(
        store.record_webhook(&delivery(PROVIDER, "old", None, t0)).await.unwrap(),
        "a pruned key is no longer remembered"
    );
}
conformance!(deleted_connections_are_not_woken_and_old_processed_deliveries_are_pruned);

// ---------------------------------------------------------------------------------------------
// Provider sessions
// ---------------------------------------------------------------------------------------------

async fn one_holder_at_a_time_logs_in_and_its_session_is_what_everyone_reads(store: Arc<dyn Store>) {
    let key = format!("vumi/test/{}", Uuid::now_v7());
    let t0 = now();
    let lease = |holder: &'static str, at: Timestamp| {
        let (store, key) = (store.clone(), key.clone());
        async move { store.lease_provider_login(&key, holder, at, at + Duration::seconds(30)).await.unwrap() }
    };
    assert_eq!(store.provider_session(&key).await.unwrap(), None, "nothing stored yet");

    assert!(lease("replica-a", t0).await, "the first asker takes the lease");
    assert!(!lease("replica-b", t0 + Duration::seconds(1)).await, "a held lease keeps others out");
    assert!(lease("replica-a", t0 + Duration::seconds(1)).await, "its holder may renew it");
    assert_eq!(store.provider_session(&key).await.unwrap(), None, "a lease alone stores no session");

    let expires_at = t0 + Duration::hours(1);
    assert!(!store.save_provider_session(&key, "replica-b", b"sealed-b", expires_at).await.unwrap(), "not b's lease");
    assert!(store.save_provider_session(&key, "replica-a", b"sealed-a", expires_at).await.unwrap());
    assert_eq!(store.provider_session(&key).await.unwrap(), Some((b"sealed-a".to_vec(), expires_at)));

    // Saving released the lease; a failed login releases it too.
    assert!(lease("replica-b", t0 + Duration::seconds(2)).await, "saving released the lease");
    store.release_provider_login(&key, "replica-a").await.unwrap();
    assert!(!lease("replica-a", t0 + Duration::seconds(2)).await, "only the holder's release counts");
    store.release_provider_login(&key, "replica-b").await.unwrap();
    assert!(lease("replica-a", t0 + Duration::seconds(3)).await, "released");
    assert_eq!(store.provider_session(&key).await.unwrap(), Some((b"sealed-a".to_vec(), expires_at)), "kept");

    // A holder that crashed: its lease lapses and another takes over.
    assert!(lease("replica-b", t0 + Duration::seconds(40)).await, "a lapsed lease is taken over");
    assert!(!store.save_provider_session(&key, "replica-a", b"late", expires_at).await.unwrap(), "too late");
}
conformance!(one_holder_at_a_time_logs_in_and_its_session_is_what_everyone_reads);

async fn audit_records_are_appended_in_order_in_large_batches_and_read_back_by_filter(store: Arc<dyn Store>) {
    use linkgate::domain::{AuditAction, AuditEntry};
    let (tenant, other) = (new_tenant(), new_tenant());
    let resource = Uuid::now_v7();
    // More than one multi-row INSERT's worth, across two tenants.
    let entries: Vec<AuditEntry> = (0..2500)
        .map(|i| AuditEntry {
            id: 0,
            occurred_at: now(),
            tenant_id: if i % 2 == 0 { tenant } else { other },
            api_key_id: (i % 3 == 0).then(Uuid::now_v7),
            action: if i % 5 == 0 { AuditAction::Exchange } else { AuditAction::Read },
            resource_type: "connection".to_owned(),
            resource_id: if i == 2498 { resource } else { Uuid::now_v7() },
            request_id: format!("request-{i}"),
        })
        .collect();
    store.append_audit(&entries).await.unwrap();

    let mine = store.list_audit(Some(tenant), None, 5000).await.unwrap();
    assert_eq!(mine.len(), 1250, "every record of the tenant, none of the other's");
    let expected: Vec<String> = (0..2500).rev().filter(|i| i % 2 == 0).map(|i| format!("request-{i}")).collect();
    assert_eq!(mine.iter().map(|e| e.request_id.clone()).collect::<Vec<_>>(), expected, "newest first, in order");
    let first = mine.last().unwrap();
    assert_eq!((first.action, first.api_key_id.is_some()), (AuditAction::Exchange, true), "fields survive");
    let about = store.list_audit(None, Some(resource), 10).await.unwrap();
    assert_eq!(about.iter().map(|e| e.request_id.as_str()).collect::<Vec<_>>(), ["request-2498"]);
}
conformance!(audit_records_are_appended_in_order_in_large_batches_and_read_back_by_filter);

async fn one_connection_can_be_leased_only_while_no_other_lease_holds_it(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let t0 = now();
    let connection = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    let until = t0 + Duration::seconds(60);
    assert!(
        !store.lease_connection(new_tenant(), connection.id, "rotation", t0, until).await.unwrap(),
        "another tenant's"
    );
    assert!(store.lease_connection(tenant, connection.id, "rotation", t0, until).await.unwrap());
    assert!(!store.lease_connection(tenant, connection.id, "other", t0, until).await.unwrap(), "a live lease holds");
    // Due, but held: the sync engine cannot take it before the lease lapses.
    let during = store.lease_connections(&lease("replica-a", t0 + Duration::seconds(59), 10)).await.unwrap().items;
    assert!(!leased_ids(&during).contains(&connection.id), "the sync engine took a held connection");
    store.reschedule_connection(tenant, connection.id, t0).await.unwrap();
    assert!(
        store.lease_connection(tenant, connection.id, "other", t0, until).await.unwrap(),
        "a released lease is free"
    );
    store.delete_connection(&store.get_connection(tenant, connection.id).await.unwrap().unwrap()).await.unwrap();
    assert!(
        !store.lease_connection(tenant, connection.id, "x", t0 + Duration::hours(1), until).await.unwrap(),
        "deleted"
    );
}
conformance!(one_connection_can_be_leased_only_while_no_other_lease_holds_it);

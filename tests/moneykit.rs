//! MoneyKit end to end: the MoneyKit mock in-process on a random port, a real linkgate pointed at
//! it, and every step driven through linkgate's gRPC API (Connect simulated through the mock's
//! admin API); then the access-token renewal and a fault matrix. Timings are short (polls every
//! 100 ms, a 600 ms first import) so the file stays fast.

#[path = "support/mod.rs"]
mod support;

use linkgate::crypto::Sealer;
use linkgate::domain::stable_id;
use linkgate::pb;
use linkgate_mocks::MockServer;
use linkgate_mocks::moneykit::{self, CHASE, MoneyKitMockOptions};
use std::collections::{BTreeSet, HashMap};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::database::{Backend, TestDatabase};
use support::feed::{FeedCopy, listed};
use support::server::{CLIENT_ID, PATIENCE, QUICK, SECRET, TestApp, Timing, Upstream, amount, repair_request};
use tonic_types::StatusExt;
use uuid::Uuid;

const EXCHANGE: &str = "/link-session/exchange-token";
const REDIRECT: &str = "https://app.example/moneykit-return";

/// The MoneyKit mock, a linkgate in front of it (which it derefs to), and the mock's admin
/// client. Both stop when dropped.
struct MoneyKitApp {
    gateway: TestApp,
    mock: MockServer,
    admin: reqwest::Client,
    database: TestDatabase,
}

impl Deref for MoneyKitApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.gateway
    }
}

impl DerefMut for MoneyKitApp {
    fn deref_mut(&mut self) -> &mut TestApp {
        &mut self.gateway
    }
}

async fn spawn(mock: MoneyKitMockOptions, timing: Timing) -> MoneyKitApp {
    spawn_with(mock, timing, &[]).await
}

/// As [`spawn`], with the flags `overrides` replacing or extending the test defaults.
async fn spawn_with(mock: MoneyKitMockOptions, timing: Timing, overrides: &[(&'static str, &str)]) -> MoneyKitApp {
    // Only the tests' admin client needs a process-wide provider; linkgate's own client brings ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mock = moneykit::spawn("127.0.0.1:0".parse().unwrap(), mock).await.expect("mock binds");
    let database = TestDatabase::create(Backend::Sqlite).await;
    let key = Sealer::generate_key();
    let base_url = mock.base_url();
    let upstream = Upstream {
        database_url: &database.url,
        encryption_key: &key,
        provider: "moneykit",
        base_url: &base_url,
        client_secret: SECRET,
        timing: &timing,
    };
    let gateway = TestApp::start(upstream.settings(overrides), None, None).await;
    MoneyKitApp { gateway, mock, admin: reqwest::Client::new(), database }
}

/// As [`spawn_with`], with linkgate's HTTP listener on a port of its own and that address as its
/// public webhook URL, so MoneyKit links are given its webhook route and the mock delivers there.
async fn spawn_with_webhooks(
    mock: MoneyKitMockOptions,
    timing: Timing,
    overrides: &[(&'static str, &str)],
) -> MoneyKitApp {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (http_addr, public) = (format!("127.0.0.1:{port}"), format!("http://127.0.0.1:{port}"));
    let mut flags = vec![("--http-addr", http_addr.as_str()), ("--public-webhook-url", public.as_str())];
    flags.extend_from_slice(overrides);
    spawn_with(mock, timing, &flags).await
}

/// Mock timings of the fault tests: the first import is over at once.
fn instant_mock() -> MoneyKitMockOptions {
    MoneyKitMockOptions { import_delay: Duration::ZERO, ..MoneyKitMockOptions::default() }
}

impl MoneyKitApp {
    async fn admin_post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let response = self.admin.post(format!("{}/{path}", self.mock.admin_url())).json(&body).send().await.unwrap();
        assert!(response.status().is_success(), "admin {path} accepted {body}");
        response.json().await.unwrap_or(serde_json::Value::Null)
    }

    /// Scripts a fault through the mock's admin API.
    async fn fault(&self, rule: serde_json::Value) {
        self.admin_post("faults", rule).await;
    }

    /// Calls the mock received per endpoint.
    async fn calls(&self) -> HashMap<String, u64> {
        let report: serde_json::Value =
            self.admin.get(format!("{}/calls", self.mock.admin_url())).send().await.unwrap().json().await.unwrap();
        serde_json::from_value(report["calls"].clone()).unwrap()
    }

    async fn call_count(&self, path: &str) -> u64 {
        self.calls().await.get(path).copied().unwrap_or(0)
    }

    /// Every token and link id the mock issued.
    async fn issued(&self) -> Vec<String> {
        self.admin.get(format!("{}/tokens", self.mock.admin_url())).send().await.unwrap().json().await.unwrap()
    }

    /// The id of the first link the mock issued.
    async fn link_id(&self) -> String {
        self.issued().await.into_iter().find(|t| t.starts_with("mk_") && t.len() == 35).expect("a link id")
    }

    /// The requests the mock received with `method` on `path`, oldest first, as the mock keeps
    /// them (`{method, path, query, headers, body}`).
    async fn requests_to(&self, method: &str, path: &str) -> Vec<serde_json::Value> {
        let all: Vec<serde_json::Value> =
            self.admin.get(format!("{}/requests", self.mock.admin_url())).send().await.unwrap().json().await.unwrap();
        all.into_iter().filter(|r| r["method"] == method && r["path"] == path).collect()
    }

    /// The mock's latest calls, oldest first, as `METHOD /path?query`.
    async fn call_log(&self) -> Vec<String> {
        let report: serde_json::Value =
            self.admin.get(format!("{}/calls", self.mock.admin_url())).send().await.unwrap().json().await.unwrap();
        serde_json::from_value(report["log"].clone()).unwrap()
    }

    /// The cursors of the transaction sync calls (M19) among the mock's latest calls, in order:
    /// `None` for a read from the start.
    async fn sync_cursors(&self) -> Vec<Option<String>> {
        let sync_calls = self.call_log().await.into_iter().filter(|call| call.contains("/transactions/sync"));
        sync_calls
            .map(|call| {
                let query = call.split_once('?').map_or("", |(_, query)| query).to_owned();
                form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == "cursor").map(|(_, c)| c.into_owned())
            })
            .collect()
    }

    /// The link's transactions at MoneyKit now, newest first.
    async fn upstream(&self, link_id: &str) -> Vec<serde_json::Value> {
        let url = format!("{}/transactions?link_id={link_id}", self.mock.admin_url());
        let answer: serde_json::Value = self.admin.get(url).send().await.unwrap().json().await.unwrap();
        serde_json::from_value(answer["transactions"].clone()).unwrap()
    }

    /// The link's transactions at MoneyKit now, as linkgate ids of `connection_id`.
    async fn upstream_ids(&self, link_id: &str, connection_id: &str) -> BTreeSet<String> {
        let connection_id = Uuid::parse_str(connection_id).unwrap();
        let upstream = self.upstream(link_id).await;
        upstream
            .iter()
            .map(|t| stable_id(connection_id, "transaction", t["transaction_id"].as_str().unwrap()).to_string())
            .collect()
    }

    /// The MoneyKit id of the link's transaction described `description` now.
    async fn upstream_id(&self, link_id: &str, description: &str) -> String {
        let upstream = self.upstream(link_id).await;
        let found = upstream.iter().find(|t| t["description"] == description);
        found.and_then(|t| t["transaction_id"].as_str()).expect("MoneyKit serves it").to_owned()
    }

    /// Waits until the mock has had no call for 300 ms: the webhooks of the first import are
    /// delivered and the polls they caused are over.
    async fn settle(&self) {
        let total = || async {
            let report: serde_json::Value =
                self.admin.get(format!("{}/calls", self.mock.admin_url())).send().await.unwrap().json().await.unwrap();
            report["total"].as_u64().unwrap()
        };
        let mut last = total().await;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = total().await;
            if now == last {
                return;
            }
            last = now;
        }
    }

    /// The sync cursor linkgate stored for `connection_id`.
    async fn stored_cursor(&self, connection_id: &str) -> Option<String> {
        use sqlx::Connection;
        let mut database = sqlx::SqliteConnection::connect(&self.database.url).await.unwrap();
        let (cursor,): (Option<String>,) = sqlx::query_as("SELECT upstream_cursor FROM connections WHERE id = $1")
            .bind(Uuid::parse_str(connection_id).unwrap())
            .fetch_one(&mut database)
            .await
            .unwrap();
        cursor
    }

    /// How many link sessions linkgate stored.
    async fn link_session_rows(&self) -> i64 {
        use sqlx::Connection;
        let mut database = sqlx::SqliteConnection::connect(&self.database.url).await.unwrap();
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM link_sessions").fetch_one(&mut database).await.unwrap();
        count
    }

    /// Replaces the sync cursor linkgate stored for `connection_id`.
    async fn store_cursor(&self, connection_id: &str, cursor: &str) {
        use sqlx::Connection;
        let mut database = sqlx::SqliteConnection::connect(&self.database.url).await.unwrap();
        sqlx::query("UPDATE connections SET upstream_cursor = $2 WHERE id = $1")
            .bind(Uuid::parse_str(connection_id).unwrap())
            .bind(cursor)
            .execute(&mut database)
            .await
            .unwrap();
    }

    /// RefreshConnection of `products` of `connection_id`.
    async fn refresh(
        &mut self,
        connection_id: &str,
        products: &[pb::Product],
    ) -> Result<pb::Connection, tonic::Status> {
        let request = pb::RefreshConnectionRequest {
            connection_id: connection_id.into(),
            products: products.iter().map(|p| *p as i32).collect(),
            ..Default::default()
        };
        self.connections.refresh_connection(request).await.map(|r| r.into_inner().connection.unwrap())
    }

    /// A POST straight to MoneyKit (the mock), as another client of the same app would send it.
    async fn direct(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.direct_request(self.admin.post(format!("{}/{path}", self.mock.base_url())).json(&body)).await
    }

    /// A GET straight to MoneyKit (the mock), as [`Self::direct`] sends a POST.
    async fn direct_get(&self, path: &str) -> reqwest::Response {
        self.direct_request(self.admin.get(format!("{}/{path}", self.mock.base_url()))).await
    }

    /// `request` with a fresh access token of the app and MoneyKit's version header, sent.
    async fn direct_request(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let form = format!("grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={SECRET}");
        let issued: serde_json::Value = self
            .admin
            .post(format!("{}/auth/token", self.mock.base_url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        request
            .bearer_auth(issued["access_token"].as_str().unwrap())
            .header("MoneyKit-Version", "2023-02-18")
            .send()
            .await
            .unwrap()
    }

    async fn institutions(&mut self) -> Result<Vec<pb::Institution>, tonic::Status> {
        self.link
            .list_institutions(pb::ListInstitutionsRequest { provider: "moneykit".into(), ..Default::default() })
            .await
            .map(|r| r.into_inner().institutions)
    }

    async fn create_session(&mut self, user: &str) -> Result<pb::LinkSession, tonic::Status> {
        self.create_session_of(user, &[]).await
    }

    /// A link session at Chase for `user` linking `products` (none: MoneyKit's defaults).
    async fn create_session_of(
        &mut self,
        user: &str,
        products: &[pb::Product],
    ) -> Result<pb::LinkSession, tonic::Status> {
        self.link
            .create_link_session(pb::CreateLinkSessionRequest {
                provider: "moneykit".into(),
                external_user_id: user.into(),
                institution_id: CHASE.into(),
                redirect_uri: REDIRECT.into(),
                products: products.iter().map(|p| *p as i32).collect(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().link_session.unwrap())
    }

    /// Restarts linkgate on the same database with its HTTP listener on a port of its own and
    /// that address as its public webhook URL; answers the URL of its MoneyKit webhook route.
    async fn restart_with_public_webhook_url(&mut self) -> String {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut settings = self.gateway.settings().clone();
        settings.http_addr = format!("127.0.0.1:{port}").parse().unwrap();
        settings.providers.public_webhook_url = Some(format!("http://127.0.0.1:{port}").parse().unwrap());
        self.gateway.shut_down().await.expect("clean stop");
        self.gateway = TestApp::start(settings, None, None).await;
        format!("http://127.0.0.1:{port}/webhooks/moneykit")
    }

    /// What Connect gives the front end for `session`: the exchangeable token.
    async fn connect(&self, session: &pb::LinkSession) -> String {
        let answer = self.admin_post("connect", serde_json::json!({"link_session_token": session.link_token})).await;
        answer["exchangeable_token"].as_str().expect("an exchangeable token").to_owned()
    }

    /// An exchangeable token of a new session.
    async fn exchangeable_token(&mut self) -> String {
        let session = self.create_session("user-1").await.expect("session created");
        self.connect(&session).await
    }

    /// Every transaction of `account_id`, through every page.
    async fn transactions(&mut self, connection_id: &str, account_id: &str) -> Vec<pb::Transaction> {
        let (mut all, mut page_token) = (Vec::new(), String::new());
        loop {
            let page = self
                .accounts
                .list_account_transactions(pb::ListAccountTransactionsRequest {
                    connection_id: connection_id.into(),
                    account_id: account_id.into(),
                    page_size: 500,
                    page_token: page_token.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            all.extend(page.transactions);
            if page.next_page_token.is_empty() {
                return all;
            }
            page_token = page.next_page_token;
        }
    }
}

/// Asserts a MoneyKit error's code and reason, and that it names the provider.
#[track_caller]
fn assert_error(case: &str, status: &tonic::Status, code: tonic::Code, expected_reason: &str) {
    support::status::assert_provider_error("moneykit", case, status, code, expected_reason);
}

/// The whole flow: link through Connect, exchange, first import, every read, refresh, delete.
async fn full_flow(logs: Arc<Mutex<Vec<u8>>>) {
    let mock = MoneyKitMockOptions { import_delay: Duration::from_millis(600), ..MoneyKitMockOptions::default() };
    let mut app = spawn(mock, QUICK).await;

    // Institutions are MoneyKit's whole catalogue, searched by name.
    let found = app
        .link
        .list_institutions(pb::ListInstitutionsRequest {
            provider: "moneykit".into(),
            query: "BANK".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = found.institutions.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names.len(), 100, "a full first page");
    assert_eq!(names[..2], ["Evergreen Bank of Ashford", "Evergreen Bank of Bayview"], "ordered by name");
    assert!(names.iter().all(|n| n.to_lowercase().contains("bank")), "only names with the query: {names:?}");
    assert!(!found.next_page_token.is_empty(), "more pages follow");

    // Link: linkgate opens a MoneyKit link session; the user goes through Connect.
    let session = app.create_session("user-1").await.expect("session created");
    assert!(session.link_token.starts_with("mk_ls_"), "MoneyKit's link session token: {}", session.link_token);
    let exchangeable = app.connect(&session).await;

    // Exchange: one connection at Chase, importing; a retry gets the same one without a second
    // upstream exchange.
    let connection = app.exchange_for("moneykit", "user-1", &exchangeable).await.expect("exchanged");
    assert_eq!(connection.state(), pb::ConnectionState::Pending);
    let status = app
        .accounts
        .list_accounts(pb::ListAccountsRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap_err();
    support::status::assert_error(
        "read while importing",
        &status,
        tonic::Code::FailedPrecondition,
        "PRODUCT_NOT_READY",
    );
    assert_eq!((connection.institution_id.as_str(), connection.institution_name.as_str()), (CHASE, "Chase"));
    assert_eq!(connection.external_user_id, "user-1");
    let again =
        app.exchange_for("moneykit", "user-1", &exchangeable).await.expect("a retry answers the same connection");
    assert_eq!(again.id, connection.id);
    assert_eq!(app.call_count(EXCHANGE).await, 1, "exactly one upstream exchange");

    let ready = app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    let products: Vec<pb::Product> = ready.products.iter().map(|p| p.product()).collect();
    assert_eq!(products, [pb::Product::Accounts, pb::Product::Transactions, pb::Product::Investments]);
    assert!(ready.products.iter().all(|p| p.state() == pb::ProductState::Ready));

    // Accounts: balances were JSON numbers; the card's owed balance becomes negative.
    let accounts = app
        .accounts
        .list_accounts(pb::ListAccountsRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .accounts;
    assert_eq!(accounts.len(), 4);
    let by_name: HashMap<&str, &pb::Account> = accounts.iter().map(|a| (a.name.as_str(), a)).collect();
    let checking = by_name["Everyday Checking"];
    assert_eq!(checking.r#type(), pb::AccountType::Checking);
    assert_eq!(checking.mask, "1111");
    let balances = checking.balances.as_ref().unwrap();
    assert_eq!(amount(&balances.current), ("1250.75", "USD"));
    assert_eq!(amount(&balances.available), ("1204.50", "USD"));
    let card = by_name["Rewards Card"];
    assert_eq!(card.r#type(), pb::AccountType::CreditCard);
    let balances = card.balances.as_ref().unwrap();
    assert_eq!(amount(&balances.current), ("-250.75", "USD"), "owed is money the holder does not have");
    assert_eq!(amount(&balances.available), ("4749.25", "USD"), "available credit is not owed: no sign flip");
    assert_eq!(amount(&balances.limit), ("5000.00", "USD"));
    assert_eq!(by_name["High-Yield Savings"].r#type(), pb::AccountType::Savings);

    // Transactions: all 520 arrived (two sync pages); debits negative, credits positive.
    let checking_transactions = app.transactions(&connection.id, &checking.id).await;
    let card_transactions = app.transactions(&connection.id, &card.id).await;
    assert_eq!(checking_transactions.len() + card_transactions.len(), 520);
    let payroll = checking_transactions.iter().find(|t| t.description == "Payroll ACME Corp").unwrap();
    assert_eq!(amount(&payroll.amount), ("2500.00", "USD"));
    assert!(!payroll.pending);
    let coffee = checking_transactions.iter().find(|t| t.description == "Blue Bottle Coffee").unwrap();
    assert_eq!(amount(&coffee.amount), ("-4.50", "USD"));
    assert!(coffee.pending);
    assert!(card_transactions.iter().any(|t| t.amount.as_ref().unwrap().amount.starts_with('-')));
    let calls = app.calls().await;
    let sync_calls: u64 = calls.iter().filter(|(path, _)| path.ends_with("/transactions/sync")).map(|(_, n)| n).sum();
    assert_eq!(sync_calls, 2, "one sync, two pages: {calls:?}");

    // Investments: one brokerage portfolio valued at its holdings; positions and trades exact and
    // in the account's currency, also for a security priced in euros, and for a fee naming none.
    let portfolios = app
        .portfolios
        .list_portfolios(pb::ListPortfoliosRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .portfolios;
    assert_eq!(portfolios.len(), 1);
    let portfolio = &portfolios[0];
    assert_eq!((portfolio.name.as_str(), portfolio.r#type()), ("Brokerage", pb::PortfolioType::Brokerage));
    assert_eq!(amount(&portfolio.value), ("4114.025", "USD"));
    let positions = app
        .portfolios
        .list_portfolio_positions(pb::ListPortfolioPositionsRequest {
            connection_id: connection.id.clone(),
            portfolio_id: portfolio.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .positions;
    assert_eq!(positions.len(), 3);
    let apple = positions.iter().find(|p| p.instrument.as_ref().unwrap().ticker == "AAPL").unwrap();
    let instrument = apple.instrument.as_ref().unwrap();
    assert_eq!((instrument.isin.as_str(), instrument.asset_type()), ("US0378331005", pb::AssetType::Equity));
    assert_eq!(apple.quantity, "10.5");
    assert_eq!(amount(&apple.price), ("189.25", "USD"));
    assert_eq!(amount(&apple.market_value), ("1987.125", "USD"));
    assert_eq!(amount(&apple.cost_basis), ("1500.00", "USD"));
    let asml = positions.iter().find(|p| p.instrument.as_ref().unwrap().ticker == "ASML").unwrap();
    assert_eq!(asml.instrument.as_ref().unwrap().currency, "EUR", "the security is priced in euros");
    assert_eq!(amount(&asml.price), ("695.20", "USD"), "the holding is in the account's dollars");
    assert_eq!(amount(&asml.market_value), ("1390.40", "USD"));
    assert_eq!(amount(&asml.cost_basis), ("1200.00", "USD"));
    let trades = app
        .portfolios
        .list_portfolio_transactions(pb::ListPortfolioTransactionsRequest {
            connection_id: connection.id.clone(),
            portfolio_id: portfolio.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .transactions;
    let trade = |kind: pb::PortfolioTransactionType| trades.iter().find(|t| t.r#type() == kind).unwrap();
    let apple_buy = trades.iter().find(|t| t.description == "Buy AAPL").unwrap();
    assert_eq!(apple_buy.r#type(), pb::PortfolioTransactionType::Buy);
    assert_eq!(amount(&apple_buy.amount), ("-945.50", "USD"), "a buy is money out");
    assert_eq!(apple_buy.quantity, "5");
    assert_eq!(amount(&trade(pb::PortfolioTransactionType::Dividend).amount), ("12.34", "USD"), "money in");
    assert_eq!(amount(&trade(pb::PortfolioTransactionType::Fee).amount), ("-1.00", "USD"), "no security, no XXX");
    let asml_buy = trades.iter().find(|t| t.description == "Buy ASML").unwrap();
    assert_eq!(amount(&asml_buy.amount), ("-1390.40", "USD"));
    assert_eq!(amount(&asml_buy.price), ("695.20", "USD"));

    // Refresh: MoneyKit is asked for the link's products (202); the connection comes back READY.
    app.connections
        .refresh_connection(pb::RefreshConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .expect("refresh accepted");
    app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    let refreshes: u64 = app.calls().await.iter().filter(|(p, _)| p.ends_with("/products")).map(|(_, n)| n).sum();
    assert_eq!(refreshes, 1);

    // Delete: the link is deleted upstream, DELETED here.
    let deleted = app
        .connections
        .delete_connection(pb::DeleteConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .expect("deleted")
        .into_inner()
        .connection
        .unwrap();
    assert_eq!(deleted.state(), pb::ConnectionState::Deleted);

    let issued = app.issued().await;
    let stored = app.database.dump().await;
    app.shut_down().await.expect("clean stop");

    // No secret anywhere it could leak: not the client secret, an access token, the link id or
    // the exchangeable token, in the logs; and the link id only sealed in the database.
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(text.contains("moneykit.transactions_sync"), "upstream calls are logged");
    assert!(issued.len() >= 4, "access token, session token, exchangeable token, link id: {}", issued.len());
    assert!(!text.contains(SECRET), "the client secret appears in the logs");
    for secret in &issued {
        // The mock stands in for MoneyKit, whose paths carry link ids: only linkgate's lines count.
        let line = text.lines().find(|line| line.contains(secret.as_str()) && !line.contains(" linkgate_mocks"));
        assert!(line.is_none(), "an issued token or link id appears in the logs: {line:?}");
    }
    let link_id = issued.iter().find(|t| t.starts_with("mk_") && !t.starts_with("mk_ls_") && !t.starts_with("mk_at_"));
    assert!(!stored.contains(link_id.expect("a link id was issued").as_str()), "the link id is stored sealed");
}

#[tokio::test]
async fn the_moneykit_flow_runs_end_to_end_with_no_secret_in_the_logs() {
    let logs = support::logs::capture_logs();
    full_flow(logs).await;
}

#[tokio::test]
async fn a_token_exchanged_elsewhere_is_refused_as_unknown_and_nothing_is_written() {
    let mut app = spawn(instant_mock(), QUICK).await;
    let token = app.exchangeable_token().await;
    // Someone else (another deployment with the same keys) exchanges it first.
    let first = app.direct("link-session/exchange-token", serde_json::json!({"exchangeable_token": token})).await;
    assert_eq!(first.status(), reqwest::StatusCode::CREATED);

    let status = app.exchange_for("moneykit", "user-1", &token).await.unwrap_err();

    assert_error("reused exchangeable token", &status, tonic::Code::NotFound, "PUBLIC_TOKEN_NOT_FOUND");
    assert_eq!(app.call_count(EXCHANGE).await, 2, "a 400 is not retried");
    assert_eq!(app.connection_count().await, 0);
}

#[tokio::test]
async fn an_expired_access_token_is_renewed_once_for_concurrent_calls() {
    let mut app = spawn(instant_mock(), QUICK).await;
    app.institutions().await.expect("first call");
    assert_eq!(app.call_count("/auth/token").await, 1);
    app.institutions().await.expect("the cached token is reused");
    assert_eq!(app.call_count("/auth/token").await, 1);

    app.admin_post("tokens/expire", serde_json::json!({})).await;
    let calls = (0..5).map(|_| {
        let mut link = app.link.clone();
        async move {
            link.create_link_session(pb::CreateLinkSessionRequest {
                provider: "moneykit".into(),
                external_user_id: "user-1".into(),
                institution_id: CHASE.into(),
                redirect_uri: REDIRECT.into(),
                ..Default::default()
            })
            .await
        }
    });
    for result in futures::future::join_all(calls).await {
        result.expect("each call succeeds after the renewal");
    }

    assert_eq!(app.call_count("/auth/token").await, 2, "exactly one renewal");
    assert!(app.call_count("/link-session").await >= 8, "each refused call was sent again");
}

#[tokio::test]
async fn a_5xx_burst_is_retried_into_exactly_one_connection() {
    let mut app = spawn(instant_mock(), QUICK).await;
    let token = app.exchangeable_token().await;
    app.fault(serde_json::json!({"kind": "status", "status": 500, "times": 2, "path": EXCHANGE})).await;

    let connection = app.exchange_for("moneykit", "user-1", &token).await.expect("the third attempt exchanges");

    assert_eq!(app.call_count(EXCHANGE).await, 3);
    assert_eq!(app.connection_count().await, 1, "one connection, nothing half-written");
    app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_as_retry_after_asks() {
    let mut app = spawn(instant_mock(), QUICK).await;
    app.fault(serde_json::json!({"kind": "rate_limit", "retry_after": 1, "path": "/link-session"})).await;

    let started = Instant::now();
    let session = app.create_session("user-1").await.expect("created after the pause");

    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After honoured ({:?})", started.elapsed());
    assert_eq!(app.call_count("/link-session").await, 2);
    assert!(!session.link_token.is_empty());
}

#[tokio::test]
async fn a_provider_slower_than_the_deadline_ends_unavailable_with_retry_info() {
    let timing = Timing { request_timeout: "300ms", call_timeout: "1s" };
    let mut app = spawn(instant_mock(), timing).await;
    app.fault(serde_json::json!({"kind": "delay", "delay_ms": 3000, "times": 10, "path": "/link-session"})).await;

    let started = Instant::now();
    let status = app.create_session("user-1").await.unwrap_err();

    assert_error("slow MoneyKit", &status, tonic::Code::Unavailable, "PROVIDER_UNAVAILABLE");
    assert!(status.get_details_retry_info().is_some(), "RetryInfo tells the caller when to come back");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(1500), "the call budget bounds it ({elapsed:?})");
    let attempts = app.call_count("/link-session").await;
    assert!((2..=3).contains(&attempts), "timeouts are retried within the budget ({attempts} attempts)");

    // The caller's own, shorter deadline bounds the upstream call too: linkgate stops trying
    // when the caller stops waiting, not when its own 1 s budget runs out.
    let before = app.call_count("/link-session").await;
    let mut request = tonic::Request::new(pb::CreateLinkSessionRequest {
        provider: "moneykit".into(),
        external_user_id: "user-1".into(),
        redirect_uri: REDIRECT.into(),
        ..Default::default()
    });
    request.set_timeout(Duration::from_millis(400));
    let status = app.link.create_link_session(request).await.unwrap_err();
    assert!(
        matches!(status.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled),
        "ends at the caller's deadline: {status:?}"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let attempts = app.call_count("/link-session").await - before;
    assert!((1..=2).contains(&attempts), "no attempt after the caller's deadline ({attempts} attempts)");
}

#[tokio::test]
async fn malformed_and_oversized_answers_are_protocol_errors_that_write_nothing() {
    let mut app = spawn(instant_mock(), QUICK).await;
    let token = app.exchangeable_token().await;
    for (case, fault) in [
        ("malformed JSON", serde_json::json!({"kind": "malformed", "path": EXCHANGE})),
        ("oversized body", serde_json::json!({"kind": "oversized", "bytes": 5 * 1024 * 1024, "path": EXCHANGE})),
    ] {
        let calls = app.call_count(EXCHANGE).await;
        app.fault(fault).await;
        let status = app.exchange_for("moneykit", "user-1", &token).await.unwrap_err();
        assert_error(case, &status, tonic::Code::Internal, "PROVIDER_PROTOCOL");
        assert_eq!(app.call_count(EXCHANGE).await, calls + 1, "{case}: not retried");
        assert_eq!(app.connection_count().await, 0, "{case}: nothing written");
    }

    // The token was never consumed: once MoneyKit answers properly, it exchanges.
    app.exchange_for("moneykit", "user-1", &token).await.expect("exchanged once MoneyKit answers");
    assert_eq!(app.connection_count().await, 1);
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let mut app = spawn(instant_mock(), QUICK).await;
    let token = app.exchangeable_token().await;
    app.fault(serde_json::json!({"kind": "drop", "path": EXCHANGE})).await;

    app.exchange_for("moneykit", "user-1", &token).await.expect("the second attempt exchanges");

    assert_eq!(app.call_count(EXCHANGE).await, 2);
    assert_eq!(app.connection_count().await, 1);
}

#[tokio::test]
async fn webhooks_are_signed_over_their_body_with_the_published_key() {
    use axum::routing::post;
    let received: Arc<Mutex<Vec<(axum::http::HeaderMap, bytes::Bytes)>>> = Arc::default();
    let receiver = {
        let received = received.clone();
        axum::Router::new().route(
            "/webhooks/moneykit",
            post(move |headers: axum::http::HeaderMap, body: bytes::Bytes| async move {
                received.lock().unwrap().push((headers, body));
                axum::http::StatusCode::NO_CONTENT
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // The receiver stands in for linkgate's public address: links are given its webhook route.
    let public = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let mut app = spawn_with(instant_mock(), QUICK, &[("--public-webhook-url", public.as_str())]).await;
    let token = app.exchangeable_token().await;
    let connection = app.exchange_for("moneykit", "user-1", &token).await.unwrap();
    app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;

    let jwks: serde_json::Value = app
        .admin
        .get(format!("{}/.well-known/jwks.json", app.mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key: linkgate::crypto::jws::Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let events = loop {
        let events: Vec<(String, serde_json::Value)> = received
            .lock()
            .unwrap()
            .iter()
            .map(|(headers, body)| {
                let signature = headers["moneykit-signature"].to_str().unwrap();
                let claims = linkgate::crypto::jws::verify(signature, &key).expect("signed with the published key");
                assert_eq!(claims["request_body_sha256"], linkgate::crypto::jws::body_sha256(body).as_str());
                assert!(claims["iat"].is_i64());
                assert!(headers.contains_key("moneykit-delivery-token"));
                assert_eq!(headers["moneykit-delivery-attempt"], "1");
                let payload: serde_json::Value = serde_json::from_slice(body).unwrap();
                (payload["webhook_event"].as_str().unwrap().to_owned(), payload)
            })
            .collect();
        if events.len() >= 5 || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert!(names.contains(&"link.state_changed"), "{names:?}");
    assert_eq!(names.iter().filter(|n| **n == "link.product_refresh").count(), 3, "{names:?}");
    assert!(names.contains(&"transactions.updates_available"), "{names:?}");
    for (_, payload) in &events {
        assert!(payload["webhook_idempotency_key"].as_str().unwrap().starts_with("whk_"));
        assert_eq!(payload["webhook_major_version"], 1);
    }
}

#[tokio::test]
async fn a_link_whose_consent_expired_asks_for_a_new_login() {
    let mut app = spawn(instant_mock(), QUICK).await;
    let token = app.exchangeable_token().await;
    let connection = app.exchange_for("moneykit", "user-1", &token).await.unwrap();
    app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    let link_id = app.link_id().await;
    let reset = app.direct(&format!("links/{link_id}/reset"), serde_json::json!({})).await;
    assert_eq!(reset.status(), reqwest::StatusCode::OK);

    let status = app
        .connections
        .refresh_connection(pb::RefreshConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap_err();

    assert_error("refresh of an expired link", &status, tonic::Code::FailedPrecondition, "LOGIN_REQUIRED");
    let refreshes: u64 = app.calls().await.iter().filter(|(p, _)| p.ends_with("/products")).map(|(_, n)| n).sum();
    assert_eq!(refreshes, 0, "MoneyKit is not asked to refresh a link it would refuse");
}

/// Webhooks end to end: linkgate gives the link session its public webhook route, the mock
/// delivers its signed webhooks only there, and with polls an hour apart, only the webhook can
/// bring the connection to READY in time.
#[tokio::test]
async fn a_signed_webhook_to_the_url_linkgate_registered_brings_a_connection_to_ready_without_the_poll() {
    let options = MoneyKitMockOptions { import_delay: Duration::from_millis(300), ..MoneyKitMockOptions::default() };
    let mut app = spawn_with_webhooks(options, QUICK, &[("--moneykit-poll-interval", "1h")]).await;
    let token = app.exchangeable_token().await;
    let connection = app.exchange_for("moneykit", "user-1", &token).await.expect("exchanged");
    assert_eq!(connection.state(), pb::ConnectionState::Pending);

    app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    assert_eq!(app.call_count("/.well-known/jwks.json").await, 1, "the key set was fetched once and cached");
    let registered = format!("http://{}/webhooks/moneykit", app.http_addr);
    let sessions = app.requests_to("POST", "/link-session").await;
    assert_eq!(sessions[0]["body"]["webhook"], registered.as_str(), "the link session named linkgate's route");
}

/// Without a public webhook URL, link sessions name no webhook, so MoneyKit delivers none (and
/// linkgate polls); once one is configured, the next sync of an existing connection points its
/// link there with `PATCH /links/{id}`, once, and MoneyKit delivers there from then on.
#[tokio::test]
async fn a_newly_configured_webhook_url_is_set_on_existing_links_once() {
    let mut app = spawn(instant_mock(), QUICK).await;
    let token = app.exchangeable_token().await;
    let id = app.exchange_for("moneykit", "user-1", &token).await.expect("exchanged").id;
    app.wait_for_connection(&id, pb::ConnectionState::Ready).await;
    let link_id = app.link_id().await;
    let sessions = app.requests_to("POST", "/link-session").await;
    assert!(sessions[0]["body"].get("webhook").is_none(), "no URL configured, none sent: {}", sessions[0]);
    let refused = app.admin.post(format!("{}/webhooks", app.mock.admin_url())).json(&serde_json::json!({
        "link_id": link_id, "webhook_event": "transactions.updates_available",
    }));
    assert_eq!(refused.send().await.unwrap().status(), reqwest::StatusCode::BAD_REQUEST, "the link has no webhook");

    // linkgate restarts with a public webhook URL.
    let registered = app.restart_with_public_webhook_url().await;
    app.refresh(&id, &[pb::Product::Transactions]).await.expect("refresh accepted");
    app.wait_for_connection(&id, pb::ConnectionState::Ready).await;
    app.settle().await;

    let patches = app.requests_to("PATCH", &format!("/links/{link_id}")).await;
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(patches[0]["body"], serde_json::json!({ "webhook": registered }));
    let delivered: serde_json::Value = app
        .admin_post(
            "webhooks",
            serde_json::json!({"link_id": link_id, "webhook_event": "transactions.updates_available"}),
        )
        .await;
    assert_eq!(delivered["status"], 200, "delivered to linkgate's route: {delivered}");
    app.wait_for_connection(&id, pb::ConnectionState::Ready).await;
    app.settle().await;
    assert_eq!(app.requests_to("PATCH", &format!("/links/{link_id}")).await.len(), 1, "set once, not at every sync");
}

/// The ids of a connection's accounts and transactions, each list sorted.
async fn data_ids(app: &mut MoneyKitApp, connection_id: &str) -> (Vec<String>, Vec<String>) {
    let accounts = app
        .accounts
        .list_accounts(pb::ListAccountsRequest { connection_id: connection_id.into(), ..Default::default() })
        .await
        .expect("accounts read")
        .into_inner()
        .accounts;
    let mut account_ids: Vec<String> = accounts.iter().map(|a| a.id.clone()).collect();
    let mut transaction_ids = Vec::new();
    for account in &accounts {
        transaction_ids.extend(app.transactions(connection_id, &account.id).await.into_iter().map(|t| t.id));
    }
    account_ids.sort();
    transaction_ids.sort();
    (account_ids, transaction_ids)
}

/// A READY MoneyKit connection whose link MoneyKit disconnected (its webhook tells linkgate),
/// repaired through a link session with `existing_link_id`: Connect relinks the link and the
/// caller's ExchangePublicToken answers the same connection. With `new_link_id`, MoneyKit answers
/// a different link id and the connection takes it.
async fn repair_flow(new_link_id: bool) {
    use pb::ConnectionEventType as T;
    use pb::ConnectionState as S;
    let options = MoneyKitMockOptions { import_delay: Duration::from_millis(300), ..MoneyKitMockOptions::default() };
    let mut app = spawn_with_webhooks(options, QUICK, &[]).await;
    let session = app.create_session("user-repair").await.expect("session created");
    let token = app.connect(&session).await;
    let connection = app.exchange_for("moneykit", "user-repair", &token).await.expect("exchanged");
    app.wait_for_connection(&connection.id, S::Ready).await;
    let before = data_ids(&mut app, &connection.id).await;
    assert!(!before.0.is_empty() && !before.1.is_empty());
    let link_id = app.link_id().await;

    // MoneyKit disconnects the link; its webhook makes linkgate look at once.
    let reset = app.direct(&format!("links/{link_id}/reset"), serde_json::json!({})).await;
    assert_eq!(reset.status(), reqwest::StatusCode::OK);
    let stale = app.wait_for_connection(&connection.id, S::LoginRequired).await;
    assert_eq!(stale.error.unwrap().reason(), pb::ErrorReason::LoginRequired);
    let mut watch = app.watch(&connection.id).await;
    assert_eq!(watch.next().await, (T::Unspecified, S::LoginRequired, true), "a snapshot first");

    // The repair session: MoneyKit Connect relinks the link; the front end gets a token.
    let request = pb::CreateLinkSessionRequest { redirect_uri: REDIRECT.into(), ..repair_request(&connection.id) };
    let repair = app.repair_session_with(request).await;
    assert_eq!(repair.connection_id, connection.id);
    assert_eq!((repair.provider.as_str(), repair.institution_id.as_str()), ("moneykit", CHASE));
    let connected = app
        .admin_post("connect", serde_json::json!({"link_session_token": repair.link_token, "new_link_id": new_link_id}))
        .await;
    assert_eq!(connected["link_id"] == link_id.as_str(), !new_link_id, "MoneyKit relinked the same link");
    let relink_token = connected["exchangeable_token"].as_str().unwrap().to_owned();

    let repaired = app.exchange_for("moneykit", "user-repair", &relink_token).await.expect("exchanged");
    assert_eq!(repaired.id, connection.id, "the exchange answers the repaired connection");
    assert_eq!(repaired.state(), S::Refreshing);
    let again = app.exchange_for("moneykit", "user-repair", &relink_token).await.expect("exchanged again");
    assert_eq!(again.id, connection.id, "exchanging the token again answers the same connection");
    let done = app.link.get_link_session(pb::GetLinkSessionRequest { link_session_id: repair.id.clone() }).await;
    let done = done.unwrap().into_inner().link_session.unwrap();
    assert_eq!(done.state(), pb::LinkSessionState::Succeeded);
    assert!(done.public_token.is_empty());

    watch.assert_repair_told_once().await;

    assert_eq!(data_ids(&mut app, &connection.id).await, before, "every account and transaction id kept");
    app.assert_repaired_in_place(&connection.id).await;
    assert_eq!(app.call_count(EXCHANGE).await, 2, "one exchange per token upstream");
    if new_link_id {
        let new_id = connected["link_id"].as_str().unwrap();
        assert!(
            app.call_count(&format!("/links/{new_id}/accounts")).await >= 1,
            "the connection reads through its new link id: {:?}",
            app.calls().await
        );
    }
}

#[tokio::test]
async fn a_moneykit_connection_is_repaired_in_place_by_relinking_its_link() {
    repair_flow(false).await;
}

#[tokio::test]
async fn a_moneykit_relink_under_a_new_link_id_swaps_the_connections_handle() {
    repair_flow(true).await;
}

#[tokio::test]
async fn a_relink_token_without_an_open_repair_session_makes_no_second_connection() {
    let mut app = spawn(instant_mock(), QUICK).await;
    let token = app.exchangeable_token().await;
    let connection = app.exchange_for("moneykit", "user-1", &token).await.unwrap();
    app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    let link_id = app.link_id().await;
    // Another client of the app relinks the link behind linkgate's back.
    let session = app
        .direct(
            "link-session",
            serde_json::json!({"customer_user": {"id": "user-1"}, "redirect_uri": REDIRECT, "existing_link_id": link_id}),
        )
        .await;
    assert_eq!(session.status(), reqwest::StatusCode::CREATED);
    let session: serde_json::Value = session.json().await.unwrap();
    let relinked =
        app.admin_post("connect", serde_json::json!({"link_session_token": session["link_session_token"]})).await;
    let status = app
        .exchange_for("moneykit", "user-1", relinked["exchangeable_token"].as_str().unwrap())
        .await
        .expect_err("no repair session names the connection");
    assert_error("relink without a repair session", &status, tonic::Code::FailedPrecondition, "LINK_SESSION_EXPIRED");
    assert_eq!(app.connection_count().await, 1, "no second connection");
}

/// The state and refresh time of `product` on `connection`.
fn product(connection: &pb::Connection, product: pb::Product) -> (pb::ProductState, Option<prost_types::Timestamp>) {
    let status = connection.products.iter().find(|p| p.product() == product).expect("the product is linked");
    (status.state(), status.refreshed_at)
}

/// The bank changes a link's transactions: a pending one posts (under a new id), a booked one is
/// corrected, the other pending one is withdrawn and a booked one reversed. Returns the posted
/// transaction's MoneyKit id and the MoneyKit ids of the four changed.
async fn bank_changes(app: &MoneyKitApp, link_id: &str) -> (String, [String; 4]) {
    let coffee = app.upstream_id(link_id, "Blue Bottle Coffee").await;
    let payroll = app.upstream_id(link_id, "Payroll ACME Corp").await;
    let corner = app.upstream_id(link_id, "Corner Store").await;
    let oldest = app.upstream(link_id).await.pop().expect("transactions");
    assert_eq!(oldest["pending"], false);
    let reversed = oldest["transaction_id"].as_str().unwrap().to_owned();
    let changed = app
        .admin_post(
            "transactions",
            serde_json::json!({"link_id": link_id, "changes": [
                {"op": "post", "transaction_id": coffee},
                {"op": "modify", "transaction_id": payroll, "description": "Payroll ACME Corporation"},
                {"op": "withdraw", "transaction_id": corner},
                {"op": "withdraw", "transaction_id": reversed},
            ]}),
        )
        .await;
    let posted = changed["transaction_ids"][0].as_str().expect("the posted transaction's id").to_owned();
    (posted, [coffee, payroll, corner, reversed])
}

/// Incremental MoneyKit transactions and per-product refresh: the first import reads the whole
/// sync feed and stores MoneyKit's cursor; the bank changes the link; a refresh of transactions
/// alone asks MoneyKit for exactly that, reads the feed from the stored cursor, and leaves
/// accounts as they were; callers syncing from before the change and from empty both end with
/// exactly MoneyKit's transactions; a second refresh within MoneyKit's limit is refused without
/// calling MoneyKit.
#[tokio::test]
async fn a_transactions_refresh_reads_from_the_stored_cursor_and_callers_end_with_moneykits_set() {
    let mut app = spawn(instant_mock(), QUICK).await;
    let token = app.exchangeable_token().await;
    let id = app.exchange_for("moneykit", "user-1", &token).await.expect("exchanged").id;
    let ready = app.wait_for_connection(&id, pb::ConnectionState::Ready).await;
    let link_id = app.link_id().await;
    assert_eq!(app.sync_cursors().await.len(), 2, "the first import read the whole feed, in two pages");
    assert_eq!(app.sync_cursors().await[0], None, "from the start");
    let cursor = app.stored_cursor(&id).await.expect("MoneyKit's cursor stored with the import");
    let mut watch = app.watch(&id).await;
    assert!(watch.next().await.2, "a snapshot first");
    let mut resuming = FeedCopy::default();
    resuming.drain(&mut app, &id, 500).await;
    assert_eq!(resuming.transactions.len(), 520);

    let (posted, [coffee, payroll, ..]) = bank_changes(&app, &link_id).await;
    app.admin_post("reset", serde_json::json!({})).await;
    let refreshing = app.refresh(&id, &[pb::Product::Transactions]).await.expect("refresh accepted");
    assert_eq!(product(&refreshing, pb::Product::Transactions).0, pb::ProductState::Refreshing);
    assert_eq!(product(&refreshing, pb::Product::Accounts).0, pb::ProductState::Ready, "only what was asked");

    // One DATA_UPDATED: the posted one added, the correction, and three gone (the pending one
    // that posted, the withdrawn one, the reversed one); accounts untouched.
    let changes = watch.next_data_update().await;
    let transactions = changes.transactions.unwrap();
    assert_eq!((transactions.added, transactions.modified, transactions.removed), (1, 1, 3));
    assert_eq!(changes.accounts.unwrap_or_default(), pb::RecordChangeCounts::default());
    let refreshed = app.wait_for_connection(&id, pb::ConnectionState::Ready).await;
    assert_eq!(
        product(&refreshed, pb::Product::Accounts),
        product(&ready, pb::Product::Accounts),
        "accounts as they were"
    );
    assert_ne!(product(&refreshed, pb::Product::Transactions).1, product(&ready, pb::Product::Transactions).1);

    // MoneyKit was asked to refresh transactions alone, and read from the stored cursor: one
    // page of changes, not the whole history again.
    let refreshes: serde_json::Value =
        app.admin.get(format!("{}/refreshes", app.mock.admin_url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(refreshes, serde_json::json!([{"link_id": link_id, "products": ["transactions"]}]));
    assert_eq!(app.sync_cursors().await, [Some(cursor.clone())], "{:?}", app.call_log().await);
    let moved = app.stored_cursor(&id).await.expect("a cursor stays stored");
    assert_ne!(moved, cursor, "the cursor moved past the changes");

    // Both callers end with exactly MoneyKit's transactions; the posted one names the pending one.
    let upstream = app.upstream_ids(&link_id, &id).await;
    assert_eq!(upstream.len(), 520 - 2);
    resuming.drain(&mut app, &id, 500).await;
    let mut fresh = FeedCopy::default();
    fresh.drain(&mut app, &id, 100).await;
    let current = listed(&mut app, &id).await;
    assert_eq!(current.keys().cloned().collect::<BTreeSet<_>>(), upstream);
    assert_eq!(resuming.transactions, current, "a caller resuming from before the change");
    assert_eq!(fresh.transactions, current, "a caller syncing from empty");
    let linkgate_id =
        |upstream_id: &str| stable_id(Uuid::parse_str(&id).unwrap(), "transaction", upstream_id).to_string();
    let booked = &current[&linkgate_id(&posted)];
    assert_eq!((booked.pending, booked.pending_transaction_id.as_str()), (false, linkgate_id(&coffee).as_str()));
    assert_eq!(current[&linkgate_id(&payroll)].description, "Payroll ACME Corporation");

    // Transactions again within MoneyKit's hour: refused here, MoneyKit not called.
    let calls = app.calls().await;
    let status = app.refresh(&id, &[pb::Product::Transactions]).await.expect_err("within MoneyKit's limit");
    support::status::assert_error("refresh within the limit", &status, tonic::Code::ResourceExhausted, "RATE_LIMITED");
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.metadata.get("product").map(String::as_str), Some("PRODUCT_TRANSACTIONS"));
    let retry = status.get_details_retry_info().expect("RetryInfo says when").retry_delay.unwrap();
    assert!((3500..=3600).contains(&retry.as_secs()), "about an hour: {retry:?}");
    assert_eq!(app.calls().await, calls, "MoneyKit was not called");
    watch.assert_quiet().await;

    // A refresh naming nothing refreshes what the limits allow now: everything but transactions.
    app.refresh(&id, &[]).await.expect("the other products refresh");
    app.wait_for_connection(&id, pb::ConnectionState::Ready).await;
    let refreshes: serde_json::Value =
        app.admin.get(format!("{}/refreshes", app.mock.admin_url())).send().await.unwrap().json().await.unwrap();
    let asked: Vec<&str> = refreshes[1]["products"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(asked.contains(&"accounts") && !asked.contains(&"transactions"), "{refreshes}");

    // Named again, accounts are held back by their own limit; investments have none at MoneyKit.
    let status = app.refresh(&id, &[pb::Product::Accounts]).await.expect_err("accounts within their limit");
    support::status::assert_error("accounts within the limit", &status, tonic::Code::ResourceExhausted, "RATE_LIMITED");
    app.wait_for_connection(&id, pb::ConnectionState::Ready).await;
    app.refresh(&id, &[pb::Product::Investments]).await.expect("investments are not limited");
    let status = app.refresh(&id, &[pb::Product::Statements]).await.expect_err("not linked");
    support::status::assert_error(
        "an unlinked product",
        &status,
        tonic::Code::FailedPrecondition,
        "CAPABILITY_UNSUPPORTED",
    );
}

/// `transactions.updates_available` brings a change in without waiting for the poll, read from
/// the stored cursor; a cursor MoneyKit refuses is dropped and the feed read whole, and the data
/// stays exact.
#[tokio::test]
async fn an_updates_available_webhook_syncs_the_change_and_a_refused_cursor_reads_the_feed_whole() {
    let mut app = spawn_with_webhooks(instant_mock(), QUICK, &[("--moneykit-poll-interval", "1h")]).await;
    let token = app.exchangeable_token().await;
    let id = app.exchange_for("moneykit", "user-1", &token).await.expect("exchanged").id;
    app.wait_for_connection(&id, pb::ConnectionState::Ready).await;
    app.settle().await;
    let link_id = app.link_id().await;
    let mut watch = app.watch(&id).await;
    assert!(watch.next().await.2, "a snapshot first");

    // The bank books and corrects; MoneyKit says so; only the webhook can bring it in time.
    bank_changes(&app, &link_id).await;
    let cursor = app.stored_cursor(&id).await.expect("a cursor");
    app.admin_post("reset", serde_json::json!({})).await;
    app.admin_post(
        "webhooks",
        serde_json::json!({"link_id": link_id, "webhook_event": "transactions.updates_available"}),
    )
    .await;
    let transactions = watch.next_data_update().await.transactions.unwrap();
    assert_eq!((transactions.added, transactions.modified, transactions.removed), (1, 1, 3));
    assert_eq!(app.sync_cursors().await, [Some(cursor)]);

    // A cursor MoneyKit does not know: refused (422), dropped, and the feed read whole.
    let stored = app.stored_cursor(&id).await.expect("a cursor");
    let altered = format!("{}0", stored);
    app.store_cursor(&id, &altered).await;
    let payroll = app.upstream_id(&link_id, "Payroll ACME Corporation").await;
    app.admin_post(
        "transactions",
        serde_json::json!({"link_id": link_id, "changes": [{"op": "modify", "transaction_id": payroll, "amount": "2600.00"}]}),
    )
    .await;
    app.admin_post("reset", serde_json::json!({})).await;
    app.admin_post(
        "webhooks",
        serde_json::json!({"link_id": link_id, "webhook_event": "transactions.updates_available"}),
    )
    .await;
    let transactions = watch.next_data_update().await.transactions.unwrap();
    assert_eq!((transactions.added, transactions.modified, transactions.removed), (0, 1, 0), "exactly the change");
    let cursors = app.sync_cursors().await;
    assert_eq!(cursors[..2], [Some(altered.clone()), None], "refused, then read from the start: {cursors:?}");
    assert_eq!(cursors.len(), 3, "the whole feed is two pages");
    let recovered = app.stored_cursor(&id).await.expect("a cursor again");
    assert_ne!(recovered, altered);
    let current = listed(&mut app, &id).await;
    assert_eq!(current.keys().cloned().collect::<BTreeSet<_>>(), app.upstream_ids(&link_id, &id).await);
}

/// Account numbers and identity, asked for at link time: MoneyKit's M16 and M17 are read with
/// each import, served only to a key with their scopes, stored only sealed and never logged.
#[tokio::test]
async fn a_scoped_key_reads_the_numbers_and_owners_moneykit_serves() {
    use linkgate::domain::Scope;
    let logs = support::logs::capture_logs();
    let mut app = spawn(instant_mock(), QUICK).await;
    let standard = app.create_tenant("payments").await;
    let scoped = app.create_key("payments", &[Scope::Standard, Scope::AccountNumbersRead, Scope::IdentityRead]).await;
    app.use_key(Some(&scoped));
    let products = [pb::Product::Accounts, pb::Product::Identity, pb::Product::AccountNumbers];
    let session = app.create_session_of("user-1", &products).await.expect("session created");
    let exchangeable = app.connect(&session).await;
    let connection = app.exchange_for("moneykit", "user-1", &exchangeable).await.expect("exchanged");
    let ready = app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    let linked: Vec<pb::Product> = ready.products.iter().map(|p| p.product()).collect();
    assert_eq!(linked, products, "what the session asked for");
    let accounts = app
        .accounts
        .list_accounts(pb::ListAccountsRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .accounts;
    let id_of = |name: &str| accounts.iter().find(|a| a.name == name).unwrap().id.clone();
    let (checking, savings) = (id_of("Everyday Checking"), id_of("High-Yield Savings"));

    // Numbers: only the depository accounts have any; US links have ACH numbers.
    let numbers = app
        .accounts
        .list_account_numbers(pb::ListAccountNumbersRequest {
            connection_id: connection.id.clone(),
            ..Default::default()
        })
        .await
        .expect("the scoped key reads numbers")
        .into_inner()
        .account_numbers;
    let mut numbered: Vec<&str> = numbers.iter().map(|n| n.account_id.as_str()).collect();
    numbered.sort();
    let mut expected = vec![checking.as_str(), savings.as_str()];
    expected.sort();
    assert_eq!(numbered, expected, "the card and the brokerage account have no numbers");
    let ach = |id: &str| numbers.iter().find(|n| n.account_id == id).unwrap().ach[0].clone();
    assert_eq!(
        (ach(&checking).routing_number.as_str(), ach(&checking).wire_routing_number.as_str()),
        ("021000021", "021000089")
    );
    assert!(ach(&checking).account_number.ends_with("1111"), "the account's mask ends its number");
    assert_eq!(ach(&savings).wire_routing_number, "", "no wire routing number given");

    // Owners: every account; the savings account is joint.
    let owners = app
        .accounts
        .list_account_owners(pb::ListAccountOwnersRequest {
            connection_id: connection.id.clone(),
            account_id: savings.clone(),
            ..Default::default()
        })
        .await
        .expect("the scoped key reads owners")
        .into_inner()
        .account_owners;
    assert_eq!(owners.len(), 1);
    let names: Vec<&str> = owners[0].owners.iter().flat_map(|o| o.names.iter().map(String::as_str)).collect();
    assert_eq!(names, ["Jordan Avery", "Casey Avery"]);
    let jordan = &owners[0].owners[0];
    assert_eq!(jordan.phone_numbers[0].r#type(), pb::PhoneNumberType::Mobile);
    assert_eq!((jordan.addresses[0].region.as_str(), jordan.addresses[0].country.as_str()), ("OH", "US"));
    let calls = app.calls().await;
    for endpoint in ["/accounts/numbers", "/identity"] {
        let made: u64 = calls.iter().filter(|(path, _)| path.ends_with(endpoint)).map(|(_, n)| n).sum();
        assert!(made >= 1, "MoneyKit's {endpoint} was read: {calls:?}");
    }

    // A key without the scopes reads the accounts, not their numbers or owners.
    app.use_key(Some(&standard));
    let status = app
        .accounts
        .list_account_numbers(pb::ListAccountNumbersRequest {
            connection_id: connection.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    support::status::assert_error("a standard key", &status, tonic::Code::PermissionDenied, "SCOPE_REQUIRED");

    // Nothing of them is stored in clear, nor logged by linkgate (the mock stands in for
    // MoneyKit, which knows them: its lines do not count).
    let dump = app.database.dump().await;
    app.shut_down().await.expect("clean stop");
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(text.contains("moneykit.account_numbers") && text.contains("moneykit.identity"), "the calls are logged");
    let (checking_number, savings_number) = (ach(&checking).account_number, ach(&savings).account_number);
    let phone = &jordan.phone_numbers[0].number;
    for value in [&checking_number, &savings_number, &jordan.names[0], &jordan.emails[0].address, phone] {
        assert!(!dump.contains(value.as_str()), "{value:?} is stored in clear");
        let line = text.lines().find(|line| line.contains(value.as_str()) && !line.contains(" linkgate_mocks"));
        assert!(line.is_none(), "{value:?} appears in the logs: {line:?}");
    }
}

/// The mock refuses what MoneyKit refuses: numbers and identity of a link that did not link them.
#[tokio::test]
async fn numbers_and_identity_of_a_link_without_those_products_are_forbidden() {
    let mut app = spawn(instant_mock(), QUICK).await;
    let session = app.create_session("user-1").await.expect("session created");
    let exchangeable = app.connect(&session).await;
    let exchanged =
        app.direct("link-session/exchange-token", serde_json::json!({"exchangeable_token": exchangeable})).await;
    let link_id = exchanged.json::<serde_json::Value>().await.unwrap()["link"]["link_id"].as_str().unwrap().to_owned();
    for path in [format!("links/{link_id}/accounts/numbers"), format!("links/{link_id}/identity")] {
        let answer = app.direct_get(&path).await;
        assert_eq!(answer.status(), reqwest::StatusCode::FORBIDDEN, "{path}");
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error_code"], "link_error.forbidden_action", "{path}");
    }
}

/// MoneyKit needs a `redirect_uri` on every link session: ListProviders says so, and a session
/// without one is refused naming the field before MoneyKit is asked anything or a row is written.
#[tokio::test]
async fn a_link_session_without_the_required_redirect_uri_is_refused_before_any_upstream_call() {
    let mut app = spawn(instant_mock(), QUICK).await;
    let providers = app.link.list_providers(pb::ListProvidersRequest {}).await.unwrap().into_inner().providers;
    let moneykit = providers.iter().find(|p| p.id == "moneykit").expect("MoneyKit is listed");
    assert_eq!(moneykit.required_fields, ["redirect_uri"]);

    let status = app
        .link
        .create_link_session(pb::CreateLinkSessionRequest {
            provider: "moneykit".into(),
            external_user_id: "user-1".into(),
            institution_id: CHASE.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();

    support::status::assert_error("no redirect_uri", &status, tonic::Code::InvalidArgument, "INVALID_FIELD");
    let violations = status.get_details_bad_request().expect("a BadRequest detail").field_violations;
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["redirect_uri"]);
    assert!(app.calls().await.is_empty(), "MoneyKit was called: {:?}", app.calls().await);
    assert_eq!(app.link_session_rows().await, 0, "nothing is stored");

    // MoneyKit's end-user ids take at least 4 characters: a shorter one is the caller's to fix.
    let status = app
        .link
        .create_link_session(pb::CreateLinkSessionRequest {
            provider: "moneykit".into(),
            external_user_id: "u1".into(),
            institution_id: CHASE.into(),
            redirect_uri: REDIRECT.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    support::status::assert_error("a 2-character user id", &status, tonic::Code::InvalidArgument, "INVALID_FIELD");
    let violations = status.get_details_bad_request().expect("a BadRequest detail").field_violations;
    assert_eq!(violations.iter().map(|v| v.field.as_str()).collect::<Vec<_>>(), ["external_user_id"]);
    assert!(app.calls().await.is_empty(), "MoneyKit was called: {:?}", app.calls().await);
    assert_eq!(app.link_session_rows().await, 0, "nothing is stored");
}

/// Every request linkgate sends MoneyKit through a whole flow (institutions, a link session for
/// every product, exchange, first import, a webhook URL set on the existing link, a refresh, a
/// repair and a delete) is one MoneyKit publishes: its endpoint, method, headers, query
/// parameters, and a body that fits the published request model, no key more.
#[tokio::test]
async fn every_request_of_the_whole_flow_fits_moneykits_published_request_models() {
    let mut app = spawn(instant_mock(), QUICK).await;
    app.institutions().await.expect("institutions listed");
    let all = [
        pb::Product::Accounts,
        pb::Product::Transactions,
        pb::Product::Investments,
        pb::Product::AccountNumbers,
        pb::Product::Identity,
    ];
    let session = app.create_session_of("user-schema", &all).await.expect("session created");
    let token = app.connect(&session).await;
    let id = app.exchange_for("moneykit", "user-schema", &token).await.expect("exchanged").id;
    app.wait_for_connection(&id, pb::ConnectionState::Ready).await;
    let link_id = app.link_id().await;

    // A public webhook URL appears: the next sync sets it on the link; a refresh makes one.
    let registered = app.restart_with_public_webhook_url().await;
    app.refresh(&id, &all).await.expect("refresh accepted");
    app.wait_for_connection(&id, pb::ConnectionState::Ready).await;

    // MoneyKit disconnects the link; a repair relinks it.
    let reset = app.direct_request(app.admin.post(format!("{}/links/{link_id}/reset", app.mock.base_url()))).await;
    assert_eq!(reset.status(), reqwest::StatusCode::OK);
    app.wait_for_connection(&id, pb::ConnectionState::LoginRequired).await;
    let request = pb::CreateLinkSessionRequest { redirect_uri: REDIRECT.into(), ..repair_request(&id) };
    let repair = app.repair_session_with(request).await;
    let relinked = app.admin_post("connect", serde_json::json!({"link_session_token": repair.link_token})).await;
    let relink_token = relinked["exchangeable_token"].as_str().unwrap().to_owned();
    app.exchange_for("moneykit", "user-schema", &relink_token).await.expect("repaired");
    app.wait_for_connection(&id, pb::ConnectionState::Ready).await;
    app.connections
        .delete_connection(pb::DeleteConnectionRequest { connection_id: id.clone(), ..Default::default() })
        .await
        .expect("deleted");

    let requests: Vec<serde_json::Value> =
        app.admin.get(format!("{}/requests", app.mock.admin_url())).send().await.unwrap().json().await.unwrap();
    let mut seen = BTreeSet::new();
    for request in &requests {
        let (endpoint, problems) = support::moneykit_requests::check(request);
        assert!(problems.is_empty(), "{endpoint}: {problems:?} in {request:#}");
        seen.insert(endpoint);
    }
    for endpoint in [
        "POST /auth/token",
        "GET /institutions",
        "GET /institutions/{}",
        "POST /link-session",
        "POST /link-session/exchange-token",
        "GET /links/{}",
        "PATCH /links/{}",
        "DELETE /links/{}",
        "POST /links/{}/products",
        "GET /links/{}/accounts",
        "GET /links/{}/accounts/numbers",
        "GET /links/{}/identity",
        "GET /links/{}/transactions/sync",
        "GET /links/{}/investments/holdings",
        "GET /links/{}/investments/transactions",
    ] {
        assert!(seen.contains(endpoint), "the flow sent no {endpoint}: {seen:?}");
    }
    let repairs = app.requests_to("POST", "/link-session").await;
    assert_eq!(repairs.last().unwrap()["body"]["existing_link_id"], link_id.as_str());
    assert_eq!(repairs.last().unwrap()["body"]["webhook"], registered.as_str());
}

/// The mock refuses what MoneyKit refuses, in MoneyKit's error shape: an undocumented key
/// anywhere in a body and a missing required field (422 naming where), a body that is not JSON,
/// a call without a bearer token, and a method the endpoint does not take.
#[tokio::test]
async fn the_mock_refuses_what_moneykit_refuses_in_its_error_shape() {
    let app = spawn(instant_mock(), QUICK).await;
    let base = app.mock.base_url();
    let refusal = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.expect("a JSON error body");
        assert!(body["error_message"].is_string(), "MoneyKit's error shape: {body}");
        (status, body)
    };
    let session = serde_json::json!({
        "customer_user": {"id": "user-1"}, "redirect_uri": REDIRECT,
        "settings": {"products": {"accounts": {"prefetch": true}}},
    });
    let (status, body) = refusal(app.direct("link-session", session).await).await;
    assert_eq!((status, body["error_code"].as_str()), (422, Some("api_error.request.validation_failed")));
    assert_eq!(
        body["validation_errors"][0]["location"],
        serde_json::json!(["body", "settings", "products", "accounts"])
    );
    assert_eq!(body["validation_errors"][0]["type"], "extra_forbidden");

    let (status, body) =
        refusal(app.direct("link-session", serde_json::json!({"customer_user": {"id": "user-1"}})).await).await;
    assert_eq!(status, 422);
    assert_eq!(body["validation_errors"][0]["location"], serde_json::json!(["body", "redirect_uri"]));
    assert_eq!(body["validation_errors"][0]["type"], "missing");

    let text = app.admin.post(format!("{base}/link-session-exchange-token-typo"));
    let (status, _) = refusal(app.direct_request(text).await).await;
    assert_eq!(status, 404);
    let not_json = app
        .admin
        .post(format!("{base}/link-session/exchange-token"))
        .header("content-type", "text/plain")
        .body(r#"{"exchangeable_token": "x"}"#);
    let (status, body) = refusal(app.direct_request(not_json).await).await;
    assert_eq!((status, body["validation_errors"][0]["type"].as_str()), (422, Some("model_attributes_type")));

    let anonymous = app.admin.get(format!("{base}/institutions")).header("MoneyKit-Version", "2023-02-18");
    let (status, body) = refusal(anonymous.send().await.unwrap()).await;
    assert_eq!((status, body["error_code"].as_str()), (401, Some("api_error.auth.unauthorized")));

    let (status, body) = refusal(app.direct_request(app.admin.put(format!("{base}/institutions"))).await).await;
    assert_eq!((status, body["error_code"].as_str()), (405, Some("api_error.method_not_allowed")));
}

/// A call's trace reads as the RPC with its upstream calls beneath it, as the OpenTelemetry
/// conventions have both (names, kinds, attributes, parentage, the resend count of a retried
/// attempt), its log lines name it, and no span carries a token, a credential or an account
/// number.
#[tokio::test]
async fn a_trace_reads_as_the_rpc_with_its_upstream_attempts_beneath_it_and_holds_no_secret() {
    use linkgate::domain::Scope;
    use opentelemetry::trace::{SpanKind, Status};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

    let exporter = InMemorySpanExporter::default();
    let traces = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let sink = support::logs::Sink::default();
    let writer = sink.clone();
    let filter = tracing_subscriber::EnvFilter::new("info,sqlx=warn");
    tracing::subscriber::set_global_default(linkgate::telemetry::subscriber(
        filter,
        true,
        move || writer.clone(),
        &traces,
    ))
    .expect("this test owns its process's logging (nextest runs each test in its own process)");
    let mut app = spawn(instant_mock(), QUICK).await;
    app.create_tenant("payments").await;
    let key = app.create_key("payments", &[Scope::Standard, Scope::AccountNumbersRead]).await;
    app.use_key(Some(&key));
    let products = [pb::Product::Accounts, pb::Product::AccountNumbers];
    let session = app.create_session_of("user-1", &products).await.expect("session created");
    let exchangeable = app.connect(&session).await;

    // The exchange's first attempt meets a 500; the caller sends its trace context.
    app.fault(serde_json::json!({"kind": "status", "status": 500, "times": 1, "path": EXCHANGE})).await;
    let (caller_trace, caller_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let mut request = tonic::Request::new(pb::ExchangePublicTokenRequest {
        provider: "moneykit".into(),
        public_token: exchangeable.clone(),
        external_user_id: "user-1".into(),
        ..Default::default()
    });
    request.metadata_mut().insert("traceparent", format!("00-{caller_trace}-{caller_span}-01").parse().unwrap());
    let connection = app.link.exchange_public_token(request).await.expect("exchanged").into_inner().connection.unwrap();
    app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    let numbers = app
        .accounts
        .list_account_numbers(pb::ListAccountNumbersRequest {
            connection_id: connection.id.clone(),
            ..Default::default()
        })
        .await
        .expect("numbers read")
        .into_inner()
        .account_numbers;
    let issued = app.issued().await;
    let port = i64::from(app.mock.base_url().parse::<reqwest::Url>().unwrap().port().unwrap());
    app.shut_down().await.expect("clean stop");
    traces.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();

    // The RPC: one SERVER span, named and described by the RPC conventions, in the caller's trace.
    let attribute = |span: &SpanData, key: &str| {
        span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
    };
    let named = |name: &str| spans.iter().filter(|s| s.name == name).collect::<Vec<_>>();
    let servers = named("linkgate.v1.LinkService/ExchangePublicToken");
    assert_eq!(servers.len(), 1, "one span for the call: {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    let server = servers[0];
    assert_eq!(server.span_kind, SpanKind::Server);
    for (key, value) in [
        ("rpc.system", "grpc"),
        ("rpc.service", "linkgate.v1.LinkService"),
        ("rpc.method", "ExchangePublicToken"),
        ("rpc.grpc.status_code", "0"),
    ] {
        assert_eq!(attribute(server, key).as_deref(), Some(value), "{key}");
    }
    assert_eq!(server.status, Status::Unset);
    assert_eq!(server.span_context.trace_id().to_string(), caller_trace, "the caller's trace continues");
    assert_eq!(server.parent_span_id.to_string(), caller_span, "under the caller's span");

    // The upstream exchange: a CLIENT span per attempt, children of the RPC's, by the HTTP
    // client conventions; the retried attempt counts its resend.
    let attempts = named("POST /link-session/exchange-token");
    assert_eq!(attempts.len(), 2, "the 500 and the retry");
    for attempt in &attempts {
        assert_eq!(attempt.span_kind, SpanKind::Client);
        assert_eq!(attempt.parent_span_id, server.span_context.span_id(), "beneath the RPC");
        assert_eq!(attempt.span_context.trace_id(), server.span_context.trace_id());
        assert_eq!(attribute(attempt, "http.request.method").as_deref(), Some("POST"));
        assert_eq!(attribute(attempt, "url.template").as_deref(), Some(EXCHANGE));
        assert_eq!(attribute(attempt, "server.address").as_deref(), Some("127.0.0.1"));
        assert_eq!(attribute(attempt, "server.port"), Some(port.to_string()));
        assert_eq!(attribute(attempt, "linkgate.provider").as_deref(), Some("moneykit"));
    }
    let (first, retry) = (attempts[0], attempts[1]);
    assert!(first.start_time <= retry.start_time);
    assert_eq!(attribute(first, "http.response.status_code").as_deref(), Some("500"));
    assert_eq!(attribute(first, "error.type").as_deref(), Some("500"));
    assert!(matches!(first.status, Status::Error { .. }), "a 500 fails the attempt");
    assert_eq!(attribute(first, "http.request.resend_count"), None, "the first attempt is no resend");
    assert_eq!(attribute(retry, "http.request.resend_count").as_deref(), Some("1"));
    assert_eq!(attribute(retry, "http.response.status_code").as_deref(), Some("201"));
    assert_eq!((attribute(retry, "error.type"), &retry.status), (None, &Status::Unset));
    let children: Vec<&SpanData> = spans.iter().filter(|s| s.parent_span_id == server.span_context.span_id()).collect();
    assert!(children.iter().all(|s| s.span_kind == SpanKind::Client), "only upstream calls beneath the RPC");

    // Calls whose paths carry the link id are named by their template.
    let numbers_read = named("GET /links/{link_id}/accounts/numbers");
    assert!(!numbers_read.is_empty(), "the import read the numbers");
    assert_eq!(attribute(numbers_read[0], "url.template").as_deref(), Some("/links/{link_id}/accounts/numbers"));
    let session_span = named("linkgate.v1.LinkService/CreateLinkSession");
    assert_eq!(session_span.len(), 1);
    assert!(
        named("POST /link-session").iter().any(|s| s.parent_span_id == session_span[0].span_context.span_id()),
        "the session's upstream call is beneath its RPC"
    );

    // The log line of the retried attempt names its trace and its span.
    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let logged = lines
        .iter()
        .find(|line| line["operation"] == "moneykit.exchange_token" && line["attempt"] == 2)
        .expect("the retried attempt is logged");
    assert_eq!(logged["trace_id"], caller_trace);
    assert_eq!(logged["span_id"], retry.span_context.span_id().to_string());

    // No token, credential or account number in any span: names, attributes, events.
    let mut secrets: Vec<String> = issued.clone();
    secrets.extend([SECRET.to_owned(), exchangeable, session.link_token]);
    let account_numbers: Vec<String> =
        numbers.iter().flat_map(|n| n.ach.iter().map(|ach| ach.account_number.clone())).collect();
    assert!(!account_numbers.is_empty(), "the account numbers were read");
    secrets.extend(account_numbers);
    assert!(issued.iter().any(|t| t.starts_with("mk_") && t.len() == 35), "the link id is among them");
    for span in &spans {
        let events = span.events.iter().flat_map(|event| {
            std::iter::once(event.name.to_string()).chain(event.attributes.iter().map(|kv| kv.value.to_string()))
        });
        let values: Vec<String> = std::iter::once(span.name.to_string())
            .chain(span.attributes.iter().map(|kv| kv.value.to_string()))
            .chain(events)
            .collect();
        for secret in &secrets {
            let leak = values.iter().find(|value| value.contains(secret.as_str()));
            assert!(leak.is_none(), "span {:?} carries a secret: {leak:?}", span.name);
        }
    }
}

//! Vumi end to end: the Vumi mock in-process on a random port, real linkgate replicas pointed at
//! it, every step driven through linkgate's gRPC API; the shared single login across replicas;
//! then a fault matrix scripted through the mock's admin API. Timings are short (polls every
//! 100 ms, a 500 ms first import) so the file stays fast.

#[path = "support/mod.rs"]
mod support;

use linkgate::crypto::Sealer;
use linkgate::pb;
use linkgate_mocks::MockServer;
use linkgate_mocks::vumi::{self, VumiMockOptions};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::database::{Backend, TestDatabase};
use support::server::{
    CLIENT_ID, PATIENCE, QUICK, SECRET, TestApp, Timing, Upstream, amount, connect, free_port, spawn_serve,
};
use tonic_types::StatusExt;

const REDIRECT_ID: &str = "0b6f3c1e-9a2d-4c5b-8e7f-112233445566";
const LOGIN: &str = "/auth/login";

/// The mock and its admin client.
struct Mock {
    server: MockServer,
    admin: reqwest::Client,
}

impl Mock {
    async fn spawn(options: VumiMockOptions) -> Self {
        // Only the tests' admin client needs a process-wide provider; linkgate's own client brings ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = vumi::spawn("127.0.0.1:0".parse().unwrap(), options).await.expect("mock binds");
        Self { server, admin: reqwest::Client::new() }
    }

    async fn admin_post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        let response = self.admin.post(format!("{}/{path}", self.server.admin_url())).json(&body).send().await.unwrap();
        assert!(response.status().is_success(), "admin {path} accepted {body}");
        response
    }

    async fn admin_get(&self, path: &str) -> serde_json::Value {
        self.admin.get(format!("{}/{path}", self.server.admin_url())).send().await.unwrap().json().await.unwrap()
    }

    /// Scripts a fault.
    async fn fault(&self, rule: serde_json::Value) {
        self.admin_post("faults", rule).await;
    }

    /// The user completing the widget for link session `session_id`: a pending public token.
    async fn complete_widget(&self, session_id: &str) -> String {
        let body = serde_json::json!({"externalId": session_id, "entity": "santander"});
        let answer: serde_json::Value = self.admin_post("connect", body).await.json().await.unwrap();
        answer["publicToken"].as_str().unwrap().to_owned()
    }

    /// Calls received per endpoint.
    async fn calls(&self) -> BTreeMap<String, u64> {
        serde_json::from_value(self.admin_get("calls").await["calls"].clone()).unwrap()
    }

    /// Calls to endpoints whose path starts with `prefix` and ends with `suffix`.
    async fn count(&self, prefix: &str, suffix: &str) -> u64 {
        self.calls().await.iter().filter(|(p, _)| p.starts_with(prefix) && p.ends_with(suffix)).map(|(_, n)| n).sum()
    }
}

async fn replica(mock: &Mock, database: &TestDatabase, key: &str, timing: &Timing) -> TestApp {
    replica_with(mock, database, key, timing, &[]).await
}

/// A replica whose flags `overrides` replace or extend the test defaults.
async fn replica_with(
    mock: &Mock,
    database: &TestDatabase,
    key: &str,
    timing: &Timing,
    overrides: &[(&'static str, &str)],
) -> TestApp {
    let base_url = mock.server.base_url();
    let upstream = Upstream {
        database_url: &database.url,
        encryption_key: key,
        provider: "vumi",
        base_url: &base_url,
        client_secret: SECRET,
        timing,
    };
    let flags: Vec<_> = [("--vumi-redirect-id", REDIRECT_ID)].into_iter().chain(overrides.iter().copied()).collect();
    TestApp::start(upstream.settings(&flags), None, None).await
}

/// The mock, one replica in front of it, and the database they use.
struct VumiApp {
    mock: Mock,
    app: TestApp,
    database: TestDatabase,
    key: String,
}

async fn spawn(backend: Backend, options: VumiMockOptions, timing: Timing) -> VumiApp {
    let mock = Mock::spawn(options).await;
    let database = TestDatabase::create(backend).await;
    let key = Sealer::generate_key();
    let app = replica(&mock, &database, &key, &timing).await;
    VumiApp { mock, app, database, key }
}

/// Mock timings of the fault tests: imports finish at once.
fn instant_mock() -> VumiMockOptions {
    VumiMockOptions { import_delay: Duration::ZERO, ..VumiMockOptions::default() }
}

/// Vumi's part of linkgate's API.
impl TestApp {
    async fn create_session(&mut self, user: &str) -> Result<pb::LinkSession, tonic::Status> {
        self.link
            .create_link_session(pb::CreateLinkSessionRequest {
                provider: "vumi".into(),
                external_user_id: user.into(),
                institution_id: "santander".into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().link_session.unwrap())
    }

    /// A public token from a completed widget (the session's poll finds it).
    async fn public_token(&mut self, mock: &Mock) -> String {
        let session = self.create_session("user-1").await.expect("session created");
        mock.complete_widget(&session.id).await;
        self.wait_for_session(&session.id, pb::LinkSessionState::Succeeded).await.public_token
    }
}

/// Asserts a Vumi error's code and reason, and that it names the provider.
#[track_caller]
fn assert_error(case: &str, status: &tonic::Status, code: tonic::Code, expected_reason: &str) {
    support::status::assert_provider_error("vumi", case, status, code, expected_reason);
}

/// The whole flow through linkgate's API: hosted link through the (simulated) widget, the
/// pending token found and listed, exchange (twice), first import, every read, delete.
#[tokio::test]
async fn the_vumi_flow_runs_end_to_end_with_no_secret_in_the_logs() {
    let logs = support::logs::capture_logs();
    let options = VumiMockOptions { import_delay: Duration::from_millis(500), ..VumiMockOptions::default() };
    let VumiApp { mock, mut app, database: _database, .. } = spawn(Backend::Sqlite, options, QUICK).await;

    // Link: the widget's start token, then the user completes the widget. The caller's request
    // id travels to Vumi as its client trace id.
    let mut request = tonic::Request::new(pb::CreateLinkSessionRequest {
        provider: "vumi".into(),
        external_user_id: "user-1".into(),
        institution_id: "santander".into(),
        ..Default::default()
    });
    request.metadata_mut().insert("x-request-id", "trace-vumi-flow-1".parse().unwrap());
    let session =
        app.link.create_link_session(request).await.expect("session created").into_inner().link_session.unwrap();
    let traces: Vec<String> = serde_json::from_value(mock.admin_get("trace_ids").await).unwrap();
    assert_eq!(traces, ["trace-vumi-flow-1"; 3], "the login, entity list and start-flow calls carry it");
    assert_eq!(session.state(), pb::LinkSessionState::Created);
    assert_eq!(session.link_token.split('.').count(), 3, "the widget's start JWT");
    let issued = mock.complete_widget(&session.id).await;
    let linked = app.wait_for_session(&session.id, pb::LinkSessionState::Succeeded).await;
    assert_eq!((linked.public_token.as_str(), linked.institution_id.as_str()), (issued.as_str(), "santander"));
    let listed = app
        .link
        .list_public_tokens(pb::ListPublicTokensRequest {
            provider: "vumi".into(),
            external_user_id: "user-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .public_tokens;
    assert_eq!(listed.iter().map(|t| t.public_token.as_str()).collect::<Vec<_>>(), [issued.as_str()]);

    // Exchange: one upstream exchange however often it is asked.
    let connection = app.exchange("vumi", &issued).await.expect("exchanged");
    assert_eq!(connection.state(), pb::ConnectionState::Pending);
    assert_eq!((connection.institution_id.as_str(), connection.external_user_id.as_str()), ("santander", "user-1"));
    let again = app.exchange("vumi", &issued).await.expect("a retried exchange answers the same connection");
    assert_eq!(again.id, connection.id);
    assert_eq!(mock.count("/commands/connections/exchange/", "").await, 1);
    let ready = app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    assert!(ready.products.iter().all(|p| p.state() == pb::ProductState::Ready), "{:?}", ready.products);

    // Read: accounts, transactions, portfolios, positions, portfolio transactions, exact.
    let id = connection.id.clone();
    let accounts = app
        .accounts
        .list_accounts(pb::ListAccountsRequest { connection_id: id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .accounts;
    let kinds: Vec<_> = accounts.iter().map(|a| (a.r#type(), a.mask.as_str())).collect();
    assert!(
        kinds.contains(&(pb::AccountType::BrokerageCash, "6789"))
            && kinds.contains(&(pb::AccountType::Checking, "1332")),
        "{kinds:?}"
    );
    let cash = accounts.iter().find(|a| a.r#type() == pb::AccountType::BrokerageCash).unwrap();
    assert_eq!(amount(&cash.balances.as_ref().unwrap().current), ("1520.35", "EUR"));
    let transactions = app
        .accounts
        .list_account_transactions(pb::ListAccountTransactionsRequest {
            connection_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .transactions;
    let mut amounts: Vec<_> = transactions.iter().map(|t| amount(&t.amount).0).collect();
    amounts.sort_unstable();
    assert_eq!(amounts, ["-64.99", "12.30", "1800.00"]);
    let portfolios = app
        .portfolios
        .list_portfolios(pb::ListPortfoliosRequest { connection_id: id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .portfolios;
    assert_eq!(portfolios.len(), 1);
    assert_eq!(amount(&portfolios[0].value), ("3250.75", "EUR"));
    assert_eq!(portfolios[0].cash_account_id, cash.id, "the broker cash account is the portfolio's");
    assert_eq!(portfolios[0].name, "Stock portfolio", "named after its type, never its owners");

    // Owners and numbers (dev mode holds every scope): Vumi names the owners of accounts and
    // portfolios, and an account's IBAN is its number.
    let owners = app
        .accounts
        .list_account_owners(pb::ListAccountOwnersRequest { connection_id: id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .account_owners;
    assert_eq!(owners.len(), 3, "two accounts and the portfolio: {owners:?}");
    let of_portfolio = owners.iter().find(|o| o.portfolio_id == portfolios[0].id).expect("the portfolio's owners");
    assert_eq!(of_portfolio.owners[0].names, ["Ana García"]);
    let numbers = app
        .accounts
        .list_account_numbers(pb::ListAccountNumbersRequest { connection_id: id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .account_numbers;
    let checking = accounts.iter().find(|a| a.r#type() == pb::AccountType::Checking).unwrap();
    let ibans: Vec<&str> = numbers.iter().flat_map(|n| n.international.iter().map(|i| i.iban.as_str())).collect();
    assert!(ibans.contains(&"ES9121000418450200051332"), "{ibans:?}");
    assert!(numbers.iter().any(|n| n.account_id == checking.id));
    let positions = app
        .portfolios
        .list_portfolio_positions(pb::ListPortfolioPositionsRequest {
            connection_id: id.clone(),
            portfolio_id: portfolios[0].id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .positions;
    let mut held: Vec<_> = positions
        .iter()
        .map(|p| {
            let instrument = p.instrument.as_ref().unwrap();
            (instrument.isin.as_str(), p.quantity.as_str(), amount(&p.market_value).0, instrument.currency.as_str())
        })
        .collect();
    held.sort_unstable();
    assert_eq!(held, [("ES0113900J37", "250", "1163.75", "EUR"), ("US9229083632", "3.5", "2087.00", "USD")]);
    let trades = app
        .portfolios
        .list_portfolio_transactions(pb::ListPortfolioTransactionsRequest {
            connection_id: id.clone(),
            portfolio_id: portfolios[0].id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .transactions;
    assert_eq!(trades.len(), 3);

    // Delete: removed upstream, DELETED here; the spent token is refused with its reason.
    let deleted = app
        .connections
        .delete_connection(pb::DeleteConnectionRequest { connection_id: id.clone(), ..Default::default() })
        .await
        .expect("deleted")
        .into_inner()
        .connection
        .unwrap();
    assert_eq!(deleted.state(), pb::ConnectionState::Deleted);
    assert_eq!(mock.calls().await.keys().filter(|p| p.starts_with("/commands/connections/conn-")).count(), 1);
    let status = app.exchange("vumi", &issued).await.unwrap_err();
    support::status::assert_error(
        "exchange after delete",
        &status,
        tonic::Code::FailedPrecondition,
        "PUBLIC_TOKEN_USED",
    );
    assert_eq!(mock.count(LOGIN, "").await, 1, "one login served every call");

    let tokens = mock.admin_get("tokens").await;
    app.shut_down().await.expect("clean stop");
    // The mock plays Vumi, which knows every token; only linkgate's own lines count.
    let text: String = String::from_utf8_lossy(&logs.lock().unwrap())
        .lines()
        .filter(|line| !line.contains(" linkgate_mocks"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("upstream call") && text.contains("vumi.active_positions"), "upstream calls are logged");
    assert!(text.contains("vumi-req-"), "Vumi's X-Request-ID is logged");
    let mut secrets = vec![("client secret", SECRET.to_owned()), ("public token", issued.clone())];
    for (what, field) in [("session JWT", "sessions"), ("connection token", "connection_tokens")] {
        for token in tokens[field].as_array().unwrap() {
            secrets.push((what, token.as_str().unwrap().to_owned()));
        }
    }
    assert!(secrets.len() >= 3, "{tokens}");
    for (what, secret) in secrets {
        assert!(!text.contains(&secret), "the {what} appears in the logs");
    }
}

/// Two replicas on one PostgreSQL share one session: one login between them, and one new login
/// when Vumi ends the session.
#[tokio::test]
async fn replicas_share_one_login_and_log_in_once_more_after_the_session_ends() {
    let VumiApp { mock, mut app, database, key } = spawn(Backend::Postgres, instant_mock(), QUICK).await;
    let mut other = replica(&mock, &database, &key, &QUICK).await;

    // Both replicas start sessions at once: Vumi sees one login.
    let (first, second) = tokio::join!(app.create_session("user-1"), other.create_session("user-2"));
    first.expect("first replica");
    second.expect("second replica");
    for _ in 0..3 {
        other.create_session("user-3").await.expect("second replica again");
        app.create_session("user-4").await.expect("first replica again");
    }
    assert_eq!(mock.count(LOGIN, "").await, 1, "one login for every replica: {:?}", mock.calls().await);

    // The session ends (its hour ran out): the next calls log in once more, and only once.
    mock.admin_post("session/expire", serde_json::json!({})).await;
    let (first, second) = tokio::join!(app.create_session("user-5"), other.create_session("user-6"));
    first.expect("first replica after expiry");
    second.expect("second replica after expiry");
    app.create_session("user-7").await.expect("first replica once more");
    assert_eq!(mock.count(LOGIN, "").await, 2, "one new login: {:?}", mock.calls().await);

    // The full flow works on either replica with the shared session.
    let token = other.public_token(&mock).await;
    let connection = app.exchange("vumi", &token).await.expect("exchanged on the other replica");
    app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    assert_eq!(mock.count(LOGIN, "").await, 2);
}

/// Provider calls bounded far beyond the slow exchanges of the claim tests.
const PATIENT: Timing = Timing { request_timeout: "20s", call_timeout: "20s" };

/// Waits until Vumi has received `n` calls to `path`: the caller is inside that provider call.
async fn until_called(mock: &Mock, path: &str, n: u64) {
    let deadline = Instant::now() + PATIENCE;
    while mock.count(path, "").await < n {
        assert!(Instant::now() < deadline, "Vumi never received call {n} to {path}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A replica killed -9 while its exchange waits on Vumi leaves a claim nobody renews: the same
/// token's exchange on another replica takes the claim over once its lease lapses (6 s, where a
/// claim used to block the token for 60 s and every retry ended ABORTED after 10 s), and gets
/// Vumi's answer, from one upstream call made after the holder was gone.
#[tokio::test]
async fn a_replica_killed_mid_exchange_leaves_the_token_to_another_within_seconds() {
    let VumiApp { mock, mut app, database, key } = spawn(Backend::Postgres, instant_mock(), QUICK).await;
    let token = app.public_token(&mock).await;
    let path = format!("/commands/connections/exchange/{token}");
    mock.fault(serde_json::json!({"kind": "delay", "delay_ms": 5000, "path": path})).await;

    // The holder: linkgate in a process of its own, on the same database and Vumi.
    let base_url = mock.server.base_url();
    let upstream = Upstream {
        database_url: &database.url,
        encryption_key: &key,
        provider: "vumi",
        base_url: &base_url,
        client_secret: SECRET,
        timing: &PATIENT,
    };
    let port = free_port();
    let grpc_addr = format!("127.0.0.1:{port}");
    let flags = upstream.flags(&[("--vumi-redirect-id", REDIRECT_ID), ("--grpc-addr", &grpc_addr)]);
    let mut holder = spawn_serve(|command| {
        command.args(flags.iter().flat_map(|(flag, value)| [flag, value]));
    });
    let mut link = pb::link_service_client::LinkServiceClient::new(connect(port).await);
    let request =
        pb::ExchangePublicTokenRequest { provider: "vumi".into(), public_token: token.clone(), ..Default::default() };
    let first = tokio::spawn(async move { link.exchange_public_token(request).await });
    until_called(&mock, &path, 1).await;

    // kill -9 inside the provider call: its claim is neither recorded, released nor renewed.
    holder.kill().await.unwrap();
    let killed_at = Instant::now();
    assert!(first.await.unwrap().is_err(), "the killed replica answered nothing");
    assert_eq!(mock.count(&path, "").await, 1, "nobody else called Vumi while the holder lived");

    let answer = app.exchange("vumi", &token).await;
    let waited = killed_at.elapsed();
    println!("the exchange after the holder's kill -9 answered after {waited:?}: {:?}", answer.as_ref().map(|c| &c.id));
    assert!(waited < Duration::from_secs(12), "answered within the claim's lease, not 60 s ({waited:?})");
    assert_eq!(mock.count(&path, "").await, 2, "one more upstream call, by the replica that took the claim over");
    // Vumi dropped the killed request with its connection, before its delay ran out: the token
    // was never consumed, and the one live exchange gets the connection.
    let connection = answer.expect("exchanged by the replica that took the claim over");
    assert_eq!(app.exchange("vumi", &token).await.expect("a retry").id, connection.id);
    assert_eq!(app.connection_count().await, 1);
}

/// An exchange slower than the claim's lease keeps its claim by renewing it: the same token's
/// exchange on another replica meanwhile never calls Vumi, and answers the holder's connection.
#[tokio::test]
async fn an_exchange_slower_than_the_claims_lease_keeps_its_claim_and_is_never_repeated_upstream() {
    let VumiApp { mock, mut app, database, key } = spawn(Backend::Postgres, instant_mock(), PATIENT).await;
    let mut other = replica(&mock, &database, &key, &PATIENT).await;
    let token = app.public_token(&mock).await;
    let path = format!("/commands/connections/exchange/{token}");
    // Longer than the 6 s lease, shorter than the 10 s another exchange waits for the claim.
    mock.fault(serde_json::json!({"kind": "delay", "delay_ms": 8000, "path": path})).await;

    let (holder, waiter) = tokio::join!(app.exchange("vumi", &token), async {
        until_called(&mock, &path, 1).await;
        other.exchange("vumi", &token).await
    });

    let connection = holder.expect("the holder exchanges");
    assert_eq!(waiter.expect("the waiter answers the holder's connection").id, connection.id);
    assert_eq!(mock.count(&path, "").await, 1, "one upstream call: the renewed claim was never taken over");
}

#[tokio::test]
async fn a_5xx_burst_is_retried_into_exactly_one_connection() {
    let VumiApp { mock, mut app, database: _database, .. } = spawn(Backend::Sqlite, instant_mock(), QUICK).await;
    let token = app.public_token(&mock).await;
    let path = format!("/commands/connections/exchange/{token}");
    mock.fault(serde_json::json!({"kind": "status", "status": 500, "times": 2, "path": path})).await;

    let connection = app.exchange("vumi", &token).await.expect("the third attempt exchanges");

    assert_eq!(mock.count(&path, "").await, 3);
    assert_eq!(app.connection_count().await, 1, "one connection, nothing half-written");
    app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
}

#[tokio::test]
async fn a_provider_slower_than_the_deadlines_ends_unavailable_with_retry_info() {
    let timing = Timing { request_timeout: "300ms", call_timeout: "1s" };
    let VumiApp { mock, mut app, database: _database, .. } = spawn(Backend::Sqlite, instant_mock(), timing).await;
    app.create_session("warm-up").await.expect("logged in");
    let path = "/commands/connections/start-flow";
    mock.fault(serde_json::json!({"kind": "delay", "delay_ms": 3000, "times": 20, "path": path})).await;

    // The call budget ends it.
    let started = Instant::now();
    let status = app.create_session("user-1").await.unwrap_err();
    assert_error("slow Vumi", &status, tonic::Code::Unavailable, "PROVIDER_UNAVAILABLE");
    assert!(status.get_details_retry_info().is_some(), "RetryInfo tells the caller when to come back");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(550) && elapsed < Duration::from_millis(1500),
        "budget bounds it ({elapsed:?})"
    );

    // So does the caller's own, shorter deadline: linkgate stops calling Vumi when it passes
    // (the client's own timer may answer first, so the calls Vumi sees are the proof).
    let before = mock.count(path, "").await;
    let mut request = tonic::Request::new(pb::CreateLinkSessionRequest {
        provider: "vumi".into(),
        external_user_id: "user-2".into(),
        ..Default::default()
    });
    request.set_timeout(Duration::from_millis(400));
    let status = app.link.create_link_session(request).await.unwrap_err();
    let code = status.code();
    assert!(
        matches!(code, tonic::Code::DeadlineExceeded | tonic::Code::Unavailable | tonic::Code::Cancelled),
        "{status:?}"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let attempts = mock.count(path, "").await - before;
    assert!((1..=2).contains(&attempts), "no attempt after the caller's deadline ({attempts}; the budget allows 3)");
}

#[tokio::test]
async fn rate_limits_are_waited_out_when_short_and_passed_on_when_long() {
    let VumiApp { mock, mut app, database: _database, .. } = spawn(Backend::Sqlite, instant_mock(), QUICK).await;
    app.create_session("warm-up").await.expect("logged in");
    let path = "/commands/connections/start-flow";

    mock.fault(serde_json::json!({"kind": "rate_limit", "retry_after": 1, "path": path})).await;
    let started = Instant::now();
    app.create_session("user-1").await.expect("created after the pause");
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After honoured ({:?})", started.elapsed());

    mock.fault(serde_json::json!({"kind": "rate_limit", "retry_after": 120, "path": path})).await;
    let status = app.create_session("user-2").await.unwrap_err();
    assert_error("long Retry-After", &status, tonic::Code::Unavailable, "PROVIDER_RATE_LIMITED");
    let retry = status.get_details_retry_info().expect("RetryInfo").retry_delay.expect("a delay");
    assert!(retry >= Duration::from_secs(100), "Vumi's delay is passed on ({retry:?})");
}

#[tokio::test]
async fn malformed_oversized_and_dropped_answers_write_nothing_and_spend_no_token() {
    let VumiApp { mock, mut app, database: _database, .. } = spawn(Backend::Sqlite, instant_mock(), QUICK).await;
    let token = app.public_token(&mock).await;
    let path = format!("/commands/connections/exchange/{token}");
    for (case, fault) in [
        ("malformed JSON", serde_json::json!({"kind": "malformed", "path": path})),
        ("oversized body", serde_json::json!({"kind": "oversized", "bytes": 5 * 1024 * 1024, "path": path})),
    ] {
        let calls = mock.count(&path, "").await;
        mock.fault(fault).await;
        let status = app.exchange("vumi", &token).await.unwrap_err();
        assert_error(case, &status, tonic::Code::Internal, "PROVIDER_PROTOCOL");
        assert_eq!(mock.count(&path, "").await, calls + 1, "{case}: not retried");
        assert_eq!(app.connection_count().await, 0, "{case}: nothing written");
    }

    // A dropped connection is retried, and the token, never consumed, exchanges.
    mock.fault(serde_json::json!({"kind": "drop", "path": path})).await;
    app.exchange("vumi", &token).await.expect("the retry after the drop exchanges");
    assert_eq!(mock.count(&path, "").await, 4);
    assert_eq!(app.connection_count().await, 1);
}

#[tokio::test]
async fn a_token_vumi_does_not_know_is_refused_and_wrong_credentials_are_rejected() {
    let VumiApp { mock, mut app, database: _database, .. } = spawn(Backend::Sqlite, instant_mock(), QUICK).await;
    let status = app.exchange("vumi", "7c9e6679-7425-40de-944b-e07fc1f90ae7").await.unwrap_err();
    assert_error("unknown public token", &status, tonic::Code::NotFound, "PUBLIC_TOKEN_NOT_FOUND");

    let wrong = VumiMockOptions { secret: "another-secret".into(), ..instant_mock() };
    let VumiApp { mock: wrong_mock, app: mut wrong_app, database: _wrong_database, .. } =
        spawn(Backend::Sqlite, wrong, QUICK).await;
    let status = wrong_app.create_session("user-1").await.unwrap_err();
    assert_error("wrong secret", &status, tonic::Code::FailedPrecondition, "PROVIDER_REJECTED");
    assert_eq!(wrong_mock.count(LOGIN, "").await, 1, "a refused login is not retried");
    assert_eq!(mock.count(LOGIN, "").await, 1);
}

/// The mock's webhooks: POSTed on exchange and on the import's end, signed with the ES256 key
/// Vumi's verification endpoint serves, over the exact body.
#[tokio::test]
async fn the_mock_signs_its_webhooks_with_the_key_it_serves() {
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/vumi", listener.local_addr().unwrap());
    let receiver = axum::Router::new().route(
        "/webhooks/vumi",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
            let sender = sender.clone();
            async move {
                sender.send((headers, body)).unwrap();
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let options = VumiMockOptions {
        webhook_url: Some(url),
        import_delay: Duration::from_millis(300),
        ..VumiMockOptions::default()
    };
    let VumiApp { mock, mut app, database: _database, .. } = spawn(Backend::Sqlite, options, QUICK).await;
    let token = app.public_token(&mock).await;
    app.exchange("vumi", &token).await.expect("exchanged");

    let mut statuses = Vec::new();
    for _ in 0..2 {
        let (headers, body) = tokio::time::timeout(PATIENCE, received.recv()).await.unwrap().unwrap();
        let signature = headers["vumi-verification"].to_str().unwrap().to_owned();
        let header = linkgate::crypto::jws::header(&signature).unwrap();
        assert_eq!((header.alg.as_str(), header.typ.as_deref()), ("ES256", Some("JWT")));
        let kid = header.kid.expect("a key id");
        // The key endpoint needs a session: log in as a consumer would. That ends linkgate's,
        // whose next call logs in again and may end this one first: then once more.
        let base = mock.server.base_url();
        let mut jwk = None;
        for _ in 0..5 {
            let login: serde_json::Value = mock
                .admin
                .post(format!("{base}/auth/login"))
                .json(&serde_json::json!({"clientId": CLIENT_ID, "clientSecret": SECRET}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let response = mock
                .admin
                .get(format!("{base}/webhook_verification/{kid}"))
                .bearer_auth(login["token"].as_str().unwrap())
                .send()
                .await
                .unwrap();
            if response.status().is_success() {
                jwk = Some(response.json::<linkgate::crypto::jws::Jwk>().await.unwrap());
                break;
            }
        }
        let jwk = jwk.expect("the key endpoint answers within a few logins");
        let claims = linkgate::crypto::jws::verify(&signature, &jwk).expect("signed by the served key");
        assert_eq!(claims["request_body_sha256"], linkgate::crypto::jws::body_sha256(&body));
        assert!(claims["iat"].is_i64());
        let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
        statuses.push(event["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(statuses, ["PENDING", "READY"]);
}

/// Webhooks end to end: the mock posts its signed deliveries to linkgate's `/webhooks/vumi`, and
/// with polls an hour apart, only the webhook can bring the connection to READY in time.
#[tokio::test]
async fn a_signed_webhook_brings_a_connection_to_ready_without_waiting_for_the_poll() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let options = VumiMockOptions {
        webhook_url: Some(format!("http://127.0.0.1:{port}/webhooks/vumi")),
        import_delay: Duration::from_millis(300),
        ..VumiMockOptions::default()
    };
    let mock = Mock::spawn(options).await;
    let database = TestDatabase::create(Backend::Sqlite).await;
    let key = Sealer::generate_key();
    let http_addr = format!("127.0.0.1:{port}");
    let overrides = [("--http-addr", http_addr.as_str()), ("--vumi-poll-interval", "1h")];
    let mut app = replica_with(&mock, &database, &key, &QUICK, &overrides).await;

    // The widget's token, exchanged straight away (no session poll in this test).
    let public_token = mock.complete_widget("widget-session").await;
    let connection = app
        .link
        .exchange_public_token(pb::ExchangePublicTokenRequest {
            provider: "vumi".into(),
            public_token,
            external_user_id: "user-1".into(),
            ..Default::default()
        })
        .await
        .expect("exchanged")
        .into_inner()
        .connection
        .unwrap();
    assert_eq!(connection.state(), pb::ConnectionState::Pending);

    let ready = app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    assert!(!ready.products.is_empty());
    assert_eq!(mock.count("/webhook_verification/", "").await, 1, "the key was fetched once and cached");
    // Vumi's deliveries name the connection by its token: the inbox keeps them sealed.
    let tokens = mock.admin_get("tokens").await;
    let dump = database.dump().await;
    for token in tokens["connection_tokens"].as_array().expect("tokens listed") {
        assert!(!dump.contains(token.as_str().unwrap()), "a connection token is stored in clear");
    }
}

/// A linkgate whose Vumi connections are polled an hour apart, and one connection PENDING behind
/// it whose import at the mock finished meanwhile: only a webhook can bring it to READY in time.
async fn pending_connection_polled_hourly(backend: Backend) -> (Mock, TestApp, TestDatabase, String) {
    let mock =
        Mock::spawn(VumiMockOptions { import_delay: Duration::from_millis(200), ..VumiMockOptions::default() }).await;
    let database = TestDatabase::create(backend).await;
    let key = Sealer::generate_key();
    let mut app = replica_with(&mock, &database, &key, &QUICK, &[("--vumi-poll-interval", "1h")]).await;
    let public_token = mock.complete_widget("widget-session").await;
    let connection = app.exchange("vumi", &public_token).await.expect("exchanged");
    assert_eq!(connection.state(), pb::ConnectionState::Pending);
    tokio::time::sleep(Duration::from_millis(400)).await;
    (mock, app, database, connection.id)
}

impl Mock {
    /// Has the mock sign `body` with its key (header `typ` as given) and POST it to linkgate's
    /// `/webhooks/vumi`: linkgate's HTTP status and verdict.
    async fn deliver_raw(&self, app: &TestApp, body: &str, typ: Option<&str>) -> (u16, String) {
        let url = format!("http://{}/webhooks/vumi", app.http_addr);
        let sent: serde_json::Value = self
            .admin_post("webhook/raw", serde_json::json!({"url": url, "body": body, "typ": typ}))
            .await
            .json()
            .await
            .unwrap();
        (sent["delivered"].as_u64().unwrap() as u16, sent["answer"].as_str().unwrap().to_owned())
    }
}

#[tokio::test]
async fn a_webhook_token_whose_type_is_not_jwt_is_refused() {
    let (mock, mut app, _database, connection_id) = pending_connection_polled_hourly(Backend::Sqlite).await;
    let body = serde_json::json!({"event": "CONNECTION_STATUS", "credentialsToken": "unused"}).to_string();
    for typ in [Some("at+jwt"), Some("jwt+x"), None] {
        assert_eq!(mock.deliver_raw(&app, &body, typ).await, (401, "wrong_type".to_owned()), "typ {typ:?}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let connection = app
        .connections
        .get_connection(pb::GetConnectionRequest { connection_id })
        .await
        .unwrap()
        .into_inner()
        .connection
        .unwrap();
    assert_eq!(connection.state(), pb::ConnectionState::Pending, "a refused delivery polled nothing");
}

#[tokio::test]
async fn a_verified_delivery_linkgate_cannot_read_is_kept_and_polls_the_imports_in_progress() {
    let (mock, mut app, database, connection_id) = pending_connection_polled_hourly(Backend::Postgres).await;
    // Signed and bound by Vumi's key, in a shape linkgate does not know: kept, not refused.
    let body = r#"{"type": "connection.updated", "data": {"id": "somewhere"}}"#;
    assert_eq!(mock.deliver_raw(&app, body, Some("JWT")).await, (200, "accepted".to_owned()));
    let ready = app.wait_for_connection(&connection_id, pb::ConnectionState::Ready).await;
    assert!(!ready.products.is_empty());
    let kept = database.dump().await;
    assert!(kept.contains("unreadable"), "the delivery is in the inbox");
    assert!(!kept.contains("somewhere"), "sealed, as every delivery");
}

#[tokio::test]
async fn a_refresh_follows_what_vumis_status_says_it_can_update() {
    let VumiApp { mock, mut app, database: _database, .. } = spawn(Backend::Sqlite, instant_mock(), QUICK).await;
    let refresh = |id: &str| pb::RefreshConnectionRequest { connection_id: id.to_owned(), ..Default::default() };

    // Vumi keeps the user's credentials and updates the connection itself: read again from Vumi.
    let token = app.public_token(&mock).await;
    let kept = app.exchange("vumi", &token).await.unwrap();
    app.wait_for_connection(&kept.id, pb::ConnectionState::Ready).await;
    let accounts_before = mock.count("/queries/connections/", "/accounts").await;
    let refreshing = app.connections.refresh_connection(refresh(&kept.id)).await.expect("refreshed").into_inner();
    assert_eq!(refreshing.connection.unwrap().state(), pb::ConnectionState::Refreshing);
    app.wait_for_connection(&kept.id, pb::ConnectionState::Ready).await;
    assert!(mock.count("/queries/connections/", "/accounts").await > accounts_before, "the data was read again");

    // The user did not let Vumi keep their credentials: nothing but the user can update it.
    let session = app.create_session("user-2").await.unwrap();
    let body = serde_json::json!({"externalId": session.id, "entity": "santander", "storeCredentials": false});
    mock.admin_post("connect", body).await;
    let token = app.wait_for_session(&session.id, pb::LinkSessionState::Succeeded).await.public_token;
    let unkept = app.exchange("vumi", &token).await.unwrap();
    app.wait_for_connection(&unkept.id, pb::ConnectionState::Ready).await;
    let status = app.connections.refresh_connection(refresh(&unkept.id)).await.unwrap_err();
    assert_error("no stored credentials", &status, tonic::Code::FailedPrecondition, "CAPABILITY_UNSUPPORTED");
}

/// The ids of a connection's accounts, transactions, portfolios and positions, sorted.
async fn data_ids(app: &mut TestApp, connection_id: &str) -> Vec<String> {
    let id = connection_id.to_owned();
    let accounts = app
        .accounts
        .list_accounts(pb::ListAccountsRequest { connection_id: id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .accounts;
    let transactions = app
        .accounts
        .list_account_transactions(pb::ListAccountTransactionsRequest {
            connection_id: id.clone(),
            page_size: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .transactions;
    let portfolios = app
        .portfolios
        .list_portfolios(pb::ListPortfoliosRequest { connection_id: id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .portfolios;
    let mut ids: Vec<String> = accounts
        .into_iter()
        .map(|a| a.id)
        .chain(transactions.into_iter().map(|t| t.id))
        .chain(portfolios.iter().map(|p| p.id.clone()))
        .collect();
    for portfolio in portfolios {
        let positions = app
            .portfolios
            .list_portfolio_positions(pb::ListPortfolioPositionsRequest {
                connection_id: id.clone(),
                portfolio_id: portfolio.id,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .positions;
        ids.extend(positions.into_iter().map(|p| p.id));
    }
    ids.sort();
    ids
}

/// What a Vumi connection waits for its user to do in the widget: the mock's admin route that
/// makes Vumi offer the token, the status field carrying it, and the widget's link parameter.
#[derive(Clone, Copy)]
struct UserAction {
    route: &'static str,
    field: &'static str,
    parameter: &'static str,
}

/// The entity wants the user again (credentials changed): `restoreToken`, `restore_token`.
const RESTORE: UserAction =
    UserAction { route: "connections/require-restore", field: "restoreToken", parameter: "restore_token" };
/// Only a manual update by the user can refresh the connection (it has MFA): `updateToken`,
/// `update_token`.
const UPDATE: UserAction =
    UserAction { route: "connections/require-update", field: "updateToken", parameter: "update_token" };

/// Repair in place through Vumi's widget: the connection's `UPDATE_ERROR` with a restore or update
/// token (announced by webhook) turns it LOGIN_REQUIRED; a repair session hands the front end the
/// widget's link parameters (`id` and the token under its parameter), which linkgate keeps sealed;
/// once the user completed the widget the same connection updates under the same connection
/// token, with every id kept and nothing to exchange.
async fn repair_flow(action: UserAction) {
    use pb::ConnectionEventType as T;
    use pb::ConnectionState as S;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let options = VumiMockOptions {
        webhook_url: Some(format!("http://127.0.0.1:{port}/webhooks/vumi")),
        import_delay: Duration::from_millis(300),
        ..VumiMockOptions::default()
    };
    let mock = Mock::spawn(options).await;
    let database = TestDatabase::create(Backend::Postgres).await;
    let key = Sealer::generate_key();
    let http_addr = format!("127.0.0.1:{port}");
    let mut app = replica_with(&mock, &database, &key, &QUICK, &[("--http-addr", http_addr.as_str())]).await;
    let public_token = app.public_token(&mock).await;
    let connection = app.exchange_for("vumi", "user-1", &public_token).await.expect("exchanged");
    app.wait_for_connection(&connection.id, S::Ready).await;
    let before = data_ids(&mut app, &connection.id).await;
    assert!(before.len() > 5, "accounts, transactions, portfolios and positions: {before:?}");
    let tokens = mock.admin_get("tokens").await;
    let connection_token = tokens["connection_tokens"][0].as_str().unwrap().to_owned();

    // Vumi offers the token and says so by webhook; the connection needs its user.
    let blocked: serde_json::Value = mock
        .admin_post(action.route, serde_json::json!({"connectionToken": connection_token}))
        .await
        .json()
        .await
        .unwrap();
    let token = blocked[action.field].as_str().unwrap().to_owned();
    let stale = app.wait_for_connection(&connection.id, S::LoginRequired).await;
    assert_eq!(stale.error.unwrap().reason(), pb::ErrorReason::LoginRequired);
    let mut watch = app.watch(&connection.id).await;
    assert_eq!(watch.next().await, (T::Unspecified, S::LoginRequired, true), "a snapshot first");

    // The repair session: its link token is the widget's query string, served but never stored
    // in clear.
    let repair = app.repair_session(&connection.id).await;
    assert_eq!(repair.connection_id, connection.id);
    assert_eq!(repair.link_token, format!("id={REDIRECT_ID}&{}={token}", action.parameter));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = app.link.get_link_session(pb::GetLinkSessionRequest { link_session_id: repair.id.clone() }).await;
    let waiting = waiting.unwrap().into_inner().link_session.unwrap();
    assert!(!waiting.state().eq(&pb::LinkSessionState::Succeeded), "nothing happens before the user acts");
    assert_eq!(waiting.link_token, repair.link_token, "served again on every read");
    assert!(!database.dump().await.contains(&token), "the {} is in the database in clear", action.field);

    // The user completes the widget started with those parameters.
    let parameters: BTreeMap<String, String> = repair
        .link_token
        .split('&')
        .map(|pair| pair.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).unwrap())
        .collect();
    mock.admin_post("widget", serde_json::json!(parameters)).await;
    let done = app.wait_for_session(&repair.id, pb::LinkSessionState::Succeeded).await;
    assert!(done.public_token.is_empty(), "a repair issues no public token");

    watch.assert_repair_told_once().await;

    assert_eq!(data_ids(&mut app, &connection.id).await, before, "every id kept");
    app.assert_repaired_in_place(&connection.id).await;
    let listed = app.link.list_public_tokens(pb::ListPublicTokensRequest::default()).await.unwrap().into_inner();
    assert!(listed.public_tokens.is_empty(), "nothing to exchange");
    assert_eq!(mock.count("/commands/connections/exchange/", "").await, 1, "one exchange, the first link's");
}

#[tokio::test]
async fn a_vumi_connection_is_repaired_in_place_through_the_widgets_restore_token() {
    repair_flow(RESTORE).await;
}

#[tokio::test]
async fn a_vumi_connection_that_needs_a_manual_update_is_repaired_through_the_widgets_update_token() {
    repair_flow(UPDATE).await;
}

/// The mock refuses what Vumi documents no room for, in Vumi's `{"message"}` shape.
#[tokio::test]
async fn the_vumi_mock_refuses_what_vumi_would() {
    let mock = Mock::spawn(instant_mock()).await;
    let base = mock.server.base_url();
    let http = &mock.admin;
    let login = serde_json::json!({"clientId": CLIENT_ID, "clientSecret": SECRET});
    let session: serde_json::Value =
        http.post(format!("{base}/auth/login")).json(&login).send().await.unwrap().json().await.unwrap();
    let bearer = session["token"].as_str().unwrap().to_owned();
    let flow = |extra: serde_json::Value| {
        let mut body = serde_json::json!({"id": REDIRECT_ID, "product": "TRANSACTIONS"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        http.post(format!("{base}/commands/connections/start-flow")).bearer_auth(&bearer).json(&body)
    };
    let cases = [
        ("GET on the login", http.get(format!("{base}/auth/login")), 405),
        (
            "a login as a form",
            http.post(format!("{base}/auth/login"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("clientId={CLIENT_ID}")),
            415,
        ),
        (
            "a login with an unknown property",
            http.post(format!("{base}/auth/login"))
                .json(&serde_json::json!({"clientId": CLIENT_ID, "clientSecret": SECRET, "grant": "x"})),
            400,
        ),
        ("a start-flow with an unknown property", flow(serde_json::json!({"redirectUri": "x"})), 400),
        (
            "an exchange with a body",
            http.post(format!("{base}/commands/connections/exchange/123e4567-e89b-12d3-a456-426614174000"))
                .bearer_auth(&bearer)
                .json(&serde_json::json!({})),
            400,
        ),
        ("a query without a session", http.get(format!("{base}/queries/connections")), 401),
    ];
    for (case, request, status) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{case}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["message"].is_string(), "{case}: {body}");
    }
    let accepted = flow(serde_json::json!({"entity": "santander", "externalId": "x"})).send().await.unwrap();
    assert!(accepted.status().is_success(), "the documented properties are accepted");
}

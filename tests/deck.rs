//! Deck end to end: the Deck mock in-process on a random port, a real linkgate pointed at it, and
//! every step driven through linkgate's gRPC API; then a fault matrix scripted through the mock's
//! admin API. Timings are short (polls every 100 ms, a 1 s data extraction) so the file stays fast.

#[path = "support/mod.rs"]
mod support;

use linkgate::crypto::Sealer;
use linkgate::pb;
use linkgate_mocks::MockServer;
use linkgate_mocks::deck::{self, DeckMockOptions, NATIONAL_GRID};
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::database::{Backend, TestDatabase};
use support::server::{QUICK, SECRET, TestApp, Timing, Upstream};
use tonic_types::StatusExt;

/// The Deck mock, a linkgate in front of it (which it derefs to), and the mock's admin client.
/// Both stop when dropped.
struct DeckApp {
    gateway: TestApp,
    mock: MockServer,
    admin: reqwest::Client,
    database: TestDatabase,
    /// The encryption key the server seals with, for tests that open its store beside it.
    key: String,
}

impl Deref for DeckApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.gateway
    }
}

impl DerefMut for DeckApp {
    fn deref_mut(&mut self) -> &mut TestApp {
        &mut self.gateway
    }
}

async fn spawn(backend: Backend, mock: DeckMockOptions, timing: Timing, secret: &str) -> DeckApp {
    // Only the tests' admin client needs a process-wide provider; linkgate's own client brings ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mock = deck::spawn("127.0.0.1:0".parse().unwrap(), mock).await.expect("mock binds");
    let database = TestDatabase::create(backend).await;
    let key = Sealer::generate_key();
    let base_url = mock.base_url();
    let upstream = Upstream {
        database_url: &database.url,
        encryption_key: &key,
        provider: "deck",
        base_url: &base_url,
        client_secret: secret,
        timing: &timing,
    };
    let gateway = TestApp::start(upstream.settings(&[]), None, None).await;
    DeckApp { gateway, mock, admin: reqwest::Client::new(), database, key }
}

/// Mock timings of the fault tests: attempts settle at once, data is ready at once.
fn instant_mock() -> DeckMockOptions {
    DeckMockOptions { connect_delay: Duration::ZERO, extraction_delay: Duration::ZERO, ..DeckMockOptions::default() }
}

impl DeckApp {
    /// Scripts a fault through the mock's admin API.
    async fn fault(&self, rule: serde_json::Value) {
        let response = self.admin.post(format!("{}/faults", self.mock.admin_url())).json(&rule).send().await.unwrap();
        assert!(response.status().is_success(), "fault accepted: {rule}");
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

    /// Every token the mock issued.
    async fn issued_tokens(&self) -> serde_json::Value {
        self.admin.get(format!("{}/tokens", self.mock.admin_url())).send().await.unwrap().json().await.unwrap()
    }

    async fn create_session(&mut self, user: &str) -> Result<pb::LinkSession, tonic::Status> {
        self.link
            .create_link_session(pb::CreateLinkSessionRequest {
                provider: "deck".into(),
                external_user_id: user.into(),
                institution_id: NATIONAL_GRID.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().link_session.unwrap())
    }

    async fn submit(
        &mut self,
        session_id: &str,
        username: &str,
        password: &str,
    ) -> Result<pb::LinkSession, tonic::Status> {
        let credentials =
            HashMap::from([("username".to_owned(), username.to_owned()), ("password".to_owned(), password.to_owned())]);
        self.link
            .submit_credentials(pb::SubmitCredentialsRequest {
                link_session_id: session_id.into(),
                credentials,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().link_session.unwrap())
    }

    /// A public token of `user_good` (the instant mock connects at once).
    async fn public_token(&mut self) -> String {
        let session = self.create_session("user-1").await.expect("session created");
        let session = self.submit(&session.id, "user_good", deck::GOOD_PASSWORD).await.expect("credentials accepted");
        let session = self.wait_for_session(&session.id, pb::LinkSessionState::Succeeded).await;
        session.public_token
    }
}

/// Asserts a Deck error's code and reason, and that it names the provider.
#[track_caller]
fn assert_error(case: &str, status: &tonic::Status, code: tonic::Code, expected_reason: &str) {
    support::status::assert_provider_error("deck", case, status, code, expected_reason);
}

/// The whole flow through linkgate's API: link with MFA, exchange, first import (through
/// PRODUCT_NOT_READY), read, refresh, delete.
async fn full_flow(backend: Backend, logs: Option<Arc<Mutex<Vec<u8>>>>) {
    // Arrange: a mock whose attempts take 200 ms and whose data takes 1 s to extract.
    let mock = DeckMockOptions {
        connect_delay: Duration::from_millis(200),
        extraction_delay: Duration::from_secs(1),
        refresh_delay: Duration::from_millis(300),
        ..DeckMockOptions::default()
    };
    let mut app = spawn(backend, mock, QUICK, SECRET).await;

    // Institutions are Deck's sources, with their login forms.
    let institutions = app
        .link
        .list_institutions(pb::ListInstitutionsRequest { provider: "deck".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .institutions;
    let names: Vec<&str> = institutions.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names.len(), deck::MOST_COMMON, "without a query, Deck's most common sources: {names:?}");
    assert!(names.is_sorted(), "ordered by name: {names:?}");
    assert!(["Iberdrola", "National Grid", "Thames Water"].iter().all(|n| names.contains(n)), "{names:?}");
    let grid = institutions.iter().find(|i| i.id == NATIONAL_GRID).unwrap();
    assert_eq!(grid.kind(), pb::InstitutionKind::Utility);
    let fields: Vec<(&str, bool)> = grid.credential_fields.iter().map(|f| (f.name.as_str(), f.secret)).collect();
    assert_eq!(fields, [("username", false), ("password", true)]);

    // Link: credentials, then the MFA question Deck asks while connecting.
    let session = app.create_session("user-1").await.expect("session created");
    assert_eq!(session.state(), pb::LinkSessionState::Created);
    assert!(session.link_token.starts_with("link-sandbox-"), "Deck's link token: {}", session.link_token);
    let submitted = app.submit(&session.id, "user_mfa", deck::GOOD_PASSWORD).await.expect("credentials forwarded");
    assert_eq!(submitted.state(), pb::LinkSessionState::Connecting, "Deck is still connecting");
    assert!(submitted.public_token.is_empty(), "no public token before Deck connected");
    let asked = app.wait_for_session(&session.id, pb::LinkSessionState::MfaRequired).await;
    assert!(asked.mfa_question.contains("code"), "Deck's question: {}", asked.mfa_question);
    assert!(asked.public_token.is_empty(), "no public token before Deck connected");
    app.link
        .answer_mfa(pb::AnswerMfaRequest {
            link_session_id: session.id.clone(),
            answer: deck::MFA_ANSWER.into(),
            ..Default::default()
        })
        .await
        .expect("answer forwarded");
    let linked = app.wait_for_session(&session.id, pb::LinkSessionState::Succeeded).await;
    assert!(linked.public_token.starts_with("public-sandbox-"));
    assert_eq!(linked.institution_id, NATIONAL_GRID);

    // Exchange: one connection at the source Deck names, importing.
    let connection = app.exchange("deck", &linked.public_token).await.expect("exchanged");
    assert_eq!(connection.state(), pb::ConnectionState::Pending);
    assert_eq!(
        (connection.institution_id.as_str(), connection.institution_name.as_str()),
        (NATIONAL_GRID, "National Grid")
    );
    let ready = app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    assert!(ready.products.iter().all(|p| p.state() == pb::ProductState::Ready));
    assert!(
        app.call_count("/sustainability/get").await >= 2,
        "the first import met PRODUCT_NOT_READY before the data: {:?}",
        app.calls().await
    );

    // Read: two utility accounts, three statements each, amounts exact.
    let accounts = app
        .accounts
        .list_accounts(pb::ListAccountsRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .accounts;
    assert_eq!(accounts.len(), 2);
    for account in &accounts {
        assert_eq!(account.r#type(), pb::AccountType::Utility);
        assert_eq!(account.currency, "USD");
        assert_eq!(account.mask.len(), 4, "last four digits: {}", account.mask);
    }
    let statements = app
        .statements
        .list_statements(pb::ListStatementsRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .statements;
    assert_eq!(statements.len(), 6);
    for statement in &statements {
        assert!(accounts.iter().any(|a| a.id == statement.account_id));
        let total = statement.total_due.as_ref().unwrap();
        assert_eq!(total.currency, "USD");
        let (units, cents) = total.amount.split_once('.').expect("a decimal amount");
        assert!(units.parse::<u64>().is_ok() && cents.len() == 2, "amount {}", total.amount);
        assert!(statement.period_start < statement.period_end && !statement.due_on.is_empty());
    }

    // Refresh: Deck runs a new scraping job; the connection comes back READY.
    let refreshing = app
        .connections
        .refresh_connection(pb::RefreshConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .expect("refresh accepted")
        .into_inner()
        .connection
        .unwrap();
    assert_eq!(refreshing.state(), pb::ConnectionState::Refreshing);
    app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    assert_eq!(app.call_count("/connection/refresh").await, 1);

    // Delete: destroyed upstream, DELETED here.
    let deleted = app
        .connections
        .delete_connection(pb::DeleteConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .expect("deleted")
        .into_inner()
        .connection
        .unwrap();
    assert_eq!(deleted.state(), pb::ConnectionState::Deleted);
    assert_eq!(app.call_count("/connection/destroy").await, 1, "the mock saw /connection/destroy");

    let tokens = app.issued_tokens().await;
    app.shut_down().await.expect("clean stop");

    // No secret in the logs: not Deck's secret, the access token, the password or the public token.
    if let Some(logs) = logs {
        let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
        assert!(
            text.contains("upstream call") && text.contains("deck.sustainability_get"),
            "upstream calls are logged"
        );
        let access_tokens: Vec<String> = serde_json::from_value(tokens["access_tokens"].clone()).unwrap();
        assert_eq!(access_tokens.len(), 1);
        for (what, secret) in [
            ("Deck secret", SECRET),
            ("access token", access_tokens[0].as_str()),
            ("password", deck::GOOD_PASSWORD),
            ("public token", linked.public_token.as_str()),
        ] {
            assert!(!text.contains(secret), "the {what} appears in the logs");
        }
    }
}

#[tokio::test]
async fn the_deck_flow_runs_end_to_end_on_sqlite_with_no_secret_in_the_logs() {
    let logs = support::logs::capture_logs();
    full_flow(Backend::Sqlite, Some(logs)).await;
}

#[tokio::test]
async fn the_deck_flow_runs_end_to_end_on_postgres() {
    full_flow(Backend::Postgres, None).await;
}

#[tokio::test]
async fn wrong_credentials_and_keys_are_refused_with_their_reasons() {
    let mut app = spawn(Backend::Sqlite, instant_mock(), QUICK, SECRET).await;
    let session = app.create_session("user-1").await.unwrap();
    let failed = app.submit(&session.id, "user_good", "wrong-password").await.expect("forwarded");
    assert_eq!(failed.state(), pb::LinkSessionState::Failed);
    assert_eq!(failed.failure_reason, pb::ErrorReason::InvalidCredentials as i32);

    let mut wrong_keys = spawn(Backend::Sqlite, instant_mock(), QUICK, "not-the-secret").await;
    let status = wrong_keys
        .link
        .list_institutions(pb::ListInstitutionsRequest { provider: "deck".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_error("wrong secret", &status, tonic::Code::FailedPrecondition, "PROVIDER_REJECTED");
    assert_eq!(wrong_keys.call_count("/link/token/create").await, 1, "a 401 is not retried");
}

#[tokio::test]
async fn list_providers_reports_each_providers_health_from_its_recent_calls() {
    let mut app = spawn(Backend::Sqlite, instant_mock(), QUICK, SECRET).await;
    let deck_health = async |app: &mut DeckApp| {
        let providers = app.link.list_providers(pb::ListProvidersRequest {}).await.unwrap().into_inner().providers;
        let deck = providers.iter().find(|p| p.id == "deck").expect("deck is listed").clone();
        assert!(deck.enabled, "Deck has credentials");
        pb::ProviderHealth::try_from(deck.health).unwrap()
    };
    assert_eq!(deck_health(&mut app).await, pb::ProviderHealth::Unspecified, "no call made yet");

    app.create_session("user-1").await.expect("Deck answers");
    assert_eq!(deck_health(&mut app).await, pb::ProviderHealth::Healthy);

    // Every attempt fails: three calls end PROVIDER_UNAVAILABLE after their retries.
    app.fault(serde_json::json!({"kind": "status", "status": 503, "times": 100, "path": "/link/token/create"})).await;
    for _ in 0..3 {
        app.create_session("user-1").await.expect_err("Deck is down");
    }
    assert_eq!(deck_health(&mut app).await, pb::ProviderHealth::Degraded);
}

#[tokio::test]
async fn a_5xx_burst_is_retried_into_exactly_one_connection() {
    let mut app = spawn(Backend::Sqlite, instant_mock(), QUICK, SECRET).await;
    let token = app.public_token().await;
    let path = "/connection/public_token/exchange";
    app.fault(serde_json::json!({"kind": "status", "status": 500, "times": 2, "path": path})).await;

    let connection = app.exchange("deck", &token).await.expect("the third attempt exchanges");

    assert_eq!(app.call_count(path).await, 3);
    assert_eq!(app.connection_count().await, 1, "one connection, nothing half-written");
    app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_as_retry_after_asks() {
    let mut app = spawn(Backend::Sqlite, instant_mock(), QUICK, SECRET).await;
    // Warm the source catalogue so the scripted 429 meets the session's own link token call.
    app.link
        .list_institutions(pb::ListInstitutionsRequest { provider: "deck".into(), ..Default::default() })
        .await
        .unwrap();
    let before = app.call_count("/link/token/create").await;
    app.fault(serde_json::json!({"kind": "rate_limit", "retry_after": 1, "path": "/link/token/create"})).await;

    let started = Instant::now();
    let session = app.create_session("user-1").await.expect("created after the pause");

    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After honoured ({:?})", started.elapsed());
    assert_eq!(app.call_count("/link/token/create").await, before + 2);
    assert!(!session.link_token.is_empty());
}

#[tokio::test]
async fn a_provider_slower_than_the_deadline_ends_unavailable_with_retry_info() {
    let timing = Timing { request_timeout: "300ms", call_timeout: "1s" };
    let mut app = spawn(Backend::Sqlite, instant_mock(), timing, SECRET).await;
    app.link
        .list_institutions(pb::ListInstitutionsRequest { provider: "deck".into(), ..Default::default() })
        .await
        .unwrap();
    let before = app.call_count("/link/token/create").await;
    app.fault(serde_json::json!({"kind": "delay", "delay_ms": 3000, "times": 10, "path": "/link/token/create"})).await;

    let started = Instant::now();
    let status = app.create_session("user-1").await.unwrap_err();

    assert_error("slow Deck", &status, tonic::Code::Unavailable, "PROVIDER_UNAVAILABLE");
    assert!(status.get_details_retry_info().is_some(), "RetryInfo tells the caller when to come back");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(550) && elapsed < Duration::from_millis(1500),
        "the call budget bounds it ({elapsed:?})"
    );
    let attempts = app.call_count("/link/token/create").await - before;
    assert!((2..=3).contains(&attempts), "timeouts are retried within the budget ({attempts} attempts in {elapsed:?})");
}

#[tokio::test]
async fn the_callers_trace_context_and_deadline_reach_deck() {
    let timing = Timing { request_timeout: "300ms", call_timeout: "30s" };
    let mut app = spawn(Backend::Sqlite, instant_mock(), timing, SECRET).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut request =
        tonic::Request::new(pb::ListInstitutionsRequest { provider: "deck".into(), ..Default::default() });
    request.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
    app.link.list_institutions(request).await.unwrap();
    let report: serde_json::Value =
        app.admin.get(format!("{}/calls", app.mock.admin_url())).send().await.unwrap().json().await.unwrap();
    let seen = report["traceparents"].as_array().expect("the mock reports trace contexts");
    assert!(!seen.is_empty() && seen.iter().all(|value| value == traceparent), "Deck saw the caller's trace: {seen:?}");

    // Each attempt times out at 300 ms; without the caller's 500 ms deadline the 30 s call budget
    // would let every attempt run.
    let before = app.call_count("/link/token/create").await;
    app.fault(serde_json::json!({"kind": "delay", "delay_ms": 3000, "times": 10, "path": "/link/token/create"})).await;
    let mut request = tonic::Request::new(pb::CreateLinkSessionRequest {
        provider: "deck".into(),
        external_user_id: "user-1".into(),
        institution_id: NATIONAL_GRID.into(),
        ..Default::default()
    });
    request.set_timeout(Duration::from_millis(500));
    let status = app.link.create_link_session(request).await.unwrap_err();
    assert!(
        matches!(status.code(), tonic::Code::DeadlineExceeded | tonic::Code::Cancelled | tonic::Code::Unavailable),
        "the caller's deadline ends it: {status:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let attempts = app.call_count("/link/token/create").await - before;
    assert!((1..=2).contains(&attempts), "no attempt starts after the caller's deadline ({attempts} attempts)");
}

#[tokio::test]
async fn malformed_and_oversized_answers_are_protocol_errors_that_write_nothing() {
    let mut app = spawn(Backend::Sqlite, instant_mock(), QUICK, SECRET).await;
    let token = app.public_token().await;
    let path = "/connection/public_token/exchange";
    for (case, fault) in [
        ("malformed JSON", serde_json::json!({"kind": "malformed", "path": path})),
        ("oversized body", serde_json::json!({"kind": "oversized", "bytes": 5 * 1024 * 1024, "path": path})),
    ] {
        let calls = app.call_count(path).await;
        app.fault(fault).await;
        let status = app.exchange("deck", &token).await.unwrap_err();
        assert_error(case, &status, tonic::Code::Internal, "PROVIDER_PROTOCOL");
        assert_eq!(app.call_count(path).await, calls + 1, "{case}: not retried");
        assert_eq!(app.connection_count().await, 0, "{case}: nothing written");
    }

    // The token was never consumed: once Deck answers properly, it exchanges.
    app.exchange("deck", &token).await.expect("exchanged once Deck answers");
    assert_eq!(app.connection_count().await, 1);
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let mut app = spawn(Backend::Sqlite, instant_mock(), QUICK, SECRET).await;
    let token = app.public_token().await;
    let path = "/connection/public_token/exchange";
    app.fault(serde_json::json!({"kind": "drop", "path": path})).await;

    app.exchange("deck", &token).await.expect("the second attempt exchanges");

    assert_eq!(app.call_count(path).await, 2);
    assert_eq!(app.connection_count().await, 1);
}

#[tokio::test]
async fn submitted_credentials_are_not_sent_twice_after_a_5xx() {
    let mut app = spawn(Backend::Sqlite, instant_mock(), QUICK, SECRET).await;
    let session = app.create_session("user-1").await.unwrap();
    app.fault(serde_json::json!({"kind": "status", "status": 500, "path": "/link/connect"})).await;

    let status = app.submit(&session.id, "user_good", deck::GOOD_PASSWORD).await.unwrap_err();

    assert_error("5xx on /link/connect", &status, tonic::Code::Unavailable, "PROVIDER_UNAVAILABLE");
    assert_eq!(app.call_count("/link/connect").await, 1, "a login attempt is never repeated blindly");
    let session = app.get_session(&session.id).await;
    assert_eq!(session.state(), pb::LinkSessionState::Created, "the caller may submit again");
    let linked = app.submit(&session.id, "user_good", deck::GOOD_PASSWORD).await.expect("second submission");
    assert_eq!(linked.state(), pb::LinkSessionState::Succeeded);
}

#[tokio::test]
async fn rotating_the_access_token_kills_the_old_one_and_linkgate_carries_on_with_the_new() {
    use linkgate::config::{DatabaseSettings, DeckSettings, SecretSettings};
    use linkgate::domain::TenantId;
    use secrecy::SecretString;

    let mut app = spawn(Backend::Postgres, instant_mock(), QUICK, SECRET).await;
    let token = app.public_token().await;
    let connection = app.exchange("deck", &token).await.expect("exchanged");
    app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    let issued = app.issued_tokens().await["access_tokens"].clone();
    let old = issued[0].as_str().expect("one access token issued").to_owned();

    // What `linkgate connections rotate-token` runs, beside the serving replica.
    let database = DatabaseSettings { database_url: app.database.url.clone(), database_max_connections: 2 };
    let secrets = SecretSettings { encryption_key: Some(SecretString::from(app.key.clone())), api_key_pepper: None };
    let storage = linkgate::server::Storage::open(&database, &secrets).await.expect("store opens");
    let deck_settings = DeckSettings {
        base_url: app.mock.base_url().parse().unwrap(),
        client_id: Some(support::server::CLIENT_ID.to_owned()),
        client_secret: Some(SecretString::from(SECRET)),
        ..DeckSettings::default()
    };
    let mut providers = linkgate::providers::Registry::default();
    providers.register(Arc::new(linkgate::providers::deck::Deck::from_settings(&deck_settings).expect("Deck")));
    let id = connection.id.parse().unwrap();
    let sealed_before = storage.store.connection_handle(TenantId::DEV, id).await.unwrap();
    linkgate::cli::rotation::rotate_connection_token(
        storage.store.as_ref(),
        &storage.sealer,
        &providers,
        TenantId::DEV,
        id,
    )
    .await
    .expect("rotated");

    assert_eq!(app.call_count("/connection/access_token/invalidate").await, 1);
    assert_ne!(
        storage.store.connection_handle(TenantId::DEV, id).await.unwrap(),
        sealed_before,
        "the new token is stored"
    );
    let refused = app
        .admin
        .post(format!("{}/connection/refresh", app.mock.base_url()))
        .header("x-deck-client-id", support::server::CLIENT_ID)
        .header("x-deck-secret", SECRET)
        .json(&serde_json::json!({ "access_token": old }))
        .send()
        .await
        .unwrap();
    assert!(refused.status().is_client_error(), "the old token is dead upstream");
    let new = app.issued_tokens().await["access_tokens"][1].as_str().expect("a new token issued").to_owned();
    assert!(!app.database.dump().await.contains(&new), "the new token is stored sealed only");

    // linkgate goes on with the new token: a refresh is accepted and the connection settles.
    app.connections
        .refresh_connection(pb::RefreshConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .expect("Deck accepts the new token");
    app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
}

/// The ids of a connection's accounts and statements, each list sorted.
async fn data_ids(app: &mut DeckApp, connection_id: &str) -> (Vec<String>, Vec<String>) {
    let accounts = app
        .accounts
        .list_accounts(pb::ListAccountsRequest { connection_id: connection_id.into(), ..Default::default() })
        .await
        .expect("accounts read")
        .into_inner()
        .accounts;
    let statements = app
        .statements
        .list_statements(pb::ListStatementsRequest { connection_id: connection_id.into(), ..Default::default() })
        .await
        .expect("statements read")
        .into_inner()
        .statements;
    let mut account_ids: Vec<String> = accounts.into_iter().map(|a| a.id).collect();
    let mut statement_ids: Vec<String> = statements.into_iter().map(|s| s.id).collect();
    account_ids.sort();
    statement_ids.sort();
    (account_ids, statement_ids)
}

/// Repair in place through Deck's update mode: a READY connection whose portal login stopped
/// working goes LOGIN_REQUIRED; a repair session signs in again (with MFA) under the same access
/// token, and the same connection comes back with every id kept and no public token issued.
async fn repair_flow(backend: Backend) {
    use pb::ConnectionEventType as T;
    use pb::ConnectionState as S;
    let mock = DeckMockOptions {
        connect_delay: Duration::from_millis(200),
        extraction_delay: Duration::from_millis(300),
        refresh_delay: Duration::from_millis(100),
        ..DeckMockOptions::default()
    };
    let mut app = spawn(backend, mock, QUICK, SECRET).await;
    let session = app.create_session("user-repair").await.expect("session created");
    app.submit(&session.id, "user_good", deck::GOOD_PASSWORD).await.expect("credentials forwarded");
    let linked = app.wait_for_session(&session.id, pb::LinkSessionState::Succeeded).await;
    let connection = app.exchange("deck", &linked.public_token).await.expect("exchanged");
    app.wait_for_connection(&connection.id, S::Ready).await;
    let before = data_ids(&mut app, &connection.id).await;
    assert_eq!((before.0.len(), before.1.len()), (2, 6), "two accounts, six statements");

    // The portal login stops working; linkgate learns it on its next look (a refresh here).
    let response = app
        .admin
        .post(format!("{}/connections/require-login", app.mock.admin_url()))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    app.connections
        .refresh_connection(pb::RefreshConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .expect("refresh accepted");
    let stale = app.wait_for_connection(&connection.id, S::LoginRequired).await;
    assert_eq!(stale.error.unwrap().reason(), pb::ErrorReason::LoginRequired);

    let mut watch = app.watch(&connection.id).await;
    assert_eq!(watch.next().await, (T::Unspecified, S::LoginRequired, true), "a snapshot first");

    // The repair session: Deck's update mode, with the MFA question the portal asks.
    let repair = app.repair_session(&connection.id).await;
    assert_eq!(repair.connection_id, connection.id);
    assert_eq!((repair.provider.as_str(), repair.institution_id.as_str()), ("deck", NATIONAL_GRID));
    assert!(repair.link_token.starts_with("link-sandbox-"));
    let submitted = app.submit(&repair.id, "user_mfa", deck::GOOD_PASSWORD).await.expect("credentials forwarded");
    assert!(submitted.public_token.is_empty());
    app.wait_for_session(&repair.id, pb::LinkSessionState::MfaRequired).await;
    app.link
        .answer_mfa(pb::AnswerMfaRequest {
            link_session_id: repair.id.clone(),
            answer: deck::MFA_ANSWER.into(),
            ..Default::default()
        })
        .await
        .expect("answer forwarded");
    let done = app.wait_for_session(&repair.id, pb::LinkSessionState::Succeeded).await;
    assert!(done.public_token.is_empty(), "a repair issues no public token");

    watch.assert_repair_told_once().await;

    assert_eq!(data_ids(&mut app, &connection.id).await, before, "every account and statement id kept");
    app.assert_repaired_in_place(&connection.id).await;
    let listed = app.link.list_public_tokens(pb::ListPublicTokensRequest::default()).await.unwrap().into_inner();
    assert!(listed.public_tokens.is_empty(), "nothing to exchange");
    let tokens = app.issued_tokens().await;
    assert_eq!(tokens["public_tokens"].as_array().unwrap().len(), 1, "Deck issued no second public token");
    assert_eq!(tokens["access_tokens"].as_array().unwrap().len(), 1, "the access token is unchanged");
    assert_eq!(app.call_count("/connection/public_token/exchange").await, 1);
}

#[tokio::test]
async fn a_deck_connection_is_repaired_in_place_through_update_mode_on_sqlite() {
    repair_flow(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_deck_connection_is_repaired_in_place_through_update_mode_on_postgres() {
    repair_flow(Backend::Postgres).await;
}

#[tokio::test]
async fn wrong_credentials_fail_a_deck_repair_and_leave_the_connection_waiting() {
    let mut app = spawn(Backend::Sqlite, instant_mock(), QUICK, SECRET).await;
    let public_token = app.public_token().await;
    let connection = app.exchange("deck", &public_token).await.expect("exchanged");
    app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    let response = app.admin.post(format!("{}/connections/require-login", app.mock.admin_url())).send().await.unwrap();
    assert!(response.status().is_success());
    app.connections
        .refresh_connection(pb::RefreshConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .expect("refresh accepted");
    app.wait_for_connection(&connection.id, pb::ConnectionState::LoginRequired).await;

    let repair = app.repair_session(&connection.id).await;
    let failed = app.submit(&repair.id, "user_good", "wrong-password").await.expect("forwarded");
    assert_eq!(failed.state(), pb::LinkSessionState::Failed);
    assert_eq!(failed.failure_reason(), pb::ErrorReason::InvalidCredentials);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = app.wait_for_connection(&connection.id, pb::ConnectionState::LoginRequired).await;
    assert_eq!(still.id, connection.id);
    assert_eq!(app.connection_count().await, 1);
}

impl DeckApp {
    async fn get_session(&mut self, id: &str) -> pb::LinkSession {
        let request = pb::GetLinkSessionRequest { link_session_id: id.to_owned() };
        self.link.get_link_session(request).await.unwrap().into_inner().link_session.unwrap()
    }

    /// `session` once it is in `state`: as answered, or, when the status check after a step was
    /// slow and left it connecting, once a poll gets there.
    async fn settled(&mut self, session: pb::LinkSession, state: pb::LinkSessionState) -> pb::LinkSession {
        match session.state() == state {
            true => session,
            false => self.wait_for_session(&session.id, state).await,
        }
    }

    async fn answer(&mut self, session_id: &str, answer: &str, method: &str) -> Result<pb::LinkSession, tonic::Status> {
        self.link
            .answer_mfa(pb::AnswerMfaRequest {
                link_session_id: session_id.into(),
                answer: answer.into(),
                mfa_method_id: method.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().link_session.unwrap())
    }
}

#[tokio::test]
async fn a_wrong_mfa_code_keeps_the_session_open_for_another_answer() {
    let mut app = spawn(Backend::Sqlite, instant_mock(), QUICK, SECRET).await;
    let session = app.create_session("user-1").await.unwrap();
    let asked = app.submit(&session.id, "user_mfa", deck::GOOD_PASSWORD).await.expect("forwarded");
    let asked = app.settled(asked, pb::LinkSessionState::MfaRequired).await;

    // Deck keeps the question open (a session that failed ends the wait with a panic).
    let wrong = app.answer(&session.id, "9999", "").await.expect("answer forwarded");
    let wrong = app.settled(wrong, pb::LinkSessionState::MfaRequired).await;
    assert!(
        wrong.mfa_question.starts_with("That answer was not accepted.")
            && wrong.mfa_question.ends_with(&asked.mfa_question),
        "the question is asked again: {}",
        wrong.mfa_question
    );
    assert_eq!(app.call_count("/link/authentication/mfa/get").await, 1, "D6 only while a question is pending");

    let right = app.answer(&session.id, deck::MFA_ANSWER, "").await.expect("answer forwarded");
    let right = app.settled(right, pb::LinkSessionState::Succeeded).await;
    assert!(right.public_token.starts_with("public-sandbox-"));
}

#[tokio::test]
async fn an_mfa_method_choice_is_offered_to_the_caller_and_the_chosen_method_is_sent() {
    let mut app = spawn(Backend::Sqlite, instant_mock(), QUICK, SECRET).await;
    let session = app.create_session("user-1").await.unwrap();
    let choosing = app.submit(&session.id, "user_mfa_choice", deck::GOOD_PASSWORD).await.expect("forwarded");
    let choosing = app.settled(choosing, pb::LinkSessionState::MfaRequired).await;
    let offered: Vec<(&str, &str)> = choosing.mfa_methods.iter().map(|m| (m.id.as_str(), m.label.as_str())).collect();
    assert_eq!(offered, deck::MFA_METHODS.map(|m| (m, m)), "Deck's methods, in its order");
    assert!(!choosing.mfa_question.is_empty(), "a prompt to choose");
    assert_eq!(app.call_count("/link/authentication/mfa/get").await, 0, "a method choice is no question");
    // Stored, not only answered: a read shows the same choice.
    let read = app.get_session(&session.id).await;
    assert_eq!(read.mfa_methods, choosing.mfa_methods);

    // A choice is answered with one of the methods offered, nothing else.
    for (case, answer, method, field) in [
        ("a text answer", "1234", "", "mfa_method_id"),
        ("an unknown method", "", "Carrier pigeon", "mfa_method_id"),
        ("both", "1234", deck::MFA_METHODS[0], "mfa_method_id"),
    ] {
        let status = app.answer(&session.id, answer, method).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{case}: {status:?}");
        let fields: Vec<String> =
            status.get_details_bad_request().unwrap().field_violations.into_iter().map(|v| v.field).collect();
        assert_eq!(fields, [field], "{case}");
    }
    assert_eq!(app.call_count("/link/authentication/mfa/answer").await, 0, "nothing invalid went upstream");

    // The method chosen goes to Deck, which then asks for the code it sent.
    let code = app.answer(&session.id, "", deck::MFA_METHODS[1]).await.expect("choice forwarded");
    let code = app.settled(code, pb::LinkSessionState::MfaRequired).await;
    assert!(code.mfa_methods.is_empty(), "now a question: {code:?}");
    assert!(code.mfa_question.contains("code"), "{}", code.mfa_question);
    let status = app.answer(&session.id, "", deck::MFA_METHODS[1]).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "a question takes an answer: {status:?}");
    let linked = app.answer(&session.id, deck::MFA_ANSWER, "").await.expect("answer forwarded");
    app.settled(linked, pb::LinkSessionState::Succeeded).await;
}

impl DeckApp {
    /// Every request the mock received, as it logged them.
    async fn requests(&self) -> Vec<serde_json::Value> {
        let log: serde_json::Value =
            self.admin.get(format!("{}/requests", self.mock.admin_url())).send().await.unwrap().json().await.unwrap();
        log["requests"].as_array().unwrap().clone()
    }
}

/// Every Deck call linkgate makes, through every step it has (sources, MFA method choice and
/// code, account selection, exchange, import, refresh, repair in update mode, deletion), held to
/// the request bodies of Deck's published definition.
#[tokio::test]
async fn every_request_of_the_deck_flow_keeps_to_decks_published_definition() {
    use support::deck_openapi::check_request;
    let mut app = spawn(Backend::Sqlite, instant_mock(), QUICK, SECRET).await;
    app.link
        .list_institutions(pb::ListInstitutionsRequest { provider: "deck".into(), ..Default::default() })
        .await
        .unwrap();
    let session = app.create_session("user-1").await.unwrap();
    let choosing = app.submit(&session.id, "user_mfa_choice", deck::GOOD_PASSWORD).await.unwrap();
    app.settled(choosing, pb::LinkSessionState::MfaRequired).await;
    let asked = app.answer(&session.id, "", deck::MFA_METHODS[0]).await.unwrap();
    app.settled(asked, pb::LinkSessionState::MfaRequired).await;
    let linked = app.answer(&session.id, deck::MFA_ANSWER, "").await.unwrap();
    let linked = app.settled(linked, pb::LinkSessionState::Succeeded).await;
    let selecting = app.create_session("user-2").await.unwrap();
    app.submit(&selecting.id, "user_select", deck::GOOD_PASSWORD).await.unwrap();
    app.wait_for_session(&selecting.id, pb::LinkSessionState::Succeeded).await;

    let connection = app.exchange("deck", &linked.public_token).await.unwrap();
    app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    let refresh = pb::RefreshConnectionRequest { connection_id: connection.id.clone(), ..Default::default() };
    app.connections.refresh_connection(refresh.clone()).await.unwrap();
    app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    let url = format!("{}/connections/require-login", app.mock.admin_url());
    assert!(app.admin.post(url).json(&serde_json::json!({})).send().await.unwrap().status().is_success());
    app.connections.refresh_connection(refresh).await.unwrap();
    app.wait_for_connection(&connection.id, pb::ConnectionState::LoginRequired).await;
    let repair = app.repair_session(&connection.id).await;
    app.submit(&repair.id, "user_good", deck::GOOD_PASSWORD).await.unwrap();
    app.wait_for_session(&repair.id, pb::LinkSessionState::Succeeded).await;
    app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    app.connections
        .delete_connection(pb::DeleteConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap();

    let requests = app.requests().await;
    let mut seen = std::collections::BTreeSet::new();
    for request in &requests {
        let path = request["path"].as_str().unwrap();
        assert_eq!(request["content_type"], "application/json", "{path}");
        if let Err(broken) = check_request(path, &request["body"]) {
            panic!("linkgate sent a body Deck's definition does not allow: {broken}");
        }
        seen.insert(path);
    }
    let every_step = [
        "/link/token/create",
        "/link/sources",
        "/link/connect",
        "/link/connection/status",
        "/link/authentication/mfa/get",
        "/link/authentication/mfa/answer",
        "/link/account/list",
        "/link/account/select",
        "/connection/public_token/exchange",
        "/connection/context",
        "/connection/refresh",
        "/connection/destroy",
        "/sustainability/get",
    ];
    assert_eq!(seen, every_step.into_iter().collect(), "the flow reached every endpoint linkgate uses");
    // The definition is what the checker says it is: it refuses what Deck's schemas refuse.
    let refused = [
        ("/link/token/create", serde_json::json!({"source_ids": ["not-a-uuid"]})),
        ("/link/token/create", serde_json::json!({"settings": {}})),
        ("/link/connect", serde_json::json!({"link_token": "l", "source_id": NATIONAL_GRID})),
        ("/link/authentication/mfa/answer", serde_json::json!({"link_token": "l", "answer": ""})),
        ("/link/sources", serde_json::json!({"link_token": "l", "search": "ab"})),
    ];
    for (path, body) in refused {
        assert!(check_request(path, &body).is_err(), "{path} {body}");
    }
}

/// The mock refuses what Deck's definition refuses, with Deck's error body, before any handler.
#[tokio::test]
async fn the_deck_mock_refuses_what_deck_would() {
    let app = spawn(Backend::Sqlite, instant_mock(), QUICK, SECRET).await;
    let url = |path: &str| format!("{}{path}", app.mock.base_url());
    let keyed = |request: reqwest::RequestBuilder| {
        request.header("x-deck-client-id", support::server::CLIENT_ID).header("x-deck-secret", SECRET)
    };
    let json = |body: serde_json::Value| body.to_string();
    let cases = [
        ("GET", keyed(app.admin.get(url("/link/token/create"))), 405, "NOT_SUPPORTED"),
        (
            "form body",
            keyed(app.admin.post(url("/link/token/create")))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("language=EN"),
            415,
            "VALIDATION_FAILED",
        ),
        (
            "no content type",
            keyed(app.admin.post(url("/link/token/create"))).body(json(serde_json::json!({}))),
            415,
            "VALIDATION_FAILED",
        ),
        (
            "no keys",
            app.admin.post(url("/link/token/create")).header("content-type", "application/json").body("{}"),
            401,
            "INVALID_API_KEYS",
        ),
        (
            "unknown property",
            keyed(app.admin.post(url("/link/token/create")))
                .json(&serde_json::json!({"settings": {"products": ["accounts"]}})),
            400,
            "VALIDATION_FAILED",
        ),
        (
            "unknown nested property",
            keyed(app.admin.post(url("/link/token/create")))
                .json(&serde_json::json!({"update": {"access_token": "a", "mode": "Refresh", "why": "x"}})),
            400,
            "VALIDATION_FAILED",
        ),
        (
            "missing required property",
            keyed(app.admin.post(url("/connection/public_token/exchange"))).json(&serde_json::json!({})),
            400,
            "VALIDATION_FAILED",
        ),
        (
            "a search too short",
            keyed(app.admin.post(url("/link/sources"))).json(&serde_json::json!({"link_token": "l", "search": "ab"})),
            400,
            "VALIDATION_FAILED",
        ),
    ];
    for (case, request, status, code) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{case}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error_code"], code, "{case}: {body}");
        assert!(body.get("error_category").is_some() && body.get("display_message").is_some(), "{case}: {body}");
    }
}

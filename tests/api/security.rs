//! Security: API keys on every RPC, tenant isolation everywhere, secrets sealed at rest and
//! absent from logs, per-tenant limits and the audit trail.

use crate::sandbox::RecordingSandbox;
use crate::support::database::Backend;
use crate::support::logs::capture_logs;
use crate::support::server::{PATIENCE, TestApp, spawn_app, spawn_app_with};
use crate::support::status::assert_error;
use linkgate::domain::Scope;
use linkgate::pb;
use std::collections::HashMap;
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::Code;

/// What one tenant built: a link session, a ready connection, an account and a portfolio.
struct Footprint {
    session_id: String,
    connection_id: String,
    account_id: String,
    portfolio_id: String,
    public_token: String,
}

async fn build_footprint(app: &mut TestApp) -> Footprint {
    let broker = app.ready_connection("ins_sandbox_broker", "owner").await;
    let account_id = app
        .accounts
        .list_accounts(pb::ListAccountsRequest { connection_id: broker.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .accounts[0]
        .id
        .clone();
    let portfolio_id = app
        .portfolios
        .list_portfolios(pb::ListPortfoliosRequest { connection_id: broker.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .portfolios[0]
        .id
        .clone();
    // An unexchanged token, so ListPublicTokens has something to leak.
    let session = app.create_session("ins_sandbox_bank", "owner").await;
    let succeeded = app.submit(&session.id, "user_good", "pass_good").await.unwrap();
    Footprint {
        session_id: session.id,
        connection_id: broker.id,
        account_id,
        portfolio_id,
        public_token: succeeded.public_token,
    }
}

#[tokio::test]
async fn another_tenants_resources_are_indistinguishable_from_missing_ones_on_every_rpc() {
    let mut app = spawn_app(Backend::Postgres).await;
    let owner = app.create_tenant("owner-service").await;
    let intruder = app.create_tenant("intruder-service").await;
    app.use_key(Some(&owner));
    let f = build_footprint(&mut app).await;
    app.use_key(Some(&intruder));

    let mut link = app.link.clone();
    let mut connections = app.connections.clone();
    let mut accounts = app.accounts.clone();
    let mut portfolios = app.portfolios.clone();
    let mut statements = app.statements.clone();
    let c = || f.connection_id.clone();
    let cases: Vec<(&str, tonic::Status, &str)> = vec![
        (
            "GetLinkSession",
            link.get_link_session(pb::GetLinkSessionRequest { link_session_id: f.session_id.clone() })
                .await
                .unwrap_err(),
            "LINK_SESSION_NOT_FOUND",
        ),
        (
            "WatchLinkSession",
            link.watch_link_session(pb::WatchLinkSessionRequest { link_session_id: f.session_id.clone() })
                .await
                .unwrap_err(),
            "LINK_SESSION_NOT_FOUND",
        ),
        (
            "SubmitCredentials",
            link.submit_credentials(pb::SubmitCredentialsRequest {
                link_session_id: f.session_id.clone(),
                credentials: HashMap::from([
                    ("username".into(), "user_good".into()),
                    ("password".into(), "pass_good".into()),
                ]),
                ..Default::default()
            })
            .await
            .unwrap_err(),
            "LINK_SESSION_NOT_FOUND",
        ),
        (
            "AnswerMfa",
            link.answer_mfa(pb::AnswerMfaRequest {
                link_session_id: f.session_id.clone(),
                answer: "1234".into(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
            "LINK_SESSION_NOT_FOUND",
        ),
        (
            "ExchangePublicToken",
            link.exchange_public_token(pb::ExchangePublicTokenRequest {
                provider: "sandbox".into(),
                public_token: f.public_token.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
            "PUBLIC_TOKEN_NOT_FOUND",
        ),
        (
            "GetConnection",
            connections.get_connection(pb::GetConnectionRequest { connection_id: c() }).await.unwrap_err(),
            "CONNECTION_NOT_FOUND",
        ),
        (
            "RefreshConnection",
            connections
                .refresh_connection(pb::RefreshConnectionRequest { connection_id: c(), ..Default::default() })
                .await
                .unwrap_err(),
            "CONNECTION_NOT_FOUND",
        ),
        (
            "DeleteConnection",
            connections
                .delete_connection(pb::DeleteConnectionRequest { connection_id: c(), ..Default::default() })
                .await
                .unwrap_err(),
            "CONNECTION_NOT_FOUND",
        ),
        (
            "WatchConnection",
            connections
                .watch_connection(pb::WatchConnectionRequest { connection_id: c(), after_event_id: 0 })
                .await
                .unwrap_err(),
            "CONNECTION_NOT_FOUND",
        ),
        (
            "ListAccounts",
            accounts
                .list_accounts(pb::ListAccountsRequest { connection_id: c(), ..Default::default() })
                .await
                .unwrap_err(),
            "CONNECTION_NOT_FOUND",
        ),
        (
            "ListAccountTransactions",
            accounts
                .list_account_transactions(pb::ListAccountTransactionsRequest {
                    connection_id: c(),
                    account_id: f.account_id.clone(),
                    ..Default::default()
                })
                .await
                .unwrap_err(),
            "CONNECTION_NOT_FOUND",
        ),
        (
            "ListPortfolios",
            portfolios
                .list_portfolios(pb::ListPortfoliosRequest { connection_id: c(), ..Default::default() })
                .await
                .unwrap_err(),
            "CONNECTION_NOT_FOUND",
        ),
        (
            "ListPortfolioPositions",
            portfolios
                .list_portfolio_positions(pb::ListPortfolioPositionsRequest {
                    connection_id: c(),
                    portfolio_id: f.portfolio_id.clone(),
                    ..Default::default()
                })
                .await
                .unwrap_err(),
            "CONNECTION_NOT_FOUND",
        ),
        (
            "ListPortfolioTransactions",
            portfolios
                .list_portfolio_transactions(pb::ListPortfolioTransactionsRequest {
                    connection_id: c(),
                    portfolio_id: f.portfolio_id.clone(),
                    ..Default::default()
                })
                .await
                .unwrap_err(),
            "CONNECTION_NOT_FOUND",
        ),
        (
            "ListStatements",
            statements
                .list_statements(pb::ListStatementsRequest { connection_id: c(), ..Default::default() })
                .await
                .unwrap_err(),
            "CONNECTION_NOT_FOUND",
        ),
    ];
    for (rpc, status, reason) in &cases {
        assert_error(rpc, status, Code::NotFound, reason);
    }
    // The reads of account numbers and owners, with a key that may make them.
    let scoped = app.create_key("intruder-service", &[Scope::AccountNumbersRead, Scope::IdentityRead]).await;
    app.use_key(Some(&scoped));
    let status = app
        .accounts
        .list_account_numbers(pb::ListAccountNumbersRequest { connection_id: c(), ..Default::default() })
        .await
        .unwrap_err();
    assert_error("ListAccountNumbers", &status, Code::NotFound, "CONNECTION_NOT_FOUND");
    let status = app
        .accounts
        .list_account_owners(pb::ListAccountOwnersRequest { connection_id: c(), ..Default::default() })
        .await
        .unwrap_err();
    assert_error("ListAccountOwners", &status, Code::NotFound, "CONNECTION_NOT_FOUND");
    app.use_key(Some(&intruder));

    // Lists and streams show the intruder nothing of the owner's.
    let listed = connections.list_connections(pb::ListConnectionsRequest::default()).await.unwrap().into_inner();
    assert!(listed.connections.is_empty(), "ListConnections");
    let tokens = link.list_public_tokens(pb::ListPublicTokensRequest::default()).await.unwrap().into_inner();
    assert!(tokens.public_tokens.is_empty(), "ListPublicTokens");
    let mut watch = connections.watch_connections(pb::WatchConnectionsRequest::default()).await.unwrap().into_inner();
    app.use_key(Some(&owner));
    app.connections
        .refresh_connection(pb::RefreshConnectionRequest { connection_id: c(), ..Default::default() })
        .await
        .unwrap();
    let leaked = tokio::time::timeout(Duration::from_millis(800), watch.next()).await;
    assert!(leaked.is_err(), "WatchConnections showed another tenant's change: {leaked:?}");

    // The owner still has everything.
    app.connections.get_connection(pb::GetConnectionRequest { connection_id: c() }).await.expect("owner reads");
}

#[tokio::test]
async fn calls_need_a_valid_key_once_tenants_exist_while_health_and_reflection_stay_open() {
    let mut app = spawn_app(Backend::Sqlite).await;
    let key = app.create_tenant("billing").await;

    for (case, key) in [
        ("no key", None),
        ("not a bearer header", Some("Basic abc".to_owned())),
        ("malformed key", Some("lgk_nope".to_owned())),
        ("unknown key", Some(format!("lgk_{}_{}", uuid::Uuid::now_v7().simple(), "A".repeat(43)))),
        ("altered secret", Some(format!("{}x", &key[..key.len() - 1]))),
    ] {
        app.use_key(None);
        let status = match key {
            None => app.connections.list_connections(pb::ListConnectionsRequest::default()).await.unwrap_err(),
            Some(header) => {
                let mut request = tonic::Request::new(pb::ListConnectionsRequest::default());
                let value = if header.starts_with("Basic") { header } else { format!("Bearer {header}") };
                request.metadata_mut().insert("authorization", value.parse().unwrap());
                app.connections.list_connections(request).await.unwrap_err()
            }
        };
        assert_error(case, &status, Code::Unauthenticated, "UNAUTHENTICATED");
    }

    app.use_key(Some(&key));
    app.connections.list_connections(pb::ListConnectionsRequest::default()).await.expect("the real key works");

    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.expect("health needs no key");
}

#[tokio::test]
async fn a_revoked_key_and_a_revoked_tenant_stop_working() {
    let mut app = spawn_app(Backend::Postgres).await;
    let storage = app.storage().await;
    let key = app.create_tenant("search").await;
    let tenant = storage.store.find_tenant("search").await.unwrap().unwrap();
    let (second, second_key) = storage.peppers.issue(tenant.id, &[Scope::Standard]);
    storage.store.create_api_key(&second).await.unwrap();

    // Revoked before first use: refused at once.
    let key_id = uuid::Uuid::try_parse(&key[4..36]).unwrap();
    assert!(storage.store.revoke_api_key(key_id, linkgate::domain::now()).await.unwrap());
    app.use_key(Some(&key));
    let status = app.connections.list_connections(pb::ListConnectionsRequest::default()).await.unwrap_err();
    assert_error("revoked key", &status, Code::Unauthenticated, "UNAUTHENTICATED");

    // The tenant's other key still works until the tenant is revoked.
    use secrecy::ExposeSecret;
    let second_key = second_key.expose_secret().to_owned();
    let mut fresh = app.connections_with_key(&second_key);
    fresh.list_connections(pb::ListConnectionsRequest::default()).await.expect("second key works");
    assert!(storage.store.revoke_tenant(tenant.id, linkgate::domain::now()).await.unwrap());
    tokio::time::sleep(linkgate::server::auth::KEY_CACHE_TTL + Duration::from_millis(200)).await;
    let status = fresh.list_connections(pb::ListConnectionsRequest::default()).await.unwrap_err();
    assert_error("revoked tenant", &status, Code::Unauthenticated, "UNAUTHENTICATED");
}

#[tokio::test]
async fn repeated_failed_authentication_from_one_address_is_turned_away() {
    let mut app = spawn_app(Backend::Sqlite).await;
    app.create_tenant("payments").await;
    app.use_key(Some("lgk_00000000000000000000000000000000_wrong"));
    let mut last = None;
    for _ in 0..21 {
        last = Some(app.connections.list_connections(pb::ListConnectionsRequest::default()).await.unwrap_err());
    }
    let status = last.unwrap();
    assert_error("21st failure", &status, Code::ResourceExhausted, "RATE_LIMITED");
    assert!(tonic_types::StatusExt::get_details_retry_info(&status).is_some(), "says when to retry");
}

#[tokio::test]
async fn expensive_calls_beyond_the_tenant_budget_are_refused_with_a_retry_delay() {
    let mut app = spawn_app_with(
        Backend::Sqlite,
        |s| {
            s.limits.tenant_calls_per_second = 1;
            s.limits.tenant_call_burst = 2;
        },
        None,
    )
    .await;
    app.create_session("ins_sandbox_bank", "u").await;
    app.create_session("ins_sandbox_bank", "u").await;
    let status = app
        .link
        .create_link_session(pb::CreateLinkSessionRequest {
            provider: "sandbox".into(),
            external_user_id: "u".into(),
            institution_id: "ins_sandbox_bank".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_error("third call", &status, Code::ResourceExhausted, "RATE_LIMITED");
    let retry = tonic_types::StatusExt::get_details_retry_info(&status).unwrap().retry_delay.unwrap();
    assert!(retry > Duration::ZERO && retry <= Duration::from_secs(1), "{retry:?}");
    // Reads are not budgeted.
    app.connections.list_connections(pb::ListConnectionsRequest::default()).await.unwrap();
}

#[tokio::test]
async fn a_tenant_cannot_hold_more_streams_than_its_cap_and_closed_streams_free_their_slot() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.limits.tenant_max_streams = 2, None).await;
    let watch = |mut c: pb::connection_service_client::ConnectionServiceClient<crate::support::server::Authed>| async move {
        c.watch_connections(pb::WatchConnectionsRequest::default()).await
    };
    let first = watch(app.connections.clone()).await.unwrap().into_inner();
    let _second = watch(app.connections.clone()).await.unwrap().into_inner();
    let status = watch(app.connections.clone()).await.unwrap_err();
    assert_error("third stream", &status, Code::ResourceExhausted, "STREAM_LIMIT_REACHED");
    drop(first);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match watch(app.connections.clone()).await {
            Ok(_) => break,
            Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(status) => panic!("slot never freed: {status:?}"),
        }
    }
}

#[tokio::test]
async fn messages_over_the_size_limit_are_refused_with_the_limit() {
    let mut app = spawn_app(Backend::Postgres).await;
    let status = app
        .link
        .create_link_session(pb::CreateLinkSessionRequest {
            provider: "sandbox".into(),
            external_user_id: "x".repeat(5 * 1024 * 1024),
            ..Default::default()
        })
        .await
        .unwrap_err();
    // tonic's decoder refuses the frame before any handler runs; linkgate gives it its reason.
    assert_error("5 MiB request", &status, Code::ResourceExhausted, "MESSAGE_TOO_LARGE");
    let info = tonic_types::StatusExt::get_details_error_info(&status).unwrap();
    assert_eq!(info.metadata.get("limit_bytes").map(String::as_str), Some("4194304"));
    assert_eq!(app.row_count("link_sessions").await, 0, "nothing was written");
}

/// A message whose field 1 is a number where GetConnectionRequest has a string.
#[derive(Clone, PartialEq, prost::Message)]
struct WrongWireType {
    #[prost(uint64, tag = "1")]
    connection_id: u64,
}

#[tokio::test]
async fn bytes_that_are_not_the_request_message_are_malformed_not_internal() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.unwrap();
    let request = tonic::Request::new(WrongWireType { connection_id: 7 });
    let codec = tonic_prost::ProstCodec::<WrongWireType, pb::GetConnectionResponse>::default();
    let path = http::uri::PathAndQuery::from_static("/linkgate.v1.ConnectionService/GetConnection");
    let status = grpc.unary(request, path, codec).await.unwrap_err();
    assert_error("wrong wire type", &status, Code::InvalidArgument, "MALFORMED_REQUEST");
}

#[tokio::test]
async fn the_audit_trail_records_who_did_what_to_which_connection() {
    let mut app = spawn_app(Backend::Postgres).await;
    let key = app.create_tenant("ledger").await;
    app.use_key(Some(&key));
    let connection = app.ready_connection("ins_sandbox_bank", "u").await;
    app.accounts
        .list_accounts(pb::ListAccountsRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap();
    app.connections
        .delete_connection(pb::DeleteConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap();

    let storage = app.storage().await;
    let connection_id = uuid::Uuid::try_parse(&connection.id).unwrap();
    let key_id = uuid::Uuid::try_parse(&key[4..36]).unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let actions = loop {
        let entries = storage.store.list_audit(None, Some(connection_id), 50).await.unwrap();
        let actions: Vec<String> =
            entries.iter().rev().map(|e| linkgate::domain::StoredName::name(e.action).to_owned()).collect();
        if actions.last().is_some_and(|a| a == "delete") {
            assert!(entries.iter().all(|e| e.api_key_id == Some(key_id)), "every record names the key");
            break actions;
        }
        assert!(tokio::time::Instant::now() < deadline, "audit never caught up: {actions:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(actions.first().map(String::as_str), Some("exchange"), "{actions:?}");
    assert!(actions.iter().any(|a| a == "read"), "{actions:?}");
}

#[tokio::test]
async fn a_database_dump_after_a_full_flow_holds_no_token_or_credential_in_clear() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let (registry, _, handles) = RecordingSandbox::registry();
        let mut app = spawn_app_with(backend, |_| {}, Some(registry)).await;
        let key = app.create_tenant("vault").await;
        app.use_key(Some(&key));
        let session = app.create_session("ins_sandbox_bank", "u").await;
        app.submit(&session.id, "user_mfa", "pass_good").await.unwrap();
        let done = app
            .link
            .answer_mfa(pb::AnswerMfaRequest {
                link_session_id: session.id,
                answer: "1234".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .link_session
            .unwrap();
        let pending = app.public_token("ins_sandbox_broker", "u").await;
        let connection = app.exchange("sandbox", &done.public_token).await.unwrap();
        app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;

        let dump = app.database_dump().await;
        let handle = handles.lock().unwrap()[0].clone();
        let secret_of_key = secret_of(&key).to_owned();
        for (what, secret) in [
            ("exchanged public token", done.public_token.clone()),
            ("unexchanged public token", pending),
            ("provider handle", handle),
            ("password", "pass_good".to_owned()),
            ("API key secret", secret_of_key),
        ] {
            let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
            assert!(!dump.contains(&secret), "{backend:?}: {what} stored in clear");
            assert!(!dump.contains(&hex), "{backend:?}: {what} stored in clear (as hex)");
        }
        assert!(dump.contains(&connection.id) || dump.len() > 10_000, "{backend:?}: the dump is real");
    }
}

#[tokio::test]
async fn trace_logs_of_every_flow_hold_no_token_key_or_credential() {
    let logs = capture_logs();
    let (registry, _, handles) = RecordingSandbox::registry();
    let mut app = spawn_app_with(Backend::Postgres, |_| {}, Some(registry)).await;
    let key = app.create_tenant("logs").await;
    app.use_key(Some(&key));

    let session = app.create_session("ins_sandbox_bank", "u").await;
    app.submit(&session.id, "user_mfa", "pass_good").await.unwrap();
    let done = app
        .link
        .answer_mfa(pb::AnswerMfaRequest { link_session_id: session.id, answer: "1234".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .link_session
        .unwrap();
    let rejected = app.create_session("ins_sandbox_bank", "u").await;
    app.submit(&rejected.id, "user_good", "wrong-password-9f3a").await.unwrap();
    app.link.list_public_tokens(pb::ListPublicTokensRequest::default()).await.unwrap();
    let connection = app.exchange("sandbox", &done.public_token).await.unwrap();
    app.exchange("sandbox", &done.public_token).await.unwrap();
    app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    app.accounts
        .list_accounts(pb::ListAccountsRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap();
    app.connections
        .refresh_connection(pb::RefreshConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap();
    app.connections
        .delete_connection(pb::DeleteConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap();
    app.use_key(Some(&format!("{key}tampered")));
    app.connections.list_connections(pb::ListConnectionsRequest::default()).await.unwrap_err();
    app.shut_down().await.unwrap();

    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(text.lines().count() > 100, "trace logging captured the run ({} lines)", text.lines().count());
    let handle = handles.lock().unwrap()[0].clone();
    let key_secret = secret_of(&key).to_owned();
    for (what, secret) in [
        ("API key secret", key_secret.as_str()),
        ("public token", done.public_token.as_str()),
        ("provider handle", handle.as_str()),
        ("password", "pass_good"),
        ("rejected password", "wrong-password-9f3a"),
    ] {
        assert!(!text.contains(secret), "{what} appears in the logs");
    }
}

#[tokio::test]
async fn unary_calls_beyond_the_in_flight_limit_are_shed_with_a_retry_delay() {
    let (registry, _, _) = RecordingSandbox::registry();
    let mut app = spawn_app_with(Backend::Sqlite, |s| s.limits.max_in_flight = 1, Some(registry)).await;
    let first = app.public_token("ins_sandbox_bank", "u").await;
    let second = app.public_token("ins_sandbox_bank", "u").await;
    // Each exchange holds its slot for the sandbox's slowed-down exchange (150 ms).
    let (mut one, mut two) = (app.link.clone(), app.link.clone());
    let (a, b) = tokio::join!(
        one.exchange_public_token(pb::ExchangePublicTokenRequest {
            provider: "sandbox".into(),
            public_token: first,
            ..Default::default()
        }),
        two.exchange_public_token(pb::ExchangePublicTokenRequest {
            provider: "sandbox".into(),
            public_token: second,
            ..Default::default()
        }),
    );
    let (ok, shed): (Vec<_>, Vec<_>) = [a, b].into_iter().partition(Result::is_ok);
    assert_eq!(ok.len(), 1, "one call is served");
    let status = shed.into_iter().next().unwrap().unwrap_err();
    assert_error("shed call", &status, Code::Unavailable, "OVERLOADED");
    assert!(tonic_types::StatusExt::get_details_retry_info(&status).is_some());
}

#[tokio::test]
async fn a_server_on_a_non_loopback_address_never_serves_keyless_callers() {
    let mut app = spawn_app_with(Backend::Sqlite, |s| s.grpc_addr = "0.0.0.0:0".parse().unwrap(), None).await;
    let status = app.connections.list_connections(pb::ListConnectionsRequest::default()).await.unwrap_err();
    assert_error("no tenants, public address", &status, Code::Unauthenticated, "UNAUTHENTICATED");
}

#[tokio::test]
async fn rotating_the_encryption_key_reseals_every_secret_while_old_values_stay_readable() {
    use linkgate::cli::admin::{AdminSettings, KeyCommand};
    use linkgate::crypto::{SealedColumn, Sealer};
    use secrecy::{ExposeSecret, SecretString};

    let mut app = spawn_app(Backend::Postgres).await;
    let connection = app.ready_connection("ins_sandbox_bank", "u").await;
    app.public_token("ins_sandbox_utility", "u").await;

    let old_key = app.settings().secrets.encryption_key.clone().unwrap();
    let new_key = Sealer::generate_key();
    let mut settings =
        AdminSettings { database: app.settings().database.clone(), secrets: app.settings().secrets.clone() };
    settings.secrets.encryption_key = Some(SecretString::from(format!("{new_key},{}", old_key.expose_secret())));
    // Keep API key hashes independent of the encryption key being rotated.
    settings.secrets.api_key_pepper = Some(SecretString::from(Sealer::generate_key()));
    linkgate::cli::admin::keys(&settings, KeyCommand::Rotate).await.expect("rotation runs");

    let storage = app.storage().await;
    let only_new = Sealer::from_config(&SecretString::from(new_key)).unwrap();
    let mut checked = 0;
    for column in SealedColumn::ALL {
        for value in storage.store.list_sealed(column, None, 1000).await.unwrap() {
            only_new.open(&value.sealed, &column.context(value.tenant, value.id)).expect("re-sealed under the new key");
            checked += 1;
        }
    }
    assert!(
        checked >= 5,
        "the connection handle, its account numbers and owners, and both session tokens were re-sealed ({checked})"
    );

    // A second run finds nothing left to do, and the running server still reads its data:
    // until it restarts with the new key list it can no longer open the handle, which reads
    // never need.
    linkgate::cli::admin::keys(&settings, KeyCommand::Rotate).await.unwrap();
    app.accounts
        .list_accounts(pb::ListAccountsRequest { connection_id: connection.id, ..Default::default() })
        .await
        .expect("reads are served from linkgate's copy");
}

#[tokio::test]
async fn the_log_lines_of_a_call_carry_its_request_id_and_the_callers_trace_context() {
    let logs = capture_logs();
    let mut app = spawn_app(Backend::Sqlite).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut request = tonic::Request::new(pb::GetConnectionRequest { connection_id: uuid::Uuid::now_v7().to_string() });
    request.metadata_mut().insert("x-request-id", "req-trace-7".parse().unwrap());
    request.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
    let status = app.connections.get_connection(request).await.unwrap_err();
    assert_error("missing connection", &status, Code::NotFound, "CONNECTION_NOT_FOUND");

    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let line = text
        .lines()
        .find(|line| line.contains("no such connection"))
        .unwrap_or_else(|| panic!("the error was logged:\n{text}"));
    assert!(line.contains("req-trace-7"), "the request id: {line}");
    assert!(line.contains(traceparent), "the caller's trace context: {line}");
    assert!(line.contains("GetConnection"), "the method: {line}");
}

/// The secret part of a `lgk_<key id>_<secret>` key. The secret is URL-safe base64 and may
/// itself hold `_`, so the key is split at its first two underscores only.
fn secret_of(key: &str) -> &str {
    let secret = key.splitn(3, '_').nth(2).expect("a key reads lgk_<id>_<secret>");
    assert!(secret.len() >= 40, "the whole secret, not a fragment of it: {secret}");
    secret
}

#[tokio::test]
async fn an_error_about_ten_thousand_bad_entries_reaches_the_caller_whole() {
    let mut app = spawn_app(Backend::Sqlite).await;
    let status = app
        .link
        .create_link_session(pb::CreateLinkSessionRequest {
            provider: "sandbox".into(),
            external_user_id: "u".into(),
            products: vec![999; 10_000],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_error("10,000 unknown products", &status, Code::InvalidArgument, "INVALID_FIELD");
    let details = tonic_types::StatusExt::get_error_details(&status);
    assert_eq!(details.bad_request().expect("a BadRequest").field_violations.len(), 20, "the first 20");
    let info = details.error_info().expect("an ErrorInfo");
    assert_eq!(info.metadata.get("omitted_violations").map(String::as_str), Some("9980"));
}

//! Bad input: every malformed, unknown or out-of-place request gets a precise error with its
//! reason, and nothing is written.

use crate::support::database::Backend;
use crate::support::server::{TestApp, spawn_app, spawn_app_with};
use crate::support::status::assert_error;
use linkgate::pb;
use std::time::Duration;
use tonic::Code;

const UNKNOWN: &str = "01a20c84-0000-7000-8000-000000000000";

/// What the tenant has: connections, public tokens and link sessions counted together.
async fn footprint(app: &mut TestApp) -> (usize, usize) {
    let connections =
        app.connections.list_connections(pb::ListConnectionsRequest::default()).await.unwrap().into_inner();
    let tokens = app.link.list_public_tokens(pb::ListPublicTokensRequest::default()).await.unwrap().into_inner();
    (connections.connections.len(), tokens.public_tokens.len())
}

#[tokio::test]
async fn malformed_and_unknown_requests_are_refused_with_their_reason_and_write_nothing() {
    let mut app = spawn_app(Backend::Postgres).await;
    let connection = app.ready_connection("ins_sandbox_bank", "user-x").await;
    let created = app.create_session("ins_sandbox_bank", "user-x").await;
    let before = footprint(&mut app).await;
    let page = app
        .accounts
        .list_account_transactions(pb::ListAccountTransactionsRequest {
            connection_id: connection.id.clone(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let mut tampered = page.clone().into_bytes();
    tampered[3] = if tampered[3] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();

    let (link, connections, accounts, portfolios) =
        (app.link.clone(), app.connections.clone(), app.accounts.clone(), app.portfolios.clone());
    type Case = (&'static str, Code, &'static str, tonic::Status);
    let cases: Vec<Case> = vec![
        ("empty connection id", Code::InvalidArgument, "INVALID_FIELD", {
            let mut c = connections.clone();
            c.get_connection(pb::GetConnectionRequest { connection_id: String::new() }).await.unwrap_err()
        }),
        ("malformed connection id", Code::InvalidArgument, "INVALID_FIELD", {
            let mut c = connections.clone();
            c.get_connection(pb::GetConnectionRequest { connection_id: "not-a-uuid".into() }).await.unwrap_err()
        }),
        ("unknown connection", Code::NotFound, "CONNECTION_NOT_FOUND", {
            let mut c = connections.clone();
            c.get_connection(pb::GetConnectionRequest { connection_id: UNKNOWN.into() }).await.unwrap_err()
        }),
        ("unknown provider", Code::NotFound, "PROVIDER_NOT_FOUND", {
            let mut l = link.clone();
            l.create_link_session(pb::CreateLinkSessionRequest {
                provider: "plaid".into(),
                external_user_id: "u".into(),
                institution_id: "x".into(),
                ..Default::default()
            })
            .await
            .unwrap_err()
        }),
        ("unknown institution", Code::NotFound, "INSTITUTION_NOT_FOUND", {
            let mut l = link.clone();
            l.create_link_session(pb::CreateLinkSessionRequest {
                provider: "sandbox".into(),
                external_user_id: "u".into(),
                institution_id: "ins_nowhere".into(),
                ..Default::default()
            })
            .await
            .unwrap_err()
        }),
        ("product the institution lacks", Code::FailedPrecondition, "CAPABILITY_UNSUPPORTED", {
            let mut l = link.clone();
            l.create_link_session(pb::CreateLinkSessionRequest {
                provider: "sandbox".into(),
                external_user_id: "u".into(),
                institution_id: "ins_sandbox_bank".into(),
                products: vec![pb::Product::Statements as i32],
                ..Default::default()
            })
            .await
            .unwrap_err()
        }),
        ("unknown product number", Code::InvalidArgument, "INVALID_FIELD", {
            let mut l = link.clone();
            l.create_link_session(pb::CreateLinkSessionRequest {
                provider: "sandbox".into(),
                external_user_id: "u".into(),
                institution_id: "ins_sandbox_bank".into(),
                products: vec![99],
                ..Default::default()
            })
            .await
            .unwrap_err()
        }),
        ("refresh of a product listed twice", Code::InvalidArgument, "INVALID_FIELD", {
            let mut c = connections.clone();
            c.refresh_connection(pb::RefreshConnectionRequest {
                connection_id: connection.id.clone(),
                products: vec![pb::Product::Accounts as i32, pb::Product::Accounts as i32],
                ..Default::default()
            })
            .await
            .unwrap_err()
        }),
        ("refresh of an unspecified product", Code::InvalidArgument, "INVALID_FIELD", {
            let mut c = connections.clone();
            c.refresh_connection(pb::RefreshConnectionRequest {
                connection_id: connection.id.clone(),
                products: vec![pb::Product::Unspecified as i32],
                ..Default::default()
            })
            .await
            .unwrap_err()
        }),
        ("refresh of a product the connection does not link", Code::FailedPrecondition, "CAPABILITY_UNSUPPORTED", {
            let mut c = connections.clone();
            c.refresh_connection(pb::RefreshConnectionRequest {
                connection_id: connection.id.clone(),
                products: vec![pb::Product::Statements as i32],
                ..Default::default()
            })
            .await
            .unwrap_err()
        }),
        ("user id too long", Code::InvalidArgument, "INVALID_FIELD", {
            let mut l = link.clone();
            l.create_link_session(pb::CreateLinkSessionRequest {
                provider: "sandbox".into(),
                external_user_id: "u".repeat(129),
                institution_id: "ins_sandbox_bank".into(),
                ..Default::default()
            })
            .await
            .unwrap_err()
        }),
        ("page size too large", Code::InvalidArgument, "INVALID_FIELD", {
            let mut a = accounts.clone();
            a.list_accounts(pb::ListAccountsRequest {
                connection_id: connection.id.clone(),
                page_size: 501,
                ..Default::default()
            })
            .await
            .unwrap_err()
        }),
        ("negative page size", Code::InvalidArgument, "INVALID_FIELD", {
            let mut a = accounts.clone();
            a.list_accounts(pb::ListAccountsRequest {
                connection_id: connection.id.clone(),
                page_size: -1,
                ..Default::default()
            })
            .await
            .unwrap_err()
        }),
        ("tampered page token", Code::InvalidArgument, "INVALID_PAGE_TOKEN", {
            let mut a = accounts.clone();
            a.list_account_transactions(pb::ListAccountTransactionsRequest {
                connection_id: connection.id.clone(),
                page_token: tampered,
                ..Default::default()
            })
            .await
            .unwrap_err()
        }),
        ("page token of another query", Code::InvalidArgument, "INVALID_PAGE_TOKEN", {
            let mut a = accounts.clone();
            a.list_account_transactions(pb::ListAccountTransactionsRequest {
                connection_id: connection.id.clone(),
                start_date: "2020-01-01".into(),
                page_token: page.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err()
        }),
        ("impossible date", Code::InvalidArgument, "INVALID_FIELD", {
            let mut a = accounts.clone();
            a.list_account_transactions(pb::ListAccountTransactionsRequest {
                connection_id: connection.id.clone(),
                start_date: "2026-02-30".into(),
                ..Default::default()
            })
            .await
            .unwrap_err()
        }),
        ("unknown account filter", Code::NotFound, "ACCOUNT_NOT_FOUND", {
            let mut a = accounts.clone();
            a.list_account_transactions(pb::ListAccountTransactionsRequest {
                connection_id: connection.id.clone(),
                account_id: UNKNOWN.into(),
                ..Default::default()
            })
            .await
            .unwrap_err()
        }),
        ("malformed account filter on owners", Code::InvalidArgument, "INVALID_FIELD", {
            let mut a = accounts.clone();
            a.list_account_owners(pb::ListAccountOwnersRequest {
                connection_id: connection.id.clone(),
                account_id: "nope".into(),
                ..Default::default()
            })
            .await
            .unwrap_err()
        }),
        ("account numbers page size too large", Code::InvalidArgument, "INVALID_FIELD", {
            let mut a = accounts.clone();
            a.list_account_numbers(pb::ListAccountNumbersRequest {
                connection_id: connection.id.clone(),
                page_size: 501,
                ..Default::default()
            })
            .await
            .unwrap_err()
        }),
        ("portfolios of a bank", Code::FailedPrecondition, "CAPABILITY_UNSUPPORTED", {
            let mut p = portfolios.clone();
            p.list_portfolios(pb::ListPortfoliosRequest { connection_id: connection.id.clone(), ..Default::default() })
                .await
                .unwrap_err()
        }),
        ("MFA answer to a session that asked nothing", Code::FailedPrecondition, "LINK_SESSION_WRONG_STATE", {
            let mut l = link.clone();
            l.answer_mfa(pb::AnswerMfaRequest {
                link_session_id: created.id.clone(),
                answer: "1234".into(),
                ..Default::default()
            })
            .await
            .unwrap_err()
        }),
        ("unknown link session", Code::NotFound, "LINK_SESSION_NOT_FOUND", {
            let mut l = link.clone();
            l.get_link_session(pb::GetLinkSessionRequest { link_session_id: UNKNOWN.into() }).await.unwrap_err()
        }),
        ("malformed public token", Code::NotFound, "PUBLIC_TOKEN_NOT_FOUND", {
            let mut l = link.clone();
            l.exchange_public_token(pb::ExchangePublicTokenRequest {
                provider: "sandbox".into(),
                public_token: "garbage".into(),
                ..Default::default()
            })
            .await
            .unwrap_err()
        }),
        ("empty public token", Code::InvalidArgument, "INVALID_FIELD", {
            let mut l = link.clone();
            l.exchange_public_token(pb::ExchangePublicTokenRequest { provider: "sandbox".into(), ..Default::default() })
                .await
                .unwrap_err()
        }),
        ("negative resume cursor", Code::InvalidArgument, "INVALID_FIELD", {
            let mut c = connections.clone();
            c.watch_connections(pb::WatchConnectionsRequest { after_event_id: -5, ..Default::default() })
                .await
                .unwrap_err()
        }),
    ];
    for (case, code, reason, status) in &cases {
        assert_error(case, status, *code, reason);
    }
    assert_eq!(footprint(&mut app).await, before, "bad requests wrote nothing");
}

#[tokio::test]
async fn reading_a_product_before_its_first_import_finishes_is_product_not_ready() {
    let mut app =
        spawn_app_with(Backend::Sqlite, |s| s.providers.sandbox.import_delay = Duration::from_secs(600), None).await;
    let token = app.public_token("ins_sandbox_bank", "user-p").await;
    let connection = app.exchange("sandbox", &token).await.unwrap();
    let status = app
        .accounts
        .list_accounts(pb::ListAccountsRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap_err();
    assert_error("before import", &status, Code::FailedPrecondition, "PRODUCT_NOT_READY");
    let info = tonic_types::StatusExt::get_details_error_info(&status).unwrap();
    assert_eq!(info.metadata.get("product").map(String::as_str), Some("PRODUCT_ACCOUNTS"));
    let status = app
        .accounts
        .list_account_numbers(pb::ListAccountNumbersRequest { connection_id: connection.id, ..Default::default() })
        .await
        .unwrap_err();
    assert_error("numbers before import", &status, Code::FailedPrecondition, "PRODUCT_NOT_READY");
    let info = tonic_types::StatusExt::get_details_error_info(&status).unwrap();
    assert_eq!(info.metadata.get("product").map(String::as_str), Some("PRODUCT_ACCOUNT_NUMBERS"));
}

#[tokio::test]
async fn unusable_request_ids_in_metadata_are_replaced_and_good_ones_echoed() {
    let mut app = spawn_app(Backend::Sqlite).await;
    let cases: Vec<(&str, tonic::metadata::MetadataValue<tonic::metadata::Ascii>)> = vec![
        ("not ASCII", tonic::metadata::MetadataValue::try_from(&[0xC3u8, 0xA9, 0xFF][..]).unwrap()),
        ("too long", "r".repeat(10_000).parse().unwrap()),
        ("spaces", "has spaces".parse().unwrap()),
    ];
    for (case, value) in cases {
        let mut request = tonic::Request::new(pb::ListConnectionsRequest::default());
        request.metadata_mut().insert("x-request-id", value);
        let response = app.connections.list_connections(request).await.expect(case);
        let echoed = response.metadata().get("x-request-id").expect(case).to_str().unwrap().to_owned();
        assert!(uuid::Uuid::try_parse(&echoed).is_ok(), "{case}: a fresh id replaces it, got {echoed:?}");
    }
    let mut request = tonic::Request::new(pb::ListConnectionsRequest::default());
    request.metadata_mut().insert("x-request-id", "trace-42".parse().unwrap());
    let response = app.connections.list_connections(request).await.unwrap();
    assert_eq!(response.metadata().get("x-request-id").unwrap(), "trace-42");
}

#[tokio::test]
async fn absurd_dates_and_enum_values_are_refused_with_the_field_named() {
    let mut app = spawn_app(Backend::Sqlite).await;
    let connection = app.ready_connection("ins_sandbox_bank", "u").await;
    for (start, end) in [("0000-01-01", ""), ("99999-01-01", ""), ("", "2026-13-01"), ("-2026-01-01", "")] {
        let status = app
            .accounts
            .list_account_transactions(pb::ListAccountTransactionsRequest {
                connection_id: connection.id.clone(),
                start_date: start.into(),
                end_date: end.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_error(&format!("{start:?}..{end:?}"), &status, Code::InvalidArgument, "INVALID_FIELD");
    }
    let status = app
        .connections
        .list_connections(pb::ListConnectionsRequest { state: 1_000_000, ..Default::default() })
        .await
        .unwrap_err();
    assert_error("unknown state", &status, Code::InvalidArgument, "INVALID_FIELD");
    let field = tonic_types::StatusExt::get_details_bad_request(&status).unwrap().field_violations[0].field.clone();
    assert_eq!(field, "state");
}

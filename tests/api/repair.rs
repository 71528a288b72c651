//! Repair in place: a sandbox connection driven to LOGIN_REQUIRED through SandboxService is
//! repaired by a link session that names it, keeping its id and every data id, with the stream
//! telling what happened; repairs that must not happen are refused and change nothing.

use crate::support::database::Backend;
use crate::support::server::{repair_request, spawn_app, spawn_app_with};
use crate::support::status::assert_error;
use linkgate::pb;
use tonic::Code;

/// The ids of a connection's accounts and transactions, each list sorted.
async fn data_ids(app: &mut crate::support::server::TestApp, connection_id: &str) -> (Vec<String>, Vec<String>) {
    let accounts = app
        .accounts
        .list_accounts(pb::ListAccountsRequest { connection_id: connection_id.into(), ..Default::default() })
        .await
        .expect("accounts read")
        .into_inner()
        .accounts;
    let transactions = app
        .accounts
        .list_account_transactions(pb::ListAccountTransactionsRequest {
            connection_id: connection_id.into(),
            page_size: 500,
            ..Default::default()
        })
        .await
        .expect("transactions read")
        .into_inner()
        .transactions;
    let mut account_ids: Vec<String> = accounts.into_iter().map(|a| a.id).collect();
    let mut transaction_ids: Vec<String> = transactions.into_iter().map(|t| t.id).collect();
    account_ids.sort();
    transaction_ids.sort();
    (account_ids, transaction_ids)
}

on_both_backends! {
    async fn a_connection_that_needs_its_user_again_is_repaired_in_place_with_every_id_kept(backend: Backend) {
        let mut app = spawn_app(backend).await;
        let connection = app.ready_connection("ins_sandbox_bank", "user-repair").await;
        let before = data_ids(&mut app, &connection.id).await;
        assert!(!before.0.is_empty() && !before.1.is_empty(), "the bank has accounts and transactions");

        let mut watch = app.watch(&connection.id).await;
        use pb::ConnectionEventType as T;
        use pb::ConnectionState as S;
        assert_eq!(watch.next().await, (T::Unspecified, S::Ready, true), "a snapshot first, untyped");

        app.sandbox
            .reset_login(pb::ResetLoginRequest { connection_id: connection.id.clone() })
            .await
            .expect("the sandbox control applies");
        assert_eq!(watch.next().await, (T::StateChanged, S::LoginRequired, false));
        let stale = app.connections
            .get_connection(pb::GetConnectionRequest { connection_id: connection.id.clone() })
            .await
            .unwrap()
            .into_inner()
            .connection
            .unwrap();
        assert_eq!(stale.error.unwrap().reason(), pb::ErrorReason::LoginRequired);
        let refused = app.accounts
            .list_accounts(pb::ListAccountsRequest { connection_id: connection.id.clone(), ..Default::default() })
            .await;
        assert!(refused.is_ok(), "data already imported stays readable while the user is away: {refused:?}");

        let session = app.repair_session(&connection.id).await;
        assert_eq!(session.connection_id, connection.id, "the session names the connection it repairs");
        assert_eq!((session.provider.as_str(), session.institution_id.as_str()), ("sandbox", "ins_sandbox_bank"));
        assert_eq!(session.external_user_id, "user-repair");
        let asked = app.submit(&session.id, "user_mfa", "pass_good").await.expect("credentials accepted");
        assert_eq!(asked.state(), pb::LinkSessionState::MfaRequired);
        let done = app
            .link
            .answer_mfa(pb::AnswerMfaRequest { link_session_id: session.id.clone(), answer: "1234".into(), ..Default::default() })
            .await
            .expect("the answer is accepted")
            .into_inner()
            .link_session
            .unwrap();
        assert_eq!(done.state(), pb::LinkSessionState::Succeeded);
        assert!(done.public_token.is_empty(), "a repair issues no public token");

        watch.assert_repair_told_once().await;

        assert_eq!(data_ids(&mut app, &connection.id).await, before, "every account and transaction id kept");
        app.assert_repaired_in_place(&connection.id).await;
        let tokens = app.link.list_public_tokens(pb::ListPublicTokensRequest::default()).await.unwrap().into_inner();
        assert!(tokens.public_tokens.is_empty(), "nothing left to exchange");
    }
}

on_both_backends! {
    async fn wrong_credentials_fail_the_repair_and_leave_the_connection_waiting(backend: Backend) {
        let mut app = spawn_app(backend).await;
        let connection = app.ready_connection("ins_sandbox_broker", "user-w").await;
        app.sandbox.reset_login(pb::ResetLoginRequest { connection_id: connection.id.clone() }).await.unwrap();
        app.wait_for_connection(&connection.id, pb::ConnectionState::LoginRequired).await;

        let session = app.repair_session(&connection.id).await;
        let failed = app.submit(&session.id, "user_good", "wrong").await.expect("the attempt is recorded");
        assert_eq!(failed.state(), pb::LinkSessionState::Failed);
        assert_eq!(failed.failure_reason(), pb::ErrorReason::InvalidCredentials);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let still = app.wait_for_connection(&connection.id, pb::ConnectionState::LoginRequired).await;
        assert_eq!(still.id, connection.id);

        // A second session succeeds; the broker's portfolios and positions keep their ids too.
        let portfolios = |app: &mut crate::support::server::TestApp| {
            let mut client = app.portfolios.clone();
            let id = connection.id.clone();
            async move {
                let list = client
                    .list_portfolios(pb::ListPortfoliosRequest { connection_id: id.clone(), ..Default::default() })
                    .await
                    .unwrap()
                    .into_inner()
                    .portfolios;
                let positions = client
                    .list_portfolio_positions(pb::ListPortfolioPositionsRequest {
                        connection_id: id,
                        portfolio_id: list[0].id.clone(),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .positions;
                let mut ids: Vec<String> = list.into_iter().map(|p| p.id).chain(positions.into_iter().map(|p| p.id)).collect();
                ids.sort();
                ids
            }
        };
        let before = portfolios(&mut app).await;
        let session = app.repair_session(&connection.id).await;
        let done = app.submit(&session.id, "user_good", "pass_good").await.unwrap();
        assert_eq!(done.state(), pb::LinkSessionState::Succeeded);
        app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
        assert_eq!(portfolios(&mut app).await, before, "portfolio and position ids kept");
    }
}

on_both_backends! {
    async fn repairs_that_cannot_be_are_refused_with_a_reason(backend: Backend) {
        let mut app = spawn_app(backend).await;
        let connection = app.ready_connection("ins_sandbox_bank", "user-x").await;

        let unknown = uuid::Uuid::now_v7().to_string();
        let status = app.link.create_link_session(repair_request(&unknown)).await.unwrap_err();
        assert_error("unknown connection", &status, Code::NotFound, "CONNECTION_NOT_FOUND");

        let mut other = repair_request(&connection.id);
        other.external_user_id = "someone-else".into();
        other.provider = "deck".into();
        let status = app.link.create_link_session(other).await.unwrap_err();
        assert_error("fields that disagree", &status, Code::InvalidArgument, "INVALID_FIELD");
        assert!(status.message().contains("external_user_id") && status.message().contains("provider"), "{}", status.message());

        let mut with_products = repair_request(&connection.id);
        with_products.products = vec![pb::Product::Accounts as i32];
        let status = app.link.create_link_session(with_products).await.unwrap_err();
        assert_error("products", &status, Code::InvalidArgument, "INVALID_FIELD");

        let status = app.link.create_link_session(repair_request("not-a-uuid")).await.unwrap_err();
        assert_error("malformed id", &status, Code::InvalidArgument, "INVALID_FIELD");

        // Another tenant's connection does not exist for the caller.
        let key = app.create_tenant("billing").await;
        app.use_key(Some(&key));
        let status = app.link.create_link_session(repair_request(&connection.id)).await.unwrap_err();
        assert_error("another tenant's", &status, Code::NotFound, "CONNECTION_NOT_FOUND");
        let status = app.sandbox.reset_login(pb::ResetLoginRequest { connection_id: connection.id.clone() }).await.unwrap_err();
        assert_error("another tenant's, sandbox control", &status, Code::NotFound, "CONNECTION_NOT_FOUND");
        app.use_key(None);
    }
}

#[tokio::test]
async fn a_deleted_connection_is_not_repaired_and_no_session_is_made() {
    let mut app = spawn_app(Backend::Postgres).await;
    let connection = app.ready_connection("ins_sandbox_bank", "user-d").await;
    app.connections
        .delete_connection(pb::DeleteConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap();
    let sessions_before = app.row_count("link_sessions").await;
    let status = app.link.create_link_session(repair_request(&connection.id)).await.unwrap_err();
    assert_error("deleted", &status, Code::FailedPrecondition, "CONNECTION_DELETED");
    let status =
        app.sandbox.reset_login(pb::ResetLoginRequest { connection_id: connection.id.clone() }).await.unwrap_err();
    assert_error("deleted, sandbox control", &status, Code::FailedPrecondition, "CONNECTION_DELETED");
    assert_eq!(app.row_count("link_sessions").await, sessions_before, "the refused repair wrote no session");
}

#[tokio::test]
async fn sandbox_controls_are_not_served_without_the_sandbox() {
    let mut app = spawn_app_with(Backend::Sqlite, |settings| settings.providers.sandbox.enabled = false, None).await;
    let connection_id = uuid::Uuid::now_v7().to_string();
    let calls = [
        app.sandbox.reset_login(pb::ResetLoginRequest { connection_id: connection_id.clone() }).await.map(drop),
        app.sandbox
            .fail_next_refresh(pb::FailNextRefreshRequest { connection_id: connection_id.clone(), failure: 1 })
            .await
            .map(drop),
        app.sandbox
            .add_transaction(pb::AddTransactionRequest { connection_id: connection_id.clone(), ..Default::default() })
            .await
            .map(drop),
        app.sandbox
            .post_transaction(pb::PostTransactionRequest { connection_id: connection_id.clone(), ..Default::default() })
            .await
            .map(drop),
    ];
    for call in calls {
        let status = call.unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    }
}

/// Makes every write of a connection event fail, as a database fault in the middle of a change
/// would (`fail`), or lets them through again. Writers append to the sequencer's inbox on
/// PostgreSQL and to the log itself on SQLite.
async fn fail_event_writes(app: &crate::support::server::TestApp, backend: Backend, fail: bool) {
    use sqlx::Connection;
    let url = &app.settings().database.database_url;
    let statements: &[&str] = match (backend, fail) {
        (Backend::Postgres, true) => &[
            "CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
            "CREATE TRIGGER refuse_events BEFORE INSERT ON connection_event_inbox \
             FOR EACH ROW EXECUTE FUNCTION refuse_event()",
        ],
        (Backend::Postgres, false) => {
            &["DROP TRIGGER refuse_events ON connection_event_inbox", "DROP FUNCTION refuse_event()"]
        }
        (Backend::Sqlite, true) => &["CREATE TRIGGER refuse_events BEFORE INSERT ON connection_events \
             BEGIN SELECT RAISE(ABORT, 'injected fault'); END"],
        (Backend::Sqlite, false) => &["DROP TRIGGER refuse_events"],
    };
    for statement in statements {
        let result = match backend {
            Backend::Postgres => {
                let mut db = sqlx::PgConnection::connect(url).await.expect("database answers");
                sqlx::raw_sql(sqlx::AssertSqlSafe(*statement)).execute(&mut db).await.map(drop)
            }
            Backend::Sqlite => {
                let mut db = sqlx::SqliteConnection::connect(url).await.expect("database opens");
                sqlx::raw_sql(sqlx::AssertSqlSafe(*statement)).execute(&mut db).await.map(drop)
            }
        };
        result.expect("the fault is set up");
    }
}

/// How long a change may take here: well below the 30 s a change waits for a connection's lease
/// before giving up, so a lease left behind by a failed change shows as a timeout.
const PROMPTLY: std::time::Duration = std::time::Duration::from_secs(10);

on_both_backends! {
    async fn a_repair_that_fails_midway_leaves_the_connection_free_for_the_next_one(backend: Backend) {
        let mut app = spawn_app(backend).await;
        let connection = app.ready_connection("ins_sandbox_bank", "user-f").await;
        app.sandbox.reset_login(pb::ResetLoginRequest { connection_id: connection.id.clone() }).await.unwrap();
        app.wait_for_connection(&connection.id, pb::ConnectionState::LoginRequired).await;

        // The database fails the repair's completion, after the repair took the connection's lease.
        let session = app.repair_session(&connection.id).await;
        fail_event_writes(&app, backend, true).await;
        let status = app.submit(&session.id, "user_good", "pass_good").await.unwrap_err();
        assert_error("a repair the database failed", &status, Code::Internal, "INTERNAL");
        fail_event_writes(&app, backend, false).await;

        // The next repair completes at once rather than waiting for a lease nobody holds.
        let session = app.repair_session(&connection.id).await;
        let done = tokio::time::timeout(PROMPTLY, app.submit(&session.id, "user_good", "pass_good"))
            .await
            .expect("the repair does not wait for a lease left behind")
            .expect("the repair completes");
        assert_eq!(done.state(), pb::LinkSessionState::Succeeded);
        app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    }
}

on_both_backends! {
    async fn a_sandbox_control_that_fails_midway_leaves_the_connection_free(backend: Backend) {
        let mut app = spawn_app(backend).await;
        let connection = app.ready_connection("ins_sandbox_bank", "user-c").await;
        let expiry = |days: u64| pb::SetConsentExpiryRequest {
            connection_id: connection.id.clone(),
            consent_expires_at: Some(prost_types::Timestamp::from(
                std::time::SystemTime::now() + std::time::Duration::from_secs(days * 86_400),
            )),
        };

        fail_event_writes(&app, backend, true).await;
        let status = app.sandbox.set_consent_expiry(expiry(90)).await.unwrap_err();
        assert_error("a control the database failed", &status, Code::Internal, "INTERNAL");
        fail_event_writes(&app, backend, false).await;

        let set = tokio::time::timeout(PROMPTLY, app.sandbox.set_consent_expiry(expiry(60)))
            .await
            .expect("the control does not wait for a lease left behind")
            .expect("the control applies")
            .into_inner()
            .connection
            .unwrap();
        assert!(set.consent_expires_at.is_some());
        // And the sync engine still polls it: a refresh comes back READY.
        app.connections
            .refresh_connection(pb::RefreshConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
            .await
            .unwrap();
        app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    }
}

//! The change feed (SyncAccountTransactions, SyncPortfolioTransactions) against the sandbox,
//! driven by its transaction controls: every kind of change reaches a syncing caller exactly
//! once, DATA_UPDATED counts it, cursors page stably across replicas and expire with the change
//! window, and the controls refuse what the sandbox does not serve.

use crate::support::database::Backend;
use crate::support::feed::{FeedCopy, listed};
use crate::support::server::{TestApp, spawn_app_with};
use crate::support::status::assert_error;
use linkgate::pb;
use std::time::Duration;
use tonic::Code;

fn counts(changes: &pb::DataChanges) -> (i32, i32, i32) {
    let counts = changes.transactions.unwrap_or_default();
    (counts.added, counts.modified, counts.removed)
}

async fn checking_account(app: &mut TestApp, connection_id: &str) -> String {
    let request = pb::ListAccountsRequest { connection_id: connection_id.into(), ..Default::default() };
    let accounts = app.accounts.list_accounts(request).await.unwrap().into_inner().accounts;
    accounts.into_iter().find(|a| a.name == "Everyday Checking").expect("the sandbox bank's checking").id
}

on_both_backends! {
    async fn every_kind_of_change_reaches_a_syncing_caller_exactly_once(backend: Backend) {
        let mut app = spawn_app_with(backend, |_| {}, None).await;
        let connection = app.ready_connection("ins_sandbox_bank", "user-feed").await;
        let id = connection.id.clone();
        let mut watch = app.watch(&id).await;
        assert!(watch.next().await.2, "the stream opens with a snapshot");

        // From an empty cursor: the current transactions, as added, in pages.
        let mut eager = FeedCopy::default();
        assert_eq!(eager.drain(&mut app, &id, 25).await, 3, "66 transactions in pages of 25");
        let mut late = FeedCopy::default();
        late.page(&mut app, &id, 10).await;
        let current = listed(&mut app, &id).await;
        assert_eq!(eager.transactions, current);
        let again = eager.page(&mut app, &id, 25).await;
        assert!(again.added.is_empty() && again.modified.is_empty() && again.removed.is_empty() && !again.has_more);

        let pending: Vec<String> = current.values().filter(|t| t.pending).map(|t| t.id.clone()).collect();
        let booked: Vec<String> = current.values().filter(|t| !t.pending).map(|t| t.id.clone()).collect();
        assert_eq!(pending.len(), 2, "the sandbox bank serves two pending transactions");
        let account_id = checking_account(&mut app, &id).await;

        // An authorisation appears.
        let added = app
            .sandbox
            .add_transaction(pb::AddTransactionRequest {
                connection_id: id.clone(),
                account_id: account_id.clone(),
                amount: "-9.99".into(),
                description: "Kiosko".into(),
                pending: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .transaction_id;
        assert_eq!(counts(&watch.next_data_update().await), (1, 0, 0));
        let page = eager.page(&mut app, &id, 25).await;
        assert_eq!(page.added.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [added.as_str()]);
        assert_eq!((page.added[0].amount.as_ref().unwrap().amount.as_str(), page.added[0].pending), ("-9.99", true));

        // The bank corrects a description.
        app.sandbox
            .modify_transaction(pb::ModifyTransactionRequest {
                connection_id: id.clone(),
                transaction_id: booked[0].clone(),
                description: Some("Mercadona Centro".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(counts(&watch.next_data_update().await), (0, 1, 0));
        let page = eager.page(&mut app, &id, 25).await;
        assert_eq!(page.modified.iter().map(|t| (t.id.as_str(), t.description.as_str())).collect::<Vec<_>>(), [(
            booked[0].as_str(),
            "Mercadona Centro"
        )]);

        // A booked transaction is reversed.
        app.sandbox
            .remove_transaction(pb::RemoveTransactionRequest { connection_id: id.clone(), transaction_id: booked[1].clone() })
            .await
            .unwrap();
        assert_eq!(counts(&watch.next_data_update().await), (0, 0, 1));
        assert_eq!(eager.page(&mut app, &id, 25).await.removed, [booked[1].clone()]);

        // A pending transaction books under an id of its own: linkgate links the pair, and the
        // page that adds the booked one removes the pending one.
        let posted = app
            .sandbox
            .post_transaction(pb::PostTransactionRequest {
                connection_id: id.clone(),
                transaction_id: pending[0].clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .transaction_id;
        assert_eq!(counts(&watch.next_data_update().await), (1, 0, 1));
        let page = eager.page(&mut app, &id, 25).await;
        assert_eq!(page.added.len(), 1);
        assert_eq!((page.added[0].id.as_str(), page.added[0].pending), (posted.as_str(), false));
        assert_eq!(page.added[0].pending_transaction_id, pending[0], "the booked one names the pending one");
        assert_eq!(page.removed, [pending[0].clone()], "removed in the same page");

        // The bank withdraws the other authorisation.
        app.sandbox
            .remove_transaction(pb::RemoveTransactionRequest { connection_id: id.clone(), transaction_id: pending[1].clone() })
            .await
            .unwrap();
        assert_eq!(counts(&watch.next_data_update().await), (0, 0, 1));
        assert_eq!(eager.page(&mut app, &id, 25).await.removed, [pending[1].clone()]);

        // Both callers end with exactly what the connection serves, however they paged.
        let current = listed(&mut app, &id).await;
        assert_eq!(current.len(), 66 + 1 - 1 + 1 - 1 - 1);
        assert!(!current.contains_key(&pending[0]) && current.contains_key(&posted));
        assert_eq!(current[&posted].pending_transaction_id, pending[0], "the list serves the link too");
        assert_eq!(eager.transactions, current);
        late.drain(&mut app, &id, 2).await;
        assert_eq!(late.transactions, current, "a caller that paged through the changes ends the same");
        watch.assert_quiet().await;
    }
}

#[tokio::test]
async fn paging_resumes_on_another_replica_while_refreshes_keep_writing() {
    let mut a = spawn_app_with(Backend::Postgres, |_| {}, None).await;
    let connection = a.ready_connection("ins_sandbox_bank", "user-feed").await;
    let id = connection.id.clone();
    let mut copy = FeedCopy::default();
    assert!(copy.page(&mut a, &id, 20).await.has_more);

    // A refresh writes between pages, then the replica that issued the cursor stops.
    let account_id = checking_account(&mut a, &id).await;
    let mut watch = a.watch(&id).await;
    let request = pb::AddTransactionRequest {
        connection_id: id.clone(),
        account_id,
        amount: "12.00".into(),
        description: "Refund".into(),
        ..Default::default()
    };
    a.sandbox.add_transaction(request).await.unwrap();
    watch.next_data_update().await;
    let mut b = a.spawn_replica().await;
    a.shut_down().await.unwrap();

    copy.drain(&mut b, &id, 20).await;
    assert_eq!(copy.transactions, listed(&mut b, &id).await, "exactly the current set, nothing twice");
    assert_eq!(copy.transactions.len(), 67);
}

#[tokio::test]
async fn a_cursor_older_than_the_change_window_is_refused_with_its_reason() {
    let mut app = spawn_app_with(Backend::Sqlite, |s| s.sync.sync_window = Duration::from_secs(1), None).await;
    let connection = app.ready_connection("ins_sandbox_bank", "user-feed").await;
    let mut copy = FeedCopy::default();
    copy.drain(&mut app, &connection.id, 100).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let request = pb::SyncAccountTransactionsRequest {
        connection_id: connection.id.clone(),
        cursor: copy.cursor.clone(),
        ..Default::default()
    };
    let status = app.accounts.sync_account_transactions(request.clone()).await.unwrap_err();
    assert_error("expired", &status, Code::FailedPrecondition, "SYNC_CURSOR_EXPIRED");
    let fresh = pb::SyncAccountTransactionsRequest { cursor: String::new(), ..request };
    let page = app.accounts.sync_account_transactions(fresh).await.expect("an empty cursor starts again");
    assert_eq!(page.into_inner().added.len(), 66);
}

#[tokio::test]
async fn altered_and_misapplied_cursors_are_refused() {
    let mut app = spawn_app_with(Backend::Sqlite, |_| {}, None).await;
    let connection = app.ready_connection("ins_sandbox_bank", "user-feed").await;
    let account_id = checking_account(&mut app, &connection.id).await;
    let mut copy = FeedCopy::default();
    copy.page(&mut app, &connection.id, 5).await;

    let mut altered = copy.cursor.clone().into_bytes();
    altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
    let cases = [
        ("altered", connection.id.clone(), String::new(), String::from_utf8(altered).unwrap()),
        ("another filter", connection.id.clone(), account_id, copy.cursor.clone()),
    ];
    for (case, connection_id, account_id, cursor) in cases {
        let request = pb::SyncAccountTransactionsRequest { connection_id, account_id, cursor, page_size: 5 };
        let status = app.accounts.sync_account_transactions(request).await.unwrap_err();
        assert_error(case, &status, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
    }
    let utility = app.ready_connection("ins_sandbox_utility", "user-feed").await;
    let request = pb::SyncAccountTransactionsRequest { connection_id: utility.id, ..Default::default() };
    let status = app.accounts.sync_account_transactions(request).await.unwrap_err();
    assert_error("no transactions linked", &status, Code::FailedPrecondition, "CAPABILITY_UNSUPPORTED");
}

#[tokio::test]
async fn portfolio_transactions_sync_per_portfolio_or_for_the_whole_connection() {
    let mut app = spawn_app_with(Backend::Sqlite, |_| {}, None).await;
    let connection = app.ready_connection("ins_sandbox_broker", "user-feed").await;
    let request = pb::ListPortfoliosRequest { connection_id: connection.id.clone(), ..Default::default() };
    let portfolio = app.portfolios.list_portfolios(request).await.unwrap().into_inner().portfolios.remove(0);
    let listed = app
        .portfolios
        .list_portfolio_transactions(pb::ListPortfolioTransactionsRequest {
            connection_id: connection.id.clone(),
            portfolio_id: portfolio.id.clone(),
            page_size: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .transactions;
    for portfolio_id in [portfolio.id.clone(), String::new()] {
        let mut synced = Vec::new();
        let mut cursor = String::new();
        loop {
            let request = pb::SyncPortfolioTransactionsRequest {
                connection_id: connection.id.clone(),
                portfolio_id: portfolio_id.clone(),
                cursor,
                page_size: 7,
            };
            let page = app.portfolios.sync_portfolio_transactions(request).await.unwrap().into_inner();
            assert!(page.modified.is_empty() && page.removed.is_empty());
            synced.extend(page.added);
            cursor = page.next_cursor;
            if !page.has_more {
                break;
            }
        }
        synced.sort_by(|a, b| a.id.cmp(&b.id));
        let mut expected = listed.clone();
        expected.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(synced, expected, "portfolio filter {portfolio_id:?}");
    }
}

#[tokio::test]
async fn transaction_controls_refuse_what_the_sandbox_does_not_serve_and_write_nothing() {
    let mut app = spawn_app_with(Backend::Postgres, |_| {}, None).await;
    let bank = app.ready_connection("ins_sandbox_bank", "user-feed").await;
    let broker = app.ready_connection("ins_sandbox_broker", "user-feed").await;
    let current = listed(&mut app, &bank.id).await;
    let booked = current.values().find(|t| !t.pending).unwrap().id.clone();
    let pending = current.values().find(|t| t.pending).unwrap().clone();
    let account_id = checking_account(&mut app, &bank.id).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let add = |connection_id: &str, account_id: &str, amount: &str| pb::AddTransactionRequest {
        connection_id: connection_id.into(),
        account_id: account_id.into(),
        amount: amount.into(),
        description: "Test".into(),
        ..Default::default()
    };

    let status = app.sandbox.add_transaction(add(&bank.id, &unknown, "-1.00")).await.unwrap_err();
    assert_error("unknown account", &status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    for amount in ["", "1e3", "-", "1.", "0.12345678901", "12,50"] {
        let status = app.sandbox.add_transaction(add(&bank.id, &account_id, amount)).await.unwrap_err();
        assert_error(amount, &status, Code::InvalidArgument, "INVALID_FIELD");
    }
    let status = app.sandbox.add_transaction(add(&broker.id, &account_id, "-1.00")).await.unwrap_err();
    assert_error("a broker links no transactions", &status, Code::FailedPrecondition, "CAPABILITY_UNSUPPORTED");
    let remove = pb::RemoveTransactionRequest { connection_id: bank.id.clone(), transaction_id: unknown.clone() };
    let status = app.sandbox.remove_transaction(remove).await.unwrap_err();
    assert_error("unknown transaction", &status, Code::NotFound, "TRANSACTION_NOT_FOUND");
    let post = |transaction_id: &str, date: &str| pb::PostTransactionRequest {
        connection_id: bank.id.clone(),
        transaction_id: transaction_id.into(),
        date: date.into(),
        ..Default::default()
    };
    let status = app.sandbox.post_transaction(post(&booked, "")).await.unwrap_err();
    assert_error("already booked", &status, Code::InvalidArgument, "INVALID_FIELD");
    let status = app.sandbox.post_transaction(post(&pending.id, "2001-01-01")).await.unwrap_err();
    assert_error("booked before it was pending", &status, Code::InvalidArgument, "INVALID_FIELD");
    let modify =
        pb::ModifyTransactionRequest { connection_id: bank.id.clone(), transaction_id: booked, ..Default::default() };
    let status = app.sandbox.modify_transaction(modify).await.unwrap_err();
    assert_error("nothing to modify", &status, Code::InvalidArgument, "INVALID_FIELD");

    assert_eq!(app.row_count("sandbox_transactions").await, 0, "refused changes wrote nothing");
    assert_eq!(listed(&mut app, &bank.id).await, current);
}

#[tokio::test]
async fn an_armed_refresh_failure_happens_once_and_the_connection_recovers() {
    let mut app = spawn_app_with(Backend::Postgres, |_| {}, None).await;
    let connection = app.ready_connection("ins_sandbox_bank", "user-feed").await;
    let mut watch = app.watch(&connection.id).await;
    watch.next().await;

    // A refusal: the connection turns STALE with the reason, and the retry after it succeeds.
    let arm = |failure: pb::SandboxFailure| pb::FailNextRefreshRequest {
        connection_id: connection.id.clone(),
        failure: failure as i32,
    };
    app.sandbox.fail_next_refresh(arm(pb::SandboxFailure::ProviderError)).await.unwrap();
    let failed = watch.next_event().await;
    let state = failed.connection.unwrap();
    assert_eq!(state.state(), pb::ConnectionState::Stale);
    assert_eq!(state.error.unwrap().reason(), pb::ErrorReason::ProviderRejected);
    let (kind, state, _) = watch.next().await;
    assert_eq!((kind, state), (pb::ConnectionEventType::StateChanged, pb::ConnectionState::Ready), "recovered");

    // An outage: transient, so the connection keeps its state and the retry comes later.
    let armed = tokio::time::Instant::now();
    app.sandbox.fail_next_refresh(arm(pb::SandboxFailure::InstitutionDown)).await.unwrap();
    let (kind, state, _) = watch.next().await;
    assert_eq!((kind, state), (pb::ConnectionEventType::StateChanged, pb::ConnectionState::Ready));
    assert!(armed.elapsed() >= Duration::from_millis(900), "the first refresh failed and was retried later");
    watch.assert_quiet().await;
    assert_eq!(app.row_count("sandbox_failures").await, 0, "each armed failure is used once");
}

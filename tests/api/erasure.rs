//! EraseEndUser: one call erases everything linkgate holds for a tenant's end user (connections
//! revoked upstream and destroyed with their data and events, link sessions, public tokens),
//! spares every other user, answers zeros the second time, and leaves only an audit record that
//! names the erasure, not the user.

use crate::sandbox::RecordingSandbox;
use crate::support::server::{TestApp, spawn_app_with, test_settings};
use crate::support::status::assert_error;
use linkgate::pb;
use std::time::Duration;
use tokio_stream::StreamExt;

const ERASED_USER: &str = "erase-me-5c1d";
const KEPT_USER: &str = "keep-me-8e2f";

/// Every row of every table of the app's database (tables listed from the catalog, so a new one
/// cannot be forgotten), as `(table, row text)`, the text lowercased.
async fn every_row(app: &TestApp) -> Vec<(String, String)> {
    use sqlx::Connection;
    let url = &app.settings().database.database_url;
    let mut rows = Vec::new();
    if linkgate::store::is_sqlite(url) {
        let mut db = sqlx::SqliteConnection::connect(url).await.expect("database opens");
        let tables: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                .fetch_all(&mut db)
                .await
                .expect("tables listed");
        for (table,) in tables {
            let columns: Vec<(String,)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT name FROM pragma_table_info('{table}')")))
                    .fetch_all(&mut db)
                    .await
                    .expect("columns listed");
            let row = columns.iter().map(|(c,)| format!("quote(\"{c}\")")).collect::<Vec<_>>().join(" || '|' || ");
            let texts: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {row} FROM \"{table}\"")))
                .fetch_all(&mut db)
                .await
                .expect("rows read");
            rows.extend(texts.into_iter().map(|(text,)| (table.clone(), text.to_lowercase())));
        }
    } else {
        let mut db = sqlx::PgConnection::connect(url).await.expect("database answers");
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        )
        .fetch_all(&mut db)
        .await
        .expect("tables listed");
        for (table,) in tables {
            let texts: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT t::text FROM {table} t")))
                .fetch_all(&mut db)
                .await
                .expect("rows read");
            rows.extend(texts.into_iter().map(|(text,)| (table.clone(), text.to_lowercase())));
        }
    }
    assert!(rows.iter().any(|(table, _)| table == "connections"), "the catalog lists the tables");
    rows
}

/// How a UUID may appear in a row: hyphenated (PostgreSQL, JSON) or as hex (SQLite blobs).
fn uuid_needles(id: &str) -> Vec<String> {
    let id = uuid::Uuid::parse_str(id).expect("a UUID");
    vec![id.hyphenated().to_string(), id.simple().to_string()]
}

async fn erase(app: &mut TestApp, user: &str) -> pb::EraseEndUserResponse {
    app.connections
        .erase_end_user(pb::EraseEndUserRequest { external_user_id: user.into() })
        .await
        .expect("erasure succeeds")
        .into_inner()
}

async fn next_event<S>(stream: &mut S) -> Option<pb::ConnectionEvent>
where
    S: tokio_stream::Stream<Item = Result<pb::WatchConnectionResponse, tonic::Status>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the stream answers in time")
        .map(|message| message.expect("a stream message").event.expect("an event"))
}

on_both_backends! {
    async fn erasing_an_end_user_leaves_nothing_of_them_and_spares_the_others(backend: Backend) {
        let (registry, counters) = RecordingSandbox::with_settings(test_settings("unused").providers.sandbox);
        let mut app = spawn_app_with(backend, |_| {}, Some(registry)).await;

        let erased = app.ready_connection("ins_sandbox_bank", ERASED_USER).await;
        // A change through the sandbox, so its ledger and the change log hold rows of the
        // connection too.
        let request = pb::ListAccountsRequest { connection_id: erased.id.clone(), ..Default::default() };
        let account = app.accounts.list_accounts(request).await.unwrap().into_inner().accounts.remove(0);
        let mut changes = app.watch(&erased.id).await;
        let change = pb::AddTransactionRequest {
            connection_id: erased.id.clone(),
            account_id: account.id,
            amount: "-3.50".into(),
            description: "Cafe".into(),
            ..Default::default()
        };
        app.sandbox.add_transaction(change).await.unwrap();
        changes.next_data_update().await;
        drop(changes);
        let unexchanged = app.public_token("ins_sandbox_bank", ERASED_USER).await;
        let pending = app.create_session("ins_sandbox_bank", ERASED_USER).await;
        let kept = app.ready_connection("ins_sandbox_bank", KEPT_USER).await;
        let erased_handle = counters.handles.lock().unwrap()[0].clone();

        // A watcher of the erased connection, and the other user's cursor.
        let watch = |id: &str, after_event_id: i64| pb::WatchConnectionRequest { connection_id: id.into(), after_event_id };
        let mut erased_watch = app.connections.watch_connection(watch(&erased.id, 0)).await.unwrap().into_inner();
        assert_eq!(next_event(&mut erased_watch).await.unwrap().connection.unwrap().id, erased.id);
        let mut kept_watch = app.connections.watch_connection(watch(&kept.id, 0)).await.unwrap().into_inner();
        let kept_cursor = next_event(&mut kept_watch).await.unwrap().event_id;
        drop(kept_watch);

        let answer = erase(&mut app, ERASED_USER).await;
        assert_eq!(answer.connections_erased, 1, "{answer:?}");
        assert_eq!(answer.link_sessions_erased, 3, "two linked sessions and the pending one: {answer:?}");
        assert_eq!(answer.public_tokens_erased, 2, "the exchanged token and the un-exchanged one: {answer:?}");
        assert_eq!(answer.revocations_failed, 0, "{answer:?}");
        assert!(answer.complete, "{answer:?}");
        assert!(uuid::Uuid::parse_str(&answer.erasure_id).is_ok(), "{answer:?}");
        assert_eq!(*counters.revoked.lock().unwrap(), vec![erased_handle.clone()], "revoked upstream with its handle");

        // The watcher of the erased connection got its DELETED event and its stream ended.
        let last = next_event(&mut erased_watch).await.expect("a final event");
        assert_eq!(last.connection.unwrap().state(), pb::ConnectionState::Deleted);
        assert!(next_event(&mut erased_watch).await.is_none(), "the stream ends after DELETED");

        // The erased connection and session are unknown now.
        let status = app.connections.get_connection(pb::GetConnectionRequest { connection_id: erased.id.clone() }).await.unwrap_err();
        assert_error("erased connection", &status, tonic::Code::NotFound, "CONNECTION_NOT_FOUND");
        let status = app.connections.watch_connection(watch(&erased.id, last.event_id)).await.unwrap_err();
        assert_error("resumed watch of an erased connection", &status, tonic::Code::NotFound, "CONNECTION_NOT_FOUND");
        let status = app.link.get_link_session(pb::GetLinkSessionRequest { link_session_id: pending.id.clone() }).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
        // The un-exchanged token can never be exchanged: it is kept only as a tombstone.
        let status = app.exchange("sandbox", &unexchanged).await.unwrap_err();
        assert_error("erased public token", &status, tonic::Code::FailedPrecondition, "PUBLIC_TOKEN_EXPIRED");

        // No row of any table names the user; none but the audit trail's names their connection
        // or session (the trail keeps resource ids, never user ids).
        let ids: Vec<String> = [&erased.id, &pending.id].into_iter().flat_map(|id| uuid_needles(id)).collect();
        for (table, row) in every_row(&app).await {
            assert!(!row.contains(ERASED_USER), "{backend:?}: {table} still names the erased user: {row}");
            if table != "audit_log" {
                for id in &ids {
                    assert!(!row.contains(id), "{backend:?}: {table} still names {id}: {row}");
                }
            }
        }
        // Nor does the database's content hold the user's secrets (nor, on SQLite's raw file,
        // the user's id in freed pages).
        let dump = app.database_dump().await;
        assert!(!dump.contains(&erased_handle), "{backend:?}: the handle");
        assert!(!dump.contains(&unexchanged), "{backend:?}: the un-exchanged public token");
        assert!(!dump.contains(ERASED_USER), "{backend:?}: the erased user's id");

        // The other user is untouched, and a watch of theirs resumes from its cursor.
        let kept_now = app.connections.get_connection(pb::GetConnectionRequest { connection_id: kept.id.clone() }).await.unwrap().into_inner().connection.unwrap();
        assert_eq!(kept_now.state(), pb::ConnectionState::Ready);
        assert_eq!(kept_now.external_user_id, KEPT_USER);
        let mut resumed = app.connections.watch_connection(watch(&kept.id, kept_cursor)).await.unwrap().into_inner();
        app.connections.refresh_connection(pb::RefreshConnectionRequest { connection_id: kept.id.clone(), ..Default::default() }).await.unwrap();
        let event = next_event(&mut resumed).await.unwrap();
        assert!(event.event_id > kept_cursor && !event.snapshot, "{event:?}");
        assert_eq!(event.connection.unwrap().id, kept.id);

        // The audit trail holds one erasure, named by its own id.
        let storage = app.storage().await;
        let erasure_id = uuid::Uuid::parse_str(&answer.erasure_id).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let records = loop {
            let records = storage.store.list_audit(None, Some(erasure_id), 10).await.unwrap();
            if !records.is_empty() || tokio::time::Instant::now() > deadline {
                break records;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0].action, linkgate::domain::AuditAction::EraseEndUser);

        // Again: nothing left to do.
        let again = erase(&mut app, ERASED_USER).await;
        assert_eq!(
            (again.connections_erased, again.link_sessions_erased, again.public_tokens_erased, again.complete),
            (0, 0, 0, true),
            "{again:?}"
        );
        assert_eq!(counters.revoked.lock().unwrap().len(), 1, "nothing revoked twice");
    }
}

on_both_backends! {
    async fn an_interrupted_erasure_is_finished_by_the_next_call(backend: Backend) {
        let (registry, counters) = RecordingSandbox::with_settings(test_settings("unused").providers.sandbox);
        let mut app = spawn_app_with(backend, |_| {}, Some(registry)).await;
        let first = app.ready_connection("ins_sandbox_bank", ERASED_USER).await;
        let second = app.ready_connection("ins_sandbox_broker", ERASED_USER).await;
        // An erasure stopped after revoking and deleting the first connection leaves it as a
        // DeleteConnection does: DELETED, its secret and data gone, its row still there.
        app.connections
            .delete_connection(pb::DeleteConnectionRequest { connection_id: first.id.clone(), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(counters.revoked.lock().unwrap().len(), 1);

        let answer = erase(&mut app, ERASED_USER).await;
        assert_eq!(answer.connections_erased, 2, "{answer:?}");
        assert!(answer.complete, "{answer:?}");
        assert_eq!(counters.revoked.lock().unwrap().len(), 2, "only the live connection is revoked again");
        for id in [&first.id, &second.id] {
            let status = app.connections.get_connection(pb::GetConnectionRequest { connection_id: id.clone() }).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
        }
    }
}

on_both_backends! {
    async fn erasing_an_unknown_user_succeeds_with_nothing_erased_and_a_bad_id_is_refused(backend: Backend) {
        let mut app = spawn_app_with(backend, |_| {}, None).await;
        let answer = erase(&mut app, "nobody-here").await;
        assert_eq!(
            (answer.connections_erased, answer.link_sessions_erased, answer.public_tokens_erased, answer.revocations_failed),
            (0, 0, 0, 0)
        );
        assert!(answer.complete);
        for (case, user) in [("empty", String::new()), ("too long", "u".repeat(129)), ("control", "a\nb".to_owned())] {
            let status = app
                .connections
                .erase_end_user(pb::EraseEndUserRequest { external_user_id: user })
                .await
                .unwrap_err();
            assert_error(case, &status, tonic::Code::InvalidArgument, "INVALID_FIELD");
        }
    }
}

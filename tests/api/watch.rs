//! The watch streams: resuming, filtering, refresh and shutdown.

use crate::support::database::Backend;
use crate::support::server::{PATIENCE, spawn_app};
use crate::support::status::assert_error;
use linkgate::pb;
use std::time::Duration;
use tokio_stream::StreamExt;

/// Collects events from `stream` until `done` says so.
async fn collect_until<S>(
    stream: &mut S,
    mut done: impl FnMut(&[pb::ConnectionEvent]) -> bool,
) -> Vec<pb::ConnectionEvent>
where
    S: tokio_stream::Stream<Item = Result<pb::WatchConnectionsResponse, tonic::Status>> + Unpin,
{
    let mut events = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while !done(&events) {
            let message = stream.next().await.expect("stream open").expect("stream item");
            events.push(message.event.unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out with {} events", events.len()));
    events
}

on_both_backends! {
    async fn resuming_after_an_event_replays_exactly_the_later_ones(backend: Backend) {
        let mut app = spawn_app(backend).await;
        let first = app.ready_connection("ins_sandbox_bank", "user-r").await;
        let second = app.ready_connection("ins_sandbox_utility", "user-r").await;

        let mut all = app
            .connections
            .watch_connections(pb::WatchConnectionsRequest { after_event_id: 0, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        // From 0: the current state of each connection, oldest change first.
        let current = collect_until(&mut all, |e| e.len() == 2).await;
        let ids: Vec<_> = current.iter().map(|e| e.connection.as_ref().unwrap().id.clone()).collect();
        assert_eq!(ids, [first.id.clone(), second.id.clone()]);

        // Resume after the first connection's PENDING event: its READY and both of the second's.
        let history = app
            .connections
            .watch_connections(pb::WatchConnectionsRequest { after_event_id: 0, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        drop(history);
        let mut resumed = app
            .connections
            .watch_connections(pb::WatchConnectionsRequest { after_event_id: 1, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        let replayed = collect_until(&mut resumed, |e| e.len() == 5).await;
        let ids: Vec<i64> = replayed.iter().map(|e| e.event_id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
        assert!(ids.iter().all(|id| *id > 1), "only later events: {ids:?}");
        let changes: Vec<_> = replayed.iter().map(|e| (e.connection.as_ref().unwrap().state(), e.r#type())).collect();
        use pb::ConnectionEventType::{DataUpdated, StateChanged};
        use pb::ConnectionState::{Pending, Ready};
        assert_eq!(
            changes,
            [(Ready, StateChanged), (Ready, DataUpdated), (Pending, StateChanged), (Ready, StateChanged), (Ready, DataUpdated)],
            "replay of the log: each first import's state, then what it imported"
        );
        let imported = replayed[1].data_changes.expect("DATA_UPDATED counts what changed");
        assert_eq!(imported.accounts.map(|c| (c.added, c.modified, c.removed)), Some((2, 0, 0)));
        assert_eq!(imported.transactions.map(|c| (c.added, c.modified, c.removed)), Some((66, 0, 0)));
        assert_eq!(imported.statements, None, "kinds the import left alone are unset");

        // Live: a refresh shows REFRESHING then READY, on both streams, once each.
        app.connections
            .refresh_connection(pb::RefreshConnectionRequest { connection_id: first.id.clone(), ..Default::default() })
            .await
            .unwrap();
        for stream in [&mut all, &mut resumed] {
            let live = collect_until(stream, |e| {
                e.last().is_some_and(|e| e.connection.as_ref().unwrap().state() == pb::ConnectionState::Ready)
            })
            .await;
            let states: Vec<_> = live.iter().map(|e| e.connection.as_ref().unwrap().state()).collect();
            assert_eq!(states, [pb::ConnectionState::Refreshing, pb::ConnectionState::Ready]);
        }
    }
}

#[tokio::test]
async fn watch_connections_only_sends_the_filtered_users_changes() {
    let mut app = spawn_app(Backend::Postgres).await;
    let mut mine = app
        .connections
        .watch_connections(pb::WatchConnectionsRequest { external_user_id: "alice".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    app.ready_connection("ins_sandbox_bank", "bob").await;
    let alices = app.ready_connection("ins_sandbox_bank", "alice").await;
    let events = collect_until(&mut mine, |e| {
        e.last().is_some_and(|e| e.connection.as_ref().unwrap().state() == pb::ConnectionState::Ready)
    })
    .await;
    assert!(events.iter().all(|e| e.connection.as_ref().unwrap().id == alices.id), "only alice's connection");
}

/// A long transaction elsewhere in the database (a report, a migration, a forgotten psql session:
/// anything holding a transaction id) delays no event. Log readers that waited for the oldest
/// open transaction to end would hold this change back until it did; linkgate's sequencer moves
/// committed events whatever else is open, so the watcher has it in the usual moment.
#[tokio::test]
async fn a_long_transaction_elsewhere_does_not_delay_events() {
    use sqlx::Connection as _;
    let mut app = spawn_app(Backend::Postgres).await;
    let connection = app.ready_connection("ins_sandbox_bank", "user-l").await;
    let mut stream = app
        .connections
        .watch_connection(pb::WatchConnectionRequest { connection_id: connection.id.clone(), after_event_id: 0 })
        .await
        .unwrap()
        .into_inner();
    let current = tokio::time::timeout(PATIENCE, stream.next()).await.expect("the current state").unwrap().unwrap();
    assert_eq!(current.event.unwrap().connection.unwrap().state(), pb::ConnectionState::Ready);

    let mut elsewhere = sqlx::PgConnection::connect(&app.settings().database.database_url).await.unwrap();
    let mut long = elsewhere.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()").execute(&mut *long).await.unwrap();

    let started = std::time::Instant::now();
    app.connections
        .delete_connection(pb::DeleteConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(3), stream.next()).await;
    let event = next.expect("the change arrives while the other transaction is open").unwrap().unwrap();
    assert_eq!(event.event.unwrap().connection.unwrap().state(), pb::ConnectionState::Deleted);
    let waited = started.elapsed();
    long.rollback().await.unwrap();
    assert!(waited < Duration::from_secs(3), "delivered in {waited:?}");
}

#[tokio::test]
async fn watching_a_missing_connection_fails_at_once() {
    let mut app = spawn_app(Backend::Sqlite).await;
    let status = app
        .connections
        .watch_connection(pb::WatchConnectionRequest {
            connection_id: uuid::Uuid::now_v7().to_string(),
            after_event_id: 0,
        })
        .await
        .unwrap_err();
    assert_error("missing connection", &status, tonic::Code::NotFound, "CONNECTION_NOT_FOUND");
}

#[tokio::test]
async fn shutdown_ends_streams_with_a_resumable_status_and_drains() {
    let mut app = spawn_app(Backend::Postgres).await;
    let connection = app.ready_connection("ins_sandbox_bank", "user-s").await;
    let mut stream = app
        .connections
        .watch_connection(pb::WatchConnectionRequest { connection_id: connection.id, after_event_id: 0 })
        .await
        .unwrap()
        .into_inner();
    stream.next().await.unwrap().unwrap();

    let (stopped, ended) = tokio::join!(app.shut_down(), tokio::time::timeout(Duration::from_secs(10), stream.next()));
    match ended.expect("stream ends promptly") {
        Some(Err(status)) => assert_error("shutdown", &status, tonic::Code::Unavailable, "SHUTTING_DOWN"),
        other => panic!("expected SHUTTING_DOWN, got {other:?}"),
    }
    stopped.expect("server stops cleanly");
}

#[tokio::test]
async fn a_cursor_older_than_the_pruned_log_resumes_with_marked_snapshots() {
    let mut app = spawn_app(Backend::Postgres).await;
    // Events 1 PENDING, 2 READY, 3 DATA_UPDATED, 4 REFRESHING, 5 READY (the refresh imports the
    // same data); pruning keeps only 5.
    let connection = app.ready_connection("ins_sandbox_bank", "user-p").await;
    app.connections
        .refresh_connection(pb::RefreshConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap();
    app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    let storage = app.storage().await;
    let pruned = storage.store.prune_events(linkgate::domain::now() + chrono::Duration::seconds(1), 100).await.unwrap();
    assert_eq!(pruned, 4, "all but the latest event were pruned");

    let mut stream = app
        .connections
        .watch_connections(pb::WatchConnectionsRequest { after_event_id: 1, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let first = collect_until(&mut stream, |e| !e.is_empty()).await.remove(0);
    assert!(first.snapshot, "a cursor the log cannot replay from gets the current state, marked");
    let snapshot = first.connection.unwrap();
    assert_eq!(snapshot.id, connection.id);
    assert_eq!(snapshot.state(), pb::ConnectionState::Ready);

    // Live changes after the snapshot are ordinary events.
    app.connections
        .refresh_connection(pb::RefreshConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap();
    let live = collect_until(&mut stream, |e| !e.is_empty()).await.remove(0);
    assert!(!live.snapshot);
    assert!(live.event_id > first.event_id);
}

#[tokio::test]
async fn a_ready_connection_is_fetched_again_at_the_providers_refresh_rhythm() {
    let mut app = crate::support::server::spawn_app_with(
        Backend::Sqlite,
        |s| s.providers.sandbox.refresh_interval = Duration::from_millis(400),
        None,
    )
    .await;
    let connection = app.ready_connection("ins_sandbox_bank", "user-f").await;
    let mut stream =
        app.connections.watch_connections(pb::WatchConnectionsRequest::default()).await.unwrap().into_inner();
    let first = collect_until(&mut stream, |e| !e.is_empty()).await.remove(0).connection.unwrap();
    let refreshed = collect_until(&mut stream, |e| !e.is_empty()).await.remove(0).connection.unwrap();
    assert_eq!(refreshed.id, connection.id);
    assert_eq!(refreshed.state(), pb::ConnectionState::Ready, "a scheduled refresh keeps serving");
    let synced = |c: &pb::Connection| c.last_synced_at.as_ref().map(|t| (t.seconds, t.nanos));
    assert!(synced(&refreshed) > synced(&first), "fresh data: {:?} then {:?}", synced(&first), synced(&refreshed));
}

//! The status engine across replicas: fan-out through PostgreSQL, lease takeover after a crash,
//! and one upstream poll per interval however many watch.

use crate::sandbox::RecordingSandbox;
use crate::support::database::{Backend, TestDatabase};
use crate::support::server::{PATIENCE, connect, free_port, spawn_app_with, spawn_serve, test_settings};
use linkgate::pb;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;

#[tokio::test]
async fn a_watcher_on_one_replica_sees_every_change_made_through_another_once_and_in_order() {
    // A recheck far longer than the test: only the NOTIFY path can deliver in time.
    let mut a = spawn_app_with(Backend::Postgres, |s| s.sync.events_recheck = Duration::from_secs(60), None).await;
    let mut b = a.spawn_replica().await;
    let mut watch = b.connections.watch_connections(pb::WatchConnectionsRequest::default()).await.unwrap().into_inner();

    let connection = a.ready_connection("ins_sandbox_bank", "u").await;
    a.connections
        .refresh_connection(pb::RefreshConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap();
    a.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
    a.connections
        .delete_connection(pb::DeleteConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap();

    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while seen.last().map(|(_, state, _)| *state) != Some(pb::ConnectionState::Deleted) {
            let event = watch.next().await.unwrap().unwrap().event.unwrap();
            seen.push((event.event_id, event.connection.as_ref().unwrap().state(), event.r#type()));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("replica B saw only {seen:?}"));
    let changes: Vec<_> = seen.iter().map(|(_, state, kind)| (*state, *kind)).collect();
    use pb::ConnectionEventType::{DataUpdated, StateChanged};
    use pb::ConnectionState::*;
    // The first import's data is news; the refresh's identical data is not.
    assert_eq!(
        changes,
        [
            (Pending, StateChanged),
            (Ready, StateChanged),
            (Ready, DataUpdated),
            (Refreshing, StateChanged),
            (Ready, StateChanged),
            (Deleted, StateChanged)
        ],
        "every change, once, in order"
    );
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "increasing event ids: {seen:?}");
}

#[tokio::test]
async fn a_thousand_watchers_of_one_connection_cost_one_upstream_poll_per_interval() {
    let mut sandbox = test_settings("unused").providers.sandbox;
    sandbox.import_delay = Duration::from_millis(1500);
    sandbox.poll_interval = Duration::from_millis(100);
    let (registry, counters) = RecordingSandbox::with_settings(sandbox);
    let mut app = spawn_app_with(Backend::Sqlite, |s| s.limits.tenant_max_streams = 2000, Some(registry)).await;
    let token = app.public_token("ins_sandbox_bank", "u").await;
    let connection = app.exchange("sandbox", &token).await.unwrap();
    let started = Instant::now();

    let mut streams = Vec::new();
    for _ in 0..1000 {
        let stream = app
            .connections
            .watch_connection(pb::WatchConnectionRequest { connection_id: connection.id.clone(), after_event_id: 0 })
            .await
            .unwrap()
            .into_inner();
        streams.push(stream);
    }
    let ready = futures::future::join_all(streams.iter_mut().map(|stream| async move {
        while let Some(message) = stream.next().await {
            if message.unwrap().event.unwrap().connection.unwrap().state() == pb::ConnectionState::Ready {
                return true;
            }
        }
        false
    }));
    let all_ready = tokio::time::timeout(PATIENCE, ready).await.expect("every watcher saw READY");
    assert!(all_ready.iter().all(|ready| *ready));

    let elapsed = started.elapsed();
    let polls = counters.status_checks.load(Ordering::SeqCst);
    let intervals = (elapsed.as_millis() / 100) as usize;
    assert!(polls <= intervals + 2, "{polls} status polls in {elapsed:?} ({intervals} intervals) for 1000 watchers");
    assert!(polls >= 2, "the import took several polls ({polls})");
}

fn replica(database_url: &str, key: &str, latency: &str) -> (tokio::process::Child, u16) {
    let port = free_port();
    let child = spawn_serve(|command| {
        command
            .env("LINKGATE_GRPC_ADDR", format!("127.0.0.1:{port}"))
            .env("LINKGATE_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("LINKGATE_DATABASE_URL", database_url)
            .env("LINKGATE_ENCRYPTION_KEY", key)
            .env("LINKGATE_SANDBOX_IMPORT_DELAY", "0s")
            .env("LINKGATE_SANDBOX_POLL_INTERVAL", "100ms")
            .env("LINKGATE_SANDBOX_LATENCY", latency)
            .env("LINKGATE_SYNC_TICK", "50ms")
            .env("LINKGATE_SYNC_LEASE", "2s");
    });
    (child, port)
}

async fn lease_owner(database_url: &str, connection_id: &str) -> Option<String> {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(database_url).await.unwrap();
    let (owner,): (Option<String>,) = sqlx::query_as("SELECT lease_owner FROM connections WHERE id = $1::uuid")
        .bind(connection_id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    owner
}

#[tokio::test]
async fn when_the_polling_replica_is_killed_another_takes_its_lease_and_finishes_the_work() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let key = linkgate::crypto::Sealer::generate_key();

    // Replica A answers calls but its upstream hangs: it leases the new connection and sits on it.
    let (mut a, a_port) = replica(&database.url, &key, "60s");
    let mut link = pb::link_service_client::LinkServiceClient::new(connect(a_port).await);
    let session = link
        .create_link_session(pb::CreateLinkSessionRequest {
            provider: "sandbox".into(),
            external_user_id: "u".into(),
            institution_id: "ins_sandbox_bank".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .link_session
        .unwrap();
    let credentials =
        [("username".to_owned(), "user_good".to_owned()), ("password".to_owned(), "pass_good".to_owned())];
    let token = link
        .submit_credentials(pb::SubmitCredentialsRequest {
            link_session_id: session.id,
            credentials: credentials.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .link_session
        .unwrap()
        .public_token;
    let connection = link
        .exchange_public_token(pb::ExchangePublicTokenRequest {
            provider: "sandbox".into(),
            public_token: token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .connection
        .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let a_owner = loop {
        if let Some(owner) = lease_owner(&database.url, &connection.id).await {
            break owner;
        }
        assert!(tokio::time::Instant::now() < deadline, "replica A never leased the connection");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // kill -9: no shutdown, no lease released.
    a.kill().await.unwrap();

    let (_b, b_port) = replica(&database.url, &key, "0s");
    let mut watch = pb::connection_service_client::ConnectionServiceClient::new(connect(b_port).await)
        .watch_connection(pb::WatchConnectionRequest { connection_id: connection.id.clone(), after_event_id: 0 })
        .await
        .unwrap()
        .into_inner();
    let ready = tokio::time::timeout(PATIENCE, async {
        while let Some(message) = watch.next().await {
            let connection = message.unwrap().event.unwrap().connection.unwrap();
            if connection.state() == pb::ConnectionState::Ready {
                return connection;
            }
        }
        panic!("stream ended");
    })
    .await
    .expect("replica B took over the lapsed lease and finished the import");
    assert_eq!(ready.id, connection.id);
    assert_ne!(lease_owner(&database.url, &connection.id).await.as_deref(), Some(a_owner.as_str()));
}

use linkgate_client::ConnectionEvents as Changes;

/// The next `n` events of a resumable watch, as (event id, state).
async fn take(n: usize, changes: &mut Changes) -> Vec<(i64, pb::ConnectionState)> {
    let mut got = Vec::new();
    while got.len() < n {
        let event = tokio::time::timeout(PATIENCE, changes.next()).await.expect("in time").unwrap().unwrap();
        got.push((event.event_id, event.connection.unwrap().state()));
    }
    got
}

#[tokio::test]
async fn the_rust_client_resumes_a_watch_across_a_replica_restart_without_loss_or_repeats() {
    let mut a = spawn_app_with(Backend::Postgres, |_| {}, None).await;
    let client = linkgate_client::Client::connect(&format!("http://{}", a.grpc_addr), None).await.unwrap();
    let mut changes = client.watch_connections(pb::WatchConnectionsRequest::default());

    // The stream starts on first poll: with the connection ready, it opens with a snapshot.
    let connection = a.ready_connection("ins_sandbox_bank", "u").await;
    let mut seen = take(1, &mut changes).await;

    // The watched replica goes away; changes happen elsewhere while the client is disconnected.
    let address = a.grpc_addr;
    a.shut_down().await.unwrap();
    let mut b = a.spawn_replica().await;
    b.connections
        .refresh_connection(pb::RefreshConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap();
    b.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;

    // A replica comes back where the client keeps knocking; it resumes after its last event.
    let _c = a.spawn_replica_on(address).await;
    seen.extend(take(2, &mut changes).await);

    let states: Vec<_> = seen.iter().map(|(_, state)| *state).collect();
    use pb::ConnectionState::*;
    assert_eq!(states, [Ready, Refreshing, Ready], "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "once each, in order: {seen:?}");
}

#[tokio::test]
async fn a_replica_whose_listening_connection_drops_reconnects_and_still_delivers_every_change() {
    // A recheck far longer than the test: only a reconnected listener can deliver in time.
    let mut a = spawn_app_with(Backend::Postgres, |s| s.sync.events_recheck = Duration::from_secs(60), None).await;
    let mut b = a.spawn_replica().await;
    let mut watch = b.connections.watch_connections(pb::WatchConnectionsRequest::default()).await.unwrap().into_inner();
    let connection = a.ready_connection("ins_sandbox_bank", "u").await;
    assert_eq!(next_state(&mut watch).await, pb::ConnectionState::Pending);
    assert_eq!(next_state(&mut watch).await, pb::ConnectionState::Ready);
    assert_eq!(next_state(&mut watch).await, pb::ConnectionState::Ready, "the first import's DATA_UPDATED");

    // Cut every LISTEN connection of this database, as a network blip or a proxy restart would.
    let terminated: Vec<(bool,)> = {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&crate::support::database::admin_url()).await.unwrap();
        sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND query LIKE 'LISTEN%'",
        )
        .bind(a.database_name())
        .fetch_all(&mut admin)
        .await
        .unwrap()
    };
    assert!(!terminated.is_empty(), "the replicas were listening");

    a.connections
        .refresh_connection(pb::RefreshConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(next_state(&mut watch).await, pb::ConnectionState::Refreshing);
    assert_eq!(next_state(&mut watch).await, pb::ConnectionState::Ready);
}

/// The state of the next event on a WatchConnections stream, within 10 s.
async fn next_state(watch: &mut tonic::Streaming<pb::WatchConnectionsResponse>) -> pb::ConnectionState {
    let event = tokio::time::timeout(Duration::from_secs(10), watch.next()).await.expect("delivered in time");
    event.unwrap().unwrap().event.unwrap().connection.unwrap().state()
}

#[tokio::test]
async fn a_connection_read_on_one_replica_shows_a_change_made_through_another_within_the_announcement() {
    // A recheck far longer than the test: only the announced event can drop B's cached copy.
    let mut a = spawn_app_with(Backend::Postgres, |s| s.sync.events_recheck = Duration::from_secs(60), None).await;
    let mut b = a.spawn_replica().await;
    let connection = a.ready_connection("ins_sandbox_bank", "u").await;
    let get = pb::GetConnectionRequest { connection_id: connection.id.clone() };
    for _ in 0..2 {
        // Read twice, so the second answer comes from B's copy.
        let seen = b.connections.get_connection(get.clone()).await.unwrap().into_inner().connection.unwrap();
        assert_eq!(seen.state(), pb::ConnectionState::Ready);
    }

    a.connections
        .delete_connection(pb::DeleteConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap();
    let deleted_at = Instant::now();
    loop {
        let seen = b.connections.get_connection(get.clone()).await.unwrap().into_inner().connection.unwrap();
        if seen.state() == pb::ConnectionState::Deleted {
            break;
        }
        assert!(deleted_at.elapsed() < Duration::from_secs(5), "replica B still answers {:?}", seen.state());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_replica_answers_its_own_writes_at_once_though_it_caches_reads() {
    let mut app = spawn_app_with(Backend::Postgres, |_| {}, None).await;
    let connection = app.ready_connection("ins_sandbox_bank", "u").await;
    let get = pb::GetConnectionRequest { connection_id: connection.id.clone() };
    for _ in 0..20 {
        app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
        app.connections.get_connection(get.clone()).await.unwrap();
        let refreshed = app
            .connections
            .refresh_connection(pb::RefreshConnectionRequest {
                connection_id: connection.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .connection
            .unwrap();
        let seen = app.connections.get_connection(get.clone()).await.unwrap().into_inner().connection.unwrap();
        // The sync engine may have moved it on since, but never back to the copy from before.
        let at = |c: &pb::Connection| c.updated_at.map(|t| (t.seconds, t.nanos));
        assert!(
            at(&seen) >= at(&refreshed),
            "read {:?} from before the refresh that answered {:?}",
            seen.state(),
            refreshed.state()
        );
    }
}

#[tokio::test]
async fn a_data_page_read_on_one_replica_shows_data_changed_through_another_and_every_read_is_audited() {
    use linkgate::domain::{AuditAction, Scope};
    // A recheck far longer than the test: only the announced event can drop B's kept page.
    let mut a = spawn_app_with(Backend::Postgres, |s| s.sync.events_recheck = Duration::from_secs(60), None).await;
    let writer = a.create_tenant("ledger").await;
    let reader = a.create_key("ledger", &[Scope::Standard]).await;
    a.use_key(Some(&writer));
    let mut b = a.spawn_replica().await;
    b.use_key(Some(&reader));
    let connection = a.ready_connection("ins_sandbox_bank", "u").await;
    let accounts = pb::ListAccountsRequest { connection_id: connection.id.clone(), ..Default::default() };
    let accounts = a.accounts.list_accounts(accounts).await.unwrap().into_inner().accounts;
    let checking = accounts.iter().find(|a| a.name == "Everyday Checking").expect("a checking account").id.clone();
    let first_page = pb::ListAccountTransactionsRequest {
        connection_id: connection.id.clone(),
        account_id: checking.clone(),
        page_size: 20,
        ..Default::default()
    };
    let read = |app: &mut crate::support::server::TestApp| {
        let mut accounts = app.accounts.clone();
        let request = first_page.clone();
        async move { accounts.list_account_transactions(request).await.unwrap().into_inner() }
    };
    let before = read(&mut b).await;
    assert!(!before.next_page_token.is_empty(), "a first page of several");
    assert_eq!(read(&mut b).await, before, "the same page, the second time from B's memory");

    let mut watch = a.watch(&connection.id).await;
    let refund = pb::AddTransactionRequest {
        connection_id: connection.id.clone(),
        account_id: checking,
        amount: "12.00".into(),
        description: "Refund of a kept page".into(),
        ..Default::default()
    };
    a.sandbox.add_transaction(refund).await.unwrap();
    watch.next_data_update().await;
    let has_refund = |page: &pb::ListAccountTransactionsResponse| {
        page.transactions.iter().any(|t| t.description == "Refund of a kept page")
    };
    assert!(has_refund(&read(&mut a).await), "the replica that stored the change reads it at once");
    let changed_at = Instant::now();
    let mut reads_on_b = 2;
    loop {
        reads_on_b += 1;
        if has_refund(&read(&mut b).await) {
            break;
        }
        assert!(changed_at.elapsed() < Duration::from_secs(5), "replica B still serves the page from before");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Pages from memory are audited like those from the store: one read each, naming B's key.
    let storage = a.storage().await;
    let connection_id = uuid::Uuid::parse_str(&connection.id).unwrap();
    let key_id = uuid::Uuid::try_parse(&reader[4..36]).unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let entries = storage.store.list_audit(None, Some(connection_id), 1000).await.unwrap();
        let reads = entries.iter().filter(|e| e.action == AuditAction::Read && e.api_key_id == Some(key_id)).count();
        if reads == reads_on_b {
            break;
        }
        assert!(reads < reads_on_b, "{reads} reads audited for {reads_on_b} made");
        assert!(tokio::time::Instant::now() < deadline, "{reads} of {reads_on_b} reads audited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

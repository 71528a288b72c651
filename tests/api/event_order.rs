//! The event log's promise under load: while writers on two replicas commit connection changes
//! out of id order, every WatchConnections watcher, on either replica, started at any time and
//! resuming from any cursor, is told exactly the log's events after its cursor, each once, in id
//! order, so all watchers agree on one order. The test goes through the API and the database
//! only, so it holds however the store keeps appends in order.

use crate::support::database::Backend;
use crate::support::server::{Authed, PATIENCE, TestApp, spawn_app_with};
use linkgate::domain::StoredName;
use linkgate::pb;
use linkgate::pb::connection_service_client::ConnectionServiceClient;
use linkgate::pb::sandbox_service_client::SandboxServiceClient;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio_stream::StreamExt;

/// The tables whose inserts are delayed at random, each row up to 30 ms before its transaction can
/// commit. The sequencer's inbox, which every connection change appends its event to inside its
/// own transaction: writers that appended later commit first. And the log, which the sequencer
/// moves committed events into: each move then takes a random while, as on a loaded database,
/// with both replicas' sequencers and the writers running meanwhile.
const DELAYED_TABLES: [&str; 2] = ["connection_event_inbox", "connection_events"];

/// Writers, half on each replica, each changing a connection of its own.
const WRITERS: usize = 16;
/// Rounds each writer makes. A round is a refresh (REFRESHING, then READY once the sync engine
/// imports) and a consent change (its own event, then READY from the poll it makes due): three
/// events at least, since a READY may answer both a consent change and the next refresh.
const ROUNDS: usize = 4;
/// Events of making each writer's connection: PENDING, READY and its first DATA_UPDATED.
const EVENTS_OF_A_NEW_CONNECTION: usize = 3;
/// Watchers: one from the start on each replica, the rest started while the writers write.
const WATCHERS: usize = 8;
/// Mid-run watchers start after this many more events each, so they start at different points.
const EVENTS_BETWEEN_STARTS: usize = 30;
/// The log counts as settled once it has not changed for this long.
const SETTLED: Duration = Duration::from_secs(1);
/// How long a watcher that has the log's last event is read on, for repeats.
const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn every_watcher_on_either_replica_gets_the_logs_events_after_its_cursor_once_in_order() {
    let mut a = spawn_app_with(Backend::Postgres, |s| s.providers.sandbox.import_delay = Duration::ZERO, None).await;
    let mut b = a.spawn_replica().await;
    let db = PgPool::connect(&a.settings().database.database_url).await.expect("database answers");
    delay_appends(&db).await;
    let watch_clients = [a.connections.clone(), b.connections.clone()];

    // Watchers learn the log's last event only once the writers are done and the log settled.
    let (last_event, last_event_told) = watch::channel(None);
    let progress = Arc::new(Mutex::new(Vec::new()));
    let mut watchers = vec![
        Watcher::start("1 (A, from the start)", &watch_clients[0], 0, Some(progress.clone()), &last_event_told).await,
        Watcher::start("2 (B, from the start)", &watch_clients[1], 0, None, &last_event_told).await,
    ];

    let writers = async {
        // Each replica makes half the connections, both at once, then every writer changes its own.
        let (on_a, on_b) = tokio::join!(new_connections(&mut a, &db, "a"), new_connections(&mut b, &db, "b"));
        let writes = on_a
            .into_iter()
            .map(|id| write(a.connections.clone(), a.sandbox.clone(), &db, id))
            .chain(on_b.into_iter().map(|id| write(b.connections.clone(), b.sandbox.clone(), &db, id)));
        futures::future::join_all(writes).await;
    };
    let mid_run_watchers = async {
        let mut started = Vec::new();
        for number in watchers.len() + 1..=WATCHERS {
            let wanted = (number - watchers.len()) * EVENTS_BETWEEN_STARTS;
            within(format!("watcher 1 being told {wanted} events"), async {
                while progress.lock().unwrap().len() < wanted {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
            // Two start from 0, so with a snapshot of the connections made so far; the rest resume
            // after an event already told.
            let cursor = match number {
                3 | 4 => 0,
                _ => {
                    let seen = progress.lock().unwrap();
                    seen[rand::random_range(0..seen.len())]
                }
            };
            let replica = number % 2;
            let from = if cursor == 0 { "from a snapshot".to_owned() } else { format!("after event {cursor}") };
            let name = format!("{number} ({}, {from})", ["A", "B"][replica]);
            started.push(Watcher::start(&name, &watch_clients[replica], cursor, None, &last_event_told).await);
        }
        started
    };
    let ((), started) = tokio::join!(writers, mid_run_watchers);
    watchers.extend(started);

    let truth = settled_log(&db).await;
    let minimum = WRITERS * (EVENTS_OF_A_NEW_CONNECTION + 3 * ROUNDS);
    assert!(truth.len() >= minimum, "the log holds {} events, the writers made at least {minimum}", truth.len());
    last_event.send_replace(truth.last().map(|event| event.event_id));

    let mut failures = Vec::new();
    for watcher in watchers {
        let told = watcher.task.await.expect("watcher task");
        let expected = expected(&truth, watcher.cursor, &told);
        if let Some(difference) = difference(&expected, &told) {
            failures.push(format!("watcher {}: {difference}", watcher.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {WATCHERS} watchers were told otherwise than the log's {} events:\n{}",
        failures.len(),
        truth.len(),
        failures.join("\n")
    );
}

/// Makes every insert into [`DELAYED_TABLES`] sleep up to 30 ms once its row is written, before
/// its transaction can commit.
async fn delay_appends(db: &PgPool) {
    let function = "CREATE FUNCTION delay_append() RETURNS trigger LANGUAGE plpgsql AS \
                    $$ BEGIN PERFORM pg_sleep(random() * 0.03); RETURN NULL; END $$";
    sqlx::raw_sql(function).execute(db).await.expect("delay function installed");
    for table in DELAYED_TABLES {
        let trigger =
            format!("CREATE TRIGGER delay_append AFTER INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION delay_append()");
        sqlx::raw_sql(sqlx::AssertSqlSafe(trigger)).execute(db).await.expect("delay trigger installed");
    }
}

/// Half the writers' connections, made through `app`, READY; their ids.
async fn new_connections(app: &mut TestApp, db: &PgPool, replica: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for writer in 0..WRITERS / 2 {
        let user = format!("writer-{replica}-{writer}");
        let token = within(format!("link of {user}"), app.public_token("ins_sandbox_bank", &user)).await;
        let exchanged = within(format!("exchange of {user}"), app.exchange("sandbox", &token)).await;
        let id = exchanged.unwrap_or_else(|status| panic!("exchange of {user}: {status:?}")).id;
        stored_ready(db, &id).await;
        ids.push(id);
    }
    ids
}

/// Waits until connection `id` is stored READY. Read from the database, not a watch, so the
/// writers go on whatever the watchers are told.
async fn stored_ready(db: &PgPool, id: &str) {
    within(format!("connection {id} becoming READY"), async {
        loop {
            let (state,): (String,) = sqlx::query_as("SELECT state FROM connections WHERE id = $1::uuid")
                .bind(id)
                .fetch_one(db)
                .await
                .expect("the connection reads");
            if state == "ready" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// One writer's [`ROUNDS`] on connection `id`.
async fn write(
    mut connections: ConnectionServiceClient<Authed>,
    mut sandbox: SandboxServiceClient<Authed>,
    db: &PgPool,
    id: String,
) {
    for _ in 0..ROUNDS {
        let refresh = pb::RefreshConnectionRequest { connection_id: id.clone(), ..Default::default() };
        within(format!("refresh of {id}"), connections.refresh_connection(refresh))
            .await
            .unwrap_or_else(|status| panic!("refresh of {id}: {status:?}"));
        stored_ready(db, &id).await;
        // Far beyond the warning lead time, so the consent calendar adds no events of its own.
        let expires = SystemTime::now() + Duration::from_secs(365 * 86_400);
        let consent = pb::SetConsentExpiryRequest {
            connection_id: id.clone(),
            consent_expires_at: Some(prost_types::Timestamp::from(expires)),
        };
        within(format!("consent change of {id}"), sandbox.set_consent_expiry(consent))
            .await
            .unwrap_or_else(|status| panic!("consent change of {id}: {status:?}"));
    }
}

/// An event as a watcher was told it, or as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Event {
    event_id: i64,
    connection_id: String,
    state: pb::ConnectionState,
    kind: pb::ConnectionEventType,
    snapshot: bool,
}

impl From<pb::ConnectionEvent> for Event {
    fn from(event: pb::ConnectionEvent) -> Self {
        let connection = event.connection.as_ref().expect("an event carries its connection");
        Event {
            event_id: event.event_id,
            connection_id: connection.id.clone(),
            state: connection.state(),
            kind: event.r#type(),
            snapshot: event.snapshot,
        }
    }
}

/// A WatchConnections stream being read into a list by a task of its own.
struct Watcher {
    name: String,
    cursor: i64,
    task: tokio::task::JoinHandle<Vec<Event>>,
}

impl Watcher {
    /// Opens a stream after `cursor` (0: from a snapshot) and reads it until it has the log's last
    /// event, once `last_event` tells it, and [`QUIET`] longer. The event ids it is told go to
    /// `progress` when given, for the test to pace itself and draw cursors from.
    async fn start(
        name: &str,
        client: &ConnectionServiceClient<Authed>,
        cursor: i64,
        progress: Option<Arc<Mutex<Vec<i64>>>>,
        last_event: &watch::Receiver<Option<i64>>,
    ) -> Watcher {
        let request = pb::WatchConnectionsRequest { after_event_id: cursor, ..Default::default() };
        let mut stream = within(format!("watcher {name} starting"), client.clone().watch_connections(request))
            .await
            .unwrap_or_else(|status| panic!("watcher {name} refused: {status:?}"))
            .into_inner();
        let mut last_event = last_event.clone();
        let name = name.to_owned();
        let task = tokio::spawn({
            let name = name.clone();
            async move {
                let mut told: Vec<Event> = Vec::new();
                let mut deadline = None;
                loop {
                    let last = *last_event.borrow_and_update();
                    if let Some(last) = last {
                        if cursor >= last || told.last().is_some_and(|event| event.event_id >= last) {
                            break;
                        }
                        deadline.get_or_insert(tokio::time::Instant::now() + PATIENCE);
                    }
                    let give_up = async {
                        match deadline {
                            Some(deadline) => tokio::time::sleep_until(deadline).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        message = stream.next() => {
                            let event = match message {
                                Some(Ok(message)) => Event::from(message.event.expect("a message carries its event")),
                                Some(Err(status)) => panic!("watcher {name} failed: {status:?}"),
                                None => panic!("watcher {name}'s stream ended"),
                            };
                            if let Some(progress) = &progress {
                                progress.lock().unwrap().push(event.event_id);
                            }
                            told.push(event);
                        }
                        _ = last_event.changed() => {}
                        _ = give_up => panic!(
                            "watcher {name} lacked event {last:?} {PATIENCE:?} after the log settled; \
                             it had {} events, the last {:?}",
                            told.len(),
                            told.last()
                        ),
                    }
                }
                // Nothing is appended any more: whatever still comes is told twice.
                while let Ok(Some(message)) = tokio::time::timeout(QUIET, stream.next()).await {
                    let message = message.unwrap_or_else(|status| panic!("watcher {name} failed: {status:?}"));
                    told.push(Event::from(message.event.expect("a message carries its event")));
                }
                told
            }
        });
        Watcher { name, cursor, task }
    }
}

/// The log of the test's tenant in id order, once settled: every connection READY, the inbox
/// empty, and nothing appended for [`SETTLED`].
async fn settled_log(db: &PgPool) -> Vec<Event> {
    let mut log: Vec<Event> = Vec::new();
    let mut unchanged_since = tokio::time::Instant::now();
    within("the log settling", async {
        loop {
            let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
                "SELECT id, connection_id::text, state, event_type FROM connection_events \
                 WHERE tenant_id = (SELECT tenant_id FROM connections LIMIT 1) ORDER BY id",
            )
            .fetch_all(db)
            .await
            .expect("the log reads");
            // Settled: every connection READY and no event still waiting in the inbox (a move
            // slowed by the delay trigger keeps its rows there, uncommitted, for a while).
            let (unsettled,): (i64,) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM connections WHERE state <> 'ready') \
                 + (SELECT COUNT(*) FROM connection_event_inbox)",
            )
            .fetch_one(db)
            .await
            .expect("the connections and the inbox count");
            let now = rows.into_iter().map(logged).collect();
            if now != log || unsettled > 0 {
                log = now;
                unchanged_since = tokio::time::Instant::now();
            } else if unchanged_since.elapsed() >= SETTLED {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let connections: HashSet<&str> = log.iter().map(|event| event.connection_id.as_str()).collect();
    assert_eq!(connections.len(), WRITERS, "the log holds the writers' connections");
    log
}

/// A row of the log as an [`Event`].
fn logged((event_id, connection_id, state, kind): (i64, String, String, String)) -> Event {
    let state = linkgate::domain::ConnectionState::from_name(&state).expect("a stored state");
    let kind = linkgate::domain::ConnectionEventType::from_name(&kind).expect("a stored event type");
    Event { event_id, connection_id, state: state.into(), kind: kind.into(), snapshot: false }
}

/// What a watcher from `cursor` must have been told, given the log `truth` and what it was told
/// (`told`). After a cursor: the log's later events. From 0: first a snapshot, each connection's
/// latest event as of the log's end when the stream started (without deleted connections),
/// oldest first, marked, with no type; then the events after that point. That point is the log
/// event just before the first one told live (the log's last if none was).
fn expected(truth: &[Event], cursor: i64, told: &[Event]) -> Vec<Event> {
    if cursor > 0 {
        return truth.iter().filter(|event| event.event_id > cursor).cloned().collect();
    }
    let as_of = match told.iter().find(|event| !event.snapshot) {
        Some(first_live) => {
            truth.iter().map(|event| event.event_id).filter(|id| *id < first_live.event_id).max().unwrap_or(0)
        }
        None => truth.last().map_or(0, |event| event.event_id),
    };
    let mut latest: HashMap<&str, &Event> = HashMap::new();
    for event in truth.iter().filter(|event| event.event_id <= as_of) {
        latest.insert(&event.connection_id, event);
    }
    let mut snapshot: Vec<Event> = latest
        .into_values()
        .filter(|event| event.state != pb::ConnectionState::Deleted)
        .map(|event| Event { kind: pb::ConnectionEventType::Unspecified, snapshot: true, ..event.clone() })
        .collect();
    snapshot.sort_by_key(|event| event.event_id);
    snapshot.extend(truth.iter().filter(|event| event.event_id > as_of).cloned());
    snapshot
}

/// How `told` differs from `expected`, or `None` when it does not.
fn difference(expected: &[Event], told: &[Event]) -> Option<String> {
    if expected == told {
        return None;
    }
    let at = expected.iter().zip(told).position(|(e, t)| e != t).unwrap_or(expected.len().min(told.len()));
    let told_ids: HashSet<i64> = told.iter().map(|event| event.event_id).collect();
    let missing: Vec<i64> =
        expected.iter().map(|event| event.event_id).filter(|id| !told_ids.contains(id)).take(10).collect();
    let mut once = HashSet::new();
    let repeated: Vec<i64> = told.iter().map(|event| event.event_id).filter(|id| !once.insert(*id)).take(10).collect();
    Some(format!(
        "{} events expected, {} told; first difference at #{at}: expected {:?}, told {:?}; \
         missing ids (first 10) {missing:?}; repeated ids (first 10) {repeated:?}",
        expected.len(),
        told.len(),
        expected.get(at),
        told.get(at)
    ))
}

/// `future`, which must finish within [`PATIENCE`]: `what` names it if it does not.
async fn within<T>(what: impl Display, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future).await.unwrap_or_else(|_| panic!("{what} took more than {PATIENCE:?}"))
}

//! The event log: appended in id order even under concurrent writers, pruned behind a horizon,
//! read after a cursor, tailed, and read as each connection's current state.

use super::*;

/// The property the watch streams stand on: a reader that has seen event N has seen every event
/// before it. Here a writer holds an uncommitted event (as a slow transaction would) while the
/// store writes another; a reader following the log ("after the last id I saw", as the tailer
/// and resuming watchers read) must still get both. Were the later id allowed to commit first,
/// the reader would step past the earlier one and never see it.
#[tokio::test]
async fn on_postgres_a_slow_writer_cannot_be_overtaken_so_log_readers_miss_nothing() {
    use sqlx::Connection as _;
    let (store, database) = open(Backend::Postgres).await;
    let tenant = new_tenant();
    let first = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    let second = new_connection(&*store, tenant, "user-2", PROVIDER).await;
    let start = store.last_event_id().await.unwrap();

    // The slow writer takes the lock first, as the store's own append would, and pauses.
    let mut slow = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let mut transaction = slow.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(4242001)").execute(&mut *transaction).await.unwrap();

    // A fast writer through the store, concurrently: it must wait for the lock before it draws
    // its event's id, or the slow writer's later id would commit first.
    let fast = tokio::spawn({
        let store = store.clone();
        let next = moved(&second, ConnectionState::Ready);
        async move {
            store
                .save_connection(&next, None, None, ConnectionEventType::StateChanged)
                .await
                .unwrap()
                .expect("saved")
                .event_id
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (slow_id,): (i64,) = sqlx::query_as(
        "INSERT INTO connection_events (tenant_id, connection_id, provider, external_user_id, state, snapshot, \
         occurred_at) SELECT tenant_id, id, provider, external_user_id, state, snapshot, now() FROM connections \
         WHERE id = $1 RETURNING id",
    )
    .bind(first.id)
    .fetch_one(&mut *transaction)
    .await
    .unwrap();

    // A reader follows the log while the slow writer has not committed.
    let mut cursor = start;
    let mut seen = Vec::new();
    for event in store.tail_events(cursor, 100).await.unwrap() {
        cursor = event.event_id;
        seen.push(event.event_id);
    }
    transaction.commit().await.unwrap();
    let fast_id = fast.await.unwrap();
    for event in store.tail_events(cursor, 100).await.unwrap() {
        seen.push(event.event_id);
    }
    assert!(slow_id < fast_id, "ids are taken in lock order");
    assert_eq!(seen, [slow_id, fast_id], "the reader saw both events, once, in order");
}

async fn pruning_keeps_each_live_connections_latest_event_and_records_the_horizon(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let live = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    let gone = new_connection(&*store, tenant, "user-2", PROVIDER).await;
    let (ready, _) = save_in_state(&*store, &live, ConnectionState::Ready).await;
    store.delete_connection(&moved(&gone, ConnectionState::Deleted)).await.unwrap().expect("deleted");
    let latest_of_live = store.tail_events(0, 100).await.unwrap().into_iter().rfind(|e| e.connection.id == live.id);
    assert_eq!(store.pruned_through().await.unwrap(), 0);

    let pruned = store.prune_events(now() + Duration::seconds(1), 100).await.unwrap();
    let left = store.tail_events(0, 100).await.unwrap();
    assert_eq!(left.len(), 1, "only the live connection's latest event is kept: {left:?}");
    assert_eq!(Some(&left[0]), latest_of_live.as_ref());
    assert_eq!(left[0].connection, ready);
    assert_eq!(pruned, 3, "the live connection's first event and both of the deleted one's");
    assert!(store.pruned_through().await.unwrap() > 0);
    let current = store.current_events(tenant, &EventFilter::default(), i64::MAX, 0, 100).await.unwrap();
    assert_eq!(current.len(), 1, "the current state survives pruning");

    // Nothing newer than the cutoff is touched.
    assert_eq!(store.prune_events(now() - Duration::days(1), 100).await.unwrap(), 0);
}
conformance!(pruning_keeps_each_live_connections_latest_event_and_records_the_horizon);

/// Two tenants' connections and their events, in the order they happened.
struct History {
    tenant: TenantId,
    other_tenant: TenantId,
    /// Tenant's user-1 at the sandbox.
    first: Connection,
    /// Tenant's user-2 at vumi.
    second: Connection,
    /// Events: first created, other tenant's created, second created, first ready, second ready.
    events: Vec<ConnectionEvent>,
}

async fn history(store: &dyn Store) -> History {
    let (tenant, other_tenant) = (new_tenant(), new_tenant());
    let first = connection(tenant, "user-1", PROVIDER);
    let foreign = connection(other_tenant, "user-1", PROVIDER);
    let second = connection(tenant, "user-2", "vumi");
    let mut events = vec![
        create_connection(store, &first, now()).await,
        create_connection(store, &foreign, now()).await,
        create_connection(store, &second, now()).await,
    ];
    let (first, event) = save_in_state(store, &first, ConnectionState::Ready).await;
    events.push(event);
    let (second, event) = save_in_state(store, &second, ConnectionState::Ready).await;
    events.push(event);
    History { tenant, other_tenant, first, second, events }
}

async fn events_after_returns_the_tenants_later_events_in_order(store: Arc<dyn Store>) {
    let History { tenant, other_tenant, first, second, events } = history(&*store).await;
    let after = async |tenant: TenantId, filter: EventFilter, after: i64, limit: i64| {
        store.events_after(tenant, &filter, after, limit).await.unwrap()
    };
    let pick = |indexes: &[usize]| indexes.iter().map(|&i| events[i].clone()).collect::<Vec<_>>();
    let all = EventFilter::default();

    assert_eq!(after(tenant, all.clone(), 0, 100).await, pick(&[0, 2, 3, 4]));
    assert_eq!(after(tenant, all.clone(), events[2].event_id, 100).await, pick(&[3, 4]), "only later events");
    assert_eq!(after(tenant, all.clone(), 0, 2).await, pick(&[0, 2]), "the oldest up to the limit");
    assert_eq!(after(tenant, all.clone(), events[4].event_id, 100).await, pick(&[]));
    assert_eq!(after(other_tenant, all.clone(), 0, 100).await, pick(&[1]));

    let by_connection = EventFilter { connection_id: Some(first.id), ..EventFilter::default() };
    assert_eq!(after(tenant, by_connection.clone(), 0, 100).await, pick(&[0, 3]));
    assert_eq!(after(other_tenant, by_connection, 0, 100).await, pick(&[]), "another tenant's connection");
    let by_user = EventFilter { external_user_id: Some("user-2".to_owned()), ..EventFilter::default() };
    assert_eq!(after(tenant, by_user, 0, 100).await, pick(&[2, 4]));
    let by_provider = EventFilter { provider: Some(PROVIDER.to_owned()), ..EventFilter::default() };
    assert_eq!(after(tenant, by_provider, 0, 100).await, pick(&[0, 3]));
    let mismatched = EventFilter { connection_id: Some(second.id), provider: Some(PROVIDER.to_owned()), ..all };
    assert_eq!(after(tenant, mismatched, 0, 100).await, pick(&[]), "filters combine");
}
conformance!(events_after_returns_the_tenants_later_events_in_order);

async fn tail_events_returns_every_tenants_events_in_order(store: Arc<dyn Store>) {
    let History { events, .. } = history(&*store).await;
    assert_eq!(store.tail_events(0, 100).await.unwrap(), events);
    assert_eq!(store.tail_events(events[1].event_id, 2).await.unwrap(), events[2..4].to_vec());
    assert_eq!(store.tail_events(events[4].event_id, 100).await.unwrap(), Vec::new());
}
conformance!(tail_events_returns_every_tenants_events_in_order);

async fn last_event_id_is_the_newest_event_or_zero(store: Arc<dyn Store>) {
    assert_eq!(store.last_event_id().await.unwrap(), 0, "an empty store");
    let History { events, .. } = history(&*store).await;
    let newest = events.iter().map(|e| e.event_id).max().unwrap();
    assert_eq!(store.last_event_id().await.unwrap(), newest);
}
conformance!(last_event_id_is_the_newest_event_or_zero);

async fn current_events_hold_the_latest_event_of_each_live_connection(store: Arc<dyn Store>) {
    let History { tenant, other_tenant, first, second, events } = history(&*store).await;
    let current = async |tenant: TenantId, filter: EventFilter| {
        store.current_events(tenant, &filter, i64::MAX, 0, 100).await.unwrap()
    };
    let all = EventFilter::default();

    assert_eq!(current(tenant, all.clone()).await, vec![events[3].clone(), events[4].clone()]);
    assert_eq!(current(other_tenant, all.clone()).await, vec![events[1].clone()]);
    let by_user = EventFilter { external_user_id: Some("user-2".to_owned()), ..EventFilter::default() };
    assert_eq!(current(tenant, by_user).await, vec![events[4].clone()]);

    let (refreshed, refresh) = save_in_state(&*store, &first, ConnectionState::Refreshing).await;
    assert_eq!(current(tenant, all.clone()).await, vec![events[4].clone(), refresh], "oldest first");

    let deleted = store.delete_connection(&moved(&second, ConnectionState::Deleted)).await.unwrap().expect("deleted");
    let (_, refresh) = save_in_state(&*store, &refreshed, ConnectionState::Ready).await;
    assert_eq!(current(tenant, all).await, vec![refresh], "a deleted connection is left out");
    let named = EventFilter { connection_id: Some(second.id), ..EventFilter::default() };
    assert_eq!(current(tenant, named).await, vec![deleted], "unless the filter names it");
    let by_provider = EventFilter { provider: Some("vumi".to_owned()), ..EventFilter::default() };
    assert_eq!(current(tenant, by_provider).await, Vec::new(), "a filter that does not name it");
}
conformance!(current_events_hold_the_latest_event_of_each_live_connection);

async fn current_events_read_in_pages_stay_the_state_as_of_their_event(store: Arc<dyn Store>) {
    let History { tenant, first, events, .. } = history(&*store).await;
    let all = EventFilter::default();
    let as_of = store.last_event_id().await.unwrap();
    let page = async |after: i64| store.current_events(tenant, &all, as_of, after, 1).await.unwrap();

    // A change after `as_of` moves no page: the snapshot stays the moment it began.
    save_in_state(&*store, &first, ConnectionState::Refreshing).await;
    let one = page(0).await;
    assert_eq!(one, vec![events[3].clone()], "one event per page, oldest first");
    let two = page(one[0].event_id).await;
    assert_eq!(two, vec![events[4].clone()], "the next page starts after the last one read");
    assert_eq!(page(two[0].event_id).await, Vec::new(), "then nothing");
}
conformance!(current_events_read_in_pages_stay_the_state_as_of_their_event);

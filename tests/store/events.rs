//! The event log: numbered in the order readers see it although writers commit concurrently,
//! pruned behind a horizon, read after a cursor, tailed, and read as each connection's current
//! state.

use super::*;

/// The property the watch streams stand on: a reader that has seen event N has seen every event
/// before it, although writers commit concurrently, without waiting for one another. Here a
/// writer holds an uncommitted event in the inbox (as a slow transaction would) while the store
/// saves another connection: the save must not wait for it, and a reader following the log
/// ("after the last id I saw", as the tailer and resuming watchers read) must still get both
/// events, once each. Were the slow event numbered by its append, it would carry the lower id and
/// commit after the reader had stepped past it.
#[tokio::test]
async fn on_postgres_a_slow_writer_neither_blocks_others_nor_is_skipped_by_log_readers() {
    use sqlx::Connection as _;
    let (store, database) = open(Backend::Postgres).await;
    let tenant = new_tenant();
    let first = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    let second = new_connection(&*store, tenant, "user-2", PROVIDER).await;
    let start = last_event_id(&*store).await;

    // The slow writer appends its event and pauses before committing.
    let mut slow = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let mut transaction = slow.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO connection_event_inbox (tenant_id, connection_id, provider, external_user_id, state, snapshot, \
         occurred_at, event_type) SELECT tenant_id, id, provider, external_user_id, state, snapshot, now(), \
         'state_changed' FROM connections WHERE id = $1",
    )
    .bind(first.id)
    .execute(&mut *transaction)
    .await
    .unwrap();

    // A fast writer through the store commits meanwhile, without waiting.
    let next = moved(&second, ConnectionState::Ready);
    let save = store.save_connection(&next, None, None, ConnectionEventType::StateChanged);
    let saved = tokio::time::timeout(std::time::Duration::from_secs(5), save).await;
    assert!(saved.expect("a writer does not wait for another's commit").unwrap());

    // A reader follows the log while the slow writer has not committed.
    sequence(&*store).await;
    let mut cursor = start;
    let mut seen = Vec::new();
    for event in store.tail_events(cursor, 100).await.unwrap() {
        cursor = event.event_id;
        seen.push((event.event_id, event.connection.id));
    }
    assert_eq!(seen.iter().map(|(_, id)| *id).collect::<Vec<_>>(), [second.id], "only the committed event");
    transaction.commit().await.unwrap();
    sequence(&*store).await;
    for event in store.tail_events(cursor, 100).await.unwrap() {
        seen.push((event.event_id, event.connection.id));
    }
    let order: Vec<Uuid> = seen.iter().map(|(_, id)| *id).collect();
    assert_eq!(order, [second.id, first.id], "the reader saw both events, once, in the order they were numbered");
    assert!(seen[0].0 < seen[1].0, "ids grow in the order readers see them: {seen:?}");
}

/// Sequencing moves only what committed, numbers it in inbox order, and leaves nothing behind;
/// a second pass finds nothing. On SQLite events are in the log at once.
async fn sequencing_numbers_committed_events_in_the_order_they_were_appended(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let connections = [
        new_connection(&*store, tenant, "user-1", PROVIDER).await,
        new_connection(&*store, tenant, "user-2", PROVIDER).await,
        new_connection(&*store, tenant, "user-3", PROVIDER).await,
    ];
    let before = last_event_id(&*store).await;
    for connection in &connections {
        let next = moved(connection, ConnectionState::Ready);
        assert!(store.save_connection(&next, None, None, ConnectionEventType::StateChanged).await.unwrap());
    }
    sequence(&*store).await;
    assert_eq!(store.sequence_events(1000).await.unwrap(), 0, "nothing is left to move");
    let tailed = store.tail_events(before, 100).await.unwrap();
    let order: Vec<Uuid> = tailed.iter().map(|e| e.connection.id).collect();
    assert_eq!(order, connections.iter().map(|c| c.id).collect::<Vec<_>>(), "in the order they were appended");
    assert!(tailed.iter().all(|e| e.connection.state == ConnectionState::Ready));
}
conformance!(sequencing_numbers_committed_events_in_the_order_they_were_appended);

async fn pruning_keeps_each_live_connections_latest_event_and_records_the_horizon(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let live = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    let gone = new_connection(&*store, tenant, "user-2", PROVIDER).await;
    let (ready, _) = save_in_state(&*store, &live, ConnectionState::Ready).await;
    assert!(store.delete_connection(&moved(&gone, ConnectionState::Deleted)).await.unwrap(), "deleted");
    sequence(&*store).await;
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
    assert_eq!(last_event_id(&*store).await, 0, "an empty store");
    let History { events, .. } = history(&*store).await;
    let newest = events.iter().map(|e| e.event_id).max().unwrap();
    assert_eq!(last_event_id(&*store).await, newest);
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

    let deleted_state = moved(&second, ConnectionState::Deleted);
    assert!(store.delete_connection(&deleted_state).await.unwrap(), "deleted");
    let deleted = latest_event(&*store, &deleted_state).await;
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
    let as_of = last_event_id(&*store).await;
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

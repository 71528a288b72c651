//! Connections: created, read and listed within their tenant, saved with their data, deleted, and
//! leased, due ones in batches and one at a time; leases never hand out the same work twice.

use super::*;

async fn a_created_connection_reads_back_only_for_its_tenant(store: Arc<dyn Store>) {
    let (tenant, other_tenant) = (new_tenant(), new_tenant());
    let created = connection(tenant, "user-1", PROVIDER);
    let event = create_connection(&*store, &created, now()).await;
    assert_eq!(event.connection, created);
    assert_eq!(event.occurred_at, created.updated_at);

    assert_eq!(store.get_connection(tenant, created.id).await.unwrap(), Some(created.clone()));
    assert_eq!(store.connection_handle(tenant, created.id).await.unwrap(), Some(handle_of(&created)));
    let listed = store.list_connections(tenant, &ConnectionFilter::default(), &first_page(10)).await.unwrap();
    assert_eq!(listed.items, vec![created.clone()]);

    assert_eq!(store.get_connection(other_tenant, created.id).await.unwrap(), None);
    assert_eq!(store.connection_handle(other_tenant, created.id).await.unwrap(), None);
    let listed = store.list_connections(other_tenant, &ConnectionFilter::default(), &first_page(10)).await.unwrap();
    assert!(listed.items.is_empty());

    // Writes through another tenant change nothing either.
    let mut foreign = moved(&created, ConnectionState::Ready);
    foreign.tenant_id = other_tenant;
    assert!(!store.save_connection(&foreign, None, None, ConnectionEventType::StateChanged).await.unwrap());
    foreign.state = ConnectionState::Deleted;
    assert!(!store.delete_connection(&foreign).await.unwrap());
    sequence(&*store).await;
    assert_eq!(store.get_connection(tenant, created.id).await.unwrap(), Some(created.clone()));
    assert_eq!(store.connection_handle(tenant, created.id).await.unwrap(), Some(handle_of(&created)));
    assert_eq!(last_event_id(&*store).await, event.event_id, "no event appended");
}
conformance!(a_created_connection_reads_back_only_for_its_tenant);

async fn every_connection_change_appends_an_event_with_a_higher_id(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let first = connection(tenant, "user-1", PROVIDER);
    let second = connection(tenant, "user-2", PROVIDER);
    let mut events = vec![create_connection(&*store, &first, now()).await];
    events.push(create_connection(&*store, &second, now()).await);
    let (ready, saved) = save_in_state(&*store, &first, ConnectionState::Ready).await;
    assert_eq!(saved.connection, ready);
    events.push(saved);
    let mut failed = moved(&second, ConnectionState::Error);
    failed.error = Some(ConnectionError {
        reason: ErrorReason::LoginRequired,
        message: "Sign in again.".to_owned(),
        retryable: false,
        user_action_required: true,
    });
    assert!(store.save_connection(&failed, None, None, ConnectionEventType::StateChanged).await.unwrap());
    events.push(latest_event(&*store, &failed).await);
    let deleted = moved(&ready, ConnectionState::Deleted);
    assert!(store.delete_connection(&deleted).await.unwrap(), "deleted");
    events.push(latest_event(&*store, &deleted).await);
    assert_eq!(events.last().map(|e| e.connection.state), Some(ConnectionState::Deleted));

    let event_ids: Vec<i64> = events.iter().map(|e| e.event_id).collect();
    assert!(event_ids.windows(2).all(|w| w[0] < w[1]), "event ids increase: {event_ids:?}");
    assert_eq!(store.tail_events(0, 100).await.unwrap(), events, "events read back as returned");
}
conformance!(every_connection_change_appends_an_event_with_a_higher_id);

async fn listing_connections_pages_newest_first_without_gaps_or_repeats(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let mut created = Vec::new();
    for user in ["user-1", "user-2", "user-3", "user-4", "user-5"] {
        created.push(new_connection(&*store, tenant, user, PROVIDER).await.id);
    }
    new_connection(&*store, new_tenant(), "user-1", PROVIDER).await;
    created.reverse();

    let filter = ConnectionFilter::default();
    for size in [1, 2, 5] {
        let (listed, pages) =
            all_pages(size, async |page| store.list_connections(tenant, &filter, &page).await.unwrap()).await;
        assert_eq!(connection_ids(&listed), created, "pages of {size}");
        assert_eq!(pages, created.len().div_ceil(size), "pages of {size}");
    }
}
conformance!(listing_connections_pages_newest_first_without_gaps_or_repeats);

async fn listing_connections_filters_by_user_provider_and_state(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let ready = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    save_in_state(&*store, &ready, ConnectionState::Ready).await;
    let pending = new_connection(&*store, tenant, "user-2", PROVIDER).await;
    let other_provider = new_connection(&*store, tenant, "user-1", "vumi").await;
    save_in_state(&*store, &other_provider, ConnectionState::Stale).await;
    new_connection(&*store, new_tenant(), "user-1", PROVIDER).await;

    let list = async |filter: ConnectionFilter| {
        let (listed, _) =
            all_pages(10, async |page| store.list_connections(tenant, &filter, &page).await.unwrap()).await;
        connection_ids(&listed)
    };
    let filter = |user: Option<&str>, provider: Option<&str>, state: Option<ConnectionState>| ConnectionFilter {
        external_user_id: user.map(str::to_owned),
        provider: provider.map(str::to_owned),
        state,
    };
    assert_eq!(list(filter(None, None, None)).await, vec![other_provider.id, pending.id, ready.id]);
    assert_eq!(list(filter(Some("user-1"), None, None)).await, vec![other_provider.id, ready.id]);
    assert_eq!(list(filter(None, Some(PROVIDER), None)).await, vec![pending.id, ready.id]);
    assert_eq!(list(filter(None, None, Some(ConnectionState::Ready))).await, vec![ready.id]);
    assert_eq!(list(filter(None, None, Some(ConnectionState::Pending))).await, vec![pending.id]);
    assert_eq!(list(filter(Some("user-1"), Some(PROVIDER), Some(ConnectionState::Ready))).await, vec![ready.id]);
    assert_eq!(list(filter(Some("user-2"), Some("vumi"), None)).await, Vec::<Uuid>::new());
    assert_eq!(list(filter(None, None, Some(ConnectionState::Error))).await, Vec::<Uuid>::new());
}
conformance!(listing_connections_filters_by_user_provider_and_state);

async fn deleted_connections_are_listed_only_when_asked_for(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let kept = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    let removed = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    let deleted = moved(&removed, ConnectionState::Deleted);
    assert!(store.delete_connection(&deleted).await.unwrap(), "deleted");

    let list = async |state: Option<ConnectionState>| {
        let filter = ConnectionFilter { state, ..ConnectionFilter::default() };
        store.list_connections(tenant, &filter, &first_page(10)).await.unwrap().items
    };
    assert_eq!(connection_ids(&list(None).await), vec![kept.id]);
    assert_eq!(list(Some(ConnectionState::Deleted)).await, vec![deleted.clone()]);
    assert_eq!(store.get_connection(tenant, removed.id).await.unwrap(), Some(deleted), "get still finds it");
}
conformance!(deleted_connections_are_listed_only_when_asked_for);

async fn saving_a_connection_with_data_replaces_its_records(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let (ready, sample) = connection_with_sample(&*store, tenant).await;
    assert_eq!(store.get_connection(tenant, ready.id).await.unwrap(), Some(ready.clone()));
    let accounts = records_of(&ready, RecordKind::Account);
    assert_eq!(list_records(&*store, &accounts).await.len(), sample.data.accounts.len());

    // A save without data keeps the records.
    let (refreshing, _) = save_in_state(&*store, &ready, ConnectionState::Refreshing).await;
    assert_eq!(list_records(&*store, &accounts).await.len(), sample.data.accounts.len());

    let mut renamed = sample.data.accounts[1].clone();
    renamed.name = "Everyday Account".to_owned();
    renamed.current = Some(eur(9900));
    let replacement = ConnectionData { accounts: vec![renamed.clone()], ..ConnectionData::default() };
    let ready_again = moved(&refreshing, ConnectionState::Ready);
    let saved =
        store.save_connection(&ready_again, None, Some(import_of(&replacement)), ConnectionEventType::StateChanged);
    assert!(saved.await.unwrap(), "saved");

    assert_eq!(decode::<Account>(list_records(&*store, &accounts).await), vec![renamed]);
    let transactions = records_of(&ready, RecordKind::Transaction);
    assert!(list_records(&*store, &transactions).await.is_empty(), "old transactions remain");
    let old_transaction = sample.data.transactions[0].id;
    assert!(!store.has_record(tenant, ready.id, RecordKind::Transaction, old_transaction).await.unwrap());
    assert_eq!(store.get_connection(tenant, ready.id).await.unwrap(), Some(ready_again));
}
conformance!(saving_a_connection_with_data_replaces_its_records);

async fn a_deleted_connection_cannot_be_saved(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let created = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    let deleted = moved(&created, ConnectionState::Deleted);
    assert!(store.delete_connection(&deleted).await.unwrap(), "deleted");
    let last_event = last_event_id(&*store).await;

    // A sync that finished after the delete must not bring the connection or its data back.
    let ready = moved(&created, ConnectionState::Ready);
    let data = sample(created.id).data;
    let saved = store.save_connection(&ready, Some(now()), Some(import_of(&data)), ConnectionEventType::StateChanged);
    assert!(!saved.await.unwrap(), "not saved");

    assert_eq!(store.get_connection(tenant, created.id).await.unwrap(), Some(deleted));
    assert_eq!(store.connection_handle(tenant, created.id).await.unwrap(), None);
    assert!(list_records(&*store, &records_of(&created, RecordKind::Account)).await.is_empty());
    assert_eq!(last_event_id(&*store).await, last_event, "no event appended");
    let leased = store.lease_connections(&lease("replica-a", now() + Duration::days(1), 10)).await.unwrap().items;
    assert!(leased.is_empty(), "the deleted connection became due again");
}
conformance!(a_deleted_connection_cannot_be_saved);

async fn deleting_a_connection_destroys_its_handle_and_records_once(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let (ready, sample) = connection_with_sample(&*store, tenant).await;
    let survivor = new_connection(&*store, tenant, "user-2", PROVIDER).await;
    let survivor_ready = moved(&survivor, ConnectionState::Ready);
    let saved =
        store.save_connection(&survivor_ready, None, Some(import_of(&sample.data)), ConnectionEventType::StateChanged);
    assert!(saved.await.unwrap(), "saved");

    let deleted = moved(&ready, ConnectionState::Deleted);
    assert!(store.delete_connection(&deleted).await.unwrap(), "the first delete applies");
    let event = latest_event(&*store, &deleted).await;
    assert_eq!(event.connection, deleted);
    assert_eq!(event.occurred_at, deleted.updated_at);

    assert_eq!(store.connection_handle(tenant, ready.id).await.unwrap(), None, "the handle survived");
    assert_eq!(store.get_connection(tenant, ready.id).await.unwrap(), Some(deleted.clone()));
    for kind in [RecordKind::Account, RecordKind::Transaction, RecordKind::Position, RecordKind::Statement] {
        assert!(list_records(&*store, &records_of(&ready, kind)).await.is_empty(), "{kind:?} records remain");
    }
    assert!(!store.has_record(tenant, ready.id, RecordKind::Account, sample.checking).await.unwrap());

    let again = moved(&deleted, ConnectionState::Deleted);
    assert!(!store.delete_connection(&again).await.unwrap(), "the second delete changes nothing");
    assert_eq!(last_event_id(&*store).await, event.event_id, "the second delete appended an event");
    assert_eq!(store.get_connection(tenant, ready.id).await.unwrap(), Some(deleted));

    // Another connection's identical data is untouched.
    assert_eq!(store.connection_handle(tenant, survivor.id).await.unwrap(), Some(handle_of(&survivor)));
    let survivors = list_records(&*store, &records_of(&survivor, RecordKind::Account)).await;
    assert_eq!(survivors.len(), sample.data.accounts.len());
}
conformance!(deleting_a_connection_destroys_its_handle_and_records_once);

async fn due_connections_are_leased_once_until_the_lease_lapses(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let t0 = now();
    let overdue = connection(tenant, "user-1", PROVIDER);
    let due_now = connection(tenant, "user-2", PROVIDER);
    let later = connection(tenant, "user-3", PROVIDER);
    create_connection(&*store, &overdue, t0 - Duration::seconds(1)).await;
    create_connection(&*store, &due_now, t0).await;
    create_connection(&*store, &later, t0 + Duration::hours(1)).await;
    let take = async |owner: &str, at: Timestamp, limit: i64| {
        store.lease_connections(&lease(owner, at, limit)).await.unwrap().items
    };

    assert_eq!(take("replica-a", t0, 1).await, vec![overdue.clone()], "the longest due first, up to the limit");
    assert_eq!(take("replica-a", t0, 10).await, vec![due_now.clone()]);
    assert!(take("replica-b", t0, 10).await.is_empty(), "leased work was leased again");
    assert!(take("replica-b", t0 + Duration::seconds(29), 10).await.is_empty(), "a live lease was taken over");
    let taken_over = store.lease_connections(&lease("replica-b", t0 + Duration::seconds(31), 10)).await.unwrap();
    assert_eq!(leased_ids(&taken_over.items), BTreeSet::from([overdue.id, due_now.id]), "lapsed leases");
    assert_eq!(taken_over.taken_over, 2, "both were taken over from a lapsed lease");
    assert!(!leased_ids(&take("replica-c", t0 + Duration::minutes(59), 10).await).contains(&later.id));
}
conformance!(due_connections_are_leased_once_until_the_lease_lapses);

async fn rescheduling_or_saving_a_connection_frees_its_lease(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let t0 = now();
    let polled = connection(tenant, "user-1", PROVIDER);
    let synced = connection(tenant, "user-2", PROVIDER);
    let settled = connection(tenant, "user-3", PROVIDER);
    for connection in [&polled, &synced, &settled] {
        create_connection(&*store, connection, t0).await;
    }
    let take = async |owner: &str, at: Timestamp| {
        leased_ids(&store.lease_connections(&lease(owner, at, 10)).await.unwrap().items)
    };
    assert_eq!(take("replica-a", t0).await.len(), 3);

    // Before replica-a's lease lapses (t0 + 30 s): each change frees the lease at once.
    store.reschedule_connection(tenant, polled.id, Some(t0 + Duration::seconds(10))).await.unwrap();
    let synced_again = moved(&synced, ConnectionState::Refreshing);
    let saved =
        store.save_connection(&synced_again, Some(t0 + Duration::seconds(10)), None, ConnectionEventType::StateChanged);
    assert!(saved.await.unwrap(), "saved");
    let settled_ready = moved(&settled, ConnectionState::Ready);
    let saved = store.save_connection(&settled_ready, None, None, ConnectionEventType::StateChanged);
    assert!(saved.await.unwrap(), "saved");
    assert_eq!(take("replica-b", t0 + Duration::seconds(9)).await, BTreeSet::new(), "not yet due again");
    let released = store.lease_connections(&lease("replica-b", t0 + Duration::seconds(10), 10)).await.unwrap();
    assert_eq!(leased_ids(&released.items), BTreeSet::from([polled.id, synced.id]));
    assert_eq!(released.taken_over, 0, "released leases are not takeovers");

    // A connection saved with no next poll is never due.
    assert!(!take("replica-c", t0 + Duration::days(365)).await.contains(&settled.id));
    // Rescheduling through another tenant does nothing.
    store.reschedule_connection(new_tenant(), settled.id, Some(t0)).await.unwrap();
    assert!(!take("replica-c", t0 + Duration::days(366)).await.contains(&settled.id));
}
conformance!(rescheduling_or_saving_a_connection_frees_its_lease);

async fn concurrent_leases_never_hand_out_the_same_work_twice(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let t0 = now();
    let (mut connections, mut sessions) = (BTreeSet::new(), BTreeSet::new());
    for i in 0..12 {
        let connection = connection(tenant, &format!("user-{i}"), PROVIDER);
        create_connection(&*store, &connection, t0).await;
        connections.insert(connection.id);
        let session = link_session(tenant, &format!("user-{i}"));
        store.create_link_session(&session, None, Some(t0)).await.unwrap();
        sessions.insert(session.id);
    }
    let leases: Vec<Lease> = (0..4).map(|i| lease(&format!("replica-{i}"), t0, 3)).collect();
    let latecomer = lease("replica-late", t0, 100);

    let taken = futures::future::join_all(leases.iter().map(|lease| store.lease_connections(lease))).await;
    let mut leased = BTreeSet::new();
    for connection in taken.into_iter().flat_map(|taken| taken.expect("lease answers").items) {
        assert!(leased.insert(connection.id), "connection {} leased twice", connection.id);
    }
    for connection in store.lease_connections(&latecomer).await.unwrap().items {
        assert!(leased.insert(connection.id), "connection {} leased twice", connection.id);
    }
    assert_eq!(leased, connections, "every due connection leased once");

    let taken = futures::future::join_all(leases.iter().map(|lease| store.lease_link_sessions(lease))).await;
    let mut leased = BTreeSet::new();
    for session in taken.into_iter().flat_map(|taken| taken.expect("lease answers").items) {
        assert!(leased.insert(session.id), "link session {} leased twice", session.id);
    }
    for session in store.lease_link_sessions(&latecomer).await.unwrap().items {
        assert!(leased.insert(session.id), "link session {} leased twice", session.id);
    }
    assert_eq!(leased, sessions, "every due link session leased once");
}
conformance!(concurrent_leases_never_hand_out_the_same_work_twice);

async fn one_connection_can_be_leased_only_while_no_other_lease_holds_it(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let t0 = now();
    let connection = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    let until = t0 + Duration::seconds(60);
    assert!(
        !store.lease_connection(new_tenant(), connection.id, "rotation", t0, until).await.unwrap(),
        "another tenant's"
    );
    assert!(store.lease_connection(tenant, connection.id, "rotation", t0, until).await.unwrap());
    assert!(!store.lease_connection(tenant, connection.id, "other", t0, until).await.unwrap(), "a live lease holds");
    // Due, but held: the sync engine cannot take it before the lease lapses.
    let during = store.lease_connections(&lease("replica-a", t0 + Duration::seconds(59), 10)).await.unwrap().items;
    assert!(!leased_ids(&during).contains(&connection.id), "the sync engine took a held connection");
    store.reschedule_connection(tenant, connection.id, Some(t0)).await.unwrap();
    assert!(
        store.lease_connection(tenant, connection.id, "other", t0, until).await.unwrap(),
        "a released lease is free"
    );
    store.delete_connection(&store.get_connection(tenant, connection.id).await.unwrap().unwrap()).await.unwrap();
    assert!(
        !store.lease_connection(tenant, connection.id, "x", t0 + Duration::hours(1), until).await.unwrap(),
        "deleted"
    );
}
conformance!(one_connection_can_be_leased_only_while_no_other_lease_holds_it);

async fn a_lease_is_released_only_by_its_owner(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let t0 = now();
    let connection = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    let until = t0 + Duration::seconds(60);
    assert!(store.lease_connection(tenant, connection.id, "change-a", t0, until).await.unwrap());
    assert!(!store.release_connection(tenant, connection.id, "change-b", None).await.unwrap(), "not b's lease");
    assert!(!store.release_connection(new_tenant(), connection.id, "change-a", None).await.unwrap(), "another tenant");
    assert!(!store.lease_connection(tenant, connection.id, "other", t0, until).await.unwrap(), "still held");

    // Released by its owner, and due when it says: the sync engine takes it then.
    assert!(store.release_connection(tenant, connection.id, "change-a", Some(t0 + Duration::hours(2))).await.unwrap());
    assert!(!store.release_connection(tenant, connection.id, "change-a", None).await.unwrap(), "released once");
    let early = store.lease_connections(&lease("replica-a", t0 + Duration::hours(1), 10)).await.unwrap().items;
    assert!(!leased_ids(&early).contains(&connection.id), "not due yet");
    let due = store.lease_connections(&lease("replica-a", t0 + Duration::hours(2), 10)).await.unwrap().items;
    assert!(leased_ids(&due).contains(&connection.id), "due at the time the release gave");

    // A change whose lease lapsed and was taken over releases nothing of the new holder's.
    let t1 = t0 + Duration::hours(3);
    store.reschedule_connection(tenant, connection.id, Some(t1)).await.unwrap();
    assert!(
        store.lease_connection(tenant, connection.id, "change-slow", t1, t1 + Duration::seconds(60)).await.unwrap()
    );
    let taken = store.lease_connections(&lease("replica-b", t1 + Duration::seconds(61), 10)).await.unwrap();
    assert!(leased_ids(&taken.items).contains(&connection.id), "the lapsed lease is taken over");
    assert!(!store.release_connection(tenant, connection.id, "change-slow", None).await.unwrap());
    let again = store.lease_connections(&lease("replica-c", t1 + Duration::seconds(62), 10)).await.unwrap().items;
    assert!(!leased_ids(&again).contains(&connection.id), "replica-b's lease still holds");
}
conformance!(a_lease_is_released_only_by_its_owner);

async fn the_duplicate_check_finds_the_users_oldest_live_connection_at_the_institution(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let find = |tenant: TenantId, user: &'static str, provider: &'static str, institution: &'static str| {
        let store = store.clone();
        async move { store.find_live_duplicate(tenant, user, provider, institution).await.unwrap() }
    };
    assert_eq!(find(tenant, "user-1", PROVIDER, INSTITUTION).await, None, "nothing yet");
    let oldest = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    let newer = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    let mut elsewhere = connection(tenant, "user-1", PROVIDER);
    elsewhere.institution_id = "ins_elsewhere".to_owned();
    create_connection(&*store, &elsewhere, now()).await;
    new_connection(&*store, tenant, "user-2", PROVIDER).await;
    new_connection(&*store, tenant, "user-1", "deck").await;

    assert_eq!(find(tenant, "user-1", PROVIDER, INSTITUTION).await, Some(oldest.id));
    assert_eq!(find(tenant, "user-1", PROVIDER, "ins_elsewhere").await, Some(elsewhere.id));
    assert_eq!(find(new_tenant(), "user-1", PROVIDER, INSTITUTION).await, None, "another tenant");
    assert_eq!(find(tenant, "user-3", PROVIDER, INSTITUTION).await, None, "another user");
    assert_eq!(find(tenant, "user-1", "vumi", INSTITUTION).await, None, "another provider");

    // Once the oldest is deleted, the next one is the duplicate.
    assert!(store.delete_connection(&moved(&oldest, ConnectionState::Deleted)).await.unwrap(), "deleted");
    assert_eq!(find(tenant, "user-1", PROVIDER, INSTITUTION).await, Some(newer.id));
}
conformance!(the_duplicate_check_finds_the_users_oldest_live_connection_at_the_institution);

async fn a_replica_leases_only_the_connections_of_providers_it_has(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let t0 = now();
    let sandbox = connection(tenant, "user-1", PROVIDER);
    let moneykit = connection(tenant, "user-2", "moneykit");
    create_connection(&*store, &sandbox, t0).await;
    create_connection(&*store, &moneykit, t0).await;
    let with = |providers: &[&str]| Lease {
        providers: providers.iter().map(|p| (*p).to_owned()).collect(),
        ..lease("replica-a", t0, 10)
    };

    assert!(store.lease_connections(&with(&[])).await.unwrap().items.is_empty(), "no providers, no work");
    let deck_only = store.lease_connections(&with(&["deck"])).await.unwrap().items;
    assert!(deck_only.is_empty(), "a replica with Deck alone took {deck_only:?}");
    let taken = store.lease_connections(&with(&["deck", "moneykit"])).await.unwrap().items;
    assert_eq!(leased_ids(&taken), BTreeSet::from([moneykit.id]), "only MoneyKit's");
    let rest = store.lease_connections(&with(&[PROVIDER, "moneykit"])).await.unwrap().items;
    assert_eq!(leased_ids(&rest), BTreeSet::from([sandbox.id]), "the sandbox's was left for a replica that has it");
}
conformance!(a_replica_leases_only_the_connections_of_providers_it_has);

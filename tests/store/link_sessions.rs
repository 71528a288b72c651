//! Link sessions: created once per request id, read within their tenant, updated only from the
//! expected state, leased while due, and, for a repair session, completed together with the
//! connection it repairs.

use super::*;

async fn a_created_link_session_reads_back_equal_and_only_for_its_tenant(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let session = create_session(&*store, tenant, "user-1").await;
    let mut bare = link_session(tenant, "user-2");
    bare.products = Vec::new();
    bare.link_token = None;
    bare.hosted_link_url = None;
    bare.redirect_uri = None;
    bare.flow = LinkFlow::Credentials;
    store.create_link_session(&bare, None, None).await.unwrap();

    assert_eq!(store.get_link_session(tenant, session.id).await.unwrap(), Some(session.clone()));
    assert_eq!(
        store.get_link_session(tenant, bare.id).await.unwrap(),
        Some(bare),
        "empty and absent fields round-trip"
    );
    assert_eq!(store.get_link_session(new_tenant(), session.id).await.unwrap(), None, "another tenant's get");
    assert_eq!(store.get_link_session(tenant, Uuid::now_v7()).await.unwrap(), None, "an unknown id");
}
conformance!(a_created_link_session_reads_back_equal_and_only_for_its_tenant);

async fn creating_with_a_used_request_id_returns_the_first_session(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let mut first = link_session(tenant, "user-1");
    first.last_request_id = Some("req-1".to_owned());
    assert_eq!(store.create_link_session(&first, Some("req-1"), None).await.unwrap(), first);

    let mut retry = link_session(tenant, "user-2");
    retry.products = vec![Product::Investments];
    retry.last_request_id = Some("req-1".to_owned());
    let returned = store.create_link_session(&retry, Some("req-1"), Some(now())).await.unwrap();

    assert_eq!(returned, first, "the retry gets the first call's session");
    assert_eq!(store.get_link_session(tenant, retry.id).await.unwrap(), None, "the retry inserted nothing");
    assert_eq!(store.find_link_session_by_request(tenant, "req-1").await.unwrap(), Some(first.clone()));
    assert_eq!(store.find_link_session_by_request(tenant, "req-2").await.unwrap(), None);

    // Request ids are the tenant's own: another tenant's "req-1" is a different request.
    let other_tenant = new_tenant();
    assert_eq!(store.find_link_session_by_request(other_tenant, "req-1").await.unwrap(), None);
    let mut other = link_session(other_tenant, "user-1");
    other.last_request_id = Some("req-1".to_owned());
    assert_eq!(store.create_link_session(&other, Some("req-1"), None).await.unwrap(), other);
    assert_eq!(store.find_link_session_by_request(other_tenant, "req-1").await.unwrap(), Some(other));
    assert_eq!(store.find_link_session_by_request(tenant, "req-1").await.unwrap(), Some(first));
}
conformance!(creating_with_a_used_request_id_returns_the_first_session);

async fn link_session_updates_apply_only_from_the_expected_state(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let created = create_session(&*store, tenant, "user-1").await;

    let mut connecting = created.clone();
    connecting.state = LinkSessionState::Connecting;
    connecting.institution_id = Some(INSTITUTION.to_owned());
    connecting.last_request_id = Some("req-submit".to_owned());
    connecting.updated_at = now();
    let from_wrong_state = LinkSessionUpdate {
        session: &connecting,
        from: LinkSessionState::MfaRequired,
        next_poll_at: None,
        issued: None,
    };
    assert!(!store.update_link_session(from_wrong_state).await.unwrap(), "an update from the wrong state applies");
    assert_eq!(store.get_link_session(tenant, created.id).await.unwrap(), Some(created.clone()), "nothing changed");

    let update =
        LinkSessionUpdate { session: &connecting, from: LinkSessionState::Created, next_poll_at: None, issued: None };
    assert!(store.update_link_session(update.clone()).await.unwrap());
    assert_eq!(store.get_link_session(tenant, created.id).await.unwrap(), Some(connecting.clone()));
    assert!(!store.update_link_session(update).await.unwrap(), "the same update applies twice");

    let mut failed = connecting.clone();
    failed.state = LinkSessionState::Failed;
    failed.failure_reason = Some(ErrorReason::InvalidCredentials);
    failed.failure_message = Some("The bank did not accept these credentials.".to_owned());
    failed.updated_at = now();
    let update =
        LinkSessionUpdate { session: &failed, from: LinkSessionState::Connecting, next_poll_at: None, issued: None };
    assert!(store.update_link_session(update).await.unwrap());
    assert_eq!(store.get_link_session(tenant, created.id).await.unwrap(), Some(failed));

    let mut foreign = connecting.clone();
    foreign.tenant_id = new_tenant();
    let update =
        LinkSessionUpdate { session: &foreign, from: LinkSessionState::Failed, next_poll_at: None, issued: None };
    assert!(!store.update_link_session(update).await.unwrap(), "another tenant updated the session");
}
conformance!(link_session_updates_apply_only_from_the_expected_state);

async fn due_link_sessions_are_leased_once_until_the_lease_lapses(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let t0 = now();
    let create = async |next_poll_at: Option<Timestamp>| {
        let session = link_session(tenant, "user-1");
        store.create_link_session(&session, None, next_poll_at).await.unwrap()
    };
    let overdue = create(Some(t0 - Duration::seconds(1))).await;
    let due_now = create(Some(t0)).await;
    let later = create(Some(t0 + Duration::hours(1))).await;
    let settled = create(None).await;
    let take = async |owner: &str, at: Timestamp, limit: i64| {
        store.lease_link_sessions(&lease(owner, at, limit)).await.unwrap().items
    };

    assert_eq!(take("replica-a", t0, 1).await, vec![overdue.clone()], "the longest due first, up to the limit");
    assert_eq!(take("replica-a", t0, 10).await, vec![due_now.clone()]);
    assert!(take("replica-b", t0, 10).await.is_empty(), "leased work was leased again");
    assert!(take("replica-b", t0 + Duration::seconds(29), 10).await.is_empty(), "a live lease was taken over");
    let taken_over = store.lease_link_sessions(&lease("replica-b", t0 + Duration::seconds(31), 10)).await.unwrap();
    assert_eq!(session_ids(&taken_over.items), BTreeSet::from([overdue.id, due_now.id]), "lapsed leases");
    assert_eq!(taken_over.taken_over, 2, "both were taken over from a lapsed lease");
    let much_later = session_ids(&take("replica-c", t0 + Duration::days(1), 10).await);
    assert!(much_later.contains(&later.id));
    assert!(!much_later.contains(&settled.id), "a session with no next poll was leased");
}
conformance!(due_link_sessions_are_leased_once_until_the_lease_lapses);

async fn rescheduling_or_updating_a_link_session_frees_its_lease(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let t0 = now();
    let polled = link_session(tenant, "user-1");
    let progressed = link_session(tenant, "user-2");
    let finished = link_session(tenant, "user-3");
    for session in [&polled, &progressed, &finished] {
        store.create_link_session(session, None, Some(t0)).await.unwrap();
    }
    let take = async |owner: &str, at: Timestamp| {
        session_ids(&store.lease_link_sessions(&lease(owner, at, 10)).await.unwrap().items)
    };
    assert_eq!(take("replica-a", t0).await.len(), 3);

    // Before replica-a's lease lapses (t0 + 30 s): each change frees the lease at once.
    store.reschedule_link_session(tenant, polled.id, t0 + Duration::seconds(10)).await.unwrap();
    let mut connecting = progressed.clone();
    connecting.state = LinkSessionState::Connecting;
    connecting.updated_at = now();
    let update = LinkSessionUpdate {
        session: &connecting,
        from: LinkSessionState::Created,
        next_poll_at: Some(t0 + Duration::seconds(10)),
        issued: None,
    };
    assert!(store.update_link_session(update).await.unwrap());
    let mut failed = finished.clone();
    failed.state = LinkSessionState::Failed;
    failed.failure_reason = Some(ErrorReason::InvalidCredentials);
    failed.updated_at = now();
    let update =
        LinkSessionUpdate { session: &failed, from: LinkSessionState::Created, next_poll_at: None, issued: None };
    assert!(store.update_link_session(update).await.unwrap());
    assert_eq!(take("replica-b", t0 + Duration::seconds(9)).await, BTreeSet::new(), "not yet due again");
    let leased = store.lease_link_sessions(&lease("replica-b", t0 + Duration::seconds(10), 10)).await.unwrap().items;
    assert_eq!(session_ids(&leased), BTreeSet::from([polled.id, progressed.id]));
    assert!(leased.contains(&connecting), "a leased session reads as updated");

    // A session updated with no next poll is never due.
    assert!(!take("replica-c", t0 + Duration::days(365)).await.contains(&finished.id));
}
conformance!(rescheduling_or_updating_a_link_session_frees_its_lease);

async fn completing_a_repair_swaps_the_handle_and_records_login_repaired_once(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let original = connection(tenant, "user-1", PROVIDER);
    create_connection(&*store, &original, now()).await;
    let (login_required, _) = save_in_state(&*store, &original, ConnectionState::LoginRequired).await;
    let mut session = link_session(tenant, "user-1");
    session.repair_connection_id = Some(original.id);
    let session = {
        let stored = store.create_link_session(&session, None, None).await.unwrap();
        assert_eq!(stored.repair_connection_id, Some(original.id), "the repaired connection reads back");
        stored
    };
    let mut succeeded = session.clone();
    succeeded.state = LinkSessionState::Succeeded;
    succeeded.updated_at = now();
    let repaired = moved(&login_required, ConnectionState::Refreshing);
    let old = handle_of(&original);
    let new = b"sealed handle after the repair".to_vec();
    let update =
        || LinkSessionUpdate { session: &succeeded, from: LinkSessionState::Created, next_poll_at: None, issued: None };
    let with_cursor =
        Import { data: &ConnectionData::default(), products: &[], cursor: Some("read through the old handle") };
    store.save_connection(&login_required, None, Some(with_cursor), ConnectionEventType::StateChanged).await.unwrap();

    // A handle that is no longer the one the repair started from: nothing changes.
    let stale = Repair {
        connection: &repaired,
        handle: Some((b"another handle", &new)),
        upstream_ref_hash: None,
        exchanged: None,
        next_poll_at: now(),
    };
    let before = last_event_id(&*store).await;
    assert!(!store.complete_repair(update(), &stale).await.unwrap());
    sequence(&*store).await;
    assert_eq!(store.get_link_session(tenant, session.id).await.unwrap().unwrap().state, LinkSessionState::Created);
    assert_eq!(store.connection_handle(tenant, original.id).await.unwrap(), Some(old.clone()));
    assert!(store.upstream_cursor(tenant, original.id).await.unwrap().is_some(), "the cursor with it");
    assert_eq!(store.get_connection(tenant, original.id).await.unwrap(), Some(login_required.clone()));
    assert_eq!(last_event_id(&*store).await, before, "no event appended");

    // An exchange recognises the repair by the connection's upstream reference and open session.
    let found = store.find_connection_by_upstream_ref(tenant, PROVIDER, &upstream_ref_of(&original)).await.unwrap();
    assert_eq!(found.map(|c| c.id), Some(original.id));
    let open = store.open_repair_session(tenant, original.id, now()).await.unwrap();
    assert_eq!(open.map(|s| s.id), Some(session.id));
    assert_eq!(store.open_repair_session(new_tenant(), original.id, now()).await.unwrap(), None, "per tenant");

    let new_ref = b"upstream reference after the repair".to_vec();
    let repair = Repair {
        connection: &repaired,
        handle: Some((&old, &new)),
        upstream_ref_hash: Some(&new_ref),
        exchanged: None,
        next_poll_at: now(),
    };
    assert!(store.complete_repair(update(), &repair).await.unwrap(), "the repair completes");
    let event = latest_event(&*store, &repaired).await;
    let found = store.find_connection_by_upstream_ref(tenant, PROVIDER, &new_ref).await.unwrap();
    assert_eq!(found.map(|c| c.id), Some(original.id), "the new upstream reference finds it");
    assert_eq!(
        store.find_connection_by_upstream_ref(tenant, PROVIDER, &upstream_ref_of(&original)).await.unwrap(),
        None
    );
    assert_eq!(store.open_repair_session(tenant, original.id, now()).await.unwrap(), None, "no longer open");
    assert_eq!(event.kind, ConnectionEventType::LoginRepaired);
    assert_eq!(event.connection, repaired);
    assert_eq!(store.connection_handle(tenant, original.id).await.unwrap(), Some(new.clone()));
    assert_eq!(store.upstream_cursor(tenant, original.id).await.unwrap(), None, "a new handle reads from the start");
    assert_eq!(store.get_connection(tenant, original.id).await.unwrap(), Some(repaired.clone()));
    assert_eq!(store.get_link_session(tenant, session.id).await.unwrap().unwrap().state, LinkSessionState::Succeeded);
    let tail = store.tail_events(before, 10).await.unwrap();
    assert_eq!(tail, vec![event], "one event, typed");

    // The same completion again finds the session moved on: no second event.
    assert!(!store.complete_repair(update(), &repair).await.unwrap());
    sequence(&*store).await;
    assert_eq!(store.tail_events(before, 10).await.unwrap().len(), 1);
}
conformance!(completing_a_repair_swaps_the_handle_and_records_login_repaired_once);

async fn open_repairs_are_found_by_connection_and_by_end_user_and_institution(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let user = "user-r";
    let at = now();
    let repair_of = |connection: &Connection| {
        let mut session = link_session(tenant, user);
        session.institution_id = Some(connection.institution_id.clone());
        session.repair_connection_id = Some(connection.id);
        session
    };
    let awaiting = |institution: &'static str, limit: i64| {
        let store = store.clone();
        async move { store.connections_awaiting_repair(tenant, PROVIDER, user, institution, at, limit).await.unwrap() }
    };

    let first = new_connection(&*store, tenant, user, PROVIDER).await;
    let older = store.create_link_session(&repair_of(&first), None, None).await.unwrap();
    let newer = store.create_link_session(&repair_of(&first), None, None).await.unwrap();
    // Not open: a settled repair of the same connection, and one whose time is up.
    let (settled, _) = succeed(
        &*store,
        &store.create_link_session(&repair_of(&first), None, None).await.unwrap(),
        at + Duration::minutes(30),
    )
    .await;
    let mut lapsed = repair_of(&first);
    lapsed.expires_at = at - Duration::seconds(1);
    store.create_link_session(&lapsed, None, None).await.unwrap();
    // An ordinary session of the user names no connection.
    create_session(&*store, tenant, user).await;

    let open = store.open_repair_session(tenant, first.id, at).await.unwrap().expect("an open repair");
    assert_eq!(open.id, newer.id, "the newest open one, not {} nor {}", older.id, settled.id);
    assert_eq!(awaiting(INSTITUTION, 2).await, vec![first.id], "one connection, however many sessions");
    assert!(awaiting("ins_elsewhere", 2).await.is_empty(), "another institution");
    let others = |tenant: TenantId, user: &'static str, provider: &'static str| {
        let store = store.clone();
        async move { store.connections_awaiting_repair(tenant, provider, user, INSTITUTION, at, 2).await.unwrap() }
    };
    assert!(others(new_tenant(), user, PROVIDER).await.is_empty(), "another tenant");
    assert!(others(tenant, "user-other", PROVIDER).await.is_empty(), "another user");
    assert!(others(tenant, user, "deck").await.is_empty(), "another provider");
    assert!(
        store
            .connections_awaiting_repair(tenant, PROVIDER, user, INSTITUTION, at + Duration::hours(1), 2)
            .await
            .unwrap()
            .is_empty(),
        "every session's time is up an hour later"
    );

    // A second connection of the user at the institution awaiting repair: both, up to the limit.
    let second = new_connection(&*store, tenant, user, PROVIDER).await;
    store.create_link_session(&repair_of(&second), None, None).await.unwrap();
    let mut both = vec![first.id, second.id];
    both.sort();
    assert_eq!(awaiting(INSTITUTION, 2).await, both);
    assert_eq!(awaiting(INSTITUTION, 1).await.len(), 1);

    // A deleted connection awaits nothing.
    assert!(store.delete_connection(&moved(&second, ConnectionState::Deleted)).await.unwrap(), "deleted");
    assert_eq!(awaiting(INSTITUTION, 2).await, vec![first.id]);
}
conformance!(open_repairs_are_found_by_connection_and_by_end_user_and_institution);

async fn a_replica_leases_only_the_link_sessions_of_providers_it_has(store: Arc<dyn Store>) {
    let t0 = now();
    let session = link_session(new_tenant(), "user-1");
    store.create_link_session(&session, None, Some(t0)).await.unwrap();
    let without = Lease { providers: vec!["moneykit".to_owned()], ..lease("replica-a", t0, 10) };
    assert!(store.lease_link_sessions(&without).await.unwrap().items.is_empty(), "another provider's session");
    let with = lease("replica-b", t0, 10);
    assert_eq!(session_ids(&store.lease_link_sessions(&with).await.unwrap().items), BTreeSet::from([session.id]));
}
conformance!(a_replica_leases_only_the_link_sessions_of_providers_it_has);

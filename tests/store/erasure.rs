//! Erasure of an end user: the user's DELETED connections (with their data, events and webhook
//! deliveries), link sessions and public tokens are destroyed; live connections, other users and
//! other tenants are left alone; a second erasure erases nothing.

use super::*;

fn delivery(connection: &Connection) -> InboxDelivery {
    InboxDelivery {
        provider: connection.provider.clone(),
        delivery_key: format!("delivery-{}", connection.id),
        event: "connection.updated".to_owned(),
        subject_hash: Some(upstream_ref_of(connection)),
        body_sealed: b"sealed body".to_vec(),
        received_at: now(),
    }
}

async fn erasing_an_end_user_destroys_what_names_them_and_nothing_else(store: Arc<dyn Store>) {
    let (tenant, other_tenant) = (new_tenant(), new_tenant());
    let user = "user-erased";
    let live = new_connection(&*store, tenant, user, PROVIDER).await;
    // Another user's connection with data ("user-1"), and a DELETED connection of the user.
    let (with_data, _) = connection_with_sample(&*store, tenant).await;
    let gone = new_connection(&*store, tenant, user, PROVIDER).await;
    store
        .save_connection(
            &moved(&gone, ConnectionState::Ready),
            None,
            Some(import_of(&sample(gone.id).data)),
            ConnectionEventType::StateChanged,
        )
        .await
        .unwrap();
    assert!(store.delete_connection(&moved(&gone, ConnectionState::Deleted)).await.unwrap(), "deleted");
    let neighbour = new_connection(&*store, tenant, "user-kept", PROVIDER).await;
    let foreign = new_connection(&*store, other_tenant, user, PROVIDER).await;
    let pending = create_session(&*store, tenant, user).await;
    let linked = create_session(&*store, tenant, user).await;
    let (_, token) = succeed(&*store, &linked, now() + Duration::minutes(30)).await;
    let foreign_session = create_session(&*store, other_tenant, user).await;
    assert!(store.record_webhook(&delivery(&gone)).await.unwrap());
    assert!(store.record_webhook(&delivery(&neighbour)).await.unwrap());

    let mut found = connection_ids(&store.end_user_connections(tenant, user).await.unwrap());
    found.sort();
    let mut expected = vec![live.id, gone.id];
    expected.sort();
    assert_eq!(found, expected, "every state, this tenant and user only");

    let erased = store.erase_end_user(tenant, user).await.unwrap();
    assert_eq!(
        erased,
        Erased { connections: 1, link_sessions: 2, public_tokens: 2, live_connections_left: 1 },
        "the DELETED connection goes with the token it was exchanged for, the live one stays until it is deleted; \
         the unexchanged token goes"
    );
    assert_eq!(store.get_connection(tenant, gone.id).await.unwrap(), None);
    // Of its events only the DELETED one is left, as a tombstone that names nothing of the user.
    let only_gone = EventFilter { connection_id: Some(gone.id), ..EventFilter::default() };
    let left = store.events_after(tenant, &only_gone, 0, 100).await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    let tombstone = &left[0].connection;
    assert_eq!(
        (tombstone.id, tombstone.state, tombstone.provider.as_str()),
        (gone.id, ConnectionState::Deleted, PROVIDER)
    );
    assert_eq!(*tombstone, tombstone.tombstone(), "redacted: {tombstone:?}");
    assert_eq!(store.current_events(tenant, &only_gone, i64::MAX, 0, 100).await.unwrap(), left);
    let users = EventFilter { external_user_id: Some(user.to_owned()), ..EventFilter::default() };
    let by_user = store.events_after(tenant, &users, 0, 100).await.unwrap();
    assert!(by_user.contains(&left[0]), "filtered by user, the tombstone comes along");
    assert!(
        by_user.iter().all(|e| e.event_id == left[0].event_id || e.connection.id == live.id),
        "and otherwise only the user's live connection: {by_user:?}"
    );
    let last = store.events_after(tenant, &only_gone, left[0].event_id - 1, 100).await.unwrap();
    assert_eq!(last, left, "a cursor from before the erasure replays it");
    for kind in [RecordKind::Account, RecordKind::Transaction] {
        assert!(list_records(&*store, &records_of(&moved(&gone, ConnectionState::Ready), kind)).await.is_empty());
    }
    assert!(store.record_webhook(&delivery(&gone)).await.unwrap(), "its webhook delivery is gone");
    assert!(!store.record_webhook(&delivery(&neighbour)).await.unwrap(), "another user's delivery stays");
    for session in [&pending, &linked] {
        assert_eq!(store.get_link_session(tenant, session.id).await.unwrap(), None);
    }
    let at = now();
    let claim = store.claim_public_token(tenant, PROVIDER, &token.token_hash, at, at + Duration::seconds(30)).await;
    assert_eq!(claim.unwrap(), Claim::Expired, "an erased token is never exchangeable again");
    let listed = store.list_public_tokens(tenant, None, None, now(), &first_page(10)).await.unwrap();
    assert!(listed.items.is_empty());

    // Everything else is untouched.
    assert_eq!(store.get_connection(tenant, live.id).await.unwrap(), Some(live.clone()));
    assert_eq!(store.connection_handle(tenant, live.id).await.unwrap(), Some(handle_of(&live)));
    assert_eq!(store.get_connection(tenant, neighbour.id).await.unwrap(), Some(neighbour.clone()));
    assert!(store.get_connection(tenant, with_data.id).await.unwrap().is_some(), "another user's connection");
    let accounts = list_records(&*store, &records_of(&with_data, RecordKind::Account)).await;
    assert!(!accounts.is_empty(), "and its data");
    assert_eq!(store.get_connection(other_tenant, foreign.id).await.unwrap(), Some(foreign.clone()));
    assert!(store.get_link_session(other_tenant, foreign_session.id).await.unwrap().is_some());
    let neighbours = EventFilter { connection_id: Some(neighbour.id), ..EventFilter::default() };
    assert_eq!(store.events_after(tenant, &neighbours, 0, 100).await.unwrap().len(), 1);

    // Again: nothing to erase but the live connection, left alone.
    let again = store.erase_end_user(tenant, user).await.unwrap();
    assert_eq!(again, Erased { live_connections_left: 1, ..Erased::default() });

    // Once the live connection is deleted, the next erasure takes it and the user is gone.
    assert!(store.delete_connection(&moved(&live, ConnectionState::Deleted)).await.unwrap(), "deleted");
    let last = store.erase_end_user(tenant, user).await.unwrap();
    assert_eq!(last, Erased { connections: 1, public_tokens: 1, ..Erased::default() }, "with its exchanged token");
    assert!(store.end_user_connections(tenant, user).await.unwrap().is_empty());
    assert_eq!(store.end_user_connections(other_tenant, user).await.unwrap(), vec![foreign]);

    // An unknown user: nothing.
    assert_eq!(store.erase_end_user(tenant, "nobody").await.unwrap(), Erased::default());
}
conformance!(erasing_an_end_user_destroys_what_names_them_and_nothing_else);

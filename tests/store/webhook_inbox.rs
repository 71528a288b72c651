//! The webhook inbox: deliveries kept once, waking their live connection once, pruned once
//! processed.

use super::*;

fn delivery(provider: &str, key: &str, subject: Option<Vec<u8>>, received_at: Timestamp) -> InboxDelivery {
    InboxDelivery {
        provider: provider.to_owned(),
        delivery_key: key.to_owned(),
        event: "connection.updated".to_owned(),
        subject_hash: subject,
        body_sealed: format!("{{\"key\":\"{key}\"}}").into_bytes(),
        received_at,
    }
}

async fn webhook_deliveries_are_kept_once_and_make_their_connection_due_once(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let t0 = now();
    let named = connection(tenant, "user-1", PROVIDER);
    let other = connection(tenant, "user-2", PROVIDER);
    create_connection(&*store, &named, t0 + Duration::hours(6)).await;
    create_connection(&*store, &other, t0 + Duration::hours(6)).await;

    let first = delivery(PROVIDER, "whk_1", Some(upstream_ref_of(&named)), t0);
    assert!(store.record_webhook(&first).await.unwrap(), "a new delivery is kept");
    assert!(!store.record_webhook(&first).await.unwrap(), "a retried delivery is a duplicate");
    assert!(store.record_webhook(&delivery("other", "whk_1", None, t0)).await.unwrap(), "keys are per provider");
    let unknown_subject = linkgate::crypto::upstream_ref_hash(PROVIDER, "nobody");
    assert!(store.record_webhook(&delivery(PROVIDER, "whk_2", Some(unknown_subject), t0)).await.unwrap());
    // Another provider's id that happens to hash-collide on the id alone does not match.
    let wrong_provider = linkgate::crypto::upstream_ref_hash("other", &format!("upstream-{}", other.id));
    assert!(store.record_webhook(&delivery(PROVIDER, "whk_3", Some(wrong_provider), t0)).await.unwrap());

    let processed = store.process_webhooks(t0, 2).await.unwrap();
    assert_eq!(processed, WebhooksProcessed { deliveries: 2, connections: 1 }, "oldest first, up to the limit");
    let processed = store.process_webhooks(t0, 10).await.unwrap();
    assert_eq!(processed, WebhooksProcessed { deliveries: 2, connections: 0 });
    assert_eq!(store.process_webhooks(t0, 10).await.unwrap(), WebhooksProcessed::default(), "processed once");

    let due = leased_ids(&store.lease_connections(&lease("replica-a", t0, 10)).await.unwrap().items);
    assert_eq!(due, BTreeSet::from([named.id]), "only the named connection became due");
}
conformance!(webhook_deliveries_are_kept_once_and_make_their_connection_due_once);

async fn deleted_connections_are_not_woken_and_old_processed_deliveries_are_pruned(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let t0 = now();
    let deleted = new_connection(&*store, tenant, "user-1", PROVIDER).await;
    let deleted = store.get_connection(tenant, deleted.id).await.unwrap().unwrap();
    store.delete_connection(&deleted).await.unwrap();
    let subject = Some(upstream_ref_of(&deleted));
    store.record_webhook(&delivery(PROVIDER, "old", subject.clone(), t0 - Duration::days(8))).await.unwrap();
    store.record_webhook(&delivery(PROVIDER, "new", subject, t0)).await.unwrap();

    assert_eq!(store.prune_webhooks(t0 - Duration::days(7), 10).await.unwrap(), 0, "unprocessed ones stay");
    assert_eq!(store.process_webhooks(t0, 10).await.unwrap(), WebhooksProcessed { deliveries: 2, connections: 0 });
    assert_eq!(store.prune_webhooks(t0 - Duration::days(7), 10).await.unwrap(), 1, "only the old one");
    assert!(
        store.record_webhook(&delivery(PROVIDER, "old", None, t0)).await.unwrap(),
        "a pruned key is no longer remembered"
    );
}
conformance!(deleted_connections_are_not_woken_and_old_processed_deliveries_are_pruned);

async fn a_webhook_naming_a_connection_being_polled_makes_it_due_again_once_the_poll_ends(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let t0 = now();
    let polled = connection(tenant, "user-1", PROVIDER);
    create_connection(&*store, &polled, t0).await;
    let taken = leased_ids(&store.lease_connections(&lease("replica-a", t0, 10)).await.unwrap().items);
    assert_eq!(taken, BTreeSet::from([polled.id]));

    // While replica A polls (the provider may have answered already), another replica takes in
    // a webhook about the connection.
    store.record_webhook(&delivery(PROVIDER, "whk_during_poll", Some(upstream_ref_of(&polled)), t0)).await.unwrap();
    assert_eq!(store.process_webhooks(t0, 10).await.unwrap().connections, 1);
    assert!(store.lease_connections(&lease("replica-b", now(), 10)).await.unwrap().items.is_empty(), "A holds it");

    // A stores what it read, scheduling its next poll an hour away: the webhook's wins.
    let current = store.get_connection(tenant, polled.id).await.unwrap().unwrap();
    store
        .save_connection(&current, Some(t0 + Duration::hours(1)), None, ConnectionEventType::StateChanged)
        .await
        .unwrap();
    let again = leased_ids(&store.lease_connections(&lease("replica-b", now(), 10)).await.unwrap().items);
    assert_eq!(again, BTreeSet::from([polled.id]), "due again as soon as the poll ended");

    // A poll that ends by rescheduling (a provider error, say) honours a webhook too.
    store.record_webhook(&delivery(PROVIDER, "whk_during_retry", Some(upstream_ref_of(&polled)), now())).await.unwrap();
    assert_eq!(store.process_webhooks(now(), 10).await.unwrap().connections, 1);
    store.reschedule_connection(tenant, polled.id, Some(now() + Duration::hours(1))).await.unwrap();
    let retried = leased_ids(&store.lease_connections(&lease("replica-c", now(), 10)).await.unwrap().items);
    assert_eq!(retried, BTreeSet::from([polled.id]), "due again as soon as the retry was scheduled");

    // Once: without another webhook, the next poll's schedule stands.
    store
        .save_connection(&current, Some(now() + Duration::hours(1)), None, ConnectionEventType::StateChanged)
        .await
        .unwrap();
    assert!(store.lease_connections(&lease("replica-d", now(), 10)).await.unwrap().items.is_empty(), "polled once");
}
conformance!(a_webhook_naming_a_connection_being_polled_makes_it_due_again_once_the_poll_ends);

//! Provider sessions: one login at a time, under a lease, and its session shared by all.

use super::*;

async fn one_holder_at_a_time_logs_in_and_its_session_is_what_everyone_reads(store: Arc<dyn Store>) {
    let key = format!("vumi/test/{}", Uuid::now_v7());
    let t0 = now();
    let lease = |holder: &'static str, at: Timestamp| {
        let (store, key) = (store.clone(), key.clone());
        async move { store.lease_provider_login(&key, holder, at, at + Duration::seconds(30)).await.unwrap() }
    };
    assert_eq!(store.provider_session(&key).await.unwrap(), None, "nothing stored yet");

    assert!(lease("replica-a", t0).await, "the first asker takes the lease");
    assert!(!lease("replica-b", t0 + Duration::seconds(1)).await, "a held lease keeps others out");
    assert!(lease("replica-a", t0 + Duration::seconds(1)).await, "its holder may renew it");
    assert_eq!(store.provider_session(&key).await.unwrap(), None, "a lease alone stores no session");

    let expires_at = t0 + Duration::hours(1);
    assert!(!store.save_provider_session(&key, "replica-b", b"sealed-b", expires_at).await.unwrap(), "not b's lease");
    assert!(store.save_provider_session(&key, "replica-a", b"sealed-a", expires_at).await.unwrap());
    assert_eq!(store.provider_session(&key).await.unwrap(), Some((b"sealed-a".to_vec(), expires_at)));

    // Saving released the lease; a failed login releases it too.
    assert!(lease("replica-b", t0 + Duration::seconds(2)).await, "saving released the lease");
    store.release_provider_login(&key, "replica-a").await.unwrap();
    assert!(!lease("replica-a", t0 + Duration::seconds(2)).await, "only the holder's release counts");
    store.release_provider_login(&key, "replica-b").await.unwrap();
    assert!(lease("replica-a", t0 + Duration::seconds(3)).await, "released");
    assert_eq!(store.provider_session(&key).await.unwrap(), Some((b"sealed-a".to_vec(), expires_at)), "kept");

    // A holder that crashed: its lease lapses and another takes over.
    assert!(lease("replica-b", t0 + Duration::seconds(40)).await, "a lapsed lease is taken over");
    assert!(!store.save_provider_session(&key, "replica-a", b"late", expires_at).await.unwrap(), "too late");
}
conformance!(one_holder_at_a_time_logs_in_and_its_session_is_what_everyone_reads);

//! The consent calendar: a connection whose consent has a term warns once before it lapses, turns
//! LOGIN_REQUIRED with reason CONSENT_EXPIRED when it does, and a repair session renews it; with
//! two replicas the warning still goes out once.

use crate::support::database::Backend;
use crate::support::server::{PATIENCE, TestApp, spawn_app_with};
use linkgate::config::Settings;
use linkgate::pb;
use std::time::Duration;
use tokio_stream::StreamExt;

/// Sandbox consents that last `lifetime`, warned `lead` before they lapse.
fn consent_terms(lifetime: Duration, lead: Duration) -> impl FnOnce(&mut Settings) {
    move |settings| {
        settings.providers.sandbox.consent_lifetime = Some(lifetime);
        settings.sync.consent_warning = lead;
    }
}

/// Every event of `connection_id` from the start of the log, until one of type `last` arrives
/// and a quiet half second has passed after it.
async fn events_until(
    app: &mut TestApp,
    connection_id: &str,
    last: pb::ConnectionEventType,
) -> Vec<pb::ConnectionEvent> {
    // Resuming after event 0 of a fresh database replays the whole log rather than a snapshot.
    let mut stream = app
        .connections
        .watch_connections(pb::WatchConnectionsRequest { after_event_id: 1, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let event = stream.next().await.expect("stream open").expect("stream item").event.unwrap();
            let done = event.r#type() == last;
            if event.connection.as_ref().unwrap().id == connection_id {
                events.push(event);
            }
            if done {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {last:?} within the patience: {events:?}"));
    while let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(500), stream.next()).await {
        events.push(item.expect("stream item").event.unwrap());
    }
    events
}

fn count(events: &[pb::ConnectionEvent], kind: pb::ConnectionEventType) -> usize {
    events.iter().filter(|e| e.r#type() == kind).count()
}

on_both_backends! {
    async fn a_consent_warns_once_lapses_into_login_required_and_a_repair_renews_it(backend: Backend) {
        let mut app =
            spawn_app_with(backend, consent_terms(Duration::from_secs(4), Duration::from_secs(2)), None).await;
        let connection = app.ready_connection("ins_sandbox_bank", "user-c").await;
        let expires = connection.consent_expires_at.expect("the sandbox's consent has a term");
        let created = connection.created_at.unwrap();
        assert_eq!(expires.seconds - created.seconds, 4, "the term runs from the sign-in");

        use pb::ConnectionEventType as T;
        let events = events_until(&mut app, &connection.id, T::ConsentExpired).await;
        assert_eq!(count(&events, T::ConsentExpiring), 1, "one warning: {events:?}");
        assert_eq!(count(&events, T::ConsentExpired), 1, "one lapse: {events:?}");
        let warning = events.iter().position(|e| e.r#type() == T::ConsentExpiring).unwrap();
        let lapse = events.iter().position(|e| e.r#type() == T::ConsentExpired).unwrap();
        assert!(warning < lapse, "the warning comes first");
        let warned_at = events[warning].occurred_at.unwrap().seconds;
        assert!(warned_at >= expires.seconds - 2 && warned_at < expires.seconds, "warned within the lead time");
        let lapsed = events[lapse].connection.clone().unwrap();
        assert_eq!(lapsed.state(), pb::ConnectionState::LoginRequired);
        assert_eq!(lapsed.error.as_ref().unwrap().reason(), pb::ErrorReason::ConsentExpired);
        assert!(lapsed.error.as_ref().unwrap().user_action_required);
        assert!(events[lapse].occurred_at.unwrap().seconds >= expires.seconds, "not before its time");

        // Data already imported stays readable; a repair session renews the consent.
        app.accounts
            .list_accounts(pb::ListAccountsRequest { connection_id: connection.id.clone(), ..Default::default() })
            .await
            .expect("data stays readable");
        let session = app.repair_session(&connection.id).await;
        app.submit(&session.id, "user_good", "pass_good").await.expect("signed in again");
        let renewed = app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
        assert!(renewed.error.is_none());
        assert!(renewed.consent_expires_at.unwrap().seconds > expires.seconds, "a new term");
    }
}

#[tokio::test]
async fn with_two_replicas_the_warning_and_the_lapse_go_out_once() {
    let mut app =
        spawn_app_with(Backend::Postgres, consent_terms(Duration::from_secs(3), Duration::from_secs(2)), None).await;
    let replicas = [app.spawn_replica().await, app.spawn_replica().await];
    let connection = app.ready_connection("ins_sandbox_utility", "user-two").await;
    use pb::ConnectionEventType as T;
    let events = events_until(&mut app, &connection.id, T::ConsentExpired).await;
    assert_eq!(count(&events, T::ConsentExpiring), 1, "{events:?}");
    assert_eq!(count(&events, T::ConsentExpired), 1, "{events:?}");
    drop(replicas);
}

#[tokio::test]
async fn the_sandbox_sets_a_consent_term_that_warns_and_lapses_at_its_time() {
    let mut app = spawn_app_with(Backend::Sqlite, |_| {}, None).await;
    let connection = app.ready_connection("ins_sandbox_bank", "user-s").await;
    assert!(connection.consent_expires_at.is_none(), "no term unless one is configured");

    // Within the default 7-day lead: the warning goes out at once, the lapse a second later.
    let soon = prost_types::Timestamp::from(std::time::SystemTime::now() + Duration::from_secs(1));
    let set = app
        .sandbox
        .set_consent_expiry(pb::SetConsentExpiryRequest {
            connection_id: connection.id.clone(),
            consent_expires_at: Some(soon),
        })
        .await
        .expect("the control applies")
        .into_inner()
        .connection
        .unwrap();
    assert_eq!(set.consent_expires_at.unwrap().seconds, soon.seconds);
    use pb::ConnectionEventType as T;
    let events = events_until(&mut app, &connection.id, T::ConsentExpired).await;
    assert_eq!((count(&events, T::ConsentExpiring), count(&events, T::ConsentExpired)), (1, 1), "{events:?}");

    let status = app
        .sandbox
        .set_consent_expiry(pb::SetConsentExpiryRequest {
            connection_id: connection.id.clone(),
            consent_expires_at: None,
        })
        .await
        .unwrap_err();
    crate::support::status::assert_error("no time", &status, tonic::Code::InvalidArgument, "INVALID_FIELD");
}

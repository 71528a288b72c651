//! ExchangePublicToken: exactly once, whatever the concurrency, retries and tenants.

use crate::sandbox::RecordingSandbox;
use crate::support::database::Backend;
use crate::support::server::{spawn_app, spawn_app_with};
use crate::support::status::assert_error;
use linkgate::pb;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

async fn counting_app(backend: Backend) -> (crate::support::server::TestApp, Arc<AtomicUsize>) {
    let (registry, exchanges, _) = RecordingSandbox::registry();
    (spawn_app_with(backend, |_| {}, Some(registry)).await, exchanges)
}

on_both_backends! {
    async fn twenty_concurrent_exchanges_of_one_token_make_one_provider_call_and_one_connection(backend: Backend) {
        let (mut app, exchanges) = counting_app(backend).await;
        let token = app.public_token("ins_sandbox_bank", "user-c").await;

        let calls = (0..20).map(|_| {
            let mut link = app.link.clone();
            let token = token.clone();
            tokio::spawn(async move {
                link.exchange_public_token(pb::ExchangePublicTokenRequest {
                    provider: "sandbox".into(),
                    public_token: token,
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().connection.unwrap().id)
            })
        });
        let ids: Vec<String> = futures::future::join_all(calls)
            .await
            .into_iter()
            .map(|joined| joined.unwrap().expect("every exchange succeeds"))
            .collect();

        assert!(ids.iter().all(|id| *id == ids[0]), "all callers get the same connection: {ids:?}");
        assert_eq!(exchanges.load(Ordering::SeqCst), 1, "one provider call");
        let listed = app.connections.list_connections(pb::ListConnectionsRequest::default()).await.unwrap().into_inner();
        assert_eq!(listed.connections.len(), 1, "one connection recorded");

        // A later retry is answered from the record too.
        let retried = app.exchange("sandbox", &token).await.unwrap();
        assert_eq!(retried.id, ids[0]);
        assert_eq!(exchanges.load(Ordering::SeqCst), 1);
    }
}

on_both_backends! {
    async fn a_token_whose_connection_was_deleted_is_used_up(backend: Backend) {
        let mut app = spawn_app(backend).await;
        let token = app.public_token("ins_sandbox_bank", "user-d").await;
        let connection = app.exchange("sandbox", &token).await.unwrap();
        app.connections
            .delete_connection(pb::DeleteConnectionRequest { connection_id: connection.id, ..Default::default() })
            .await
            .unwrap();
        let status = app.exchange("sandbox", &token).await.unwrap_err();
        assert_error("exchange after delete", &status, tonic::Code::FailedPrecondition, "PUBLIC_TOKEN_USED");
    }
}

#[tokio::test]
async fn an_expired_token_is_refused_and_nothing_is_written() {
    let mut app =
        spawn_app_with(Backend::Postgres, |s| s.providers.sandbox.public_token_ttl = Duration::from_millis(300), None)
            .await;
    let token = app.public_token("ins_sandbox_bank", "user-e").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let status = app.exchange("sandbox", &token).await.unwrap_err();
    assert_error("expired token", &status, tonic::Code::FailedPrecondition, "PUBLIC_TOKEN_EXPIRED");
    let listed = app.connections.list_connections(pb::ListConnectionsRequest::default()).await.unwrap().into_inner();
    assert!(listed.connections.is_empty());
}

#[tokio::test]
async fn a_token_the_provider_does_not_know_is_not_found_and_can_be_retried_cleanly() {
    let mut app = spawn_app(Backend::Postgres).await;
    for attempt in 0..2 {
        let status = app.exchange("sandbox", "public-sandbox-ins_sandbox_bank-not-a-real-token").await.unwrap_err();
        assert_error(&format!("attempt {attempt}"), &status, tonic::Code::NotFound, "PUBLIC_TOKEN_NOT_FOUND");
    }
    let listed = app.connections.list_connections(pb::ListConnectionsRequest::default()).await.unwrap().into_inner();
    assert!(listed.connections.is_empty());
}

on_both_backends! {
    async fn a_second_link_of_the_same_accounts_names_the_connection_it_duplicates(backend: Backend) {
        let mut app = spawn_app(backend).await;
        let first = app.ready_connection("ins_sandbox_bank", "user-dup").await;
        assert!(first.duplicate_of_connection_id.is_empty(), "the first link duplicates nothing");

        let token = app.public_token("ins_sandbox_bank", "user-dup").await;
        let second = app.exchange("sandbox", &token).await.expect("a second link is allowed");
        assert_eq!(second.duplicate_of_connection_id, first.id, "the exchange says which connection it repeats");
        let third_token = app.public_token("ins_sandbox_bank", "user-dup").await;
        let third = app.exchange("sandbox", &third_token).await.unwrap();
        assert_eq!(third.duplicate_of_connection_id, first.id, "the oldest live one is named");
        let watched = app
            .connections
            .get_connection(pb::GetConnectionRequest { connection_id: second.id.clone() })
            .await
            .unwrap()
            .into_inner()
            .connection
            .unwrap();
        assert_eq!(watched.duplicate_of_connection_id, first.id, "reads and events carry it too");

        // Another institution, another user, or a deleted original: no duplicate.
        let other_bank = app.ready_connection("ins_sandbox_utility", "user-dup").await;
        assert!(other_bank.duplicate_of_connection_id.is_empty());
        let other_user = app.ready_connection("ins_sandbox_bank", "user-other").await;
        assert!(other_user.duplicate_of_connection_id.is_empty());
        for id in [&first.id, &second.id, &third.id] {
            app.connections
                .delete_connection(pb::DeleteConnectionRequest { connection_id: id.clone(), ..Default::default() })
                .await
                .unwrap();
        }
        let again = app.ready_connection("ins_sandbox_bank", "user-dup").await;
        assert!(again.duplicate_of_connection_id.is_empty(), "deleted connections are not duplicated");
    }
}

//! Link sessions: credential checks, MFA, the hosted flow and idempotent creation.

use crate::support::database::Backend;
use crate::support::server::{PATIENCE, TestApp, spawn_app};
use crate::support::status::assert_error;
use linkgate::pb;
use tokio_stream::StreamExt;

#[tokio::test]
async fn wrong_credentials_fail_the_session_with_a_reason() {
    let mut app = spawn_app(Backend::Postgres).await;
    let session = app.create_session("ins_sandbox_bank", "user-1").await;
    let failed = app.submit(&session.id, "user_good", "wrong").await.unwrap();
    assert_eq!(failed.state(), pb::LinkSessionState::Failed);
    assert_eq!(failed.failure_reason(), pb::ErrorReason::InvalidCredentials);
    assert!(failed.public_token.is_empty());

    // A failed session is settled: submitting again is a state error.
    let again = app.submit(&session.id, "user_good", "pass_good").await.unwrap_err();
    assert_error("submit on a failed session", &again, tonic::Code::FailedPrecondition, "LINK_SESSION_WRONG_STATE");
}

#[tokio::test]
async fn a_wrong_mfa_answer_fails_the_session() {
    let mut app = spawn_app(Backend::Postgres).await;
    let session = app.create_session("ins_sandbox_bank", "user-2").await;
    app.submit(&session.id, "user_mfa", "pass_good").await.unwrap();
    let failed = app
        .link
        .answer_mfa(pb::AnswerMfaRequest {
            link_session_id: session.id.clone(),
            answer: "0000".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .link_session
        .unwrap();
    assert_eq!(failed.state(), pb::LinkSessionState::Failed);
    assert_eq!(failed.failure_reason(), pb::ErrorReason::InvalidMfaAnswer);
}

on_both_backends! {
    async fn the_hosted_flow_issues_a_token_without_credentials(backend: Backend) {
        let mut app = spawn_app(backend).await;
        let session = app
            .link
            .create_link_session(pb::CreateLinkSessionRequest {
                provider: "sandbox".into(),
                external_user_id: "user-h".into(),
                institution_id: "ins_sandbox_broker".into(),
                flow: pb::LinkFlow::Hosted as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .link_session
            .unwrap();
        assert!(!session.hosted_link_url.is_empty());
        assert!(!session.link_token.is_empty());
        let mut stream = app
            .link
            .watch_link_session(pb::WatchLinkSessionRequest { link_session_id: session.id.clone() })
            .await
            .unwrap()
            .into_inner();
        let succeeded = tokio::time::timeout(PATIENCE, async {
            while let Some(message) = stream.next().await {
                let s = message.unwrap().link_session.unwrap();
                if s.state() == pb::LinkSessionState::Succeeded {
                    return s;
                }
            }
            panic!("stream ended before success");
        })
        .await
        .unwrap();
        assert!(succeeded.public_token.starts_with("public-sandbox-ins_sandbox_broker-"));
        let connection = app.exchange("sandbox", &succeeded.public_token).await.unwrap();
        assert_eq!(connection.institution_name, "Sandbox Broker");
    }
}

#[tokio::test]
async fn creating_with_the_same_request_id_returns_the_first_session_and_different_parameters_are_refused() {
    let mut app = spawn_app(Backend::Postgres).await;
    let request = pb::CreateLinkSessionRequest {
        provider: "sandbox".into(),
        external_user_id: "user-3".into(),
        institution_id: "ins_sandbox_bank".into(),
        request_id: "create-1".into(),
        ..Default::default()
    };
    let first = app.link.create_link_session(request.clone()).await.unwrap().into_inner().link_session.unwrap();
    let second = app.link.create_link_session(request.clone()).await.unwrap().into_inner().link_session.unwrap();
    assert_eq!(first.id, second.id);

    let changed = pb::CreateLinkSessionRequest { external_user_id: "someone-else".into(), ..request };
    let status = app.link.create_link_session(changed).await.unwrap_err();
    assert_error("reused request id", &status, tonic::Code::InvalidArgument, "REQUEST_ID_REUSED");
}

#[tokio::test]
async fn missing_credential_fields_are_named_and_the_session_is_untouched() {
    let mut app = spawn_app(Backend::Postgres).await;
    let session = app.create_session("ins_sandbox_bank", "user-4").await;
    let status = app
        .link
        .submit_credentials(pb::SubmitCredentialsRequest {
            link_session_id: session.id.clone(),
            credentials: [("username".to_owned(), "user_good".to_owned())].into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_error("no password", &status, tonic::Code::InvalidArgument, "INVALID_FIELD");
    let violations = tonic_types::StatusExt::get_details_bad_request(&status).unwrap().field_violations;
    assert_eq!(violations[0].field, "credentials[password]");
    let unchanged = app
        .link
        .get_link_session(pb::GetLinkSessionRequest { link_session_id: session.id })
        .await
        .unwrap()
        .into_inner()
        .link_session
        .unwrap();
    assert_eq!(unchanged.state(), pb::LinkSessionState::Created);
}

#[tokio::test]
async fn list_providers_names_the_offered_ones_with_their_health_and_those_not_offered() {
    let mut app = spawn_app(Backend::Sqlite).await;
    let list =
        async |app: &mut TestApp| app.link.list_providers(pb::ListProvidersRequest {}).await.unwrap().into_inner();

    let providers = list(&mut app).await.providers;
    let ids: Vec<&str> = providers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["deck", "moneykit", "sandbox", "vumi"], "every supported provider, by id");
    let deck = &providers[0];
    assert!(!deck.enabled && deck.flows.is_empty(), "Deck has no credentials here: listed, not offered");
    let sandbox = &providers[2];
    assert!(sandbox.enabled && !sandbox.products.is_empty());
    assert_eq!(sandbox.health(), pb::ProviderHealth::Unspecified, "no call made yet");

    app.ready_connection("ins_sandbox_bank", "user-1").await;
    assert_eq!(list(&mut app).await.providers[2].health(), pb::ProviderHealth::Healthy);
}

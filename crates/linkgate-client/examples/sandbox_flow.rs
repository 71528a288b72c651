//! Walks linkgate's sandbox flow with the crate's generated gRPC clients.
//!
//! Links Sandbox Bank with MFA, exchanges the public token, watches the connection until its first
//! import is done, lists the accounts, then deletes the connection. Every call and every stream is
//! bounded by 30 s; any failure exits non-zero and prints the error's `ErrorInfo` reason.
//!
//! ```sh
//! LINKGATE_ADDR=127.0.0.1:50051 cargo run --example sandbox_flow
//! ```
//!
//! `LINKGATE_API_KEY`, when set, is sent as `authorization: Bearer <key>` (not needed in dev mode).

use anyhow::{Context, bail};
use linkgate_client::pb;
use linkgate_client::pb::account_service_client::AccountServiceClient;
use linkgate_client::pb::connection_service_client::ConnectionServiceClient;
use linkgate_client::pb::link_service_client::LinkServiceClient;
use std::process::ExitCode;
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::Endpoint;
use tonic_types::StatusExt;

/// The bound on every call and every stream.
const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> ExitCode {
    let addr = std::env::var("LINKGATE_ADDR").unwrap_or_else(|_| "127.0.0.1:50051".to_owned());
    let url = if addr.contains("://") { addr } else { format!("http://{addr}") };
    println!("linkgate at {url}");
    match run(url).await {
        Ok(()) => {
            println!("sandbox flow complete");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Describes a failed call with linkgate's machine-readable reason from `google.rpc.ErrorInfo`.
fn failed(status: tonic::Status) -> anyhow::Error {
    let reason = status.get_details_error_info().map_or_else(|| "(no ErrorInfo)".to_owned(), |info| info.reason);
    anyhow::anyhow!("{:?}: {} (reason {reason})", status.code(), status.message())
}

/// The next message of `stream`, or `None` when it ended, waiting at most until `deadline`.
async fn next_before<T>(stream: &mut tonic::Streaming<T>, deadline: Instant) -> anyhow::Result<Option<T>> {
    tokio::time::timeout_at(deadline, stream.message()).await.context("timed out waiting on a stream")?.map_err(failed)
}

async fn run(url: String) -> anyhow::Result<()> {
    // `timeout` bounds each unary call (and sends it as the gRPC deadline); streams get their own.
    let channel = Endpoint::from_shared(url)?.connect_timeout(TIMEOUT).timeout(TIMEOUT).connect().await?;
    let authorization: Option<tonic::metadata::AsciiMetadataValue> = match std::env::var("LINKGATE_API_KEY") {
        Ok(key) => Some(format!("Bearer {key}").parse().context("LINKGATE_API_KEY is not a valid header value")?),
        Err(_) => None,
    };
    let authorize = move |mut request: tonic::Request<()>| -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &authorization {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    };
    let mut link = LinkServiceClient::with_interceptor(channel.clone(), authorize.clone());
    let mut connections = ConnectionServiceClient::with_interceptor(channel.clone(), authorize.clone());
    let mut accounts = AccountServiceClient::with_interceptor(channel, authorize);

    let providers = link.list_providers(pb::ListProvidersRequest {}).await.map_err(failed)?.into_inner().providers;
    let providers: Vec<_> =
        providers.iter().map(|p| format!("{} ({})", p.id, if p.enabled { "enabled" } else { "disabled" })).collect();
    println!("providers: {}", providers.join(", "));

    let session = link
        .create_link_session(pb::CreateLinkSessionRequest {
            provider: "sandbox".into(),
            institution_id: "ins_sandbox_bank".into(),
            external_user_id: "example-user".into(),
            ..Default::default()
        })
        .await
        .map_err(failed)?
        .into_inner()
        .link_session
        .context("CreateLinkSession answered no session")?;
    println!("link session {}: {}", session.id, session.state().as_str_name());

    // Watch from the start so the stream reports every state the session passes through. The first
    // message is the current state; reading it means the watch is established.
    let deadline = Instant::now() + TIMEOUT;
    let mut session_events = link
        .watch_link_session(pb::WatchLinkSessionRequest { link_session_id: session.id.clone() })
        .await
        .map_err(failed)?
        .into_inner();
    let first = next_before(&mut session_events, deadline).await?.context("the link session stream ended at once")?;
    println!("  watch: {}", first.link_session.unwrap_or_default().state().as_str_name());

    let asked = link
        .submit_credentials(pb::SubmitCredentialsRequest {
            link_session_id: session.id.clone(),
            credentials: [("username", "user_mfa"), ("password", "pass_good")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..Default::default()
        })
        .await
        .map_err(failed)?
        .into_inner()
        .link_session
        .unwrap_or_default();
    println!("submitted credentials: {}, question: {:?}", asked.state().as_str_name(), asked.mfa_question);

    let answered = link
        .answer_mfa(pb::AnswerMfaRequest {
            link_session_id: session.id.clone(),
            answer: "1234".into(),
            ..Default::default()
        })
        .await
        .map_err(failed)?
        .into_inner()
        .link_session
        .unwrap_or_default();
    println!("answered MFA: {}", answered.state().as_str_name());

    // The stream ends by itself after a terminal state.
    let mut public_token = None;
    while let Some(message) = next_before(&mut session_events, deadline).await? {
        let s = message.link_session.unwrap_or_default();
        println!("  watch: {}", s.state().as_str_name());
        match s.state() {
            pb::LinkSessionState::Succeeded => public_token = Some(s.public_token),
            pb::LinkSessionState::Failed | pb::LinkSessionState::Expired => {
                bail!("link session ended {}: {}", s.state().as_str_name(), s.failure_message)
            }
            _ => {}
        }
    }
    let public_token = public_token.context("the link session stream ended before SUCCEEDED")?;

    let connection = link
        .exchange_public_token(pb::ExchangePublicTokenRequest {
            provider: "sandbox".into(),
            public_token,
            ..Default::default()
        })
        .await
        .map_err(failed)?
        .into_inner()
        .connection
        .context("ExchangePublicToken answered no connection")?;
    println!("exchanged the public token: connection {} is {}", connection.id, connection.state().as_str_name());

    // This stream stays open until the connection is deleted: stop (drop) it once it is READY.
    let deadline = Instant::now() + TIMEOUT;
    let mut events = connections
        .watch_connection(pb::WatchConnectionRequest { connection_id: connection.id.clone(), after_event_id: 0 })
        .await
        .map_err(failed)?
        .into_inner();
    loop {
        let message = next_before(&mut events, deadline).await?.context("the connection stream ended before READY")?;
        let event = message.event.unwrap_or_default();
        let state = event.connection.unwrap_or_default().state();
        println!("  event {}: {}", event.event_id, state.as_str_name());
        if state == pb::ConnectionState::Ready {
            break;
        }
    }
    drop(events);

    let listed = accounts
        .list_accounts(pb::ListAccountsRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .map_err(failed)?
        .into_inner()
        .accounts;
    println!("{} accounts:", listed.len());
    for account in &listed {
        let current = account.balances.clone().unwrap_or_default().current.unwrap_or_default();
        println!(
            "  {:<24} {:<28} {:>12} {}",
            account.name,
            account.r#type().as_str_name(),
            current.amount,
            current.currency
        );
    }

    let deleted = connections
        .delete_connection(pb::DeleteConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .map_err(failed)?
        .into_inner()
        .connection
        .unwrap_or_default();
    println!("deleted connection {}: {}", connection.id, deleted.state().as_str_name());
    Ok(())
}

//! A thin layer over the generated clients for Rust services: connect with an API key, give
//! every call a request id, and watch connections across disconnects and replica restarts
//! without missing or repeating an event.
//!
//! ```no_run
//! use futures::StreamExt;
//! use linkgate_client::Client;
//! use linkgate_client::pb;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let mut client = Client::connect("http://127.0.0.1:50051", Some("lgk_…")).await?;
//! let connections = client.connections.list_connections(pb::ListConnectionsRequest::default()).await?;
//! println!("{} connections", connections.into_inner().connections.len());
//!
//! // Every change of one user's connections, resumed after the last event seen whenever the
//! // stream breaks (a replica shutting down, a network blip).
//! let mut changes = client.watch_connections(pb::WatchConnectionsRequest {
//!     external_user_id: "user-42".into(),
//!     ..Default::default()
//! });
//! while let Some(event) = changes.next().await {
//!     let event = event?;
//!     let connection = event.connection.unwrap_or_default();
//!     println!("event {}: {} is {:?}", event.event_id, connection.id, connection.state());
//! }
//! # Ok(())
//! # }
//! ```

pub mod pb {
    //! The generated `linkgate.v1` messages, enums and client stubs.
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("linkgate.v1");
}

use crate::pb::account_service_client::AccountServiceClient;
use crate::pb::connection_service_client::ConnectionServiceClient;
use crate::pb::link_service_client::LinkServiceClient;
use crate::pb::portfolio_service_client::PortfolioServiceClient;
use crate::pb::statement_service_client::StatementServiceClient;
use futures::Stream;
use std::pin::Pin;
use std::time::Duration;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// The metadata key of a call's request id: linkgate echoes it and names it in every error.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Reconnection attempts of a watch before it gives up and reports the last error.
const MAX_RECONNECTS: u32 = 10;
/// The first pause before reconnecting; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Adds `authorization` and, unless the call already has one, a fresh `x-request-id`.
#[derive(Clone)]
pub struct CallMetadata {
    authorization: Option<AsciiMetadataValue>,
}

impl Interceptor for CallMetadata {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(authorization) = &self.authorization {
            request.metadata_mut().insert("authorization", authorization.clone());
        }
        if !request.metadata().contains_key(REQUEST_ID_HEADER) {
            let id = uuid::Uuid::now_v7().to_string();
            request.metadata_mut().insert(REQUEST_ID_HEADER, id.parse().expect("a UUID is ASCII"));
        }
        Ok(request)
    }
}

/// A channel whose calls carry the client's key and request ids.
pub type Authed = InterceptedService<Channel, CallMetadata>;

/// Clients of every linkgate service over one channel.
#[derive(Clone)]
pub struct Client {
    /// LinkService.
    pub link: LinkServiceClient<Authed>,
    /// ConnectionService.
    pub connections: ConnectionServiceClient<Authed>,
    /// AccountService.
    pub accounts: AccountServiceClient<Authed>,
    /// PortfolioService.
    pub portfolios: PortfolioServiceClient<Authed>,
    /// StatementService.
    pub statements: StatementServiceClient<Authed>,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address is not a URI.
    #[error("invalid address: {0}")]
    Address(String),
    /// The API key cannot travel in a header.
    #[error("the API key is not a valid header value")]
    Key,
    /// Connecting failed.
    #[error("connecting to linkgate: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl Client {
    /// Connects to linkgate at `addr` (`http://host:port`, or `https://…` with TLS), sending
    /// `api_key` on every call (none: dev mode).
    pub async fn connect(addr: &str, api_key: Option<&str>) -> Result<Self, ClientError> {
        let endpoint = Endpoint::from_shared(addr.to_owned()).map_err(|_| ClientError::Address(addr.to_owned()))?;
        Self::from_channel(endpoint.connect().await?, api_key)
    }

    /// Clients over an existing channel (TLS, load balancing and timeouts are the channel's).
    pub fn from_channel(channel: Channel, api_key: Option<&str>) -> Result<Self, ClientError> {
        let authorization =
            api_key.map(|key| format!("Bearer {key}").parse().map_err(|_| ClientError::Key)).transpose()?;
        let metadata = CallMetadata { authorization };
        Ok(Self {
            link: LinkServiceClient::with_interceptor(channel.clone(), metadata.clone()),
            connections: ConnectionServiceClient::with_interceptor(channel.clone(), metadata.clone()),
            accounts: AccountServiceClient::with_interceptor(channel.clone(), metadata.clone()),
            portfolios: PortfolioServiceClient::with_interceptor(channel.clone(), metadata.clone()),
            statements: StatementServiceClient::with_interceptor(channel, metadata),
        })
    }

    /// `WatchConnections` that survives disconnects: when the stream breaks with UNAVAILABLE
    /// (a replica shutting down, a lost connection) it reconnects with backoff and resumes after
    /// the last event it yielded, so each event arrives once and in order. Other errors, and
    /// [`MAX_RECONNECTS`] failed reconnections in a row, end the stream with the error.
    pub fn watch_connections(&self, request: pb::WatchConnectionsRequest) -> ConnectionEvents {
        let state = Watch { client: self.connections.clone(), request, stream: None, failures: 0 };
        Box::pin(futures::stream::unfold(Some(state), |state| async move {
            let mut watch = state?;
            loop {
                let stream = match watch.stream.as_mut() {
                    Some(stream) => stream,
                    None => match watch.client.watch_connections(watch.request.clone()).await {
                        Ok(response) => watch.stream.insert(response.into_inner()),
                        Err(status) => match watch.retry(status).await {
                            Ok(()) => continue,
                            Err(status) => return Some((Err(status), None)),
                        },
                    },
                };
                match stream.message().await {
                    Ok(Some(message)) => {
                        watch.failures = 0;
                        let Some(event) = message.event else { continue };
                        watch.request.after_event_id = watch.request.after_event_id.max(event.event_id);
                        return Some((Ok(event), Some(watch)));
                    }
                    Ok(None) => return None,
                    Err(status) => {
                        watch.stream = None;
                        if let Err(status) = watch.retry(status).await {
                            return Some((Err(status), None));
                        }
                    }
                }
            }
        }))
    }
}

/// The events of a resumable watch.
pub type ConnectionEvents = Pin<Box<dyn Stream<Item = Result<pb::ConnectionEvent, tonic::Status>> + Send + 'static>>;

/// The state of a resumable watch.
struct Watch {
    client: ConnectionServiceClient<Authed>,
    request: pb::WatchConnectionsRequest,
    stream: Option<tonic::Streaming<pb::WatchConnectionsResponse>>,
    failures: u32,
}

impl Watch {
    /// Waits before the next attempt, or gives the error back when retrying cannot help.
    async fn retry(&mut self, status: tonic::Status) -> Result<(), tonic::Status> {
        let transient = matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Unknown);
        if !transient || self.failures >= MAX_RECONNECTS {
            return Err(status);
        }
        let backoff = (FIRST_BACKOFF * 2u32.pow(self.failures)).min(MAX_BACKOFF);
        self.failures += 1;
        tokio::time::sleep(backoff).await;
        Ok(())
    }
}

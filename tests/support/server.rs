//! Starting linkgate in-process for the end-to-end tests.

use clap::Parser;
use linkgate::config::Settings;
use linkgate::pb;
use linkgate::pb::account_service_client::AccountServiceClient;
use linkgate::pb::connection_service_client::ConnectionServiceClient;
use linkgate::pb::link_service_client::LinkServiceClient;
use linkgate::pb::portfolio_service_client::PortfolioServiceClient;
use linkgate::pb::statement_service_client::StatementServiceClient;
use linkgate::server::Application;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// `linkgate serve`'s settings, parsed from flags so every setting a test does not name keeps
/// its default.
#[derive(Parser)]
struct Serve {
    #[command(flatten)]
    settings: Settings,
}

/// The settings `linkgate serve` would run with given `flags`.
pub fn serve_settings(flags: &[(&str, &str)]) -> Settings {
    let args = std::iter::once("serve").chain(flags.iter().flat_map(|(flag, value)| [*flag, *value]));
    Serve::try_parse_from(args).expect("test flags parse").settings
}

/// Waits until the server behind `channel` reports SERVING.
pub async fn wait_until_serving(channel: &Channel) {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await;
        if status.is_ok_and(|s| {
            s.into_inner().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        }) {
            return;
        }
        assert!(Instant::now() < deadline, "linkgate never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long any wait may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);
/// The client id linkgate presents to a provider's mock.
pub const CLIENT_ID: &str = "test-client";
/// The client secret linkgate presents to a provider's mock.
pub const SECRET: &str = "test-secret";

/// How a test's provider calls are bounded.
pub struct Timing {
    pub request_timeout: &'static str,
    pub call_timeout: &'static str,
}

/// The bounds of most tests.
pub const QUICK: Timing = Timing { request_timeout: "2s", call_timeout: "5s" };

/// A linkgate pointed at one provider, and its gRPC clients. Stops when dropped.
pub struct Gateway {
    pub link: LinkServiceClient<Channel>,
    pub connections: ConnectionServiceClient<Channel>,
    pub accounts: AccountServiceClient<Channel>,
    pub portfolios: PortfolioServiceClient<Channel>,
    pub statements: StatementServiceClient<Channel>,
    stop: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Where a [`Gateway`] keeps its data and which provider it calls, and how.
pub struct Upstream<'a> {
    pub database_url: &'a str,
    pub encryption_key: &'a str,
    /// The provider's flag prefix: `deck`, `vumi`, `moneykit`.
    pub provider: &'a str,
    pub base_url: &'a str,
    pub client_secret: &'a str,
    pub timing: &'a Timing,
}

impl Gateway {
    /// Starts linkgate with the test defaults for `upstream`, the flags `overrides` replacing or
    /// extending them, and waits until it serves.
    pub async fn start(upstream: &Upstream<'_>, overrides: &[(&str, &str)]) -> Self {
        let provider_flag = |name: &str| format!("--{}-{name}", upstream.provider);
        let mut flags: Vec<(String, String)> = [
            ("--grpc-addr", "127.0.0.1:0"),
            ("--http-addr", "127.0.0.1:0"),
            ("--database-url", upstream.database_url),
            ("--database-max-connections", "5"),
            ("--encryption-key", upstream.encryption_key),
            ("--tenant-calls-per-second", "1000"),
            ("--tenant-call-burst", "1000"),
            ("--sandbox-enabled", "false"),
            ("--sync-tick", "25ms"),
        ]
        .into_iter()
        .map(|(flag, value)| (flag.to_owned(), value.to_owned()))
        .chain(
            [
                ("base-url", upstream.base_url),
                ("client-id", CLIENT_ID),
                ("client-secret", upstream.client_secret),
                ("request-timeout", upstream.timing.request_timeout),
                ("call-timeout", upstream.timing.call_timeout),
                ("max-attempts", "3"),
                ("poll-interval", "100ms"),
            ]
            .into_iter()
            .map(|(name, value)| (provider_flag(name), value.to_owned())),
        )
        .collect();
        for &(name, value) in overrides {
            match flags.iter_mut().find(|(flag, _)| flag == name) {
                Some(flag) => flag.1 = value.to_owned(),
                None => flags.push((name.to_owned(), value.to_owned())),
            }
        }
        let flags: Vec<(&str, &str)> = flags.iter().map(|(flag, value)| (flag.as_str(), value.as_str())).collect();
        let application = Application::build(serve_settings(&flags)).await.expect("linkgate builds");
        let grpc_addr = application.grpc_addr();
        let stop = CancellationToken::new();
        let server = tokio::spawn(application.run_until_stopped(stop.clone()));
        let channel = Channel::from_shared(format!("http://{grpc_addr}")).unwrap().connect().await.expect("connects");
        wait_until_serving(&channel).await;
        Self {
            link: LinkServiceClient::new(channel.clone()),
            connections: ConnectionServiceClient::new(channel.clone()),
            accounts: AccountServiceClient::new(channel.clone()),
            portfolios: PortfolioServiceClient::new(channel.clone()),
            statements: StatementServiceClient::new(channel),
            stop,
            server: Some(server),
        }
    }

    /// Stops linkgate and waits for a clean stop.
    pub async fn shut_down(&mut self) {
        self.stop.cancel();
        let server = self.server.take().expect("server running");
        tokio::time::timeout(PATIENCE, server).await.expect("stops in time").expect("server task").expect("clean stop");
    }

    /// Exchanges `public_token` of `provider` for a connection.
    pub async fn exchange(&mut self, provider: &str, public_token: &str) -> Result<pb::Connection, tonic::Status> {
        self.exchange_for(provider, "", public_token).await
    }

    /// As [`Gateway::exchange`], naming the end user `external_user_id`.
    pub async fn exchange_for(
        &mut self,
        provider: &str,
        external_user_id: &str,
        public_token: &str,
    ) -> Result<pb::Connection, tonic::Status> {
        self.link
            .exchange_public_token(pb::ExchangePublicTokenRequest {
                provider: provider.into(),
                public_token: public_token.into(),
                external_user_id: external_user_id.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().connection.unwrap())
    }

    pub async fn connection_count(&mut self) -> usize {
        let request = pb::ListConnectionsRequest::default();
        self.connections.list_connections(request).await.unwrap().into_inner().connections.len()
    }

    /// Watches link session `id` until it reaches `state`, failing if it fails or expires first.
    pub async fn wait_for_session(&mut self, id: &str, state: pb::LinkSessionState) -> pb::LinkSession {
        let request = pb::WatchLinkSessionRequest { link_session_id: id.into() };
        let mut stream = self.link.watch_link_session(request).await.expect("watch starts").into_inner();
        tokio::time::timeout(PATIENCE, async {
            while let Some(message) = stream.next().await {
                let session = message.expect("stream item").link_session.unwrap();
                if session.state() == state {
                    return session;
                }
                assert!(
                    !matches!(session.state(), pb::LinkSessionState::Failed | pb::LinkSessionState::Expired),
                    "session ended {:?} ({}) while waiting for {state:?}",
                    session.state(),
                    session.failure_reason
                );
            }
            panic!("stream ended before {state:?}");
        })
        .await
        .unwrap_or_else(|_| panic!("session never reached {state:?}"))
    }

    /// Watches connection `id` until it reaches `state`.
    pub async fn wait_for_connection(&mut self, id: &str, state: pb::ConnectionState) -> pb::Connection {
        let request = pb::WatchConnectionRequest { connection_id: id.into(), ..Default::default() };
        let mut stream = self.connections.watch_connection(request).await.expect("watch starts").into_inner();
        tokio::time::timeout(PATIENCE, async {
            while let Some(message) = stream.next().await {
                let connection = message.expect("stream item").event.unwrap().connection.unwrap();
                if connection.state() == state {
                    return connection;
                }
            }
            panic!("stream ended before {state:?}");
        })
        .await
        .unwrap_or_else(|_| panic!("connection never reached {state:?}"))
    }
}

/// An amount and its currency, for comparing money exactly.
pub fn amount(money: &Option<pb::Money>) -> (&str, &str) {
    let money = money.as_ref().expect("an amount");
    (money.amount.as_str(), money.currency.as_str())
}

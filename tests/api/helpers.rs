//! The test harness: a real linkgate server on a random port over a fresh database (a new
//! PostgreSQL database per test, or a SQLite file in a temporary directory), typed gRPC clients,
//! and shortcuts for the sandbox flow.

use linkgate::config::{
    DatabaseSettings, LimitSettings, ProviderSettings, SandboxSettings, SecretSettings, Settings, SyncSettings,
};
use linkgate::crypto::Sealer;
use linkgate::pb;
use linkgate::pb::account_service_client::AccountServiceClient;
use linkgate::pb::connection_service_client::ConnectionServiceClient;
use linkgate::pb::link_service_client::LinkServiceClient;
use linkgate::pb::portfolio_service_client::PortfolioServiceClient;
use linkgate::pb::statement_service_client::StatementServiceClient;
use linkgate::providers::Registry;
use linkgate::startup::Application;
use secrecy::SecretString;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic_types::StatusExt;

pub use crate::support::database::{Backend, TestDatabase};

/// How long any wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running server and clients for it. Stops the server when dropped.
pub struct TestApp {
    pub http_addr: SocketAddr,
    pub link: LinkServiceClient<Channel>,
    pub connections: ConnectionServiceClient<Channel>,
    pub accounts: AccountServiceClient<Channel>,
    pub portfolios: PortfolioServiceClient<Channel>,
    pub statements: StatementServiceClient<Channel>,
    pub channel: Channel,
    stop: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Dropped after the server: the database outlives every connection to it.
    _database: TestDatabase,
}

/// Settings of a test server: fast sandbox timings, random ports, a fixed key.
pub fn test_settings(database_url: &str) -> Settings {
    Settings {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        database: DatabaseSettings { database_url: database_url.to_owned(), database_max_connections: 5 },
        secrets: SecretSettings {
            encryption_key: Some(SecretString::from(Sealer::generate_key())),
            api_key_pepper: None,
        },
        limits: LimitSettings {
            tenant_calls_per_second: 1000,
            tenant_call_burst: 1000,
            tenant_max_streams: 100,
            max_concurrent_streams: 1024,
            request_timeout: Duration::from_secs(30),
            max_message_bytes: 4 * 1024 * 1024,
        },
        providers: ProviderSettings {
            sandbox: SandboxSettings {
                enabled: true,
                import_delay: Duration::from_millis(300),
                public_token_ttl: Duration::from_secs(1800),
                poll_interval: Duration::from_millis(50),
            },
        },
        sync: SyncSettings { tick: Duration::from_millis(25), lease: Duration::from_secs(30) },
    }
}

/// Starts a server on `backend` with the test settings.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}, None).await
}

/// Starts a server on `backend` after `adjust` changed the settings, with `providers` instead of
/// the configured ones when given.
pub async fn spawn_app_with(
    backend: Backend,
    adjust: impl FnOnce(&mut Settings),
    providers: Option<Registry>,
) -> TestApp {
    let database = TestDatabase::create(backend).await;
    let mut settings = test_settings(&database.url);
    adjust(&mut settings);
    let providers = providers.unwrap_or_else(|| Registry::from_settings(&settings.providers));
    let application = Application::build_with_providers(settings, providers).await.expect("server builds");
    let grpc_addr = application.grpc_addr();
    let http_addr = application.http_addr();
    let stop = CancellationToken::new();
    let server = tokio::spawn(application.run_until_stopped(stop.clone()));
    let channel = Channel::from_shared(format!("http://{grpc_addr}")).unwrap().connect().await.expect("connects");
    let app = TestApp {
        http_addr,
        link: LinkServiceClient::new(channel.clone()),
        connections: ConnectionServiceClient::new(channel.clone()),
        accounts: AccountServiceClient::new(channel.clone()),
        portfolios: PortfolioServiceClient::new(channel.clone()),
        statements: StatementServiceClient::new(channel.clone()),
        channel,
        stop,
        server: Some(server),
        _database: database,
    };
    app.wait_until_serving().await;
    app
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestApp {
    /// Waits for readiness (the store answered).
    pub async fn wait_until_serving(&self) {
        let mut health = tonic_health::pb::health_client::HealthClient::new(self.channel.clone());
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let status = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await;
            if status.is_ok_and(|s| {
                s.into_inner().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            }) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "server never became ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server and waits for it to finish draining.
    pub async fn shut_down(&mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        let server = self.server.take().expect("server still running");
        tokio::time::timeout(PATIENCE, server).await.expect("server stops in time").expect("server task")
    }

    /// Creates a credentials-flow session at `institution` for `user`.
    pub async fn create_session(&mut self, institution: &str, user: &str) -> pb::LinkSession {
        self.link
            .create_link_session(pb::CreateLinkSessionRequest {
                provider: "sandbox".into(),
                external_user_id: user.into(),
                institution_id: institution.into(),
                ..Default::default()
            })
            .await
            .expect("session created")
            .into_inner()
            .link_session
            .unwrap()
    }

    /// Submits sandbox credentials to a session.
    pub async fn submit(
        &mut self,
        session_id: &str,
        username: &str,
        password: &str,
    ) -> Result<pb::LinkSession, tonic::Status> {
        let credentials =
            HashMap::from([("username".to_owned(), username.to_owned()), ("password".to_owned(), password.to_owned())]);
        self.link
            .submit_credentials(pb::SubmitCredentialsRequest {
                link_session_id: session_id.into(),
                credentials,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().link_session.unwrap())
    }

    /// Links `institution` for `user` with the sandbox's good credentials; returns the public token.
    pub async fn public_token(&mut self, institution: &str, user: &str) -> String {
        let session = self.create_session(institution, user).await;
        let session = self.submit(&session.id, "user_good", "pass_good").await.expect("credentials accepted");
        assert_eq!(session.state(), pb::LinkSessionState::Succeeded);
        session.public_token
    }

    /// Exchanges a sandbox public token.
    pub async fn exchange(&mut self, public_token: &str) -> Result<pb::Connection, tonic::Status> {
        self.link
            .exchange_public_token(pb::ExchangePublicTokenRequest {
                provider: "sandbox".into(),
                public_token: public_token.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().connection.unwrap())
    }

    /// A connection at `institution` whose first import has finished.
    pub async fn ready_connection(&mut self, institution: &str, user: &str) -> pb::Connection {
        let token = self.public_token(institution, user).await;
        let connection = self.exchange(&token).await.expect("exchange succeeds");
        self.wait_for_state(&connection.id, pb::ConnectionState::Ready).await
    }

    /// Watches a connection until it reaches `state`; returns it then.
    pub async fn wait_for_state(&mut self, connection_id: &str, state: pb::ConnectionState) -> pb::Connection {
        let mut stream = self
            .connections
            .watch_connection(pb::WatchConnectionRequest { connection_id: connection_id.into(), after_event_id: 0 })
            .await
            .expect("watch starts")
            .into_inner();
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

/// The `ErrorInfo.reason` of a status, which is the contract callers branch on.
pub fn reason(status: &tonic::Status) -> String {
    status.get_details_error_info().map(|info| info.reason).unwrap_or_else(|| panic!("no ErrorInfo on {status:?}"))
}

/// Asserts a status's code and reason, with `case` naming the case in the failure message.
#[track_caller]
pub fn assert_error(case: &str, status: &tonic::Status, code: tonic::Code, expected_reason: &str) {
    assert_eq!(status.code(), code, "{case}: code (message {:?})", status.message());
    assert_eq!(reason(status), expected_reason, "{case}: reason");
    let info = status.get_details_error_info().unwrap();
    assert!(info.metadata.contains_key("request_id"), "{case}: every error carries the request id");
}

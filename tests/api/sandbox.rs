//! The test harness: a real linkgate server on a random port over a fresh database (a new
//! PostgreSQL database per test, or a SQLite file in a temporary directory), typed gRPC clients,
//! and shortcuts for the sandbox flow.

use linkgate::config::{
    DatabaseSettings, LimitSettings, ProviderSettings, SandboxSettings, SecretSettings, Settings, SyncSettings,
    TlsSettings,
};
use linkgate::crypto::Sealer;
use linkgate::crypto::jws::Jwk;
use linkgate::domain::{ConnectionData, Product};
use linkgate::pb;
use linkgate::pb::account_service_client::AccountServiceClient;
use linkgate::pb::connection_service_client::ConnectionServiceClient;
use linkgate::pb::link_service_client::LinkServiceClient;
use linkgate::pb::portfolio_service_client::PortfolioServiceClient;
use linkgate::pb::statement_service_client::StatementServiceClient;
use linkgate::providers::sandbox::Sandbox;
use linkgate::providers::{
    Credentials, ExchangedConnection, Institution, LinkContext, LinkStart, LinkStep, Provider, ProviderError,
    ProviderInfo, ProviderResult, Registry, UpstreamStatus, WebhookNotice, WebhookScheme,
};
use linkgate::server::Application;
use secrecy::SecretString;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use uuid::Uuid;

pub use crate::support::database::{Backend, TestDatabase};
pub use crate::support::logs::capture_logs;
pub use crate::support::status::assert_error;

/// How long any wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running server and clients for it. Stops the server when dropped.
pub struct TestApp {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub link: LinkServiceClient<Authed>,
    pub connections: ConnectionServiceClient<Authed>,
    pub accounts: AccountServiceClient<Authed>,
    pub portfolios: PortfolioServiceClient<Authed>,
    pub statements: StatementServiceClient<Authed>,
    pub channel: Channel,
    settings: Settings,
    stop: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Dropped after the server: the database outlives every connection to it. A replica
    /// started beside another app shares that app's database and holds none.
    _database: Option<TestDatabase>,
}

/// Settings of a test server: fast sandbox timings, random ports, a fixed key.
pub fn test_settings(database_url: &str) -> Settings {
    Settings {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        tls: TlsSettings::default(),
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
            max_in_flight: 4096,
            max_message_bytes: 4 * 1024 * 1024,
        },
        providers: ProviderSettings {
            sandbox: SandboxSettings {
                enabled: true,
                import_delay: Duration::from_millis(300),
                latency: Duration::ZERO,
                refresh_interval: Duration::from_secs(6 * 3600),
                public_token_ttl: Duration::from_secs(1800),
                poll_interval: Duration::from_millis(50),
            },
            deck: Default::default(),
            vumi: Default::default(),
            moneykit: Default::default(),
        },
        sync: SyncSettings {
            tick: Duration::from_millis(25),
            events_recheck: Duration::from_secs(1),
            event_retention: Duration::from_secs(7 * 86_400),
            lease: Duration::from_secs(30),
        },
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
    start(settings, providers, Some(database)).await
}

impl TestApp {
    /// Another replica on this app's database, with its keys.
    pub async fn spawn_replica(&self) -> TestApp {
        self.spawn_replica_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// Another replica on this app's database, listening on `grpc_addr`.
    pub async fn spawn_replica_on(&self, grpc_addr: SocketAddr) -> TestApp {
        let mut settings = self.settings.clone();
        settings.grpc_addr = grpc_addr;
        settings.http_addr = "127.0.0.1:0".parse().unwrap();
        start(settings, None, None).await
    }
}

async fn start(settings: Settings, providers: Option<Registry>, database: Option<TestDatabase>) -> TestApp {
    let application = match providers {
        Some(providers) => Application::build_with_providers(settings.clone(), providers).await,
        None => Application::build(settings.clone()).await,
    }
    .expect("server builds");
    let grpc_addr = application.grpc_addr();
    let http_addr = application.http_addr();
    let stop = CancellationToken::new();
    let server = tokio::spawn(application.run_until_stopped(stop.clone()));
    let channel = Channel::from_shared(format!("http://{grpc_addr}")).unwrap().connect().await.expect("connects");
    let bearer = Bearer(None);
    let app = TestApp {
        grpc_addr,
        http_addr,
        link: LinkServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        connections: ConnectionServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        accounts: AccountServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        portfolios: PortfolioServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        statements: StatementServiceClient::with_interceptor(channel.clone(), bearer),
        channel,
        settings,
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

/// Sends `authorization: Bearer <key>` when it holds a key (none: dev mode).
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A channel whose calls carry the test's current API key.
pub type Authed = InterceptedService<Channel, Bearer>;

impl TestApp {
    /// Makes every client send `key` (or no key) from now on.
    pub fn use_key(&mut self, key: Option<&str>) {
        let bearer = Bearer(key.map(|k| format!("Bearer {k}").parse().expect("ASCII key")));
        self.link = LinkServiceClient::with_interceptor(self.channel.clone(), bearer.clone());
        self.connections = ConnectionServiceClient::with_interceptor(self.channel.clone(), bearer.clone());
        self.accounts = AccountServiceClient::with_interceptor(self.channel.clone(), bearer.clone());
        self.portfolios = PortfolioServiceClient::with_interceptor(self.channel.clone(), bearer.clone());
        self.statements = StatementServiceClient::with_interceptor(self.channel.clone(), bearer);
    }

    /// Creates a tenant through the operator path and returns its first API key.
    pub async fn create_tenant(&self, name: &str) -> String {
        use linkgate::domain::{Tenant, TenantId, now};
        use secrecy::ExposeSecret;
        let storage = linkgate::server::Storage::open(&self.settings.database, &self.settings.secrets)
            .await
            .expect("storage opens");
        let tenant =
            Tenant { id: TenantId(uuid::Uuid::now_v7()), name: name.to_owned(), created_at: now(), revoked_at: None };
        assert!(storage.store.create_tenant(&tenant).await.unwrap(), "tenant {name} is new");
        let (record, key) = storage.peppers.issue(tenant.id);
        storage.store.create_api_key(&record).await.unwrap();
        key.expose_secret().to_owned()
    }

    /// A ConnectionService client that sends `key`, beside the app's own clients.
    pub fn connections_with_key(&self, key: &str) -> ConnectionServiceClient<Authed> {
        let bearer = Bearer(Some(format!("Bearer {key}").parse().expect("ASCII key")));
        ConnectionServiceClient::with_interceptor(self.channel.clone(), bearer)
    }

    /// The name of this app's PostgreSQL database.
    pub fn database_name(&self) -> String {
        self.settings
            .database
            .database_url
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// Everything the database holds, as searchable text.
    pub async fn database_dump(&self) -> String {
        self._database.as_ref().expect("the app owns its database").dump().await
    }

    /// The settings the server runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The store of this server's database, for checks no RPC can make.
    pub async fn storage(&self) -> linkgate::server::Storage {
        linkgate::server::Storage::open(&self.settings.database, &self.settings.secrets).await.expect("storage opens")
    }

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

/// The sandbox with a record of what it handed out and how often it exchanged, each exchange
/// slowed down so concurrent calls overlap.
pub struct RecordingSandbox {
    inner: Sandbox,
    /// Exchange calls made.
    pub exchanges: Arc<AtomicUsize>,
    /// Status checks made.
    pub status_checks: Arc<AtomicUsize>,
    /// Every connection handle issued (secrets that must never leave linkgate).
    pub handles: Arc<Mutex<Vec<String>>>,
    /// Webhook signing keys it publishes; webhooks are off when empty.
    webhook_keys: Vec<Jwk>,
    /// Webhook key fetches made.
    key_fetches: Arc<AtomicUsize>,
}

/// The header the recording sandbox's webhooks carry their JWT in.
pub const SANDBOX_SIGNATURE_HEADER: &str = "sandbox-signature";

impl RecordingSandbox {
    /// A recording sandbox with the test settings, and a registry holding it.
    pub fn registry() -> (Registry, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
        let (registry, sandbox) = Self::with_settings(test_settings("unused").providers.sandbox);
        (registry, sandbox.exchanges, sandbox.handles)
    }

    /// A registry holding a recording sandbox with `settings`, and the sandbox's counters.
    pub fn with_settings(settings: linkgate::config::SandboxSettings) -> (Registry, RecordingCounters) {
        Self::with_webhooks(settings, Vec::new())
    }

    /// As [`Self::with_settings`], taking webhooks signed by `keys`: a JSON body
    /// `{"id", "event", "connection"}` naming the connection by its handle, with an ES256 JWT in
    /// [`SANDBOX_SIGNATURE_HEADER`] that must bind the body.
    pub fn with_webhooks(settings: linkgate::config::SandboxSettings, keys: Vec<Jwk>) -> (Registry, RecordingCounters) {
        let sandbox = RecordingSandbox {
            inner: Sandbox::new(settings),
            exchanges: Arc::default(),
            status_checks: Arc::default(),
            handles: Arc::default(),
            webhook_keys: keys,
            key_fetches: Arc::default(),
        };
        let counters = RecordingCounters {
            exchanges: sandbox.exchanges.clone(),
            status_checks: sandbox.status_checks.clone(),
            handles: sandbox.handles.clone(),
            key_fetches: sandbox.key_fetches.clone(),
        };
        let mut registry = Registry::default();
        registry.register(Arc::new(sandbox));
        (registry, counters)
    }
}

/// What a recording sandbox counted.
pub struct RecordingCounters {
    /// Exchange calls.
    pub exchanges: Arc<AtomicUsize>,
    /// Status checks.
    pub status_checks: Arc<AtomicUsize>,
    /// Handles issued.
    pub handles: Arc<Mutex<Vec<String>>>,
    /// Webhook key fetches.
    pub key_fetches: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl Provider for RecordingSandbox {
    fn info(&self) -> &ProviderInfo {
        self.inner.info()
    }
    async fn institutions(&self) -> ProviderResult<Vec<Institution>> {
        self.inner.institutions().await
    }
    async fn start_link(&self, link: &LinkContext) -> ProviderResult<LinkStart> {
        self.inner.start_link(link).await
    }
    async fn submit_credentials(&self, link: &LinkContext, credentials: Credentials) -> ProviderResult<LinkStep> {
        self.inner.submit_credentials(link, credentials).await
    }
    async fn answer_mfa(&self, link: &LinkContext, answer: SecretString) -> ProviderResult<LinkStep> {
        self.inner.answer_mfa(link, answer).await
    }
    async fn poll_link(&self, link: &LinkContext) -> ProviderResult<LinkStep> {
        self.inner.poll_link(link).await
    }
    async fn exchange_public_token(&self, public_token: &SecretString) -> ProviderResult<ExchangedConnection> {
        use secrecy::ExposeSecret;
        self.exchanges.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let exchanged = self.inner.exchange_public_token(public_token).await?;
        self.handles.lock().unwrap().push(exchanged.handle.expose_secret().to_owned());
        Ok(exchanged)
    }
    async fn connection_status(&self, handle: &SecretString) -> ProviderResult<UpstreamStatus> {
        self.status_checks.fetch_add(1, Ordering::SeqCst);
        self.inner.connection_status(handle).await
    }
    async fn fetch_data(
        &self,
        handle: &SecretString,
        connection_id: Uuid,
        products: &[Product],
    ) -> ProviderResult<ConnectionData> {
        self.inner.fetch_data(handle, connection_id, products).await
    }
    async fn refresh(&self, handle: &SecretString) -> ProviderResult<()> {
        self.inner.refresh(handle).await
    }
    async fn delete_connection(&self, handle: &SecretString) -> ProviderResult<()> {
        self.inner.delete_connection(handle).await
    }
    fn webhooks(&self) -> Option<&dyn WebhookScheme> {
        (!self.webhook_keys.is_empty()).then_some(self as &dyn WebhookScheme)
    }
}

#[async_trait::async_trait]
impl WebhookScheme for RecordingSandbox {
    fn signature_header(&self) -> &'static str {
        SANDBOX_SIGNATURE_HEADER
    }
    fn body_hash_required(&self) -> bool {
        true
    }
    async fn signing_key(&self, kid: &str) -> ProviderResult<Option<Jwk>> {
        self.key_fetches.fetch_add(1, Ordering::SeqCst);
        Ok(self.webhook_keys.iter().find(|key| key.kid.as_deref() == Some(kid)).cloned())
    }
    fn read(&self, body: &[u8]) -> ProviderResult<WebhookNotice> {
        #[derive(serde::Deserialize)]
        struct Delivery {
            id: String,
            event: String,
            connection: String,
        }
        let delivery: Delivery = serde_json::from_slice(body)
            .map_err(|_| ProviderError::Protocol { detail: "webhook: unexpected body".to_owned() })?;
        Ok(WebhookNotice {
            idempotency_key: Some(delivery.id),
            event: delivery.event,
            upstream_ref: Some(SecretString::from(delivery.connection)),
        })
    }
}

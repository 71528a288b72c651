//! The test server: a real linkgate on random ports, in-process, with typed gRPC clients. Its
//! settings come from `linkgate serve`'s flags ([`serve_settings`], [`Upstream::settings`]) or a
//! [`Settings`] value ([`test_settings`]); it runs on a fresh database of either backend
//! ([`spawn_app`]) or on one the test holds, with the configured providers or a given
//! [`Registry`]; replicas share its database ([`TestApp::spawn_replica`]). It stops when dropped
//! or on [`TestApp::shut_down`].

use crate::support::database::{Backend, TestDatabase};
use clap::Parser;
use linkgate::config::{
    DatabaseSettings, GrpcWebSettings, LimitSettings, ProviderSettings, SandboxSettings, SecretSettings, Settings,
    SyncSettings, TlsSettings, TransportSettings,
};
use linkgate::crypto::Sealer;
use linkgate::pb;
use linkgate::pb::account_service_client::AccountServiceClient;
use linkgate::pb::connection_service_client::ConnectionServiceClient;
use linkgate::pb::link_service_client::LinkServiceClient;
use linkgate::pb::portfolio_service_client::PortfolioServiceClient;
use linkgate::pb::sandbox_service_client::SandboxServiceClient;
use linkgate::pb::statement_service_client::StatementServiceClient;
use linkgate::providers::Registry;
use linkgate::server::Application;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// How long any wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);
/// The client id linkgate presents to a provider's mock.
pub const CLIENT_ID: &str = "test-client";
/// The client secret linkgate presents to a provider's mock.
pub const SECRET: &str = "test-secret";

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

/// Settings of a sandbox test server: fast sandbox timings, random ports, a fixed key.
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
            max_streams: 10_000,
            stream_stall_timeout: Duration::from_secs(30),
            stream_database_connections: 3,
            max_concurrent_streams: 1024,
            request_timeout: Duration::from_secs(30),
            max_in_flight: 4096,
            max_message_bytes: 4 * 1024 * 1024,
        },
        transport: TransportSettings::default(),
        grpc_web: GrpcWebSettings::default(),
        providers: ProviderSettings {
            public_webhook_url: None,
            sandbox: SandboxSettings {
                enabled: true,
                import_delay: Duration::from_millis(300),
                latency: Duration::ZERO,
                refresh_interval: Duration::from_secs(6 * 3600),
                public_token_ttl: Duration::from_secs(1800),
                poll_interval: Duration::from_millis(50),
                consent_lifetime: None,
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
            consent_warning: Duration::from_secs(7 * 86_400),
            sync_window: Duration::from_secs(30 * 86_400),
        },
    }
}

/// How a test's provider calls are bounded.
pub struct Timing {
    pub request_timeout: &'static str,
    pub call_timeout: &'static str,
}

/// The bounds of most tests.
pub const QUICK: Timing = Timing { request_timeout: "2s", call_timeout: "5s" };

/// Where a server keeps its data and which HTTP provider it calls, and how; the sandbox is off.
pub struct Upstream<'a> {
    pub database_url: &'a str,
    pub encryption_key: &'a str,
    /// The provider's flag prefix: `deck`, `vumi`, `moneykit`.
    pub provider: &'a str,
    pub base_url: &'a str,
    pub client_secret: &'a str,
    pub timing: &'a Timing,
}

/// The flags that point `provider`'s adapter at its mock (`base_url`) with the test's
/// credentials and `timing`, polling every `poll_interval` (every HTTP provider's flags are
/// prefixed with its id).
pub fn provider_flags(
    provider: &str,
    base_url: &str,
    client_secret: &str,
    timing: &Timing,
    poll_interval: &str,
) -> Vec<(String, String)> {
    [
        ("base-url", base_url),
        ("client-id", CLIENT_ID),
        ("client-secret", client_secret),
        ("request-timeout", timing.request_timeout),
        ("call-timeout", timing.call_timeout),
        ("max-attempts", "3"),
        ("poll-interval", poll_interval),
    ]
    .into_iter()
    .map(|(name, value)| (format!("--{provider}-{name}"), value.to_owned()))
    .collect()
}

impl Upstream<'_> {
    /// The server's settings: the test defaults for this upstream, the flags `overrides`
    /// replacing or extending them.
    pub fn settings(&self, overrides: &[(&str, &str)]) -> Settings {
        let flags = self.flags(overrides);
        let flags: Vec<(&str, &str)> = flags.iter().map(|(flag, value)| (flag.as_str(), value.as_str())).collect();
        serve_settings(&flags)
    }

    /// The flags of [`Upstream::settings`], for a `linkgate serve` of its own process.
    pub fn flags(&self, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut flags: Vec<(String, String)> = [
            ("--grpc-addr", "127.0.0.1:0"),
            ("--http-addr", "127.0.0.1:0"),
            ("--database-url", self.database_url),
            ("--database-max-connections", "5"),
            ("--encryption-key", self.encryption_key),
            ("--tenant-calls-per-second", "1000"),
            ("--tenant-call-burst", "1000"),
            ("--sandbox-enabled", "false"),
            ("--sync-tick", "25ms"),
        ]
        .into_iter()
        .map(|(flag, value)| (flag.to_owned(), value.to_owned()))
        .chain(provider_flags(self.provider, self.base_url, self.client_secret, self.timing, "100ms"))
        .collect();
        for &(name, value) in overrides {
            match flags.iter_mut().find(|(flag, _)| flag == name) {
                Some(flag) => flag.1 = value.to_owned(),
                None => flags.push((name.to_owned(), value.to_owned())),
            }
        }
        flags
    }
}

/// `linkgate serve` as a child process of the test, given its flags and environment by
/// `configure`: logging warnings only, its output discarded, killed when dropped.
pub fn spawn_serve(configure: impl FnOnce(&mut tokio::process::Command)) -> tokio::process::Child {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_linkgate"));
    command
        .arg("serve")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    configure(&mut command);
    command.spawn().expect("linkgate starts")
}

/// A free port on loopback (released again for a child process to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A channel to the server a child process starts on `port`, once it answers (within [`PATIENCE`]).
pub async fn connect(port: u16) -> Channel {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await {
            Ok(channel) => return channel,
            Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(error) => panic!("the server on {port} never answered: {error}"),
        }
    }
}

/// A running server and clients for it. Stops the server when dropped.
pub struct TestApp {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub link: LinkServiceClient<Authed>,
    pub connections: ConnectionServiceClient<Authed>,
    pub accounts: AccountServiceClient<Authed>,
    pub portfolios: PortfolioServiceClient<Authed>,
    pub statements: StatementServiceClient<Authed>,
    /// SandboxService (UNIMPLEMENTED when the sandbox is off).
    pub sandbox: SandboxServiceClient<Authed>,
    pub channel: Channel,
    settings: Settings,
    stop: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Dropped after the server: the database outlives every connection to it. A server on a
    /// database the test holds (or a replica beside another app) holds none.
    database: Option<TestDatabase>,
}

/// Starts a server on a fresh database on `backend` with the test settings.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}, None).await
}

/// Providers a test serves instead of the configured ones, built over the server's store (where
/// the sandbox keeps callers' changes).
pub type Providers = Box<dyn FnOnce(std::sync::Arc<dyn linkgate::store::Store>) -> Registry + Send>;

/// Starts a server on a fresh database on `backend` after `adjust` changed the test settings,
/// with `providers` instead of the configured ones when given.
pub async fn spawn_app_with(
    backend: Backend,
    adjust: impl FnOnce(&mut Settings),
    providers: Option<Providers>,
) -> TestApp {
    let database = TestDatabase::create(backend).await;
    let mut settings = test_settings(&database.url);
    adjust(&mut settings);
    TestApp::start(settings, providers, Some(database)).await
}

impl TestApp {
    /// Starts a server with `settings` (and `providers` instead of the configured ones when
    /// given), keeping `database` alive until it stops, and waits until it serves.
    pub async fn start(settings: Settings, providers: Option<Providers>, database: Option<TestDatabase>) -> TestApp {
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
            statements: StatementServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            sandbox: SandboxServiceClient::with_interceptor(channel.clone(), bearer),
            channel,
            settings,
            stop,
            server: Some(server),
            database,
        };
        app.wait_until_serving().await;
        app
    }

    /// Another replica on this app's database, with its settings and keys (its configured
    /// providers: a registry given to this app is not shared).
    pub async fn spawn_replica(&self) -> TestApp {
        self.spawn_replica_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// Another replica on this app's database, listening on `grpc_addr`.
    pub async fn spawn_replica_on(&self, grpc_addr: SocketAddr) -> TestApp {
        let mut settings = self.settings.clone();
        settings.grpc_addr = grpc_addr;
        settings.http_addr = "127.0.0.1:0".parse().unwrap();
        TestApp::start(settings, None, None).await
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

    /// The settings the server runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
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

/// Tenants, keys and the store behind the API.
impl TestApp {
    /// Makes every client send `key` (or no key) from now on.
    pub fn use_key(&mut self, key: Option<&str>) {
        let bearer = Bearer(key.map(|k| format!("Bearer {k}").parse().expect("ASCII key")));
        self.link = LinkServiceClient::with_interceptor(self.channel.clone(), bearer.clone());
        self.connections = ConnectionServiceClient::with_interceptor(self.channel.clone(), bearer.clone());
        self.accounts = AccountServiceClient::with_interceptor(self.channel.clone(), bearer.clone());
        self.portfolios = PortfolioServiceClient::with_interceptor(self.channel.clone(), bearer.clone());
        self.statements = StatementServiceClient::with_interceptor(self.channel.clone(), bearer.clone());
        self.sandbox = SandboxServiceClient::with_interceptor(self.channel.clone(), bearer);
    }

    /// Creates a tenant through the operator path and returns its first API key (scope
    /// `standard`, as `linkgate tenants create` issues it).
    pub async fn create_tenant(&self, name: &str) -> String {
        use linkgate::domain::{Tenant, TenantId, now};
        let storage = self.storage().await;
        let tenant =
            Tenant { id: TenantId(uuid::Uuid::now_v7()), name: name.to_owned(), created_at: now(), revoked_at: None };
        assert!(storage.store.create_tenant(&tenant).await.unwrap(), "tenant {name} is new");
        self.create_key(name, &[linkgate::domain::Scope::Standard]).await
    }

    /// Creates another API key of tenant `name` holding `scopes`, as `linkgate keys create
    /// --scope …` does, and returns it.
    pub async fn create_key(&self, name: &str, scopes: &[linkgate::domain::Scope]) -> String {
        use secrecy::ExposeSecret;
        let storage = self.storage().await;
        let tenant = storage.store.find_tenant(name).await.unwrap().expect("the tenant exists");
        let (record, key) = storage.peppers.issue(tenant.id, scopes);
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
        self.database.as_ref().expect("the app owns its database").dump().await
    }

    /// How many rows `table` of this app's PostgreSQL database holds.
    pub async fn row_count(&self, table: &str) -> i64 {
        use sqlx::Connection;
        let mut connection =
            sqlx::PgConnection::connect(&self.settings.database.database_url).await.expect("test database answers");
        let (count,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&mut connection)
            .await
            .expect("the table counts");
        count
    }

    /// The store of this server's database, for checks no RPC can make.
    pub async fn storage(&self) -> linkgate::server::Storage {
        linkgate::server::Storage::open(&self.settings.database, &self.settings.secrets).await.expect("storage opens")
    }
}

/// Calls every provider makes the same way.
impl TestApp {
    /// Exchanges `public_token` of `provider` for a connection.
    pub async fn exchange(&mut self, provider: &str, public_token: &str) -> Result<pb::Connection, tonic::Status> {
        self.exchange_for(provider, "", public_token).await
    }

    /// As [`TestApp::exchange`], naming the end user `external_user_id`.
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

    /// How many connections the caller can list.
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

    /// Watches connection `id` from its current state until it reaches `state`; returns it then.
    pub async fn wait_for_connection(&mut self, id: &str, state: pb::ConnectionState) -> pb::Connection {
        let request = pb::WatchConnectionRequest { connection_id: id.into(), after_event_id: 0 };
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

/// Repair in place, the same for every provider: a connection's event stream, its repair link
/// session, and what must hold once the repair is done.
impl TestApp {
    /// Watches connection `connection_id` from its first event (`after_event_id` 0), so the
    /// stream opens with a snapshot of its current state.
    pub async fn watch(&mut self, connection_id: &str) -> EventWatch {
        let request = pb::WatchConnectionRequest { connection_id: connection_id.into(), after_event_id: 0 };
        let stream = self.connections.watch_connection(request).await.expect("watch starts").into_inner();
        EventWatch { stream }
    }

    /// Opens a link session that repairs connection `connection_id`, naming nothing else.
    pub async fn repair_session(&mut self, connection_id: &str) -> pb::LinkSession {
        self.repair_session_with(repair_request(connection_id)).await
    }

    /// Opens the repair link session `request` asks for (a [`repair_request`] with more named).
    pub async fn repair_session_with(&mut self, request: pb::CreateLinkSessionRequest) -> pb::LinkSession {
        let session = self.link.create_link_session(request).await.expect("repair session created");
        session.into_inner().link_session.unwrap()
    }

    /// Checks that the repair of `connection_id` made no second connection: the caller lists
    /// exactly one, that one, and its error is gone.
    pub async fn assert_repaired_in_place(&mut self, connection_id: &str) {
        let request = pb::ListConnectionsRequest::default();
        let all = self.connections.list_connections(request).await.unwrap().into_inner().connections;
        assert_eq!(all.len(), 1, "no second connection");
        assert_eq!(all[0].id, connection_id, "the repaired connection is the one listed");
        assert!(all[0].error.is_none(), "the error is gone");
    }
}

/// A repair link session for `connection_id` with nothing else named.
pub fn repair_request(connection_id: &str) -> pb::CreateLinkSessionRequest {
    pb::CreateLinkSessionRequest { connection_id: connection_id.into(), ..Default::default() }
}

/// One connection's event stream, from [`TestApp::watch`].
pub struct EventWatch {
    stream: tonic::Streaming<pb::WatchConnectionResponse>,
}

impl EventWatch {
    /// The next event, within [`PATIENCE`], as its type, the connection's state with it, and
    /// whether it is the snapshot the stream opens with.
    pub async fn next(&mut self) -> (pb::ConnectionEventType, pb::ConnectionState, bool) {
        let event = self.next_event().await;
        (event.r#type(), event.connection.unwrap().state(), event.snapshot)
    }

    /// The next event, whole, within [`PATIENCE`].
    pub async fn next_event(&mut self) -> pb::ConnectionEvent {
        let message = tokio::time::timeout(PATIENCE, self.stream.next()).await.expect("an event in time");
        message.expect("stream open").expect("stream item").event.unwrap()
    }

    /// The counts of the next DATA_UPDATED event, passing over the events before it.
    pub async fn next_data_update(&mut self) -> pb::DataChanges {
        loop {
            let event = self.next_event().await;
            if event.r#type() == pb::ConnectionEventType::DataUpdated {
                return event.data_changes.expect("DATA_UPDATED carries its counts");
            }
        }
    }

    /// Checks what a finished repair tells: LOGIN_REPAIRED (the connection refreshing), then
    /// READY, and nothing more ([`EventWatch::assert_quiet`]).
    pub async fn assert_repair_told_once(&mut self) {
        use pb::ConnectionEventType as T;
        use pb::ConnectionState as S;
        assert_eq!(self.next().await, (T::LoginRepaired, S::Refreshing, false));
        assert_eq!(self.next().await, (T::StateChanged, S::Ready, false));
        self.assert_quiet().await;
    }

    /// Checks that no further event comes within 500 ms: each change is told once.
    pub async fn assert_quiet(&mut self) {
        let quiet = tokio::time::timeout(Duration::from_millis(500), self.stream.next()).await;
        assert!(quiet.is_err(), "each change once: {quiet:?}");
    }
}

/// An amount and its currency, for comparing money exactly.
pub fn amount(money: &Option<pb::Money>) -> (&str, &str) {
    let money = money.as_ref().expect("an amount");
    (money.amount.as_str(), money.currency.as_str())
}

//! Assembling and running a replica: the store, the sealer, the gRPC server with health and
//! reflection (and gRPC-Web on its port), the HTTP listener, the event tailer and the sync
//! engine, and their orderly stop.

pub mod admission;
pub mod auth;
pub mod grpc_web;
pub mod http_listener;
pub mod readiness;
pub mod transport;
pub mod wire_errors;

use crate::api::account::AccountApi;
use crate::api::connection::ConnectionApi;
use crate::api::link::LinkApi;
use crate::api::portfolio::PortfolioApi;
use crate::api::sandbox::SandboxApi;
use crate::api::statement::StatementApi;
use crate::app::audit::AuditWriter;
use crate::app::page_token::PageTokens;
use crate::app::sync::SyncOptions;
use crate::app::{App, AppParts};
use crate::config::{
    DatabaseSettings, GrpcWebSettings, LimitSettings, SecretSettings, Settings, TlsSettings, TransportSettings,
};
use crate::crypto::Sealer;
use crate::pb;
use crate::pb::account_service_server::AccountServiceServer;
use crate::pb::connection_service_server::ConnectionServiceServer;
use crate::pb::link_service_server::LinkServiceServer;
use crate::pb::portfolio_service_server::PortfolioServiceServer;
use crate::pb::sandbox_service_server::SandboxServiceServer;
use crate::pb::statement_service_server::StatementServiceServer;
use crate::providers::Registry;
use crate::providers::session::SharedSessions;
use crate::server::admission::AdmissionLayer;
use crate::server::auth::{AuthLayer, Authenticator, Peppers};
use crate::store::{self, Store};
use anyhow::Context;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// How often readiness re-checks the database.
/// The health service name that stays SERVING while the process runs (liveness probes).
pub const LIVENESS_SERVICE: &str = "liveness";
/// Services whose health follows the database (readiness probes ask for "" or one of these).
const SERVICES: [&str; 5] = [
    "linkgate.v1.LinkService",
    "linkgate.v1.ConnectionService",
    "linkgate.v1.AccountService",
    "linkgate.v1.PortfolioService",
    "linkgate.v1.StatementService",
];

/// A replica, bound to its ports and ready to run.
pub struct Application {
    app: Arc<App>,
    audit_writer: AuditWriter,
    authenticator: Arc<Authenticator>,
    limits: LimitSettings,
    transport: TransportSettings,
    grpc_web: GrpcWebSettings,
    tls: Option<TlsAcceptor>,
    events_recheck: Duration,
    event_retention: Duration,
    grpc: TcpListener,
    http: TcpListener,
    sync: SyncOptions,
}

impl Application {
    /// Opens the store, loads keys and binds both listeners (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let storage = Storage::open(&settings.database, &settings.secrets).await?;
        let sessions = SharedSessions::new(storage.store.clone(), storage.sealer.clone(), replica_name());
        let providers = Registry::from_settings(&settings.providers, storage.store.clone(), &sessions);
        Self::assemble(settings, storage, providers).await
    }

    /// As [`Application::build`], with the providers `providers` builds over the store rather
    /// than those the settings enable.
    pub async fn build_with_providers(
        settings: Settings,
        providers: impl FnOnce(Arc<dyn crate::store::Store>) -> Registry,
    ) -> anyhow::Result<Self> {
        let storage = Storage::open(&settings.database, &settings.secrets).await?;
        let providers = providers(storage.store.clone());
        Self::assemble(settings, storage, providers).await
    }

    async fn assemble(settings: Settings, storage: Storage, providers: Registry) -> anyhow::Result<Self> {
        let loopback = settings.grpc_addr.ip().is_loopback();
        if loopback {
            // Told in the background: on PostgreSQL over TLS the first connection takes about
            // 100 ms, which the start would otherwise spend before binding its listeners.
            let store = storage.store.clone();
            tokio::spawn(async move {
                if store.active_tenant_count().await.unwrap_or(0) == 0 {
                    tracing::warn!(
                        "dev mode: no tenants exist, so keyless callers act as the dev tenant (loopback only)"
                    );
                }
            });
        }
        let authenticator = Arc::new(Authenticator::new(storage.store.clone(), storage.peppers, loopback));
        let page_tokens = PageTokens::new(storage.sealer.derive_key("page tokens"));
        let (app, audit_writer) = App::new(AppParts {
            store: storage.store,
            providers,
            sealer: storage.sealer,
            page_tokens,
            limits: settings.limits.clone(),
            database_max_connections: settings.database.database_max_connections,
            consent_warning: settings.sync.consent_warning,
            sync_window: settings.sync.sync_window,
        });
        let grpc =
            TcpListener::bind(settings.grpc_addr).await.with_context(|| format!("binding {}", settings.grpc_addr))?;
        let http =
            TcpListener::bind(settings.http_addr).await.with_context(|| format!("binding {}", settings.http_addr))?;
        let sync = SyncOptions { owner: replica_name(), tick: settings.sync.tick, lease: settings.sync.lease };
        let tls = server_tls(&settings.tls)?;
        Ok(Self {
            app: Arc::new(app),
            audit_writer,
            authenticator,
            limits: settings.limits,
            transport: settings.transport,
            grpc_web: settings.grpc_web,
            tls,
            events_recheck: settings.sync.events_recheck,
            event_retention: settings.sync.event_retention,
            grpc,
            http,
            sync,
        })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().expect("bound listener has an address")
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("bound listener has an address")
    }

    /// The service core (for tests and tools that drive it directly).
    pub fn app(&self) -> Arc<App> {
        self.app.clone()
    }

    /// Serves until `stop` is cancelled, then reports NOT_SERVING, ends streams, drains in-flight
    /// calls and stops background work.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        let (grpc_addr, http_addr) = (self.grpc_addr(), self.http_addr());
        let Self {
            app,
            audit_writer,
            authenticator,
            limits,
            transport,
            grpc_web,
            tls,
            grpc,
            http,
            sync,
            events_recheck,
            event_retention,
        } = self;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        set_readiness(&reporter, ServingStatus::NotServing).await;
        reporter.set_service_status(LIVENESS_SERVICE, ServingStatus::Serving).await;

        let background = CancellationToken::new();
        tokio::spawn(app.bus.clone().run_sequencer(app.store.clone(), events_recheck, background.clone()));
        tokio::spawn(app.bus.clone().run_tailer(app.store.clone(), events_recheck, background.clone()));
        tokio::spawn(app.bus.clone().run_announcer(app.store.clone(), background.clone()));
        let sync_window = app.sync_window;
        tokio::spawn(crate::app::events::run_pruner(
            app.store.clone(),
            event_retention,
            sync_window,
            background.clone(),
        ));
        tokio::spawn(app.clone().run_sync(sync));
        let readiness = Arc::new(readiness::StoreReadiness::default());
        tokio::spawn(readiness::watch(app.store.clone(), readiness.clone(), reporter.clone(), background.clone()));
        let audit_done = tokio::spawn(audit_writer.run(app.store.clone(), background.clone()));

        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;

        // Shutdown order: readiness drops first so balancers stop routing here, then streams end
        // with SHUTTING_DOWN (clients resume elsewhere), then in-flight unary calls drain.
        let draining = CancellationToken::new();
        {
            let (app, reporter, draining) = (app.clone(), reporter.clone(), draining.clone());
            let stop = stop.clone();
            tokio::spawn(async move {
                stop.cancelled().await;
                set_readiness(&reporter, ServingStatus::NotServing).await;
                app.shutdown.cancel();
                draining.cancel();
            });
        }

        let offered = crate::telemetry::metrics::metrics().provider_enabled.clone();
        for provider in app.providers.all() {
            offered.with_label_values(&[provider.info().id]).set(1);
        }
        for (id, _) in app.providers.disabled() {
            offered.with_label_values(&[id]).set(0);
        }

        let max_message = limits.max_message_bytes;
        let sandbox_enabled = app.providers.get(crate::providers::sandbox::ID).is_some();
        let grpc_server = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .max_concurrent_streams(Some(limits.max_concurrent_streams))
            .timeout(limits.request_timeout)
            // gRPC-Web arrives over HTTP/1.1 as well as HTTP/2; plain HTTP/1.1 gRPC is refused by
            // the gRPC-Web layer (400). CORS answers preflights before anything else runs; each
            // gRPC-Web call is then plain gRPC to the layers and services inside.
            .accept_http1(true)
            .layer(grpc_web::cors(&grpc_web.grpc_web_allowed_origins))
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(AdmissionLayer::new(limits.max_in_flight, readiness))
            .layer(AuthLayer::new(authenticator))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(size_limited!(LinkServiceServer::new(LinkApi::new(app.clone())), max_message))
            .add_service(size_limited!(ConnectionServiceServer::new(ConnectionApi::new(app.clone())), max_message))
            .add_service(size_limited!(AccountServiceServer::new(AccountApi::new(app.clone())), max_message))
            .add_service(size_limited!(PortfolioServiceServer::new(PortfolioApi::new(app.clone())), max_message))
            .add_service(size_limited!(StatementServiceServer::new(StatementApi::new(app.clone())), max_message))
            // Without the sandbox its controls are UNIMPLEMENTED, as for any service not served.
            .add_optional_service(
                sandbox_enabled
                    .then(|| size_limited!(SandboxServiceServer::new(SandboxApi::new(app.clone())), max_message)),
            )
            .serve_with_incoming_shutdown(
                transport::grpc_incoming(grpc, &transport, tls),
                draining.clone().cancelled_owned(),
            );

        let http_router = crate::server::http_listener::router(app.clone());
        let http_server = transport::serve_http(http, http_router, &transport, draining.clone());

        tracing::info!(grpc = %grpc_addr, http = %http_addr, "linkgate listening");
        let (grpc_result, ()) = tokio::join!(grpc_server, http_server);
        background.cancel();
        // Every call has finished: store the audit records they queued before exiting.
        audit_done.await.context("audit writer failed")?;
        grpc_result.context("gRPC server failed")?;
        tracing::info!("linkgate stopped");
        Ok(())
    }
}

/// A generated service with the message size limit applied to what it decodes and encodes.
/// Each generated server is its own type with its own setters, hence a macro.
macro_rules! size_limited {
    ($server:expr, $max:expr) => {
        $server.max_decoding_message_size($max).max_encoding_message_size($max)
    };
}
use size_limited;

/// The database with the keys that protect it: what `serve` and the operator commands open.
pub struct Storage {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Seals upstream secrets.
    pub sealer: Sealer,
    /// Hashes API keys.
    pub peppers: Peppers,
}

impl Storage {
    /// Opens the database (migrating the embedded one) and loads the keys. PostgreSQL without
    /// an encryption key is refused: nothing would protect the tokens it stores.
    pub async fn open(database: &DatabaseSettings, secrets: &SecretSettings) -> anyhow::Result<Self> {
        let url = &database.database_url;
        let embedded = store::is_sqlite(url);
        // The embedded store migrates itself; PostgreSQL is migrated by `linkgate migrate`.
        let store =
            store::open(url, database.database_max_connections, embedded).await.context("opening the database")?;
        let sealer = match &secrets.encryption_key {
            Some(keys) => Sealer::from_config(keys)?,
            None if embedded => Sealer::from_config(&embedded_key(url)?)?,
            None => anyhow::bail!("LINKGATE_ENCRYPTION_KEY is required with PostgreSQL (base64 of 32 random bytes)"),
        };
        let peppers = Peppers::from_config(secrets.api_key_pepper.as_ref(), &sealer)?;
        Ok(Self { store, sealer, peppers })
    }
}

/// The gRPC listener's TLS acceptor, when certificates are configured: HTTP/2 by ALPN (HTTP/1.1
/// for gRPC-Web clients that offer nothing else), and with a client CA, only clients holding a
/// certificate it signed.
fn server_tls(settings: &TlsSettings) -> anyhow::Result<Option<TlsAcceptor>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::{RootCertStore, ServerConfig, server::WebPkiClientVerifier};
    let (Some(cert), Some(key)) = (&settings.tls_cert, &settings.tls_key) else { return Ok(None) };
    let read = |path: &std::path::Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let certificates = |path: &std::path::Path| -> anyhow::Result<Vec<CertificateDer<'static>>> {
        CertificateDer::pem_slice_iter(&read(path)?)
            .collect::<Result<_, _>>()
            .with_context(|| format!("parsing the certificates in {}", path.display()))
    };
    let builder = ServerConfig::builder();
    let builder = match &settings.tls_client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(certificates(ca)?);
            builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder(roots.into())
                    .build()
                    .context("the client CA of LINKGATE_TLS_CLIENT_CA")?,
            )
        }
    };
    let key = PrivateKeyDer::from_pem_slice(&read(key)?)
        .with_context(|| format!("parsing the private key in {}", key.display()))?;
    let mut config = builder.with_single_cert(certificates(cert)?, key).context("the TLS certificate and its key")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// Reflection over our services, health, and the google.rpc error details our errors carry (so
/// grpcurl can print ErrorInfo, BadRequest and RetryInfo).
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

async fn set_readiness(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for service in SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// The key of the embedded store: kept next to the database file and created on first start,
/// so `linkgate serve` needs no configuration yet never stores a secret in clear.
fn embedded_key(database_url: &str) -> anyhow::Result<SecretString> {
    let path = sqlite_path(database_url).with_extension("key");
    if let Ok(key) = std::fs::read_to_string(&path) {
        return Ok(SecretString::from(key.trim().to_owned()));
    }
    let key = Sealer::generate_key();
    write_private(&path, &key).with_context(|| format!("creating the encryption key file {}", path.display()))?;
    tracing::warn!(path = %path.display(), "generated an encryption key for the embedded store; back it up with the database");
    Ok(SecretString::from(key))
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())
}

fn sqlite_path(database_url: &str) -> PathBuf {
    let rest = database_url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    PathBuf::from(rest.split('?').next().unwrap_or(rest))
}

/// A name for this replica, unique per process: the owner of its leases.
fn replica_name() -> String {
    format!("{}-{}", hostname(), uuid::Uuid::now_v7().simple())
}

fn hostname() -> String {
    std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "linkgate".to_owned())
}

//! Settings of `linkgate serve`: flags, each with a `LINKGATE_*` environment variable, and
//! defaults that run the embedded setup (SQLite file, sandbox provider, loopback listeners).

use secrecy::SecretString;
use std::net::SocketAddr;
use std::time::Duration;

/// Everything `serve` needs.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Address of the gRPC listener.
    #[arg(long, env = "LINKGATE_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,

    /// Address of the HTTP listener (webhooks, /metrics, /healthz).
    #[arg(long, env = "LINKGATE_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    #[command(flatten)]
    pub tls: TlsSettings,

    #[command(flatten)]
    pub database: DatabaseSettings,

    #[command(flatten)]
    pub secrets: SecretSettings,

    #[command(flatten)]
    pub limits: LimitSettings,

    #[command(flatten)]
    pub transport: TransportSettings,

    #[command(flatten)]
    pub grpc_web: GrpcWebSettings,

    #[command(flatten)]
    pub providers: ProviderSettings,

    #[command(flatten)]
    pub sync: SyncSettings,
}

/// TLS on the gRPC listener. Certificates are read at start; to roll them, replace the files and
/// restart replicas one by one (Kubernetes does this on a Secret change with a checksum
/// annotation), so no connection is refused during the roll.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsSettings {
    /// PEM certificate chain of the gRPC listener; with `--tls-key`, turns TLS on.
    #[arg(long, env = "LINKGATE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key of the gRPC listener.
    #[arg(long, env = "LINKGATE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS).
    #[arg(long, env = "LINKGATE_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<std::path::PathBuf>,
}

/// Where linkgate keeps its data.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` (embedded, created if missing) or `postgres://…`.
    #[arg(long, env = "LINKGATE_DATABASE_URL", default_value = "sqlite://linkgate.db")]
    pub database_url: String,

    /// Maximum pooled database connections.
    #[arg(long, env = "LINKGATE_DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
}

/// The keys that protect stored secrets and API keys.
#[derive(Debug, Clone, clap::Args)]
pub struct SecretSettings {
    /// Base64 of 32 random bytes that seal upstream secrets (AES-256-GCM); comma-separate several
    /// to rotate (the first seals, all open). Required on PostgreSQL. On SQLite, when unset,
    /// linkgate keeps a generated key in a file next to the database (`<database>.key`).
    #[arg(long, env = "LINKGATE_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<SecretString>,

    /// Secret mixed into the HMAC of every API key (at least 32 bytes; comma-separate several to
    /// rotate: the first hashes new keys, all verify). Defaults to a value derived from the first
    /// encryption key; set it explicitly in production so encryption keys can rotate on their own.
    #[arg(long, env = "LINKGATE_API_KEY_PEPPER", hide_env_values = true)]
    pub api_key_pepper: Option<SecretString>,
}

/// Limits that keep one caller from starving the others.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitSettings {
    /// Expensive calls (CreateLinkSession, SubmitCredentials, ExchangePublicToken,
    /// RefreshConnection) each tenant may make per second, sustained.
    #[arg(long, env = "LINKGATE_TENANT_CALLS_PER_SECOND", default_value_t = 20)]
    pub tenant_calls_per_second: u32,

    /// Expensive calls a tenant may make in a burst above the sustained rate.
    #[arg(long, env = "LINKGATE_TENANT_CALL_BURST", default_value_t = 40)]
    pub tenant_call_burst: u32,

    /// Watch streams one tenant may hold open at once, on this replica.
    #[arg(long, env = "LINKGATE_TENANT_MAX_STREAMS", default_value_t = 2000)]
    pub tenant_max_streams: usize,

    /// Watch streams this replica holds open at once, all tenants together; more are refused
    /// with STREAM_LIMIT_REACHED.
    #[arg(long, env = "LINKGATE_MAX_STREAMS", default_value_t = 10_000)]
    pub max_streams: usize,

    /// Longest a watch stream may have messages waiting while its client takes none; the stream
    /// is then ended with STREAM_STALLED and what it queued is dropped.
    #[arg(long, env = "LINKGATE_STREAM_STALL_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub stream_stall_timeout: Duration,

    /// Pooled database connections watch streams may use at once for their replays (never more
    /// than the pool's size less one), so the rest stay free for calls.
    #[arg(long, env = "LINKGATE_STREAM_DATABASE_CONNECTIONS", default_value_t = 3)]
    pub stream_database_connections: usize,

    /// Concurrent HTTP/2 streams per client connection.
    #[arg(long, env = "LINKGATE_MAX_CONCURRENT_STREAMS", default_value_t = 1024)]
    pub max_concurrent_streams: u32,

    /// Longest a unary call may run before the server gives up (callers' grpc-timeout is honoured
    /// when shorter).
    #[arg(long, env = "LINKGATE_REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Unary calls this replica serves at once; more are shed with UNAVAILABLE / OVERLOADED.
    #[arg(long, env = "LINKGATE_MAX_IN_FLIGHT", default_value_t = 4096)]
    pub max_in_flight: usize,

    /// Largest request or response message, in bytes.
    #[arg(long, env = "LINKGATE_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
}

/// Bounds on connections before any call starts, so sockets that never speak cannot pile up.
#[derive(Debug, Clone, clap::Args)]
pub struct TransportSettings {
    /// Longest a new gRPC connection may take to complete its TLS handshake (when TLS is on) and
    /// send the HTTP/2 connection preface (gRPC-Web over HTTP/1.1: its first request's head)
    /// before it is closed.
    #[arg(long, env = "LINKGATE_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,

    /// Longest an HTTP client may take to send a request's headers, counted from the connection's
    /// start or its previous response; the connection is closed then.
    #[arg(long, env = "LINKGATE_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http_header_timeout: Duration,

    /// Connections each listener (gRPC, HTTP) holds open at once; more are closed as accepted.
    #[arg(long, env = "LINKGATE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
}

impl Default for TransportSettings {
    /// The flag defaults.
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            http_header_timeout: Duration::from_secs(10),
            max_connections: 10_000,
        }
    }
}

/// gRPC-Web on the gRPC port: which web origins browsers may call it from.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GrpcWebSettings {
    /// Web origins (`scheme://host[:port]`, comma-separated) whose pages may call linkgate over
    /// gRPC-Web from a browser (CORS). None by default: browsers refuse cross-origin calls, while
    /// gRPC-Web from non-browser clients and same-origin pages works regardless.
    #[arg(long, env = "LINKGATE_GRPC_WEB_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub grpc_web_allowed_origins: Vec<http::HeaderValue>,
}

/// A web origin as browsers send it in `Origin`: http or https, a host, the port only when it is
/// not the scheme's default, no path. Anything else could never match, so it is refused at start
/// with the form that would (a trailing slash or an upper-case host are the usual slips).
fn parse_origin(text: &str) -> Result<http::HeaderValue, String> {
    let text = text.trim();
    let url = reqwest::Url::parse(text)
        .map_err(|error| format!("{text:?} is not an origin like https://app.example.com: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("{text:?} is not an http or https origin"));
    }
    let origin = url.origin().ascii_serialization();
    if origin != text {
        return Err(format!("{text:?} is not an origin as browsers send it; did you mean {origin:?}?"));
    }
    http::HeaderValue::from_str(&origin).map_err(|error| format!("{text:?}: {error}"))
}

/// Provider switches and settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ProviderSettings {
    /// linkgate's public base URL for providers' webhooks: where the internet reaches the HTTP
    /// listener's `/webhooks/` path (an ingress), e.g. `https://hooks.example.com`. MoneyKit is
    /// told `<this>/webhooks/moneykit` on every link (existing links are moved once it changes);
    /// unset, MoneyKit delivers no webhooks and linkgate polls. https only (plain http on
    /// loopback, for mocks).
    #[arg(long, env = "LINKGATE_PUBLIC_WEBHOOK_URL", value_parser = crate::providers::upstream_client::parse_base_url)]
    pub public_webhook_url: Option<reqwest::Url>,

    #[command(flatten)]
    pub sandbox: SandboxSettings,

    #[command(flatten)]
    pub deck: DeckSettings,

    #[command(flatten)]
    pub vumi: VumiSettings,

    #[command(flatten)]
    pub moneykit: MoneyKitSettings,
}

/// The built-in sandbox provider.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxSettings {
    /// Offer the built-in sandbox provider.
    #[arg(long = "sandbox-enabled", env = "LINKGATE_SANDBOX_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,

    /// How long the sandbox's first import of a connection takes.
    #[arg(long = "sandbox-import-delay", env = "LINKGATE_SANDBOX_IMPORT_DELAY", default_value = "2s", value_parser = parse_duration)]
    pub import_delay: Duration,

    /// How long a sandbox public token stays exchangeable.
    #[arg(long = "sandbox-public-token-ttl", env = "LINKGATE_SANDBOX_PUBLIC_TOKEN_TTL", default_value = "30m", value_parser = parse_duration)]
    pub public_token_ttl: Duration,

    /// Latency the sandbox adds to every status check and data fetch, to rehearse a slow upstream.
    #[arg(long = "sandbox-latency", env = "LINKGATE_SANDBOX_LATENCY", default_value = "0s", value_parser = parse_duration)]
    pub latency: Duration,

    /// How often a READY sandbox connection's data is fetched again.
    #[arg(long = "sandbox-refresh-interval", env = "LINKGATE_SANDBOX_REFRESH_INTERVAL", default_value = "6h", value_parser = parse_duration)]
    pub refresh_interval: Duration,

    /// How often linkgate polls the sandbox about unsettled sessions and connections.
    #[arg(long = "sandbox-poll-interval", env = "LINKGATE_SANDBOX_POLL_INTERVAL", default_value = "500ms", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// How long a sandbox user's consent lasts from each sign-in (exchange or repair), so the
    /// consent calendar can be rehearsed; unset: sandbox consents never lapse.
    #[arg(long = "sandbox-consent-lifetime", env = "LINKGATE_SANDBOX_CONSENT_LIFETIME", value_parser = parse_duration)]
    pub consent_lifetime: Option<Duration>,
}

/// Deck (utility portals: accounts and statements). Offered only when both the client id and the
/// secret are set. Calls go through the shared upstream client (`providers::upstream_client`): each attempt
/// is bounded by the request timeout, each call (retries and their pauses included) by the call
/// timeout.
#[derive(Debug, Clone, clap::Args)]
pub struct DeckSettings {
    /// Deck's API base URL: `https://sandbox.deck.co/api/v1` or `https://live.deck.co/api/v1`
    /// (or a `linkgate-mock deck` address). Plain http is accepted for loopback addresses only.
    #[arg(id = "deck_base_url", value_name = "URL", long = "deck-base-url", env = "LINKGATE_DECK_BASE_URL", default_value = DECK_SANDBOX_URL, value_parser = crate::providers::upstream_client::parse_base_url)]
    pub base_url: reqwest::Url,

    /// Deck client id (`x-deck-client-id`).
    #[arg(id = "deck_client_id", value_name = "ID", long = "deck-client-id", env = "LINKGATE_DECK_CLIENT_ID")]
    pub client_id: Option<String>,

    /// Deck secret of the environment the base URL points at (`x-deck-secret`).
    #[arg(
        id = "deck_client_secret",
        value_name = "SECRET",
        long = "deck-client-secret",
        env = "LINKGATE_DECK_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<SecretString>,

    /// Longest one HTTP attempt to Deck may take (connecting, sending, reading the answer).
    #[arg(id = "deck_request_timeout", value_name = "DURATION", long = "deck-request-timeout", env = "LINKGATE_DECK_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Longest one call to Deck may take, retries and their pauses included.
    #[arg(id = "deck_call_timeout", value_name = "DURATION", long = "deck-call-timeout", env = "LINKGATE_DECK_CALL_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub call_timeout: Duration,

    /// Attempts per call when Deck answers 5xx or 429, times out or drops the connection.
    #[arg(
        id = "deck_max_attempts",
        value_name = "N",
        long = "deck-max-attempts",
        env = "LINKGATE_DECK_MAX_ATTEMPTS",
        default_value_t = 3
    )]
    pub max_attempts: u32,

    /// How often linkgate polls Deck about unsettled link sessions and connections (Deck asks
    /// for every 5 seconds).
    #[arg(id = "deck_poll_interval", value_name = "DURATION", long = "deck-poll-interval", env = "LINKGATE_DECK_POLL_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// How long the list of Deck sources (institutions) is reused before it is fetched again.
    #[arg(id = "deck_institutions_ttl", value_name = "DURATION", long = "deck-institutions-ttl", env = "LINKGATE_DECK_INSTITUTIONS_TTL", default_value = "5m", value_parser = parse_duration)]
    pub institutions_ttl: Duration,
}

/// Deck's sandbox API, the default base URL (a live secret does not work there, nor the reverse).
pub const DECK_SANDBOX_URL: &str = "https://sandbox.deck.co/api/v1";

impl Default for DeckSettings {
    /// The flag defaults, without credentials: Deck is not offered.
    fn default() -> Self {
        Self {
            base_url: DECK_SANDBOX_URL.parse().expect("the sandbox URL parses"),
            client_id: None,
            client_secret: None,
            request_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(30),
            max_attempts: 3,
            poll_interval: Duration::from_secs(5),
            institutions_ttl: Duration::from_secs(300),
        }
    }
}

/// Vumi Finlink (Spanish brokers and banks: accounts, transactions, portfolios, positions).
/// Offered only when the client id, the client secret and the widget's redirect id are set. The
/// session token Vumi issues for the credentials is shared by every replica through the store.
#[derive(Debug, Clone, clap::Args)]
pub struct VumiSettings {
    /// Vumi's API base URL (or a `linkgate-mock vumi` address). Plain http is accepted for
    /// loopback addresses only.
    #[arg(id = "vumi_base_url", value_name = "URL", long = "vumi-base-url", env = "LINKGATE_VUMI_BASE_URL", default_value = VUMI_API_URL, value_parser = crate::providers::upstream_client::parse_base_url)]
    pub base_url: reqwest::Url,

    /// Vumi app client id (a UUID).
    #[arg(id = "vumi_client_id", value_name = "ID", long = "vumi-client-id", env = "LINKGATE_VUMI_CLIENT_ID")]
    pub client_id: Option<String>,

    /// Vumi app client secret.
    #[arg(
        id = "vumi_client_secret",
        value_name = "SECRET",
        long = "vumi-client-secret",
        env = "LINKGATE_VUMI_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<SecretString>,

    /// Id of the redirect configuration (the app's redirect table) the Link widget returns
    /// through; Vumi requires it to start a widget flow.
    #[arg(id = "vumi_redirect_id", value_name = "UUID", long = "vumi-redirect-id", env = "LINKGATE_VUMI_REDIRECT_ID")]
    pub redirect_id: Option<String>,

    /// Longest one HTTP attempt to Vumi may take (connecting, sending, reading the answer).
    #[arg(id = "vumi_request_timeout", value_name = "DURATION", long = "vumi-request-timeout", env = "LINKGATE_VUMI_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Longest one call to Vumi may take, retries and their pauses included.
    #[arg(id = "vumi_call_timeout", value_name = "DURATION", long = "vumi-call-timeout", env = "LINKGATE_VUMI_CALL_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub call_timeout: Duration,

    /// Attempts per call when Vumi answers 5xx or 429, times out or drops the connection (Vumi
    /// advises 3 to 5).
    #[arg(
        id = "vumi_max_attempts",
        value_name = "N",
        long = "vumi-max-attempts",
        env = "LINKGATE_VUMI_MAX_ATTEMPTS",
        default_value_t = 3
    )]
    pub max_attempts: u32,

    /// How often linkgate polls Vumi about unsettled link sessions and connections.
    #[arg(id = "vumi_poll_interval", value_name = "DURATION", long = "vumi-poll-interval", env = "LINKGATE_VUMI_POLL_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// How long the app's entity list (institutions) is reused before it is fetched again.
    #[arg(id = "vumi_institutions_ttl", value_name = "DURATION", long = "vumi-institutions-ttl", env = "LINKGATE_VUMI_INSTITUTIONS_TTL", default_value = "1h", value_parser = parse_duration)]
    pub institutions_ttl: Duration,
}

/// Vumi's API, the default base URL (environments are separate apps with their own credentials).
pub const VUMI_API_URL: &str = "https://api.finlink.vumi.io/api/v1";

impl Default for VumiSettings {
    /// The flag defaults, without credentials: Vumi is not offered.
    fn default() -> Self {
        Self {
            base_url: VUMI_API_URL.parse().expect("the API URL parses"),
            client_id: None,
            client_secret: None,
            redirect_id: None,
            request_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(30),
            max_attempts: 3,
            poll_interval: Duration::from_secs(5),
            institutions_ttl: Duration::from_secs(3600),
        }
    }
}

/// The background sync engine.
#[derive(Debug, Clone, clap::Args)]
pub struct SyncSettings {
    /// How often each replica looks for due work.
    #[arg(long = "sync-tick", env = "LINKGATE_SYNC_TICK", default_value = "250ms", value_parser = parse_duration)]
    pub tick: Duration,

    /// How often each replica re-reads the event log even when no replica announced anything
    /// (a safety net under PostgreSQL NOTIFY), and moves into the log the committed events no
    /// writer rang for (one that died after its commit, the command line).
    #[arg(long = "events-recheck", env = "LINKGATE_EVENTS_RECHECK", default_value = "1s", value_parser = parse_duration)]
    pub events_recheck: Duration,

    /// How long connection events stay replayable. Older ones are pruned (each connection's
    /// latest is kept); a watcher resuming from a pruned cursor gets current state snapshots.
    #[arg(long = "event-retention", env = "LINKGATE_EVENT_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub event_retention: Duration,

    /// How long a replica owns an item it leased before another may take it over.
    #[arg(long = "sync-lease", env = "LINKGATE_SYNC_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub lease: Duration,

    /// How long before a connection's consent lapses its CONSENT_EXPIRING event goes out.
    #[arg(long = "consent-warning", env = "LINKGATE_CONSENT_WARNING", default_value = "7d", value_parser = parse_duration)]
    pub consent_warning: Duration,

    /// How long the change feed (SyncAccountTransactions, SyncPortfolioTransactions) keeps the
    /// records providers removed, and so how long a sync cursor stays good; an older cursor is
    /// refused with SYNC_CURSOR_EXPIRED.
    #[arg(long = "sync-window", env = "LINKGATE_SYNC_WINDOW", default_value = "30d", value_parser = parse_duration)]
    pub sync_window: Duration,
}

/// MoneyKit (US, UK and CA banks: accounts, transactions, holdings). Offered only when both the
/// client id and the client secret are set; the API version and the environment (sandbox or live)
/// follow from the keys, not the host.
#[derive(Debug, Clone, clap::Args)]
pub struct MoneyKitSettings {
    /// MoneyKit's API base URL (or a `linkgate-mock moneykit` address). Plain http is accepted
    /// for loopback addresses only.
    #[arg(id = "moneykit_base_url", value_name = "URL", long = "moneykit-base-url", env = "LINKGATE_MONEYKIT_BASE_URL", default_value = MONEYKIT_URL, value_parser = crate::providers::upstream_client::parse_base_url)]
    pub base_url: reqwest::Url,

    /// MoneyKit OAuth2 client id.
    #[arg(
        id = "moneykit_client_id",
        value_name = "ID",
        long = "moneykit-client-id",
        env = "LINKGATE_MONEYKIT_CLIENT_ID"
    )]
    pub client_id: Option<String>,

    /// MoneyKit OAuth2 client secret.
    #[arg(
        id = "moneykit_client_secret",
        value_name = "SECRET",
        long = "moneykit-client-secret",
        env = "LINKGATE_MONEYKIT_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<SecretString>,

    /// The `MoneyKit-Version` header sent on every call: the API schema linkgate reads.
    #[arg(id = "moneykit_api_version", value_name = "VERSION", long = "moneykit-api-version", env = "LINKGATE_MONEYKIT_API_VERSION", default_value = MONEYKIT_API_VERSION)]
    pub api_version: String,

    /// Longest one HTTP attempt to MoneyKit may take.
    #[arg(id = "moneykit_request_timeout", value_name = "DURATION", long = "moneykit-request-timeout", env = "LINKGATE_MONEYKIT_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Longest one call to MoneyKit may take, retries and their pauses included.
    #[arg(id = "moneykit_call_timeout", value_name = "DURATION", long = "moneykit-call-timeout", env = "LINKGATE_MONEYKIT_CALL_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub call_timeout: Duration,

    /// Attempts per call when MoneyKit answers 5xx or 429, times out or drops the connection.
    #[arg(
        id = "moneykit_max_attempts",
        value_name = "N",
        long = "moneykit-max-attempts",
        env = "LINKGATE_MONEYKIT_MAX_ATTEMPTS",
        default_value_t = 3
    )]
    pub max_attempts: u32,

    /// How often linkgate asks MoneyKit about connections whose first import is running.
    #[arg(id = "moneykit_poll_interval", value_name = "DURATION", long = "moneykit-poll-interval", env = "LINKGATE_MONEYKIT_POLL_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// How long MoneyKit's institution catalogue is reused before it is fetched again (every page).
    #[arg(id = "moneykit_institutions_ttl", value_name = "DURATION", long = "moneykit-institutions-ttl", env = "LINKGATE_MONEYKIT_INSTITUTIONS_TTL", default_value = "6h", value_parser = parse_duration)]
    pub institutions_ttl: Duration,
}

/// MoneyKit's API host (sandbox and live share it; the keys choose the environment).
pub const MONEYKIT_URL: &str = "https://api.moneykit.com";
/// The MoneyKit API version linkgate's wire types follow.
pub const MONEYKIT_API_VERSION: &str = "2023-02-18";

impl Default for MoneyKitSettings {
    /// The flag defaults, without credentials: MoneyKit is not offered.
    fn default() -> Self {
        Self {
            base_url: MONEYKIT_URL.parse().expect("the MoneyKit URL parses"),
            client_id: None,
            client_secret: None,
            api_version: MONEYKIT_API_VERSION.to_owned(),
            request_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(30),
            max_attempts: 3,
            poll_interval: Duration::from_secs(10),
            institutions_ttl: Duration::from_secs(6 * 3600),
        }
    }
}

impl Settings {
    /// Every problem with these settings at once, each naming its environment variable. Syntax
    /// (numbers, durations, addresses) is checked while parsing; this checks what only makes
    /// sense together.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, text: &str| problems.push(format!("{key}: {text}"));
        let url = &self.database.database_url;
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            problem("LINKGATE_DATABASE_URL", "must start with sqlite:, postgres:// or postgresql://");
        }
        if !url.starts_with("sqlite:") && self.secrets.encryption_key.is_none() {
            problem("LINKGATE_ENCRYPTION_KEY", "is required with PostgreSQL (base64 of 32 random bytes)");
        }
        if self.database.database_max_connections == 0 {
            problem("LINKGATE_DATABASE_MAX_CONNECTIONS", "must be at least 1");
        }
        for (key, path) in [
            ("LINKGATE_TLS_CERT", &self.tls.tls_cert),
            ("LINKGATE_TLS_KEY", &self.tls.tls_key),
            ("LINKGATE_TLS_CLIENT_CA", &self.tls.tls_client_ca),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                problem(key, &format!("{} is not a readable file", path.display()));
            }
        }
        if self.grpc_addr == self.http_addr {
            problem("LINKGATE_HTTP_ADDR", "must differ from LINKGATE_GRPC_ADDR");
        }
        let limits = &self.limits;
        for (key, value) in [
            ("LINKGATE_TENANT_CALLS_PER_SECOND", limits.tenant_calls_per_second as usize),
            ("LINKGATE_TENANT_CALL_BURST", limits.tenant_call_burst as usize),
            ("LINKGATE_TENANT_MAX_STREAMS", limits.tenant_max_streams),
            ("LINKGATE_MAX_STREAMS", limits.max_streams),
            ("LINKGATE_STREAM_DATABASE_CONNECTIONS", limits.stream_database_connections),
            ("LINKGATE_MAX_CONCURRENT_STREAMS", limits.max_concurrent_streams as usize),
            ("LINKGATE_MAX_IN_FLIGHT", limits.max_in_flight),
            ("LINKGATE_MAX_MESSAGE_BYTES", limits.max_message_bytes),
        ] {
            if value == 0 {
                problem(key, "must be at least 1");
            }
        }
        for (key, timeout) in [
            ("LINKGATE_REQUEST_TIMEOUT", limits.request_timeout),
            ("LINKGATE_STREAM_STALL_TIMEOUT", limits.stream_stall_timeout),
        ] {
            if timeout.is_zero() {
                problem(key, "must be longer than 0s");
            }
        }
        let transport = &self.transport;
        for (key, timeout) in [
            ("LINKGATE_HANDSHAKE_TIMEOUT", transport.handshake_timeout),
            ("LINKGATE_HTTP_HEADER_TIMEOUT", transport.http_header_timeout),
        ] {
            if timeout.is_zero() {
                problem(key, "must be longer than 0s");
            }
        }
        if transport.max_connections == 0 {
            problem("LINKGATE_MAX_CONNECTIONS", "must be at least 1");
        }
        if self.sync.tick.is_zero() {
            problem("LINKGATE_SYNC_TICK", "must be longer than 0s");
        }
        if self.sync.lease <= self.sync.tick {
            problem("LINKGATE_SYNC_LEASE", "must be longer than LINKGATE_SYNC_TICK");
        }
        if self.providers.sandbox.poll_interval.is_zero() {
            problem("LINKGATE_SANDBOX_POLL_INTERVAL", "must be longer than 0s");
        }
        let vumi = &self.providers.vumi;
        let configured = [vumi.client_id.is_some(), vumi.client_secret.is_some(), vumi.redirect_id.is_some()];
        if configured.contains(&true) {
            for (key, set) in [
                ("LINKGATE_VUMI_CLIENT_ID", configured[0]),
                ("LINKGATE_VUMI_CLIENT_SECRET", configured[1]),
                ("LINKGATE_VUMI_REDIRECT_ID", configured[2]),
            ] {
                if !set {
                    problem(key, "is required once any Vumi credential is set");
                }
            }
        }
        if vumi.redirect_id.as_deref().is_some_and(|id| uuid::Uuid::parse_str(id).is_err()) {
            problem("LINKGATE_VUMI_REDIRECT_ID", "must be a UUID");
        }
        if vumi.poll_interval.is_zero() {
            problem("LINKGATE_VUMI_POLL_INTERVAL", "must be longer than 0s");
        }
        let moneykit = &self.providers.moneykit;
        match (&moneykit.client_id, &moneykit.client_secret) {
            (Some(_), None) => {
                problem("LINKGATE_MONEYKIT_CLIENT_SECRET", "is required with LINKGATE_MONEYKIT_CLIENT_ID")
            }
            (None, Some(_)) => {
                problem("LINKGATE_MONEYKIT_CLIENT_ID", "is required with LINKGATE_MONEYKIT_CLIENT_SECRET")
            }
            _ => {}
        }
        let version = moneykit.api_version.as_str();
        if version.len() != 10 || !version.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            problem("LINKGATE_MONEYKIT_API_VERSION", "must be a MoneyKit API version date such as 2023-02-18");
        }
        if moneykit.poll_interval.is_zero() {
            problem("LINKGATE_MONEYKIT_POLL_INTERVAL", "must be longer than 0s");
        }
        if moneykit.max_attempts == 0 {
            problem("LINKGATE_MONEYKIT_MAX_ATTEMPTS", "must be at least 1");
        }
        problems
    }
}

/// Parses "250ms", "2s", "5m", "1h" or "7d": a whole number and one of the units `ms`, `s`,
/// `m`, `h` or `d`, or a bare number of seconds. `humantime` converts the units, so a value too
/// large for a duration is refused instead of wrapping around; the shape is checked here first,
/// so the settings accepted are exactly the ones documented (no "5 weeks", no "1M" for months).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(format!("{text:?} is not a duration like 250ms, 2s, 5m or 1h"));
    }
    if !matches!(unit, "" | "ms" | "s" | "m" | "h" | "d") {
        return Err(format!("{text:?} has an unknown unit; use ms, s, m, h or d"));
    }
    let too_large = || format!("{text:?} is too large a duration; the longest is about 584 billion years");
    match unit {
        // A bare number is seconds, which humantime would refuse for want of a unit.
        "" => return number.parse().map(Duration::from_secs).map_err(|_| too_large()),
        // humantime counts milliseconds in nanoseconds and so refuses more than about 584 years of
        // them; any u64 of milliseconds was accepted before and fits a Duration, so it still is.
        "ms" => return number.parse().map(Duration::from_millis).map_err(|_| too_large()),
        _ => {}
    }
    humantime::parse_duration(text).map_err(|error| match error {
        humantime::DurationError::NumberOverflow => too_large(),
        other => format!("{text:?} is not a duration like 250ms, 2s, 5m or 1h: {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Settings {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            settings: Settings,
        }
        <Cli as clap::Parser>::try_parse_from(std::iter::once("linkgate").chain(args.iter().copied()))
            .expect("arguments parse")
            .settings
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(parse(&[]).problems(), Vec::<String>::new());
    }

    #[test]
    fn every_problem_is_reported_at_once_naming_its_variable() {
        let settings = parse(&[
            "--database-url",
            "postgres://db/linkgate",
            "--database-max-connections",
            "0",
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
            "--sync-lease",
            "100ms",
            "--sync-tick",
            "250ms",
        ]);
        let problems = settings.problems();
        for key in [
            "LINKGATE_ENCRYPTION_KEY",
            "LINKGATE_DATABASE_MAX_CONNECTIONS",
            "LINKGATE_TLS_CERT",
            "LINKGATE_TLS_KEY",
            "LINKGATE_SYNC_LEASE",
        ] {
            assert!(problems.iter().any(|p| p.starts_with(key)), "{key} in {problems:#?}");
        }
        assert_eq!(problems.len(), 5, "{problems:#?}");
    }

    #[test]
    fn malformed_values_are_refused_while_parsing() {
        #[derive(clap::Parser, Debug)]
        struct Cli {
            #[command(flatten)]
            settings: Settings,
        }
        let error = <Cli as clap::Parser>::try_parse_from(["linkgate", "--sync-tick", "soon"]).unwrap_err();
        assert!(error.to_string().contains("--sync-tick"), "{error}");
    }

    #[test]
    fn grpc_web_origins_are_exact_browser_origins() {
        assert!(parse(&[]).grpc_web.grpc_web_allowed_origins.is_empty(), "none by default");
        let listed = parse(&["--grpc-web-allowed-origins", "https://app.example.com,http://127.0.0.1:5173"]);
        assert_eq!(listed.grpc_web.grpc_web_allowed_origins, ["https://app.example.com", "http://127.0.0.1:5173"]);
        for (origin, hint) in [
            ("https://app.example.com/", "did you mean \"https://app.example.com\""),
            ("https://App.example.com", "did you mean \"https://app.example.com\""),
            ("https://app.example.com:443", "did you mean \"https://app.example.com\""),
            ("*", "is not an origin"),
            ("ftp://files.example.com", "not an http or https origin"),
        ] {
            assert!(parse_origin(origin).unwrap_err().contains(hint), "{origin}: {:?}", parse_origin(origin));
        }
    }

    #[test]
    fn the_public_webhook_url_is_https_or_loopback() {
        #[derive(clap::Parser, Debug)]
        struct Cli {
            #[command(flatten)]
            settings: Settings,
        }
        let parse_url = |url: &str| <Cli as clap::Parser>::try_parse_from(["linkgate", "--public-webhook-url", url]);
        assert!(parse(&[]).providers.public_webhook_url.is_none(), "unset by default");
        let public = parse_url("https://hooks.example.com").unwrap().settings.providers.public_webhook_url;
        assert_eq!(public.unwrap().as_str(), "https://hooks.example.com/");
        assert!(parse_url("http://127.0.0.1:8080").is_ok(), "plain http on loopback, for mocks");
        assert!(parse_url("http://hooks.example.com").is_err(), "MoneyKit would deliver in clear");
    }

    #[test]
    fn durations_parse_with_units_and_reject_garbage() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 weeks").is_err());
    }

    #[test]
    fn every_documented_form_keeps_its_meaning() {
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration(" 30 "), Ok(Duration::from_secs(30)), "a bare number is seconds");
        assert_eq!(parse_duration("007s"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("6h"), Ok(Duration::from_secs(6 * 3600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("18446744073709551615ms"), Ok(Duration::from_millis(u64::MAX)));
        assert_eq!(parse_duration("18446744073709551615"), Ok(Duration::from_secs(u64::MAX)));
        for unknown in ["5M", "1y", "1h30m", "5 s", "2sec", "-5s", "+5s", "1.5s", ""] {
            assert!(parse_duration(unknown).is_err(), "{unknown:?} must be refused");
        }
        assert!(parse_duration("5x").unwrap_err().contains("use ms, s, m, h or d"));
    }

    #[test]
    fn durations_too_large_are_refused_rather_than_wrapped() {
        // u64::MAX / 60 + 1 minutes, / 3600 + 1 hours, / 86400 + 1 days: each overflows seconds.
        for text in ["307445734561825861m", "5124095576030432h", "213503982334602d", "18446744073709551616"] {
            let error = parse_duration(text).unwrap_err();
            assert!(error.contains("too large"), "{text}: {error}");
        }
        assert_eq!(parse_duration("307445734561825860m"), Ok(Duration::from_secs(307_445_734_561_825_860 * 60)));
    }

    #[test]
    fn every_serve_flag_has_its_own_name() {
        use clap::{CommandFactory, Parser};
        #[derive(Parser)]
        struct Serve {
            #[command(flatten)]
            settings: Settings,
        }
        Serve::command().debug_assert();
    }

    #[test]
    fn deck_defaults_match_the_flags_and_offer_nothing_without_credentials() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            deck: DeckSettings,
        }
        let parsed = Cli::try_parse_from(["linkgate"]).expect("defaults parse").deck;
        let default = DeckSettings::default();
        assert_eq!(parsed.base_url, default.base_url);
        assert_eq!(parsed.request_timeout, default.request_timeout);
        assert_eq!(parsed.call_timeout, default.call_timeout);
        assert_eq!(parsed.max_attempts, default.max_attempts);
        assert_eq!(parsed.poll_interval, default.poll_interval);
        assert_eq!(parsed.institutions_ttl, default.institutions_ttl);
        assert!(parsed.client_id.is_none() && parsed.client_secret.is_none());
        assert!(Cli::try_parse_from(["linkgate", "--deck-base-url", "http://deck.example/api/v1"]).is_err());
    }

    #[test]
    fn transport_defaults_match_the_flags_and_zero_is_refused() {
        let parsed = parse(&[]).transport;
        let default = TransportSettings::default();
        assert_eq!(parsed.handshake_timeout, default.handshake_timeout);
        assert_eq!(parsed.http_header_timeout, default.http_header_timeout);
        assert_eq!(parsed.max_connections, default.max_connections);
        let problems =
            parse(&["--handshake-timeout", "0s", "--http-header-timeout", "0ms", "--max-connections", "0"]).problems();
        for key in ["LINKGATE_HANDSHAKE_TIMEOUT", "LINKGATE_HTTP_HEADER_TIMEOUT", "LINKGATE_MAX_CONNECTIONS"] {
            assert!(problems.iter().any(|p| p.starts_with(key)), "{key} in {problems:#?}");
        }
    }

    #[test]
    fn vumi_is_configured_all_or_nothing_and_names_the_missing_key() {
        let defaults = parse(&[]);
        let vumi = &defaults.providers.vumi;
        assert_eq!(vumi.base_url.as_str(), VumiSettings::default().base_url.as_str());
        assert_eq!((vumi.request_timeout, vumi.max_attempts), (Duration::from_secs(10), 3));
        assert!(vumi.client_id.is_none() && vumi.client_secret.is_none() && vumi.redirect_id.is_none());
        assert!(!defaults.problems().iter().any(|p| p.contains("VUMI")), "no credentials: not offered, no problem");

        let partial = parse(&["--vumi-client-id", "test-client", "--vumi-redirect-id", "not-a-uuid"]);
        let problems = partial.problems();
        assert!(problems.iter().any(|p| p.starts_with("LINKGATE_VUMI_CLIENT_SECRET: is required")), "{problems:?}");
        assert!(problems.iter().any(|p| p == "LINKGATE_VUMI_REDIRECT_ID: must be a UUID"), "{problems:?}");
        let complete = parse(&[
            "--vumi-client-id",
            "test-client",
            "--vumi-client-secret",
            "test-secret",
            "--vumi-redirect-id",
            "0b6f3c1e-9a2d-4c5b-8e7f-112233445566",
        ]);
        assert!(!complete.problems().iter().any(|p| p.contains("VUMI")), "{:?}", complete.problems());
    }

    #[test]
    fn moneykit_defaults_match_the_flags_and_problems_name_their_keys() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            moneykit: MoneyKitSettings,
        }
        let parsed = Cli::try_parse_from(["linkgate"]).expect("defaults parse").moneykit;
        let default = MoneyKitSettings::default();
        assert_eq!(parsed.base_url, default.base_url);
        assert_eq!(parsed.api_version, default.api_version);
        assert_eq!(parsed.request_timeout, default.request_timeout);
        assert_eq!(parsed.call_timeout, default.call_timeout);
        assert_eq!(parsed.max_attempts, default.max_attempts);
        assert_eq!(parsed.poll_interval, default.poll_interval);
        assert!(parsed.client_id.is_none() && parsed.client_secret.is_none());
        let problems = parse(&[
            "--moneykit-client-id",
            "id",
            "--moneykit-api-version",
            "latest",
            "--moneykit-poll-interval",
            "0s",
        ])
        .problems();
        for key in
            ["LINKGATE_MONEYKIT_CLIENT_SECRET", "LINKGATE_MONEYKIT_API_VERSION", "LINKGATE_MONEYKIT_POLL_INTERVAL"]
        {
            assert!(problems.iter().any(|p| p.starts_with(key)), "{key} in {problems:#?}");
        }
    }
}

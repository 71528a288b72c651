//! The benchmark's gRPC and HTTP client for what h2load cannot do: flows that need distinct
//! requests (a fresh public token per exchange), connection changes that append events, paging
//! through a connection's transactions, watch streams, pollers of the Deck mock, and timing a
//! replica's start. Every command prints one JSON object on stdout; every wait is bounded.
//! `lgload --help` lists the commands.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use linkgate_client::pb;
use pb::account_service_client::AccountServiceClient;
use pb::connection_service_client::ConnectionServiceClient;
use pb::link_service_client::LinkServiceClient;
use pb::sandbox_service_client::SandboxServiceClient;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The longest any single step may wait.
const LIMIT: Duration = Duration::from_secs(60);

#[derive(Parser)]
struct Cli {
    /// linkgate's gRPC address. `exchange` and `events` take several, comma-separated, and spread
    /// their callers over them (replicas sharing one database); the other commands use the first.
    #[arg(long, default_value = "127.0.0.1:50051", value_delimiter = ',', global = true)]
    addr: Vec<String>,
    /// The tenant's API key (`lgk_…`).
    #[arg(long, default_value = "", global = true)]
    key: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Links `user_good` at the sandbox bank and waits until the connection is READY.
    SandboxConnection,
    /// Links `user_good` at a Deck utility and exchanges its token; the connection stays PENDING
    /// while the mock withholds the data.
    DeckConnection,
    /// Waits until a connection is READY.
    AwaitReady {
        #[arg(long)]
        connection: String,
    },
    /// Issues sandbox public tokens (one link session each), one per line into `out`.
    Mint {
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Links `count` sandbox users (`bench-link-N`) and writes their connection ids, one per line,
    /// to `out`, without waiting for their import.
    Link {
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Exchanges `count` tokens from `tokens` (starting at line `skip`), `concurrency` at once;
    /// with several addresses, token N goes to address N modulo their count.
    Exchange {
        #[arg(long)]
        tokens: std::path::PathBuf,
        #[arg(long, default_value_t = 0)]
        skip: usize,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        concurrency: usize,
    },
    /// One writer per connection in `connections` (one id per line), each setting its sandbox
    /// connection's consent expiry again and again for `seconds`: every call appends one
    /// connection event. With several addresses, writer N calls address N modulo their count.
    Events {
        #[arg(long)]
        connections: std::path::PathBuf,
        #[arg(long)]
        seconds: f64,
    },
    /// Reads every transaction of a connection, one page after the other as one caller would:
    /// from an empty cursor through SyncAccountTransactions, or through ListAccountTransactions.
    Drain {
        #[arg(long)]
        connection: String,
        #[arg(long, value_enum)]
        via: Via,
        #[arg(long, default_value_t = 500)]
        page_size: i32,
    },
    /// Holds `count` WatchConnection streams on one connection for `seconds`.
    Watch {
        #[arg(long)]
        connection: String,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        seconds: u64,
    },
    /// `count` integrators, each polling Deck's connection status every `interval` seconds, as
    /// Deck's guide asks, for `seconds`.
    Poll {
        /// Deck's base URL (`http://ADDR/api/v1`).
        #[arg(long)]
        base: String,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 5)]
        interval: u64,
        #[arg(long)]
        seconds: u64,
    },
    /// Links `user_good` directly at the Deck mock and prints its access token.
    DeckAccessToken {
        #[arg(long)]
        base: String,
    },
    /// Starts the command after `--` `runs` times: milliseconds from spawn to gRPC health SERVING,
    /// then resident memory after `idle` seconds.
    Start {
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long, default_value_t = 3)]
        idle: u64,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Via {
    Sync,
    List,
}

type Authed = InterceptedService<Channel, Bearer>;

/// Adds the tenant's key to every call.
#[derive(Clone)]
struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

struct Api {
    channel: Channel,
    bearer: Bearer,
}

impl Api {
    async fn connect(addr: &str, key: &str) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(format!("http://{addr}"))?.connect().await?;
        let bearer = Bearer((!key.is_empty()).then(|| format!("Bearer {key}").parse()).transpose()?);
        Ok(Self { channel, bearer })
    }
    fn link(&self) -> LinkServiceClient<Authed> {
        LinkServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }
    fn connections(&self) -> ConnectionServiceClient<Authed> {
        ConnectionServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }
    fn accounts(&self) -> AccountServiceClient<Authed> {
        AccountServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }
    fn sandbox(&self) -> SandboxServiceClient<Authed> {
        SandboxServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Building against linkgate gives this package's reqwest linkgate's TLS feature, which
    // brings no crypto provider of its own: every client, even a plain-HTTP one, needs one
    // installed. A second install fails harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let output = match cli.command {
        Command::Start { runs, idle, command } => start(runs, idle, &cli.addr[0], &command).await?,
        Command::Poll { base, count, interval, seconds } => poll(&base, count, interval, seconds).await?,
        Command::DeckAccessToken { base } => serde_json::json!({ "access_token": deck_access_token(&base).await? }),
        command => {
            let apis = futures::future::try_join_all(cli.addr.iter().map(|addr| Api::connect(addr, &cli.key))).await?;
            let api = &apis[0];
            match command {
                Command::SandboxConnection => {
                    let id = link(api, "sandbox", "ins_sandbox_bank", "bench-sandbox").await?;
                    await_ready(api, &id).await?;
                    serde_json::json!({ "connection_id": id })
                }
                Command::DeckConnection => {
                    let id = link(api, "deck", DECK_SOURCE, "bench-deck").await?;
                    serde_json::json!({ "connection_id": id })
                }
                Command::AwaitReady { connection } => {
                    await_ready(api, &connection).await?;
                    serde_json::json!({ "connection_id": connection })
                }
                Command::Mint { count, concurrency, out } => mint(api, count, concurrency, &out).await?,
                Command::Link { count, concurrency, out } => link_many(api, count, concurrency, &out).await?,
                Command::Exchange { tokens, skip, count, concurrency } => {
                    exchange(&apis, &tokens, skip, count, concurrency).await?
                }
                Command::Events { connections, seconds } => events(&apis, &connections, seconds).await?,
                Command::Drain { connection, via, page_size } => drain(api, &connection, via, page_size).await?,
                Command::Watch { connection, count, seconds } => watch(api, &connection, count, seconds).await?,
                _ => unreachable!("handled above"),
            }
        }
    };
    println!("{output}");
    Ok(())
}

/// National Grid, one of the Deck mock's utilities.
const DECK_SOURCE: &str = "5f0b6a7e-2c1d-4e8a-9b3f-1a2b3c4d5e6f";

fn credentials() -> std::collections::HashMap<String, String> {
    [("username".to_owned(), "user_good".to_owned()), ("password".to_owned(), "pass_good".to_owned())].into()
}

/// A link session through to its public token (the provider may take a few polls), then the
/// exchange; returns the connection id.
async fn link(api: &Api, provider: &str, institution: &str, user: &str) -> anyhow::Result<String> {
    let token = public_token(api, provider, institution, user).await?;
    let request =
        pb::ExchangePublicTokenRequest { provider: provider.into(), public_token: token, ..Default::default() };
    let connection = api.link().exchange_public_token(request).await?.into_inner().connection;
    Ok(connection.context("no connection in the exchange response")?.id)
}

async fn public_token(api: &Api, provider: &str, institution: &str, user: &str) -> anyhow::Result<String> {
    let mut link = api.link();
    let request = pb::CreateLinkSessionRequest {
        provider: provider.into(),
        external_user_id: user.into(),
        institution_id: institution.into(),
        ..Default::default()
    };
    let session = link.create_link_session(request).await?.into_inner().link_session.context("no session")?;
    let request = pb::SubmitCredentialsRequest {
        link_session_id: session.id.clone(),
        credentials: credentials(),
        ..Default::default()
    };
    let submitted = link.submit_credentials(request).await?.into_inner().link_session.context("no session")?;
    if !submitted.public_token.is_empty() {
        return Ok(submitted.public_token);
    }
    let request = pb::WatchLinkSessionRequest { link_session_id: session.id };
    let mut stream = link.watch_link_session(request).await?.into_inner();
    while let Some(message) = tokio::time::timeout(LIMIT, stream.next()).await? {
        let session = message?.link_session.context("no session")?;
        if !session.public_token.is_empty() {
            return Ok(session.public_token);
        }
        if session.state() == pb::LinkSessionState::Failed {
            bail!("link session failed: {}", session.failure_message);
        }
    }
    bail!("link session ended without a public token")
}

async fn await_ready(api: &Api, id: &str) -> anyhow::Result<()> {
    let request = pb::WatchConnectionRequest { connection_id: id.into(), after_event_id: 0 };
    let mut stream = api.connections().watch_connection(request).await?.into_inner();
    while let Some(message) = tokio::time::timeout(LIMIT, stream.next()).await? {
        let connection = message?.event.and_then(|e| e.connection).context("no connection in event")?;
        if connection.state() == pb::ConnectionState::Ready {
            return Ok(());
        }
    }
    bail!("connection {id} never became ready")
}

async fn mint(api: &Api, count: usize, concurrency: usize, out: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    let tokens: Vec<String> = futures::stream::iter(0..count)
        .map(|n| async move { public_token(api, "sandbox", "ins_sandbox_bank", &format!("bench-{n}")).await })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    std::fs::write(out, tokens.join("\n") + "\n")?;
    Ok(serde_json::json!({ "tokens": tokens.len(), "seconds": started.elapsed().as_secs_f64() }))
}

async fn link_many(
    api: &Api,
    count: usize,
    concurrency: usize,
    out: &std::path::Path,
) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    let ids: Vec<String> = futures::stream::iter(0..count)
        .map(|n| async move { link(api, "sandbox", "ins_sandbox_bank", &format!("bench-link-{n}")).await })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    std::fs::write(out, ids.join("\n") + "\n")?;
    Ok(serde_json::json!({ "connections": ids.len(), "seconds": started.elapsed().as_secs_f64() }))
}

/// Closed-loop load: `concurrency` callers, each exchanging its next token as soon as the
/// previous answer arrives, over one HTTP/2 connection per address as a gRPC client would.
async fn exchange(
    apis: &[Api],
    tokens: &std::path::Path,
    skip: usize,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(tokens)?;
    let tokens: Vec<String> = text.lines().skip(skip).take(count).map(str::to_owned).collect();
    anyhow::ensure!(tokens.len() == count, "only {} tokens left after line {skip}", tokens.len());
    let failures = AtomicUsize::new(0);
    let started = Instant::now();
    let mut micros: Vec<f64> = futures::stream::iter(tokens)
        .enumerate()
        .map(|(n, token)| {
            let (mut link, failures) = (apis[n % apis.len()].link(), &failures);
            async move {
                let request = pb::ExchangePublicTokenRequest {
                    provider: "sandbox".into(),
                    public_token: token,
                    ..Default::default()
                };
                let at = Instant::now();
                if link.exchange_public_token(request).await.is_err() {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                at.elapsed().as_secs_f64() * 1e6
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    micros.sort_by(f64::total_cmp);
    Ok(serde_json::json!({
        "concurrency": concurrency,
        "replicas": apis.len(),
        "calls": count,
        "failures": failures.into_inner(),
        "seconds": seconds,
        "per_second": count as f64 / seconds,
        "p50_us": quantile(&micros, 0.5),
        "p99_us": quantile(&micros, 0.99),
    }))
}

/// Closed-loop writers, one per connection, until `seconds` have passed. Each call sets a
/// consent expiry decades away, a different one each time, so no consent warning or lapse
/// follows and every call is a change the sandbox accepts.
async fn events(apis: &[Api], connections: &std::path::Path, seconds: f64) -> anyhow::Result<serde_json::Value> {
    let connections: Vec<String> = std::fs::read_to_string(connections)?.lines().map(str::to_owned).collect();
    let window = Duration::from_secs_f64(seconds);
    let failures = AtomicUsize::new(0);
    let started = Instant::now();
    let writers = connections.iter().enumerate().map(|(n, connection)| {
        let (mut sandbox, failures) = (apis[n % apis.len()].sandbox(), &failures);
        async move {
            let mut micros = Vec::new();
            // 2100-01-01T00:00:00Z, then one second later per call.
            let mut expiry = 4_102_444_800;
            while started.elapsed() < window {
                expiry += 1;
                let request = pb::SetConsentExpiryRequest {
                    connection_id: connection.clone(),
                    consent_expires_at: Some(prost_types::Timestamp { seconds: expiry, nanos: 0 }),
                };
                let at = Instant::now();
                if !matches!(tokio::time::timeout(LIMIT, sandbox.set_consent_expiry(request)).await, Ok(Ok(_))) {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                micros.push(at.elapsed().as_secs_f64() * 1e6);
            }
            micros
        }
    });
    let mut micros: Vec<f64> = futures::future::join_all(writers).await.into_iter().flatten().collect();
    let seconds = started.elapsed().as_secs_f64();
    micros.sort_by(f64::total_cmp);
    let failures = failures.into_inner();
    Ok(serde_json::json!({
        "writers": connections.len(),
        "replicas": apis.len(),
        "calls": micros.len(),
        "failures": failures,
        "seconds": seconds,
        "per_second": (micros.len() - failures) as f64 / seconds,
        "p50_us": quantile(&micros, 0.5),
        "p99_us": quantile(&micros, 0.99),
    }))
}

/// Pages through a connection's transactions until the last page; every row counts (added,
/// modified and removed alike in a sync page).
async fn drain(api: &Api, connection: &str, via: Via, page_size: i32) -> anyhow::Result<serde_json::Value> {
    let mut accounts = api.accounts();
    let (mut rows, mut token, mut micros) = (0, String::new(), Vec::new());
    let started = Instant::now();
    loop {
        let at = Instant::now();
        let more = match via {
            Via::Sync => {
                let request = pb::SyncAccountTransactionsRequest {
                    connection_id: connection.into(),
                    cursor: std::mem::take(&mut token),
                    page_size,
                    ..Default::default()
                };
                let page = accounts.sync_account_transactions(request).await?.into_inner();
                rows += page.added.len() + page.modified.len() + page.removed.len();
                token = page.next_cursor;
                page.has_more
            }
            Via::List => {
                let request = pb::ListAccountTransactionsRequest {
                    connection_id: connection.into(),
                    page_token: std::mem::take(&mut token),
                    page_size,
                    ..Default::default()
                };
                let page = accounts.list_account_transactions(request).await?.into_inner();
                rows += page.transactions.len();
                token = page.next_page_token;
                !token.is_empty()
            }
        };
        micros.push(at.elapsed().as_secs_f64() * 1e6);
        if !more {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let pages = micros.len();
    micros.sort_by(f64::total_cmp);
    Ok(serde_json::json!({
        "rows": rows,
        "pages": pages,
        "seconds": seconds,
        "rows_per_second": rows as f64 / seconds,
        "page_p50_us": quantile(&micros, 0.5),
        "page_p99_us": quantile(&micros, 0.99),
    }))
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted.get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or(f64::NAN)
}

async fn watch(api: &Api, connection: &str, count: usize, seconds: u64) -> anyhow::Result<serde_json::Value> {
    let opened = Arc::new(AtomicUsize::new(0));
    let messages = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let mut client = api.connections();
        let request = pb::WatchConnectionRequest { connection_id: connection.into(), after_event_id: 0 };
        let (opened, messages) = (opened.clone(), messages.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(response) = client.watch_connection(request).await else { return };
            opened.fetch_add(1, Ordering::Relaxed);
            let mut stream = response.into_inner();
            while let Some(Ok(_)) = stream.next().await {
                messages.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let deadline = Instant::now() + LIMIT;
    while opened.load(Ordering::Relaxed) < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The window starts once every watcher is in place; the caller counts upstream calls over it.
    eprintln!("watching");
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    for task in &tasks {
        task.abort();
    }
    Ok(serde_json::json!({
        "watchers": opened.load(Ordering::Relaxed),
        "messages": messages.load(Ordering::Relaxed),
    }))
}

/// Deck's keys as the mock knows them.
fn deck_request(http: &reqwest::Client, base: &str, path: &str, body: serde_json::Value) -> reqwest::RequestBuilder {
    http.post(format!("{base}{path}"))
        .header("x-deck-client-id", "test-client")
        .header("x-deck-secret", "test-secret")
        .json(&body)
}

async fn deck_access_token(base: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let call = |path: &'static str, body: serde_json::Value| {
        let request = deck_request(&http, base, path, body);
        async move {
            let response = request.send().await?.error_for_status()?;
            anyhow::Ok(response.json::<serde_json::Value>().await?)
        }
    };
    let link = call("/link/token/create", serde_json::json!({ "language": "en" })).await?;
    let link_token = link["link_token"].as_str().context("no link_token")?.to_owned();
    let connected = call(
        "/link/connect",
        serde_json::json!({
            "link_token": link_token,
            "source_id": DECK_SOURCE,
            "username": "user_good",
            "password": "pass_good",
        }),
    )
    .await?;
    let public_token = connected["public_token"].as_str().context("no public_token")?.to_owned();
    let exchanged =
        call("/connection/public_token/exchange", serde_json::json!({ "public_token": public_token })).await?;
    Ok(exchanged["access_token"].as_str().context("no access_token")?.to_owned())
}

async fn poll(base: &str, count: usize, interval: u64, seconds: u64) -> anyhow::Result<serde_json::Value> {
    let http = reqwest::Client::new();
    let access_token = deck_access_token(base).await?;
    let (calls, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let interval = Duration::from_secs(interval);
    let end = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::with_capacity(count);
    for n in 0..count {
        let (http, base, token) = (http.clone(), base.to_owned(), access_token.clone());
        let (calls, failures) = (calls.clone(), failures.clone());
        // Integrators start at unrelated moments: spread the first polls over one interval.
        let first = tokio::time::Instant::now() + interval.mul_f64(n as f64 / count as f64);
        tasks.push(tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(first, interval);
            loop {
                if ticks.tick().await >= end {
                    return;
                }
                let request =
                    deck_request(&http, &base, "/connection/context", serde_json::json!({ "access_token": token }));
                match request.send().await.and_then(|r| r.error_for_status()) {
                    Ok(_) => calls.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failures.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok(serde_json::json!({
        "pollers": count,
        "calls": calls.load(Ordering::Relaxed),
        "failures": failures.load(Ordering::Relaxed),
    }))
}

async fn start(runs: usize, idle: u64, addr: &str, command: &[String]) -> anyhow::Result<serde_json::Value> {
    let mut results = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let mut child = tokio::process::Command::new(&command[0])
            .args(&command[1..])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let serving = await_serving(addr, started).await;
        let serving_ms = started.elapsed().as_secs_f64() * 1e3;
        serving?;
        tokio::time::sleep(Duration::from_secs(idle)).await;
        let pid = child.id().context("the server exited")?;
        let rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))?
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .context("no VmRSS")?;
        child.kill().await?;
        results.push(serde_json::json!({ "serving_ms": serving_ms, "idle_rss_kib": rss_kib }));
    }
    Ok(serde_json::Value::Array(results))
}

/// Polls the overall health service every millisecond until it answers SERVING.
async fn await_serving(addr: &str, started: Instant) -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let endpoint = Channel::from_shared(format!("http://{addr}"))?;
    while started.elapsed() < LIMIT {
        if let Ok(channel) = endpoint.connect().await {
            let mut health = HealthClient::new(channel);
            while started.elapsed() < LIMIT {
                match health.check(HealthCheckRequest { service: String::new() }).await {
                    Ok(r) if r.get_ref().status() == ServingStatus::Serving => return Ok(()),
                    Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                    Err(_) => break,
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    bail!("{addr} never reported SERVING")
}

//! Benchmark of the watch streams: opens many WatchConnection streams on one linkgate replica
//! (a separate process, on SQLite or on PostgreSQL), drives status changes, and reports delivery
//! latency from commit to client (p50/p99), server memory per watcher and idle CPU.
//!
//! ```sh
//! cargo build --release && cargo run --release --example bench_streams -- 10000 [SYNC_TICK] [DATABASE_URL]
//! ```
//!
//! `SYNC_TICK` (default `20ms`) is how often the server looks for due sync work: short, so each
//! refresh settles quickly; give `250ms`, the server's default, to see its idle cost as deployed.
//! `DATABASE_URL`, an empty PostgreSQL database (migrated here), puts every event through the
//! sequencer's inbox (export `LINKGATE_ENCRYPTION_KEY` first, as `serve` on PostgreSQL requires;
//! the replica inherits it); without it the replica runs on a SQLite file of its own.
//!
//! Everything runs on loopback and every wait is bounded; the server is stopped at the end.

use linkgate::pb;
use linkgate::pb::connection_service_client::ConnectionServiceClient;
use linkgate::pb::link_service_client::LinkServiceClient;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

const CONNECTIONS: usize = 100;
const CHANGES: usize = 50;
const STREAMS_PER_CHANNEL: usize = 800;
const LIMIT: Duration = Duration::from_secs(120);
/// Streams being opened at once.
const OPENING_AT_ONCE: usize = 200;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let watchers: usize = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(10_000);
    let sync_tick = std::env::args().nth(2).unwrap_or_else(|| "20ms".to_owned());
    let binary = std::env::current_exe()?.parent().and_then(|p| p.parent()).map(|p| p.join("linkgate"));
    let binary =
        binary.filter(|p| p.exists()).ok_or_else(|| anyhow::anyhow!("build linkgate first: cargo build --release"))?;
    let directory = tempfile::tempdir()?;
    let database = match std::env::args().nth(3) {
        Some(url) => {
            let migrated = tokio::process::Command::new(&binary)
                .arg("migrate")
                .env("LINKGATE_DATABASE_URL", &url)
                .env("RUST_LOG", "warn")
                .status()
                .await?;
            anyhow::ensure!(migrated.success(), "linkgate migrate failed on {url}");
            url
        }
        None => format!("sqlite://{}", directory.path().join("bench.db").display()),
    };
    let backend = if database.starts_with("postgres") { "PostgreSQL" } else { "SQLite" };
    let port = free_port();
    let mut server = tokio::process::Command::new(&binary)
        .arg("serve")
        .env("LINKGATE_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("LINKGATE_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("LINKGATE_DATABASE_URL", &database)
        .env("LINKGATE_SANDBOX_IMPORT_DELAY", "0s")
        .env("LINKGATE_SANDBOX_POLL_INTERVAL", "50ms")
        .env("LINKGATE_SYNC_TICK", &sync_tick)
        .env("LINKGATE_TENANT_MAX_STREAMS", (watchers + 100).to_string())
        .env("LINKGATE_TENANT_CALLS_PER_SECOND", "10000")
        .env("LINKGATE_TENANT_CALL_BURST", "10000")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let pid = server.id().ok_or_else(|| anyhow::anyhow!("server exited"))?;
    let first = connect(port).await?;

    // A hundred READY connections.
    let mut link = LinkServiceClient::new(first.clone());
    let mut ids = Vec::new();
    for n in 0..CONNECTIONS {
        ids.push(ready_connection(&mut link, &first, n).await?);
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = rss_kib(pid)?;
    let opening = Instant::now();
    let mut channels = Vec::new();
    for _ in 0..watchers.div_ceil(STREAMS_PER_CHANNEL) {
        channels.push(connect(port).await?);
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(i64, Duration)>();
    let mut opened = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let opening_slots = std::sync::Arc::new(tokio::sync::Semaphore::new(OPENING_AT_ONCE));
    for w in 0..watchers {
        let mut client = ConnectionServiceClient::new(channels[w / STREAMS_PER_CHANNEL].clone());
        let request = pb::WatchConnectionRequest { connection_id: ids[w % CONNECTIONS].clone(), after_event_id: 0 };
        let (tx, ready_tx) = (tx.clone(), ready_tx.clone());
        let slot = opening_slots.clone().acquire_owned().await?;
        opened.push(tokio::spawn(async move {
            let Ok(response) = client.watch_connection(request).await else { return };
            let mut stream = response.into_inner();
            // The first message (the current state) proves the stream is live.
            if !matches!(stream.next().await, Some(Ok(_))) {
                return;
            }
            drop(slot);
            let _ = ready_tx.send(());
            while let Some(Ok(message)) = stream.next().await {
                let event = message.event.unwrap_or_default();
                let committed = event.occurred_at.unwrap_or_default();
                let now = chrono::Utc::now();
                let committed =
                    chrono::DateTime::from_timestamp(committed.seconds, committed.nanos as u32).unwrap_or(now);
                let lag = (now - committed).to_std().unwrap_or_default();
                if tx.send((event.event_id, lag)).is_err() {
                    return;
                }
            }
        }));
    }
    drop(ready_tx);
    for _ in 0..watchers {
        tokio::time::timeout(LIMIT, ready_rx.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("a stream failed to open"))?;
    }
    let open_time = opening.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_kib(pid)?;

    // Idle: streams open, nothing changing.
    let cpu_before = cpu_ticks(pid)?;
    let idle = Duration::from_secs(10);
    tokio::time::sleep(idle).await;
    let idle_cpu = (cpu_ticks(pid)? - cpu_before) as f64 / ticks_per_second() / idle.as_secs_f64() * 100.0;

    // Changes: each refresh commits REFRESHING then READY, each delivered to its watchers.
    let mut connections = ConnectionServiceClient::new(first.clone());
    let per_change = watchers / CONNECTIONS;
    let expected = CHANGES * 2 * per_change;
    for n in 0..CHANGES {
        let request =
            pb::RefreshConnectionRequest { connection_id: ids[n % CONNECTIONS].clone(), ..Default::default() };
        connections.refresh_connection(request).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut lags = Vec::with_capacity(expected);
    let mut per_event: HashMap<i64, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while lags.len() < expected {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((event, lag))) => {
                *per_event.entry(event).or_default() += 1;
                lags.push(lag);
            }
            _ => break,
        }
    }
    lags.sort();
    let quantile = |q: f64| lags.get(((lags.len() as f64 * q) as usize).min(lags.len().saturating_sub(1))).copied();
    let per_watcher = (rss_after.saturating_sub(rss_before)) as f64 / watchers as f64;

    println!("watch streams on one replica ({backend}, loopback)");
    println!("  watchers                     {watchers} over {} HTTP/2 connections", channels.len());
    println!("  opened in                    {:.1} s", open_time.as_secs_f64());
    println!("  server RSS before / after    {} KiB / {} KiB", rss_before, rss_after);
    println!("  RSS per watcher              {per_watcher:.1} KiB");
    println!("  idle CPU with streams open   {idle_cpu:.2} % of one core");
    println!("  deliveries                   {} of {expected} ({} events)", lags.len(), per_event.len());
    if let (Some(p50), Some(p99)) = (quantile(0.50), quantile(0.99)) {
        println!("  commit-to-client latency     p50 {:.1} ms, p99 {:.1} ms", ms(p50), ms(p99));
    }
    let json = serde_json::json!({
        "backend": backend,
        "watchers": watchers,
        "rss_per_watcher_kib": per_watcher,
        "idle_cpu_percent": idle_cpu,
        "deliveries": lags.len(),
        "expected_deliveries": expected,
        "latency_ms_p50": quantile(0.50).map(ms),
        "latency_ms_p99": quantile(0.99).map(ms),
    });
    println!("{json}");

    for task in opened {
        task.abort();
    }
    server.kill().await?;
    anyhow::ensure!(lags.len() == expected, "some deliveries were missing");
    Ok(())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

async fn ready_connection(
    link: &mut LinkServiceClient<Channel>,
    channel: &Channel,
    n: usize,
) -> anyhow::Result<String> {
    let session = link
        .create_link_session(pb::CreateLinkSessionRequest {
            provider: "sandbox".into(),
            external_user_id: format!("bench-{n}"),
            institution_id: "ins_sandbox_bank".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .link_session
        .unwrap_or_default();
    let credentials =
        [("username".to_owned(), "user_good".to_owned()), ("password".to_owned(), "pass_good".to_owned())];
    let token = link
        .submit_credentials(pb::SubmitCredentialsRequest {
            link_session_id: session.id,
            credentials: credentials.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .link_session
        .unwrap_or_default()
        .public_token;
    let connection = link
        .exchange_public_token(pb::ExchangePublicTokenRequest {
            provider: "sandbox".into(),
            public_token: token,
            ..Default::default()
        })
        .await?
        .into_inner()
        .connection
        .unwrap_or_default();
    let mut watch = ConnectionServiceClient::new(channel.clone())
        .watch_connection(pb::WatchConnectionRequest { connection_id: connection.id.clone(), after_event_id: 0 })
        .await?
        .into_inner();
    while let Some(message) = tokio::time::timeout(LIMIT, watch.next()).await? {
        if message?.event.unwrap_or_default().connection.unwrap_or_default().state() == pb::ConnectionState::Ready {
            return Ok(connection.id);
        }
    }
    anyhow::bail!("connection {} never became ready", connection.id)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

async fn connect(port: u16) -> anyhow::Result<Channel> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Channel::from_shared(format!("http://127.0.0.1:{port}"))?.connect().await {
            Ok(channel) => return Ok(channel),
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(error) => return Err(error.into()),
        }
    }
}

/// Resident memory of a process, from /proc.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).ok_or_else(|| anyhow::anyhow!("no VmRSS"))?;
    Ok(line.split_whitespace().nth(1).unwrap_or("0").parse()?)
}

/// User plus system CPU time of a process, in clock ticks, from /proc.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace().collect();
    // After the command name: state is field 3; utime and stime are fields 14 and 15.
    Ok(fields.get(11).unwrap_or(&"0").parse::<u64>()? + fields.get(12).unwrap_or(&"0").parse::<u64>()?)
}

fn ticks_per_second() -> f64 {
    100.0
}

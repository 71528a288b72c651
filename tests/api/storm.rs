//! A storm of watch streams whose clients never read, against a real `linkgate serve` process on
//! PostgreSQL: its other callers stay served, it stays SERVING, its memory stays bounded while the
//! streams are open, the stalled streams are cut off with STREAM_STALLED, and the memory comes
//! back once they are gone.

use crate::health::{http_get, sample};
use crate::support::database::{Backend, TestDatabase};
use crate::support::server::{PATIENCE, connect, free_port, spawn_serve};
use bytes::Bytes;
use linkgate::domain::{Connection, ConnectionState, Product, ProductStatus, TenantId};
use linkgate::pb;
use linkgate::store::{Claim, TokenClaim};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tonic_health::pb::health_check_response::ServingStatus;

/// Streams the storm opens, over connections of `STREAMS_PER_CONNECTION` each: as many as a debug
/// build serves well within the test's time on two shared cores.
const STREAMS: usize = 1_000;
const STREAMS_PER_CONNECTION: usize = 500;
/// Connections of the watched tenant: each fresh stream owes its client a snapshot of each, more
/// than a stream may queue.
const TENANT_CONNECTIONS: usize = 40;
/// How long the replica lets a stream's client take nothing.
const STALL_TIMEOUT: Duration = Duration::from_secs(3);
/// The most memory the open streams may add to the replica's resident set, whatever their clients
/// do (measured: about 30 MiB on a debug build).
const STORM_RSS_BOUND_KIB: u64 = 48 * 1024;
/// How close to its resident set before the storm the replica must come back once the streams are gone.
const RECOVERED_RSS_SLACK_KIB: u64 = 8 * 1024;
/// The slowest answer another caller may get during the storm.
const CALL_LATENCY_BOUND: Duration = Duration::from_secs(1);

/// A `linkgate serve` process on its own ports.
struct Replica {
    child: tokio::process::Child,
    grpc: SocketAddr,
    http: SocketAddr,
}

impl Replica {
    fn start(database_url: &str) -> Self {
        let (grpc, http): (SocketAddr, SocketAddr) =
            (([127, 0, 0, 1], free_port()).into(), ([127, 0, 0, 1], free_port()).into());
        let child = spawn_serve(|command| {
            command
                .env("LINKGATE_GRPC_ADDR", grpc.to_string())
                .env("LINKGATE_HTTP_ADDR", http.to_string())
                .env("LINKGATE_DATABASE_URL", database_url)
                .env("LINKGATE_ENCRYPTION_KEY", linkgate::crypto::Sealer::generate_key())
                .env("LINKGATE_STREAM_STALL_TIMEOUT", format!("{}s", STALL_TIMEOUT.as_secs()));
        });
        Self { child, grpc, http }
    }

    fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("the replica runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the replica's status");
        let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("VmRSS");
        line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmRSS in kB")
    }

    async fn metric(&self, series: &str) -> f64 {
        sample(&http_get(self.http, "/metrics").await, series).unwrap_or(0.0)
    }

    /// Waits, bounded, until `series` reads `done`.
    async fn wait_for_metric(&self, series: &str, done: impl Fn(f64) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let value = self.metric(series).await;
            if done(value) {
                return;
            }
            assert!(Instant::now() < deadline, "{series} still {value}");
        }
    }
}

/// Stores the tenant's connections as exchanges would, each with its first event in the log.
async fn seed_connections(database_url: &str) {
    let store = linkgate::store::open(database_url, 2, false).await.expect("the store opens");
    for n in 0..TENANT_CONNECTIONS {
        let at = linkgate::domain::now();
        let connection = Connection {
            id: uuid::Uuid::now_v7(),
            tenant_id: TenantId::DEV,
            provider: "sandbox".into(),
            institution_id: "ins_sandbox_bank".into(),
            institution_name: "Sandbox Bank".into(),
            external_user_id: format!("user-{n}"),
            state: ConnectionState::Ready,
            error: None,
            products: [Product::Accounts, Product::Transactions].into_iter().map(ProductStatus::not_ready).collect(),
            created_at: at,
            updated_at: at,
            last_synced_at: Some(at),
            link_session_id: None,
            consent_expires_at: None,
            consent_warned_for: None,
            duplicate_of: None,
        };
        let upstream = linkgate::crypto::upstream_ref_hash("sandbox", &connection.id.to_string());
        let token = connection.id.as_bytes().to_vec();
        // Never due: the sync engine leaves these connections alone.
        let next_poll_at = at + chrono::Duration::days(1);
        let claimed = store.claim_public_token(TenantId::DEV, "sandbox", &token, at, at + chrono::Duration::minutes(1));
        let Claim::Won { claim_id, .. } = claimed.await.expect("claimed") else { panic!("the token is new") };
        let claim = TokenClaim { token_hash: &token, claim_id };
        let stored = store.create_connection(&connection, b"sealed", &upstream, claim, next_poll_at).await;
        assert!(stored.expect("stored"), "the claim holds");
    }
    // Into the log at once, as a replica's sequencer moves what its own writers commit.
    while store.sequence_events(1000).await.expect("sequenced") == 1000 {}
}

/// WatchConnections requests on a raw HTTP/2 client that never reads: it grants each stream no
/// flow-control window at all, so the replica can send nothing and must hold what each owes.
async fn open_stalled_streams(grpc: SocketAddr, count: usize) -> (Vec<h2::RecvStream>, tokio::task::JoinHandle<()>) {
    let tcp = tokio::net::TcpStream::connect(grpc).await.unwrap();
    let (sender, connection) =
        h2::client::Builder::new().initial_window_size(0).handshake(tcp).await.expect("HTTP/2 handshake");
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut responses = Vec::with_capacity(count);
    for _ in 0..count {
        let mut sender = sender.clone().ready().await.expect("room for a stream");
        let request = http::Request::post(format!("http://{grpc}/linkgate.v1.ConnectionService/WatchConnections"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (response, mut body) = sender.send_request(request, false).expect("stream opened");
        // An empty WatchConnectionsRequest: uncompressed, zero bytes long.
        body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true).expect("request sent");
        responses.push(response);
    }
    let mut streams = Vec::with_capacity(count);
    for response in responses {
        let response = tokio::time::timeout(PATIENCE, response).await.expect("answered in time").expect("answered");
        assert_eq!(response.status(), 200);
        streams.push(response.into_body());
    }
    (streams, driver)
}

#[tokio::test]
async fn a_storm_of_streams_that_never_read_leaves_the_replica_serving_and_its_memory_bounded() {
    let database = TestDatabase::create(Backend::Postgres).await;
    seed_connections(&database.url).await;
    let replica = Replica::start(&database.url);
    let channel = connect(replica.grpc.port()).await;
    let mut connections = pb::connection_service_client::ConnectionServiceClient::new(channel.clone());
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let list = || pb::ListConnectionsRequest { page_size: 100, ..Default::default() };

    // Warm: calls answered, a stream read to its live part, metrics scraped; then the baseline.
    let deadline = Instant::now() + PATIENCE;
    while health.check(tonic_health::pb::HealthCheckRequest::default()).await.map(|r| r.into_inner().status).ok()
        != Some(ServingStatus::Serving as i32)
    {
        assert!(Instant::now() < deadline, "the replica never became SERVING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listed = connections.list_connections(list()).await.expect("listed").into_inner().connections;
    assert_eq!(listed.len(), TENANT_CONNECTIONS);
    let mut watch = connections.watch_connections(pb::WatchConnectionsRequest::default()).await.unwrap().into_inner();
    for _ in 0..TENANT_CONNECTIONS {
        let event = tokio::time::timeout(PATIENCE, watch.message()).await.expect("in time").unwrap().unwrap();
        assert!(event.event.unwrap().snapshot, "a fresh stream starts with snapshots");
    }
    drop(watch);
    replica.wait_for_metric("linkgate_open_streams", |open| open == 0.0).await;
    let baseline = replica.rss_kib();

    // The storm: every stream owes its client snapshots the client never takes.
    let opened = Instant::now();
    let mut storm = Vec::new();
    for _ in 0..STREAMS / STREAMS_PER_CONNECTION {
        storm.push(open_stalled_streams(replica.grpc, STREAMS_PER_CONNECTION).await);
    }
    let opening = opened.elapsed();

    // Other callers are served throughout, until every stalled stream has been cut off.
    let stalled = "linkgate_rejections_total{limit=\"stream_stalled\"}";
    let (mut peak, mut slowest, mut calls) = (0, Duration::ZERO, 0);
    let deadline = Instant::now() + STALL_TIMEOUT + PATIENCE;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let started = Instant::now();
        let listed = connections.list_connections(list()).await.expect("other callers are served");
        let status = health.check(tonic_health::pb::HealthCheckRequest::default()).await.expect("health answers");
        slowest = slowest.max(started.elapsed());
        calls += 1;
        assert_eq!(listed.into_inner().connections.len(), TENANT_CONNECTIONS);
        assert_eq!(status.into_inner().status, ServingStatus::Serving as i32, "the replica stays SERVING");
        peak = peak.max(replica.rss_kib());
        if replica.metric(stalled).await >= STREAMS as f64 {
            break;
        }
        assert!(Instant::now() < deadline, "only {} streams were cut off", replica.metric(stalled).await);
    }
    assert!(calls >= 10, "the storm lasted {calls} probes");
    assert!(slowest < CALL_LATENCY_BOUND, "a call took {slowest:?} during the storm");
    let grown = peak.saturating_sub(baseline);
    assert!(grown < STORM_RSS_BOUND_KIB, "{STREAMS} streams grew the replica by {grown} KiB (baseline {baseline} KiB)");
    assert_eq!(replica.metric("linkgate_open_streams").await, STREAMS as f64, "a cut-off stream holds its slot");

    // The clients go; their streams' slots and memory come back.
    for (streams, driver) in storm {
        drop(streams);
        driver.abort();
    }
    replica.wait_for_metric("linkgate_open_streams", |open| open == 0.0).await;
    let deadline = Instant::now() + PATIENCE;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        // The replica goes on serving calls, as it would: its allocator settles as it works.
        connections.list_connections(list()).await.expect("served after the storm");
        let now = replica.rss_kib();
        if now <= baseline + RECOVERED_RSS_SLACK_KIB {
            eprintln!(
                "storm of {STREAMS}: opened in {opening:?}; RSS {baseline} KiB before, {peak} KiB at most, {now} KiB after; \
                 slowest call {slowest:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "RSS {now} KiB after the storm, {baseline} KiB before (peak {peak} KiB)");
    }
}

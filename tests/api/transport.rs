//! The transport itself: answers go out as soon as they are written, and connections that do
//! not get to a request in time, or exceed the cap, are closed.

use crate::health::{http_get, sample};
use crate::support::database::Backend;
use crate::support::server::{PATIENCE, spawn_app, spawn_app_with};
use linkgate::pb;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_stream::StreamExt;

/// With Nagle's algorithm on, an answer written in several pieces waits for the client's delayed
/// ACK, about 40 ms per call on Linux; ten calls in a row would take 400 ms. Without it they take
/// a few milliseconds each.
#[tokio::test]
async fn sequential_calls_are_not_held_back_by_nagles_algorithm() {
    let mut app = spawn_app(Backend::Sqlite).await;
    let connection = app.ready_connection("ins_sandbox_bank", "user-1").await;
    let request = || pb::ListAccountsRequest { connection_id: connection.id.clone(), ..Default::default() };
    app.accounts.list_accounts(request()).await.expect("warm-up call");

    let started = Instant::now();
    for _ in 0..10 {
        let accounts = app.accounts.list_accounts(request()).await.expect("accounts").into_inner().accounts;
        assert!(!accounts.is_empty());
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(250), "ten sequential calls took {elapsed:?}");
}

/// How long the bounds are in these tests, and how much longer than that a close may take.
const BOUND: Duration = Duration::from_millis(400);
const SLACK: Duration = Duration::from_secs(3);

/// Reads until the server closes the socket (EOF or reset), answering how long that took, or
/// None when it was still open after `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(wait, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => continue,
            }
        }
    })
    .await
    .ok()
}

fn rejections(limit: &str) -> u64 {
    linkgate::telemetry::metrics::metrics().rejections.with_label_values(&[limit]).get()
}

/// Sockets that never send the HTTP/2 preface (or for gRPC-Web, an HTTP/1.1 request head), or
/// send it too slowly, are closed once the handshake timeout passes; connections that sent it
/// stay open however long they idle, and their calls and streams go on.
#[tokio::test]
async fn grpc_connections_without_a_preface_in_time_are_closed() {
    let mut app = spawn_app_with(Backend::Sqlite, |settings| settings.transport.handshake_timeout = BOUND, None).await;
    let connection = app.ready_connection("ins_sandbox_bank", "user-1").await;
    let mut watch = app
        .connections
        .watch_connection(pb::WatchConnectionRequest { connection_id: connection.id.clone(), after_event_id: 0 })
        .await
        .expect("watch starts")
        .into_inner();
    watch.next().await.expect("snapshot").expect("snapshot");
    let before = rejections("handshake_timeout");

    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(TcpStream::connect(app.grpc_addr).await.expect("connects"));
    }
    // One byte every 100 ms: the preface's opening (to its first empty line, 18 bytes) would take
    // 1.8 s, and so would a gRPC-Web request's head over HTTP/1.1.
    let tricklers = [&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..], b"POST /x HTTP/1.1\r\n\r\n"]
        .map(|opening| tokio::spawn(trickle(app.grpc_addr, opening)));
    for stream in &mut silent {
        let closed = closed_within(stream, BOUND + SLACK).await.expect("a silent connection is closed");
        assert!(closed <= BOUND + SLACK, "closed after {closed:?}");
    }
    for trickler in tricklers {
        let refused_after = trickler.await.expect("trickler");
        assert!(refused_after < Duration::from_millis(1700), "a trickler was cut off only after {refused_after:?}");
    }
    assert!(rejections("handshake_timeout") - before >= 52);

    // The test's own connection has idled past the timeout since its preface: it still serves.
    app.sandbox.reset_login(pb::ResetLoginRequest { connection_id: connection.id.clone() }).await.expect("unary call");
    let event = tokio::time::timeout(PATIENCE, watch.next()).await.expect("an event in time");
    assert!(event.expect("stream open").is_ok(), "the stream goes on");
    let fresh = tonic::transport::Channel::from_shared(format!("http://{}", app.grpc_addr))
        .unwrap()
        .connect()
        .await
        .expect("a new client connects");
    let mut health = tonic_health::pb::health_client::HealthClient::new(fresh);
    health
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await
        .expect("a new client is served");
}

/// Sends `opening` to `addr` a byte every 100 ms, answering how long until the server refused
/// the next byte.
async fn trickle(addr: std::net::SocketAddr, opening: &'static [u8]) -> Duration {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let started = Instant::now();
    for byte in opening {
        if stream.write_all(&[*byte]).await.is_err() {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{:?} was accepted at a trickle", String::from_utf8_lossy(opening));
}

/// A slowloris client (a header byte every 100 ms) is closed after the header timeout, and so
/// is an HTTP connection that never sends anything; requests sent promptly are answered.
#[tokio::test]
async fn http_clients_that_send_headers_too_slowly_are_closed() {
    let app = spawn_app_with(Backend::Sqlite, |settings| settings.transport.http_header_timeout = BOUND, None).await;
    let before = rejections("header_timeout");
    let mut silent = TcpStream::connect(app.http_addr).await.expect("connects");
    let mut slow = TcpStream::connect(app.http_addr).await.expect("connects");
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n").await.unwrap();
    let slowloris = tokio::spawn(async move {
        let started = Instant::now();
        for _ in 0..100 {
            if slow.write_all(b"X").await.is_err() {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server kept reading headers for 10 s");
    });
    let closed = closed_within(&mut silent, BOUND + SLACK).await.expect("a silent HTTP connection is closed");
    assert!(closed >= BOUND - Duration::from_millis(50), "closed before the timeout, after {closed:?}");
    let cut_off = slowloris.await.expect("slowloris");
    assert!(cut_off < BOUND + SLACK, "the slowloris client was cut off only after {cut_off:?}");
    assert!(rejections("header_timeout") - before >= 2);

    let response = http_get(app.http_addr, "/metrics").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(sample(&response, r#"linkgate_rejections_total{limit="header_timeout"}"#).is_some(), "{response}");
}

/// How long a connection refused at accept may take to be seen closed (an admitted one stays open
/// for the default timeouts, 10 s).
const REFUSAL: Duration = Duration::from_secs(1);

/// Each listener holds at most LINKGATE_MAX_CONNECTIONS connections: one more is closed as it is
/// accepted, and once one closes another is admitted. The test's own gRPC client holds one.
#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_accept() {
    let mut app = spawn_app_with(Backend::Sqlite, |settings| settings.transport.max_connections = 3, None).await;
    let before = rejections("connection_cap");
    for addr in [app.grpc_addr, app.http_addr] {
        let mut held = Vec::new();
        let mut refused = None;
        for _ in 0..4 {
            let mut stream = TcpStream::connect(addr).await.expect("the kernel accepts");
            if closed_within(&mut stream, REFUSAL).await.is_some() {
                refused = Some(held.len());
                break;
            }
            held.push(stream);
        }
        let expected = if addr == app.grpc_addr { 2 } else { 3 };
        assert_eq!(refused, Some(expected), "{addr}: connections admitted before one was refused");

        drop(held.pop());
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut stream = TcpStream::connect(addr).await.expect("the kernel accepts");
            if closed_within(&mut stream, REFUSAL).await.is_none() {
                break;
            }
            assert!(Instant::now() < deadline, "{addr}: no connection admitted after one closed");
        }
    }
    assert!(rejections("connection_cap") - before >= 2);
    let accounts = app.accounts.list_accounts(pb::ListAccountsRequest::default()).await;
    assert_ne!(accounts.map_err(|status| status.code()).err(), Some(tonic::Code::Unavailable), "the client is served");
}

//! The gRPC transport itself: answers go out as soon as they are written.

use crate::support::database::Backend;
use crate::support::server::spawn_app;
use linkgate::pb;
use std::time::{Duration, Instant};

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

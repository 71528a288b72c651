//! Health, reflection and the HTTP checks: what operators and grpcurl rely on.

use crate::support::database::Backend;
use crate::support::server::spawn_app;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;

#[tokio::test]
async fn health_serves_overall_and_per_service_status_and_liveness() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    for service in ["", "liveness", "linkgate.v1.ConnectionService"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest { service: service.into() })
            .await
            .unwrap_or_else(|e| panic!("{service:?}: {e}"))
            .into_inner()
            .status;
        assert_eq!(status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32, "{service:?}");
    }
}

#[tokio::test]
async fn reflection_lists_every_service_in_both_protocol_versions() {
    use tonic_reflection::pb::{v1, v1alpha};
    let app = spawn_app(Backend::Sqlite).await;
    let expected = [
        "grpc.health.v1.Health",
        "linkgate.v1.AccountService",
        "linkgate.v1.ConnectionService",
        "linkgate.v1.LinkService",
        "linkgate.v1.PortfolioService",
        "linkgate.v1.StatementService",
    ];

    let mut client = v1::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut responses = client.server_reflection_info(tokio_stream::once(request)).await.unwrap().into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("v1 did not list services");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for name in expected {
        assert!(names.iter().any(|n| n == name), "v1 lists {name}: {names:?}");
    }

    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
            "google.rpc.ErrorInfo".into(),
        )),
    };
    let mut responses = client.server_reflection_info(tokio_stream::once(request)).await.unwrap().into_inner();
    let answer = responses.next().await.unwrap().unwrap().message_response.unwrap();
    assert!(
        matches!(answer, v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(_)),
        "v1alpha resolves the error detail types grpcurl prints: {answer:?}"
    );
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn the_http_listener_answers_liveness_and_readiness() {
    let app = spawn_app(Backend::Postgres).await;
    assert!(http_get(app.http_addr, "/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(http_get(app.http_addr, "/readyz").await.starts_with("HTTP/1.1 200"));
    assert!(http_get(app.http_addr, "/nope").await.starts_with("HTTP/1.1 404"));
}

/// The value of the series whose line starts with `series` (name and labels), if exported.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find(|line| line.starts_with(series)).and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn metrics_after_a_sandbox_flow_show_rpcs_upstream_calls_streams_and_delivery() {
    use linkgate::pb;
    let mut app = spawn_app(Backend::Sqlite).await;
    let connection = app.ready_connection("ins_sandbox_bank", "u").await;
    app.accounts
        .list_accounts(pb::ListAccountsRequest { connection_id: connection.id.clone(), ..Default::default() })
        .await
        .unwrap();
    app.connections
        .get_connection(pb::GetConnectionRequest { connection_id: uuid::Uuid::now_v7().to_string() })
        .await
        .unwrap_err();
    let _open = app
        .connections
        .watch_connection(pb::WatchConnectionRequest { connection_id: connection.id.clone(), after_event_id: 0 })
        .await
        .unwrap()
        .into_inner();

    let response = http_get(app.http_addr, "/metrics").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let metrics = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let expect = |series: &str| sample(metrics, series).unwrap_or_else(|| panic!("{series} missing from:\n{metrics}"));

    assert_eq!(
        expect(
            r#"linkgate_rpc_requests_total{code="OK",method="ExchangePublicToken",service="linkgate.v1.LinkService"}"#
        ),
        1.0
    );
    assert_eq!(
        expect(
            r#"linkgate_rpc_requests_total{code="NOT_FOUND",method="GetConnection",service="linkgate.v1.ConnectionService"}"#
        ),
        1.0
    );
    assert_eq!(
        expect(r#"linkgate_rpc_duration_seconds_count{method="ListAccounts",service="linkgate.v1.AccountService"}"#),
        1.0
    );
    assert_eq!(
        expect(
            r#"linkgate_upstream_requests_total{operation="exchange_public_token",outcome="ok",provider="sandbox"}"#
        ),
        1.0
    );
    assert!(
        expect(r#"linkgate_upstream_requests_total{operation="connection_status",outcome="ok",provider="sandbox"}"#)
            >= 1.0
    );
    assert!(
        expect(r#"linkgate_upstream_requests_total{operation="fetch_data",outcome="ok",provider="sandbox"}"#) >= 1.0
    );
    assert_eq!(expect("linkgate_open_streams"), 1.0, "the one watch still open");
    assert!(expect("linkgate_event_delivery_lag_seconds_count") >= 2.0, "PENDING and READY were delivered");
    assert!(expect(r#"linkgate_sync_leased_total{kind="connection"}"#) >= 1.0);
}

/// Makes the app's own database refuse connections and ends the ones it has, as a failover
/// does (never the shared cluster), or lets it accept them again.
async fn refuse_connections(app: &crate::support::server::TestApp, refuse: bool) {
    use sqlx::Connection;
    let name = app.database_name();
    let mut admin = sqlx::PgConnection::connect(&crate::support::database::admin_url()).await.unwrap();
    let allow = if refuse { "false" } else { "true" };
    let statement = format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut admin).await.unwrap();
    if refuse {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&name)
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

async fn overall_health(app: &crate::support::server::TestApp) -> i32 {
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap().into_inner().status
}

#[tokio::test]
async fn a_database_outage_is_not_serving_within_a_second_and_calls_fail_fast_until_it_ends() {
    use linkgate::pb;
    use std::time::{Duration, Instant};
    use tonic_health::pb::health_check_response::ServingStatus;
    let mut app = spawn_app(Backend::Postgres).await;
    let connection = app.ready_connection("ins_sandbox_bank", "u").await;
    let get = pb::GetConnectionRequest { connection_id: connection.id.clone() };

    refuse_connections(&app, true).await;
    let refused = Instant::now();
    while overall_health(&app).await != ServingStatus::NotServing as i32 {
        assert!(refused.elapsed() < Duration::from_millis(1500), "still SERVING 1.5 s into the outage");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let status = app.connections.get_connection(get.clone()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(500), "the call waited {:?}", started.elapsed());
    crate::support::status::assert_error("during the outage", &status, tonic::Code::Unavailable, "STORE_UNAVAILABLE");
    assert!(tonic_types::StatusExt::get_details_retry_info(&status).is_some(), "a RetryInfo");
    let started = Instant::now();
    assert!(http_get(app.http_addr, "/readyz").await.starts_with("HTTP/1.1 503"));
    assert!(started.elapsed() < Duration::from_millis(1500), "/readyz took {:?}", started.elapsed());

    refuse_connections(&app, false).await;
    let allowed = Instant::now();
    while overall_health(&app).await != ServingStatus::Serving as i32 {
        assert!(allowed.elapsed() < Duration::from_secs(5), "not SERVING 5 s after the outage");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let served = app.connections.get_connection(get).await.expect("served again").into_inner();
    assert_eq!(served.connection.unwrap().id, connection.id);
}

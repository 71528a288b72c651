//! How database failures reach callers: an outage is UNAVAILABLE with RetryInfo and reason
//! STORE_UNAVAILABLE, so callers' retry policies act; a bug stays INTERNAL. Real PostgreSQL
//! errors, not constructed ones.

use super::*;
use linkgate::store::StoreError;
use sqlx::Connection;
use tonic_types::StatusExt;

async fn status_of(statement: &'static str) -> tonic::Status {
    let database = TestDatabase::create(Backend::Postgres).await;
    let mut connection = sqlx::PgConnection::connect(&database.url).await.expect("the database answers");
    let error = sqlx::query(statement).execute(&mut connection).await.expect_err("the statement fails");
    linkgate::error::Error::from(StoreError::from(error)).into_status("req-store-errors")
}

#[tokio::test]
async fn a_terminated_backend_is_unavailable_with_a_retry_delay() {
    // What a failover or an operator's pg_terminate_backend does to a session: 57P01.
    let status = status_of("SELECT pg_terminate_backend(pg_backend_pid())").await;
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert_eq!(status.get_details_error_info().expect("an ErrorInfo").reason, "STORE_UNAVAILABLE");
    assert!(status.get_details_retry_info().and_then(|r| r.retry_delay).is_some(), "a RetryInfo");
}

#[tokio::test]
async fn a_failing_statement_stays_internal() {
    let status = status_of("SELECT 1 / 0").await;
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert!(!status.message().contains("division"), "the cause is not shown to callers: {status:?}");
}

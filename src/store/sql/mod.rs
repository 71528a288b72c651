//! The store's SQL, written once, one file per concern, and expanded for each backend by
//! [`impl_store!`].
//!
//! Both PostgreSQL and SQLite accept the same statements here (`$N` parameters, `ON CONFLICT`,
//! `RETURNING`, row-value comparisons). The one difference is how due work is leased: PostgreSQL
//! locks the rows it takes with `FOR UPDATE SKIP LOCKED` so replicas never take the same item,
//! while SQLite serializes writers anyway; each backend passes its clause as `lock_rows`.
//! Likewise PostgreSQL's writers append connection events to the sequencer's inbox, which
//! numbers them once they committed (see `PostgresStore::sequence`), while SQLite's go
//! straight to the log; each backend passes its table as `append_events_to`.
//! A macro rather than generic code keeps each expansion concrete: sqlx's generic bounds over
//! two databases would be longer than the SQL they protect.

pub(super) mod account_details;
pub(super) mod audit;
pub(super) mod connections;
pub(super) mod erasure;
pub(super) mod events;
pub(super) mod health;
pub(super) mod link_sessions;
pub(super) mod provider_sessions;
pub(super) mod public_tokens;
pub(super) mod records;
pub(super) mod sandbox;
pub(super) mod sealed_columns;
pub(super) mod tenants;
pub(super) mod webhook_inbox;

/// Implements every concern's trait for `$store` on database `$db`.
macro_rules! impl_store {
    ($store:ty, $db:ty, lock_rows = $lock:literal, append_events_to = $append_table:literal) => {
        super::sql::link_sessions::impl_link_session_store!($store, $db, lock_rows = $lock);
        super::sql::public_tokens::impl_public_token_store!($store);
        super::sql::connections::impl_connection_store!($store, $db, lock_rows = $lock);
        super::sql::records::impl_record_store!($store, $db);
        super::sql::account_details::impl_account_detail_store!($store, $db);
        super::sql::erasure::impl_erasure_store!($store);
        super::sql::sandbox::impl_sandbox_store!($store);
        super::sql::events::impl_event_store!($store, $db, append_events_to = $append_table);
        super::sql::webhook_inbox::impl_webhook_inbox_store!($store, lock_rows = $lock);
        super::sql::provider_sessions::impl_provider_session_store!($store);
        super::sql::tenants::impl_tenant_store!($store);
        super::sql::audit::impl_audit_store!($store);
        super::sql::sealed_columns::impl_sealed_column_store!($store);
        super::sql::health::impl_health_store!($store);
    };
}

pub(super) use impl_store;

/// The statement that leases `table`'s due rows of the lease's providers, on either backend,
/// returning `returning`. The SET reads each row as it was: a lease still set there has lapsed.
///
/// PostgreSQL is handed the due ids as an array (`id = ANY(ARRAY(...))`), read by primary key
/// under any plan. With `id IN (subquery)`, a generic plan (one a prepared statement may settle
/// on, which does not know the LIMIT) joined the subquery against a sequential scan of the whole
/// table (`EXPLAIN` with `plan_cache_mode = force_generic_plan`).
pub(super) fn lease_due<DB>(
    table: &str,
    lease: &super::Lease,
    lock_rows: &str,
    returning: &str,
) -> sqlx::QueryBuilder<DB>
where
    DB: sqlx::Database,
    DB::Arguments: Default,
    String: sqlx::Encode<'static, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'static, DB> + sqlx::Type<DB>,
    crate::domain::Timestamp: sqlx::Encode<'static, DB> + sqlx::Type<DB>,
{
    let mut query = sqlx::QueryBuilder::new(format!(
        "UPDATE {table} SET lease_taken_over = (lease_expires_at IS NOT NULL), lease_owner = "
    ));
    query.push_bind(lease.owner.clone()).push(", lease_expires_at = ").push_bind(lease.until);
    let (open, close) = if DB::NAME == "PostgreSQL" { ("= ANY(ARRAY(", "))") } else { ("IN (", ")") };
    query.push(format!(" WHERE id {open}SELECT id FROM {table} WHERE next_poll_at <= "));
    query.push_bind(lease.now).push(" AND (lease_expires_at IS NULL OR lease_expires_at < ");
    query.push_bind(lease.now).push(") AND provider IN (");
    let mut providers = query.separated(", ");
    for provider in &lease.providers {
        providers.push_bind(provider.clone());
    }
    if lease.providers.is_empty() {
        // `IN ()` is not SQL; a replica without providers takes nothing.
        providers.push("NULL");
    }
    query.push(") ORDER BY next_poll_at LIMIT ").push_bind(lease.limit);
    query.push(lock_rows).push(format!("{close} RETURNING {returning}"));
    query
}

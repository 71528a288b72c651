//! The store: one interface over linkgate's database, with a PostgreSQL backend (production,
//! several replicas) and a SQLite backend (the embedded default). Both run the same SQL, written
//! once in [`sql`], and pass one conformance suite (`tests/store/`).
//!
//! The interface is split by concern, one trait and module each: link sessions, public tokens,
//! connections, imported records, the sealed details of accounts, the event log, erasure of an end user, the webhook inbox, provider sessions, tenants and
//! their API keys, the audit log, sealed columns (for key rotation) and health. [`Store`] is all of
//! them at once.
//!
//! Methods are named after what the service needs and take and return domain types. Every method
//! that touches a caller's data takes the tenant and filters on it. A method that changes a
//! connection appends its event in the same transaction, so the log never misses a change.

mod account_details;
mod audit;
mod changes;
mod connections;
mod erasure;
mod events;
mod health;
mod link_sessions;
mod postgres;
mod provider_sessions;
mod public_tokens;
mod records;
mod rows;
mod sandbox;
mod sealed_columns;
mod sql;
mod sqlite;
mod tenants;
mod webhook_inbox;

pub use account_details::AccountDetailStore;
pub use audit::AuditStore;
pub use changes::PENDING_MATCH_DAYS;
pub use connections::{ConnectionFilter, ConnectionStore};
pub use erasure::{Erased, ErasureStore};
pub use events::{EventBell, EventFilter, EventStore};
pub use health::HealthStore;
pub use link_sessions::{IssuedToken, LinkSessionStore, LinkSessionUpdate, Repair};
pub use provider_sessions::ProviderSessionStore;
pub use public_tokens::{Claim, PublicTokenStore, StoredPublicToken, TokenClaim};
pub use records::{
    Change, ChangeQuery, DateRange, Import, NewRecord, RecordChange, RecordKind, RecordQuery, RecordStore,
    ServedRecord, SnapshotQuery, StoredRecord, records_of, served_records,
};
pub use sandbox::SandboxStore;
pub use sealed_columns::{SealedColumnStore, SealedValue};
pub use tenants::TenantStore;
pub use webhook_inbox::{InboxDelivery, WebhookInboxStore, WebhooksProcessed};

use crate::domain::Timestamp;
use std::sync::Arc;
use uuid::Uuid;

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached, did not answer in time, or refused the work for a
    /// reason a retry can outlive (see [`transient_code`]); callers see UNAVAILABLE.
    #[error("database unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else: a bug, a constraint we did not expect, corrupt data.
    #[error("database error")]
    Other(#[source] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        let transient = match &error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
                true
            }
            sqlx::Error::Database(database) => database.code().is_some_and(|code| transient_code(&code)),
            _ => false,
        };
        if transient { Self::Unavailable(error.into()) } else { Self::Other(error.into()) }
    }
}

/// Whether a database error code names a failure the same call can outlive by retrying: the
/// database going away, shutting down or failing over, refusing connections, out of resources,
/// a read-only standby, a statement or lock timeout, a serialization failure or deadlock (the
/// transaction was rolled back whole). PostgreSQL's SQLSTATEs have five characters; SQLite's
/// result codes are numbers whose low byte is the primary code (BUSY, LOCKED). Constraint
/// violations, syntax errors and the like are bugs or caller errors, not outages.
pub fn transient_code(code: &str) -> bool {
    // SQLite's extended codes stay below 10,000, so five characters is a SQLSTATE.
    if code.len() == 5 {
        return code.starts_with("08") // connection exception
            || code.starts_with("53") // insufficient resources: too many connections, memory, disk
            || code.starts_with("57P") // operator intervention: admin or crash shutdown, cannot connect now
            || matches!(
                code,
                "57014" // query canceled: statement timeout
                | "40001" // serialization failure
                | "40P01" // deadlock detected
                | "25006" // read-only SQL transaction: a standby after failover
                | "55P03" // lock not available: lock timeout
            );
    }
    const SQLITE_BUSY: i64 = 5;
    const SQLITE_LOCKED: i64 = 6;
    code.parse::<i64>().is_ok_and(|code| matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
}

#[cfg(test)]
mod tests {
    use super::transient_code;

    #[test]
    fn outages_are_transient_and_bugs_are_not() {
        let transient = [
            "08000", "08003", "08006", "08001", "08004", // connection lost, refused, rejected
            "57P01", "57P02", "57P03", // admin shutdown, crash shutdown, cannot connect now
            "53300", "53200", "53100", // too many connections, out of memory, disk full
            "40001", "40P01", "25006", "55P03",
            "57014", // serialization, deadlock, read-only, lock and statement timeouts
            "5", "6", "517", "261", "262", // SQLite BUSY, LOCKED and their extended codes
        ];
        for code in transient {
            assert!(transient_code(code), "{code} is an outage");
        }
        let permanent = [
            "23505", "23503", "23502", "22P02", "42P01", "42601", "XX000",
            "P0001", // constraints, input, schema, bugs
            "19", "2067", "1", "11", // SQLite CONSTRAINT, CONSTRAINT_UNIQUE, ERROR, CORRUPT
            "", "garbage",
        ];
        for code in permanent {
            assert!(!transient_code(code), "{code} is not an outage");
        }
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Where a keyset page starts: after the row with this sort key and id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    /// The last row's sort key (empty for lists ordered by id alone).
    pub key: String,
    /// The last row's id.
    pub id: Uuid,
}

/// One page of a list query.
#[derive(Debug, Clone)]
pub struct Page {
    /// Rows to return; the store fetches one more to learn whether a next page exists.
    pub size: usize,
    /// Where the page starts; `None` for the first page.
    pub after: Option<Cursor>,
}

/// Rows of one page and where the next one starts.
#[derive(Debug, Clone)]
pub struct PageOf<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Cursor of the next page, if there is one.
    pub next: Option<Cursor>,
}

impl<T> PageOf<T> {
    /// Splits `size + 1` fetched rows into a page and the cursor of the next one.
    fn from_rows(mut items: Vec<T>, size: usize, cursor: impl Fn(&T) -> Cursor) -> Self {
        let next = (items.len() > size).then(|| {
            items.truncate(size);
            cursor(items.last().expect("size is at least 1"))
        });
        Self { items, next }
    }
}

/// A claim on due background work: rows of `providers` whose `next_poll_at` has come and whose
/// lease is free or expired become owned by `owner` until `until`.
#[derive(Debug, Clone)]
pub struct Lease {
    /// Who takes the work (a replica id).
    pub owner: String,
    /// The current time.
    pub now: Timestamp,
    /// When the lease lapses if the owner never reports back.
    pub until: Timestamp,
    /// Most rows to take at once.
    pub limit: i64,
    /// The providers whose rows to take: those the owner has settings for. A replica without a
    /// provider's settings (mid-way through a rolling change of configuration) leaves that
    /// provider's work to the replicas that have them.
    pub providers: Vec<String>,
}

/// Rows a lease took, and how many of them were taken over from a lease that lapsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Leased<T> {
    /// The rows, now owned by the lease's owner.
    pub items: Vec<T>,
    /// How many still had another owner's lapsed lease.
    pub taken_over: u64,
}

/// The whole store, as the service holds it (`Arc<dyn Store>`): every concern's trait at once. A
/// trait object's supertrait methods need no import, so callers holding a `dyn Store` call any
/// concern's methods with `Store` alone in scope.
pub trait Store:
    LinkSessionStore
    + PublicTokenStore
    + ConnectionStore
    + RecordStore
    + SandboxStore
    + AccountDetailStore
    + EventStore
    + ErasureStore
    + WebhookInboxStore
    + ProviderSessionStore
    + TenantStore
    + AuditStore
    + SealedColumnStore
    + HealthStore
    + 'static
{
}

impl<T> Store for T where
    T: LinkSessionStore
        + PublicTokenStore
        + ConnectionStore
        + RecordStore
        + SandboxStore
        + AccountDetailStore
        + EventStore
        + ErasureStore
        + WebhookInboxStore
        + ProviderSessionStore
        + TenantStore
        + AuditStore
        + SealedColumnStore
        + HealthStore
        + 'static
{
}

/// Opens the store named by `database_url` (`postgres://…` or `sqlite://…`) and brings its
/// schema up to date when `migrate` is set.
pub async fn open(database_url: &str, max_connections: u32, migrate: bool) -> anyhow::Result<Arc<dyn Store>> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresStore::connect(database_url, max_connections, migrate).await?))
    } else if database_url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(database_url, max_connections, migrate).await?))
    } else {
        anyhow::bail!("unsupported database URL scheme; use postgres:// or sqlite://")
    }
}

/// A pooled connection idle this long is pinged before use; one used more recently is not. Under
/// load connections are reused within microseconds; under light load each sits idle longer than
/// this and is checked, so a database restart in a quiet hour fails no call.
const PING_WHEN_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Pool settings shared by both backends. sqlx pings every connection it hands out by default:
/// a round trip before each statement outside a transaction, which made an exchange's eight
/// statements cost eleven round trips. Only a connection that sat idle is checked now; one that
/// dies while busy fails its call with UNAVAILABLE, as it would mid-statement, and the pool
/// replaces it.
fn pool_options<DB: sqlx::Database>(max_connections: u32) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    sqlx::Connection::ping(connection).await?;
                }
                Ok(true)
            })
        })
}

/// Whether `database_url` names the embedded SQLite backend.
pub fn is_sqlite(database_url: &str) -> bool {
    database_url.starts_with("sqlite:")
}

//! The store: one interface over linkgate's database, with a PostgreSQL backend (production,
//! several replicas) and a SQLite backend (the embedded default). Both run the same SQL, written
//! once in [`sql`], and pass one conformance suite (`tests/store/`).
//!
//! Methods are named after what the service needs and take and return domain types. Every method
//! that touches a caller's data takes the tenant and filters on it. A method that changes a
//! connection appends its event in the same transaction, so the log never misses a change.

mod postgres;
mod records;
mod rows;
mod sql;
mod sqlite;

pub use records::{RecordKind, RecordQuery, StoredRecord};

use crate::crypto::SealedColumn;
use crate::domain::{
    ApiKey, AuditEntry, Connection, ConnectionData, ConnectionEvent, ConnectionState, Date, LinkSession,
    LinkSessionState, Sealed, Tenant, TenantId, Timestamp,
};
use std::sync::Arc;
use uuid::Uuid;

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or did not answer in time; retrying may help.
    #[error("database unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else: a bug, a constraint we did not expect, corrupt data.
    #[error("database error")]
    Other(#[source] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => Self::Unavailable(error.into()),
            error => Self::Other(error.into()),
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

/// Filters of ListConnections.
#[derive(Debug, Clone, Default)]
pub struct ConnectionFilter {
    /// Only this end user.
    pub external_user_id: Option<String>,
    /// Only this provider.
    pub provider: Option<String>,
    /// Only this state; `None` means every state but DELETED.
    pub state: Option<ConnectionState>,
}

/// Which events a watcher wants.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only this connection.
    pub connection_id: Option<Uuid>,
    /// Only this end user.
    pub external_user_id: Option<String>,
    /// Only this provider.
    pub provider: Option<String>,
}

impl EventFilter {
    /// Whether `connection` passes the filter.
    pub fn matches(&self, connection: &Connection) -> bool {
        self.connection_id.is_none_or(|id| id == connection.id)
            && self.external_user_id.as_ref().is_none_or(|u| *u == connection.external_user_id)
            && self.provider.as_ref().is_none_or(|p| *p == connection.provider)
    }
}

/// A claim on due background work: rows whose `next_poll_at` has come and whose lease is free or
/// expired become owned by `owner` until `until`.
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
}

/// Rows a lease took, and how many of them were taken over from a lease that lapsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Leased<T> {
    /// The rows, now owned by the lease's owner.
    pub items: Vec<T>,
    /// How many still had another owner's lapsed lease.
    pub taken_over: u64,
}

/// A public token as issued, to be stored with the link session's success.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// Row id (UUIDv7: orders listings).
    pub id: Uuid,
    /// Provider id.
    pub provider: String,
    /// SHA-256 of the token.
    pub token_hash: Vec<u8>,
    /// The institution it connects.
    pub institution_id: String,
    /// Exchangeable until.
    pub expires_at: Timestamp,
}

/// One sealed value and the row it belongs to.
#[derive(Debug, Clone)]
pub struct SealedValue {
    /// The row's tenant.
    pub tenant: TenantId,
    /// The row's id.
    pub id: Uuid,
    /// The sealed bytes.
    pub sealed: Vec<u8>,
}

/// A listed public token, still sealed.
#[derive(Debug, Clone)]
pub struct StoredPublicToken {
    /// Row id.
    pub id: Uuid,
    /// Provider id.
    pub provider: String,
    /// The token, sealed on the session that issued it.
    pub token_sealed: Sealed,
    /// The session that produced it.
    pub link_session_id: Uuid,
    /// The institution it connects.
    pub institution_id: String,
    /// Caller's id for the end user.
    pub external_user_id: String,
    /// Issue time.
    pub created_at: Timestamp,
    /// Exchangeable until.
    pub expires_at: Timestamp,
}

/// The outcome of trying to claim a public token for exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller holds the claim and must call the provider, then record or release it.
    Won {
        /// The link session that issued the token, when linkgate saw it issued: read with the
        /// claim, on the same database connection.
        link_session: Option<Box<LinkSession>>,
    },
    /// Already exchanged for this connection.
    Exchanged {
        /// The connection.
        connection_id: Uuid,
    },
    /// Another caller holds an unexpired claim.
    Busy,
    /// The token's exchange window has passed.
    Expired,
    /// The token belongs to another tenant.
    Foreign,
}

/// A link session that just succeeded, with the token it issued.
#[derive(Debug, Clone)]
pub struct LinkSessionUpdate<'a> {
    /// The session after the change.
    pub session: &'a LinkSession,
    /// The state it must still be in for the change to apply.
    pub from: LinkSessionState,
    /// When the sync engine should look at it next; `None` when settled.
    pub next_poll_at: Option<Timestamp>,
    /// The public token issued, when the session succeeded.
    pub issued: Option<&'a IssuedToken>,
}

/// A verified webhook delivery, as the inbox keeps it.
#[derive(Debug, Clone)]
pub struct InboxDelivery {
    /// Provider id.
    pub provider: String,
    /// The provider's idempotency key (or the body's hash when it sends none): a retried delivery
    /// has the same one.
    pub delivery_key: String,
    /// The provider's event name, for logs.
    pub event: String,
    /// SHA-256 of the provider and its id of the connection concerned, when the delivery names one
    /// (see [`crate::crypto::upstream_ref_hash`]).
    pub subject_hash: Option<Vec<u8>>,
    /// The delivery as received, sealed: a provider may name a connection by its secret token
    /// (Vumi does), and secrets are never stored in clear.
    pub body_sealed: Vec<u8>,
    /// Receipt time.
    pub received_at: Timestamp,
}

/// What one round of webhook processing did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhooksProcessed {
    /// Deliveries taken from the inbox and marked processed.
    pub deliveries: u64,
    /// Connections made due for an immediate poll.
    pub connections: u64,
}

/// The store interface. See the module documentation.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Inserts a link session. With a `request_id` already used by the tenant, inserts nothing
    /// and returns the session that request created.
    async fn create_link_session(
        &self,
        session: &LinkSession,
        request_id: Option<&str>,
        next_poll_at: Option<Timestamp>,
    ) -> StoreResult<LinkSession>;

    /// The tenant's link session created by the call with `request_id`.
    async fn find_link_session_by_request(
        &self,
        tenant: TenantId,
        request_id: &str,
    ) -> StoreResult<Option<LinkSession>>;

    /// One link session of the tenant.
    async fn get_link_session(&self, tenant: TenantId, id: Uuid) -> StoreResult<Option<LinkSession>>;

    /// Applies a state change if the session is still in `update.from`, storing the issued token
    /// in the same transaction and releasing any lease. Returns whether it applied.
    async fn update_link_session(&self, update: LinkSessionUpdate<'_>) -> StoreResult<bool>;

    /// Leases link sessions due for a look.
    async fn lease_link_sessions(&self, lease: &Lease) -> StoreResult<Leased<LinkSession>>;

    /// Releases a leased session without changing it, to look again at `next_poll_at`.
    async fn reschedule_link_session(&self, tenant: TenantId, id: Uuid, next_poll_at: Timestamp) -> StoreResult<()>;

    /// Unexpired, unexchanged public tokens of the tenant, newest first.
    async fn list_public_tokens(
        &self,
        tenant: TenantId,
        provider: Option<&str>,
        external_user_id: Option<&str>,
        now: Timestamp,
        page: &Page,
    ) -> StoreResult<PageOf<StoredPublicToken>>;

    /// Claims a public token for exchange, exactly once across replicas. A claim older than its
    /// `claim_until` may be taken over (its holder crashed).
    async fn claim_public_token(
        &self,
        tenant: TenantId,
        provider: &str,
        token_hash: &[u8],
        now: Timestamp,
        claim_until: Timestamp,
    ) -> StoreResult<Claim>;

    /// Gives a claim back after the provider refused the token or failed: a token linkgate saw
    /// issued becomes exchangeable again; one it first saw at exchange is forgotten.
    async fn release_public_token(&self, tenant: TenantId, provider: &str, token_hash: &[u8]) -> StoreResult<()>;

    /// Records a successful exchange in one transaction: the connection, its sealed handle, the
    /// token marked exchanged, and the connection's first event.
    async fn create_connection(
        &self,
        connection: &Connection,
        handle_sealed: &[u8],
        upstream_ref_hash: &[u8],
        token_hash: &[u8],
        next_poll_at: Timestamp,
    ) -> StoreResult<ConnectionEvent>;

    /// One connection of the tenant, DELETED ones included.
    async fn get_connection(&self, tenant: TenantId, id: Uuid) -> StoreResult<Option<Connection>>;

    /// Leases one live connection to `owner` until `until`, as the sync engine leases due ones, so
    /// no poll runs on it meanwhile. `false` when another holds an unexpired lease (or the
    /// connection is deleted).
    async fn lease_connection(
        &self,
        tenant: TenantId,
        id: Uuid,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool>;

    /// Keeps a verified webhook delivery. `false` when the provider's idempotency key was seen
    /// before (a retry or a replay): nothing is stored and nothing will be processed again.
    async fn record_webhook(&self, delivery: &InboxDelivery) -> StoreResult<bool>;

    /// Takes up to `limit` unprocessed deliveries, makes the live connections they name due for a
    /// poll at `now`, and marks them processed, in one transaction (replicas take disjoint rows).
    async fn process_webhooks(&self, now: Timestamp, limit: i64) -> StoreResult<WebhooksProcessed>;

    /// Deletes up to `limit` processed deliveries received before `before`. Returns how many.
    async fn prune_webhooks(&self, before: Timestamp, limit: i64) -> StoreResult<u64>;

    /// The tenant's connections, newest first.
    async fn list_connections(
        &self,
        tenant: TenantId,
        filter: &ConnectionFilter,
        page: &Page,
    ) -> StoreResult<PageOf<Connection>>;

    /// The sealed provider handle of a live connection.
    async fn connection_handle(&self, tenant: TenantId, id: Uuid) -> StoreResult<Option<Vec<u8>>>;

    /// Stores a connection's new state, replacing its data when `data` is given, appending the
    /// event and releasing any lease, in one transaction. Returns `None`, changing nothing, when
    /// the connection was deleted meanwhile.
    async fn save_connection(
        &self,
        connection: &Connection,
        next_poll_at: Option<Timestamp>,
        data: Option<&ConnectionData>,
    ) -> StoreResult<Option<ConnectionEvent>>;

    /// Releases a leased connection without changing it, to look again at `next_poll_at`.
    async fn reschedule_connection(&self, tenant: TenantId, id: Uuid, next_poll_at: Timestamp) -> StoreResult<()>;

    /// Marks a connection DELETED in one transaction: destroys its sealed handle and its data,
    /// stops its sync and appends the event. Returns `None` when it was already deleted.
    async fn delete_connection(&self, connection: &Connection) -> StoreResult<Option<ConnectionEvent>>;

    /// Leases connections due for a sync.
    async fn lease_connections(&self, lease: &Lease) -> StoreResult<Leased<Connection>>;

    /// One page of a connection's imported data of one kind.
    async fn list_records(&self, query: &RecordQuery) -> StoreResult<PageOf<StoredRecord>>;

    /// Whether the connection has a record of `kind` with `id`.
    async fn has_record(&self, tenant: TenantId, connection_id: Uuid, kind: RecordKind, id: Uuid) -> StoreResult<bool>;

    /// Events of the tenant after `after_event_id`, oldest first, at most `limit`.
    async fn events_after(
        &self,
        tenant: TenantId,
        filter: &EventFilter,
        after_event_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<ConnectionEvent>>;

    /// Every tenant's events after `after_event_id`, oldest first, at most `limit`: what the
    /// event tailer fans out to this replica's watchers.
    async fn tail_events(&self, after_event_id: i64, limit: i64) -> StoreResult<Vec<ConnectionEvent>>;

    /// Deletes up to `limit` events older than `before`, oldest first, keeping each live
    /// connection's latest event (its current state), and records how far the log was pruned.
    /// Returns how many were deleted.
    async fn prune_events(&self, before: Timestamp, limit: i64) -> StoreResult<u64>;

    /// The highest event id ever pruned (0 when none): cursors below it cannot be replayed.
    async fn pruned_through(&self) -> StoreResult<i64>;

    /// How many link sessions and connections are due for a sync and leased by nobody.
    async fn sync_backlog(&self, now: Timestamp) -> StoreResult<(i64, i64)>;

    /// Tells the other replicas that events were committed (PostgreSQL `NOTIFY`, sent after the
    /// writing transaction committed, never inside it); nothing to do where one process owns the
    /// database.
    async fn announce_events(&self) -> StoreResult<()>;

    /// Subscribes to the other replicas' announcements: one listening connection per replica.
    /// `None` where there are no other replicas.
    async fn subscribe_events(&self) -> StoreResult<Option<Box<dyn EventBell>>>;

    /// The newest event's id, 0 when there is none: where a starting tailer begins.
    async fn last_event_id(&self) -> StoreResult<i64>;

    /// Adds a tenant. Returns false, adding nothing, when the name is taken.
    async fn create_tenant(&self, tenant: &Tenant) -> StoreResult<bool>;

    /// Every tenant, by name.
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;

    /// The tenant named `name`.
    async fn find_tenant(&self, name: &str) -> StoreResult<Option<Tenant>>;

    /// Revokes a tenant: its keys stop working. Returns false when it was already revoked.
    async fn revoke_tenant(&self, id: TenantId, at: Timestamp) -> StoreResult<bool>;

    /// How many tenants are not revoked (none means dev mode may apply).
    async fn active_tenant_count(&self) -> StoreResult<i64>;

    /// Stores a new API key.
    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()>;

    /// The key with `id`, if it and its tenant are not revoked.
    async fn find_active_api_key(&self, id: Uuid) -> StoreResult<Option<ApiKey>>;

    /// A tenant's keys, revoked ones included, oldest first.
    async fn list_api_keys(&self, tenant: TenantId) -> StoreResult<Vec<ApiKey>>;

    /// Revokes a key. Returns false when it was unknown or already revoked.
    async fn revoke_api_key(&self, id: Uuid, at: Timestamp) -> StoreResult<bool>;

    /// One page of a sealed column's values, by row id, after `after`.
    async fn list_sealed(&self, column: SealedColumn, after: Option<Uuid>, limit: i64)
    -> StoreResult<Vec<SealedValue>>;

    /// Replaces a sealed value if it is still `old` (a concurrent writer wins). Returns whether
    /// it was replaced.
    async fn replace_sealed(&self, column: SealedColumn, id: Uuid, old: &[u8], new: &[u8]) -> StoreResult<bool>;

    /// The sealed session token stored under `key` and when it expires, if one was stored.
    async fn provider_session(&self, key: &str) -> StoreResult<Option<(Vec<u8>, Timestamp)>>;

    /// Takes the login lease of `key` for `holder` until `until`, if nobody else holds an
    /// unexpired one. Returns whether `holder` now holds it.
    async fn lease_provider_login(
        &self,
        key: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool>;

    /// Stores the session token `holder` obtained under its lease and releases the lease.
    /// Returns false (and stores nothing) when the lease had passed to someone else.
    async fn save_provider_session(
        &self,
        key: &str,
        holder: &str,
        token_sealed: &[u8],
        expires_at: Timestamp,
    ) -> StoreResult<bool>;

    /// Gives up `holder`'s login lease of `key` (a failed login), so a waiter may try at once.
    async fn release_provider_login(&self, key: &str, holder: &str) -> StoreResult<()>;

    /// Appends audit records.
    async fn append_audit(&self, entries: &[AuditEntry]) -> StoreResult<()>;

    /// Audit records, newest first, optionally of one tenant and one resource, at most `limit`.
    async fn list_audit(
        &self,
        tenant: Option<TenantId>,
        resource_id: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>>;

    /// The latest event of each matching connection (its current state), oldest first. DELETED
    /// connections are left out unless the filter names one connection.
    async fn current_events(&self, tenant: TenantId, filter: &EventFilter) -> StoreResult<Vec<ConnectionEvent>>;
}

/// A replica's subscription to announcements of committed events.
#[async_trait::async_trait]
pub trait EventBell: Send {
    /// Returns when another replica announced events, or when the subscription's connection
    /// was lost (announcements may have been missed: the caller re-reads the log either way).
    async fn rung(&mut self) -> StoreResult<()>;
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

/// Date bounds as stored: inclusive on both ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateRange {
    /// Earliest day.
    pub start: Option<Date>,
    /// Latest day.
    pub end: Option<Date>,
}

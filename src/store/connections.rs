//! Connections: created by an exchange, read and listed within their tenant, saved after each sync
//! with their data, deleted, and leased: due ones by the sync engine, one at a time by a caller
//! that must keep polls off it. Every change appends the connection's event in its transaction.

use super::{Import, Lease, Leased, Page, PageOf, StoreResult, TokenClaim};
use crate::domain::{Connection, ConnectionEventType, ConnectionState, TenantId, Timestamp};
use uuid::Uuid;

/// Connections and their leases. See the module documentation.
#[async_trait::async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Records a successful exchange in one transaction: the connection, its sealed handle, the
    /// token marked exchanged, and the connection's first event. `false`, with nothing written,
    /// when the token is no longer held under `claim` (see
    /// [`PublicTokenStore`](super::PublicTokenStore)).
    async fn create_connection(
        &self,
        connection: &Connection,
        handle_sealed: &[u8],
        upstream_ref_hash: &[u8],
        claim: TokenClaim<'_>,
        next_poll_at: Timestamp,
    ) -> StoreResult<bool>;

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

    /// The tenant's connections, newest first.
    async fn list_connections(
        &self,
        tenant: TenantId,
        filter: &ConnectionFilter,
        page: &Page,
    ) -> StoreResult<PageOf<Connection>>;

    /// The tenant's live connection at `provider` whose upstream reference hashes to
    /// `upstream_ref_hash` (newest first if several).
    async fn find_connection_by_upstream_ref(
        &self,
        tenant: TenantId,
        provider: &str,
        upstream_ref_hash: &[u8],
    ) -> StoreResult<Option<Connection>>;

    /// The oldest live connection of the tenant's end user `external_user_id` at `provider` and
    /// `institution_id` (the duplicate-link check), read through the end user's index.
    async fn find_live_duplicate(
        &self,
        tenant: TenantId,
        external_user_id: &str,
        provider: &str,
        institution_id: &str,
    ) -> StoreResult<Option<Uuid>>;

    /// The sealed provider handle of a live connection.
    async fn connection_handle(&self, tenant: TenantId, id: Uuid) -> StoreResult<Option<Vec<u8>>>;

    /// Where the provider's own change feed stands for a connection: the cursor the last stored
    /// import came with ([`Import::cursor`]), if any (none once the connection is deleted).
    async fn upstream_cursor(&self, tenant: TenantId, id: Uuid) -> StoreResult<Option<String>>;

    /// The webhook URL the connection's upstream link was last given (see
    /// [`set_upstream_webhook`](Self::set_upstream_webhook)); `None` when it was given none.
    async fn upstream_webhook(&self, tenant: TenantId, id: Uuid) -> StoreResult<Option<String>>;

    /// Records that the connection's upstream link was given the webhook URL `url` (`None`:
    /// none), for providers told one per connection.
    async fn set_upstream_webhook(&self, tenant: TenantId, id: Uuid, url: Option<&str>) -> StoreResult<()>;

    /// Stores a connection's new state, appending an event of `kind` and releasing any lease,
    /// and stores an `import` when given: what changed in the connection's data is written and
    /// told by a DATA_UPDATED event (NEW_ACCOUNTS first, when accounts appeared), after the
    /// state's event, and the import's cursor replaces the stored one. All in one transaction,
    /// so a cursor is never stored without the data it follows. Returns `false`, changing nothing,
    /// when the connection was deleted meanwhile.
    async fn save_connection(
        &self,
        connection: &Connection,
        next_poll_at: Option<Timestamp>,
        import: Option<Import<'_>>,
        kind: ConnectionEventType,
    ) -> StoreResult<bool>;

    /// Releases the lease `owner` took with [`lease_connection`](Self::lease_connection), changing
    /// nothing else but, when `next_poll_at` is given, when the connection is looked at next.
    /// Only `owner`'s own lease is released: one that lapsed and was taken over stays with its new
    /// holder, and one a save already released is left alone. Returns whether it released.
    async fn release_connection(
        &self,
        tenant: TenantId,
        id: Uuid,
        owner: &str,
        next_poll_at: Option<Timestamp>,
    ) -> StoreResult<bool>;

    /// Releases a leased connection without changing it, to look again at `next_poll_at`; with
    /// `None`, not until something makes it due again.
    async fn reschedule_connection(
        &self,
        tenant: TenantId,
        id: Uuid,
        next_poll_at: Option<Timestamp>,
    ) -> StoreResult<()>;

    /// Marks a connection DELETED in one transaction: destroys its sealed handle, its cursor and
    /// its data (records and account details), stops its sync and appends the event. Returns
    /// `false` when it was already deleted.
    async fn delete_connection(&self, connection: &Connection) -> StoreResult<bool>;

    /// Leases connections due for a sync.
    async fn lease_connections(&self, lease: &Lease) -> StoreResult<Leased<Connection>>;
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

//! The connection event log: numbered by the sequencer once their writers committed, read after
//! a cursor within a tenant (watch streams), tailed across tenants (each replica's tailer), read
//! as each connection's current state, pruned behind a recorded horizon, and announced to the
//! other replicas as it grows. Events are appended by the connection methods, in their own
//! transactions.

use super::StoreResult;
use crate::domain::{Connection, ConnectionEvent, TenantId, Timestamp};
use uuid::Uuid;

/// The connection event log. See the module documentation.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// Events of the tenant after `after_event_id` that match `filter`, oldest first, at most
    /// `limit`. Filtered by end user, the tenant's DELETED events that name no user come too:
    /// an erased connection's tombstone is one of them, which the caller recognises by its id.
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

    /// Moves up to `limit` committed events from the writers' inbox into the log, oldest first,
    /// numbering them: until then readers do not see them. Returns how many it moved. Concurrent
    /// calls, on any replica, move one after the other. Always 0 where writers append to the log
    /// itself (SQLite, whose single writer commits events in id order).
    async fn sequence_events(&self, limit: i64) -> StoreResult<u64>;

    /// Tells the other replicas that events were committed (PostgreSQL `NOTIFY`, sent after the
    /// writing transaction committed, never inside it); nothing to do where one process owns the
    /// database.
    async fn announce_events(&self) -> StoreResult<()>;

    /// Subscribes to the other replicas' announcements: one listening connection per replica.
    /// `None` where there are no other replicas.
    async fn subscribe_events(&self) -> StoreResult<Option<Box<dyn EventBell>>>;

    /// The newest event's id, 0 when there is none: where a starting tailer begins.
    async fn last_event_id(&self) -> StoreResult<i64>;

    /// The latest event of each matching connection as of event `as_of` (its state then),
    /// oldest first, those after `after` only, at most `limit`: a snapshot read page by page
    /// stays the one moment `as_of` whatever is appended meanwhile. DELETED connections are left
    /// out unless the filter names one connection.
    async fn current_events(
        &self,
        tenant: TenantId,
        filter: &EventFilter,
        as_of: i64,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<ConnectionEvent>>;
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

/// A replica's subscription to announcements of committed events.
#[async_trait::async_trait]
pub trait EventBell: Send {
    /// Returns when another replica announced events, or when the subscription's connection
    /// was lost (announcements may have been missed: the caller re-reads the log either way).
    async fn rung(&mut self) -> StoreResult<()>;
}

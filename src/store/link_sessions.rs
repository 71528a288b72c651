//! Link sessions: created once per request id, read back within their tenant, moved on from the
//! state they are expected to be in (storing the public token a success issues in the same
//! transaction, or, for a repair session, the repaired connection), and leased by the sync engine
//! while their provider is polled.

use super::{Lease, Leased, StoreResult};
use crate::domain::{Connection, LinkSession, LinkSessionState, TenantId, Timestamp};
use uuid::Uuid;

/// Link sessions and their leases. See the module documentation.
#[async_trait::async_trait]
pub trait LinkSessionStore: Send + Sync {
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

    /// Completes a repair session in one transaction: the session's change (as
    /// [`update_link_session`](Self::update_link_session)), the connection's new handle swapped in
    /// by compare-and-swap on the old one when the provider issued one, the repaired connection
    /// stored due for an immediate poll with any lease released, and its LOGIN_REPAIRED event.
    /// A repair completed by an exchange also marks the exchanged token as exchanged for the
    /// connection. Returns `false`, changing nothing, when the session moved meanwhile, the
    /// connection was deleted, its handle is no longer the one the repair started from, or the
    /// exchanged token is no longer held under the exchange's claim.
    async fn complete_repair(&self, update: LinkSessionUpdate<'_>, repair: &Repair<'_>) -> StoreResult<bool>;

    /// The newest repair session of the tenant's connection `connection_id` that is still open
    /// (not settled, not expired at `now`).
    async fn open_repair_session(
        &self,
        tenant: TenantId,
        connection_id: Uuid,
        now: Timestamp,
    ) -> StoreResult<Option<LinkSession>>;

    /// The tenant's live connections at `provider` and `institution_id` of the end user
    /// `external_user_id` that an open repair session names, at most `limit`: the repairs an
    /// exchange without a session of its own may complete. Read through the end user's index.
    async fn connections_awaiting_repair(
        &self,
        tenant: TenantId,
        provider: &str,
        external_user_id: &str,
        institution_id: &str,
        now: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<Uuid>>;

    /// Leases link sessions due for a look.
    async fn lease_link_sessions(&self, lease: &Lease) -> StoreResult<Leased<LinkSession>>;

    /// Releases a leased session without changing it, to look again at `next_poll_at`.
    async fn reschedule_link_session(&self, tenant: TenantId, id: Uuid, next_poll_at: Timestamp) -> StoreResult<()>;
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

/// What a repair session changes on its connection.
#[derive(Debug, Clone)]
pub struct Repair<'a> {
    /// The connection after the repair (REFRESHING, error cleared).
    pub connection: &'a Connection,
    /// `(old, new)` sealed handles when the provider issued a new one. A new handle drops the
    /// stored cursor: a provider's cursor belongs to the handle it was read through.
    pub handle: Option<(&'a [u8], &'a [u8])>,
    /// The hash of the connection's new upstream reference (see `crate::crypto::upstream_ref_hash`)
    /// when the new handle changed it; `None` keeps the stored one.
    pub upstream_ref_hash: Option<&'a [u8]>,
    /// The claim on the public token whose exchange completed the repair, recorded as exchanged
    /// for the connection (the repair applies only while the token is still held under it);
    /// `None` for repairs that exchange nothing.
    pub exchanged: Option<super::TokenClaim<'a>>,
    /// When the sync engine polls the connection next.
    pub next_poll_at: Timestamp,
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

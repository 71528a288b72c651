//! Erasure of an end user: everything the store holds for one tenant's `external_user_id`, found
//! and destroyed. The service revokes and deletes each live connection first (through
//! [`ConnectionStore::delete_connection`](super::ConnectionStore::delete_connection), which
//! destroys its secret and data and appends its DELETED event); [`ErasureStore::erase_end_user`]
//! then removes what is left in one transaction.

use super::StoreResult;
use crate::domain::{Connection, TenantId};

/// Erasure of an end user. See the module documentation.
#[async_trait::async_trait]
pub trait ErasureStore: Send + Sync {
    /// The tenant's connections of the end user in every state, DELETED ones included.
    async fn end_user_connections(&self, tenant: TenantId, external_user_id: &str) -> StoreResult<Vec<Connection>>;

    /// Destroys in one transaction what the store holds for the end user: each DELETED connection
    /// of the user (its row, any data or account details left, its events, and the webhook deliveries naming it), the
    /// user's link sessions (repair sessions of those connections included) and public tokens
    /// (issued to the user, or exchanged for one of those connections). Live connections are
    /// left alone (they must be revoked and deleted first) and counted in
    /// [`Erased::live_connections_left`]. Erasing a user with nothing stored erases nothing.
    async fn erase_end_user(&self, tenant: TenantId, external_user_id: &str) -> StoreResult<Erased>;
}

/// What one [`ErasureStore::erase_end_user`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Connection rows destroyed.
    pub connections: u64,
    /// Link sessions deleted.
    pub link_sessions: u64,
    /// Public tokens deleted.
    pub public_tokens: u64,
    /// Connections of the user still live, and so left in place.
    pub live_connections_left: u64,
}

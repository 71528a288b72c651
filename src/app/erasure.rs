//! Erasure of an end user (EraseEndUser): everything linkgate holds for one tenant's
//! `external_user_id` destroyed, in steps that a second call can always finish.
//!
//! 1. Each live connection of the user is revoked upstream with its opened handle, then deleted
//!    as DeleteConnection deletes it (secret and data destroyed, DELETED event appended).
//! 2. The store then destroys the DELETED connections, their events and webhook deliveries, and
//!    the user's link sessions and public tokens, in one transaction. Each connection's DELETED
//!    event stays in the log as a tombstone that names nothing of the user (its id, provider and
//!    state only), so every replica's tailer delivers it, however far behind it was: watchers of
//!    the connection, of the tenant and of its provider see it DELETED and streams of the one
//!    connection end; a stream filtered by the user sees it when it was told of the connection
//!    before (see `crate::app::watch`). Delivering it drops every replica's cached copy.
//!
//! An interrupted call leaves connections DELETED or untouched, never half-deleted: the next call
//! revokes the untouched ones and erases the rest. A revocation that fails does not stop the
//! erasure: linkgate must not keep the user's data, and once the secret is destroyed it could
//! never retry anyway. The failure is logged and counted in the answer.

use crate::app::{App, Caller};
use crate::domain::{Connection, ConnectionState, now};
use crate::error::Result;
use crate::providers::ProviderError;
use uuid::Uuid;

/// What one EraseEndUser call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    /// The erasure's own id, the resource id of its audit record.
    pub id: Uuid,
    /// Connections destroyed.
    pub connections: u64,
    /// Link sessions deleted.
    pub link_sessions: u64,
    /// Public tokens deleted.
    pub public_tokens: u64,
    /// Connections whose upstream revocation failed (erased all the same).
    pub revocations_failed: u64,
    /// Whether nothing stored names the user any more.
    pub complete: bool,
}

impl App {
    /// Erases everything stored for the caller's end user `external_user_id`. See the module
    /// documentation.
    pub async fn erase_end_user(&self, caller: &Caller, erasure_id: Uuid, external_user_id: &str) -> Result<Erasure> {
        let connections = self.store.end_user_connections(caller.tenant, external_user_id).await?;
        let mut revocations_failed = 0;
        for connection in connections.iter().filter(|c| c.state != ConnectionState::Deleted) {
            if !self.revoke_upstream(erasure_id, connection).await {
                revocations_failed += 1;
            }
            let mut deleted = connection.clone();
            deleted.state = ConnectionState::Deleted;
            deleted.error = None;
            deleted.products.clear();
            deleted.updated_at = now();
            if self.store.delete_connection(&deleted).await? {
                self.bus.committed(connection.id);
            }
        }
        let erased = self.store.erase_end_user(caller.tenant, external_user_id).await?;
        for connection in &connections {
            self.bus.connection_cache().drop_copy(connection.id);
        }
        tracing::info!(
            request_id = %caller.request_id,
            erasure_id = %erasure_id,
            connections = erased.connections,
            link_sessions = erased.link_sessions,
            public_tokens = erased.public_tokens,
            revocations_failed,
            "erased an end user"
        );
        Ok(Erasure {
            id: erasure_id,
            connections: erased.connections,
            link_sessions: erased.link_sessions,
            public_tokens: erased.public_tokens,
            revocations_failed,
            complete: erased.live_connections_left == 0,
        })
    }

    /// Revokes a live connection at its provider. False when that failed; the connection is
    /// erased regardless. A connection already gone upstream counts as revoked.
    async fn revoke_upstream(&self, erasure_id: Uuid, connection: &Connection) -> bool {
        let failed = |why: &dyn std::fmt::Display| {
            tracing::warn!(
                erasure_id = %erasure_id,
                connection_id = %connection.id,
                provider = %connection.provider,
                error = %why,
                "revoking an erased connection upstream failed; erasing it anyway"
            );
            false
        };
        let Some(provider) = self.providers.get(&connection.provider).cloned() else {
            return failed(&"the provider is not enabled");
        };
        let handle = match self.open_handle(connection).await {
            Ok(handle) => handle,
            Err(error) => return failed(&error),
        };
        match provider.delete_connection(&handle).await {
            Ok(()) | Err(ProviderError::InvalidPublicToken | ProviderError::LoginRequired) => true,
            Err(error) => failed(&error),
        }
    }
}

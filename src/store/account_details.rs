//! The details of a connection's accounts (full numbers and owners), kept only sealed: the service
//! seals them before the store is handed them, one value per list and connection in
//! `account_details`. An import replaces them in the transaction that saves the connection
//! ([`ConnectionStore::save_connection`](super::ConnectionStore::save_connection)); deleting the
//! connection and erasing its end user destroy them; key rotation re-seals them
//! ([`SealedColumnStore`](super::SealedColumnStore)).

use super::StoreResult;
use crate::domain::{SealedAccountDetails, TenantId};
use uuid::Uuid;

/// Reads of sealed account details. See the module documentation.
#[async_trait::async_trait]
pub trait AccountDetailStore: Send + Sync {
    /// The sealed account details of the tenant's connection; empty when it has none (or is
    /// another tenant's).
    async fn account_details(&self, tenant: TenantId, connection_id: Uuid) -> StoreResult<SealedAccountDetails>;
}

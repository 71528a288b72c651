//! Sealed columns as key rotation sees them: every sealed value, read page by page and re-sealed in
//! place unless a concurrent writer changed it first.

use super::StoreResult;
use crate::crypto::SealedColumn;
use crate::domain::TenantId;
use uuid::Uuid;

/// Sealed values, for re-sealing under a new key. See the module documentation.
#[async_trait::async_trait]
pub trait SealedColumnStore: Send + Sync {
    /// One page of a sealed column's values, by row id, after `after`.
    async fn list_sealed(&self, column: SealedColumn, after: Option<Uuid>, limit: i64)
    -> StoreResult<Vec<SealedValue>>;

    /// Replaces a sealed value if it is still `old` (a concurrent writer wins). Returns whether
    /// it was replaced.
    async fn replace_sealed(&self, column: SealedColumn, id: Uuid, old: &[u8], new: &[u8]) -> StoreResult<bool>;
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

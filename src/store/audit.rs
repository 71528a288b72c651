//! The audit log: records appended in batches, read back newest first.

use super::StoreResult;
use crate::domain::{AuditEntry, TenantId};
use uuid::Uuid;

/// The audit log. See the module documentation.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends audit records.
    async fn append_audit(&self, entries: &[AuditEntry]) -> StoreResult<()>;

    /// Audit records, newest first, optionally of one tenant and one resource, at most `limit`.
    async fn list_audit(
        &self,
        tenant: Option<TenantId>,
        resource_id: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>>;
}

//! What the built-in sandbox provider keeps per connection, so every replica answers the same:
//! the changes callers made to its transactions through `SandboxService`, and a failure armed
//! for its next refresh. Real providers keep such state upstream; the sandbox keeps it here, and
//! it goes with the connection when the connection is deleted or its user erased.

use super::StoreResult;
use crate::domain::{TenantId, Transaction};
use uuid::Uuid;

/// The sandbox's own state. See the module documentation.
#[async_trait::async_trait]
pub trait SandboxStore: Send + Sync {
    /// Every transaction callers changed on a connection, oldest change first: by id, the
    /// transaction as it now stands, or `None` where it was removed.
    async fn sandbox_transactions(&self, connection_id: Uuid) -> StoreResult<Vec<(Uuid, Option<Transaction>)>>;

    /// Records that transaction `id` of a connection now stands as `transaction` (`None`:
    /// removed), replacing an earlier change of it.
    async fn put_sandbox_transaction(
        &self,
        tenant: TenantId,
        connection_id: Uuid,
        id: Uuid,
        transaction: Option<&Transaction>,
    ) -> StoreResult<()>;

    /// Arms `failure` (a name the sandbox gives) for the connection's next refresh.
    async fn arm_sandbox_failure(&self, tenant: TenantId, connection_id: Uuid, failure: &str) -> StoreResult<()>;

    /// Takes the failure armed for a connection, if any: exactly one refresh gets it.
    async fn take_sandbox_failure(&self, connection_id: Uuid) -> StoreResult<Option<String>>;
}

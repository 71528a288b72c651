//! Tenants and their API keys: added and revoked by operator commands, looked up as callers
//! authenticate.

use super::StoreResult;
use crate::domain::{ApiKey, Tenant, TenantId, Timestamp};
use uuid::Uuid;

/// Tenants and their API keys. See the module documentation.
#[async_trait::async_trait]
pub trait TenantStore: Send + Sync {
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
}

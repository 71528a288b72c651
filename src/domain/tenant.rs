//! Tenants: the internal services that call linkgate. Every stored row belongs to one.

use uuid::Uuid;

/// The id of a tenant. Every store query is scoped by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TenantId(pub Uuid);

impl TenantId {
    /// The tenant that unauthenticated callers act as in dev mode (loopback, no tenants).
    pub const DEV: TenantId = TenantId(Uuid::nil());
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

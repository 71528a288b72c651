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

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Id.
    pub id: TenantId,
    /// Unique name (the calling service's name).
    pub name: String,
    /// Creation.
    pub created_at: super::Timestamp,
    /// When it was revoked; its keys stop working at once.
    pub revoked_at: Option<super::Timestamp>,
}

/// An API key as stored: never the key itself, only an HMAC of its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Key id (also the key's visible prefix).
    pub id: Uuid,
    /// Owner.
    pub tenant_id: TenantId,
    /// HMAC-SHA256 of the key's secret under the server's pepper.
    pub secret_hmac: Vec<u8>,
    /// Creation.
    pub created_at: super::Timestamp,
    /// Revocation.
    pub revoked_at: Option<super::Timestamp>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("created_at", &self.created_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

super::stored_enum! {
    /// What a caller did, as the audit trail records it.
    pub enum AuditAction {
        /// Created a link session.
        CreateLinkSession = "create_link_session",
        /// Exchanged a public token for a connection.
        Exchange = "exchange",
        /// Read a connection or its data.
        Read = "read",
        /// Asked for a refresh.
        Refresh = "refresh",
        /// Deleted a connection.
        Delete = "delete",
        /// Drove a sandbox connection through a situation (SandboxService).
        SandboxControl = "sandbox_control",
        /// Erased an end user (EraseEndUser); the record names the erasure, never the user.
        EraseEndUser = "erase_end_user",
    }
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Position in the trail (0 before it is stored).
    pub id: i64,
    /// When.
    pub occurred_at: super::Timestamp,
    /// Who: the tenant.
    pub tenant_id: TenantId,
    /// Who: the key (none in dev mode).
    pub api_key_id: Option<Uuid>,
    /// What.
    pub action: AuditAction,
    /// On what kind of resource: "link_session" or "connection".
    pub resource_type: String,
    /// On which.
    pub resource_id: Uuid,
    /// The request it was part of.
    pub request_id: String,
}

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

super::stored_enum! {
    /// What an API key may call. A key holds exactly the scopes it was created with; keys made
    /// before scopes existed hold `standard`, which is everything linkgate served then.
    pub enum Scope {
        /// Every RPC that needs no scope of its own: links, connections, accounts and their
        /// transactions, portfolios, statements, sandbox controls.
        Standard = "standard",
        /// AccountService.ListAccountNumbers: the full numbers of accounts.
        AccountNumbersRead = "account_numbers:read",
        /// AccountService.ListAccountOwners: the owners' names, emails, phones and addresses.
        IdentityRead = "identity:read",
    }
}

impl Scope {
    /// `scopes` as one comma-separated list of names: how the store keeps them.
    pub fn list(scopes: &[Scope]) -> String {
        use super::StoredName;
        scopes.iter().map(|scope| scope.name()).collect::<Vec<_>>().join(",")
    }

    /// The scopes a [`list`](Self::list) names, in declaration order. A name this version does not
    /// know (a newer replica's scope, during a rollout) grants nothing.
    pub fn parse_list(names: &str) -> Vec<Scope> {
        use super::StoredName;
        Self::ALL.iter().copied().filter(|scope| names.split(',').any(|name| name.trim() == scope.name())).collect()
    }

    /// What the scope grants, for `linkgate keys create --help` and listings.
    pub fn grants(self) -> &'static str {
        match self {
            Scope::Standard => "every RPC but the two below (what every key could call before scopes)",
            Scope::AccountNumbersRead => "AccountService.ListAccountNumbers (full account numbers)",
            Scope::IdentityRead => "AccountService.ListAccountOwners (owners' names, emails, phones, addresses)",
        }
    }
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
    /// What the key may call, in declaration order, each once.
    pub scopes: Vec<Scope>,
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
            .field("scopes", &self.scopes)
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
        /// Read a connection's full account numbers (ListAccountNumbers).
        ReadAccountNumbers = "read_account_numbers",
        /// Read the owners of a connection's accounts (ListAccountOwners).
        ReadAccountOwners = "read_account_owners",
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

//! Row types shared by both backends and their conversion into domain types. Enums are stored by
//! their stable names; a name the code does not know is corrupt data, reported as such.

use super::StoredPublicToken;
use crate::domain::ErrorReason;
use crate::domain::{
    Connection, ConnectionEvent, ConnectionEventType, EventDetails, LinkFlow, LinkSession, LinkSessionState, MfaMethod,
    Product, Sealed, StoredName, TenantId, Timestamp,
};
use sqlx::types::Json;
use uuid::Uuid;

fn parse_name<T: StoredName>(what: &str, name: &str) -> anyhow::Result<T> {
    T::from_name(name).ok_or_else(|| anyhow::anyhow!("unknown stored {what} {name:?}"))
}

/// Products as stored: comma-separated names.
pub fn products_text(products: &[Product]) -> String {
    products.iter().map(|p| p.name()).collect::<Vec<_>>().join(",")
}

fn parse_products(text: &str) -> anyhow::Result<Vec<Product>> {
    text.split(',').filter(|s| !s.is_empty()).map(|name| parse_name("product", name)).collect()
}

#[derive(sqlx::FromRow)]
pub struct LinkSessionRow {
    id: Uuid,
    tenant_id: Uuid,
    provider: String,
    institution_id: Option<String>,
    external_user_id: String,
    state: String,
    flow: String,
    products: String,
    link_token: Option<String>,
    hosted_link_url: Option<String>,
    mfa_question: Option<String>,
    mfa_methods: Option<Json<Vec<MfaMethod>>>,
    failure_reason: Option<String>,
    failure_message: Option<String>,
    redirect_uri: Option<String>,
    public_token_sealed: Option<Vec<u8>>,
    public_token_expires_at: Option<Timestamp>,
    upstream_state_sealed: Option<Vec<u8>>,
    last_request_id: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
    expires_at: Timestamp,
    repair_connection_id: Option<Uuid>,
}

impl TryFrom<LinkSessionRow> for LinkSession {
    type Error = anyhow::Error;

    fn try_from(row: LinkSessionRow) -> anyhow::Result<Self> {
        let failure_reason = row
            .failure_reason
            .map(|name| {
                ErrorReason::from_stored_name(&name).ok_or_else(|| anyhow::anyhow!("unknown stored reason {name:?}"))
            })
            .transpose()?;
        Ok(LinkSession {
            id: row.id,
            tenant_id: TenantId(row.tenant_id),
            provider: row.provider,
            institution_id: row.institution_id,
            external_user_id: row.external_user_id,
            state: parse_name::<LinkSessionState>("link session state", &row.state)?,
            flow: parse_name::<LinkFlow>("link flow", &row.flow)?,
            products: parse_products(&row.products)?,
            link_token: row.link_token,
            hosted_link_url: row.hosted_link_url,
            mfa_question: row.mfa_question,
            mfa_methods: row.mfa_methods.map(|methods| methods.0).unwrap_or_default(),
            failure_reason,
            failure_message: row.failure_message,
            redirect_uri: row.redirect_uri,
            public_token: row.public_token_sealed.map(Sealed),
            public_token_expires_at: row.public_token_expires_at,
            upstream_state: row.upstream_state_sealed.map(Sealed),
            last_request_id: row.last_request_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
            expires_at: row.expires_at,
            repair_connection_id: row.repair_connection_id,
        })
    }
}

/// A leased row and whether its lease was taken over from a lapsed one.
#[derive(sqlx::FromRow)]
pub struct Leased<Row> {
    #[sqlx(flatten)]
    row: Row,
    lease_taken_over: bool,
}

impl<Row> Leased<Row> {
    /// The domain values of `rows`, converted by `convert`, and their takeover count.
    pub fn collect<T>(rows: Vec<Self>, convert: impl Fn(Row) -> anyhow::Result<T>) -> anyhow::Result<super::Leased<T>> {
        let taken_over = rows.iter().filter(|leased| leased.lease_taken_over).count() as u64;
        let items = rows.into_iter().map(|leased| convert(leased.row)).collect::<anyhow::Result<_>>()?;
        Ok(super::Leased { items, taken_over })
    }
}

#[derive(sqlx::FromRow)]
pub struct ConnectionRow {
    pub snapshot: Json<Connection>,
}

#[derive(sqlx::FromRow)]
pub struct EventRow {
    id: i64,
    event_type: String,
    snapshot: Json<Connection>,
    occurred_at: Timestamp,
    details: Option<Json<EventDetails>>,
}

impl From<EventRow> for ConnectionEvent {
    fn from(row: EventRow) -> Self {
        ConnectionEvent {
            event_id: row.id,
            // A type this version does not know (written by a newer replica) reads as a state
            // change, as the contract tells old clients to read it.
            kind: ConnectionEventType::from_name(&row.event_type).unwrap_or(ConnectionEventType::StateChanged),
            connection: row.snapshot.0,
            occurred_at: row.occurred_at,
            snapshot: false,
            details: row.details.map(|d| d.0).unwrap_or_default(),
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct PublicTokenRow {
    id: Uuid,
    provider: String,
    public_token_sealed: Vec<u8>,
    link_session_id: Uuid,
    institution_id: String,
    external_user_id: String,
    created_at: Timestamp,
    expires_at: Timestamp,
}

impl From<PublicTokenRow> for StoredPublicToken {
    fn from(row: PublicTokenRow) -> Self {
        StoredPublicToken {
            id: row.id,
            provider: row.provider,
            token_sealed: Sealed(row.public_token_sealed),
            link_session_id: row.link_session_id,
            institution_id: row.institution_id,
            external_user_id: row.external_user_id,
            created_at: row.created_at,
            expires_at: row.expires_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct ClaimRow {
    pub tenant_id: Uuid,
    pub state: String,
    pub connection_id: Option<Uuid>,
    pub expires_at: Option<Timestamp>,
    pub claim_expires_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
pub struct RecordRow {
    pub id: Uuid,
    pub sort_key: String,
    pub body: Json<serde_json::Value>,
}

#[derive(sqlx::FromRow)]
pub struct DigestRow {
    kind: String,
    id: Uuid,
    digest: Option<i64>,
    removed: bool,
    created_version: i64,
    pending_key: Option<String>,
    record_date: Option<crate::domain::Date>,
    pending_link: Option<Uuid>,
}

impl DigestRow {
    /// The row as the comparison needs it; `None` for a kind this version does not know.
    pub fn into_digest(self) -> Option<super::changes::StoredDigest> {
        Some(super::changes::StoredDigest {
            kind: super::RecordKind::from_name(&self.kind)?,
            id: self.id,
            digest: self.digest,
            removed: self.removed,
            created_version: self.created_version,
            pending_key: self.pending_key,
            date: self.record_date,
            pending_link: self.pending_link,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct ChangeRow {
    id: Uuid,
    version: i64,
    change: String,
    paired_with: Option<Uuid>,
    sort_key: Option<String>,
    body: Option<Json<serde_json::Value>>,
}

impl ChangeRow {
    pub fn into_change(self) -> super::StoreResult<super::RecordChange> {
        let change = super::Change::from_name(&self.change).ok_or_else(|| {
            super::StoreError::Other(anyhow::anyhow!("unknown change {:?} of record {}", self.change, self.id))
        })?;
        let record = match (self.sort_key, self.body) {
            (Some(sort_key), Some(body)) => Some(super::StoredRecord { id: self.id, sort_key, body: body.0 }),
            _ => None,
        };
        Ok(super::RecordChange { id: self.id, version: self.version, change, record, paired_with: self.paired_with })
    }
}

#[derive(sqlx::FromRow)]
pub struct TenantRow {
    id: Uuid,
    name: String,
    created_at: Timestamp,
    revoked_at: Option<Timestamp>,
}

impl From<TenantRow> for crate::domain::Tenant {
    fn from(row: TenantRow) -> Self {
        crate::domain::Tenant {
            id: TenantId(row.id),
            name: row.name,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct ApiKeyRow {
    id: Uuid,
    tenant_id: Uuid,
    secret_hmac: Vec<u8>,
    scopes: String,
    created_at: Timestamp,
    revoked_at: Option<Timestamp>,
}

impl From<ApiKeyRow> for crate::domain::ApiKey {
    fn from(row: ApiKeyRow) -> Self {
        crate::domain::ApiKey {
            id: row.id,
            tenant_id: TenantId(row.tenant_id),
            secret_hmac: row.secret_hmac,
            scopes: crate::domain::Scope::parse_list(&row.scopes),
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct AuditRow {
    id: i64,
    occurred_at: Timestamp,
    tenant_id: Uuid,
    api_key_id: Option<Uuid>,
    action: String,
    resource_type: String,
    resource_id: Uuid,
    request_id: String,
}

impl TryFrom<AuditRow> for crate::domain::AuditEntry {
    type Error = anyhow::Error;

    fn try_from(row: AuditRow) -> anyhow::Result<Self> {
        Ok(crate::domain::AuditEntry {
            id: row.id,
            occurred_at: row.occurred_at,
            tenant_id: TenantId(row.tenant_id),
            api_key_id: row.api_key_id,
            action: parse_name("audit action", &row.action)?,
            resource_type: row.resource_type,
            resource_id: row.resource_id,
            request_id: row.request_id,
        })
    }
}

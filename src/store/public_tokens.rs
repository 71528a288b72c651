//! Public tokens between a link session's success and their exchange: listed while exchangeable,
//! claimed for exchange exactly once across replicas, and given back when the provider refuses
//! them. The exchange itself, which marks a token exchanged, is
//! [`ConnectionStore::create_connection`](super::ConnectionStore::create_connection).

use super::{Page, PageOf, StoreResult};
use crate::domain::{LinkSession, Sealed, TenantId, Timestamp};
use uuid::Uuid;

/// Public tokens awaiting exchange. See the module documentation.
#[async_trait::async_trait]
pub trait PublicTokenStore: Send + Sync {
    /// Unexpired, unexchanged public tokens of the tenant, newest first.
    async fn list_public_tokens(
        &self,
        tenant: TenantId,
        provider: Option<&str>,
        external_user_id: Option<&str>,
        now: Timestamp,
        page: &Page,
    ) -> StoreResult<PageOf<StoredPublicToken>>;

    /// Claims a public token for exchange, exactly once across replicas. A claim older than its
    /// `claim_until` may be taken over (its holder crashed).
    async fn claim_public_token(
        &self,
        tenant: TenantId,
        provider: &str,
        token_hash: &[u8],
        now: Timestamp,
        claim_until: Timestamp,
    ) -> StoreResult<Claim>;

    /// Gives a claim back after the provider refused the token or failed: a token linkgate saw
    /// issued becomes exchangeable again; one it first saw at exchange is forgotten.
    async fn release_public_token(&self, tenant: TenantId, provider: &str, token_hash: &[u8]) -> StoreResult<()>;
}

/// A listed public token, still sealed.
#[derive(Debug, Clone)]
pub struct StoredPublicToken {
    /// Row id.
    pub id: Uuid,
    /// Provider id.
    pub provider: String,
    /// The token, sealed on the session that issued it.
    pub token_sealed: Sealed,
    /// The session that produced it.
    pub link_session_id: Uuid,
    /// The institution it connects.
    pub institution_id: String,
    /// Caller's id for the end user.
    pub external_user_id: String,
    /// Issue time.
    pub created_at: Timestamp,
    /// Exchangeable until.
    pub expires_at: Timestamp,
}

/// The outcome of trying to claim a public token for exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller holds the claim and must call the provider, then record or release it.
    Won {
        /// The link session that issued the token, when linkgate saw it issued: read with the
        /// claim, on the same database connection.
        link_session: Option<Box<LinkSession>>,
    },
    /// Already exchanged for this connection.
    Exchanged {
        /// The connection.
        connection_id: Uuid,
    },
    /// Another caller holds an unexpired claim.
    Busy,
    /// The token's exchange window has passed.
    Expired,
    /// The token belongs to another tenant.
    Foreign,
}

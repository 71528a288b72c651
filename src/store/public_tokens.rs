//! Public tokens between a link session's success and their exchange: listed while exchangeable,
//! claimed for exchange exactly once across replicas, the claim renewed while its holder works and
//! given back when the provider refuses the token. The exchange itself, which marks a token
//! exchanged, is [`ConnectionStore::create_connection`](super::ConnectionStore::create_connection).
//!
//! Each claim has its own id (a fencing token): renewing, releasing and recording apply only while
//! the token's claim is still the one named, so a holder whose claim lapsed and was taken over by
//! another replica can change nothing.

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

    /// Claims a public token for exchange, exactly once across replicas, until `claim_until`. A
    /// claim whose `claim_until` has passed may be taken over (its holder crashed or stopped
    /// renewing it).
    async fn claim_public_token(
        &self,
        tenant: TenantId,
        provider: &str,
        token_hash: &[u8],
        now: Timestamp,
        claim_until: Timestamp,
    ) -> StoreResult<Claim>;

    /// Extends the claim `claim` to `claim_until`; `false` when the token is no longer held under
    /// it (taken over, released or exchanged).
    async fn renew_public_token_claim(
        &self,
        tenant: TenantId,
        provider: &str,
        claim: TokenClaim<'_>,
        claim_until: Timestamp,
    ) -> StoreResult<bool>;

    /// Gives the claim `claim` back after the provider refused the token or failed: a token
    /// linkgate saw issued becomes exchangeable again; one it first saw at exchange is forgotten.
    /// Nothing happens when the token is no longer held under that claim.
    async fn release_public_token(&self, tenant: TenantId, provider: &str, claim: TokenClaim<'_>) -> StoreResult<()>;
}

/// A won claim on a public token, as its holder names it to renew, release or record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenClaim<'a> {
    /// SHA-256 of the token.
    pub token_hash: &'a [u8],
    /// The claim's id, from [`Claim::Won`].
    pub claim_id: Uuid,
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
        /// This claim's id: the holder names it to renew, release or record the claim.
        claim_id: Uuid,
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

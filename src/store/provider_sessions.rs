//! Provider sessions shared by every replica: one upstream login at a time, under a lease, and the
//! sealed session token it obtained, stored for every replica to read.

use super::StoreResult;
use crate::domain::Timestamp;

/// Upstream sessions shared across replicas. See the module documentation.
#[async_trait::async_trait]
pub trait ProviderSessionStore: Send + Sync {
    /// The sealed session token stored under `key` and when it expires, if one was stored.
    async fn provider_session(&self, key: &str) -> StoreResult<Option<(Vec<u8>, Timestamp)>>;

    /// Takes the login lease of `key` for `holder` until `until`, if nobody else holds an
    /// unexpired one. Returns whether `holder` now holds it.
    async fn lease_provider_login(
        &self,
        key: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool>;

    /// Stores the session token `holder` obtained under its lease and releases the lease.
    /// Returns false (and stores nothing) when the lease had passed to someone else.
    async fn save_provider_session(
        &self,
        key: &str,
        holder: &str,
        token_sealed: &[u8],
        expires_at: Timestamp,
    ) -> StoreResult<bool>;

    /// Gives up `holder`'s login lease of `key` (a failed login), so a waiter may try at once.
    async fn release_provider_login(&self, key: &str, holder: &str) -> StoreResult<()>;
}

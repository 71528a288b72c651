//! Provider session tokens shared by every replica, for providers that allow one live session per
//! credential pair (Vumi): logging in again elsewhere would knock every other replica's token out.
//!
//! The token lives sealed in the store. A replica that needs one reads it; when there is none, it
//! has expired, or the provider refused it, the replica takes the login lease, reads again (the
//! previous holder may have just stored one), logs in and stores the result; the others wait and
//! read. Within a replica a mutex makes logins single-flight too.

use crate::crypto::{Sealer, provider_session_context};
use crate::domain::{Timestamp, now};
use crate::providers::{ProviderError, ProviderResult};
use crate::store::Store;
use secrecy::{ExposeSecret, SecretString};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long before its expiry a token is no longer handed out: a call started with it must not
/// meet the expiry halfway.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// How often a replica waiting on another's login reads the store again.
const WAIT_STEP: Duration = Duration::from_millis(50);

/// A session token and when it stops working.
#[derive(Clone)]
pub struct SessionToken {
    /// The token. Secret.
    pub token: SecretString,
    /// When the provider stops accepting it.
    pub expires_at: Timestamp,
}

impl SessionToken {
    /// Whether it may still be handed out, and is not `stale` (a token the provider refused).
    pub fn usable(&self, stale: Option<&SecretString>) -> bool {
        let margin = chrono::Duration::from_std(EXPIRY_MARGIN).expect("a small duration");
        self.expires_at - margin > now()
            && stale.is_none_or(|stale| stale.expose_secret() != self.token.expose_secret())
    }
}

/// Where replicas keep provider session tokens: the store, sealed.
#[derive(Clone)]
pub struct SharedSessions {
    store: Arc<dyn Store>,
    sealer: Sealer,
    holder: String,
}

impl SharedSessions {
    /// Sessions kept in `store`, sealed with `sealer`; `holder` names this replica in leases.
    pub fn new(store: Arc<dyn Store>, sealer: Sealer, holder: impl Into<String>) -> Self {
        Self { store, sealer, holder: holder.into() }
    }

    /// The session of `key` for a provider: a stored usable token other than `stale` (the one the
    /// provider just refused), or a new one from `login`, obtained by one replica at a time.
    /// `lease` bounds how long a login may hold others back; waiting ends at `deadline`.
    pub async fn token<F, Fut>(
        &self,
        key: &str,
        stale: Option<&SecretString>,
        lease: Duration,
        deadline: Instant,
        login: F,
    ) -> ProviderResult<SessionToken>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ProviderResult<SessionToken>>,
    {
        loop {
            if let Some(stored) = self.stored(key).await?
                && stored.usable(stale)
            {
                return Ok(stored);
            }
            let at = now();
            let until = at + chrono::Duration::from_std(lease).expect("a lease fits");
            if self.store.lease_provider_login(key, &self.holder, at, until).await.map_err(unavailable)? {
                // The previous holder may have stored a token between the read and the lease.
                if let Some(stored) = self.stored(key).await?
                    && stored.usable(stale)
                {
                    self.store.release_provider_login(key, &self.holder).await.map_err(unavailable)?;
                    return Ok(stored);
                }
                let fresh = match login().await {
                    Ok(fresh) => fresh,
                    Err(error) => {
                        self.store.release_provider_login(key, &self.holder).await.map_err(unavailable)?;
                        return Err(error);
                    }
                };
                let sealed = self.sealer.seal(fresh.token.expose_secret().as_bytes(), &provider_session_context(key));
                if !self
                    .store
                    .save_provider_session(key, &self.holder, &sealed, fresh.expires_at)
                    .await
                    .map_err(unavailable)?
                {
                    tracing::warn!(session_key = key, "the login lease lapsed before the session was stored");
                }
                return Ok(fresh);
            }
            if Instant::now() + WAIT_STEP >= deadline {
                tracing::warn!(session_key = key, "gave up waiting for another replica's provider login");
                return Err(ProviderError::Unavailable { retry_after: Some(Duration::from_secs(1)) });
            }
            tokio::time::sleep(WAIT_STEP).await;
        }
    }

    async fn stored(&self, key: &str) -> ProviderResult<Option<SessionToken>> {
        let Some((sealed, expires_at)) = self.store.provider_session(key).await.map_err(unavailable)? else {
            return Ok(None);
        };
        match self.sealer.open(&sealed, &provider_session_context(key)) {
            Ok(token) => Ok(Some(SessionToken { token, expires_at })),
            Err(error) => {
                // A rotated-away key or a foreign row: a new login replaces it.
                tracing::warn!(session_key = key, error = %error, "a stored provider session does not open; logging in again");
                Ok(None)
            }
        }
    }
}

fn unavailable(error: crate::store::StoreError) -> ProviderError {
    tracing::error!(error = %error, "the store failed while sharing a provider session");
    ProviderError::Unavailable { retry_after: None }
}

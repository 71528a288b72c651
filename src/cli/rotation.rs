//! Rotating a connection's upstream access token (Deck's `/connection/access_token/invalidate`).
//!
//! The provider kills the old token the moment it answers, so the new one exists only in memory
//! until it is stored, and nothing may use the old one meanwhile. The order is therefore:
//! take the connection's sync lease (no poll runs with the old token while it is swapped, and a
//! poll already running makes the rotation refuse rather than race it), rotate upstream, store the
//! new sealed token with a compare-and-swap on the old one (retried while the database is away),
//! then release the lease with the connection due at once, so the next poll proves the new token.
//! What no order can make safe: an answer lost in transit leaves a dead token behind; the next
//! poll then reports LOGIN_REQUIRED and the user links again.

use crate::crypto::{SealedColumn, Sealer};
use crate::domain::{ConnectionState, TenantId, now};
use crate::providers::Registry;
use crate::store::Store;
use anyhow::Context;
use secrecy::ExposeSecret;
use std::time::Duration;
use uuid::Uuid;

/// How long the rotation holds the connection's lease at most.
const LEASE: Duration = Duration::from_secs(60);
/// Attempts at storing the new token before giving up on it.
const STORE_ATTEMPTS: u32 = 5;

/// Rotates the upstream access token of connection `id` of `tenant` and stores the new one.
pub async fn rotate_connection_token(
    store: &dyn Store,
    sealer: &Sealer,
    providers: &Registry,
    tenant: TenantId,
    id: Uuid,
) -> anyhow::Result<()> {
    let connection = store.get_connection(tenant, id).await?.context("no such connection for this tenant")?;
    anyhow::ensure!(connection.state != ConnectionState::Deleted, "the connection was deleted");
    let provider = providers
        .get(&connection.provider)
        .with_context(|| format!("provider {:?} is not enabled here", connection.provider))?;
    let owner = format!("rotation-{}", Uuid::now_v7());
    let at = now();
    let lease_until = at + chrono::Duration::from_std(LEASE).expect("a minute fits");
    anyhow::ensure!(
        store.lease_connection(tenant, id, &owner, at, lease_until).await?,
        "the connection is being synced right now; try again in a few seconds"
    );
    let result = rotate_leased(store, sealer, provider.as_ref(), tenant, id).await;
    // Due at once: the next poll uses (and so checks) the token now stored. Only this rotation's
    // own lease is released: one that lapsed meanwhile may be a poll's now.
    store.release_connection(tenant, id, &owner, Some(now())).await?;
    result
}

async fn rotate_leased(
    store: &dyn Store,
    sealer: &Sealer,
    provider: &dyn crate::providers::Provider,
    tenant: TenantId,
    id: Uuid,
) -> anyhow::Result<()> {
    let context = SealedColumn::ConnectionHandle.context(tenant, id);
    let old = store.connection_handle(tenant, id).await?.context("the connection has no stored token")?;
    let handle = sealer.open(&old, &context).context("the stored token does not open with the configured keys")?;
    let rotated =
        provider.rotate_handle(&handle).await.map_err(|error| anyhow::anyhow!("the provider refused: {error}"))?;
    let new = sealer.seal(rotated.expose_secret().as_bytes(), &context);
    for attempt in 1..=STORE_ATTEMPTS {
        match store.replace_sealed(SealedColumn::ConnectionHandle, id, &old, &new).await {
            Ok(true) => {
                tracing::info!(connection_id = %id, provider = provider.info().id, "connection token rotated");
                return Ok(());
            }
            Ok(false) => break,
            Err(error) => {
                tracing::warn!(connection_id = %id, attempt, error = %error, "storing the rotated token failed; retrying");
                tokio::time::sleep(Duration::from_millis(500) * attempt).await;
            }
        }
    }
    tracing::error!(connection_id = %id, "the provider rotated the token but the new one could not be stored; the user must link again");
    anyhow::bail!("the provider rotated the token but the new one could not be stored: the user must link again")
}

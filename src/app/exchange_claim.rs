//! An exchange's hold on its claim of a public token: a short lease the holder renews while it
//! calls the provider, so the claim of a holder that died lapses within [`CLAIM_LEASE`] instead of
//! blocking the token, yet never while that holder may still complete the exchange.
//!
//! The rules that keep one provider call per token at a time:
//! - The holder vouches for its claim until [`SAFETY`] before the lease it last saw renewed
//!   lapses, counted from when it *sent* that renewal, so a slow statement shortens the time it
//!   vouches for and never lengthens it. [`SAFETY`] also absorbs the clock skew between replicas
//!   (a lease's end is written with the holder's clock and judged with the taker's).
//! - The provider call runs only while the holder vouches ([`HeldClaim::hold`]): once it cannot —
//!   a renewal refused because the claim was taken over, or renewals failing until the time is
//!   up — the call is dropped, its HTTP request abandoned, before any replica may take the claim
//!   over.
//! - Recording the outcome is fenced by the claim's id ([`TokenClaim`]): a holder whose claim was
//!   taken over meanwhile writes nothing.
//!
//! What no claim can prevent: an upstream that received the abandoned request (or the request of
//! a holder killed mid-call) may still consume the token. The next holder then gets the provider's
//! verdict on a used token (README, "Exchange after a crash").
//!
//! Why a lease and not the holder's liveness as the database sees it (a PostgreSQL session
//! advisory lock, freed the moment the holder's connection dies): that lock lives on a connection
//! held for the whole provider call, so every exchange in flight would take a connection out of
//! the pool (ten slow exchanges would exhaust the default pool of ten, and every other RPC would
//! wait with them); it does not survive a transaction-pooling proxy; and SQLite has nothing like
//! it.
//! The lease costs one short UPDATE every [`RENEW_EVERY`], on either backend, and only for
//! exchanges slower than that.

use crate::domain::{ErrorReason, TenantId, now};
use crate::error::Error;
use crate::store::{Store, TokenClaim};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

/// How long a claim lasts unless its holder renews it: how long a token whose holder died stays
/// blocked, at most.
pub(super) const CLAIM_LEASE: Duration = Duration::from_secs(6);
/// How often the holder renews its claim while it works.
const RENEW_EVERY: Duration = Duration::from_secs(2);
/// How long before its lease lapses the holder stops vouching for its claim. With renewals every
/// [`RENEW_EVERY`], one renewal may fail without the provider call being abandoned.
const SAFETY: Duration = Duration::from_secs(2);

/// A won claim, renewed in the background until dropped.
pub(super) struct HeldClaim {
    token_hash: Vec<u8>,
    claim_id: Uuid,
    /// Until when the holder vouches for its claim; `None` once a renewal was refused (the claim
    /// was taken over, or the exchange is over).
    vouched_until: watch::Receiver<Option<Instant>>,
    renewal: tokio::task::JoinHandle<()>,
}

impl HeldClaim {
    /// Holds the claim `claim_id` on the token hashed `token_hash`, won by a claim statement sent
    /// at `claimed_at` with a lease of [`CLAIM_LEASE`], and starts renewing it.
    pub(super) fn start(
        store: Arc<dyn Store>,
        tenant: TenantId,
        provider: &str,
        token_hash: &[u8],
        claim_id: Uuid,
        claimed_at: Instant,
    ) -> Self {
        let (tell, vouched_until) = watch::channel(Some(claimed_at + CLAIM_LEASE - SAFETY));
        let renewal = tokio::spawn(renew(store, tenant, provider.to_owned(), token_hash.to_vec(), claim_id, tell));
        Self { token_hash: token_hash.to_vec(), claim_id, vouched_until, renewal }
    }

    /// The claim, as the store names it.
    pub(super) fn claim(&self) -> TokenClaim<'_> {
        TokenClaim { token_hash: &self.token_hash, claim_id: self.claim_id }
    }

    /// Runs `work` while the holder vouches for its claim: its output, or the error that says why
    /// `work` was dropped unfinished.
    pub(super) async fn hold<T>(&self, provider: &str, work: impl Future<Output = T>) -> Result<T, Error> {
        tokio::select! {
            biased;
            done = work => Ok(done),
            () = lapsed(self.vouched_until.clone()) => Err(self.lost(provider)),
        }
    }

    /// Why the holder no longer vouches for its claim.
    pub(super) fn lost(&self, provider: &str) -> Error {
        let error = if self.vouched_until.borrow().is_none() {
            Error::new(
                ErrorReason::ExchangeInProgress,
                "another exchange of this token took over its claim; retry with the same token",
            )
        } else {
            Error::new(
                ErrorReason::StoreUnavailable,
                "the database stopped confirming this exchange's claim on the token, so the provider call was \
                 abandoned; retry with the same token",
            )
        };
        error.with("provider", provider).retry_after(Duration::from_secs(1))
    }
}

impl Drop for HeldClaim {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

/// Returns once the holder no longer vouches for its claim.
async fn lapsed(mut vouched_until: watch::Receiver<Option<Instant>>) {
    loop {
        let Some(until) = *vouched_until.borrow_and_update() else { return };
        tokio::select! {
            () = tokio::time::sleep_until(until) => return,
            changed = vouched_until.changed() => {
                if changed.is_err() {
                    // Renewal stopped without a word: the last time vouched for stands.
                    tokio::time::sleep_until(until).await;
                    return;
                }
            }
        }
    }
}

/// Renews the claim every [`RENEW_EVERY`], telling the holder until when it may vouch for it.
async fn renew(
    store: Arc<dyn Store>,
    tenant: TenantId,
    provider: String,
    token_hash: Vec<u8>,
    claim_id: Uuid,
    tell: watch::Sender<Option<Instant>>,
) {
    let claim = TokenClaim { token_hash: &token_hash, claim_id };
    let mut ticks = tokio::time::interval_at(Instant::now() + RENEW_EVERY, RENEW_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let sent = Instant::now();
        let until = now() + CLAIM_LEASE;
        match store.renew_public_token_claim(tenant, &provider, claim, until).await {
            Ok(true) => {
                tell.send_replace(Some(sent + CLAIM_LEASE - SAFETY));
            }
            Ok(false) => {
                tell.send_replace(None);
                return;
            }
            // The holder stops vouching when the time it was last given is up; until then the
            // next renewal may still succeed.
            Err(error) => tracing::warn!(provider, error = %error, "renewing an exchange's claim failed"),
        }
    }
}

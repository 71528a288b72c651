//! Webhooks in: `POST /webhooks/{provider}` on the HTTP listener.
//!
//! A delivery is verified before anything is kept: the JWT in the provider's signature header
//! must name ES256 (any other `alg`, `none` included, is refused before a key is looked up) and
//! the `typ` its provider requires (Vumi: `JWT`), be
//! signed by the key its `kid` names (fetched from the provider and cached), have been issued
//! within five minutes either side of now, and, when it carries `request_body_sha256` (or the
//! provider always sends one), bind exactly the body received (compared in constant time).
//! A verified delivery goes into the store's inbox, deduplicated by the provider's idempotency
//! key, before the provider is answered 2xx; the sync engine then processes the inbox
//! asynchronously by making the connection it names due for a poll at once. A verified delivery
//! whose body the provider's reader does not understand (Vumi publishes no payload schema), or
//! that names no connection, is kept all the same (event `unreadable` when unread) and makes every
//! connection of that provider still importing (PENDING, REFRESHING) due instead: what the
//! provider took the trouble to sign is never dropped. The payload itself is
//! not trusted for state: the poll reads it from the provider, so a webhook that never comes
//! only delays a change until the regular poll, and a duplicated or reordered one changes nothing.
//!
//! Every delivery is counted by provider and verdict (`linkgate_webhook_deliveries_total`) and
//! logged without its body or token.

use crate::app::App;
use crate::crypto::jws::{self, Jwk, JwsError};
use crate::domain::now;
use crate::providers::{ProviderError, WebhookScheme};
use crate::store::InboxDelivery;
use http::HeaderMap;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Largest delivery read; larger ones are refused unread past the cap.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// How far a token's `iat` may be from now, either way (clock skew and delivery delay).
const MAX_CLOCK_DIFFERENCE: Duration = Duration::from_secs(300);
/// How long a fetched key is trusted before it is fetched again.
const KEY_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a `kid` the provider does not know is remembered as unknown.
const UNKNOWN_KEY_TTL: Duration = Duration::from_secs(60);
/// Most fetches of keys not in the cache per provider and minute: forged `kid`s must not turn
/// linkgate into a load generator against the provider's key endpoint.
const KEY_FETCHES_PER_MINUTE: u32 = 10;
/// Most cached keys per replica (known and unknown).
const KEY_CACHE_CAPACITY: usize = 256;

/// The event of a verified delivery its provider's reader could not read.
const UNREADABLE: &str = "unreadable";

/// What became of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Verified and kept for processing.
    Accepted,
    /// Verified, and already kept: a retry or a replay. Not processed again.
    Duplicate,
    /// No enabled provider by that name takes webhooks.
    UnknownProvider,
    /// Larger than [`MAX_BODY_BYTES`].
    Oversized,
    /// No signature header.
    MissingSignature,
    /// The JWT names another algorithm than ES256.
    WrongAlgorithm,
    /// The JWT's header does not name the `typ` the provider requires.
    WrongType,
    /// The JWT names a key the provider does not have, or none.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// Issued too long ago or in the future, or without an issue time.
    Stale,
    /// The signed body hash is not the body's.
    BodyMismatch,
    /// Not a JWT, or a claim of the wrong type.
    Malformed,
    /// The provider's key endpoint could not be reached; the provider will retry.
    KeyUnavailable,
    /// The inbox could not be written; the provider will retry.
    StoreUnavailable,
}

impl Verdict {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::UnknownProvider => "unknown_provider",
            Self::Oversized => "oversized",
            Self::MissingSignature => "missing_signature",
            Self::WrongAlgorithm => "wrong_algorithm",
            Self::WrongType => "wrong_type",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Stale => "stale",
            Self::BodyMismatch => "body_mismatch",
            Self::Malformed => "malformed",
            Self::KeyUnavailable => "key_unavailable",
            Self::StoreUnavailable => "store_unavailable",
        }
    }
}

/// Providers' webhook keys, by provider and `kid`, with unknown `kid`s remembered briefly.
#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<(String, String), CachedKey>>,
    /// Per provider: when the current minute of fetches began, and how many it has had.
    fetches: Mutex<HashMap<String, (Instant, u32)>>,
}

struct CachedKey {
    key: Option<Jwk>,
    until: Instant,
}

impl KeyCache {
    fn cached(&self, provider: &str, kid: &str) -> Option<Option<Jwk>> {
        let entries = self.entries.lock().expect("key cache lock");
        let entry = entries.get(&(provider.to_owned(), kid.to_owned()))?;
        (entry.until > Instant::now()).then(|| entry.key.clone())
    }

    /// Whether a fetch for `provider` may go out now (and counts it if so).
    fn may_fetch(&self, provider: &str) -> bool {
        let mut fetches = self.fetches.lock().expect("key fetch lock");
        let now = Instant::now();
        let (began, count) = fetches.entry(provider.to_owned()).or_insert((now, 0));
        if now.duration_since(*began) >= Duration::from_secs(60) {
            (*began, *count) = (now, 0);
        }
        *count += 1;
        *count <= KEY_FETCHES_PER_MINUTE
    }

    fn remember(&self, provider: &str, kid: &str, key: Option<Jwk>) {
        let mut entries = self.entries.lock().expect("key cache lock");
        if entries.len() >= KEY_CACHE_CAPACITY {
            let now = Instant::now();
            entries.retain(|_, entry| entry.key.is_some() && entry.until > now);
        }
        let ttl = if key.is_some() { KEY_TTL } else { UNKNOWN_KEY_TTL };
        entries.insert((provider.to_owned(), kid.to_owned()), CachedKey { key, until: Instant::now() + ttl });
    }

    async fn key(&self, provider: &str, scheme: &dyn WebhookScheme, kid: &str) -> Result<Jwk, Verdict> {
        if let Some(cached) = self.cached(provider, kid) {
            return cached.ok_or(Verdict::UnknownKey);
        }
        if !self.may_fetch(provider) {
            return Err(Verdict::KeyUnavailable);
        }
        match scheme.signing_key(kid).await {
            Ok(key) => {
                self.remember(provider, kid, key.clone());
                key.ok_or(Verdict::UnknownKey)
            }
            Err(error) => {
                tracing::warn!(provider, error = %error, "fetching a webhook signing key failed");
                Err(Verdict::KeyUnavailable)
            }
        }
    }
}

/// Rung when a delivery is kept, so this replica's sync engine processes the inbox on its next
/// tick instead of at its next sweep.
#[derive(Default)]
pub struct InboxBell(AtomicBool);

impl InboxBell {
    /// Asks for the inbox to be processed on the next tick.
    pub(crate) fn ring(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether it rang since the last call.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }
}

impl App {
    /// Verifies and keeps one delivery to `/webhooks/{provider}`.
    pub async fn receive_webhook(&self, provider: &str, headers: &HeaderMap, body: Option<&[u8]>) -> Verdict {
        let known = self.providers.get(provider).and_then(|p| p.webhooks()).is_some();
        let verdict = match body {
            None => Verdict::Oversized,
            Some(body) => self.verify_and_keep(provider, headers, body).await,
        };
        // Unknown provider names would otherwise become label values: a cardinality attack.
        let label = if known { provider } else { "unknown" };
        crate::telemetry::metrics::metrics().webhook_deliveries.with_label_values(&[label, verdict.label()]).inc();
        match verdict {
            Verdict::Accepted | Verdict::Duplicate => {
                tracing::info!(provider = label, verdict = verdict.label(), "webhook delivery");
            }
            _ => tracing::warn!(provider = label, verdict = verdict.label(), "webhook delivery refused"),
        }
        verdict
    }

    async fn verify_and_keep(&self, provider: &str, headers: &HeaderMap, body: &[u8]) -> Verdict {
        let Some(scheme) = self.providers.get(provider).and_then(|p| p.webhooks()) else {
            return Verdict::UnknownProvider;
        };
        let notice = match verify(&self.webhook_keys, provider, scheme, headers, body).await {
            Ok(notice) => notice,
            Err(verdict) => return verdict,
        };
        let delivery_key = notice.idempotency_key.unwrap_or_else(|| format!("sha256:{}", jws::body_sha256(body)));
        let body_sealed = self.sealer.seal(body, &crate::crypto::webhook_delivery_context(provider, &delivery_key));
        let delivery = InboxDelivery {
            provider: provider.to_owned(),
            delivery_key,
            event: notice.event,
            subject_hash: notice
                .upstream_ref
                .map(|reference| crate::crypto::upstream_ref_hash(provider, reference.expose_secret())),
            body_sealed,
            received_at: now(),
        };
        match self.store.record_webhook(&delivery).await {
            Ok(true) => {
                self.webhook_bell.ring();
                Verdict::Accepted
            }
            Ok(false) => Verdict::Duplicate,
            Err(error) => {
                tracing::error!(provider, error = %error, "keeping a webhook delivery failed");
                Verdict::StoreUnavailable
            }
        }
    }
}

/// Checks a delivery's signature, freshness and body binding, then reads it.
async fn verify(
    keys: &KeyCache,
    provider: &str,
    scheme: &dyn WebhookScheme,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<crate::providers::WebhookNotice, Verdict> {
    let token = headers
        .get(scheme.signature_header())
        .and_then(|value| value.to_str().ok())
        .ok_or(Verdict::MissingSignature)?
        .trim();
    let header = jws::header(token).map_err(jws_verdict)?;
    if let Some(required) = scheme.token_type()
        && header.typ.as_deref() != Some(required)
    {
        return Err(Verdict::WrongType);
    }
    let kid = header.kid.ok_or(Verdict::UnknownKey)?;
    let key = keys.key(provider, scheme, &kid).await?;
    let claims = jws::verify(token, &key).map_err(jws_verdict)?;

    let issued_at = claims.get("iat").and_then(serde_json::Value::as_i64).ok_or(Verdict::Stale)?;
    let age = now().timestamp() - issued_at;
    if age.unsigned_abs() > MAX_CLOCK_DIFFERENCE.as_secs() {
        return Err(Verdict::Stale);
    }
    match claims.get("request_body_sha256") {
        Some(claimed) => {
            let claimed = claimed.as_str().ok_or(Verdict::Malformed)?;
            let actual = jws::body_sha256(body);
            if !bool::from(claimed.as_bytes().ct_eq(actual.as_bytes())) {
                return Err(Verdict::BodyMismatch);
            }
        }
        None if scheme.body_hash_required() => return Err(Verdict::BodyMismatch),
        None => {}
    }
    Ok(scheme.read(body).unwrap_or_else(|error: ProviderError| {
        tracing::warn!(provider, error = %error, "a verified webhook could not be read; kept, naming no connection");
        crate::providers::WebhookNotice { idempotency_key: None, event: UNREADABLE.to_owned(), upstream_ref: None }
    }))
}

fn jws_verdict(error: JwsError) -> Verdict {
    match error {
        JwsError::Malformed => Verdict::Malformed,
        JwsError::WrongAlgorithm => Verdict::WrongAlgorithm,
        JwsError::BadKey | JwsError::BadSignature => Verdict::BadSignature,
    }
}

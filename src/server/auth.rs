//! Who is calling and what they may call: API keys, their verification on every RPC (streams
//! included), their scopes, dev mode, and the brake on failed attempts.
//!
//! A key reads `lgk_<key id>_<secret>`. linkgate stores only HMAC-SHA256(pepper, secret), finds
//! the key by its id and compares the HMAC in constant time, so neither a database leak nor a
//! timing probe yields a usable key. Verified keys are cached for a few seconds: a revocation
//! takes effect on every replica within [`KEY_CACHE_TTL`].
//!
//! Each key holds scopes ([`Scope`]); [`required_scope`] is the one table of which RPC needs
//! which, checked here before a call reaches its service. The reads of account numbers and
//! owners need scopes of their own; every other RPC needs `standard`. Dev mode holds every
//! scope.

use crate::app::Caller;
use crate::domain::ErrorReason;
use crate::domain::{ApiKey, Scope, StoredName, TenantId, now};
use crate::error::Error;
use crate::providers::upstream_client::{CallContext, within};
use crate::store::Store;
use crate::telemetry::{self, rpc::RpcBody};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use futures::future::BoxFuture;
use ring::hmac;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tracing::Instrument;
use uuid::Uuid;

/// How long a verified key is trusted without asking the database again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(10);
/// How long the "are there tenants yet?" answer that gates dev mode is reused.
const TENANT_CHECK_TTL: Duration = Duration::from_secs(5);
/// Failed authentications one address may make per window before it is turned away unheard.
const MAX_FAILURES: u32 = 20;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once; beyond this the oldest windows are forgotten.
const MAX_TRACKED_ADDRESSES: usize = 10_000;
const KEY_PREFIX: &str = "lgk_";
/// The metadata key carrying the request id, both ways; the client crate owns the name.
pub use linkgate_client::REQUEST_ID_HEADER;
const MAX_REQUEST_ID_LEN: usize = 128;

/// The peppers keyed into API key HMACs: the first hashes new keys, every one verifies. Held as
/// ready HMAC keys, so a call's check does not prepare them again.
pub struct Peppers(Vec<hmac::Key>);

impl std::fmt::Debug for Peppers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Peppers({} configured)", self.0.len())
    }
}

impl Peppers {
    /// Peppers from `LINKGATE_API_KEY_PEPPER` (comma-separated base64, at least 32 bytes each),
    /// or one derived from the sealing key when unset.
    pub fn from_config(configured: Option<&SecretString>, sealer: &crate::crypto::Sealer) -> anyhow::Result<Self> {
        let Some(configured) = configured else {
            return Ok(Self(vec![Self::key(&sealer.derive_key("api key pepper"))]));
        };
        let mut peppers = Vec::new();
        for (n, text) in configured.expose_secret().split(',').map(str::trim).enumerate() {
            let bytes = STANDARD
                .decode(text)
                .map_err(|_| anyhow::anyhow!("LINKGATE_API_KEY_PEPPER entry {n} is not base64"))?;
            anyhow::ensure!(bytes.len() >= 32, "LINKGATE_API_KEY_PEPPER entry {n} is shorter than 32 bytes");
            peppers.push(Self::key(&bytes));
        }
        Ok(Self(peppers))
    }

    fn key(pepper: &[u8]) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, pepper)
    }

    /// A new key for `tenant` holding `scopes`: the record to store and the key to show once.
    pub fn issue(&self, tenant: TenantId, scopes: &[Scope]) -> (ApiKey, SecretString) {
        let id = Uuid::now_v7();
        let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let secret_hmac = hmac::sign(&self.0[0], secret.as_bytes()).as_ref().to_vec();
        // Declaration order, each once, as the store reads them back.
        let scopes = Scope::ALL.iter().copied().filter(|scope| scopes.contains(scope)).collect();
        let record = ApiKey { id, tenant_id: tenant, secret_hmac, scopes, created_at: now(), revoked_at: None };
        (record, SecretString::from(format!("{KEY_PREFIX}{}_{secret}", id.simple())))
    }

    /// Whether `secret` is the one whose HMAC is stored, compared in constant time.
    fn verify(&self, secret: &str, stored: &[u8]) -> bool {
        self.0.iter().any(|pepper| hmac::verify(pepper, secret.as_bytes(), stored).is_ok())
    }
}

/// Splits a presented key into its id and secret.
fn parse_key(key: &str) -> Option<(Uuid, &str)> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (!secret.is_empty() && secret.len() <= 64).then_some(())?;
    Some((Uuid::try_parse(id).ok()?, secret))
}

/// Who a verified call is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The tenant.
    pub tenant: TenantId,
    /// The key used; none in dev mode.
    pub api_key_id: Option<Uuid>,
    /// What the key may call; every scope in dev mode.
    pub scopes: Vec<Scope>,
}

impl Identity {
    /// Ok when the identity holds the scope `method` needs; SCOPE_REQUIRED naming it otherwise.
    pub fn permits(&self, method: &str) -> Result<(), Error> {
        let scope = required_scope(method);
        if self.scopes.contains(&scope) {
            return Ok(());
        }
        Err(Error::new(
            ErrorReason::ScopeRequired,
            format!("this API key lacks the scope {:?} this call needs; create a key with it", scope.name()),
        )
        .with("scope", scope.name()))
    }
}

/// The scope each RPC (`/package.Service/Method`) needs: THE table. Only the reads that serve
/// account numbers and owners need their own; every other RPC needs `standard`, so a new RPC is
/// covered by it until it is listed here.
pub fn required_scope(method: &str) -> Scope {
    match method {
        "/linkgate.v1.AccountService/ListAccountNumbers" => Scope::AccountNumbersRead,
        "/linkgate.v1.AccountService/ListAccountOwners" => Scope::IdentityRead,
        _ => Scope::Standard,
    }
}

/// Verifies callers. Shared by every RPC of a replica.
pub struct Authenticator {
    store: Arc<dyn Store>,
    peppers: Peppers,
    /// Dev mode needs a loopback listener; it also needs no tenants to exist.
    loopback: bool,
    keys: Mutex<HashMap<Uuid, (ApiKey, Instant)>>,
    tenants_exist: Mutex<Option<(bool, Instant)>>,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Authenticator {
    /// An authenticator for a listener that is (or is not) on loopback.
    pub fn new(store: Arc<dyn Store>, peppers: Peppers, loopback: bool) -> Self {
        Self {
            store,
            peppers,
            loopback,
            keys: Mutex::default(),
            tenants_exist: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// Checks the `authorization` header of one call.
    pub async fn authenticate(&self, authorization: Option<&str>, peer: Option<IpAddr>) -> Result<Identity, Error> {
        if let Some(retry_after) = peer.and_then(|ip| self.blocked_for(ip)) {
            return Err(Error::new(ErrorReason::RateLimited, "too many failed authentications from this address")
                .retry_after(retry_after));
        }
        let result = self.check(authorization).await;
        if let (Err(error), Some(ip)) = (&result, peer)
            && error.reason() == ErrorReason::Unauthenticated
        {
            self.record_failure(ip);
        }
        result
    }

    async fn check(&self, authorization: Option<&str>) -> Result<Identity, Error> {
        let Some(header) = authorization else {
            if self.dev_mode().await? {
                return Ok(Identity { tenant: TenantId::DEV, api_key_id: None, scopes: Scope::ALL.to_vec() });
            }
            return Err(unauthenticated("missing API key: send `authorization: Bearer <key>`"));
        };
        let key = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| unauthenticated("the authorization header must read `Bearer <key>`"))?;
        let (id, secret) = parse_key(key.trim()).ok_or_else(|| unauthenticated("malformed API key"))?;
        let stored = self.key(id).await?.ok_or_else(|| unauthenticated("unknown or revoked API key"))?;
        if !self.peppers.verify(secret, &stored.secret_hmac) {
            return Err(unauthenticated("unknown or revoked API key"));
        }
        Ok(Identity { tenant: stored.tenant_id, api_key_id: Some(id), scopes: stored.scopes })
    }

    async fn key(&self, id: Uuid) -> Result<Option<ApiKey>, Error> {
        if let Some((key, at)) = self.keys.lock().expect("key cache poisoned").get(&id)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(Some(key.clone()));
        }
        let key = self.store.find_active_api_key(id).await?;
        let mut cache = self.keys.lock().expect("key cache poisoned");
        match &key {
            Some(key) => {
                if cache.len() >= MAX_TRACKED_ADDRESSES {
                    cache.retain(|_, (_, at)| at.elapsed() < KEY_CACHE_TTL);
                }
                cache.insert(id, (key.clone(), Instant::now()));
            }
            None => {
                cache.remove(&id);
            }
        }
        Ok(key)
    }

    /// Dev mode: a loopback listener and no tenants yet.
    async fn dev_mode(&self) -> Result<bool, Error> {
        if !self.loopback {
            return Ok(false);
        }
        if let Some((exist, at)) = *self.tenants_exist.lock().expect("tenant check poisoned")
            && at.elapsed() < TENANT_CHECK_TTL
        {
            return Ok(!exist);
        }
        let exist = self.store.active_tenant_count().await? > 0;
        *self.tenants_exist.lock().expect("tenant check poisoned") = Some((exist, Instant::now()));
        Ok(!exist)
    }

    fn blocked_for(&self, ip: IpAddr) -> Option<Duration> {
        let failures = self.failures.lock().expect("failure table poisoned");
        let (since, count) = failures.get(&ip)?;
        let elapsed = since.elapsed();
        (elapsed < FAILURE_WINDOW && *count >= MAX_FAILURES).then(|| FAILURE_WINDOW - elapsed)
    }

    fn record_failure(&self, ip: IpAddr) {
        let mut failures = self.failures.lock().expect("failure table poisoned");
        if failures.len() >= MAX_TRACKED_ADDRESSES {
            failures.retain(|_, (since, _)| since.elapsed() < FAILURE_WINDOW);
        }
        let entry = failures.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= FAILURE_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

fn unauthenticated(message: &str) -> Error {
    Error::new(ErrorReason::Unauthenticated, message)
}

/// The request id of a call: the caller's `x-request-id` when it is sane, else a new one.
fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_valid_key(id))
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::now_v7().to_string())
}

/// The caller's W3C trace context, when it is well formed (`00-<32 hex>-<16 hex>-<2 hex>`, ids
/// not all zero); anything else is ignored rather than passed on.
fn traceparent(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    let parts: Vec<&str> = value.split('-').collect();
    let hex =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let nonzero = |part: &str| part.bytes().any(|b| b != b'0');
    let well_formed = matches!(parts.as_slice(), [version, trace, parent, flags]
        if hex(version, 2) && *version != "ff" && hex(trace, 32) && nonzero(trace) && hex(parent, 16)
            && nonzero(parent) && hex(flags, 2));
    well_formed.then(|| value.to_owned())
}

/// When the caller gives up, from its `grpc-timeout` header (at most 8 digits and a unit).
fn grpc_deadline(headers: &http::HeaderMap, started: Instant) -> Option<tokio::time::Instant> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    let timeout = match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    };
    Some(tokio::time::Instant::from_std(started) + timeout)
}

/// Whether `id` is acceptable as a request id or idempotency key.
pub fn is_valid_key(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Services anyone may call: health (probes) and reflection (the contract is public).
fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

/// The tower layer that authenticates every linkgate RPC before it reaches its service.
#[derive(Clone)]
pub struct AuthLayer {
    authenticator: Arc<Authenticator>,
}

impl AuthLayer {
    /// The layer over `authenticator`.
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self { authenticator }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, authenticator: self.authenticator.clone() }
    }
}

/// See [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

impl<S, B, R> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    R: Default,
{
    type Response = http::Response<RpcBody<R>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone takes over for the next call; the ready one serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let authenticator = self.authenticator.clone();
        Box::pin(async move {
            if is_public(request.uri().path()) {
                return Ok(inner.call(request).await?.map(RpcBody::untraced));
            }
            let started = Instant::now();
            let method = request.uri().path().to_owned();
            let request_id = request_id(request.headers());
            let authorization = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            let peer = request
                .extensions()
                .get::<tonic::transport::server::TcpConnectInfo>()
                .and_then(|info| info.remote_addr())
                .map(|addr| addr.ip());
            let traceparent = traceparent(request.headers());
            let context = CallContext {
                deadline: grpc_deadline(request.headers(), started),
                request_id: Some(request_id.clone()),
                traceparent: traceparent.clone(),
            };
            let verified = authenticator.authenticate(authorization, peer).await;
            match verified.and_then(|identity| identity.permits(&method).map(|()| identity)) {
                Ok(identity) => {
                    // One span per call, so every log line of the call names its request id, its
                    // tenant and the caller's W3C trace context when it sent one, and the trace
                    // shows the call as an RPC. It is made once the tenant is known: recording a
                    // field later makes the log layer format every field again. The response's
                    // body holds it until the call ends.
                    let span =
                        telemetry::rpc::server_span(&method, &request_id, traceparent.as_deref(), &identity.tenant);
                    request.extensions_mut().insert(Caller {
                        tenant: identity.tenant,
                        api_key_id: identity.api_key_id,
                        request_id: request_id.clone(),
                        method: method.clone(),
                        started,
                    });
                    let response = within(context, inner.call(request)).instrument(span.clone()).await?;
                    let response = super::wire_errors::with_reason(response, &method, &request_id, started.elapsed());
                    Ok(telemetry::rpc::traced(response, span))
                }
                Err(error) => {
                    error.log(&request_id);
                    let limit = match error.reason() {
                        ErrorReason::RateLimited => "auth_failures",
                        ErrorReason::ScopeRequired => "scope_required",
                        _ => "unauthenticated",
                    };
                    telemetry::metrics::metrics().rejections.with_label_values(&[limit]).inc();
                    let status = error.into_status(&request_id);
                    telemetry::metrics::record_rpc(&method, status.code(), started.elapsed());
                    Ok(status.into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peppers() -> Peppers {
        Peppers(vec![Peppers::key(&[1; 32])])
    }

    #[test]
    fn an_issued_key_verifies_and_a_changed_one_does_not() {
        let peppers = peppers();
        let (record, key) = peppers.issue(TenantId::DEV, &[Scope::IdentityRead, Scope::Standard]);
        assert_eq!(record.scopes, [Scope::Standard, Scope::IdentityRead], "in declaration order");
        let (id, secret) = parse_key(key.expose_secret()).expect("issued keys parse");
        assert_eq!(id, record.id);
        assert!(peppers.verify(secret, &record.secret_hmac));
        let mut altered = secret.to_owned();
        altered.replace_range(0..1, if altered.starts_with('A') { "B" } else { "A" });
        assert!(!peppers.verify(&altered, &record.secret_hmac));
        assert!(!format!("{record:?}").contains(secret), "Debug never shows the secret or its HMAC");
    }

    #[test]
    fn only_the_reads_of_account_details_need_scopes_of_their_own() {
        let identity = |scopes: &[Scope]| Identity { tenant: TenantId::DEV, api_key_id: None, scopes: scopes.to_vec() };
        let numbers = "/linkgate.v1.AccountService/ListAccountNumbers";
        let owners = "/linkgate.v1.AccountService/ListAccountOwners";
        let accounts = "/linkgate.v1.AccountService/ListAccounts";
        let standard = identity(&[Scope::Standard]);
        assert!(standard.permits(accounts).is_ok());
        for (method, scope) in [(numbers, "account_numbers:read"), (owners, "identity:read")] {
            let status = standard.permits(method).unwrap_err().into_status("r");
            assert_eq!(status.code(), tonic::Code::PermissionDenied);
            let info = tonic_types::StatusExt::get_details_error_info(&status).expect("error info");
            assert_eq!(
                (info.reason.as_str(), info.metadata.get("scope").map(String::as_str)),
                ("SCOPE_REQUIRED", Some(scope))
            );
        }
        let numbers_only = identity(&[Scope::AccountNumbersRead]);
        assert!(numbers_only.permits(numbers).is_ok());
        assert!(numbers_only.permits(owners).is_err() && numbers_only.permits(accounts).is_err());
        assert!(identity(Scope::ALL).permits(owners).is_ok());
    }

    /// The table names methods the contract has: a renamed RPC would otherwise fall back to
    /// `standard` without anyone noticing.
    #[test]
    fn the_methods_with_scopes_of_their_own_are_in_the_contract() {
        use prost::Message;
        let descriptors = prost_types::FileDescriptorSet::decode(crate::pb::FILE_DESCRIPTOR_SET).unwrap();
        let methods: Vec<String> = descriptors
            .file
            .iter()
            .flat_map(|file| file.service.iter().map(move |service| (file.package(), service)))
            .flat_map(|(package, service)| {
                service.method.iter().map(move |method| format!("/{package}.{}/{}", service.name(), method.name()))
            })
            .collect();
        let scoped: Vec<&String> = methods.iter().filter(|method| required_scope(method) != Scope::Standard).collect();
        assert_eq!(
            scoped,
            ["/linkgate.v1.AccountService/ListAccountNumbers", "/linkgate.v1.AccountService/ListAccountOwners"]
        );
    }

    #[test]
    fn keys_hashed_under_an_older_pepper_still_verify_after_rotation() {
        let old = Peppers(vec![Peppers::key(&[1; 32])]);
        let (record, key) = old.issue(TenantId::DEV, &[Scope::Standard]);
        let rotated = Peppers(vec![Peppers::key(&[2; 32]), Peppers::key(&[1; 32])]);
        let (_, secret) = parse_key(key.expose_secret()).unwrap();
        assert!(rotated.verify(secret, &record.secret_hmac));
    }

    /// A hash stored before the move to ring (RustCrypto's hmac and sha2), under the pepper
    /// derived from the sealing key `[7; 32]` when none is configured: it must keep verifying.
    #[test]
    fn a_hash_stored_before_the_move_to_ring_still_verifies() {
        let stored = "85c642c854aafc4d9459a90028b986b0f988c8441eff828a5d84a9eeb873dfdd";
        let stored: Vec<u8> =
            (0..stored.len()).step_by(2).map(|at| u8::from_str_radix(&stored[at..at + 2], 16).unwrap()).collect();
        let sealer = crate::crypto::Sealer::from_keys(&[[7; 32]]);
        let peppers = Peppers::from_config(None, &sealer).unwrap();
        assert!(peppers.verify("secret-abc", &stored));
        assert!(!peppers.verify("secret-abd", &stored));
        assert!(!peppers.verify("secret-abc", &stored[..31]), "a truncated hash is not a match");
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        for bad in ["", "lgk_", "lgk_nothex_abc", "Bearer x", "lgk_0193a7e48c2e7cc19f0a3b1d2c4e5f60_", "sk_live_123"] {
            assert!(parse_key(bad).is_none(), "{bad:?}");
        }
    }

    fn headers(name: &'static str, value: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(name, value.parse().unwrap());
        headers
    }

    #[test]
    fn only_well_formed_trace_contexts_are_passed_on() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(traceparent(&headers("traceparent", good)).as_deref(), Some(good));
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(traceparent(&headers("traceparent", bad)), None, "{bad}");
        }
    }

    #[test]
    fn grpc_timeouts_become_deadlines_in_every_unit() {
        let started = Instant::now();
        let base = tokio::time::Instant::from_std(started);
        for (value, expected) in [
            ("2H", Duration::from_secs(7200)),
            ("3M", Duration::from_secs(180)),
            ("5S", Duration::from_secs(5)),
            ("250m", Duration::from_millis(250)),
            ("900u", Duration::from_micros(900)),
            ("12n", Duration::from_nanos(12)),
        ] {
            assert_eq!(grpc_deadline(&headers("grpc-timeout", value), started), Some(base + expected), "{value}");
        }
        for bad in ["", "S", "5", "5s", "123456789S", "-1S", "1.5S"] {
            let mut map = http::HeaderMap::new();
            if let Ok(value) = bad.parse() {
                map.insert("grpc-timeout", value);
            }
            assert_eq!(grpc_deadline(&map, started), None, "{bad:?}");
        }
    }
}

/// Hostile input: the authorization header is the first thing an attacker controls.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_keys_parse_only_when_well_formed(key in ".{0,300}") {
            if let Some((id, secret)) = parse_key(&key) {
                prop_assert!(key.starts_with(KEY_PREFIX));
                prop_assert!(key.contains(&id.simple().to_string()));
                prop_assert!(!secret.is_empty() && secret.len() <= 64);
            }
        }

        #[test]
        fn request_ids_are_taken_only_when_printable_and_short(id in ".{0,300}") {
            if is_valid_key(&id) {
                prop_assert!(id.len() <= MAX_REQUEST_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic()));
            }
        }
    }
}

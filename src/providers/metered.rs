//! Every provider call counted and timed, whatever the provider: the registry wraps each adapter
//! in [`Metered`], so no adapter has to remember to. The same record of outcomes gives each
//! provider's health in ListProviders: DEGRADED when at least [`DEGRADED_FAILURES`] of the last
//! [`HEALTH_WINDOW`] calls within [`HEALTH_HORIZON`] failed upstream (unavailable, rate limited,
//! or a broken answer; a user's wrong password is not the provider's ill health), HEALTHY when
//! fewer did, and unknown when no call was made within the horizon. Institution reads that
//! succeed are not counted: they are mostly answered from the kept catalogue.

use super::{
    Credentials, ExchangedConnection, Fetched, Institution, LinkContext, LinkStart, LinkStep, Provider, ProviderError,
    ProviderHealth, ProviderInfo, ProviderResult, UpstreamStatus, WebhookScheme, WebhookTarget,
};
use crate::domain::Product;
use secrecy::SecretString;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Calls that count toward health.
pub const HEALTH_WINDOW: usize = 10;
/// Failed calls among them that make a provider DEGRADED.
pub const DEGRADED_FAILURES: usize = 3;
/// How old a call may be and still count.
pub const HEALTH_HORIZON: Duration = Duration::from_secs(300);

/// A provider whose calls feed `linkgate_upstream_*` and its health.
pub struct Metered {
    inner: Arc<dyn Provider>,
    /// When each recent call ended and whether it failed upstream, newest last.
    recent: Mutex<VecDeque<(Instant, bool)>>,
}

impl Metered {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Provider>) -> Self {
        Self { inner, recent: Mutex::default() }
    }

    fn record<T>(&self, operation: &str, started: Instant, result: &ProviderResult<T>) {
        let provider = self.inner.info().id;
        let outcome = match result {
            Ok(_) => "ok",
            Err(error) => outcome(error),
        };
        let failed = matches!(
            result,
            Err(ProviderError::Unavailable { .. } | ProviderError::RateLimited { .. } | ProviderError::Protocol { .. })
        );
        // A catalogue read that succeeds is mostly answered from memory (see `catalogue`), so it
        // says nothing of the provider's health; counted, a user typing a name would push the
        // failures of real calls out of the window.
        let from_memory = result.is_ok() && matches!(operation, "institutions" | "institution");
        if !from_memory {
            let mut recent = self.recent.lock().expect("health lock");
            if recent.len() == HEALTH_WINDOW {
                recent.pop_front();
            }
            recent.push_back((Instant::now(), failed));
        }
        let metrics = crate::telemetry::metrics::metrics();
        metrics.upstream_requests.with_label_values(&[provider, operation, outcome]).inc();
        metrics.upstream_duration.with_label_values(&[provider, operation]).observe(started.elapsed().as_secs_f64());
    }
}

/// The outcome label of a failed call.
fn outcome(error: &ProviderError) -> &'static str {
    match error {
        ProviderError::InvalidPublicToken => "invalid_public_token",
        ProviderError::LoginRequired => "login_required",
        ProviderError::Unsupported(_) => "unsupported",
        ProviderError::Unavailable { .. } => "unavailable",
        ProviderError::RateLimited { .. } => "rate_limited",
        ProviderError::Rejected { .. } => "rejected",
        ProviderError::ProductNotReady => "product_not_ready",
        ProviderError::Protocol { .. } => "protocol",
    }
}

/// Times `$call` and records it under `$operation`.
macro_rules! metered {
    ($self:ident, $operation:literal, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        $self.record($operation, started, &result);
        result
    }};
}

#[async_trait::async_trait]
impl Provider for Metered {
    fn info(&self) -> &ProviderInfo {
        self.inner.info()
    }

    async fn institutions(&self, query: &str) -> ProviderResult<Vec<Institution>> {
        metered!(self, "institutions", self.inner.institutions(query))
    }

    async fn institution(&self, id: &str) -> ProviderResult<Option<Institution>> {
        metered!(self, "institution", self.inner.institution(id))
    }

    async fn start_link(&self, link: &LinkContext) -> ProviderResult<LinkStart> {
        metered!(self, "start_link", self.inner.start_link(link))
    }

    async fn submit_credentials(&self, link: &LinkContext, credentials: Credentials) -> ProviderResult<LinkStep> {
        metered!(self, "submit_credentials", self.inner.submit_credentials(link, credentials))
    }

    async fn answer_mfa(&self, link: &LinkContext, answer: SecretString) -> ProviderResult<LinkStep> {
        metered!(self, "answer_mfa", self.inner.answer_mfa(link, answer))
    }

    async fn poll_link(&self, link: &LinkContext) -> ProviderResult<LinkStep> {
        metered!(self, "poll_link", self.inner.poll_link(link))
    }

    async fn exchange_public_token(&self, public_token: &SecretString) -> ProviderResult<ExchangedConnection> {
        metered!(self, "exchange_public_token", self.inner.exchange_public_token(public_token))
    }

    async fn connection_status(&self, handle: &SecretString) -> ProviderResult<UpstreamStatus> {
        metered!(self, "connection_status", self.inner.connection_status(handle))
    }

    async fn fetch_data(
        &self,
        handle: &SecretString,
        connection_id: Uuid,
        products: &[Product],
        cursor: Option<&str>,
    ) -> ProviderResult<Fetched> {
        metered!(self, "fetch_data", self.inner.fetch_data(handle, connection_id, products, cursor))
    }

    async fn refresh(&self, handle: &SecretString, products: &[Product]) -> ProviderResult<()> {
        metered!(self, "refresh", self.inner.refresh(handle, products))
    }

    async fn delete_connection(&self, handle: &SecretString) -> ProviderResult<()> {
        metered!(self, "delete_connection", self.inner.delete_connection(handle))
    }

    async fn rotate_handle(&self, handle: &SecretString) -> ProviderResult<SecretString> {
        metered!(self, "rotate_handle", self.inner.rotate_handle(handle))
    }

    fn sealed_link_token(&self, upstream_state: &SecretString) -> Option<SecretString> {
        self.inner.sealed_link_token(upstream_state)
    }

    fn webhook_target(&self) -> WebhookTarget<'_> {
        self.inner.webhook_target()
    }

    async fn set_webhook_url(&self, handle: &SecretString, url: Option<&str>) -> ProviderResult<()> {
        metered!(self, "set_webhook_url", self.inner.set_webhook_url(handle, url))
    }

    fn webhooks(&self) -> Option<&dyn WebhookScheme> {
        self.inner.webhooks()
    }

    fn health(&self) -> ProviderHealth {
        let recent = self.recent.lock().expect("health lock");
        health_of(recent.iter().copied(), Instant::now())
    }
}

/// Health from recent calls (when each ended, whether it failed upstream) as of `now`.
fn health_of(recent: impl Iterator<Item = (Instant, bool)>, now: Instant) -> ProviderHealth {
    let counted: Vec<bool> =
        recent.filter(|(at, _)| now.saturating_duration_since(*at) <= HEALTH_HORIZON).map(|(_, f)| f).collect();
    match counted.iter().filter(|failed| **failed).count() {
        _ if counted.is_empty() => ProviderHealth::Unknown,
        failures if failures >= DEGRADED_FAILURES => ProviderHealth::Degraded,
        _ => ProviderHealth::Healthy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_recent_upstream_failures_within_the_horizon() {
        let now = Instant::now() + Duration::from_secs(3600);
        let at = |seconds_ago: u64| now - Duration::from_secs(seconds_ago);
        assert_eq!(health_of(std::iter::empty(), now), ProviderHealth::Unknown);
        assert_eq!(health_of([(at(1), false)].into_iter(), now), ProviderHealth::Healthy);
        let two_failures = [(at(3), true), (at(2), true), (at(1), false)];
        assert_eq!(health_of(two_failures.into_iter(), now), ProviderHealth::Healthy);
        let three_failures = [(at(4), true), (at(3), true), (at(2), true), (at(1), false)];
        assert_eq!(health_of(three_failures.into_iter(), now), ProviderHealth::Degraded);
        let long_ago = [(at(900), true), (at(800), true), (at(700), true)];
        assert_eq!(health_of(long_ago.into_iter(), now), ProviderHealth::Unknown, "old failures are forgotten");
    }
}

//! Every provider call counted and timed, whatever the provider: the registry wraps each adapter
//! in [`Metered`], so no adapter has to remember to.

use super::{
    Credentials, ExchangedConnection, Institution, LinkContext, LinkStart, LinkStep, Provider, ProviderError,
    ProviderInfo, ProviderResult, UpstreamStatus, WebhookScheme,
};
use crate::domain::{ConnectionData, Product};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// A provider whose calls feed `linkgate_upstream_*`.
pub struct Metered {
    inner: Arc<dyn Provider>,
}

impl Metered {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Provider>) -> Self {
        Self { inner }
    }

    fn record<T>(&self, operation: &str, started: Instant, result: &ProviderResult<T>) {
        let provider = self.inner.info().id;
        let outcome = match result {
            Ok(_) => "ok",
            Err(error) => outcome(error),
        };
        let metrics = crate::metrics::metrics();
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

    async fn institutions(&self) -> ProviderResult<Vec<Institution>> {
        metered!(self, "institutions", self.inner.institutions())
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
    ) -> ProviderResult<ConnectionData> {
        metered!(self, "fetch_data", self.inner.fetch_data(handle, connection_id, products))
    }

    async fn refresh(&self, handle: &SecretString) -> ProviderResult<()> {
        metered!(self, "refresh", self.inner.refresh(handle))
    }

    async fn delete_connection(&self, handle: &SecretString) -> ProviderResult<()> {
        metered!(self, "delete_connection", self.inner.delete_connection(handle))
    }

    fn webhooks(&self) -> Option<&dyn WebhookScheme> {
        self.inner.webhooks()
    }
}

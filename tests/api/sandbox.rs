//! The sandbox side of the API tests: shortcuts through the sandbox's credentials flow on a
//! [`TestApp`], and [`RecordingSandbox`], a sandbox that counts and records what it is asked.

use crate::support::server::{Providers, TestApp, test_settings};
use linkgate::crypto::jws::Jwk;
use linkgate::domain::Product;
use linkgate::pb;
use linkgate::providers::sandbox::{Ledger, Sandbox};
use linkgate::providers::{
    Credentials, ExchangedConnection, Fetched, Institution, LinkContext, LinkStart, LinkStep, Provider, ProviderError,
    ProviderInfo, ProviderResult, Registry, UpstreamStatus, WebhookNotice, WebhookScheme,
};
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// The sandbox's credentials flow.
impl TestApp {
    /// Creates a credentials-flow session at `institution` for `user`.
    pub async fn create_session(&mut self, institution: &str, user: &str) -> pb::LinkSession {
        self.link
            .create_link_session(pb::CreateLinkSessionRequest {
                provider: "sandbox".into(),
                external_user_id: user.into(),
                institution_id: institution.into(),
                ..Default::default()
            })
            .await
            .expect("session created")
            .into_inner()
            .link_session
            .unwrap()
    }

    /// Submits sandbox credentials to a session.
    pub async fn submit(
        &mut self,
        session_id: &str,
        username: &str,
        password: &str,
    ) -> Result<pb::LinkSession, tonic::Status> {
        let credentials =
            HashMap::from([("username".to_owned(), username.to_owned()), ("password".to_owned(), password.to_owned())]);
        self.link
            .submit_credentials(pb::SubmitCredentialsRequest {
                link_session_id: session_id.into(),
                credentials,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().link_session.unwrap())
    }

    /// Links `institution` for `user` with the sandbox's good credentials; returns the public token.
    pub async fn public_token(&mut self, institution: &str, user: &str) -> String {
        let session = self.create_session(institution, user).await;
        let session = self.submit(&session.id, "user_good", "pass_good").await.expect("credentials accepted");
        assert_eq!(session.state(), pb::LinkSessionState::Succeeded);
        session.public_token
    }

    /// A connection at `institution` whose first import has finished.
    pub async fn ready_connection(&mut self, institution: &str, user: &str) -> pb::Connection {
        let token = self.public_token(institution, user).await;
        let connection = self.exchange("sandbox", &token).await.expect("exchange succeeds");
        self.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await
    }
}

/// The sandbox with a record of what it handed out and how often it exchanged, each exchange
/// slowed down so concurrent calls overlap.
pub struct RecordingSandbox {
    inner: Sandbox,
    /// Exchange calls made.
    pub exchanges: Arc<AtomicUsize>,
    /// Status checks made.
    pub status_checks: Arc<AtomicUsize>,
    /// Every connection handle issued (secrets that must never leave linkgate).
    pub handles: Arc<Mutex<Vec<String>>>,
    /// Every connection handle revoked (delete_connection), in order.
    pub revoked: Arc<Mutex<Vec<String>>>,
    /// Webhook signing keys it publishes; webhooks are off when empty.
    webhook_keys: Vec<Jwk>,
    /// Webhook key fetches made.
    key_fetches: Arc<AtomicUsize>,
}

/// The header the recording sandbox's webhooks carry their JWT in.
pub const SANDBOX_SIGNATURE_HEADER: &str = "sandbox-signature";

impl RecordingSandbox {
    /// A recording sandbox with the test settings, and its exchange counter and issued handles.
    pub fn registry() -> (Providers, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
        let (providers, sandbox) = Self::with_settings(test_settings("unused").providers.sandbox);
        (providers, sandbox.exchanges, sandbox.handles)
    }

    /// Providers holding a recording sandbox with `settings`, and the sandbox's counters.
    pub fn with_settings(settings: linkgate::config::SandboxSettings) -> (Providers, RecordingCounters) {
        Self::with_webhooks(settings, Vec::new())
    }

    /// As [`Self::with_settings`], taking webhooks signed by `keys`: a JSON body
    /// `{"id", "event", "connection"}` naming the connection by its handle, with an ES256 JWT in
    /// [`SANDBOX_SIGNATURE_HEADER`] that must bind the body.
    pub fn with_webhooks(
        settings: linkgate::config::SandboxSettings,
        keys: Vec<Jwk>,
    ) -> (Providers, RecordingCounters) {
        let counters = RecordingCounters::default();
        let recording = counters.clone();
        let providers: Providers = Box::new(move |store| {
            let sandbox = RecordingSandbox {
                inner: Sandbox::new(settings, Ledger::new(store)),
                exchanges: recording.exchanges,
                status_checks: recording.status_checks,
                handles: recording.handles,
                revoked: recording.revoked,
                webhook_keys: keys,
                key_fetches: recording.key_fetches,
            };
            let mut registry = Registry::default();
            registry.register(Arc::new(sandbox));
            registry
        });
        (providers, counters)
    }
}

/// What a recording sandbox counted.
#[derive(Clone, Default)]
pub struct RecordingCounters {
    /// Exchange calls.
    pub exchanges: Arc<AtomicUsize>,
    /// Status checks.
    pub status_checks: Arc<AtomicUsize>,
    /// Handles issued.
    pub handles: Arc<Mutex<Vec<String>>>,
    /// Handles revoked.
    pub revoked: Arc<Mutex<Vec<String>>>,
    /// Webhook key fetches.
    pub key_fetches: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl Provider for RecordingSandbox {
    fn info(&self) -> &ProviderInfo {
        self.inner.info()
    }
    async fn institutions(&self, query: &str) -> ProviderResult<Vec<Institution>> {
        self.inner.institutions(query).await
    }
    async fn start_link(&self, link: &LinkContext) -> ProviderResult<LinkStart> {
        self.inner.start_link(link).await
    }
    async fn submit_credentials(&self, link: &LinkContext, credentials: Credentials) -> ProviderResult<LinkStep> {
        self.inner.submit_credentials(link, credentials).await
    }
    async fn answer_mfa(&self, link: &LinkContext, answer: SecretString) -> ProviderResult<LinkStep> {
        self.inner.answer_mfa(link, answer).await
    }
    async fn poll_link(&self, link: &LinkContext) -> ProviderResult<LinkStep> {
        self.inner.poll_link(link).await
    }
    async fn exchange_public_token(&self, public_token: &SecretString) -> ProviderResult<ExchangedConnection> {
        use secrecy::ExposeSecret;
        self.exchanges.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let exchanged = self.inner.exchange_public_token(public_token).await?;
        self.handles.lock().unwrap().push(exchanged.handle.expose_secret().to_owned());
        Ok(exchanged)
    }
    async fn connection_status(&self, handle: &SecretString) -> ProviderResult<UpstreamStatus> {
        self.status_checks.fetch_add(1, Ordering::SeqCst);
        self.inner.connection_status(handle).await
    }
    async fn fetch_data(
        &self,
        handle: &SecretString,
        connection_id: Uuid,
        products: &[Product],
        cursor: Option<&str>,
    ) -> ProviderResult<Fetched> {
        self.inner.fetch_data(handle, connection_id, products, cursor).await
    }
    async fn refresh(&self, handle: &SecretString, products: &[Product]) -> ProviderResult<()> {
        self.inner.refresh(handle, products).await
    }
    async fn delete_connection(&self, handle: &SecretString) -> ProviderResult<()> {
        use secrecy::ExposeSecret;
        self.revoked.lock().unwrap().push(handle.expose_secret().to_owned());
        self.inner.delete_connection(handle).await
    }
    fn webhooks(&self) -> Option<&dyn WebhookScheme> {
        (!self.webhook_keys.is_empty()).then_some(self as &dyn WebhookScheme)
    }
}

#[async_trait::async_trait]
impl WebhookScheme for RecordingSandbox {
    fn signature_header(&self) -> &'static str {
        SANDBOX_SIGNATURE_HEADER
    }
    fn body_hash_required(&self) -> bool {
        true
    }
    async fn signing_key(&self, kid: &str) -> ProviderResult<Option<Jwk>> {
        self.key_fetches.fetch_add(1, Ordering::SeqCst);
        Ok(self.webhook_keys.iter().find(|key| key.kid.as_deref() == Some(kid)).cloned())
    }
    fn read(&self, body: &[u8]) -> ProviderResult<WebhookNotice> {
        #[derive(serde::Deserialize)]
        struct Delivery {
            id: String,
            event: String,
            connection: String,
        }
        let delivery: Delivery = serde_json::from_slice(body)
            .map_err(|_| ProviderError::Protocol { detail: "webhook: unexpected body".to_owned() })?;
        Ok(WebhookNotice {
            idempotency_key: Some(delivery.id),
            event: delivery.event,
            upstream_ref: Some(SecretString::from(delivery.connection)),
        })
    }
}

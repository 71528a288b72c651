//! The sync engine: each replica leases due link sessions and connections from the store and
//! asks their providers where they stand, so callers never poll. A lease is a row-level claim
//! with an expiry: one replica works an item at a time, and a crashed replica's items are taken
//! over when its leases lapse.

use crate::app::App;
use crate::domain::ErrorReason;
use crate::domain::{
    Connection, ConnectionError, ConnectionEventType, ConnectionState, LinkFlow, LinkSession, LinkSessionState,
    Product, ProductState, now,
};
use crate::error::Result;
use crate::providers::{Provider, ProviderError, Registry, UpstreamStatus, WebhookTarget};
use crate::store::Lease;
use futures::StreamExt;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

/// Items leased per tick, per kind.
const LEASE_BATCH: i64 = 64;
/// Items worked at once.
const CONCURRENCY: usize = 16;
/// How often the backlog gauge is refreshed.
const BACKLOG_SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How often the webhook inbox is swept when this replica kept nothing (another replica may have
/// kept a delivery and stopped before processing it).
const INBOX_SWEEP_EVERY: Duration = Duration::from_secs(10);
/// Deliveries processed per round.
const INBOX_BATCH: i64 = 256;
/// Delay before looking again at an item whose provider call failed transiently.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// This replica's name in leases.
    pub owner: String,
    /// Pause between looks for due work.
    pub tick: Duration,
    /// Lease length.
    pub lease: Duration,
}

impl App {
    /// Runs the engine until shutdown.
    pub async fn run_sync(self: Arc<Self>, options: SyncOptions) {
        let mut tick = tokio::time::interval(options.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sample = std::time::Instant::now() - BACKLOG_SAMPLE_EVERY;
        let mut last_sweep = std::time::Instant::now() - INBOX_SWEEP_EVERY;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.shutdown.cancelled() => return,
            }
            if last_sample.elapsed() >= BACKLOG_SAMPLE_EVERY {
                last_sample = std::time::Instant::now();
                self.sample_backlog().await;
            }
            // Before leasing, so the connections a webhook names are polled in this round.
            if self.webhook_bell.take() || last_sweep.elapsed() >= INBOX_SWEEP_EVERY {
                last_sweep = std::time::Instant::now();
                self.process_inbox().await;
            }
            if let Err(error) = self.sync_due(&options).await {
                tracing::warn!(error = %error, "sync round failed");
            }
        }
    }

    async fn process_inbox(&self) {
        loop {
            match self.store.process_webhooks(now(), INBOX_BATCH).await {
                Ok(processed) if processed.deliveries > 0 => {
                    tracing::debug!(
                        deliveries = processed.deliveries,
                        connections = processed.connections,
                        "webhook inbox processed"
                    );
                    if processed.deliveries < INBOX_BATCH as u64 {
                        return;
                    }
                }
                Ok(_) => return,
                Err(error) => {
                    // The deliveries stay in the inbox for the next sweep.
                    self.webhook_bell.ring();
                    return tracing::warn!(error = %error, "processing the webhook inbox failed");
                }
            }
        }
    }

    async fn sample_backlog(&self) {
        match self.store.sync_backlog(now()).await {
            Ok((sessions, connections)) => {
                let backlog = &crate::telemetry::metrics::metrics().sync_backlog;
                backlog.with_label_values(&["link_session"]).set(sessions);
                backlog.with_label_values(&["connection"]).set(connections);
            }
            Err(error) => tracing::warn!(error = %error, "sampling the sync backlog failed"),
        }
    }

    /// Works every item due now, once: link sessions first, then connections. Returns how many
    /// were worked. Connections are leased only once the sessions are done: a repair session that
    /// completes takes its connection's lease, which this round must not be holding meanwhile (it
    /// would wait for itself until the lease lapsed).
    pub async fn sync_due(self: &Arc<Self>, options: &SyncOptions) -> Result<usize> {
        let sessions =
            counted("link_session", self.store.lease_link_sessions(&due_now(options, &self.providers)).await?);
        let worked = sessions.len();
        futures::stream::iter(sessions)
            .for_each_concurrent(CONCURRENCY, |session| async move {
                let id = session.id;
                if let Err(error) = self.sync_link_session(session).await {
                    tracing::warn!(link_session_id = %id, error = %error, "link session sync failed");
                }
            })
            .await;
        let connections =
            counted("connection", self.store.lease_connections(&due_now(options, &self.providers)).await?);
        let worked = worked + connections.len();
        futures::stream::iter(connections)
            .for_each_concurrent(CONCURRENCY, |connection| async move {
                let id = connection.id;
                if let Err(error) = self.sync_connection(connection).await {
                    tracing::warn!(connection_id = %id, error = %error, "connection sync failed");
                }
            })
            .await;
        Ok(worked)
    }

    async fn sync_link_session(&self, session: LinkSession) -> Result<()> {
        if session.state.is_terminal() {
            return Ok(());
        }
        if session.expires_at <= now() {
            return self.expire_link_session(session).await;
        }
        let waits_on_provider = session.state == LinkSessionState::Connecting
            || (session.state == LinkSessionState::Created && session.flow == LinkFlow::Hosted);
        if !waits_on_provider {
            // Waiting for the user; look again when it would expire.
            return Ok(self.store.reschedule_link_session(session.tenant_id, session.id, session.expires_at).await?);
        }
        let provider = self.provider(&session.provider)?.clone();
        match provider.poll_link(&self.link_context(&session).await?).await {
            Ok(step) => self.apply_link_progress(session, step).await.map(drop),
            Err(error) => {
                let retry = now() + retry_delay(&error, provider.info().poll_interval);
                tracing::warn!(link_session_id = %session.id, provider = provider.info().id, error = %error, "polling link session failed");
                Ok(self.store.reschedule_link_session(session.tenant_id, session.id, retry).await?)
            }
        }
    }

    async fn sync_connection(&self, mut connection: Connection) -> Result<()> {
        if self.keep_consent_calendar(&mut connection).await? {
            return Ok(());
        }
        let provider = self.provider(&connection.provider)?.clone();
        let poll_interval = provider.info().poll_interval;
        let handle = self.open_handle(&connection).await?;
        let status = match provider.connection_status(&handle).await {
            Ok(status) => status,
            Err(error) => return self.connection_call_failed(connection, error, poll_interval).await,
        };
        if status != UpstreamStatus::Disconnected {
            self.point_webhooks(&connection, provider.as_ref(), &handle).await?;
        }
        let at = now();
        match status {
            UpstreamStatus::Importing => {
                self.store.reschedule_connection(connection.tenant_id, connection.id, Some(at + poll_interval)).await?;
            }
            UpstreamStatus::Ready => {
                let products = products_to_fetch(&connection);
                let cursor = self.store.upstream_cursor(connection.tenant_id, connection.id).await?;
                let fetched = match provider.fetch_data(&handle, connection.id, &products, cursor.as_deref()).await {
                    Ok(fetched) => fetched,
                    Err(error) => return self.connection_call_failed(connection, error, poll_interval).await,
                };
                connection.state = ConnectionState::Ready;
                connection.error = None;
                connection.updated_at = at;
                connection.last_synced_at = Some(at);
                for product in connection.products.iter_mut().filter(|p| products.contains(&p.product)) {
                    product.state = ProductState::Ready;
                    product.refreshed_at = Some(at);
                    product.last_attempted_at = Some(at);
                }
                let next_refresh = at + provider.info().refresh_interval;
                self.save_connection(
                    &connection,
                    Some(next_refresh),
                    Some((fetched, &products)),
                    ConnectionEventType::StateChanged,
                )
                .await?;
            }
            UpstreamStatus::LoginRequired => {
                connection.state = ConnectionState::LoginRequired;
                connection.error = Some(ConnectionError {
                    reason: ErrorReason::LoginRequired,
                    message: "the user must sign in to the institution again".to_owned(),
                    retryable: false,
                    user_action_required: true,
                });
                connection.updated_at = at;
                self.save_connection(&connection, None, None, ConnectionEventType::StateChanged).await?;
            }
            UpstreamStatus::Disconnected => {
                connection.state = ConnectionState::Disconnected;
                connection.error = Some(ConnectionError {
                    reason: ErrorReason::ProviderRejected,
                    message: "the provider revoked the connection".to_owned(),
                    retryable: false,
                    user_action_required: true,
                });
                connection.updated_at = at;
                self.save_connection(&connection, None, None, ConnectionEventType::StateChanged).await?;
            }
            UpstreamStatus::Failed { message, retryable } => {
                let next = retryable.then(|| at + RETRY_AFTER_FAILURE);
                self.mark_failed(&mut connection, ErrorReason::ProviderRejected, message, retryable);
                self.save_connection(&connection, next, None, ConnectionEventType::StateChanged).await?;
            }
        }
        Ok(())
    }

    /// Moves the connection's webhooks upstream to the URL linkgate gives now, when its provider
    /// is told one per connection and the link was given another (a public webhook URL set or
    /// changed since it was linked). The URL given is recorded, so each change is sent once; a
    /// failure is logged and tried again at the connection's next sync.
    async fn point_webhooks(
        &self,
        connection: &Connection,
        provider: &dyn Provider,
        handle: &SecretString,
    ) -> Result<()> {
        let WebhookTarget::PerConnection(target) = provider.webhook_target() else {
            return Ok(());
        };
        let given = self.store.upstream_webhook(connection.tenant_id, connection.id).await?;
        if given.as_deref() == target {
            return Ok(());
        }
        match provider.set_webhook_url(handle, target).await {
            Ok(()) => Ok(self.store.set_upstream_webhook(connection.tenant_id, connection.id, target).await?),
            Err(error) => {
                tracing::warn!(
                    connection_id = %connection.id, provider = %connection.provider, error = %error,
                    "pointing the connection's webhooks at linkgate failed; trying again at its next sync"
                );
                Ok(())
            }
        }
    }

    /// The consent calendar, kept before any upstream call; `true` when it handled the connection
    /// and no poll follows now. At expiry the connection needs its user again (LOGIN_REQUIRED,
    /// reason CONSENT_EXPIRED, no more polls); one that lapsed already and was made due again (a
    /// webhook, a sandbox control) is only released, so the lapse is told once. When the warning
    /// is due it goes out once (CONSENT_EXPIRING; the connection holds the expiry it warned for, so
    /// a renewed consent warns again), due again at once: its save releases the lease, so the
    /// poll runs in the next round under a lease of its own. Exactly once across replicas: only
    /// the replica holding the connection's lease gets here, and each event is stored in the same
    /// transaction as its mark.
    async fn keep_consent_calendar(&self, connection: &mut Connection) -> Result<bool> {
        let Some(expires) = connection.consent_expires_at else {
            return Ok(false);
        };
        let at = now();
        let lapsed = connection.error.as_ref().is_some_and(|e| e.reason == ErrorReason::ConsentExpired);
        if at >= expires && connection.state == ConnectionState::LoginRequired && lapsed {
            self.store.reschedule_connection(connection.tenant_id, connection.id, None).await?;
            return Ok(true);
        }
        if at >= expires {
            connection.state = ConnectionState::LoginRequired;
            connection.error = Some(ConnectionError {
                reason: ErrorReason::ConsentExpired,
                message: "the user's consent to share this connection's data lapsed; they must sign in again"
                    .to_owned(),
                retryable: false,
                user_action_required: true,
            });
            connection.updated_at = at;
            self.save_connection(connection, None, None, ConnectionEventType::ConsentExpired).await?;
            return Ok(true);
        }
        if connection.consent_warning_due(self.consent_warning).is_some_and(|due| at >= due) {
            connection.consent_warned_for = Some(expires);
            connection.updated_at = at;
            self.save_connection(connection, Some(at), None, ConnectionEventType::ConsentExpiring).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// A provider call for a connection failed: transient failures retry later without changing
    /// the connection (the caller already sees it syncing); others mark it STALE or ERROR.
    async fn connection_call_failed(
        &self,
        mut connection: Connection,
        error: ProviderError,
        poll: Duration,
    ) -> Result<()> {
        if matches!(error, ProviderError::ProductNotReady) {
            // The normal course of a first import at some providers, not a failure.
            tracing::debug!(connection_id = %connection.id, provider = %connection.provider, "product data not ready upstream");
            let next = now() + chrono::Duration::from_std(poll).unwrap_or(chrono::Duration::seconds(5));
            return Ok(self.store.reschedule_connection(connection.tenant_id, connection.id, Some(next)).await?);
        }
        tracing::warn!(connection_id = %connection.id, provider = %connection.provider, error = %error, "connection sync call failed");
        let retry_at = now() + retry_delay(&error, poll);
        if error.is_transient() {
            return Ok(self.store.reschedule_connection(connection.tenant_id, connection.id, Some(retry_at)).await?);
        }
        let reason = crate::error::Error::from_provider(&connection.provider, error).reason();
        self.mark_failed(&mut connection, reason, "the provider could not deliver the data".to_owned(), true);
        self.save_connection(&connection, Some(retry_at), None, ConnectionEventType::StateChanged).await?;
        Ok(())
    }

    /// Marks the connection's sync failed: the products it was fetching failed with it.
    fn mark_failed(&self, connection: &mut Connection, reason: ErrorReason, message: String, retryable: bool) {
        let at = now();
        let fetching = products_to_fetch(connection);
        connection.state =
            if connection.last_synced_at.is_some() { ConnectionState::Stale } else { ConnectionState::Error };
        connection.error = Some(ConnectionError { reason, message, retryable, user_action_required: false });
        connection.updated_at = at;
        for product in connection.products.iter_mut().filter(|p| fetching.contains(&p.product)) {
            product.state = ProductState::Failed;
            product.last_attempted_at = Some(at);
        }
    }
}

/// The lease on what is due now, as `options` say.
fn due_now(options: &SyncOptions, providers: &Registry) -> Lease {
    let at = now();
    let providers = providers.all().map(|p| p.info().id.to_owned()).collect();
    Lease { owner: options.owner.clone(), now: at, until: at + options.lease, limit: LEASE_BATCH, providers }
}

/// The items of one `kind` a lease took, counted, with any taken over from a lapsed lease.
fn counted<T>(kind: &str, leased: crate::store::Leased<T>) -> Vec<T> {
    let metrics = crate::telemetry::metrics::metrics();
    if leased.taken_over > 0 {
        tracing::warn!(kind, taken_over = leased.taken_over, "took over leases another replica let lapse");
        metrics.lease_takeovers.with_label_values(&[kind]).inc_by(leased.taken_over);
    }
    metrics.sync_leased.with_label_values(&[kind]).inc_by(leased.items.len() as u64);
    leased.items
}

/// The products a sync of `connection` fetches: those a caller's refresh marked REFRESHING and
/// those still waiting for their first import (or for a repair's); every linked product when
/// none is (a scheduled refresh, a webhook).
fn products_to_fetch(connection: &Connection) -> Vec<Product> {
    let waiting: Vec<Product> = connection
        .products
        .iter()
        .filter(|p| matches!(p.state, ProductState::Refreshing | ProductState::NotReady))
        .map(|p| p.product)
        .collect();
    if waiting.is_empty() { connection.products.iter().map(|p| p.product).collect() } else { waiting }
}

/// How long to wait after a failed call: what the provider asked for, else a pause that grows
/// with the provider's own rhythm.
fn retry_delay(error: &ProviderError, poll_interval: Duration) -> chrono::Duration {
    let delay = match error {
        ProviderError::RateLimited { retry_after: Some(after) }
        | ProviderError::Unavailable { retry_after: Some(after) } => *after,
        _ => (poll_interval * 4).max(Duration::from_secs(1)).min(RETRY_AFTER_FAILURE),
    };
    chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(30))
}

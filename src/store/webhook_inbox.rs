//! The webhook inbox: verified deliveries kept once per provider idempotency key, processed in
//! batches that make the connections they name due for a poll, and pruned once processed.

use super::StoreResult;
use crate::domain::Timestamp;

/// The webhook inbox. See the module documentation.
#[async_trait::async_trait]
pub trait WebhookInboxStore: Send + Sync {
    /// Keeps a verified webhook delivery. `false` when the provider's idempotency key was seen
    /// before (a retry or a replay): nothing is stored and nothing will be processed again.
    async fn record_webhook(&self, delivery: &InboxDelivery) -> StoreResult<bool>;

    /// Takes up to `limit` unprocessed deliveries, makes the live connections they name due for a
    /// poll at `now`, and marks them processed, in one transaction (replicas take disjoint rows).
    async fn process_webhooks(&self, now: Timestamp, limit: i64) -> StoreResult<WebhooksProcessed>;

    /// Deletes up to `limit` processed deliveries received before `before`. Returns how many.
    async fn prune_webhooks(&self, before: Timestamp, limit: i64) -> StoreResult<u64>;
}

/// A verified webhook delivery, as the inbox keeps it.
#[derive(Debug, Clone)]
pub struct InboxDelivery {
    /// Provider id.
    pub provider: String,
    /// The provider's idempotency key (or the body's hash when it sends none): a retried delivery
    /// has the same one.
    pub delivery_key: String,
    /// The provider's event name, for logs.
    pub event: String,
    /// SHA-256 of the provider and its id of the connection concerned, when the delivery names one
    /// (see [`crate::crypto::upstream_ref_hash`]).
    pub subject_hash: Option<Vec<u8>>,
    /// The delivery as received, sealed: a provider may name a connection by its secret token
    /// (Vumi does), and secrets are never stored in clear.
    pub body_sealed: Vec<u8>,
    /// Receipt time.
    pub received_at: Timestamp,
}

/// What one round of webhook processing did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhooksProcessed {
    /// Deliveries taken from the inbox and marked processed.
    pub deliveries: u64,
    /// Connections made due for an immediate poll.
    pub connections: u64,
}

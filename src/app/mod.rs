//! The service core, free of gRPC: what every RPC and the background engine act on. Its
//! operations are spread over the modules named after them (`link`, `connections`, `reads`,
//! `account_details`, `watch`, `sync`), each an `impl App` block.

pub mod account_details;
pub mod audit;
pub mod connection_cache;
pub mod connections;
pub mod erasure;
pub mod events;
mod exchange_claim;
pub mod feed;
pub mod limits;
pub mod link;
pub mod page_token;
pub mod reads;
pub mod repair;
pub mod sandbox;
pub mod sync;
pub mod watch;
pub mod webhooks;

use crate::app::audit::{AuditLog, AuditWriter, audit_log};
use crate::app::events::EventBus;
use crate::app::limits::{CallBudget, StreamSlots};
use crate::app::page_token::PageTokens;
use crate::app::watch::StreamBounds;
use crate::app::webhooks::{InboxBell, KeyCache};
use crate::config::LimitSettings;
use crate::crypto::Sealer;
use crate::domain::ErrorReason;
use crate::domain::TenantId;
use crate::error::{Error, Result};
use crate::providers::{Provider, Registry};
use crate::store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Who is calling, and the id that ties their request to logs and errors.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The caller's tenant; every store access is scoped by it.
    pub tenant: TenantId,
    /// The API key the call presented; none in dev mode.
    pub api_key_id: Option<uuid::Uuid>,
    /// The request id: the caller's `x-request-id`, or one minted for the call.
    pub request_id: String,
    /// The RPC's path, `/package.Service/Method`, for metrics.
    pub method: String,
    /// When the call arrived, for metrics.
    pub started: std::time::Instant,
}

/// Everything the service needs, shared by the gRPC services and the background engine.
pub struct App {
    /// The database.
    pub store: Arc<dyn Store>,
    /// Enabled providers.
    pub providers: Registry,
    /// Seals upstream secrets.
    pub sealer: Sealer,
    /// Fan-out to watchers.
    pub bus: EventBus,
    /// Page token signer.
    pub page_tokens: PageTokens,
    /// Cancelled when the replica shuts down: streams end, background work stops.
    pub shutdown: CancellationToken,
    /// The audit trail.
    pub audit: AuditLog,
    /// Each tenant's budget of expensive calls.
    pub call_budget: CallBudget,
    /// Open watch streams, each tenant's and the replica's.
    pub stream_slots: StreamSlots,
    /// What else bounds each watch stream: its stall timeout, its share of the database.
    pub stream_bounds: StreamBounds,
    /// Providers' webhook signing keys.
    pub webhook_keys: KeyCache,
    /// Rung when a webhook delivery is kept.
    pub webhook_bell: InboxBell,
    /// How long before a consent lapses its CONSENT_EXPIRING event goes out.
    pub consent_warning: std::time::Duration,
    /// How long the change feed keeps removals, and so how long a sync cursor stays good.
    pub sync_window: std::time::Duration,
    /// Per-token locks that make concurrent exchanges in this process queue behind the first.
    exchanges: Mutex<HashMap<Vec<u8>, Arc<tokio::sync::Mutex<()>>>>,
}

/// What the core is assembled from.
pub struct AppParts {
    /// The database.
    pub store: Arc<dyn Store>,
    /// Enabled providers.
    pub providers: Registry,
    /// Seals upstream secrets.
    pub sealer: Sealer,
    /// Page token signer.
    pub page_tokens: PageTokens,
    /// Per-tenant and replica limits.
    pub limits: LimitSettings,
    /// The database pool's size, which streams' reads may use only part of.
    pub database_max_connections: u32,
    /// How long before a consent lapses its CONSENT_EXPIRING event goes out.
    pub consent_warning: std::time::Duration,
    /// How long the change feed keeps removals.
    pub sync_window: std::time::Duration,
}

impl App {
    /// Assembles the core, and the audit writer the caller must run.
    pub fn new(parts: AppParts) -> (Self, AuditWriter) {
        let (audit, audit_writer) = audit_log();
        let app = Self {
            store: parts.store,
            providers: parts.providers,
            sealer: parts.sealer,
            bus: EventBus::default(),
            page_tokens: parts.page_tokens,
            shutdown: CancellationToken::new(),
            audit,
            call_budget: CallBudget::new(parts.limits.tenant_calls_per_second, parts.limits.tenant_call_burst),
            stream_slots: StreamSlots::new(parts.limits.tenant_max_streams, parts.limits.max_streams),
            stream_bounds: StreamBounds::new(&parts.limits, parts.database_max_connections),
            webhook_keys: KeyCache::default(),
            webhook_bell: InboxBell::default(),
            consent_warning: parts.consent_warning,
            sync_window: parts.sync_window,
            exchanges: Mutex::default(),
        };
        (app, audit_writer)
    }

    /// The enabled provider `id`, or PROVIDER_NOT_FOUND.
    pub fn provider(&self, id: &str) -> Result<&Arc<dyn Provider>> {
        self.providers.get(id).ok_or_else(|| {
            Error::new(ErrorReason::ProviderNotFound, format!("provider {id:?} is unknown or not enabled"))
                .with("provider", id)
        })
    }

    /// The lock that serializes exchanges of one token in this process. The store's claim makes
    /// exchange exactly-once across replicas; this lock only spares local duplicates the wait.
    pub(crate) fn exchange_lock(&self, token_hash: &[u8]) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.exchanges.lock().expect("exchange lock map poisoned");
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(token_hash.to_vec()).or_default().clone()
    }
}

//! The audit trail: who (tenant, key) created, exchanged, read, refreshed or deleted what.
//!
//! Calls hand records to a bounded queue and go on; one writer per replica stores them in
//! batches. A full queue makes callers wait rather than lose records, and shutdown drains it.

use crate::app::Caller;
use crate::domain::{AuditAction, AuditEntry, now};
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Records waiting for the writer before callers wait for it (a few MiB at most).
const QUEUE: usize = 20_000;
/// Records per write. Large, because under load the writer's task queues behind every request
/// task at each await of a write, so a write takes tens of milliseconds whatever its size:
/// batches of 1,000 capped an audited read at about 24,000 calls a second; with batches of 5,000
/// GetConnection reached 53,890 at saturation on 2 cores (README, Benchmarks).
const BATCH: usize = 5000;
/// Pause after a batch that emptied the queue, so records arriving one by one are written
/// together; a full batch is followed by the next at once.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Hands audit records to the writer.
#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<AuditEntry>,
}

/// The writer's end, run once per replica.
pub struct AuditWriter {
    queue: mpsc::Receiver<AuditEntry>,
}

/// A connected log and writer.
pub fn audit_log() -> (AuditLog, AuditWriter) {
    let (queue, receiver) = mpsc::channel(QUEUE);
    (AuditLog { queue }, AuditWriter { queue: receiver })
}

impl AuditLog {
    /// Records that `caller` did `action` to a `resource_type` with `resource_id`.
    pub async fn record(&self, caller: &Caller, action: AuditAction, resource_type: &str, resource_id: Uuid) {
        let entry = AuditEntry {
            id: 0,
            occurred_at: now(),
            tenant_id: caller.tenant,
            api_key_id: caller.api_key_id,
            action,
            resource_type: resource_type.to_owned(),
            resource_id,
            request_id: caller.request_id.clone(),
        };
        if self.queue.send(entry).await.is_err() {
            tracing::error!(request_id = %caller.request_id, "audit writer is gone; record lost");
        }
    }
}

impl AuditWriter {
    /// Stores queued records until `stop`, then drains what is left.
    pub async fn run(mut self, store: Arc<dyn Store>, stop: CancellationToken) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let stopping = tokio::select! {
                received = self.queue.recv_many(&mut batch, BATCH) => received == 0,
                _ = stop.cancelled() => true,
            };
            if stopping {
                while let Ok(entry) = self.queue.try_recv() {
                    batch.push(entry);
                }
            }
            let drained = batch.len() < BATCH;
            if !batch.is_empty() {
                Self::write(&store, &mut batch).await;
            }
            if stopping {
                return;
            }
            if drained {
                tokio::time::sleep(FLUSH_EVERY).await;
            }
        }
    }

    async fn write(store: &Arc<dyn Store>, batch: &mut Vec<AuditEntry>) {
        // Retry while the database is away: dropping audit records is not an option.
        for attempt in 1..=10u32 {
            match store.append_audit(batch).await {
                Ok(()) => {
                    batch.clear();
                    return;
                }
                Err(error) => {
                    tracing::warn!(error = %error, attempt, records = batch.len(), "storing audit records failed");
                    tokio::time::sleep(Duration::from_millis(200) * attempt).await;
                }
            }
        }
        tracing::error!(records = batch.len(), "audit records could not be stored and are lost");
        batch.clear();
    }
}

//! Fan-out of changes to this replica's watchers.
//!
//! Connection events reach watchers through one tailer per replica: it reads the event log after
//! the last id it delivered and broadcasts each event once, in log order, to every watcher.
//! Writers ring its doorbell right after they commit; a slow safety tick catches changes
//! committed by other replicas. Watchers never query the log per event: they only replay from it
//! when they start or fall behind the broadcast buffer.
//!
//! Link session changes are broadcast directly by the replica that made them.

use crate::domain::{ConnectionEvent, LinkSession};
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

/// Events buffered per watcher before it counts as lagging and replays from the store.
const BROADCAST_CAPACITY: usize = 4096;
/// Events the tailer reads per query.
const TAIL_BATCH: i64 = 500;

/// The replica's broadcast channels and the tailer's doorbell.
#[derive(Clone)]
pub struct EventBus {
    connections: broadcast::Sender<Arc<ConnectionEvent>>,
    link_sessions: broadcast::Sender<Arc<LinkSession>>,
    doorbell: Arc<Notify>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            connections: broadcast::channel(BROADCAST_CAPACITY).0,
            link_sessions: broadcast::channel(BROADCAST_CAPACITY).0,
            doorbell: Arc::new(Notify::new()),
        }
    }
}

impl EventBus {
    /// Tells the tailer that new events were committed.
    pub fn ring(&self) {
        self.doorbell.notify_one();
    }

    /// Every connection event from now on, in log order.
    pub fn subscribe_connections(&self) -> broadcast::Receiver<Arc<ConnectionEvent>> {
        self.connections.subscribe()
    }

    /// Publishes a link session's new state.
    pub fn publish_link_session(&self, session: LinkSession) {
        // No receivers is the normal case when nobody watches.
        let _ = self.link_sessions.send(Arc::new(session));
    }

    /// Every link session change from now on.
    pub fn subscribe_link_sessions(&self) -> broadcast::Receiver<Arc<LinkSession>> {
        self.link_sessions.subscribe()
    }

    /// Runs the tailer until `shutdown`: delivers every committed event once, in id order.
    pub async fn run_tailer(self, store: Arc<dyn Store>, safety_tick: Duration, shutdown: CancellationToken) {
        let mut last = loop {
            match store.last_event_id().await {
                Ok(id) => break id,
                Err(error) => {
                    tracing::warn!(error = %error, "event tailer cannot read the log yet; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(safety_tick) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
        };
        loop {
            tokio::select! {
                _ = self.doorbell.notified() => {}
                _ = tokio::time::sleep(safety_tick) => {}
                _ = shutdown.cancelled() => return,
            }
            loop {
                let batch = match store.tail_events(last, TAIL_BATCH).await {
                    Ok(batch) => batch,
                    Err(error) => {
                        tracing::warn!(error = %error, after = last, "event tailer failed to read the log");
                        break;
                    }
                };
                let full = batch.len() as i64 == TAIL_BATCH;
                for event in batch {
                    last = event.event_id;
                    let _ = self.connections.send(Arc::new(event));
                }
                if !full {
                    break;
                }
            }
        }
    }
}

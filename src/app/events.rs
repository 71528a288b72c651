//! Fan-out of changes to this replica's watchers, and to the other replicas.
//!
//! Connection events reach watchers through one tailer per replica: it reads the event log after
//! the last id it delivered and broadcasts each event once, in log order, to every watcher.
//! Writers ring the replica's sequencer right after they commit: on PostgreSQL their events wait
//! in an inbox until the sequencer moves them into the log, numbered (see the store's
//! `sequence_events`), so writers never wait on one another. The sequencer then rings the tailer
//! and the announcer, which passes the ring on to the other replicas (PostgreSQL `NOTIFY` after
//! the commit, one per burst of rings, so the write path never takes NOTIFY's global lock); each
//! tailer listens on one connection for the others' announcements. A lost listening connection,
//! or a missed announcement, costs nothing but latency: the tailer re-reads the log on every bell
//! and on a safety tick, and the sequencer looks at the inbox on the same tick, which moves the
//! events of writers that never rang (a replica that died after its commit, the command line).
//! Watchers never query the log per event: they only replay from it when they start or fall
//! behind the broadcast buffer.
//!
//! The tailer also keeps this replica's [`ConnectionCache`] current: delivering an event drops
//! the copy of its connection.
//!
//! Link session changes are broadcast directly by the replica that made them.

use crate::app::connection_cache::ConnectionCache;
use crate::domain::{ConnectionEvent, LinkSession};
use crate::store::{EventBell, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Events buffered per watcher before it counts as lagging and replays from the store.
const BROADCAST_CAPACITY: usize = 4096;
/// Events deleted per pruning statement.
const PRUNE_BATCH: i64 = 5_000;
/// How often a replica prunes the log.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Keeps the event log to `event_retention` and the change feed's tombstones to `sync_window`
/// until `shutdown`. Every replica may prune: deleting already-deleted rows is harmless, so no
/// coordination is needed.
pub async fn run_pruner(
    store: Arc<dyn Store>,
    event_retention: Duration,
    sync_window: Duration,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        prune("connection events past their retention", event_retention, |cutoff| {
            store.prune_events(cutoff, PRUNE_BATCH)
        })
        .await;
        prune("record changes past the change window", sync_window, |cutoff| store.prune_changes(cutoff, PRUNE_BATCH))
            .await;
    }
}

/// Deletes what is older than `keep`, a batch at a time.
async fn prune<F, Fut>(what: &str, keep: Duration, mut batch: F)
where
    F: FnMut(crate::domain::Timestamp) -> Fut,
    Fut: std::future::Future<Output = crate::store::StoreResult<u64>>,
{
    let Ok(keep) = chrono::Duration::from_std(keep) else { return };
    let cutoff = crate::domain::now() - keep;
    loop {
        match batch(cutoff).await {
            Ok(pruned) if pruned as i64 == PRUNE_BATCH => continue,
            Ok(pruned) => {
                if pruned > 0 {
                    tracing::info!(pruned, "pruned {what}");
                }
                return;
            }
            Err(error) => return tracing::warn!(error = %error, "pruning {what} failed"),
        }
    }
}

/// Events the tailer reads per query.
const TAIL_BATCH: i64 = 500;

/// Events the sequencer moves into the log per transaction.
const SEQUENCE_BATCH: i64 = 1000;

/// Events buffered per watcher of one connection before it counts as lagging.
const CONNECTION_CAPACITY: usize = 64;

/// The replica's broadcast channels and the tailer's doorbell.
#[derive(Clone)]
pub struct EventBus {
    /// Every event, for watchers of many connections (WatchConnections).
    connections: broadcast::Sender<Arc<ConnectionEvent>>,
    /// Each watched connection's events, for watchers of one connection (WatchConnection), so an
    /// event wakes only its own watchers rather than every watcher of the replica.
    by_connection: Arc<std::sync::Mutex<HashMap<Uuid, broadcast::Sender<Arc<ConnectionEvent>>>>>,
    link_sessions: broadcast::Sender<Arc<LinkSession>>,
    /// Rung by writers: events were committed to the inbox.
    sequencing: Arc<Notify>,
    /// Rung by the sequencer: events were added to the log.
    doorbell: Arc<Notify>,
    announcement: Arc<Notify>,
    cache: ConnectionCache,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            connections: broadcast::channel(BROADCAST_CAPACITY).0,
            by_connection: Arc::default(),
            link_sessions: broadcast::channel(BROADCAST_CAPACITY).0,
            sequencing: Arc::new(Notify::new()),
            doorbell: Arc::new(Notify::new()),
            announcement: Arc::new(Notify::new()),
            cache: ConnectionCache::default(),
        }
    }
}

impl EventBus {
    /// Tells this replica's sequencer, and through it the tailers of every replica, that new
    /// events were committed.
    pub fn ring(&self) {
        self.sequencing.notify_one();
    }

    /// Tells everyone that connection `id` changed and the change is committed: this replica's
    /// copy of it is dropped at once, so the writer's caller reads its own write, and the tailers
    /// are rung.
    pub fn committed(&self, id: Uuid) {
        self.cache.drop_copy(id);
        self.ring();
    }

    /// This replica's copies of connections, kept current by the tailer.
    pub fn connection_cache(&self) -> &ConnectionCache {
        &self.cache
    }

    /// Runs the sequencer until `shutdown`: after every ring, and on every `safety_tick`, moves
    /// what committed events wait in the inbox into the log, then rings the tailers. Rings that
    /// arrive while it moves coalesce into its next pass, so a burst of writers costs a few
    /// passes, not one each.
    pub async fn run_sequencer(self, store: Arc<dyn Store>, safety_tick: Duration, shutdown: CancellationToken) {
        loop {
            let rung = tokio::select! {
                _ = self.sequencing.notified() => true,
                _ = tokio::time::sleep(safety_tick) => false,
                _ = shutdown.cancelled() => return,
            };
            let mut moved = 0;
            loop {
                match store.sequence_events(SEQUENCE_BATCH).await {
                    Ok(batch) => {
                        moved += batch;
                        if batch < SEQUENCE_BATCH as u64 {
                            break;
                        }
                    }
                    // Left in the inbox, they are moved on the next ring or tick.
                    Err(error) => {
                        tracing::warn!(error = %error, "moving committed events into the log failed");
                        break;
                    }
                }
            }
            // A ring with nothing moved still rings on: another replica's sequencer may have moved
            // this replica's events, and where writers append to the log itself (SQLite) nothing
            // is ever moved.
            if rung || moved > 0 {
                self.doorbell.notify_one();
                self.announcement.notify_one();
            }
        }
    }

    /// Passes rings on to the other replicas until `shutdown`. Rings that arrive while an
    /// announcement is being sent coalesce into the next one.
    pub async fn run_announcer(self, store: Arc<dyn Store>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = self.announcement.notified() => {}
                _ = shutdown.cancelled() => return,
            }
            if let Err(error) = store.announce_events().await {
                // The others still catch up on their safety tick.
                tracing::warn!(error = %error, "announcing events to other replicas failed");
            }
        }
    }

    /// Every connection event from now on, in log order.
    pub fn subscribe_connections(&self) -> broadcast::Receiver<Arc<ConnectionEvent>> {
        self.connections.subscribe()
    }

    /// One connection's events from now on, in log order.
    pub fn subscribe_connection(&self, id: Uuid) -> broadcast::Receiver<Arc<ConnectionEvent>> {
        let mut channels = self.by_connection.lock().expect("connection channels poisoned");
        // Channels nobody listens to any more are swept as the map doubles: amortized, and the map
        // never holds more than twice the connections being watched.
        if channels.len() >= 1024 && channels.len().is_power_of_two() {
            channels.retain(|_, channel| channel.receiver_count() > 0);
        }
        channels.entry(id).or_insert_with(|| broadcast::channel(CONNECTION_CAPACITY).0).subscribe()
    }

    /// Sends an event to the watchers of everything and to its connection's own watchers,
    /// forgetting a connection's channel once nobody watches it.
    fn deliver(&self, event: ConnectionEvent) {
        self.cache.drop_copy(event.connection.id);
        let event = Arc::new(event);
        let mut channels = self.by_connection.lock().expect("connection channels poisoned");
        if let Some(channel) = channels.get(&event.connection.id)
            && channel.send(event.clone()).is_err()
        {
            channels.remove(&event.connection.id);
        }
        drop(channels);
        let _ = self.connections.send(event);
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
                Ok(id) => {
                    self.cache.tailer_read(safety_tick);
                    break id;
                }
                Err(error) => {
                    tracing::warn!(error = %error, "event tailer cannot read the log yet; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(safety_tick) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
        };
        let mut bell: Option<Box<dyn EventBell>> = None;
        loop {
            if bell.is_none() {
                bell = match store.subscribe_events().await {
                    Ok(subscription) => subscription,
                    Err(error) => {
                        tracing::warn!(error = %error, "cannot listen for other replicas' events; polling the log");
                        None
                    }
                };
            }
            let other_replicas = async {
                match bell.as_mut() {
                    Some(bell) => bell.rung().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.doorbell.notified() => {}
                rung = other_replicas => {
                    if let Err(error) = rung {
                        tracing::warn!(error = %error, "lost the connection listening for other replicas' events");
                        bell = None;
                    }
                }
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
                let lag = &crate::telemetry::metrics::metrics().event_delivery_lag;
                let at = crate::domain::now();
                for event in batch {
                    last = event.event_id;
                    lag.observe((at - event.occurred_at).to_std().unwrap_or_default().as_secs_f64());
                    self.deliver(event);
                }
                if !full {
                    self.cache.tailer_read(safety_tick);
                    break;
                }
            }
        }
    }
}

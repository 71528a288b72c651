//! The watch streams: replay from the event log, then live events from the replica's tailer.
//!
//! Each stream is one task that feeds a small bounded queue, which the response drains as the
//! client reads. What a stream costs is bounded whatever its client does:
//! - **Memory.** A stream holds at most its queue ([`STREAM_BUFFER`] messages), one page of the
//!   log ([`REPLAY_PAGE`] events: snapshots and replays are read page by page as the client takes
//!   them, never whole) and what HTTP/2 has encoded but may not send yet. The replica holds at
//!   most `LINKGATE_MAX_STREAMS` streams, each tenant `LINKGATE_TENANT_MAX_STREAMS`
//!   (`crate::app::limits`).
//! - **Time.** A client that takes nothing for `LINKGATE_STREAM_STALL_TIMEOUT` while messages
//!   wait for it is cut off: its queue is dropped and the stream ends with STREAM_STALLED.
//! - **The database.** A stream's store reads (replay pages, link session rechecks) take one of
//!   `LINKGATE_STREAM_DATABASE_CONNECTIONS` permits, so a storm of new streams queues behind
//!   them and leaves the rest of the pool to calls.
//!
//! The broadcast a stream listens to never waits for it: when it falls more than the broadcast
//! buffer behind it replays the gap from the store. A watcher that goes away is noticed at once
//! (the queue closes) and its task ends.

use crate::app::limits::StreamSlot;
use crate::app::{App, Caller};
use crate::config::LimitSettings;
use crate::domain::ErrorReason;
use crate::domain::{Connection, ConnectionEvent, ConnectionState, LinkSession};
use crate::error::{Error, Result};
use crate::store::{EventFilter, StoreResult};
use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio_stream::Stream;
use uuid::Uuid;

/// Messages queued per stream before its task waits for the client.
const STREAM_BUFFER: usize = 8;
/// Events read per store query, for a snapshot or a replay: what a stream holds beside its queue.
const REPLAY_PAGE: i64 = 16;
/// How often a link session watcher re-reads the session, for changes made on other replicas.
const LINK_SESSION_RECHECK: Duration = Duration::from_secs(1);

/// What bounds every stream beyond its slot: how long its client may take nothing, and how many
/// pooled database connections all streams' reads share.
pub struct StreamBounds {
    stall_timeout: Duration,
    store_reads: Semaphore,
}

impl StreamBounds {
    /// The bounds `limits` set, over a database pool of `pool_size` connections: streams take at
    /// most `stream_database_connections` of them and always leave one to calls.
    pub fn new(limits: &LimitSettings, pool_size: u32) -> Self {
        let leave_one = (pool_size as usize).saturating_sub(1).max(1);
        Self {
            stall_timeout: limits.stream_stall_timeout,
            store_reads: Semaphore::new(limits.stream_database_connections.clamp(1, leave_one)),
        }
    }
}

/// What a watch stream yields: the queue its task fills, holding the stream's slot until the
/// response is dropped (so a cut-off stream still counts until HTTP/2 lets go of it).
pub struct WatchStream<T> {
    queue: Arc<Mutex<mpsc::Receiver<Result<T>>>>,
    _slot: StreamSlot,
    /// A message was just yielded: the next poll pauses once, so the encoder sends it alone.
    yielded: bool,
}

impl<T> Stream for WatchStream<T> {
    type Item = Result<T>;

    /// One message per encoded chunk. The encoder takes every message that is ready (up to
    /// 32 KiB) into one chunk, and HTTP/2 holds a chunk it has no window for; chunks of one
    /// message leave what a client has not read in the queue, where it counts toward the stall
    /// timeout and is dropped on a cut-off, instead of in buffers nothing can take back.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if std::mem::take(&mut self.yielded) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let next = self.queue.lock().expect("stream queue poisoned").poll_recv(cx);
        self.yielded = matches!(next, Poll::Ready(Some(_)));
        next
    }
}

/// Why a stream task stopped early: the client left, was cut off, or an error was sent.
struct Stop;

/// The task's end of a stream's queue.
struct Outbox<T> {
    tx: mpsc::Sender<Result<T>>,
    /// The response's end too, to empty the queue of a client that is cut off.
    queue: Arc<Mutex<mpsc::Receiver<Result<T>>>>,
    stall_timeout: Duration,
}

/// A new stream holding `slot`: the task's outbox and the response's stream.
fn stream<T>(slot: StreamSlot, stall_timeout: Duration) -> (Outbox<T>, WatchStream<T>) {
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let queue = Arc::new(Mutex::new(rx));
    (Outbox { tx, queue: queue.clone(), stall_timeout }, WatchStream { queue, _slot: slot, yielded: false })
}

impl<T> Outbox<T> {
    /// Room for one message, once the client has taken enough; a client that takes nothing
    /// within the stall timeout is cut off.
    async fn room(&self) -> Result<mpsc::Permit<'_, Result<T>>, Stop> {
        match tokio::time::timeout(self.stall_timeout, self.tx.reserve()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_client_left)) => Err(Stop),
            Err(_stalled) => {
                self.cut_off();
                Err(Stop)
            }
        }
    }

    async fn send(&self, item: Result<T>) -> Result<(), Stop> {
        self.room().await?.send(item);
        Ok(())
    }

    /// Drops what the client never took and leaves STREAM_STALLED in its place: the memory goes
    /// now, and the client learns why when it next reads.
    fn cut_off(&self) {
        crate::telemetry::metrics::metrics().rejections.with_label_values(&["stream_stalled"]).inc();
        let mut queue = self.queue.lock().expect("stream queue poisoned");
        while queue.try_recv().is_ok() {}
        drop(queue);
        let stalled = Error::new(
            ErrorReason::StreamStalled,
            format!(
                "this watch stream's client took no message for {}; watch again with the last event id received",
                humantime::format_duration(self.stall_timeout)
            ),
        );
        let _ = self.tx.try_send(Err(stalled));
    }
}

impl App {
    /// Streams matching connection events after `after_event_id` (or, when 0, the current state
    /// of each matching connection), then live ones. With `connection_id` in the filter the
    /// stream ends after the connection's DELETED event.
    pub fn watch_connections(
        self: &Arc<Self>,
        caller: &Caller,
        filter: EventFilter,
        after_event_id: i64,
    ) -> Result<WatchStream<ConnectionEvent>> {
        let slot = self.stream_slots.acquire(caller.tenant)?;
        let (outbox, stream) = stream(slot, self.stream_bounds.stall_timeout);
        // Subscribe before reading the log, so nothing committed in between is missed.
        let live = match filter.connection_id {
            Some(id) => self.bus.subscribe_connection(id),
            None => self.bus.subscribe_connections(),
        };
        let app = self.clone();
        let caller = caller.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = app.feed_connection_events(&caller, &filter, after_event_id, live, &outbox) => {}
                _ = outbox.tx.closed() => {}
                _ = app.shutdown.cancelled() => {
                    let _ = outbox.send(Err(shutting_down())).await;
                }
            }
        });
        Ok(stream)
    }

    /// A stream's store read, holding one of the permits streams share.
    async fn stream_read<R>(&self, read: impl Future<Output = StoreResult<R>>) -> Result<R> {
        let _permit = self.stream_bounds.store_reads.acquire().await.expect("the permits are never closed");
        Ok(read.await?)
    }

    async fn feed_connection_events(
        &self,
        caller: &Caller,
        filter: &EventFilter,
        after_event_id: i64,
        mut live: broadcast::Receiver<Arc<ConnectionEvent>>,
        outbox: &Outbox<ConnectionEvent>,
    ) -> Result<(), Stop> {
        let mut told = Told::new(filter, after_event_id);
        // A fresh watch, or a cursor the pruned log can no longer replay from, starts with the
        // current state of each connection, marked as a snapshot.
        let replayable = match after_event_id {
            0 => false,
            cursor => match self.stream_read(self.store.pruned_through()).await {
                Ok(pruned_through) => cursor >= pruned_through,
                Err(error) => return outbox.send(Err(error)).await,
            },
        };
        if !replayable {
            // The state as of the newest event, read a page at a time as the client takes it;
            // replay goes on from that event. The first page is read under the same permit, so
            // in a storm of new streams each queues for the database once, not twice.
            let page = |as_of, after| self.store.current_events(caller.tenant, filter, as_of, after, REPLAY_PAGE);
            let first = self.stream_read(async {
                let as_of = self.store.last_event_id().await?;
                Ok((as_of, page(as_of, 0).await?))
            });
            let (as_of, first) = match first.await {
                Ok(first) => first,
                Err(error) => return outbox.send(Err(error)).await,
            };
            let (mut next, mut after) = (Some(first), 0);
            loop {
                let page = match next.take() {
                    Some(page) => page,
                    None => match self.stream_read(page(as_of, after)).await {
                        Ok(page) => page,
                        Err(error) => return outbox.send(Err(error)).await,
                    },
                };
                let last_page = (page.len() as i64) < REPLAY_PAGE;
                for mut event in page {
                    after = event.event_id;
                    event.snapshot = true;
                    let ends = told.sent(&event);
                    outbox.send(Ok(event)).await?;
                    if ends {
                        return Ok(());
                    }
                }
                if last_page {
                    break;
                }
            }
            told.last = told.last.max(as_of);
        }
        loop {
            // Replay what the log holds after `last`; a short page means we are caught up.
            let page =
                match self.stream_read(self.store.events_after(caller.tenant, filter, told.last, REPLAY_PAGE)).await {
                    Ok(page) => page,
                    Err(error) => return outbox.send(Err(error)).await,
                };
            let caught_up = (page.len() as i64) < REPLAY_PAGE;
            for event in page {
                if !told.wants(filter, &event.connection) {
                    told.skipped(&event);
                    continue;
                }
                let ends = told.sent(&event);
                outbox.send(Ok(event)).await?;
                if ends {
                    return Ok(());
                }
            }
            if !caught_up {
                continue;
            }
            // Live: the tailer delivers every tenant's events in log order. Room is made before
            // each wait, so a client that stopped reading is cut off even when nothing happens.
            loop {
                let room = outbox.room().await?;
                match live.recv().await {
                    Ok(event) => {
                        if event.event_id <= told.last
                            || event.connection.tenant_id != caller.tenant
                            || !told.wants(filter, &event.connection)
                        {
                            continue;
                        }
                        let event = (*event).clone();
                        let ends = told.sent(&event);
                        room.send(Ok(event));
                        if ends {
                            return Ok(());
                        }
                    }
                    // Fell behind the broadcast buffer: replay the gap from the log.
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
        }
    }

    /// Streams a link session: its current state, then each change, until a terminal state.
    pub fn watch_link_session(
        self: &Arc<Self>,
        caller: &Caller,
        session: LinkSession,
    ) -> Result<WatchStream<LinkSession>> {
        let slot = self.stream_slots.acquire(caller.tenant)?;
        let (outbox, stream) = stream(slot, self.stream_bounds.stall_timeout);
        let live = self.bus.subscribe_link_sessions();
        let app = self.clone();
        let caller = caller.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = app.feed_link_session(&caller, session, live, &outbox) => {}
                _ = outbox.tx.closed() => {}
                _ = app.shutdown.cancelled() => {
                    let _ = outbox.send(Err(shutting_down())).await;
                }
            }
        });
        Ok(stream)
    }

    async fn feed_link_session(
        &self,
        caller: &Caller,
        first: LinkSession,
        mut live: broadcast::Receiver<Arc<LinkSession>>,
        outbox: &Outbox<LinkSession>,
    ) -> Result<(), Stop> {
        let id: Uuid = first.id;
        let read = || self.stream_read(self.store.get_link_session(caller.tenant, id));
        // Re-read after subscribing: a change between the caller's read and the subscription
        // would otherwise be lost.
        let mut sent = match read().await {
            Ok(Some(current)) => current,
            Ok(None) => first,
            Err(error) => return outbox.send(Err(error)).await,
        };
        outbox.send(Ok(sent.clone())).await?;
        // The first recheck a whole interval after the read above: one at once would read the
        // store again before the changes already queued on `live`, and a later state read there
        // would end the stream without the states in between.
        let mut recheck =
            tokio::time::interval_at(tokio::time::Instant::now() + LINK_SESSION_RECHECK, LINK_SESSION_RECHECK);
        while !sent.state.is_terminal() {
            let room = outbox.room().await?;
            let next = tokio::select! {
                received = live.recv() => match received {
                    Ok(session) if session.id == id && session.tenant_id == caller.tenant => Some((*session).clone()),
                    Ok(_) => None,
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => {
                        read().await.ok().flatten()
                    }
                },
                _ = recheck.tick() => read().await.ok().flatten(),
            };
            if let Some(session) = next
                && (session.updated_at > sent.updated_at
                    || (session.updated_at == sent.updated_at && session.state != sent.state))
            {
                room.send(Ok(session.clone()));
                sent = session;
            }
        }
        Ok(())
    }
}

/// What a connection event stream has told its watcher: how far into the log it got and, on a
/// stream filtered by end user, which connections it named. An erased connection's DELETED event
/// survives as a tombstone that names no user (see `crate::app::erasure`), so such a stream
/// recognises it by the connection's id instead.
struct Told {
    /// The last event id sent or passed over.
    last: i64,
    /// The stream watches one connection and ends with its DELETED event.
    single: bool,
    /// The connections named so far, kept on streams filtered by end user only.
    connections: Option<HashSet<Uuid>>,
}

impl Told {
    fn new(filter: &EventFilter, after_event_id: i64) -> Self {
        Self {
            last: after_event_id,
            single: filter.connection_id.is_some(),
            connections: filter.external_user_id.is_some().then(HashSet::new),
        }
    }

    /// Whether the stream carries an event of `connection`: it passes the filter, or it is the
    /// DELETED state of a connection the stream named before.
    fn wants(&self, filter: &EventFilter, connection: &Connection) -> bool {
        filter.matches(connection)
            || (connection.state == ConnectionState::Deleted
                && self.connections.as_ref().is_some_and(|told| told.contains(&connection.id)))
    }

    /// Notes `event` sent; whether the stream ends with it.
    fn sent(&mut self, event: &ConnectionEvent) -> bool {
        self.skipped(event);
        if let Some(told) = &mut self.connections {
            told.insert(event.connection.id);
        }
        self.single && event.connection.state == ConnectionState::Deleted
    }

    /// Notes `event` passed over.
    fn skipped(&mut self, event: &ConnectionEvent) {
        self.last = self.last.max(event.event_id);
    }
}

fn shutting_down() -> Error {
    Error::new(ErrorReason::ShuttingDown, "this replica is shutting down; reconnect and resume with after_event_id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ConnectionEventType, TenantId};

    fn event(event_id: i64, connection: Connection) -> ConnectionEvent {
        let occurred_at = connection.updated_at;
        ConnectionEvent {
            event_id,
            kind: ConnectionEventType::StateChanged,
            connection,
            occurred_at,
            snapshot: false,
            details: Default::default(),
        }
    }

    fn connection(user: &str) -> Connection {
        let at = crate::domain::now();
        Connection {
            id: Uuid::now_v7(),
            tenant_id: TenantId(Uuid::now_v7()),
            provider: "sandbox".into(),
            institution_id: "ins_1".into(),
            institution_name: "First Sandbox Bank".into(),
            external_user_id: user.into(),
            state: ConnectionState::Ready,
            error: None,
            products: Vec::new(),
            created_at: at,
            updated_at: at,
            last_synced_at: Some(at),
            link_session_id: None,
            consent_expires_at: None,
            consent_warned_for: None,
            duplicate_of: None,
        }
    }

    #[test]
    fn a_stream_filtered_by_user_carries_the_tombstones_of_the_connections_it_named() {
        let filter = EventFilter { external_user_id: Some("user-1".into()), ..EventFilter::default() };
        let mut told = Told::new(&filter, 0);
        let (named, other) = (connection("user-1"), connection("user-1"));
        assert!(!told.wants(&filter, &named.tombstone()), "a tombstone names no user");
        assert!(told.wants(&filter, &named));
        assert!(!told.sent(&event(7, named.clone())), "a stream of many connections goes on");
        assert!(told.wants(&filter, &named.tombstone()), "the named connection's tombstone");
        assert!(!told.wants(&filter, &other.tombstone()), "never named on this stream");
        assert!(!told.wants(&filter, &connection("user-2")));
        told.skipped(&event(9, other.tombstone()));
        assert_eq!(told.last, 9, "passed over, not replayed again");
    }

    #[tokio::test]
    async fn a_client_that_takes_nothing_is_cut_off_and_told_why() {
        use tokio_stream::StreamExt;
        let slot = crate::app::limits::StreamSlots::new(1, 1).acquire(TenantId::DEV).unwrap();
        let (outbox, mut stream) = super::stream::<u32>(slot, Duration::from_millis(20));
        for n in 0..STREAM_BUFFER as u32 {
            assert!(outbox.send(Ok(n)).await.is_ok(), "room for a full queue");
        }
        assert!(outbox.send(Ok(99)).await.is_err(), "a full queue nobody takes from stalls");
        drop(outbox);
        let stalled = stream.next().await.expect("the stream ends with an error").unwrap_err();
        assert_eq!(stalled.reason(), ErrorReason::StreamStalled, "the queued messages were dropped");
        assert!(stream.next().await.is_none());
    }

    #[test]
    fn a_stream_of_one_connection_ends_with_its_tombstone() {
        let named = connection("user-1");
        let filter = EventFilter { connection_id: Some(named.id), ..EventFilter::default() };
        let mut told = Told::new(&filter, 3);
        assert!(told.connections.is_none(), "nothing to remember without a user filter");
        assert!(told.wants(&filter, &named.tombstone()));
        assert!(told.sent(&event(4, named.tombstone())));
    }
}

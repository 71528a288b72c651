//! The watch streams: replay from the event log, then live events from the replica's tailer.
//!
//! Each stream is one task that feeds a small bounded channel. A watcher that stops reading
//! fills its channel and its task waits; the broadcast it listens to never waits for it, and when
//! it falls more than the broadcast buffer behind it replays the gap from the store. A watcher
//! that goes away is noticed at once (the channel closes) and its task ends.

use crate::app::{App, Caller};
use crate::domain::ErrorReason;
use crate::domain::{Connection, ConnectionEvent, ConnectionState, LinkSession};
use crate::error::{Error, Result};
use crate::store::EventFilter;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

/// Messages buffered per stream before its task waits for the client.
const STREAM_BUFFER: usize = 32;
/// Events replayed per store query.
const REPLAY_BATCH: i64 = 500;
/// How often a link session watcher re-reads the session, for changes made on other replicas.
const LINK_SESSION_RECHECK: Duration = Duration::from_secs(1);

/// What a watch stream yields.
pub type WatchStream<T> = ReceiverStream<Result<T>>;

/// Why a stream task stopped early: the client left, or an error was sent.
struct Stop;

async fn send<T>(tx: &mpsc::Sender<Result<T>>, item: Result<T>) -> Result<(), Stop> {
    tx.send(item).await.map_err(|_| Stop)
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
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        // Subscribe before reading the log, so nothing committed in between is missed.
        let live = match filter.connection_id {
            Some(id) => self.bus.subscribe_connection(id),
            None => self.bus.subscribe_connections(),
        };
        let app = self.clone();
        let caller = caller.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                _ = app.feed_connection_events(&caller, &filter, after_event_id, live, &tx) => {}
                _ = tx.closed() => {}
                _ = app.shutdown.cancelled() => {
                    let _ = tx.send(Err(shutting_down())).await;
                }
            }
        });
        Ok(ReceiverStream::new(rx))
    }

    async fn feed_connection_events(
        &self,
        caller: &Caller,
        filter: &EventFilter,
        after_event_id: i64,
        mut live: broadcast::Receiver<Arc<ConnectionEvent>>,
        tx: &mpsc::Sender<Result<ConnectionEvent>>,
    ) -> Result<(), Stop> {
        let mut told = Told::new(filter, after_event_id);
        // A fresh watch, or a cursor the pruned log can no longer replay from, starts with the
        // current state of each connection, marked as a snapshot.
        let replayable = match after_event_id {
            0 => false,
            cursor => match self.store.pruned_through().await {
                Ok(pruned_through) => cursor >= pruned_through,
                Err(error) => return send(tx, Err(error.into())).await,
            },
        };
        if !replayable {
            match self.store.current_events(caller.tenant, filter).await {
                Ok(events) => {
                    for mut event in events {
                        event.snapshot = true;
                        let ends = told.sent(&event);
                        send(tx, Ok(event)).await?;
                        if ends {
                            return Ok(());
                        }
                    }
                }
                Err(error) => return send(tx, Err(error.into())).await,
            }
        }
        loop {
            // Replay what the log holds after `last`; an empty batch means we are caught up.
            let batch = match self.store.events_after(caller.tenant, filter, told.last, REPLAY_BATCH).await {
                Ok(batch) => batch,
                Err(error) => return send(tx, Err(error.into())).await,
            };
            let caught_up = (batch.len() as i64) < REPLAY_BATCH;
            for event in batch {
                if !told.wants(filter, &event.connection) {
                    told.skipped(&event);
                    continue;
                }
                let ends = told.sent(&event);
                send(tx, Ok(event)).await?;
                if ends {
                    return Ok(());
                }
            }
            if !caught_up {
                continue;
            }
            // Live: the tailer delivers every tenant's events in log order.
            loop {
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
                        send(tx, Ok(event)).await?;
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
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let live = self.bus.subscribe_link_sessions();
        let app = self.clone();
        let caller = caller.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                _ = app.feed_link_session(&caller, session, live, &tx) => {}
                _ = tx.closed() => {}
                _ = app.shutdown.cancelled() => {
                    let _ = tx.send(Err(shutting_down())).await;
                }
            }
        });
        Ok(ReceiverStream::new(rx))
    }

    async fn feed_link_session(
        &self,
        caller: &Caller,
        first: LinkSession,
        mut live: broadcast::Receiver<Arc<LinkSession>>,
        tx: &mpsc::Sender<Result<LinkSession>>,
    ) -> Result<(), Stop> {
        let id: Uuid = first.id;
        // Re-read after subscribing: a change between the caller's read and the subscription
        // would otherwise be lost.
        let mut sent = match self.store.get_link_session(caller.tenant, id).await {
            Ok(Some(current)) => current,
            Ok(None) => first,
            Err(error) => return send(tx, Err(error.into())).await,
        };
        send(tx, Ok(sent.clone())).await?;
        // The first recheck a whole interval after the read above: one at once would read the
        // store again before the changes already queued on `live`, and a later state read there
        // would end the stream without the states in between.
        let mut recheck =
            tokio::time::interval_at(tokio::time::Instant::now() + LINK_SESSION_RECHECK, LINK_SESSION_RECHECK);
        while !sent.state.is_terminal() {
            let next = tokio::select! {
                received = live.recv() => match received {
                    Ok(session) if session.id == id && session.tenant_id == caller.tenant => Some((*session).clone()),
                    Ok(_) => None,
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => {
                        self.store.get_link_session(caller.tenant, id).await.ok().flatten()
                    }
                },
                _ = recheck.tick() => self.store.get_link_session(caller.tenant, id).await.ok().flatten(),
            };
            if let Some(session) = next
                && (session.updated_at > sent.updated_at
                    || (session.updated_at == sent.updated_at && session.state != sent.state))
            {
                send(tx, Ok(session.clone())).await?;
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

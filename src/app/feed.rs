//! The change feed (`SyncAccountTransactions`, `SyncPortfolioTransactions`): what changed in a
//! connection's transactions since a caller's cursor, in pages of added, modified and removed.
//!
//! A caller starting from an empty cursor first reads a snapshot: the records as of the import
//! its first call found current (created by then, not removed by then), by id, each at its
//! latest state. It then replays the change log from that import on, in import order, so what
//! happened to a record during the snapshot follows it (a record removed meanwhile comes in the
//! snapshot and then as removed; one added meanwhile comes only from the log). A caller with a
//! cursor replays the log from where it stopped. Each log row is told once, so a caller never
//! gets a transaction twice as added, and refreshes writing while it pages shift nothing.
//!
//! The addition of a booked transaction and the removal of the pending one it replaced are one
//! pair in the log: the page that adds the booked one removes the pending one.
//!
//! Cursors are signed (as page tokens are) and hold the position and the time the caller's
//! read began; the log and tombstones are kept for the change window (`LINKGATE_SYNC_WINDOW`),
//! so a cursor older than it is SYNC_CURSOR_EXPIRED.

use crate::app::reads::ensure_readable;
use crate::app::{App, Caller};
use crate::domain::{AuditAction, ErrorReason, Product, Timestamp, now};
use crate::error::{Error, Result};
use crate::store::{Change, ChangeQuery, RecordKind, SnapshotQuery, StoredRecord};
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// One sync call as the API asks for it.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    /// Connection.
    pub connection_id: Uuid,
    /// Only this account's or portfolio's records.
    pub parent_id: Option<Uuid>,
    /// The caller's cursor; empty to start from the current data.
    pub cursor: String,
    /// Changes per page.
    pub page_size: usize,
}

/// One page of changes.
#[derive(Debug, Clone)]
pub struct SyncPage<T> {
    /// New records.
    pub added: Vec<T>,
    /// Changed records.
    pub modified: Vec<T>,
    /// Ids of removed records.
    pub removed: Vec<Uuid>,
    /// Where to go on from.
    pub next_cursor: String,
    /// Whether more changes wait now.
    pub has_more: bool,
}

/// What a feed cursor carries, signed.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct FeedCursor {
    /// In the snapshot, the import it is of; in the log, the import before the first unread row.
    version: i64,
    /// Where the caller is.
    at: Position,
    /// When the read that reached this cursor began (Unix seconds): the log and tombstones
    /// newer than that are kept as long as the cursor is good.
    since: i64,
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
enum Position {
    /// Reading the snapshot, after this id.
    Snapshot(Option<Uuid>),
    /// Replaying the log, after this (import, id).
    Log(Option<(i64, Uuid)>),
}

impl App {
    /// One page of the change feed of `kind` records of a connection whose `product` is readable.
    pub async fn sync_records<T: DeserializeOwned>(
        &self,
        caller: &Caller,
        product: Product,
        kind: RecordKind,
        request: SyncRequest,
    ) -> Result<SyncPage<T>> {
        let connection = self.live_connection(caller, request.connection_id).await?;
        ensure_readable(&connection, product)?;
        self.audit.record(caller, AuditAction::Read, "connection", connection.id).await;
        if let Some(parent) = request.parent_id {
            self.ensure_parent(caller, connection.id, kind, parent).await?;
        }
        let scope = format!("sync/{kind:?}/{}/{:?}", connection.id, request.parent_id);
        let started = now();
        let mut cursor = match self.page_tokens.check_as::<FeedCursor>(&scope, &request.cursor, "cursor")? {
            Some(cursor) => self.unexpired(cursor, started)?,
            None => FeedCursor {
                version: self.store.data_version(caller.tenant, connection.id).await?,
                at: Position::Snapshot(None),
                since: started.timestamp(),
            },
        };
        let mut page =
            SyncPage { added: vec![], modified: vec![], removed: vec![], next_cursor: String::new(), has_more: false };
        let mut room = request.page_size;
        if let Position::Snapshot(after) = cursor.at {
            let query = SnapshotQuery {
                tenant: caller.tenant,
                connection_id: connection.id,
                kind,
                parent_id: request.parent_id,
                version: cursor.version,
                after,
                limit: room + 1,
            };
            let mut records = self.store.record_snapshot(&query).await?;
            page.has_more = records.len() > room;
            records.truncate(room);
            room -= records.len();
            cursor.at = match (page.has_more, records.last()) {
                (true, Some(last)) => Position::Snapshot(Some(last.id)),
                _ => Position::Log(None),
            };
            page.added = records.into_iter().map(decode).collect::<Result<_>>()?;
        }
        if let Position::Log(after) = cursor.at
            && !page.has_more
        {
            let query = ChangeQuery {
                tenant: caller.tenant,
                connection_id: connection.id,
                kind,
                parent_id: request.parent_id,
                origin: cursor.version,
                after,
                limit: room + 1,
            };
            let mut rows = self.store.record_changes(&query).await?;
            page.has_more = rows.len() > room;
            rows.truncate(room);
            let reached = rows.last().map(|row| (row.version, row.id));
            for row in rows {
                match (row.change, row.record) {
                    // The pair's addition tells its removal.
                    (Change::Removed, _) if row.paired_with.is_some() => {}
                    (Change::Removed, _) => page.removed.push(row.id),
                    (Change::Added, Some(record)) => {
                        page.removed.extend(row.paired_with);
                        page.added.push(decode(record)?);
                    }
                    (Change::Modified, Some(record)) => page.modified.push(decode(record)?),
                    // Its tombstone outlived the window; the removal's own row went with it.
                    (Change::Added | Change::Modified, None) => {}
                }
            }
            cursor = match (page.has_more, reached) {
                (true, Some(_)) => FeedCursor { at: Position::Log(reached), ..cursor },
                // Current now: the next read starts after the last row read.
                _ => FeedCursor {
                    version: reached.map_or(cursor.version, |(version, _)| version),
                    at: Position::Log(None),
                    since: started.timestamp(),
                },
            };
        }
        page.next_cursor = self.page_tokens.issue_as(&scope, &cursor);
        Ok(page)
    }

    /// `cursor`, unless what it may still need was pruned.
    fn unexpired(&self, cursor: FeedCursor, at: Timestamp) -> Result<FeedCursor> {
        let window = chrono::Duration::from_std(self.sync_window).unwrap_or(chrono::Duration::MAX);
        let since = chrono::DateTime::from_timestamp(cursor.since, 0).unwrap_or_default();
        if at - since > window {
            return Err(Error::new(
                ErrorReason::SyncCursorExpired,
                "the cursor is older than the change window; sync again from an empty cursor",
            )
            .with("field", "cursor")
            .with("window", humantime::format_duration(self.sync_window).to_string()));
        }
        Ok(cursor)
    }
}

fn decode<T: DeserializeOwned>(record: StoredRecord) -> Result<T> {
    record.decode().map_err(Error::internal)
}

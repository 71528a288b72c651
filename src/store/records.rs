//! Imported data as stored rows: each account, transaction, portfolio, position, portfolio
//! transaction and statement becomes one row of `connection_records` with its kind, its parent,
//! its sort key and its body as JSON. One table and one query shape serve every data RPC, and a
//! new product needs no migration.
//!
//! [`RecordStore`] reads them, as listings and as the change feed; a connection's import is
//! compared with them as it is saved ([`ConnectionStore::save_connection`](super::ConnectionStore::save_connection),
//! see [`changes`](super::changes)), so only what changed is written and a record the provider
//! no longer serves stays as a tombstone for the change window; the connection's deletion
//! destroys them all.

use super::{Cursor, Page, PageOf, StoreResult};
use crate::domain::{
    ConnectionData, Date, Product, SealedAccountDetails, TenantId, Timestamp, Transaction, stored_enum,
};
use ring::digest;
use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

/// Reads of a connection's imported data. See the module documentation.
#[async_trait::async_trait]
pub trait RecordStore: Send + Sync {
    /// One page of a connection's imported data of one kind.
    async fn list_records(&self, query: &RecordQuery) -> StoreResult<PageOf<StoredRecord>>;

    /// Whether the connection has a live record of `kind` with `id`.
    async fn has_record(&self, tenant: TenantId, connection_id: Uuid, kind: RecordKind, id: Uuid) -> StoreResult<bool>;

    /// The import a connection's data is current with (0 before its first).
    async fn data_version(&self, tenant: TenantId, connection_id: Uuid) -> StoreResult<i64>;

    /// One page of the change feed's snapshot: the records of one kind of a connection as the
    /// reader would have had them at import `version` (created by then and not removed by
    /// then), each at its latest state, by id.
    async fn record_snapshot(&self, query: &SnapshotQuery) -> StoreResult<Vec<StoredRecord>>;

    /// One page of the change log: what imports after `query.origin` did to the records of one
    /// kind of a connection, in import order, from `query.after` on.
    async fn record_changes(&self, query: &ChangeQuery) -> StoreResult<Vec<RecordChange>>;

    /// Deletes change-log rows and tombstones older than `before` (past the change window), at
    /// most `limit` of each. Returns the larger of the two counts, so a caller goes on while
    /// either filled its batch.
    async fn prune_changes(&self, before: Timestamp, limit: i64) -> StoreResult<u64>;
}

/// A page of the change feed's snapshot to read.
#[derive(Debug, Clone)]
pub struct SnapshotQuery {
    /// Owner.
    pub tenant: TenantId,
    /// Connection.
    pub connection_id: Uuid,
    /// Kind.
    pub kind: RecordKind,
    /// Only children of this account or portfolio.
    pub parent_id: Option<Uuid>,
    /// The import the snapshot is of.
    pub version: i64,
    /// The id after which this page starts.
    pub after: Option<Uuid>,
    /// Rows to read at most.
    pub limit: usize,
}

/// A page of the change log to read. Positions are (import version, record id).
#[derive(Debug, Clone)]
pub struct ChangeQuery {
    /// Owner.
    pub tenant: TenantId,
    /// Connection.
    pub connection_id: Uuid,
    /// Kind.
    pub kind: RecordKind,
    /// Only children of this account or portfolio.
    pub parent_id: Option<Uuid>,
    /// The import the reader's copy is current with.
    pub origin: i64,
    /// The position after which this page starts; `None` from the origin.
    pub after: Option<(i64, Uuid)>,
    /// Rows to read at most.
    pub limit: usize,
}

stored_enum! {
    /// What an import did to a record, as the change log records it.
    pub enum Change {
        /// It appeared (or was served again after a removal).
        Added = "added",
        /// Its fields changed.
        Modified = "modified",
        /// The provider no longer serves it.
        Removed = "removed",
    }
}

/// One row of the change log.
#[derive(Debug, Clone)]
pub struct RecordChange {
    /// The record's id.
    pub id: Uuid,
    /// The import.
    pub version: i64,
    /// What it did.
    pub change: Change,
    /// The record at its latest state (for additions and modifications); `None` once its
    /// tombstone is pruned.
    pub record: Option<StoredRecord>,
    /// On the addition of a booked transaction: the pending one it replaced, removed by the same
    /// import and told with it. On that removal: the booked one, whose addition tells it.
    pub paired_with: Option<Uuid>,
}

/// Date bounds as stored: inclusive on both ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DateRange {
    /// Earliest day.
    pub start: Option<Date>,
    /// Latest day.
    pub end: Option<Date>,
}

stored_enum! {
    /// The kind of a stored record.
    pub enum RecordKind {
        /// domain::Account
        Account = "account",
        /// domain::Transaction
        Transaction = "transaction",
        /// domain::Portfolio
        Portfolio = "portfolio",
        /// domain::Position
        Position = "position",
        /// domain::PortfolioTransaction
        PortfolioTransaction = "portfolio_transaction",
        /// domain::Statement
        Statement = "statement",
    }
}

impl RecordKind {
    /// Whether listings run newest first (dated records) rather than by name.
    pub fn newest_first(self) -> bool {
        matches!(self, Self::Transaction | Self::PortfolioTransaction | Self::Statement)
    }

    /// The kinds of record a product delivers.
    pub fn of_product(product: Product) -> &'static [RecordKind] {
        match product {
            Product::Accounts => &[Self::Account],
            Product::Transactions => &[Self::Transaction],
            Product::Investments => &[Self::Portfolio, Self::Position, Self::PortfolioTransaction],
            Product::Statements => &[Self::Statement],
            // Sealed apart, in account_details.
            Product::AccountNumbers | Product::Identity => &[],
        }
    }
}

/// An import to store with a connection's save: what the provider served for `products`.
/// Records of kinds these products deliver and the import lacks are removed (for a transaction
/// delta, see [`TransactionDelta`](crate::domain::TransactionDelta): only the pending ones and
/// those it names removed); other kinds are left as they are.
#[derive(Debug, Clone, Copy)]
pub struct Import<'a> {
    /// The data, its account details sealed.
    pub data: &'a ConnectionData<SealedAccountDetails>,
    /// The products it was fetched for.
    pub products: &'a [Product],
    /// Where the provider's own change feed stands after this import (MoneyKit's transaction
    /// sync cursor), stored in the same transaction as the import and handed to the next fetch;
    /// `None` when there is none to resume from.
    pub cursor: Option<&'a str>,
}

/// A record ready to store.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// Kind.
    pub kind: RecordKind,
    /// Stable id.
    pub id: Uuid,
    /// Account or portfolio it belongs to.
    pub parent_id: Option<Uuid>,
    /// Order within its kind: a lowercase name, or an ISO date for dated records.
    pub sort_key: String,
    /// Date filtered on by date ranges.
    pub date: Option<Date>,
    /// The domain value as JSON, serialized once: the digest is taken over it, and only the
    /// records an import changes are written.
    pub body: Box<RawValue>,
    /// Digest of what the provider served (kind, parent, order, date and body), so an import
    /// compares with the stored copy without reading its body.
    pub digest: i64,
    /// A transaction's account, currency and amount, which a booked transaction must share with
    /// the pending one it replaces.
    pub match_key: Option<String>,
    /// Whether it is a pending transaction.
    pub pending: bool,
    /// On a booked transaction: the pending one it replaces.
    pub pending_link: Option<Uuid>,
}

/// A stored record as read back.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    /// Id.
    pub id: Uuid,
    /// Sort key (for the next page's cursor).
    pub sort_key: String,
    /// The domain value as JSON.
    pub body: serde_json::Value,
}

impl StoredRecord {
    /// Decodes the body into its domain type.
    pub fn decode<T: serde::de::DeserializeOwned>(self) -> anyhow::Result<T> {
        let id = self.id;
        serde_json::from_value(self.body).map_err(|e| anyhow::anyhow!("decoding stored record {id}: {e}"))
    }
}

/// One page of one kind of a connection's records.
#[derive(Debug, Clone)]
pub struct RecordQuery {
    /// Owner.
    pub tenant: TenantId,
    /// Connection.
    pub connection_id: Uuid,
    /// Kind.
    pub kind: RecordKind,
    /// Only children of this account or portfolio.
    pub parent_id: Option<Uuid>,
    /// Only records dated within.
    pub dates: DateRange,
    /// Page.
    pub page: Page,
}

impl RecordQuery {
    /// The cursor of the first page's start, or of the row after which this page starts.
    pub fn after(&self) -> Option<&Cursor> {
        self.page.after.as_ref()
    }
}

fn record<T: Serialize>(kind: RecordKind, id: Uuid, parent_id: Option<Uuid>, sort: SortBy, value: &T) -> NewRecord {
    let (sort_key, date) = match sort {
        SortBy::Name(name) => (name.to_lowercase(), None),
        SortBy::Date(date) => (date.to_string(), Some(date)),
    };
    let body = serde_json::value::to_raw_value(value).expect("domain records serialize");
    let digest = record_digest(kind, parent_id, &sort_key, date, body.get());
    NewRecord { kind, id, parent_id, sort_key, date, body, digest, match_key: None, pending: false, pending_link: None }
}

/// The first 8 bytes of a SHA-256 over everything an import stores of a record. The body is
/// the domain value serialized in its fields' declared order, so the same record digests the
/// same; a new version that serializes a record differently changes its digest, which the
/// import then settles by comparing bodies ([`ChangePlan::settle`](super::changes::ChangePlan::settle)),
/// so it is never reported as a change.
fn record_digest(kind: RecordKind, parent_id: Option<Uuid>, sort_key: &str, date: Option<Date>, body: &str) -> i64 {
    use crate::domain::StoredName;
    let mut context = digest::Context::new(&digest::SHA256);
    let parent = parent_id.map(|p| p.to_string()).unwrap_or_default();
    let date = date.map(|d| d.to_string()).unwrap_or_default();
    for part in [kind.name(), &parent, sort_key, &date, body] {
        context.update(part.as_bytes());
        context.update(&[0]);
    }
    let bytes: [u8; 8] = context.finish().as_ref()[..8].try_into().expect("a SHA-256 is longer than 8 bytes");
    i64::from_be_bytes(bytes)
}

fn transaction_record(t: &Transaction) -> NewRecord {
    let mut record = record(RecordKind::Transaction, t.id, Some(t.account_id), SortBy::Date(t.date), t);
    record.match_key = Some(format!("{}|{}|{}", t.account_id, t.amount.currency, t.amount.amount.normalize()));
    record.pending = t.pending;
    record.pending_link = t.pending_transaction_id;
    record
}

enum SortBy<'a> {
    Name(&'a str),
    Date(Date),
}

/// Every record of an import, ready to store (its account details are not records: see
/// [`AccountDetailStore`](super::AccountDetailStore)).
pub fn records_of<D>(data: &ConnectionData<D>) -> Vec<NewRecord> {
    let mut out = Vec::new();
    for a in &data.accounts {
        out.push(record(RecordKind::Account, a.id, None, SortBy::Name(&a.name), a));
    }
    for t in &data.transactions {
        out.push(transaction_record(t));
    }
    for p in &data.portfolios {
        out.push(record(RecordKind::Portfolio, p.id, None, SortBy::Name(&p.name), p));
    }
    for p in &data.positions {
        out.push(record(RecordKind::Position, p.id, Some(p.portfolio_id), SortBy::Name(&p.instrument.name), p));
    }
    for t in &data.portfolio_transactions {
        out.push(record(RecordKind::PortfolioTransaction, t.id, Some(t.portfolio_id), SortBy::Date(t.date), t));
    }
    for s in &data.statements {
        out.push(record(RecordKind::Statement, s.id, Some(s.account_id), SortBy::Date(s.period_start), s));
    }
    out
}

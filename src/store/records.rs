//! Imported data as stored rows: each account, transaction, portfolio, position, portfolio
//! transaction and statement becomes one row of `connection_records` with its kind, its parent,
//! its sort key and its body as JSON. One table and one query shape serve every data RPC, and a
//! new product needs no migration.
//!
//! [`RecordStore`] reads them; a connection's import replaces them as it is saved
//! ([`ConnectionStore::save_connection`](super::ConnectionStore::save_connection)), and its
//! deletion destroys them.

use super::{Cursor, Page, PageOf, StoreResult};
use crate::domain::{ConnectionData, Date, TenantId, stored_enum};
use serde::Serialize;
use uuid::Uuid;

/// Reads of a connection's imported data. See the module documentation.
#[async_trait::async_trait]
pub trait RecordStore: Send + Sync {
    /// One page of a connection's imported data of one kind.
    async fn list_records(&self, query: &RecordQuery) -> StoreResult<PageOf<StoredRecord>>;

    /// Whether the connection has a record of `kind` with `id`.
    async fn has_record(&self, tenant: TenantId, connection_id: Uuid, kind: RecordKind, id: Uuid) -> StoreResult<bool>;
}

/// Date bounds as stored: inclusive on both ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
    /// The domain value as JSON.
    pub body: serde_json::Value,
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
    NewRecord {
        kind,
        id,
        parent_id,
        sort_key,
        date,
        body: serde_json::to_value(value).expect("domain records serialize"),
    }
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
        out.push(record(RecordKind::Transaction, t.id, Some(t.account_id), SortBy::Date(t.date), t));
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

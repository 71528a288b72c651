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
    Account, ConnectionData, Date, Portfolio, PortfolioTransaction, Position, Product, SealedAccountDetails, Statement,
    TenantId, Timestamp, Transaction, stored_enum,
};
use ring::digest;
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

/// A record as an import serves it: its digest, and the domain value its stored form is built
/// from. Comparing an import needs only the digest; the body, sort key and match key are built
/// ([`to_record`](Self::to_record)) for the few records the import writes, not for the many it
/// serves unchanged.
#[derive(Debug, Clone, Copy)]
pub struct ServedRecord<'a> {
    /// Kind.
    pub kind: RecordKind,
    /// Stable id.
    pub id: Uuid,
    /// Digest of what the provider served, as [`NewRecord::digest`].
    pub digest: i64,
    value: Value<'a>,
}

/// The domain value of a served record.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Account(&'a Account),
    Transaction(&'a Transaction),
    Portfolio(&'a Portfolio),
    Position(&'a Position),
    PortfolioTransaction(&'a PortfolioTransaction),
    Statement(&'a Statement),
}

impl<'a> Value<'a> {
    fn kind(self) -> RecordKind {
        match self {
            Self::Account(_) => RecordKind::Account,
            Self::Transaction(_) => RecordKind::Transaction,
            Self::Portfolio(_) => RecordKind::Portfolio,
            Self::Position(_) => RecordKind::Position,
            Self::PortfolioTransaction(_) => RecordKind::PortfolioTransaction,
            Self::Statement(_) => RecordKind::Statement,
        }
    }

    fn id(self) -> Uuid {
        match self {
            Self::Account(a) => a.id,
            Self::Transaction(t) => t.id,
            Self::Portfolio(p) => p.id,
            Self::Position(p) => p.id,
            Self::PortfolioTransaction(t) => t.id,
            Self::Statement(s) => s.id,
        }
    }

    fn parent_id(self) -> Option<Uuid> {
        match self {
            Self::Account(_) | Self::Portfolio(_) => None,
            Self::Transaction(t) => Some(t.account_id),
            Self::Position(p) => Some(p.portfolio_id),
            Self::PortfolioTransaction(t) => Some(t.portfolio_id),
            Self::Statement(s) => Some(s.account_id),
        }
    }

    fn sort_by(self) -> SortBy<'a> {
        match self {
            Self::Account(a) => SortBy::Name(&a.name),
            Self::Portfolio(p) => SortBy::Name(&p.name),
            Self::Position(p) => SortBy::Name(&p.instrument.name),
            Self::Transaction(t) => SortBy::Date(t.date),
            Self::PortfolioTransaction(t) => SortBy::Date(t.date),
            Self::Statement(s) => SortBy::Date(s.period_start),
        }
    }

    /// Serializes the value as its stored body.
    fn write_body(self, out: &mut Vec<u8>) {
        let written = match self {
            Self::Account(a) => serde_json::to_writer(out, a),
            Self::Transaction(t) => serde_json::to_writer(out, t),
            Self::Portfolio(p) => serde_json::to_writer(out, p),
            Self::Position(p) => serde_json::to_writer(out, p),
            Self::PortfolioTransaction(t) => serde_json::to_writer(out, t),
            Self::Statement(s) => serde_json::to_writer(out, s),
        };
        written.expect("domain records serialize");
    }
}

impl<'a> ServedRecord<'a> {
    /// Digests `value`, serializing it into `scratch` (reused across records, so digesting an
    /// import allocates nothing per record).
    fn digested(value: Value<'a>, scratch: &mut Vec<u8>) -> Self {
        scratch.clear();
        value.write_body(scratch);
        let digest = record_digest(value.kind(), value.parent_id(), value.sort_by(), scratch);
        Self { kind: value.kind(), id: value.id(), digest, value }
    }

    /// The record as it is stored.
    pub fn to_record(&self) -> NewRecord {
        let value = self.value;
        let (sort_key, date) = match value.sort_by() {
            SortBy::Name(name) => (name.to_lowercase(), None),
            SortBy::Date(date) => (date.to_string(), Some(date)),
        };
        let mut body = Vec::new();
        value.write_body(&mut body);
        let body = String::from_utf8(body).expect("serde_json writes UTF-8");
        let body = RawValue::from_string(body).expect("serde_json writes JSON");
        let mut record = NewRecord {
            kind: self.kind,
            id: self.id,
            parent_id: value.parent_id(),
            sort_key,
            date,
            body,
            digest: self.digest,
            match_key: None,
            pending: false,
            pending_link: None,
        };
        if let Value::Transaction(t) = value {
            record.match_key = Some(format!("{}|{}|{}", t.account_id, t.amount.currency, t.amount.amount.normalize()));
            record.pending = t.pending;
            record.pending_link = t.pending_transaction_id;
        }
        record
    }
}

/// The first 8 bytes of a SHA-256 over everything an import stores of a record: its kind,
/// parent, sort key, date and `body`, each followed by a zero byte. The body is the domain value
/// serialized in its fields' declared order, so the same record digests the same; a new version
/// that serializes a record differently changes its digest, which the import then settles by
/// comparing bodies ([`ChangePlan::settle`](super::changes::ChangePlan::settle)), so it is never
/// reported as a change. The parts are fed as they are formatted, without building strings (but
/// a name's lowercase form, which few records have): the digest is taken over every record an
/// import serves, the cost a refresh pays per record.
fn record_digest(kind: RecordKind, parent_id: Option<Uuid>, sort: SortBy<'_>, body: &[u8]) -> i64 {
    use crate::domain::StoredName;
    let mut context = digest::Context::new(&digest::SHA256);
    let mut part = |bytes: &[u8]| {
        context.update(bytes);
        context.update(&[0]);
    };
    part(kind.name().as_bytes());
    let mut parent = [0; uuid::fmt::Hyphenated::LENGTH];
    part(parent_id.map_or(&[][..], |p| p.hyphenated().encode_lower(&mut parent).as_bytes()));
    match sort {
        SortBy::Name(name) => {
            part(name.to_lowercase().as_bytes());
            part(&[]);
        }
        SortBy::Date(date) => {
            // ISO 8601, as `Date`'s Display writes it: the sort key, then the date.
            let mut iso = [0; 16];
            let iso = iso_date(date, &mut iso);
            part(iso);
            part(iso);
        }
    }
    part(body);
    let bytes: [u8; 8] = context.finish().as_ref()[..8].try_into().expect("a SHA-256 is longer than 8 bytes");
    i64::from_be_bytes(bytes)
}

/// A date as its Display writes it (ISO 8601), formatted into `buf`.
fn iso_date(date: Date, buf: &mut [u8; 16]) -> &[u8] {
    use std::io::Write;
    let mut rest = &mut buf[..];
    write!(rest, "{date}").expect("a date's ISO 8601 form fits 16 bytes");
    let written = 16 - rest.len();
    &buf[..written]
}

enum SortBy<'a> {
    Name(&'a str),
    Date(Date),
}

/// Every record of an import, digested (its account details are not records: see
/// [`AccountDetailStore`](super::AccountDetailStore)).
pub fn served_records<D>(data: &ConnectionData<D>) -> Vec<ServedRecord<'_>> {
    let values = (data.accounts.iter().map(Value::Account))
        .chain(data.transactions.iter().map(Value::Transaction))
        .chain(data.portfolios.iter().map(Value::Portfolio))
        .chain(data.positions.iter().map(Value::Position))
        .chain(data.portfolio_transactions.iter().map(Value::PortfolioTransaction))
        .chain(data.statements.iter().map(Value::Statement));
    let mut scratch = Vec::new();
    let mut served = Vec::with_capacity(
        data.accounts.len()
            + data.transactions.len()
            + data.portfolios.len()
            + data.positions.len()
            + data.portfolio_transactions.len()
            + data.statements.len(),
    );
    served.extend(values.map(|value| ServedRecord::digested(value, &mut scratch)));
    served
}

/// Every record of an import, ready to store.
pub fn records_of<D>(data: &ConnectionData<D>) -> Vec<NewRecord> {
    served_records(data).iter().map(ServedRecord::to_record).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountType, Decimal, Money, PortfolioType, StoredName};

    /// The digest over a string built for each part, from the record as stored: what every
    /// stored digest is, so digesting in place must give the same.
    fn digest_of_built_strings(record: &NewRecord) -> i64 {
        let mut context = digest::Context::new(&digest::SHA256);
        let parent = record.parent_id.map(|p| p.to_string()).unwrap_or_default();
        let date = record.date.map(|d| d.to_string()).unwrap_or_default();
        for part in [record.kind.name(), &parent, &record.sort_key, &date, record.body.get()] {
            context.update(part.as_bytes());
            context.update(&[0]);
        }
        i64::from_be_bytes(context.finish().as_ref()[..8].try_into().unwrap())
    }

    #[test]
    fn digests_match_those_of_the_stored_strings() {
        let day = |y, m, d| Date::from_ymd_opt(y, m, d).unwrap();
        let eur = |cents| Money::new(Decimal::new(cents, 2), "EUR");
        let account = Account {
            id: Uuid::from_u128(1),
            kind: AccountType::Savings,
            // Non-ASCII, with a final sigma that lowercases by its position.
            name: "Épargne ΟΔΥΣΣΕΥΣ".to_owned(),
            mask: None,
            currency: "EUR".to_owned(),
            current: Some(eur(123_456)),
            available: None,
            limit: None,
        };
        let transaction = |n: u128, date: Date, description: &str, pending_transaction_id: Option<Uuid>| Transaction {
            id: Uuid::from_u128(n),
            account_id: account.id,
            amount: eur(-1250),
            date,
            description: description.to_owned(),
            pending: pending_transaction_id.is_none(),
            pending_transaction_id,
        };
        let data = ConnectionData::<SealedAccountDetails> {
            transactions: vec![
                transaction(2, day(2026, 1, 7), "plain", None),
                transaction(3, day(1999, 12, 31), "\"quoted\"\n\\ and 🙂", Some(Uuid::from_u128(2))),
                // Beyond four-digit years Display writes a sign.
                transaction(4, day(12_345, 6, 7), "far future", None),
            ],
            portfolios: vec![Portfolio {
                id: Uuid::from_u128(5),
                kind: PortfolioType::Brokerage,
                name: "Brokerage".to_owned(),
                value: eur(500_000),
                cash_account_id: Some(account.id),
            }],
            statements: vec![Statement {
                id: Uuid::from_u128(6),
                account_id: account.id,
                period_start: day(2025, 12, 1),
                period_end: day(2025, 12, 31),
                issued_on: day(2026, 1, 2),
                due_on: None,
                total_due: eur(8840),
                usage: None,
            }],
            accounts: vec![account.clone()],
            ..Default::default()
        };
        let records = records_of(&data);
        assert_eq!(records.len(), 6);
        for record in &records {
            assert_eq!(record.digest, digest_of_built_strings(record), "{:?} {}", record.kind, record.id);
        }
        let mut digests: Vec<i64> = records.iter().map(|r| r.digest).collect();
        digests.sort_unstable();
        digests.dedup();
        assert_eq!(digests.len(), records.len(), "each record digests apart");
    }
}

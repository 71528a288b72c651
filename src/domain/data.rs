//! The normalized financial data of a connection: accounts, transactions, portfolios, positions,
//! portfolio transactions and statements. Providers translate into these; the store keeps them;
//! the API serves them.

use super::{Date, Decimal, Money, stored_enum};
use uuid::Uuid;

/// The id linkgate gives an upstream object: a UUIDv5 of the connection, the object's kind and
/// the provider's id for it, so the same object keeps its id across refreshes while ids from
/// different connections never collide.
pub fn stable_id(connection_id: Uuid, kind: &str, upstream_id: &str) -> Uuid {
    let name = format!("{kind}/{upstream_id}");
    Uuid::new_v5(&connection_id, name.as_bytes())
}

/// How many records of one kind an import added, modified and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChangeCounts {
    /// New records (or ones the provider serves again after removing them).
    pub added: u32,
    /// Records whose fields changed.
    pub modified: u32,
    /// Records the provider no longer serves.
    pub removed: u32,
}

impl ChangeCounts {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added == 0 && self.modified == 0 && self.removed == 0
    }
}

/// What one import changed in a connection's data, per kind of record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataChanges {
    /// Accounts.
    pub accounts: ChangeCounts,
    /// Cash transactions.
    pub transactions: ChangeCounts,
    /// Portfolios.
    pub portfolios: ChangeCounts,
    /// Positions.
    pub positions: ChangeCounts,
    /// Portfolio transactions.
    pub portfolio_transactions: ChangeCounts,
    /// Statements.
    pub statements: ChangeCounts,
}

impl DataChanges {
    /// Whether the import changed nothing.
    pub fn is_empty(&self) -> bool {
        [
            self.accounts,
            self.transactions,
            self.portfolios,
            self.positions,
            self.portfolio_transactions,
            self.statements,
        ]
        .iter()
        .all(ChangeCounts::is_empty)
    }
}

stored_enum! {
    /// The kind of account.
    pub enum AccountType {
        /// Current or checking.
        Checking = "checking",
        /// Savings.
        Savings = "savings",
        /// Credit card.
        CreditCard = "credit_card",
        /// Loan or mortgage.
        Loan = "loan",
        /// A brokerage portfolio's cash.
        BrokerageCash = "brokerage_cash",
        /// Utility customer account.
        Utility = "utility",
        /// Anything else.
        Other = "other",
    }
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Account {
    /// Stable id.
    pub id: Uuid,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: AccountType,
    /// Display name.
    pub name: String,
    /// Last characters of the account number.
    pub mask: Option<String>,
    /// ISO 4217 currency.
    pub currency: String,
    /// Current balance.
    pub current: Option<Money>,
    /// Available balance.
    pub available: Option<Money>,
    /// Credit or overdraft limit.
    pub limit: Option<Money>,
}

/// A cash transaction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transaction {
    /// Stable id.
    pub id: Uuid,
    /// Account.
    pub account_id: Uuid,
    /// Signed amount.
    pub amount: Money,
    /// Booking date.
    pub date: Date,
    /// Description.
    pub description: String,
    /// Not yet booked.
    pub pending: bool,
    /// On a booked transaction, the pending one it replaced (see `store::changes` for how
    /// linkgate matches them). Left out of the stored body when unset, so bodies stored before
    /// the field existed read and digest the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_transaction_id: Option<Uuid>,
}

stored_enum! {
    /// The kind of portfolio.
    pub enum PortfolioType {
        /// Brokerage.
        Brokerage = "brokerage",
        /// Retirement or pension.
        Retirement = "retirement",
        /// Fund account.
        Fund = "fund",
        /// Anything else.
        Other = "other",
    }
}

/// A portfolio.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Portfolio {
    /// Stable id.
    pub id: Uuid,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: PortfolioType,
    /// Display name.
    pub name: String,
    /// Total value.
    pub value: Money,
    /// The account holding its cash.
    pub cash_account_id: Option<Uuid>,
}

stored_enum! {
    /// Asset class.
    pub enum AssetType {
        /// Shares.
        Equity = "equity",
        /// Exchange-traded fund.
        Etf = "etf",
        /// Mutual fund.
        Fund = "fund",
        /// Fixed income.
        Bond = "bond",
        /// Cash.
        Cash = "cash",
        /// Anything else.
        Other = "other",
    }
}

/// A tradable instrument.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Instrument {
    /// ISIN.
    pub isin: Option<String>,
    /// Ticker.
    pub ticker: Option<String>,
    /// Name.
    pub name: String,
    /// Asset class.
    pub asset_type: AssetType,
    /// Quote currency.
    pub currency: String,
    /// Market identifier code.
    pub exchange: Option<String>,
}

/// A position.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// Stable id.
    pub id: Uuid,
    /// Portfolio.
    pub portfolio_id: Uuid,
    /// Instrument.
    pub instrument: Instrument,
    /// Units held.
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// Unit price.
    pub price: Money,
    /// Quantity times price.
    pub market_value: Money,
    /// Total paid.
    pub cost_basis: Option<Money>,
}

stored_enum! {
    /// The kind of portfolio transaction.
    pub enum PortfolioTransactionType {
        /// Purchase.
        Buy = "buy",
        /// Sale.
        Sell = "sell",
        /// Dividend or coupon.
        Dividend = "dividend",
        /// Fee.
        Fee = "fee",
        /// Cash in.
        Deposit = "deposit",
        /// Cash out.
        Withdrawal = "withdrawal",
        /// Anything else.
        Other = "other",
    }
}

/// A portfolio transaction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortfolioTransaction {
    /// Stable id.
    pub id: Uuid,
    /// Portfolio.
    pub portfolio_id: Uuid,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: PortfolioTransactionType,
    /// Trade date.
    pub date: Date,
    /// Instrument, for trades and dividends.
    pub instrument: Option<Instrument>,
    /// Units traded.
    #[serde(with = "rust_decimal::serde::str_option")]
    pub quantity: Option<Decimal>,
    /// Unit price.
    pub price: Option<Money>,
    /// Signed cash effect.
    pub amount: Money,
    /// Description.
    pub description: String,
}

/// Consumption over a period.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Amount consumed.
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// Unit.
    pub unit: String,
}

/// A utility statement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Statement {
    /// Stable id.
    pub id: Uuid,
    /// Utility account.
    pub account_id: Uuid,
    /// First day billed.
    pub period_start: Date,
    /// Last day billed.
    pub period_end: Date,
    /// Issue date.
    pub issued_on: Date,
    /// Due date.
    pub due_on: Option<Date>,
    /// Amount due.
    pub total_due: Money,
    /// Consumption billed.
    pub usage: Option<Usage>,
}

/// Everything a provider delivered for a connection in one import. Empty vectors for products the
/// connection does not link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionData {
    /// Set when `transactions` is what changed since the provider's cursor rather than the whole
    /// set (see [`TransactionDelta`]); `None` for a whole import.
    pub transaction_delta: Option<TransactionDelta>,
    /// Accounts.
    pub accounts: Vec<Account>,
    /// Cash transactions.
    pub transactions: Vec<Transaction>,
    /// Portfolios.
    pub portfolios: Vec<Portfolio>,
    /// Positions.
    pub positions: Vec<Position>,
    /// Portfolio transactions.
    pub portfolio_transactions: Vec<PortfolioTransaction>,
    /// Statements.
    pub statements: Vec<Statement>,
}

/// What makes an import's transactions a delta, as a provider's change feed serves them
/// (MoneyKit's transaction sync): `ConnectionData::transactions` then holds the booked
/// transactions created or changed since the cursor and every pending transaction there is now.
/// So a stored booked transaction the delta does not mention stays, one named in `removed` goes,
/// and the pending set is complete: a stored pending transaction the delta does not serve is gone
/// (posted under a new id, or withdrawn), since feeds like MoneyKit's replace pending ones wholesale
/// and never report them removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionDelta {
    /// The transactions the provider removed since the cursor.
    pub removed: Vec<Uuid>,
}

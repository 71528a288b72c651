//! The normalized financial data of a connection: accounts, transactions, portfolios, positions,
//! portfolio transactions and statements, and the accounts' details (full numbers and owners).
//! Providers translate into these; the store keeps them; the API serves them.
//!
//! Account details are the most sensitive data linkgate holds: they travel as
//! [`AccountDetails`] from the provider to the service, which seals them before the store sees
//! them ([`SealedAccountDetails`]); their `Debug` shows counts and ids, never a number or a name.

use super::{Date, Decimal, Money, Sealed, stored_enum};
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

/// The full numbers of one account, in each form its institution serves (usually one).
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccountNumbers {
    /// The account.
    pub account_id: Uuid,
    /// US ACH numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ach: Vec<AchNumber>,
    /// Canadian EFT numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eft: Vec<EftNumber>,
    /// UK BACS numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bacs: Vec<BacsNumber>,
    /// IBAN and BIC.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub international: Vec<InternationalNumber>,
}

impl AccountNumbers {
    /// Whether no form of number is known.
    pub fn is_empty(&self) -> bool {
        self.ach.is_empty() && self.eft.is_empty() && self.bacs.is_empty() && self.international.is_empty()
    }
}

impl std::fmt::Debug for AccountNumbers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountNumbers")
            .field("account_id", &self.account_id)
            .field("ach", &self.ach.len())
            .field("eft", &self.eft.len())
            .field("bacs", &self.bacs.len())
            .field("international", &self.international.len())
            .finish()
    }
}

/// A US account's ACH numbers.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AchNumber {
    /// Account number.
    pub account_number: String,
    /// ABA routing number.
    pub routing_number: String,
    /// Routing number for wires, when the institution gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_routing_number: Option<String>,
}

/// A Canadian account's EFT numbers.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EftNumber {
    /// Account number.
    pub account_number: String,
    /// Institution number.
    pub institution_number: String,
    /// Branch (transit) number.
    pub branch_number: String,
}

/// A UK account's BACS numbers.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BacsNumber {
    /// Account number.
    pub account_number: String,
    /// Sort code, digits only.
    pub sort_code: String,
}

/// An account's IBAN and its institution's BIC.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InternationalNumber {
    /// IBAN, upper case, no spaces.
    pub iban: String,
    /// BIC, when the provider gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bic: Option<String>,
}

/// What an owner list belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnersOf {
    /// An account.
    Account(Uuid),
    /// A portfolio (brokers name the holders of portfolios).
    Portfolio(Uuid),
}

impl OwnersOf {
    /// The account's or portfolio's id.
    pub fn id(self) -> Uuid {
        match self {
            OwnersOf::Account(id) | OwnersOf::Portfolio(id) => id,
        }
    }
}

/// The owners of one account or portfolio.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccountOwners {
    /// Whose owners.
    pub of: OwnersOf,
    /// The owners, in the institution's order.
    pub owners: Vec<Owner>,
}

impl std::fmt::Debug for AccountOwners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountOwners").field("of", &self.of).field("owners", &self.owners.len()).finish()
    }
}

/// One owner, as the institution knows them.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    /// Full names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Email addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<OwnerEmail>,
    /// Phone numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phone_numbers: Vec<OwnerPhoneNumber>,
    /// Postal addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<OwnerAddress>,
}

/// An owner's email address.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OwnerEmail {
    /// The address.
    pub address: String,
    /// The owner's primary address.
    #[serde(default)]
    pub primary: bool,
}

stored_enum! {
    /// The kind of a phone number.
    pub enum PhoneNumberType {
        /// Home.
        Home = "home",
        /// Work.
        Work = "work",
        /// Mobile.
        Mobile = "mobile",
        /// Anything else.
        Other = "other",
    }
}

/// An owner's phone number.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OwnerPhoneNumber {
    /// The number.
    pub number: String,
    /// Its kind, when the institution says.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<PhoneNumberType>,
    /// The owner's primary number.
    #[serde(default)]
    pub primary: bool,
}

/// An owner's postal address; parts the institution leaves out are `None`.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OwnerAddress {
    /// Street lines, newline-separated.
    pub street: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State, province or region.
    pub region: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
    /// The owner's primary address.
    #[serde(default)]
    pub primary: bool,
}

/// The details of a connection's accounts, in clear, as a provider delivered them: full numbers
/// (PRODUCT_ACCOUNT_NUMBERS) and owners (PRODUCT_IDENTITY). Empty for products not linked.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AccountDetails {
    /// Numbers, one entry per account with any.
    pub numbers: Vec<AccountNumbers>,
    /// Owners, one entry per account or portfolio with any.
    pub owners: Vec<AccountOwners>,
}

impl std::fmt::Debug for AccountDetails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountDetails").field("numbers", &self.numbers).field("owners", &self.owners).finish()
    }
}

/// Account details as the store keeps them: each list sealed on its own, `None` when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealedAccountDetails {
    /// The sealed JSON of [`AccountDetails::numbers`].
    pub numbers: Option<Sealed>,
    /// The sealed JSON of [`AccountDetails::owners`].
    pub owners: Option<Sealed>,
}

/// Everything a provider delivered for a connection in one import. Empty vectors for products the
/// connection does not link. `D` is how the account details are held: in clear
/// ([`AccountDetails`]) from the provider to the service, sealed ([`SealedAccountDetails`]) from
/// the service to the store, so the store is never handed them in clear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionData<D = AccountDetails> {
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
    /// Full numbers and owners of the accounts.
    pub details: D,
}

impl ConnectionData {
    /// The same import with its account details sealed by `seal`, as the store keeps it.
    pub fn sealed(
        self,
        seal: impl FnOnce(&AccountDetails) -> SealedAccountDetails,
    ) -> ConnectionData<SealedAccountDetails> {
        let details = seal(&self.details);
        ConnectionData {
            transaction_delta: self.transaction_delta,
            accounts: self.accounts,
            transactions: self.transactions,
            portfolios: self.portfolios,
            positions: self.positions,
            portfolio_transactions: self.portfolio_transactions,
            statements: self.statements,
            details,
        }
    }
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

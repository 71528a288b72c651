//! Vumi's data as linkgate's: accounts, transactions, portfolios, positions and portfolio
//! transactions, with stable ids derived from Vumi's and exact decimals, and the accounts'
//! details (IBANs, and the owners Vumi names on accounts and portfolios). Vumi's enums map in one
//! table ([`Kinds`]); unknown values become `Other` and are logged once per fetch.

use super::{ID, wire};
use crate::domain::{
    Account, AccountNumbers, AccountOwners, AccountType, AssetType, ConnectionData, Date, Decimal, Instrument,
    InternationalNumber, Money, Owner, OwnersOf, Portfolio, PortfolioTransaction, PortfolioTransactionType,
    PortfolioType, Position, Transaction, stable_id,
};
use crate::providers::log_safe;
use std::collections::HashMap;
use uuid::Uuid;

/// THE table of Vumi's enums in the data (account, portfolio, asset and transaction types).
/// Unknown values map to `Other` and are counted for one warning per fetch.
struct Kinds {
    unknown: Vec<String>,
}

impl Kinds {
    fn account(&mut self, kind: &str) -> AccountType {
        match kind {
            // Broker cash, tied to a portfolio.
            "OTHER" => AccountType::BrokerageCash,
            "CASH_ACCOUNT" => AccountType::Checking,
            _ => self.unknown(kind, AccountType::Other),
        }
    }

    /// A portfolio's type and its name: Vumi names none, and its owners' names would put
    /// personal data where no scope guards it.
    fn portfolio(&mut self, kind: &str) -> (PortfolioType, &'static str) {
        match kind {
            "MIX" => (PortfolioType::Brokerage, "Mixed portfolio"),
            "STOCK_PORTFOLIO" => (PortfolioType::Brokerage, "Stock portfolio"),
            "COMPOSITE_ASSETS_PORTFOLIO" => (PortfolioType::Brokerage, "Composite portfolio"),
            "MANAGED" => (PortfolioType::Fund, "Managed portfolio"),
            _ => self.unknown(kind, (PortfolioType::Other, "Vumi portfolio")),
        }
    }

    fn asset(&mut self, kind: Option<&str>) -> AssetType {
        match kind.unwrap_or_default() {
            "STOCK" => AssetType::Equity,
            "ETF" => AssetType::Etf,
            "FUND" | "PP" => AssetType::Fund,
            "BOND" => AssetType::Bond,
            "RIGHTS" | "WARRANT" | "CFD" => AssetType::Other,
            other => self.unknown(other, AssetType::Other),
        }
    }

    fn trade(&mut self, kind: &str) -> PortfolioTransactionType {
        use PortfolioTransactionType as T;
        match kind {
            "BUY"
            | "OFF_MARKET_BUY"
            | "ISIN_CHANGE_BUY"
            | "MERGER_BUY"
            | "PRODUCT_CHANGE_BUY"
            | "INHERITANCE_OR_DONATION_TRANSFER_IN" => T::Buy,
            "SELL"
            | "OFF_MARKET_SELL"
            | "ISIN_CHANGE_SELL"
            | "MERGER_SELL"
            | "PRODUCT_CHANGE_SELL"
            | "DELISTING"
            | "INHERITANCE_OR_DONATION_TRANSFER_OUT" => T::Sell,
            "DIVIDENDS" | "SCRIP_DIVIDEND" | "COUPON" => T::Dividend,
            "COMPENSATION" | "EXPIRATION" | "RIGHTS_EXCLUSION" | "RIGHTS_ISSUE" | "RIGHTS_CONVERSION" => T::Other,
            _ => self.unknown(kind, T::Other),
        }
    }

    fn unknown<T>(&mut self, raw: &str, mapped: T) -> T {
        self.unknown.push(log_safe(raw).to_owned());
        mapped
    }
}

/// A Vumi date (`YYYY-MM-DD`, or a datetime starting with one).
fn date(text: &str) -> Option<Date> {
    text.get(..10)?.parse().ok()
}

/// The owners Vumi names, one per name; `None` when it names none.
fn owners(of: OwnersOf, names: &[String]) -> Option<AccountOwners> {
    let owners: Vec<Owner> = names
        .iter()
        .filter(|name| !name.trim().is_empty())
        .map(|name| Owner { names: vec![name.trim().to_owned()], ..Owner::default() })
        .collect();
    (!owners.is_empty()).then_some(AccountOwners { of, owners })
}

fn money(amount: Option<Decimal>, currency: &str) -> Money {
    Money::new(amount.unwrap_or_default(), &currency.to_ascii_uppercase())
}

/// What V9 says about an instrument, in linkgate's terms.
fn instrument(kinds: &mut Kinds, investment: &wire::Investment) -> Instrument {
    Instrument {
        isin: investment.isin.clone(),
        ticker: None,
        name: investment.name.clone(),
        asset_type: kinds.asset(investment.asset_type.as_deref()),
        currency: investment.currency.to_ascii_uppercase(),
        exchange: investment.exchange.clone(),
    }
}

/// Everything fetched, as linkgate's data. Records without an amount or a readable date are
/// left out (and counted in the log) rather than invented.
pub(super) struct Fetched {
    pub(super) accounts: Vec<wire::Account>,
    pub(super) account_transactions: Vec<wire::AccountTransaction>,
    pub(super) portfolios: Vec<wire::Portfolio>,
    pub(super) portfolio_transactions: Vec<wire::PortfolioTransaction>,
    pub(super) positions: Vec<wire::Position>,
    pub(super) investments: Vec<wire::Investment>,
}

pub(super) fn connection_data(fetched: Fetched, connection_id: Uuid) -> ConnectionData {
    let id = |kind: &str, upstream: &str| stable_id(connection_id, kind, upstream);
    let mut kinds = Kinds { unknown: Vec::new() };
    let mut incomplete = 0usize;
    let mut data: ConnectionData = ConnectionData::default();
    let mut cash_of_portfolio = HashMap::new();
    for account in &fetched.accounts {
        if let Some(portfolio) = &account.portfolio {
            cash_of_portfolio.insert(portfolio.clone(), id("account", &account.id));
        }
        let iban: String = account.iban.as_deref().unwrap_or_default().chars().filter(|c| !c.is_whitespace()).collect();
        let digits = iban.chars().count();
        let mask: String = iban.chars().skip(digits.saturating_sub(4)).collect();
        let currency = account.currency.to_ascii_uppercase();
        let account_id = id("account", &account.id);
        if !iban.is_empty() {
            data.details.numbers.push(AccountNumbers {
                account_id,
                international: vec![InternationalNumber { iban: iban.to_ascii_uppercase(), bic: None }],
                ..AccountNumbers::default()
            });
        }
        data.details.owners.extend(owners(OwnersOf::Account(account_id), &account.owners));
        data.accounts.push(Account {
            id: account_id,
            kind: kinds.account(&account.kind),
            name: account.alias.clone().filter(|a| !a.is_empty()).unwrap_or_else(|| "Vumi account".to_owned()),
            mask: (!mask.is_empty()).then_some(mask),
            current: account.balance.map(|b| Money::new(b, &currency)),
            currency,
            available: None,
            limit: None,
        });
    }
    for transaction in fetched.account_transactions {
        let (Some(amount), Some(date)) = (transaction.amount, date(&transaction.date)) else {
            incomplete += 1;
            continue;
        };
        data.transactions.push(Transaction {
            id: id("transaction", &transaction.id),
            account_id: id("account", &transaction.account),
            amount: money(Some(amount), &transaction.currency),
            date,
            description: transaction.description.or(transaction.kind).unwrap_or_default(),
            pending: false,
            pending_transaction_id: None,
        });
    }
    for portfolio in &fetched.portfolios {
        let (kind, name) = kinds.portfolio(&portfolio.kind);
        let portfolio_id = id("portfolio", &portfolio.id);
        data.details.owners.extend(owners(OwnersOf::Portfolio(portfolio_id), &portfolio.owners));
        data.portfolios.push(Portfolio {
            id: portfolio_id,
            kind,
            name: name.to_owned(),
            value: money(portfolio.balance, &portfolio.currency),
            cash_account_id: cash_of_portfolio.get(&portfolio.id).copied(),
        });
    }
    let instruments: HashMap<&str, Instrument> =
        fetched.investments.iter().map(|i| (i.id.as_str(), instrument(&mut kinds, i))).collect();
    for position in fetched.positions {
        let Some(quantity) = position.titles else {
            incomplete += 1;
            continue;
        };
        let instrument = instruments.get(position.investment.as_str()).cloned().unwrap_or_else(|| Instrument {
            isin: position.isin.clone(),
            ticker: None,
            name: position.name.clone(),
            asset_type: kinds.asset(position.asset_type.as_deref()),
            currency: position.local_currency.as_deref().unwrap_or(&position.currency).to_ascii_uppercase(),
            exchange: position.exchange.clone(),
        });
        data.positions.push(Position {
            id: id("position", &format!("{}/{}", position.portfolio, position.investment)),
            portfolio_id: id("portfolio", &position.portfolio),
            instrument,
            quantity,
            price: money(position.price, &position.currency),
            market_value: money(position.amount, &position.currency),
            cost_basis: None,
        });
    }
    for trade in fetched.portfolio_transactions {
        let (Some(amount), Some(date)) = (trade.amount, date(&trade.date)) else {
            incomplete += 1;
            continue;
        };
        data.portfolio_transactions.push(PortfolioTransaction {
            id: id("portfolio_transaction", &trade.id),
            portfolio_id: id("portfolio", &trade.portfolio),
            kind: kinds.trade(&trade.kind),
            date,
            instrument: trade.investment.as_deref().and_then(|i| instruments.get(i)).cloned(),
            quantity: trade.titles,
            price: trade.price.map(|p| money(Some(p), &trade.currency)),
            amount: money(Some(amount), &trade.currency),
            description: trade.kind.clone(),
        });
    }
    if !kinds.unknown.is_empty() {
        tracing::warn!(provider = ID, %connection_id, values = ?kinds.unknown, "unknown Vumi types; mapped to other");
    }
    if incomplete > 0 {
        tracing::warn!(provider = ID, %connection_id, incomplete, "Vumi records without an amount or a date were left out");
    }
    data
}

//! Deterministic data of sandbox connections: the same seed and creation date always yield the
//! same accounts, transactions, portfolios, positions and statements, with upstream-style ids,
//! and the bank's account numbers and owners (fixed fictional values).

use super::{BANK, BROKER, UTILITY};
use crate::domain::{
    Account, AccountDetails, AccountNumbers, AccountOwners, AccountType, AchNumber, AssetType, BacsNumber,
    ConnectionData, Date, Decimal, EftNumber, Instrument, InternationalNumber, Money, Owner, OwnerAddress, OwnerEmail,
    OwnerPhoneNumber, OwnersOf, PhoneNumberType, Portfolio, PortfolioTransaction, PortfolioTransactionType,
    PortfolioType, Position, Product, Statement, Transaction, Usage, stable_id,
};
use chrono::{Datelike, Days, Months};
use uuid::Uuid;

/// The currency of every sandbox account.
pub(super) const CURRENCY: &str = "EUR";

/// SplitMix64: tiny, fast and fully determined by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `low..=high`.
    fn between(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next() % (high - low + 1) as u64) as i64
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

fn cents(value: i64) -> Money {
    Money::new(Decimal::new(value, 2), CURRENCY)
}

fn account(connection_id: Uuid, upstream_id: &str, kind: AccountType, name: &str, rng: &mut Rng) -> Account {
    let balance = match kind {
        AccountType::CreditCard => -rng.between(5_000, 150_000),
        _ => rng.between(10_000, 2_500_000),
    };
    Account {
        id: stable_id(connection_id, "account", upstream_id),
        kind,
        name: name.to_owned(),
        mask: Some(format!("{:04}", rng.between(0, 9_999))),
        currency: CURRENCY.to_owned(),
        current: Some(cents(balance)),
        available: (kind != AccountType::Utility).then(|| cents(balance.max(0))),
        limit: None,
    }
}

/// Everything the products of a connection at `institution_id` deliver.
pub fn generate(
    institution_id: &str,
    seed: u64,
    created_on: Date,
    connection_id: Uuid,
    products: &[Product],
) -> ConnectionData {
    let mut rng = Rng(seed);
    let mut data = ConnectionData::default();
    let wants = |product| products.contains(&product);
    match institution_id {
        BANK => {
            let checking = account(connection_id, "acc-checking", AccountType::Checking, "Everyday Checking", &mut rng);
            let savings = account(connection_id, "acc-savings", AccountType::Savings, "Rainy Day Savings", &mut rng);
            if wants(Product::Transactions) {
                data.transactions = bank_transactions(connection_id, checking.id, savings.id, created_on, &mut rng);
            }
            data.details = bank_details(&checking, &savings, wants(Product::AccountNumbers), wants(Product::Identity));
            if wants(Product::Accounts) {
                data.accounts = vec![checking, savings];
            }
        }
        BROKER => {
            let cash = account(connection_id, "acc-broker-cash", AccountType::BrokerageCash, "Broker Cash", &mut rng);
            if wants(Product::Investments) {
                add_portfolio(&mut data, connection_id, cash.id, created_on, &mut rng);
            }
            if wants(Product::Accounts) {
                data.accounts = vec![cash];
            }
        }
        UTILITY => {
            let home = account(connection_id, "acc-electricity", AccountType::Utility, "Home Electricity", &mut rng);
            if wants(Product::Statements) {
                data.statements = statements(connection_id, home.id, created_on, &mut rng);
            }
            if wants(Product::Accounts) {
                data.accounts = vec![home];
            }
        }
        _ => {}
    }
    data
}

fn bank_transactions(
    connection_id: Uuid,
    checking: Uuid,
    savings: Uuid,
    today: Date,
    rng: &mut Rng,
) -> Vec<Transaction> {
    const MERCHANTS: &[&str] =
        &["Mercadona", "Renfe", "Cafe Central", "Amazon EU", "Farmacia Sol", "Cine Ideal", "Gasolinera Norte"];
    let mut transactions = Vec::new();
    for n in 0..60u64 {
        let date = today - Days::new(n * 3 / 2);
        let (description, amount) = if n % 15 == 0 {
            ("Salary ACME S.L.".to_owned(), rng.between(180_000, 260_000))
        } else {
            (rng.pick(MERCHANTS).to_string(), -rng.between(150, 12_000))
        };
        transactions.push(Transaction {
            id: stable_id(connection_id, "transaction", &format!("txn-chk-{n}")),
            account_id: checking,
            amount: cents(amount),
            date,
            description,
            pending: n < 2,
            pending_transaction_id: None,
        });
    }
    for n in 0..6u64 {
        transactions.push(Transaction {
            id: stable_id(connection_id, "transaction", &format!("txn-sav-{n}")),
            account_id: savings,
            amount: cents(if n % 2 == 0 { rng.between(5_000, 50_000) } else { rng.between(100, 900) }),
            date: today - Days::new(n * 15 + 1),
            description: if n % 2 == 0 { "Transfer from checking" } else { "Interest" }.to_owned(),
            pending: false,
            pending_transaction_id: None,
        });
    }
    transactions
}

/// The bank's account numbers and owners. Every form of number is served (ACH and IBAN for
/// checking, BACS and EFT for savings) so callers can exercise each; each number ends in its
/// account's mask. Savings is held jointly.
fn bank_details(checking: &Account, savings: &Account, numbers: bool, owners: bool) -> AccountDetails {
    let mask = |account: &Account| account.mask.clone().unwrap_or_default();
    let mut details = AccountDetails::default();
    if numbers {
        details.numbers = vec![
            AccountNumbers {
                account_id: checking.id,
                ach: vec![AchNumber {
                    account_number: format!("00004821{}", mask(checking)),
                    routing_number: "110000000".to_owned(),
                    wire_routing_number: Some("026009593".to_owned()),
                }],
                international: vec![InternationalNumber {
                    iban: iban("ES", &format!("2100041845020000{}", mask(checking))),
                    bic: Some("SBXBESMMXXX".to_owned()),
                }],
                ..AccountNumbers::default()
            },
            AccountNumbers {
                account_id: savings.id,
                bacs: vec![BacsNumber {
                    account_number: format!("3192{}", mask(savings)),
                    sort_code: "601613".to_owned(),
                }],
                eft: vec![EftNumber {
                    account_number: format!("00781{}", mask(savings)),
                    institution_number: "003".to_owned(),
                    branch_number: "00011".to_owned(),
                }],
                ..AccountNumbers::default()
            },
        ];
    }
    if owners {
        let alex = Owner {
            names: vec!["Alex Rivera".to_owned()],
            emails: vec![OwnerEmail { address: "alex.rivera@example.com".to_owned(), primary: true }],
            phone_numbers: vec![OwnerPhoneNumber {
                number: "+34600000101".to_owned(),
                kind: Some(PhoneNumberType::Mobile),
                primary: true,
            }],
            addresses: vec![OwnerAddress {
                street: Some("Calle Mayor 1".to_owned()),
                city: Some("Madrid".to_owned()),
                region: Some("Madrid".to_owned()),
                postal_code: Some("28013".to_owned()),
                country: Some("ES".to_owned()),
                primary: true,
            }],
        };
        let sam = Owner {
            names: vec!["Sam Rivera".to_owned()],
            emails: vec![OwnerEmail { address: "sam.rivera@example.com".to_owned(), primary: true }],
            phone_numbers: vec![OwnerPhoneNumber {
                number: "+34910000102".to_owned(),
                kind: Some(PhoneNumberType::Home),
                primary: true,
            }],
            addresses: alex.addresses.clone(),
        };
        details.owners = vec![
            AccountOwners { of: OwnersOf::Account(checking.id), owners: vec![alex.clone()] },
            AccountOwners { of: OwnersOf::Account(savings.id), owners: vec![alex, sam] },
        ];
    }
    details
}

/// An IBAN of `country` for `bban`, with its ISO 7064 check digits.
fn iban(country: &str, bban: &str) -> String {
    let rearranged = format!("{bban}{country}00");
    let remainder = rearranged
        .chars()
        .filter_map(|c| c.to_digit(36))
        .flat_map(|value| if value > 9 { vec![value / 10, value % 10] } else { vec![value] })
        .fold(0, |remainder, digit| (remainder * 10 + digit) % 97);
    format!("{country}{:02}{bban}", 98 - remainder)
}

fn instruments() -> Vec<Instrument> {
    let instrument = |isin: &str, ticker: &str, name: &str, asset_type, exchange: &str| Instrument {
        isin: Some(isin.to_owned()),
        ticker: Some(ticker.to_owned()),
        name: name.to_owned(),
        asset_type,
        currency: CURRENCY.to_owned(),
        exchange: Some(exchange.to_owned()),
    };
    vec![
        instrument("ES0113900J37", "SAN", "Banco Santander", AssetType::Equity, "XMAD"),
        instrument("ES0144580Y14", "IBE", "Iberdrola", AssetType::Equity, "XMAD"),
        instrument("ES0148396007", "ITX", "Industria de Diseno Textil", AssetType::Equity, "XMAD"),
        instrument("IE00B4L5Y983", "EUNL", "iShares Core MSCI World UCITS ETF", AssetType::Etf, "XETR"),
        instrument("IE00B3RBWM25", "VWRL", "Vanguard FTSE All-World UCITS ETF", AssetType::Etf, "XAMS"),
    ]
}

fn add_portfolio(data: &mut ConnectionData, connection_id: Uuid, cash_account: Uuid, today: Date, rng: &mut Rng) {
    let portfolio_id = stable_id(connection_id, "portfolio", "pf-main");
    let mut total = Decimal::ZERO;
    for (n, instrument) in instruments().into_iter().enumerate() {
        let quantity = Decimal::new(rng.between(1_000, 250_000), 3);
        let price = Decimal::new(rng.between(300, 15_000), 2);
        let market_value = (quantity * price).round_dp(2);
        let cost_basis = (market_value * Decimal::new(rng.between(70, 120), 2)).round_dp(2);
        total += market_value;
        let upstream_id = format!("pos-{n}");
        let ticker = instrument.ticker.clone().unwrap_or_default();
        for trade in 0..4u64 {
            let trade_quantity = Decimal::new(rng.between(1_000, 50_000), 3);
            let kind = if trade == 3 { PortfolioTransactionType::Dividend } else { PortfolioTransactionType::Buy };
            let gross = (trade_quantity * price).round_dp(2);
            let buying = kind == PortfolioTransactionType::Buy;
            data.portfolio_transactions.push(PortfolioTransaction {
                id: stable_id(connection_id, "portfolio_transaction", &format!("ptx-{n}-{trade}")),
                portfolio_id,
                kind,
                date: today - Days::new(n as u64 * 7 + trade * 29 + 1),
                instrument: Some(instrument.clone()),
                quantity: buying.then_some(trade_quantity),
                price: buying.then(|| Money::new(price, CURRENCY)),
                amount: Money::new(if buying { -gross } else { Decimal::new(rng.between(500, 9_000), 2) }, CURRENCY),
                description: format!("{} {ticker}", if buying { "Buy" } else { "Dividend" }),
            });
        }
        data.positions.push(Position {
            id: stable_id(connection_id, "position", &upstream_id),
            portfolio_id,
            instrument,
            quantity,
            price: Money::new(price, CURRENCY),
            market_value: Money::new(market_value, CURRENCY),
            cost_basis: Some(Money::new(cost_basis, CURRENCY)),
        });
    }
    data.portfolio_transactions.push(PortfolioTransaction {
        id: stable_id(connection_id, "portfolio_transaction", "ptx-fee"),
        portfolio_id,
        kind: PortfolioTransactionType::Fee,
        date: today - Days::new(30),
        instrument: None,
        quantity: None,
        price: None,
        amount: cents(-rng.between(100, 1_500)),
        description: "Custody fee".to_owned(),
    });
    data.portfolios.push(Portfolio {
        id: portfolio_id,
        kind: PortfolioType::Brokerage,
        name: "Sandbox Growth Portfolio".to_owned(),
        value: Money::new(total, CURRENCY),
        cash_account_id: Some(cash_account),
    });
}

fn statements(connection_id: Uuid, account_id: Uuid, today: Date, rng: &mut Rng) -> Vec<Statement> {
    let this_month = today.with_day(1).unwrap_or(today);
    (1..=12u32)
        .map(|n| {
            let period_start = this_month - Months::new(n);
            let period_end = this_month - Months::new(n - 1) - Days::new(1);
            let kwh = rng.between(1_500, 4_500);
            Statement {
                id: stable_id(connection_id, "statement", &format!("stmt-{period_start}")),
                account_id,
                period_start,
                period_end,
                issued_on: period_end + Days::new(3),
                due_on: Some(period_end + Days::new(20)),
                total_due: cents(kwh * 19 + 1_200),
                usage: Some(Usage { quantity: Decimal::new(kwh, 1), unit: "kWh".to_owned() }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_yields_the_same_data_and_another_seed_differs() {
        let day = Date::from_ymd_opt(2026, 3, 15).unwrap();
        let id = Uuid::now_v7();
        let all = [Product::Accounts, Product::Transactions];
        assert_eq!(generate(BANK, 7, day, id, &all), generate(BANK, 7, day, id, &all));
        assert_ne!(generate(BANK, 7, day, id, &all), generate(BANK, 8, day, id, &all));
    }

    #[test]
    fn the_bank_serves_numbers_ending_in_each_mask_and_owners_only_when_linked() {
        let day = Date::from_ymd_opt(2026, 3, 15).unwrap();
        let data = generate(BANK, 7, day, Uuid::now_v7(), &[Product::Accounts, Product::AccountNumbers]);
        assert!(data.details.owners.is_empty(), "identity not linked");
        let checking = &data.details.numbers[0];
        let mask = data.accounts[0].mask.clone().unwrap();
        assert!(checking.ach[0].account_number.ends_with(&mask));
        assert!(checking.international[0].iban.ends_with(&mask));
        let owned = generate(BANK, 7, day, Uuid::now_v7(), &[Product::Identity]);
        assert!(owned.details.numbers.is_empty() && owned.accounts.is_empty());
        assert_eq!(owned.details.owners[1].owners.len(), 2, "savings is held jointly");
    }

    #[test]
    fn ibans_carry_valid_check_digits() {
        // ISO 13616's example, and one the sandbox issues, both verified by mod 97 = 1.
        assert_eq!(iban("GB", "WEST12345698765432"), "GB82WEST12345698765432");
        let issued = iban("ES", "21000418450200051332");
        assert_eq!(issued, "ES9121000418450200051332");
    }

    #[test]
    fn products_not_linked_are_not_delivered() {
        let day = Date::from_ymd_opt(2026, 3, 15).unwrap();
        let data = generate(BROKER, 1, day, Uuid::now_v7(), &[Product::Investments]);
        assert!(data.accounts.is_empty());
        assert_eq!(data.portfolios.len(), 1);
        assert_eq!(data.positions.len(), 5);
        let value: Decimal = data.positions.iter().map(|p| p.market_value.amount).sum();
        assert_eq!(data.portfolios[0].value.amount, value, "portfolio value is the sum of its positions");
    }

    #[test]
    fn statements_cover_twelve_consecutive_months() {
        let day = Date::from_ymd_opt(2026, 3, 15).unwrap();
        let data = generate(UTILITY, 1, day, Uuid::now_v7(), &[Product::Statements]);
        assert_eq!(data.statements.len(), 12);
        for pair in data.statements.windows(2) {
            assert_eq!(pair[1].period_end + Days::new(1), pair[0].period_start);
        }
    }
}

//! MoneyKit's API on the wire (reference: docs/providers/moneykit.md, schema `2023-02-18` with the
//! 2025 additions), field names exact. Requests borrow; answers own. Every answer field but the
//! ids and `state` is optional, as MoneyKit's schema grew over time. Types that carry a secret
//! (tokens) derive no `Debug`. Money is exact: balances are JSON numbers and everything else
//! decimal strings, both read from their raw text, never through `f64`.

use crate::domain::{Date, Decimal};
use crate::providers::json::{exact_decimal, required_decimal};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// M1 `POST /auth/token`'s answer (201). Secret.
#[derive(Deserialize)]
pub struct AccessToken {
    /// The bearer token.
    pub access_token: String,
    /// Lifetime in seconds (about 3600).
    pub expires_in: u64,
}

/// M4 `POST /link-session`.
#[derive(Serialize)]
pub struct CreateLinkSession<'a> {
    /// The end user, as the caller names them.
    pub customer_user: CustomerUser<'a>,
    /// Where Connect returns the user after an OAuth institution; required by MoneyKit.
    pub redirect_uri: &'a str,
    /// Skips Connect's institution picker (MoneyKit ignores it with `existing_link_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub institution_id: Option<&'a str>,
    /// Reconnects this existing link instead of making a new one (a repair). Secret: the link id
    /// is the connection's handle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing_link_id: Option<&'a str>,
    /// Where MoneyKit delivers the link's webhooks (on a reconnect, left out removes the link's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<&'a str>,
    /// Which products to link, and that they are fetched at once.
    pub settings: LinkSessionSettings,
}

/// `customer_user`.
#[derive(Serialize)]
pub struct CustomerUser<'a> {
    /// The caller's id for the user.
    pub id: &'a str,
}

/// `settings` of M4.
#[derive(Serialize)]
pub struct LinkSessionSettings {
    /// Per product (`ProductsSettings`: `account_numbers`, `identity`, `transactions`,
    /// `investments`; accounts come with every link): `{required, prefetch}`.
    pub products: BTreeMap<&'static str, ProductSettings>,
}

/// One product's link settings.
#[derive(Serialize)]
pub struct ProductSettings {
    /// The user must grant it.
    pub required: bool,
    /// Fetch it right after linking, so the first import needs no refresh call.
    pub prefetch: bool,
}

/// M4's answer (201).
#[derive(Deserialize)]
pub struct LinkSessionCreated {
    /// What Connect is opened with.
    pub link_session_token: String,
}

/// M5 `POST /link-session/exchange-token`. Secret.
#[derive(Serialize)]
pub struct ExchangeToken<'a> {
    /// Connect's single-use token.
    pub exchangeable_token: &'a str,
}

/// M5's answer (201). `link_id` at the top level is deprecated; `link.link_id` is read.
#[derive(Deserialize)]
pub struct Exchanged {
    /// The new link.
    pub link: Link,
}

/// `LinkCommon`: a link and its products.
#[derive(Deserialize)]
pub struct Link {
    /// `mk_…`; the permanent handle.
    pub link_id: String,
    /// `PublicLinkState`, as text so unknown values survive to the log.
    pub state: String,
    /// `PublicLinkError`, when `state` is `error`.
    #[serde(default)]
    pub error_code: Option<String>,
    /// MoneyKit's institution id.
    #[serde(default)]
    pub institution_id: Option<String>,
    /// Its display name.
    #[serde(default)]
    pub institution_name: Option<String>,
    /// Products of the link, by MoneyKit product name.
    #[serde(default)]
    pub products: BTreeMap<String, LinkProduct>,
    /// Where MoneyKit delivers the link's webhooks.
    #[serde(default)]
    pub webhook: Option<String>,
}

/// `LinkProductResponse`: what MoneyKit says of one product of a link.
#[derive(Debug, Default, Deserialize)]
pub struct LinkProduct {
    /// When data last arrived.
    #[serde(default)]
    pub refreshed_at: Option<String>,
    /// When fetching was last tried.
    #[serde(default)]
    pub last_attempted_at: Option<String>,
    /// `LinkProductError` of the last attempt.
    #[serde(default)]
    pub error_code: Option<String>,
    /// Why the product cannot be delivered at all.
    #[serde(default)]
    pub unavailable: Option<String>,
}

/// M8 `PATCH /links/{id}`: only the webhook, which `null` removes.
#[derive(Serialize)]
pub struct UpdateLink<'a> {
    /// The URL, or `null`.
    pub webhook: Option<&'a str>,
}

/// M13 `POST /links/{id}/products`.
#[derive(Serialize)]
pub struct RefreshProducts {
    /// At least one.
    pub products: Vec<&'static str>,
}

/// M14 `GET /links/{id}/accounts`'s answer.
#[derive(Deserialize)]
pub struct Accounts {
    /// The link's accounts.
    pub accounts: Vec<Account>,
    /// The link, with its products' freshness.
    pub link: Link,
}

/// `AccountResponse`.
#[derive(Debug, Deserialize)]
pub struct Account {
    /// `acc_…`.
    pub account_id: String,
    /// Dotted: `depository.checking`, `liability.credit_card`, `investment.brokerage`, …
    pub account_type: String,
    /// Display name.
    pub name: String,
    /// Last four digits.
    #[serde(default)]
    pub account_mask: Option<String>,
    /// Balances (JSON numbers; liabilities positive when owed).
    #[serde(default)]
    pub balances: Balances,
}

/// `AccountBalances`: JSON numbers.
#[derive(Debug, Default, Deserialize)]
pub struct Balances {
    /// ISO 4217.
    #[serde(default)]
    pub currency: Option<String>,
    /// Available to spend.
    #[serde(default, deserialize_with = "exact_decimal")]
    pub available: Option<Decimal>,
    /// Current.
    #[serde(default, deserialize_with = "exact_decimal")]
    pub current: Option<Decimal>,
    /// Credit limit.
    #[serde(default, deserialize_with = "exact_decimal")]
    pub limit: Option<Decimal>,
}

/// M16 `GET /links/{id}/accounts/numbers`'s answer.
#[derive(Deserialize)]
pub struct AccountNumbers {
    /// The link's accounts with their numbers (`AccountWithNumbers`).
    pub accounts: Vec<AccountWithNumbers>,
}

/// `AccountWithNumbers`: an account and its numbers. Carries account numbers: no `Debug`.
#[derive(Deserialize)]
pub struct AccountWithNumbers {
    /// `acc_…`.
    pub account_id: String,
    /// Each form at most once.
    #[serde(default)]
    pub numbers: Numbers,
}

/// `numbers` of `AccountWithNumbers`.
#[derive(Default, Deserialize)]
pub struct Numbers {
    /// US.
    #[serde(default)]
    pub ach: Vec<Ach>,
    /// Canada.
    #[serde(default)]
    pub eft: Vec<Eft>,
    /// UK.
    #[serde(default)]
    pub bacs: Vec<Bacs>,
    /// IBAN and BIC.
    #[serde(default)]
    pub international: Vec<International>,
}

/// An ACH entry.
#[derive(Deserialize)]
pub struct Ach {
    /// Account number.
    pub account_number: String,
    /// ABA routing number.
    pub routing_number: String,
    /// Wire routing number, when it differs.
    #[serde(default)]
    pub wire_routing_number: Option<String>,
}

/// An EFT entry.
#[derive(Deserialize)]
pub struct Eft {
    /// Account number.
    pub account_number: String,
    /// Institution number.
    pub institution_number: String,
    /// Branch (transit) number.
    pub branch_number: String,
}

/// A BACS entry.
#[derive(Deserialize)]
pub struct Bacs {
    /// Account number.
    pub account_number: String,
    /// Sort code.
    pub sort_code: String,
}

/// An international entry.
#[derive(Deserialize)]
pub struct International {
    /// IBAN.
    pub iban: String,
    /// BIC.
    #[serde(default)]
    pub bic: Option<String>,
}

/// M17 `GET /links/{id}/identity`'s answer.
#[derive(Deserialize)]
pub struct Identity {
    /// The link's accounts with their owners (`AccountIdentity`).
    pub accounts: Vec<AccountIdentity>,
}

/// `AccountIdentity`: an account and its owners. Carries personal data: no `Debug`.
#[derive(Deserialize)]
pub struct AccountIdentity {
    /// `acc_…`.
    pub account_id: String,
    /// The owners.
    #[serde(default)]
    pub owners: Vec<Owner>,
}

/// `Owner`.
#[derive(Deserialize)]
pub struct Owner {
    /// Full names.
    #[serde(default)]
    pub names: Vec<String>,
    /// Postal addresses.
    #[serde(default)]
    pub addresses: Vec<Address>,
    /// Phone numbers.
    #[serde(default)]
    pub phone_numbers: Vec<PhoneNumber>,
    /// Email addresses.
    #[serde(default)]
    pub emails: Vec<Email>,
}

/// An owner's address.
#[derive(Deserialize)]
pub struct Address {
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// Country code.
    #[serde(default)]
    pub country: Option<String>,
    /// Postal code.
    #[serde(default)]
    pub postal_code: Option<String>,
    /// State or region.
    #[serde(default)]
    pub region: Option<String>,
    /// Street.
    #[serde(default)]
    pub street: Option<String>,
    /// The primary address.
    #[serde(default)]
    pub primary: Option<bool>,
}

/// An owner's phone number.
#[derive(Deserialize)]
pub struct PhoneNumber {
    /// The number.
    pub number: String,
    /// The primary number.
    #[serde(default)]
    pub primary: Option<bool>,
    /// `home`, `work`, `mobile` or `other`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// An owner's email address.
#[derive(Deserialize)]
pub struct Email {
    /// The address.
    pub address: String,
    /// The primary address.
    #[serde(default)]
    pub primary: Option<bool>,
}

/// M19 `GET /links/{id}/transactions/sync`'s answer.
#[derive(Deserialize)]
pub struct TransactionSync {
    /// What changed since the cursor (everything without one).
    pub transactions: SyncChanges,
    /// Where to continue.
    pub cursor: SyncCursor,
    /// More pages follow.
    pub has_more: bool,
}

/// `transactions` of M19.
#[derive(Deserialize)]
pub struct SyncChanges {
    /// New transactions (pending ones only ever here).
    #[serde(default)]
    pub created: Vec<Transaction>,
    /// Changed transactions.
    #[serde(default)]
    pub updated: Vec<Transaction>,
    /// Ids of removed transactions.
    #[serde(default)]
    pub removed: Vec<String>,
}

/// `cursor` of M19: the key is `next`, which MoneyKit may leave out (the caller's cursor then
/// stands).
#[derive(Deserialize)]
pub struct SyncCursor {
    /// Opaque.
    #[serde(default)]
    pub next: Option<String>,
}

/// `TransactionResponse`: `amount` is a non-negative decimal string, its direction is `type`.
#[derive(Debug, Deserialize)]
pub struct Transaction {
    /// `txn_…`.
    pub transaction_id: String,
    /// Its account.
    pub account_id: String,
    /// Always ≥ 0.
    #[serde(deserialize_with = "required_decimal")]
    pub amount: Decimal,
    /// `credit` (money in) or `debit` (money out).
    #[serde(rename = "type")]
    pub kind: String,
    /// ISO 4217.
    pub currency: String,
    /// Posted date (initiation date while pending).
    pub date: Date,
    /// Cleaned description.
    #[serde(default)]
    pub description: Option<String>,
    /// As the bank wrote it.
    #[serde(default)]
    pub raw_description: Option<String>,
    /// Not yet posted.
    #[serde(default)]
    pub pending: bool,
}

/// M21 `GET /links/{id}/investments/holdings`'s answer.
#[derive(Deserialize)]
pub struct Holdings {
    /// Positions.
    #[serde(default)]
    pub holdings: Vec<Holding>,
    /// The securities they hold.
    #[serde(default)]
    pub securities: Vec<Security>,
    /// The investment accounts.
    #[serde(default)]
    pub accounts: Vec<Account>,
}

/// `HoldingResponse`: decimal strings, denominated in the account's currency.
#[derive(Debug, Deserialize)]
pub struct Holding {
    /// Its account.
    pub account_id: String,
    /// Its security.
    pub security_id: String,
    /// Units.
    #[serde(deserialize_with = "required_decimal")]
    pub quantity: Decimal,
    /// Unit price.
    #[serde(default, deserialize_with = "exact_decimal")]
    pub price: Option<Decimal>,
    /// Quantity times price.
    #[serde(default, deserialize_with = "exact_decimal")]
    pub value: Option<Decimal>,
    /// Total paid.
    #[serde(default, deserialize_with = "exact_decimal")]
    pub cost_basis: Option<Decimal>,
}

/// `SecurityResponse`.
#[derive(Debug, Clone, Deserialize)]
pub struct Security {
    /// Its id.
    pub security_id: String,
    /// Name.
    pub name: String,
    /// `cash`, `crypto`, `derivative`, `equity`, `etf`, `bond`, `loan`, `fund`, `unknown`.
    #[serde(rename = "type")]
    pub kind: String,
    /// ISO 4217 code of the currency it is priced in (its `close_price`), not the holding's.
    pub currency: String,
    /// Ticker.
    #[serde(default)]
    pub ticker: Option<String>,
    /// ISIN.
    #[serde(default)]
    pub isin: Option<String>,
    /// Last close, in the security's own currency.
    #[serde(default, deserialize_with = "exact_decimal")]
    pub close_price: Option<Decimal>,
}

/// M22 `GET /links/{id}/investments/transactions`'s answer (page-numbered).
#[derive(Deserialize)]
pub struct InvestmentTransactions {
    /// All matches across pages.
    pub total: u64,
    /// This page's transactions.
    #[serde(default)]
    pub investment_transactions: Vec<InvestmentTransaction>,
    /// The securities they name.
    #[serde(default)]
    pub securities: Vec<Security>,
    /// The investment accounts (their currency denominates the transactions).
    #[serde(default)]
    pub accounts: Vec<Account>,
}

/// `InvestmentTransactionResponse`: `amount` positive is money out (a debit); amounts and prices
/// are denominated in the account's currency.
#[derive(Debug, Deserialize)]
pub struct InvestmentTransaction {
    /// Its id.
    pub investment_transaction_id: String,
    /// Its account.
    pub account_id: String,
    /// Positive = debit / withdrawal, negative = credit.
    #[serde(deserialize_with = "required_decimal")]
    pub amount: Decimal,
    /// Trade date.
    pub date: Date,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// `buy`, `sell`, `cash`, `fee`, `transfer`, optionally with a dotted subtype.
    #[serde(rename = "type")]
    pub kind: String,
    /// Unit price.
    #[serde(default, deserialize_with = "exact_decimal")]
    pub price: Option<Decimal>,
    /// Units added (negative: removed).
    #[serde(default, deserialize_with = "exact_decimal")]
    pub quantity: Option<Decimal>,
    /// Security traded.
    #[serde(default)]
    pub security_id: Option<String>,
}

/// M26 `GET /institutions`'s answer.
#[derive(Deserialize)]
pub struct Institutions {
    /// This page.
    pub institutions: Vec<Institution>,
    /// Where the next page starts.
    #[serde(default)]
    pub cursors: InstitutionCursors,
}

/// M26's `cursors` (plural, unlike the transaction feed's `cursor`).
#[derive(Default, Deserialize)]
pub struct InstitutionCursors {
    /// The next page's cursor; absent (or empty) on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// `Institution` (M26, M27).
#[derive(Deserialize)]
pub struct Institution {
    /// MoneyKit's id.
    pub institution_id: String,
    /// Display name.
    pub name: String,
    /// `US`, `GB` or `CA`.
    #[serde(default)]
    pub country: Option<String>,
}

/// MoneyKit's error body (every API error).
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    /// Stable code, e.g. `link_error.not_found`.
    #[serde(default)]
    pub error_code: Option<String>,
    /// With `link_error.bad_state`: the link's `PublicLinkError`.
    #[serde(default)]
    pub link_error_code: Option<String>,
}

/// M2 `GET /.well-known/jwks.json`: the webhook signing keys.
#[derive(Deserialize)]
pub struct Jwks {
    /// The keys; the previous one stays listed for a while after a rotation.
    pub keys: Vec<crate::crypto::jws::Jwk>,
}

/// A webhook delivery's common fields (linkgate acts on nothing else: the poll it triggers reads
/// the link's state).
#[derive(Deserialize)]
pub struct Webhook {
    /// `link.state_changed`, `link.product_refresh`, `transactions.updates_available`, …
    pub webhook_event: String,
    /// The same across the delivery's retries.
    pub webhook_idempotency_key: String,
    /// The link concerned.
    #[serde(default)]
    pub link_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balances_are_numbers_and_everything_else_strings_read_exactly() {
        let account: Account = serde_json::from_str(
            r#"{"account_id": "acc_1", "account_type": "depository.checking", "name": "Checking",
                "balances": {"currency": "USD", "available": 1234.56, "current": 12345678901234567.89, "limit": null}}"#,
        )
        .unwrap();
        assert_eq!(account.balances.available.unwrap().to_string(), "1234.56");
        assert_eq!(account.balances.current.unwrap().to_string(), "12345678901234567.89");
        assert!(account.balances.limit.is_none());
        let transaction: Transaction = serde_json::from_str(
            r#"{"transaction_id": "t", "account_id": "a", "amount": "4.50", "type": "debit", "currency": "USD",
                "date": "2025-01-02", "pending": false}"#,
        )
        .unwrap();
        assert_eq!(transaction.amount.to_string(), "4.50");
        assert!(
            serde_json::from_str::<Holding>(r#"{"account_id": "a", "security_id": "s", "quantity": "1,5"}"#).is_err()
        );
    }
}

//! Vumi Finlink's API on the wire (reference: docs/providers/vumi.md), field names exact.
//! Requests borrow; answers own. Types that carry a secret (credentials, tokens) derive no
//! `Debug`. Numbers are JSON numbers, read as exact decimals from their text. Enums stay text so
//! unknown values survive to the one mapping table and the log. Shapes Vumi does not document
//! (account and portfolio transactions, the start-flow answer) are marked as inferred.

use crate::domain::Decimal;
use crate::providers::json::exact_decimal;
use serde::{Deserialize, Serialize};

/// V1 `POST /auth/login`. Scopes are left out: every scope.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Login<'a> {
    /// The app's client id.
    pub client_id: &'a str,
    /// The app's client secret.
    pub client_secret: &'a str,
}

/// V1's and V2's answer (V2's field name is inferred).
#[derive(Deserialize)]
pub struct TokenAnswer {
    /// A JWT: the session (V1) or the widget's start token (V2).
    pub token: String,
}

/// V2 `POST /commands/connections/start-flow`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartFlow<'a> {
    /// The app's redirect configuration.
    pub id: &'a str,
    /// What the widget links for.
    pub product: &'a str,
    /// Skips the entity picker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<&'a str>,
    /// Tags the connection; V7 filters on it.
    pub external_id: &'a str,
}

/// V4's answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exchanged {
    /// The permanent handle.
    pub connection_token: String,
}

/// One entry of V7 `GET /queries/connections/pending`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingToken {
    /// Single-use public token.
    pub public_token: String,
    /// The tag the widget was started with.
    #[serde(default)]
    pub external_id: Option<String>,
    /// When the widget issued it.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// V5 `GET /queries/connections/{token}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// `PENDING READY UPDATING ERRORED UPDATE_ERROR`, or a newer value.
    pub status: String,
    /// Why the last extraction failed, when it did.
    #[serde(default)]
    pub error_details: Option<ErrorDetails>,
    /// The entity id (`santander`).
    #[serde(default)]
    pub entity: Option<String>,
    /// Present when the user must restore the connection through the widget (`restore_token`).
    #[serde(default)]
    pub restore_token: Option<String>,
    /// Present when the user can run a manual update through the widget (`update_token`).
    #[serde(default)]
    pub update_token: Option<String>,
    /// Whether Vumi keeps the user's credentials, so it can update the connection by itself
    /// (daily); absent counts as not.
    #[serde(default)]
    pub has_credentials: Option<bool>,
}

/// A connection's `errorDetails`.
#[derive(Debug, Deserialize)]
pub struct ErrorDetails {
    /// Reason enum (only `INTERNAL_SERVER_ERROR` is documented).
    #[serde(default)]
    pub reason: Option<String>,
    /// Whether Vumi expects a later extraction to succeed.
    #[serde(default)]
    pub retryable: Option<bool>,
}

/// V11 `GET /queries/connections/{token}/accounts`.
#[derive(Deserialize)]
pub struct Account {
    /// UUID.
    pub id: String,
    /// The portfolio whose cash it holds (`OTHER` accounts of brokers).
    #[serde(default)]
    pub portfolio: Option<String>,
    /// IBAN.
    #[serde(default)]
    pub iban: Option<String>,
    /// `CASH_ACCOUNT` or `OTHER`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Display name.
    #[serde(default)]
    pub alias: Option<String>,
    /// Balance.
    #[serde(default, deserialize_with = "exact_decimal")]
    pub balance: Option<Decimal>,
    /// ISO 4217.
    pub currency: String,
    /// Holders' names.
    #[serde(default)]
    pub owners: Vec<String>,
}

/// V12 `GET /queries/connections/{token}/accounts/transactions` (fields inferred).
#[derive(Deserialize)]
pub struct AccountTransaction {
    /// UUID.
    pub id: String,
    /// The account's id.
    pub account: String,
    /// `DEPOSIT`, `DIVIDENDS`, ...
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Signed amount: negative leaves the account.
    #[serde(default, deserialize_with = "exact_decimal")]
    pub amount: Option<Decimal>,
    /// ISO 4217.
    pub currency: String,
    /// Value date (`YYYY-MM-DD`, or a datetime).
    pub date: String,
    /// Bank's description.
    #[serde(default)]
    pub description: Option<String>,
}

/// V13 `GET /queries/connections/{token}/portfolios`.
#[derive(Deserialize)]
pub struct Portfolio {
    /// UUID.
    pub id: String,
    /// `MIX STOCK_PORTFOLIO COMPOSITE_ASSETS_PORTFOLIO MANAGED`, or a newer value.
    #[serde(rename = "type")]
    pub kind: String,
    /// Holders' names.
    #[serde(default)]
    pub owners: Vec<String>,
    /// Value.
    #[serde(default, deserialize_with = "exact_decimal")]
    pub balance: Option<Decimal>,
    /// ISO 4217.
    pub currency: String,
}

/// V14 `GET /queries/connections/{token}/portfolios/transactions` (fields inferred).
#[derive(Deserialize)]
pub struct PortfolioTransaction {
    /// UUID.
    pub id: String,
    /// The portfolio's id.
    pub portfolio: String,
    /// The instrument's id (V9).
    #[serde(default)]
    pub investment: Option<String>,
    /// `BUY`, `SELL`, `DIVIDENDS`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Titles bought or sold.
    #[serde(default, deserialize_with = "exact_decimal")]
    pub titles: Option<Decimal>,
    /// Price per title.
    #[serde(default, deserialize_with = "exact_decimal")]
    pub price: Option<Decimal>,
    /// Cash effect, signed.
    #[serde(default, deserialize_with = "exact_decimal")]
    pub amount: Option<Decimal>,
    /// ISO 4217.
    pub currency: String,
    /// Trade date (`YYYY-MM-DD`, or a datetime).
    pub date: String,
}

/// V15 `GET /queries/connections/{token}/portfolios/active-positions`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    /// The portfolio's id.
    pub portfolio: String,
    /// The instrument's id (V9).
    pub investment: String,
    /// Instrument name.
    pub name: String,
    /// ISIN.
    #[serde(default)]
    pub isin: Option<String>,
    /// Reference currency (of `amount` and `price`).
    pub currency: String,
    /// The instrument's own currency.
    #[serde(default)]
    pub local_currency: Option<String>,
    /// MIC.
    #[serde(default)]
    pub exchange: Option<String>,
    /// `STOCK ETF FUND PP BOND WARRANT RIGHTS ...`
    #[serde(default)]
    pub asset_type: Option<String>,
    /// Quantity.
    #[serde(default, deserialize_with = "exact_decimal")]
    pub titles: Option<Decimal>,
    /// Value in the reference currency.
    #[serde(default, deserialize_with = "exact_decimal")]
    pub amount: Option<Decimal>,
    /// Price per title in the reference currency.
    #[serde(default, deserialize_with = "exact_decimal")]
    pub price: Option<Decimal>,
}

/// V9 `GET /queries/connections/{token}/investments`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Investment {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// ISIN.
    #[serde(default)]
    pub isin: Option<String>,
    /// The instrument's currency.
    pub currency: String,
    /// MIC.
    #[serde(default)]
    pub exchange: Option<String>,
    /// Asset type, as in positions.
    #[serde(default)]
    pub asset_type: Option<String>,
}

/// An entity of V3 "List entities for app" (inferred: the page names the operation, but its
/// fields were not readable). `id` is the value connections carry as `entity` (`santander`); the
/// name and type are read when present, and anything else is ignored.
#[derive(Debug, Deserialize)]
pub struct Entity {
    /// The entity's id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// What it is, e.g. `BANK` or `BROKER`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// A webhook delivery. Vumi does not publish the payload; linkgate reads only the event name and
/// the connection token it names, then polls the connection for its state.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Event name, e.g. `CONNECTION_STATUS`.
    pub event: String,
    /// The connection's token.
    #[serde(default)]
    pub credentials_token: Option<String>,
}

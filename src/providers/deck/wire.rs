//! Deck's legacy product API on the wire (reference: docs/providers/deck.md), field names exact.
//! Requests borrow; answers own. Types that carry a secret (credentials, tokens) derive no
//! `Debug`. Amounts are JSON numbers read as exact decimals from their raw text, never through
//! `f64`.

use crate::domain::{Date, Decimal};
use crate::providers::json::exact_decimal;
use serde::{Deserialize, Serialize};

/// D1 `/link/token/create`. Every field is optional upstream; `{}` is valid. Secret when it
/// carries `update`.
#[derive(Serialize, Default)]
pub struct LinkTokenCreate<'a> {
    /// Limits the session to these sources.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_ids: Vec<&'a str>,
    /// Update mode: the session repairs this existing connection instead of making a new one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<Update<'a>>,
}

/// D1's `update`: which connection a session repairs, and how. Secret.
#[derive(Serialize)]
pub struct Update<'a> {
    /// The connection's access token.
    pub access_token: &'a str,
    /// `UpdateCredentials`, `Refresh` or `UpdateAccountSelection`.
    pub mode: &'a str,
}

/// D1's answer.
#[derive(Deserialize)]
pub struct LinkTokenCreated {
    /// Valid 20 minutes.
    pub link_token: String,
}

/// Every `/link/*` request that carries only the link token (D5, D6, D8).
#[derive(Serialize)]
pub struct LinkTokenOnly<'a> {
    /// The session's link token.
    pub link_token: &'a str,
}

/// D3 `/link/sources`: neither `source_id` nor `search` lists the 15 most common sources.
#[derive(Serialize)]
pub struct Sources<'a> {
    /// The link token that authorises the lookup.
    pub link_token: &'a str,
    /// One source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_id: Option<&'a str>,
    /// Name search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<&'a str>,
}

/// D3's answer.
#[derive(Debug, Deserialize)]
pub struct SourceList {
    /// Matching sources.
    #[serde(default)]
    pub sources: Vec<Source>,
}

/// A data source (a utility portal).
#[derive(Debug, Deserialize)]
pub struct Source {
    /// UUID.
    pub source_id: String,
    /// Display name.
    pub name: String,
    /// ISO 3166 alpha-2.
    #[serde(default)]
    pub country: Option<String>,
    /// Login form.
    #[serde(default)]
    pub fields: Vec<SourceField>,
}

/// One field of a source's login form.
#[derive(Debug, Deserialize)]
pub struct SourceField {
    /// Position in the form.
    #[serde(default)]
    pub field_number: Option<i64>,
    /// Key sent back in D4 `fields`.
    pub field_name: String,
    /// Label for the user.
    #[serde(default)]
    pub field_label: Option<String>,
    /// `Text` or `Password`.
    #[serde(default)]
    pub field_type: Option<String>,
}

/// D4 `/link/connect`, the 2025 shape with `fields` (the legacy guide's flat
/// `username`/`password` is not sent).
#[derive(Serialize)]
pub struct Connect<'a> {
    /// The session's link token.
    pub link_token: &'a str,
    /// Source UUID.
    pub source_id: &'a str,
    /// The user's answers to the login form. Secret.
    pub fields: Vec<FieldValue<'a>>,
}

/// One login form answer. Secret.
#[derive(Serialize)]
pub struct FieldValue<'a> {
    /// The source's field name.
    pub field_name: &'a str,
    /// What the user entered.
    pub field_value: &'a str,
}

/// D4's answer: the public token is issued at once, before the connection attempt settles.
#[derive(Deserialize)]
pub struct ConnectStarted {
    /// Absent in update mode.
    #[serde(default)]
    pub public_token: Option<String>,
}

/// D5's answer.
#[derive(Debug, Deserialize)]
pub struct LinkStatus {
    /// A `LinkConnectionStatus` value, kept as text so unknown values survive to the log.
    pub status: String,
    /// More about the status. On `MfaMethodChoice` linkgate reads the methods offered from it,
    /// one per line: Deck documents the status but not where its methods are listed, so this is
    /// linkgate's reading, and a choice that names none fails the session rather than guess.
    #[serde(default)]
    pub additional_information: Option<String>,
}

/// D6's answer.
#[derive(Debug, Deserialize)]
pub struct MfaQuestion {
    /// The question to show the user.
    pub question: String,
}

/// D7 `/link/authentication/mfa/answer`. Secret.
#[derive(Serialize)]
pub struct MfaAnswer<'a> {
    /// The session's link token.
    pub link_token: &'a str,
    /// The user's answer, or the MFA method chosen.
    pub answer: &'a str,
}

/// D8's answer.
#[derive(Debug, Deserialize)]
pub struct LinkAccounts {
    /// Accounts found while connecting.
    #[serde(default)]
    pub accounts: Vec<LinkAccount>,
}

/// An account found while connecting.
#[derive(Debug, Deserialize)]
pub struct LinkAccount {
    /// UUID, what D9 selects by.
    pub account_id: String,
}

/// D9 `/link/account/select`.
#[derive(Serialize)]
pub struct SelectAccounts<'a> {
    /// The session's link token.
    pub link_token: &'a str,
    /// Accounts to keep.
    pub accounts: Vec<&'a str>,
}

/// D11 `/connection/public_token/exchange`. Secret.
#[derive(Serialize)]
pub struct PublicToken<'a> {
    /// Single use, 30 minutes.
    pub public_token: &'a str,
}

/// D11's answer. Secret.
#[derive(Deserialize)]
pub struct Exchanged {
    /// Permanent until destroyed or rotated.
    pub access_token: String,
    /// What webhooks name the connection by.
    pub connection_id: String,
}

/// D15's answer: the token that replaces the one sent, which no longer works. Secret.
#[derive(Deserialize)]
pub struct RotatedToken {
    /// The new access token.
    pub new_access_token: String,
}

/// Every `/connection/*` and product request that carries only the access token. Secret.
#[derive(Serialize)]
pub struct AccessToken<'a> {
    /// The connection's access token.
    pub access_token: &'a str,
}

/// D12 `/connection/context`.
#[derive(Debug, Deserialize)]
pub struct ConnectionContext {
    /// The source the connection logs in to.
    #[serde(default)]
    pub provider: Option<ContextProvider>,
    /// A `ConnectivityStatusEnum` value.
    #[serde(default)]
    pub connection_status: Option<String>,
    /// A `ScrapingStatusEnum` value.
    #[serde(default)]
    pub connection_status_reason: Option<String>,
}

/// D12's `provider`: the source.
#[derive(Debug, Deserialize)]
pub struct ContextProvider {
    /// Source UUID.
    pub id: String,
    /// Source name.
    pub name: String,
}

/// D20 `/sustainability/get`.
#[derive(Debug, Deserialize)]
pub struct Sustainability {
    /// Source name.
    #[serde(default)]
    pub source_name: Option<String>,
    /// Utility accounts with their statements.
    #[serde(default)]
    pub accounts: Vec<SustainabilityAccount>,
}

/// A utility account.
#[derive(Debug, Deserialize)]
pub struct SustainabilityAccount {
    /// The utility's account number.
    pub account_number: String,
    /// Its bills.
    #[serde(default)]
    pub statements: Vec<SustainabilityStatement>,
}

/// One bill. Only what linkgate maps is read; the rest (charges, usage, payments) is skipped.
#[derive(Debug, Deserialize)]
pub struct SustainabilityStatement {
    /// Deck's id (what `/sustainability/statement/file` takes).
    #[serde(default)]
    pub statement_id: Option<String>,
    /// The utility's statement number.
    #[serde(default)]
    pub statement_number: Option<String>,
    /// First day billed.
    #[serde(default)]
    pub billing_period_start_date: Option<Date>,
    /// Last day billed.
    #[serde(default)]
    pub billing_period_end_date: Option<Date>,
    /// Issue date.
    #[serde(default)]
    pub billing_date: Option<Date>,
    /// Due date.
    #[serde(default)]
    pub payment_due_date: Option<Date>,
    /// Amount due, exact.
    #[serde(default, deserialize_with = "exact_decimal")]
    pub total_due_amount: Option<Decimal>,
    /// ISO 4217.
    #[serde(default)]
    pub currency_code: Option<String>,
}

/// Deck's error body (every 4xx upstream).
#[derive(Debug, Deserialize, Default)]
pub struct ErrorBody {
    /// Stable category.
    #[serde(default)]
    pub error_category: Option<String>,
    /// Stable code.
    #[serde(default)]
    pub error_code: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_exactly_from_the_json_text() {
        let statement: SustainabilityStatement =
            serde_json::from_str(r#"{"total_due_amount": 12345678901234567.89}"#).unwrap();
        assert_eq!(statement.total_due_amount.unwrap().to_string(), "12345678901234567.89");
        let missing: SustainabilityStatement = serde_json::from_str(r#"{"total_due_amount": null}"#).unwrap();
        assert!(missing.total_due_amount.is_none());
        let absent: SustainabilityStatement = serde_json::from_str("{}").unwrap();
        assert!(absent.total_due_amount.is_none());
        assert!(serde_json::from_str::<SustainabilityStatement>(r#"{"total_due_amount": "1,50"}"#).is_err());
    }
}

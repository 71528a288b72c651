//! The built-in `sandbox` provider: a deterministic fake bank, broker and utility that behaves
//! like a real upstream (credential checks, MFA, a hosted flow, expiring public tokens, a first
//! import that takes time), so every flow can be exercised without network or credentials.
//!
//! It is stateless like a remote API: what it must remember travels in the tokens it issues
//! (institution, creation time, a random seed), so any replica can answer for any connection.
//! The price is what a stateless upstream cannot know: it exchanges a token again (linkgate's
//! store makes every exchange single-use anyway) and a deleted connection's handle keeps working
//! (linkgate forgets the handle on delete). The provider contract (`tests/contract.rs`) records
//! both.
//!
//! Scripted users (password `pass_good`): `user_good` connects; `user_mfa` is asked a question
//! that `1234` answers. Any other credentials fail as invalid.
//!
//! Callers' changes (`SandboxService`: transactions added, modified, removed or booked, a
//! failure armed for the next refresh) are the one thing it cannot carry in tokens: the
//! [`Ledger`] keeps them in linkgate's store.
//!
//! The bank serves account numbers and owners too (PRODUCT_ACCOUNT_NUMBERS, PRODUCT_IDENTITY),
//! fixed fictional values in every form of number (see `data`).
//!
//! Repair: [`require_login`] marks a connection's handle as needing the user again (the sandbox
//! control behind `SandboxService.ResetLogin`); its status is then LOGIN_REQUIRED until a repair
//! session signs in with the same scripted users, which hands back the unmarked handle: the same
//! institution, creation time and seed, so the same records and ids.

mod data;
mod ledger;

pub use ledger::{Failure, Ledger, LedgerError, NewTransaction, Refusal, TransactionChanges};

use super::{
    CredentialField, Credentials, ExchangedConnection, Fetched, Institution, InstitutionKind, LinkContext,
    LinkProgress, LinkStart, LinkStep, Provider, ProviderError, ProviderInfo, ProviderResult, UpstreamStatus,
};
use crate::config::SandboxSettings;
use crate::domain::ErrorReason;
use crate::domain::{LinkFlow, Product, Timestamp};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

/// The provider id.
pub const ID: &str = "sandbox";
/// The provider's display name.
pub const DISPLAY_NAME: &str = "Sandbox";

/// Institution ids, as callers pass them.
/// Sandbox Bank.
pub const BANK: &str = "ins_sandbox_bank";
/// Sandbox Broker.
pub const BROKER: &str = "ins_sandbox_broker";
/// Sandbox Utility.
pub const UTILITY: &str = "ins_sandbox_utility";

/// The answer to every sandbox MFA question.
const MFA_ANSWER: &str = "1234";
const GOOD_PASSWORD: &str = "pass_good";
const PUBLIC_TOKEN_PREFIX: &str = "public-sandbox-";
const HANDLE_PREFIX: &str = "access-sandbox-";
/// Appended to a handle whose user must sign in again.
const LOGIN_REQUIRED_MARK: &str = "~login-required";

/// The sandbox provider.
pub struct Sandbox {
    info: ProviderInfo,
    settings: SandboxSettings,
    ledger: Ledger,
}

impl Sandbox {
    /// A sandbox with the given timings, keeping callers' changes in `ledger`.
    pub fn new(settings: SandboxSettings, ledger: Ledger) -> Self {
        let info = ProviderInfo {
            id: ID,
            display_name: DISPLAY_NAME,
            flows: &[LinkFlow::Credentials, LinkFlow::Hosted],
            products: &[
                Product::Accounts,
                Product::Transactions,
                Product::Investments,
                Product::Statements,
                Product::Identity,
                Product::AccountNumbers,
            ],
            poll_interval: settings.poll_interval,
            refresh_interval: settings.refresh_interval,
            consent_lifetime: settings.consent_lifetime,
            refresh_limits: &[],
            required_inputs: &[],
            min_external_user_id_chars: 1,
        };
        Self { info, settings, ledger }
    }

    /// A successful sign-in: a public token for a new link, the unmarked handle for a repair.
    fn signed_in(&self, link: &LinkContext, institution_id: &str) -> ProviderResult<LinkProgress> {
        match &link.repair {
            Some(handle) => {
                let parsed = Handle::parse(handle)?;
                let handle = parsed.login_required.then(|| parsed.unmarked(handle));
                Ok(LinkProgress::Repaired { handle })
            }
            None => Ok(self.issue_public_token(institution_id)),
        }
    }

    fn issue_public_token(&self, institution_id: &str) -> LinkProgress {
        let token = format!("{PUBLIC_TOKEN_PREFIX}{institution_id}-{}", random_hex());
        LinkProgress::Succeeded {
            public_token: SecretString::from(token),
            institution_id: institution_id.to_owned(),
            expires_at: crate::domain::now() + self.settings.public_token_ttl,
        }
    }
}

fn institutions() -> Vec<Institution> {
    let login = vec![
        CredentialField { name: "username".into(), label: "User ID".into(), secret: false },
        CredentialField { name: "password".into(), label: "Password".into(), secret: true },
    ];
    let institution = |id: &str, name: &str, kind, products: &[Product]| Institution {
        id: id.to_owned(),
        name: name.to_owned(),
        kind,
        products: products.to_vec(),
        credential_fields: login.clone(),
        country_codes: vec!["ES".to_owned(), "GB".to_owned(), "US".to_owned()],
    };
    vec![
        institution(
            BANK,
            "Sandbox Bank",
            InstitutionKind::Bank,
            &[Product::Accounts, Product::Transactions, Product::Identity, Product::AccountNumbers],
        ),
        institution(BROKER, "Sandbox Broker", InstitutionKind::Broker, &[Product::Accounts, Product::Investments]),
        institution(UTILITY, "Sandbox Utility", InstitutionKind::Utility, &[Product::Accounts, Product::Statements]),
    ]
}

fn institution(id: &str) -> Option<Institution> {
    institutions().into_iter().find(|i| i.id == id)
}

fn random_hex() -> String {
    crate::crypto::hex(&rand::random::<[u8; 16]>())
}

/// What a sandbox connection handle carries: `access-sandbox-<institution>-<created ms>-<seed>`,
/// with [`LOGIN_REQUIRED_MARK`] appended while the user must sign in again.
struct Handle {
    institution_id: String,
    created_at: Timestamp,
    seed: u64,
    login_required: bool,
}

impl Handle {
    fn issue(institution_id: &str) -> SecretString {
        let now = chrono::Utc::now().timestamp_millis();
        SecretString::from(format!("{HANDLE_PREFIX}{institution_id}-{now}-{}", random_hex()))
    }

    fn parse(handle: &SecretString) -> ProviderResult<Self> {
        let malformed = || ProviderError::Protocol { detail: "malformed sandbox connection handle".to_owned() };
        let text = handle.expose_secret();
        let (text, login_required) = match text.strip_suffix(LOGIN_REQUIRED_MARK) {
            Some(unmarked) => (unmarked, true),
            None => (text, false),
        };
        let rest = text.strip_prefix(HANDLE_PREFIX).ok_or_else(malformed)?;
        let (rest, seed_hex) = rest.rsplit_once('-').ok_or_else(malformed)?;
        let (institution_id, created_ms) = rest.rsplit_once('-').ok_or_else(malformed)?;
        let created_ms: i64 = created_ms.parse().map_err(|_| malformed())?;
        let seed = u64::from_str_radix(seed_hex.get(..16).ok_or_else(malformed)?, 16).map_err(|_| malformed())?;
        let created_at = chrono::DateTime::from_timestamp_millis(created_ms).ok_or_else(malformed)?;
        institution(institution_id).ok_or_else(malformed)?;
        Ok(Self { institution_id: institution_id.to_owned(), created_at, seed, login_required })
    }

    /// The handle, unless its user must sign in again: a bank serves no data then.
    fn signed_in(self) -> ProviderResult<Self> {
        if self.login_required { Err(ProviderError::LoginRequired) } else { Ok(self) }
    }

    /// `handle` without the login-required mark.
    fn unmarked(&self, handle: &SecretString) -> SecretString {
        let text = handle.expose_secret();
        SecretString::from(text.strip_suffix(LOGIN_REQUIRED_MARK).unwrap_or(text).to_owned())
    }
}

/// The handle of a connection whose user must sign in again: its status answers LOGIN_REQUIRED
/// until a repair session hands back the unmarked handle. Marking a marked handle changes nothing.
pub fn require_login(handle: &SecretString) -> ProviderResult<SecretString> {
    let parsed = Handle::parse(handle)?;
    Ok(if parsed.login_required {
        handle.clone()
    } else {
        SecretString::from(format!("{}{LOGIN_REQUIRED_MARK}", handle.expose_secret()))
    })
}

#[async_trait::async_trait]
impl Provider for Sandbox {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn institutions(&self, query: &str) -> ProviderResult<Vec<Institution>> {
        Ok(super::catalogue::matching(&institutions(), query))
    }

    async fn start_link(&self, link: &LinkContext) -> ProviderResult<LinkStart> {
        Ok(match link.flow {
            LinkFlow::Credentials => LinkStart::default(),
            LinkFlow::Hosted => {
                let link_token = format!("link-sandbox-{}", link.link_session_id.simple());
                LinkStart {
                    hosted_link_url: Some(format!("https://sandbox.linkgate.invalid/link?token={link_token}")),
                    link_token: Some(link_token),
                    upstream_state: None,
                }
            }
        })
    }

    async fn submit_credentials(&self, link: &LinkContext, credentials: Credentials) -> ProviderResult<LinkStep> {
        let institution_id = link.institution_id.as_deref().ok_or(ProviderError::Rejected {
            detail: "sandbox credentials submitted without an institution".to_owned(),
        })?;
        let field = |name: &str| credentials.0.get(name).map(|v| v.expose_secret().to_owned());
        let good_password = field("password").as_deref() == Some(GOOD_PASSWORD);
        let progress = match field("username").as_deref() {
            Some("user_good") if good_password => self.signed_in(link, institution_id)?,
            Some("user_mfa") if good_password => LinkProgress::MfaRequired {
                question: format!("Enter the code we sent to your phone (sandbox: {MFA_ANSWER})"),
                methods: Vec::new(),
            },
            _ => LinkProgress::Failed {
                reason: ErrorReason::InvalidCredentials,
                message: "The username or password is incorrect.".to_owned(),
            },
        };
        Ok(progress.into())
    }

    async fn answer_mfa(&self, link: &LinkContext, answer: SecretString) -> ProviderResult<LinkStep> {
        if answer.expose_secret().trim() != MFA_ANSWER {
            return Ok(LinkProgress::Failed {
                reason: ErrorReason::InvalidMfaAnswer,
                message: "The code is incorrect.".to_owned(),
            }
            .into());
        }
        let institution_id = link.institution_id.as_deref().unwrap_or(BANK);
        Ok(self.signed_in(link, institution_id)?.into())
    }

    async fn poll_link(&self, link: &LinkContext) -> ProviderResult<LinkStep> {
        let progress = match link.flow {
            // The sandbox's hosted "user" completes the widget as soon as linkgate first asks.
            LinkFlow::Hosted => self.signed_in(link, link.institution_id.as_deref().unwrap_or(BANK))?,
            // Credential checks answer synchronously; nothing is ever left in progress.
            LinkFlow::Credentials => LinkProgress::Connecting,
        };
        Ok(progress.into())
    }

    async fn exchange_public_token(&self, public_token: &SecretString) -> ProviderResult<ExchangedConnection> {
        let rest =
            public_token.expose_secret().strip_prefix(PUBLIC_TOKEN_PREFIX).ok_or(ProviderError::InvalidPublicToken)?;
        let (institution_id, nonce) = rest.rsplit_once('-').ok_or(ProviderError::InvalidPublicToken)?;
        let well_formed = nonce.len() == 32 && nonce.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let institution =
            institution(institution_id).filter(|_| well_formed).ok_or(ProviderError::InvalidPublicToken)?;
        Ok(ExchangedConnection {
            handle: Handle::issue(&institution.id),
            institution_id: institution.id,
            institution_name: institution.name,
            products: institution.products,
            upstream_ref: None,
            webhook_url: None,
        })
    }

    async fn connection_status(&self, handle: &SecretString) -> ProviderResult<UpstreamStatus> {
        tokio::time::sleep(self.settings.latency).await;
        let handle = Handle::parse(handle)?;
        if handle.login_required {
            return Ok(UpstreamStatus::LoginRequired);
        }
        let import_done = handle.created_at + self.settings.import_delay;
        Ok(if chrono::Utc::now() < import_done { UpstreamStatus::Importing } else { UpstreamStatus::Ready })
    }

    async fn fetch_data(
        &self,
        handle: &SecretString,
        connection_id: Uuid,
        products: &[Product],
        _cursor: Option<&str>,
    ) -> ProviderResult<Fetched> {
        tokio::time::sleep(self.settings.latency).await;
        Handle::parse(handle)?.signed_in()?;
        let unavailable = |error: LedgerError| match error {
            LedgerError::Provider(error) => error,
            other => {
                tracing::warn!(error = %other, "reading the sandbox ledger failed");
                ProviderError::Unavailable { retry_after: None }
            }
        };
        if let Some(failure) = self.ledger.take_failure(connection_id).await.map_err(unavailable)? {
            return Err(failure);
        }
        self.ledger.data(handle, connection_id, products).await.map(Fetched::from).map_err(unavailable)
    }

    async fn refresh(&self, handle: &SecretString, _products: &[Product]) -> ProviderResult<()> {
        Handle::parse(handle)?.signed_in().map(drop)
    }

    async fn delete_connection(&self, handle: &SecretString) -> ProviderResult<()> {
        Handle::parse(handle).map(drop)
    }
}

//! Link sessions: one attempt to link an end user's account, and the public tokens they produce.

use super::ErrorReason;
use super::{Product, TenantId, Timestamp, stored_enum};
use uuid::Uuid;

stored_enum! {
    /// Where a link session is in its lifecycle.
    pub enum LinkSessionState {
        /// Waiting for the user or for credentials.
        Created = "created",
        /// The provider is checking credentials.
        Connecting = "connecting",
        /// An MFA question awaits an answer.
        MfaRequired = "mfa_required",
        /// Done; a public token was issued. Terminal.
        Succeeded = "succeeded",
        /// Failed. Terminal.
        Failed = "failed",
        /// Timed out. Terminal.
        Expired = "expired",
    }
}

impl LinkSessionState {
    /// Whether the session can no longer change.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Expired)
    }
}

stored_enum! {
    /// How the end user authenticates.
    pub enum LinkFlow {
        /// The provider's hosted widget.
        Hosted = "hosted",
        /// Credentials forwarded by linkgate.
        Credentials = "credentials",
    }
}

/// A link session as linkgate stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSession {
    /// linkgate's id.
    pub id: Uuid,
    /// Owner.
    pub tenant_id: TenantId,
    /// Provider id.
    pub provider: String,
    /// Institution, once known.
    pub institution_id: Option<String>,
    /// Caller's id for the end user.
    pub external_user_id: String,
    /// State.
    pub state: LinkSessionState,
    /// Flow.
    pub flow: LinkFlow,
    /// Products requested (empty: every product the institution offers).
    pub products: Vec<Product>,
    /// Widget initialisation token (hosted flow).
    pub link_token: Option<String>,
    /// Hosted page URL (hosted flow).
    pub hosted_link_url: Option<String>,
    /// Pending MFA question (or, with `mfa_methods`, the prompt to choose a method).
    pub mfa_question: Option<String>,
    /// The delivery methods the institution offers while it waits for the user to choose one;
    /// empty when it asks a question instead.
    pub mfa_methods: Vec<MfaMethod>,
    /// The issued public token, sealed, once SUCCEEDED.
    pub public_token: Option<Sealed>,
    /// When the public token stops being exchangeable.
    pub public_token_expires_at: Option<Timestamp>,
    /// What the provider asked linkgate to remember between calls, sealed.
    pub upstream_state: Option<Sealed>,
    /// Why it failed.
    pub failure_reason: Option<ErrorReason>,
    /// Failure explanation safe for end users.
    pub failure_message: Option<String>,
    /// Where the hosted page returns the user.
    pub redirect_uri: Option<String>,
    /// The caller's idempotency key of the last mutating call on this session.
    pub last_request_id: Option<String>,
    /// Creation.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Expiry unless it succeeds first.
    pub expires_at: Timestamp,
    /// The connection this session repairs in place; `None` for a session that links a new one.
    pub repair_connection_id: Option<Uuid>,
}

impl LinkSession {
    /// Forgets the MFA step the session was waiting on (answered, or the session moved on).
    pub fn clear_mfa(&mut self) {
        self.mfa_question = None;
        self.mfa_methods.clear();
    }
}

/// A way an institution offers to deliver its MFA code (SMS, e-mail, app).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MfaMethod {
    /// What AnswerMfa sends back to choose it: the provider's own value, never a secret.
    pub id: String,
    /// What to show the user.
    pub label: String,
}

/// A secret sealed by `crypto::Sealer`. Opaque bytes; its `Debug` shows only their length.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(pub Vec<u8>);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

/// A public token linkgate saw issued, with what it connects. The token itself is sealed at rest;
/// `public_token` holds it opened, for the caller who owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicTokenRecord {
    /// The token.
    pub public_token: String,
    /// Provider id.
    pub provider: String,
    /// The session that produced it.
    pub link_session_id: Option<Uuid>,
    /// The institution it connects.
    pub institution_id: String,
    /// Caller's id for the end user.
    pub external_user_id: String,
    /// Issue time.
    pub created_at: Timestamp,
    /// Exchangeable until.
    pub expires_at: Timestamp,
}

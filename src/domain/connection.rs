//! Connections: a linked set of accounts at one institution, and the events that record every
//! change of one.

use super::ErrorReason;
use super::{ProductStatus, TenantId, Timestamp, stored_enum};
use uuid::Uuid;

stored_enum! {
    /// The state of a connection; see `ConnectionState` in the contract.
    pub enum ConnectionState {
        /// First import running.
        Pending = "pending",
        /// Data available and current.
        Ready = "ready",
        /// Data available, update running.
        Refreshing = "refreshing",
        /// Last update failed; older data served.
        Stale = "stale",
        /// The user must sign in again.
        LoginRequired = "login_required",
        /// No usable data.
        Error = "error",
        /// Revoked or deleted upstream.
        Disconnected = "disconnected",
        /// Deleted through linkgate. Terminal.
        Deleted = "deleted",
    }
}

stored_enum! {
    /// What a connection event records; see `ConnectionEventType` in the contract.
    pub enum ConnectionEventType {
        /// The connection's state, a product's state or its error changed.
        StateChanged = "state_changed",
        /// The user signed in again through a repair session; the connection is refreshing.
        LoginRepaired = "login_repaired",
        /// The user's consent lapses soon.
        ConsentExpiring = "consent_expiring",
        /// The user's consent lapsed; the connection needs its user again.
        ConsentExpired = "consent_expired",
        /// A refresh found accounts the connection did not have ([`EventDetails::new_account_ids`]).
        NewAccounts = "new_accounts",
        /// A refresh changed the connection's data ([`EventDetails::data_changes`]).
        DataUpdated = "data_updated",
    }
}

impl ConnectionState {
    /// Whether the sync engine still has work to do for a connection in this state.
    pub fn is_syncing(self) -> bool {
        matches!(self, Self::Pending | Self::Refreshing)
    }
}

/// Why a connection is unhealthy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnectionError {
    /// Machine-readable reason from the public catalogue.
    #[serde(with = "reason_name")]
    pub reason: ErrorReason,
    /// Explanation without upstream bodies or secrets.
    pub message: String,
    /// Whether retrying can help.
    pub retryable: bool,
    /// Whether the end user must act.
    pub user_action_required: bool,
}

/// A connection as linkgate stores and serves it. The provider's handle is not part of it: it
/// lives sealed in the store and only the sync engine opens it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Connection {
    /// linkgate's id.
    pub id: Uuid,
    /// Owner.
    pub tenant_id: TenantId,
    /// Provider id.
    pub provider: String,
    /// Provider's institution id.
    pub institution_id: String,
    /// Institution display name.
    pub institution_name: String,
    /// Caller's id for the end user.
    pub external_user_id: String,
    /// State.
    pub state: ConnectionState,
    /// Set when unhealthy.
    pub error: Option<ConnectionError>,
    /// One entry per linked product, ordered by product.
    pub products: Vec<ProductStatus>,
    /// Creation (the exchange).
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Last successful sync.
    pub last_synced_at: Option<Timestamp>,
    /// The link session that produced it, if any.
    pub link_session_id: Option<Uuid>,
    /// When the user's consent lapses, where the provider or the institution's regime sets a term.
    #[serde(default)]
    pub consent_expires_at: Option<Timestamp>,
    /// The consent expiry a CONSENT_EXPIRING warning went out for; a renewed consent warns again.
    /// linkgate's own bookkeeping, not part of the contract.
    #[serde(default)]
    pub consent_warned_for: Option<Timestamp>,
    /// The end user's older live connection of the same provider and institution, found at the
    /// exchange: the two link the same accounts.
    #[serde(default)]
    pub duplicate_of: Option<Uuid>,
}

impl Connection {
    /// When the CONSENT_EXPIRING warning is due, `lead` before expiry, unless it went out already.
    pub fn consent_warning_due(&self, lead: std::time::Duration) -> Option<Timestamp> {
        let expires = self.consent_expires_at?;
        let lead = chrono::Duration::from_std(lead).unwrap_or(chrono::Duration::MAX);
        (self.consent_warned_for != Some(expires)).then(|| expires.checked_sub_signed(lead).unwrap_or(expires))
    }

    /// The earliest of `next` and the consent calendar's next date (warning, then expiry), so the
    /// sync engine looks at the connection in time for each.
    pub fn next_look(&self, next: Timestamp, lead: std::time::Duration) -> Timestamp {
        let calendar = match self.consent_warning_due(lead) {
            Some(warning) => Some(warning),
            None => self.consent_expires_at.filter(|_| self.state != ConnectionState::LoginRequired),
        };
        calendar.map_or(next, |date| date.min(next))
    }

    /// What an erased connection's DELETED event keeps, so watchers everywhere still learn it is
    /// gone: its id, tenant and provider, DELETED, stamped with the time it was deleted, and
    /// nothing of its end user (no user id, institution, link session, error, consent term or
    /// duplicate).
    pub fn tombstone(&self) -> Connection {
        Connection {
            id: self.id,
            tenant_id: self.tenant_id,
            provider: self.provider.clone(),
            institution_id: String::new(),
            institution_name: String::new(),
            external_user_id: String::new(),
            state: ConnectionState::Deleted,
            error: None,
            products: Vec::new(),
            created_at: self.updated_at,
            updated_at: self.updated_at,
            last_synced_at: None,
            link_session_id: None,
            consent_expires_at: None,
            consent_warned_for: None,
            duplicate_of: None,
        }
    }

    /// The status of `product`, if the connection links it.
    pub fn product(&self, product: super::Product) -> Option<&ProductStatus> {
        self.products.iter().find(|p| p.product == product)
    }
}

/// One recorded change: the connection as it was right after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionEvent {
    /// Position in the log; strictly increasing.
    pub event_id: i64,
    /// What the event records.
    pub kind: ConnectionEventType,
    /// Snapshot after the change.
    pub connection: Connection,
    /// When the change happened.
    pub occurred_at: Timestamp,
    /// Sent as the connection's current state in place of history (a fresh watch, or a cursor
    /// older than the pruned log), not as a replayed change.
    pub snapshot: bool,
    /// What the event says beyond the connection's state.
    pub details: EventDetails,
}

/// What an event says beyond the connection's state, stored with it as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventDetails {
    /// On DATA_UPDATED: what the refresh changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_changes: Option<super::DataChanges>,
    /// On NEW_ACCOUNTS: the accounts the refresh found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_account_ids: Vec<Uuid>,
}

impl EventDetails {
    /// Whether there is nothing to store.
    pub fn is_empty(&self) -> bool {
        self.data_changes.is_none() && self.new_account_ids.is_empty()
    }
}

/// Stores an [`ErrorReason`] by its value name, which the contract promises never to change.
mod reason_name {
    use super::ErrorReason;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(reason: &ErrorReason, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(reason.stored_name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ErrorReason, D::Error> {
        let name = String::deserialize(d)?;
        ErrorReason::from_stored_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown error reason {name:?}")))
    }
}

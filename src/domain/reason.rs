//! Why something failed: linkgate's catalogue of error reasons, as the core and the store speak
//! of them.
//!
//! The same catalogue is published in the contract (`linkgate.v1.ErrorReason`), with the same
//! numbers; each variant's value is its contract number, so the API layer converts by value and a
//! test there checks that every name and number agrees. Stored rows keep the contract's full value
//! name (`ERROR_REASON_…`), which the contract promises never to change.

macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident = $value:literal => $name:literal,)*) => {
        /// A machine-readable reason, as callers see it in `google.rpc.ErrorInfo.reason`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(i32)]
        pub enum ErrorReason {
            $($(#[$doc])* $variant = $value,)*
        }

        impl ErrorReason {
            /// Every reason, in catalogue order.
            pub const ALL: &'static [ErrorReason] = &[$(Self::$variant),*];

            /// The name callers branch on (`PRODUCT_NOT_READY`): the value name without its prefix.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// The contract's full value name (`ERROR_REASON_PRODUCT_NOT_READY`), as stored.
            pub fn stored_name(self) -> &'static str {
                match self {
                    $(Self::$variant => concat!("ERROR_REASON_", $name),)*
                }
            }

            /// The reason whose [`stored_name`](Self::stored_name) is `name`.
            pub fn from_stored_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|reason| reason.stored_name() == name)
            }
        }
    };
}

reasons! {
    /// Not a reason; never sent.
    Unspecified = 0 => "UNSPECIFIED",
    /// A request field is missing or malformed.
    InvalidField = 1 => "INVALID_FIELD",
    /// The page token is malformed, altered, or of another query.
    InvalidPageToken = 2 => "INVALID_PAGE_TOKEN",
    /// The provider is unknown or not enabled.
    ProviderNotFound = 3 => "PROVIDER_NOT_FOUND",
    /// The institution is unknown to the provider.
    InstitutionNotFound = 4 => "INSTITUTION_NOT_FOUND",
    /// No such link session for the caller.
    LinkSessionNotFound = 5 => "LINK_SESSION_NOT_FOUND",
    /// The link session's state does not allow the call.
    LinkSessionWrongState = 6 => "LINK_SESSION_WRONG_STATE",
    /// The link session expired before it completed.
    LinkSessionExpired = 7 => "LINK_SESSION_EXPIRED",
    /// The institution rejected the user's credentials.
    InvalidCredentials = 8 => "INVALID_CREDENTIALS",
    /// The institution rejected the MFA answer.
    InvalidMfaAnswer = 9 => "INVALID_MFA_ANSWER",
    /// The public token is unknown, or another tenant's.
    PublicTokenNotFound = 10 => "PUBLIC_TOKEN_NOT_FOUND",
    /// The public token expired before it was exchanged.
    PublicTokenExpired = 11 => "PUBLIC_TOKEN_EXPIRED",
    /// The public token was exchanged and its connection since deleted.
    PublicTokenUsed = 12 => "PUBLIC_TOKEN_USED",
    /// No such connection for the caller.
    ConnectionNotFound = 13 => "CONNECTION_NOT_FOUND",
    /// The connection was deleted.
    ConnectionDeleted = 14 => "CONNECTION_DELETED",
    /// No such account on the connection.
    AccountNotFound = 15 => "ACCOUNT_NOT_FOUND",
    /// No such portfolio on the connection.
    PortfolioNotFound = 16 => "PORTFOLIO_NOT_FOUND",
    /// The product's first import has not finished.
    ProductNotReady = 17 => "PRODUCT_NOT_READY",
    /// The user must sign in again.
    LoginRequired = 18 => "LOGIN_REQUIRED",
    /// The provider, institution or connection does not support this.
    CapabilityUnsupported = 19 => "CAPABILITY_UNSUPPORTED",
    /// The provider is down, timed out or answered 5xx.
    ProviderUnavailable = 20 => "PROVIDER_UNAVAILABLE",
    /// The provider throttled linkgate.
    ProviderRateLimited = 21 => "PROVIDER_RATE_LIMITED",
    /// The provider answered something linkgate could not understand.
    ProviderProtocol = 22 => "PROVIDER_PROTOCOL",
    /// The provider refused the request for good.
    ProviderRejected = 23 => "PROVIDER_REJECTED",
    /// A request id was reused with other parameters.
    RequestIdReused = 24 => "REQUEST_ID_REUSED",
    /// An exchange of this token is still running elsewhere.
    ExchangeInProgress = 25 => "EXCHANGE_IN_PROGRESS",
    /// The call carries no valid credentials.
    Unauthenticated = 26 => "UNAUTHENTICATED",
    /// The database did not answer.
    StoreUnavailable = 27 => "STORE_UNAVAILABLE",
    /// An unexpected failure inside linkgate.
    Internal = 28 => "INTERNAL",
    /// This replica is shutting down.
    ShuttingDown = 29 => "SHUTTING_DOWN",
    /// The caller exceeded a rate.
    RateLimited = 30 => "RATE_LIMITED",
    /// The tenant holds as many watch streams as it may.
    StreamLimitReached = 31 => "STREAM_LIMIT_REACHED",
    /// This replica shed the call under load.
    Overloaded = 32 => "OVERLOADED",
    /// The user's consent to share the connection's data lapsed.
    ConsentExpired = 33 => "CONSENT_EXPIRED",
    /// A change-feed cursor is older than the change window.
    SyncCursorExpired = 34 => "SYNC_CURSOR_EXPIRED",
    /// No such transaction (sandbox controls).
    TransactionNotFound = 35 => "TRANSACTION_NOT_FOUND",
    /// The call's API key lacks the scope the RPC needs.
    ScopeRequired = 36 => "SCOPE_REQUIRED",
    /// A watch stream's client took nothing for the stall timeout; the stream was ended.
    StreamStalled = 38 => "STREAM_STALLED",
    /// The request's bytes are not the method's request message.
    MalformedRequest = 43 => "MALFORMED_REQUEST",
    /// The request message is larger than the deployment accepts.
    MessageTooLarge = 44 => "MESSAGE_TOO_LARGE",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_read_back_and_carry_the_contract_prefix() {
        for &reason in ErrorReason::ALL {
            assert_eq!(ErrorReason::from_stored_name(reason.stored_name()), Some(reason));
            assert_eq!(reason.stored_name().strip_prefix("ERROR_REASON_"), Some(reason.name()));
        }
        assert_eq!(ErrorReason::from_stored_name("INVALID_FIELD"), None);
    }
}

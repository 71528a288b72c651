//! THE table from MoneyKit's states and errors to linkgate's (DESIGN.md "States" and "Errors"):
//!
//! | MoneyKit | linkgate |
//! |---|---|
//! | link `connecting`, `awaiting_token_exchange` | connection PENDING (importing) |
//! | link `connected`, a linked product `pending` / `in_progress` (never refreshed) | PENDING; the product NOT_READY |
//! | link `connected`, every linked product settled | READY; products READY (`completed`), FAILED (`failed`), UNSUPPORTED (`not_supported`, `no_permission`, `unavailable`) |
//! | link `error` with `auth_expired`, `invalid_credentials`, `user_oauth_denied`, `user_input_incorrect`, `user_setup_required`, `incomplete`, `user_error` | LOGIN_REQUIRED |
//! | link `error` with `system_error`, `provider_error`, `institution_error` | ERROR / STALE, retryable |
//! | link `error` with `no_accounts` | ERROR, not retryable |
//! | link `deleted`; `link_error.not_found`, `link_error.deleted`, `link_error.unauthorized_access` | DISCONNECTED |
//! | an unknown link state | PENDING (polling goes on), logged |
//! | an unknown link error | ERROR, retryable, logged |
//! | an unknown product state or error | NOT_READY / FAILED, logged |
//!
//! Link sessions: MoneyKit has no API to ask about a Connect session, so a hosted session stays
//! CONNECTING until it expires; the caller's front end receives Connect's `exchangeable_token`
//! and the caller exchanges it (see the adapter's module documentation).
//!
//! API errors (`error_code`) map onto [`ProviderError`] in [`classify`].

use super::ID;
use super::wire::LinkProduct;
use crate::domain::ProductState;
use crate::providers::log_safe;
use crate::providers::{ProviderError, UpstreamStatus};

/// Where one product of a link stands, in MoneyKit's own terms (`LinkProductState`, which webhooks
/// carry; the REST answers imply it through `refreshed_at`, `last_attempted_at` and
/// `error_code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductPhase {
    /// Not fetched yet.
    Pending,
    /// Fetching.
    InProgress,
    /// Data arrived.
    Completed,
    /// The last attempt failed.
    Failed,
    /// The institution or the user's consent does not allow it.
    Unsupported,
}

impl ProductPhase {
    /// A `LinkProductState` value (webhooks); `None` when MoneyKit did not document it.
    pub fn from_state(state: &str) -> Option<Self> {
        Some(match state {
            "pending" => Self::Pending,
            "in_progress" => Self::InProgress,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    /// What a REST `LinkProductResponse` implies.
    pub fn of(product: &LinkProduct) -> Self {
        if product.unavailable.is_some() {
            return Self::Unsupported;
        }
        match product.error_code.as_deref() {
            Some("not_supported" | "no_permission") => return Self::Unsupported,
            Some("rate_limit" | "auth_expired" | "timeout" | "unknown" | "no_accounts" | "institution_error") => {
                return Self::Failed;
            }
            Some(other) => {
                tracing::warn!(provider = ID, product_error = %log_safe(other), "unknown MoneyKit product error; counted as failed");
                return Self::Failed;
            }
            None => {}
        }
        match (&product.refreshed_at, &product.last_attempted_at) {
            (Some(_), _) => Self::Completed,
            (None, Some(_)) => Self::InProgress,
            (None, None) => Self::Pending,
        }
    }

    /// The product's state on the connection. `had_data`: an earlier import delivered it.
    pub fn product_state(self, had_data: bool) -> ProductState {
        match self {
            Self::Pending | Self::InProgress if had_data => ProductState::Refreshing,
            Self::Pending | Self::InProgress => ProductState::NotReady,
            Self::Completed => ProductState::Ready,
            Self::Failed => ProductState::Failed,
            Self::Unsupported => ProductState::Unsupported,
        }
    }

    /// Whether the first import of the product is over (delivered or never coming).
    pub fn is_settled(self) -> bool {
        !matches!(self, Self::Pending | Self::InProgress)
    }
}

/// The connection status a link's `state` and `error_code` mean, and whether both values were
/// documented. `products_settled`: every linked product is past its first import.
pub fn link_status(state: &str, error_code: Option<&str>, products_settled: bool) -> (UpstreamStatus, bool) {
    use UpstreamStatus::*;
    let failed = |message: &str, retryable| Failed { message: message.to_owned(), retryable };
    match state {
        "connecting" | "awaiting_token_exchange" => (Importing, true),
        "connected" if products_settled => (Ready, true),
        "connected" => (Importing, true),
        "deleted" => (Disconnected, true),
        "error" => match error_code {
            Some(
                "auth_expired"
                | "invalid_credentials"
                | "user_oauth_denied"
                | "user_input_incorrect"
                | "user_setup_required"
                | "incomplete"
                | "user_error",
            ) => (LoginRequired, true),
            Some("system_error" | "provider_error" | "institution_error") => {
                (failed("MoneyKit could not reach the institution", true), true)
            }
            Some("no_accounts") => (failed("the institution reports no accounts for this user", false), true),
            _ => (failed("MoneyKit reports the link in error", true), false),
        },
        _ => (Importing, false),
    }
}

/// A MoneyKit API error: the operation, the HTTP status, `error_code` and, for
/// `link_error.bad_state`, `link_error_code`; codes already made fit for logs.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// linkgate's name of the call.
    pub operation: &'static str,
    /// HTTP status.
    pub status: u16,
    /// `error_code`.
    pub code: String,
    /// `link_error_code`.
    pub link_error_code: String,
}

/// The API error codes meaning the link is gone for linkgate.
pub fn link_gone(code: &str) -> bool {
    matches!(code, "link_error.not_found" | "link_error.deleted" | "link_error.unauthorized_access")
}

/// THE table from MoneyKit's API errors to linkgate's (the expired-token renewal happens before
/// this, in the adapter; operations make their own exceptions, such as deleting a deleted link).
pub fn classify(error: &ApiError) -> ProviderError {
    use ProviderError as E;
    let rejected = |why: &str| E::Rejected {
        detail: format!(
            "{}: MoneyKit refused the call: {why} (HTTP {}, {})",
            error.operation, error.status, error.code
        ),
    };
    match error.code.as_str() {
        "link_session_error.invalid_token_exchange" => E::InvalidPublicToken,
        "api_error.auth.unauthorized" | "api_error.auth.expired_access_token" => {
            rejected("the client id or secret was not accepted")
        }
        "api_error.rate_limit_exceeded" => E::RateLimited { retry_after: None },
        code if link_gone(code) => E::LoginRequired,
        "link_error.bad_state" => match link_status("error", Some(&error.link_error_code), false).0 {
            UpstreamStatus::LoginRequired => E::LoginRequired,
            _ => E::Unavailable { retry_after: None },
        },
        "link_session_error.forbidden_config" => E::Unsupported("these link settings for the configured MoneyKit app"),
        "link_error.forbidden_action" => rejected("the app may not do this"),
        "api_error.request.validation_failed" => rejected("the request was not valid for MoneyKit"),
        "link_error.bad_config" => rejected("the link is not configured for this"),
        "institution_error.not_found" => rejected("the institution is unknown"),
        other => {
            tracing::warn!(
                provider = ID,
                operation = error.operation,
                http.status = error.status,
                moneykit_error = other,
                "unknown MoneyKit error code"
            );
            rejected("an error linkgate does not know")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, code: &str, link_error_code: &str) -> ProviderError {
        classify(&ApiError { operation: "test", status, code: code.into(), link_error_code: link_error_code.into() })
    }

    #[test]
    fn api_errors_map_through_one_table() {
        use ProviderError as E;
        assert!(matches!(refused(400, "link_session_error.invalid_token_exchange", ""), E::InvalidPublicToken));
        assert!(matches!(refused(401, "api_error.auth.unauthorized", ""), E::Rejected { .. }));
        assert!(matches!(refused(404, "link_error.not_found", ""), E::LoginRequired));
        assert!(matches!(refused(410, "link_error.deleted", ""), E::LoginRequired));
        assert!(matches!(refused(422, "link_error.bad_state", "auth_expired"), E::LoginRequired));
        assert!(matches!(refused(422, "link_error.bad_state", "provider_error"), E::Unavailable { .. }));
        assert!(matches!(refused(422, "api_error.request.validation_failed", ""), E::Rejected { .. }));
        assert!(matches!(refused(403, "link_session_error.forbidden_config", ""), E::Unsupported(_)));
        let E::Rejected { detail } = refused(418, "teapot_error.new", "") else { panic!() };
        assert!(detail.contains("418") && detail.contains("teapot_error.new"), "{detail}");
    }

    #[test]
    fn link_states_map_through_one_table() {
        use UpstreamStatus::*;
        assert_eq!(link_status("connecting", None, false), (Importing, true));
        assert_eq!(link_status("awaiting_token_exchange", None, false), (Importing, true));
        assert_eq!(link_status("connected", None, false), (Importing, true));
        assert_eq!(link_status("connected", None, true), (Ready, true));
        assert_eq!(link_status("deleted", None, true), (Disconnected, true));
        for code in ["auth_expired", "invalid_credentials", "user_oauth_denied", "incomplete", "user_setup_required"] {
            assert_eq!(link_status("error", Some(code), true), (LoginRequired, true), "{code}");
        }
        assert!(matches!(link_status("error", Some("provider_error"), true), (Failed { retryable: true, .. }, true)));
        assert!(matches!(link_status("error", Some("no_accounts"), true), (Failed { retryable: false, .. }, true)));
        assert!(matches!(link_status("error", Some("brand_new"), true), (Failed { retryable: true, .. }, false)));
        assert_eq!(link_status("teleporting", None, true), (Importing, false), "unknown states keep polling");
    }

    #[test]
    fn product_phases_follow_the_rest_fields_and_the_webhook_states() {
        let product = |refreshed: bool, attempted: bool, error: Option<&str>| LinkProduct {
            refreshed_at: refreshed.then(|| "2025-01-01T00:00:00".to_owned()),
            last_attempted_at: attempted.then(|| "2025-01-01T00:00:00".to_owned()),
            error_code: error.map(str::to_owned),
            unavailable: None,
        };
        assert_eq!(ProductPhase::of(&product(false, false, None)), ProductPhase::Pending);
        assert_eq!(ProductPhase::of(&product(false, true, None)), ProductPhase::InProgress);
        assert_eq!(ProductPhase::of(&product(true, true, None)), ProductPhase::Completed);
        assert_eq!(ProductPhase::of(&product(true, true, Some("timeout"))), ProductPhase::Failed);
        assert_eq!(ProductPhase::of(&product(false, true, Some("no_permission"))), ProductPhase::Unsupported);
        assert_eq!(ProductPhase::of(&product(false, true, Some("novel"))), ProductPhase::Failed);
        assert_eq!(ProductPhase::from_state("in_progress"), Some(ProductPhase::InProgress));
        assert_eq!(ProductPhase::from_state("paused"), None);
        assert_eq!(ProductPhase::Pending.product_state(false), ProductState::NotReady);
        assert_eq!(ProductPhase::InProgress.product_state(true), ProductState::Refreshing);
        assert_eq!(ProductPhase::Completed.product_state(false), ProductState::Ready);
        assert_eq!(ProductPhase::Unsupported.product_state(true), ProductState::Unsupported);
    }
}

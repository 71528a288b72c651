//! The service's error type and its one mapping onto `tonic::Status`.
//!
//! Every error has a reason from the public `ErrorReason` catalogue; the gRPC code follows from
//! the reason in [`code_for`], the only place codes are chosen. Callers get the reason in
//! `google.rpc.ErrorInfo`, field violations in `BadRequest` and a delay in `RetryInfo`; the cause
//! chain of internal failures goes to the log only, never into a message.

use crate::domain::ErrorReason;
use crate::providers::ProviderError;
use std::collections::BTreeMap;
use std::time::Duration;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every linkgate error.
pub const ERROR_DOMAIN: &str = "linkgate.dev";

/// Field violations one error carries at most, and the characters of each description: an error
/// about a request with 10,000 bad entries still fits the 8 KiB of trailers clients accept. The
/// rest are counted in the `omitted_violations` metadata.
const MAX_VIOLATIONS: usize = 20;
const MAX_DESCRIPTION_CHARS: usize = 200;

/// A failed request, described for the caller.
#[derive(Debug)]
pub struct Error {
    reason: ErrorReason,
    message: String,
    metadata: BTreeMap<&'static str, String>,
    violations: Vec<(String, String)>,
    retry_after: Option<Duration>,
    /// Kept for the log; never shown to callers.
    source: Option<anyhow::Error>,
}

/// Shorthand for results of service operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with `reason` and a caller-facing `message`.
    pub fn new(reason: ErrorReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            metadata: BTreeMap::new(),
            violations: Vec::new(),
            retry_after: None,
            source: None,
        }
    }

    /// A malformed or missing request field.
    pub fn invalid_field(field: &str, description: impl Into<String>) -> Self {
        let description = description.into();
        let mut error = Self::new(ErrorReason::InvalidField, format!("invalid {field}: {description}"));
        error.violations.push((field.to_owned(), description));
        error
    }

    /// Several invalid fields reported at once. The message names each field once, the first
    /// [`MAX_VIOLATIONS`] of them.
    pub fn invalid_fields(violations: Vec<(String, String)>) -> Self {
        let mut fields: Vec<&str> = Vec::new();
        for (field, _) in &violations {
            if !fields.contains(&field.as_str()) {
                fields.push(field);
            }
        }
        let mut message = format!("invalid fields: {}", fields[..fields.len().min(MAX_VIOLATIONS)].join(", "));
        if fields.len() > MAX_VIOLATIONS {
            message.push_str(&format!(" and {} more", fields.len() - MAX_VIOLATIONS));
        }
        let mut error = Self::new(ErrorReason::InvalidField, message);
        error.violations = violations;
        error
    }

    /// An unexpected failure. The caller sees only the request id; `source` is logged.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        let mut error = Self::new(ErrorReason::Internal, "internal error");
        error.source = Some(source.into());
        error
    }

    /// Adds a metadata entry to the caller's `ErrorInfo` (and to the message's context).
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.metadata.insert(key, value.into());
        self
    }

    /// Tells the caller when retrying makes sense.
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// The reason.
    pub fn reason(&self) -> ErrorReason {
        self.reason
    }

    /// Converts a provider failure met while serving a request.
    pub fn from_provider(provider: &str, error: ProviderError) -> Self {
        let error = match error {
            ProviderError::InvalidPublicToken => {
                Self::new(ErrorReason::PublicTokenNotFound, "the provider does not recognise this public token")
            }
            ProviderError::LoginRequired => {
                Self::new(ErrorReason::LoginRequired, "the user must sign in to the institution again")
            }
            ProviderError::Unsupported(capability) => {
                Self::new(ErrorReason::CapabilityUnsupported, format!("the provider does not support {capability}"))
                    .with("capability", capability)
            }
            ProviderError::Unavailable { retry_after } => {
                Self::new(ErrorReason::ProviderUnavailable, "the provider is unavailable")
                    .retry_after(retry_after.unwrap_or(Duration::from_secs(1)))
            }
            ProviderError::RateLimited { retry_after } => {
                Self::new(ErrorReason::ProviderRateLimited, "the provider is throttling requests")
                    .retry_after(retry_after.unwrap_or(Duration::from_secs(1)))
            }
            ProviderError::ProductNotReady => {
                Self::new(ErrorReason::ProductNotReady, "the provider is still extracting this product's data")
            }
            ProviderError::Rejected { detail } => {
                let mut error = Self::new(ErrorReason::ProviderRejected, "the provider refused the request");
                error.source = Some(anyhow::anyhow!(detail));
                error
            }
            ProviderError::Protocol { detail } => {
                let mut error = Self::new(ErrorReason::ProviderProtocol, "the provider sent an unexpected answer");
                error.source = Some(anyhow::anyhow!(detail));
                error
            }
        };
        error.with("provider", provider)
    }

    /// The caller-facing status, carrying `request_id` in its `ErrorInfo`.
    pub fn into_status(self, request_id: &str) -> tonic::Status {
        let code = code_for(self.reason);
        let mut message = self.message;
        if self.reason == ErrorReason::Internal {
            message = format!("internal error (request id {request_id})");
        }
        let mut metadata: std::collections::HashMap<String, String> =
            self.metadata.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        metadata.insert("request_id".to_owned(), request_id.to_owned());
        let omitted = self.violations.len().saturating_sub(MAX_VIOLATIONS);
        if omitted > 0 {
            metadata.insert("omitted_violations".to_owned(), omitted.to_string());
        }
        let mut details = ErrorDetails::with_error_info(self.reason.name(), ERROR_DOMAIN, metadata);
        if !self.violations.is_empty() {
            let cut = |text: String| match text.char_indices().nth(MAX_DESCRIPTION_CHARS) {
                Some((end, _)) => format!("{}…", &text[..end]),
                None => text,
            };
            details.set_bad_request(
                self.violations
                    .into_iter()
                    .take(MAX_VIOLATIONS)
                    .map(|(field, description)| tonic_types::FieldViolation::new(cut(field), cut(description)))
                    .collect::<Vec<_>>(),
            );
        }
        if let Some(delay) = self.retry_after {
            details.set_retry_info(Some(delay));
        }
        tonic::Status::with_error_details(code, message, details)
    }

    /// Logs the error at a level that matches who has to act on it.
    pub fn log(&self, request_id: &str) {
        match (&self.source, code_for(self.reason)) {
            (Some(source), _) => tracing::error!(
                request_id, reason = self.reason.name(), error.cause_chain = ?source, "{}", self.message
            ),
            (None, Code::Internal | Code::Unavailable) => {
                tracing::warn!(request_id, reason = self.reason.name(), "{}", self.message)
            }
            (None, _) => tracing::debug!(request_id, reason = self.reason.name(), "{}", self.message),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason.name(), self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source:#}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<crate::store::StoreError> for Error {
    fn from(error: crate::store::StoreError) -> Self {
        match error {
            crate::store::StoreError::Unavailable(source) => {
                let mut error = Self::new(ErrorReason::StoreUnavailable, "the database is unavailable")
                    .retry_after(Duration::from_secs(1));
                error.source = Some(source);
                error
            }
            crate::store::StoreError::Other(source) => Self::internal(source),
        }
    }
}

/// The gRPC code of each reason. Provider throttling is UNAVAILABLE, not RESOURCE_EXHAUSTED: the
/// caller exhausted nothing, and UNAVAILABLE is what gRPC clients retry.
pub fn code_for(reason: ErrorReason) -> Code {
    use ErrorReason as R;
    match reason {
        R::InvalidField | R::InvalidPageToken | R::RequestIdReused | R::MalformedRequest => Code::InvalidArgument,
        R::ProviderNotFound
        | R::PublicTokenNotFound
        | R::InstitutionNotFound
        | R::LinkSessionNotFound
        | R::ConnectionNotFound
        | R::AccountNotFound
        | R::PortfolioNotFound
        | R::TransactionNotFound => Code::NotFound,
        R::LinkSessionWrongState
        | R::LinkSessionExpired
        | R::InvalidCredentials
        | R::InvalidMfaAnswer
        | R::PublicTokenExpired
        | R::PublicTokenUsed
        | R::ConnectionDeleted
        | R::ProductNotReady
        | R::LoginRequired
        | R::ConsentExpired
        | R::SyncCursorExpired
        | R::CapabilityUnsupported
        | R::ProviderRejected => Code::FailedPrecondition,
        R::ExchangeInProgress => Code::Aborted,
        R::ProviderUnavailable | R::ProviderRateLimited | R::StoreUnavailable | R::ShuttingDown | R::Overloaded => {
            Code::Unavailable
        }
        R::Unauthenticated => Code::Unauthenticated,
        R::ScopeRequired => Code::PermissionDenied,
        R::RateLimited | R::StreamLimitReached | R::StreamStalled | R::MessageTooLarge => Code::ResourceExhausted,
        R::ProviderProtocol | R::Internal | R::Unspecified => Code::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_cause_from_the_caller() {
        let status = Error::internal(anyhow::anyhow!("password=hunter2 leaked into a cause")).into_status("req-1");
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"), "message was {:?}", status.message());
        assert!(status.message().contains("req-1"));
        let info = status.get_details_error_info().expect("error info");
        assert_eq!(info.reason, "INTERNAL");
        assert_eq!(info.metadata.get("request_id").map(String::as_str), Some("req-1"));
    }

    #[test]
    fn an_error_about_ten_thousand_fields_fits_a_clients_trailers() {
        let violations = (0..10_000).map(|n| (format!("entries[{n}]"), "x".repeat(1_000))).collect();
        let status = Error::invalid_fields(violations).into_status("req-1");
        let http = status.into_http::<()>();
        let size: usize = http.headers().iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
        assert!(size < 8 * 1024, "trailers of {size} bytes");
        let status = tonic::Status::from_header_map(http.headers()).expect("a status");
        let details = status.get_error_details();
        let violations = &details.bad_request().expect("a BadRequest").field_violations;
        assert_eq!(violations.len(), MAX_VIOLATIONS);
        assert_eq!(violations[0].field, "entries[0]");
        assert!(violations[0].description.chars().count() <= MAX_DESCRIPTION_CHARS + 1);
        let info = details.error_info().expect("an ErrorInfo");
        assert_eq!(info.metadata.get("omitted_violations").map(String::as_str), Some("9980"));
        assert!(status.message().ends_with("and 9980 more"), "{}", status.message());
    }

    #[test]
    fn every_reason_has_a_code_and_a_prefixless_name() {
        for &reason in &ErrorReason::ALL[1..] {
            assert!(!reason.name().starts_with("ERROR_REASON_"));
            assert_ne!(code_for(reason), Code::Ok);
        }
    }
}

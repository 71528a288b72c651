//! Assertions on linkgate's errors: the code, and the reason callers branch on.

use tonic_types::StatusExt;

/// The `ErrorInfo.reason` of a status, which is the contract callers branch on.
pub fn reason(status: &tonic::Status) -> String {
    status.get_details_error_info().map(|info| info.reason).unwrap_or_else(|| panic!("no ErrorInfo on {status:?}"))
}

/// Asserts a status's code and reason, with `case` naming the case in the failure message.
#[track_caller]
pub fn assert_error(case: &str, status: &tonic::Status, code: tonic::Code, expected_reason: &str) {
    assert_eq!(status.code(), code, "{case}: code (message {:?})", status.message());
    assert_eq!(reason(status), expected_reason, "{case}: reason");
    let info = status.get_details_error_info().unwrap();
    assert!(info.metadata.contains_key("request_id"), "{case}: every error carries the request id");
}

/// As [`assert_error`], for a provider's error, which also names the provider.
#[track_caller]
pub fn assert_provider_error(provider: &str, case: &str, status: &tonic::Status, code: tonic::Code, reason: &str) {
    assert_error(case, status, code, reason);
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.metadata.get("provider").map(String::as_str), Some(provider), "{case}: provider named");
}

//! Errors tonic answers itself, before a call reaches linkgate's handlers, given a reason like
//! every other error: a request that is not the method's protobuf message (tonic: INTERNAL, no
//! details) becomes INVALID_ARGUMENT / MALFORMED_REQUEST, and one over the size limit (tonic:
//! OUT_OF_RANGE, no details) RESOURCE_EXHAUSTED / MESSAGE_TOO_LARGE with the limit. Each is
//! counted (`linkgate_rejections_total{limit="malformed_request"|"message_too_large"}` and the
//! RPC metrics) and logged once at debug with the request id.
//!
//! Tonic answers these trailers-only, in the response headers, and without
//! `grpc-status-details-bin`, which every status linkgate makes carries: that is how they are told
//! apart from the handlers' own errors. Tonic's messages are matched by their fixed openings,
//! which `tests/api/bad_input.rs` pins against the tonic in use.

use crate::domain::ErrorReason;
use crate::error::Error;
use std::time::Duration;
use tonic::Code;

/// How tonic's decoder starts a message for bytes that are not the request message.
const DECODE_FAILURE: &str = "failed to decode Protobuf message";
/// How tonic starts a message for a request over `max_decoding_message_size`.
const TOO_LARGE: &str = "Error, decoded message length too large";

/// `response`, with a transport-level error tonic made in place of a handler's answer replaced
/// by linkgate's own error for it.
pub fn with_reason<B: Default>(
    response: http::Response<B>,
    method: &str,
    request_id: &str,
    elapsed: Duration,
) -> http::Response<B> {
    let headers = response.headers();
    if headers.contains_key("grpc-status-details-bin") {
        return response;
    }
    let Some(status) = tonic::Status::from_header_map(headers) else { return response };
    let (error, limit) = match status.code() {
        Code::Internal if status.message().starts_with(DECODE_FAILURE) => (
            Error::new(
                ErrorReason::MalformedRequest,
                "the request is not a valid encoding of this method's request message",
            ),
            "malformed_request",
        ),
        Code::OutOfRange if status.message().starts_with(TOO_LARGE) => {
            let error =
                Error::new(ErrorReason::MessageTooLarge, "the request message is larger than this server accepts");
            (with_limit(error, status.message()), "message_too_large")
        }
        _ => return response,
    };
    tracing::debug!(request_id, method, reason = error.reason().name(), cause = status.message(), "{error}");
    crate::telemetry::metrics::metrics().rejections.with_label_values(&[limit]).inc();
    let status = error.into_status(request_id);
    crate::telemetry::metrics::record_rpc(method, status.code(), elapsed);
    status.into_http()
}

/// Adds the limit tonic's message states ("… the limit is: 4194304 bytes") to the metadata.
fn with_limit(error: Error, message: &str) -> Error {
    let limit = message
        .rsplit_once("the limit is: ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|bytes| bytes.parse::<u64>().ok());
    match limit {
        Some(bytes) => error.with("limit_bytes", bytes.to_string()),
        None => error,
    }
}

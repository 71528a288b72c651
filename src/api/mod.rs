//! The gRPC surface: one module per service, each a thin layer that validates the request,
//! calls the service core (`App`) and converts the answer. Shared here: who is calling, turning
//! results into responses, request validation and page tokens.

pub mod account;
pub mod connection;
pub mod convert;
pub mod link;
pub mod portfolio;
pub mod sandbox;
pub mod statement;

use crate::app::{App, Caller};
use crate::domain::{Date, Product, Timestamp};
use crate::error::{Error, Result};
use crate::pb;
use crate::server::auth::{REQUEST_ID_HEADER, is_valid_key};
use crate::store::{Cursor, DateRange, Page, PageOf};
use futures::{Stream, StreamExt};
use std::pin::Pin;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// Default and largest page sizes of every list.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Largest page size.
pub const MAX_PAGE_SIZE: i32 = 500;

/// A server stream of one RPC.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The caller the authentication layer identified.
pub fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::internal("request reached a service without passing authentication"))
}

/// The response to a unary call: the message with the request id, or the error as a status.
pub fn respond<T>(caller: &Caller, result: Result<T>) -> Result<Response<T>, Status> {
    match result {
        Ok(message) => {
            crate::telemetry::metrics::record_rpc(&caller.method, tonic::Code::Ok, caller.started.elapsed());
            let mut response = Response::new(message);
            if let Ok(value) = MetadataValue::try_from(caller.request_id.as_str()) {
                response.metadata_mut().insert(REQUEST_ID_HEADER, value);
            }
            Ok(response)
        }
        Err(error) => Err(fail(caller, error)),
    }
}

/// Logs an error and turns it into the caller's status.
pub fn fail(caller: &Caller, error: Error) -> Status {
    error.log(&caller.request_id);
    let status = error.into_status(&caller.request_id);
    crate::telemetry::metrics::record_rpc(&caller.method, status.code(), caller.started.elapsed());
    status
}

/// The response to a streaming call: each item converted, each error mapped with the request id.
pub fn respond_stream<T, U>(
    caller: &Caller,
    stream: impl Stream<Item = Result<U>> + Send + 'static,
    convert: impl Fn(U) -> T + Send + 'static,
) -> Response<ResponseStream<T>>
where
    T: Send + 'static,
    U: Send + 'static,
{
    crate::telemetry::metrics::record_rpc(&caller.method, tonic::Code::Ok, caller.started.elapsed());
    let caller_for_errors = caller.clone();
    // Errors ending a stream (shutdown, a failed replay) are logged; the RPC was counted at open.
    let stream = stream.map(move |item| {
        item.map(&convert).map_err(|error| {
            error.log(&caller_for_errors.request_id);
            error.into_status(&caller_for_errors.request_id)
        })
    });
    let mut response = Response::new(Box::pin(stream) as ResponseStream<T>);
    if let Ok(value) = MetadataValue::try_from(caller.request_id.as_str()) {
        response.metadata_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Collects every problem of a request, so the caller learns of all of them at once.
#[derive(Debug, Default)]
pub struct Validator {
    violations: Vec<(String, String)>,
}

impl Validator {
    /// Records a problem with `field`; checks outside the validator's own use it too.
    pub fn violation(&mut self, field: &str, description: impl Into<String>) {
        self.violations.push((field.to_owned(), description.into()));
    }

    /// A required UUID.
    pub fn id(&mut self, field: &str, value: &str) -> Uuid {
        if value.is_empty() {
            self.violation(field, "required");
            return Uuid::nil();
        }
        self.optional_id(field, value).unwrap_or_default()
    }

    /// An optional UUID; empty means none.
    pub fn optional_id(&mut self, field: &str, value: &str) -> Option<Uuid> {
        if value.is_empty() {
            return None;
        }
        match Uuid::try_parse(value) {
            Ok(id) => Some(id),
            Err(_) => {
                self.violation(field, "must be a UUID such as 0193a7e4-8c2e-7cc1-9f0a-3b1d2c4e5f60");
                None
            }
        }
    }

    /// Required text of at most `max` characters, without control characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) -> String {
        if value.is_empty() {
            self.violation(field, "required");
        }
        self.optional_text(field, value, max).unwrap_or_default()
    }

    /// Optional text; empty means none.
    pub fn optional_text(&mut self, field: &str, value: &str, max: usize) -> Option<String> {
        if value.is_empty() {
            return None;
        }
        if value.chars().count() > max {
            self.violation(field, format!("at most {max} characters"));
            return None;
        }
        if value.chars().any(char::is_control) {
            self.violation(field, "must not contain control characters");
            return None;
        }
        Some(value.to_owned())
    }

    /// An optional idempotency key.
    pub fn request_id(&mut self, value: &str) -> Option<String> {
        if value.is_empty() {
            return None;
        }
        if !is_valid_key(value) {
            self.violation("request_id", "1 to 128 printable ASCII characters");
            return None;
        }
        Some(value.to_owned())
    }

    /// A page size: 0 means the default, otherwise 1 to 500.
    pub fn page_size(&mut self, value: i32) -> usize {
        match value {
            0 => DEFAULT_PAGE_SIZE,
            1..=MAX_PAGE_SIZE => value as usize,
            _ => {
                self.violation("page_size", format!("must be between 0 and {MAX_PAGE_SIZE}"));
                DEFAULT_PAGE_SIZE
            }
        }
    }

    /// An optional calendar date, `YYYY-MM-DD`, between years 1900 and 2999.
    pub fn date(&mut self, field: &str, value: &str) -> Option<Date> {
        if value.is_empty() {
            return None;
        }
        let parsed = (value.len() == 10).then(|| Date::parse_from_str(value, "%Y-%m-%d").ok()).flatten();
        match parsed {
            Some(date) if (1900..3000).contains(&chrono::Datelike::year(&date)) => Some(date),
            Some(_) => {
                self.violation(field, "must be between 1900-01-01 and 2999-12-31");
                None
            }
            None => {
                self.violation(field, "must be a date as YYYY-MM-DD");
                None
            }
        }
    }

    /// An optional decimal amount as the contract writes money: digits with an optional leading
    /// "-" and at most 10 fractional digits, at most 18 integer digits.
    pub fn amount(&mut self, field: &str, value: &str) -> Option<crate::domain::Decimal> {
        if value.is_empty() {
            return None;
        }
        let digits = value.strip_prefix('-').unwrap_or(value);
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let well_formed = !whole.is_empty()
            && whole.len() <= 18
            && fraction.len() <= 10
            && !(digits.contains('.') && fraction.is_empty())
            && whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit());
        match value.parse::<crate::domain::Decimal>() {
            Ok(amount) if well_formed => Some(amount),
            _ => {
                self.violation(field, "must be a decimal such as -12.50, with at most 10 fractional digits");
                None
            }
        }
    }

    /// A required instant, between 1970 and 2999, kept to the microsecond as the stores keep it.
    pub fn timestamp(&mut self, field: &str, value: Option<&prost_types::Timestamp>) -> Option<Timestamp> {
        let Some(value) = value else {
            self.violation(field, "required");
            return None;
        };
        let nanos = u32::try_from(value.nanos).ok().filter(|nanos| *nanos < 1_000_000_000);
        let instant = nanos.and_then(|nanos| chrono::DateTime::from_timestamp(value.seconds, nanos));
        match instant {
            Some(instant) if (1970..3000).contains(&chrono::Datelike::year(&instant)) => {
                Some(chrono::SubsecRound::trunc_subsecs(instant, 6))
            }
            _ => {
                self.violation(field, "must be a valid instant between 1970 and 2999");
                None
            }
        }
    }

    /// An optional date range; the end must not precede the start.
    pub fn date_range(&mut self, start: &str, end: &str) -> DateRange {
        let range = DateRange { start: self.date("start_date", start), end: self.date("end_date", end) };
        if let (Some(start), Some(end)) = (range.start, range.end)
            && end < start
        {
            self.violation("end_date", "must not be before start_date");
        }
        range
    }

    /// Products asked for, in order: each must be a known value, listed once.
    pub fn products(&mut self, values: &[i32]) -> Vec<Product> {
        let mut products = Vec::new();
        for value in values {
            match convert::enum_field::<pb::Product, Product>("products", *value) {
                Ok(product) if products.contains(&product) => self.violation("products", "each product at most once"),
                Ok(product) => products.push(product),
                Err(_) => self.violation("products", format!("{value} is not a valid Product")),
            }
        }
        products.sort();
        products
    }

    /// Records a problem found by the caller of the validator.
    pub fn reject(&mut self, field: &str, description: impl Into<String>) {
        self.violation(field, description);
    }

    /// Ok when every field was valid.
    pub fn finish(self) -> Result<()> {
        if self.violations.is_empty() { Ok(()) } else { Err(Error::invalid_fields(self.violations)) }
    }
}

/// The page a list request asks for, its token checked against the query it must continue.
pub fn page(app: &App, scope: &str, size: usize, token: &str) -> Result<Page> {
    Ok(Page { size, after: app.page_tokens.check(scope, token)? })
}

/// The token of the page after `page`, or empty on the last page.
pub fn next_page_token<T>(app: &App, scope: &str, page: &PageOf<T>) -> String {
    page.next.as_ref().map(|cursor: &Cursor| app.page_tokens.issue(scope, cursor)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_validator_reports_every_bad_field_at_once() {
        let mut v = Validator::default();
        v.id("connection_id", "");
        v.optional_id("account_id", "nope");
        v.page_size(501);
        v.date_range("2026-02-30", "");
        v.request_id(&"x".repeat(200));
        let error = v.finish().unwrap_err();
        let status = error.into_status("r");
        let details = tonic_types::StatusExt::get_error_details(&status);
        let fields: Vec<String> =
            details.bad_request().unwrap().field_violations.iter().map(|f| f.field.clone()).collect();
        assert_eq!(fields, ["connection_id", "account_id", "page_size", "start_date", "request_id"]);
    }

    #[test]
    fn dates_are_strict_iso_days() {
        let mut v = Validator::default();
        assert_eq!(v.date("d", "2026-11-24"), Date::from_ymd_opt(2026, 11, 24));
        for bad in ["2026-1-5", "24/11/2026", "0001-01-01", "2026-11-24T00:00:00Z"] {
            let mut v = Validator::default();
            assert_eq!(v.date("d", bad), None, "{bad}");
            assert!(v.finish().is_err(), "{bad}");
        }
        let mut v = Validator::default();
        v.date_range("2026-03-01", "2026-02-01");
        assert!(v.finish().is_err());
    }
}

/// Hostile input: request fields at and beyond their limits.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn accepted_dates_are_exactly_iso_days_in_range(text in ".{0,20}") {
            let mut v = Validator::default();
            if let Some(date) = v.date("d", &text) {
                prop_assert_eq!(date.to_string(), text);
                prop_assert!((1900..3000).contains(&chrono::Datelike::year(&date)));
            } else if !text.is_empty() {
                prop_assert!(v.finish().is_err());
            }
        }

        #[test]
        fn page_sizes_outside_the_range_are_refused(size in any::<i32>()) {
            let mut v = Validator::default();
            let taken = v.page_size(size);
            prop_assert!((1..=MAX_PAGE_SIZE as usize).contains(&taken));
            prop_assert_eq!(v.finish().is_ok(), (0..=MAX_PAGE_SIZE).contains(&size));
        }

        #[test]
        fn ids_and_text_fields_never_accept_what_they_should_not(text in "\\PC{0,300}|[\\x00-\\x1f]{1,5}") {
            let mut v = Validator::default();
            if let Some(id) = v.optional_id("id", &text) {
                prop_assert_eq!(Uuid::try_parse(&text).ok(), Some(id));
            }
            let mut v = Validator::default();
            if let Some(accepted) = v.optional_text("t", &text, 128) {
                prop_assert!(accepted.chars().count() <= 128 && !accepted.chars().any(char::is_control));
            }
        }
    }
}

//! The CLIENT span of each attempt of an upstream HTTP call, as the OpenTelemetry HTTP client
//! conventions have it: named `{method} {url.template}` (just `{method}` for a call without a
//! template), kind CLIENT, a child of the current span (the call's SERVER span when the upstream
//! call is made for an RPC), with `http.request.method`, `url.template`, `server.address`,
//! `server.port`, `http.response.status_code`, `http.request.resend_count` on every attempt after
//! the first, and on failure `error.type` (the status code, or what failed below HTTP) and an
//! error status: a client counts 4xx answers as failures too. `linkgate.provider` and
//! `linkgate.operation` name the call as the logs and metrics do.
//!
//! The URL itself is never recorded: providers' paths carry their ids and tokens, and queries
//! their filters. The template comes from the adapter, relative to its base URL
//! (`/links/{link_id}`), and is made absolute with the base URL's own path, which is
//! configuration.

use opentelemetry::trace::Status;
use reqwest::Url;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// What one attempt is.
pub struct Attempt<'a> {
    /// The provider's id.
    pub provider: &'static str,
    /// The call's operation name (`moneykit.link`).
    pub operation: &'static str,
    /// The HTTP method.
    pub method: &'a str,
    /// Where it goes (never recorded whole).
    pub url: &'a Url,
    /// The path template relative to the provider's base URL, when the adapter named one.
    pub template: Option<&'a str>,
    /// Which attempt of the call, from 1.
    pub number: u32,
}

/// The span of `attempt`, under the current span.
pub fn attempt_span(attempt: &Attempt<'_>) -> Span {
    let template = attempt.template.and_then(|template| absolute_template(attempt.url, template));
    let name = match &template {
        Some(template) => format!("{} {template}", attempt.method),
        None => attempt.method.to_owned(),
    };
    let span = tracing::info_span!(
        target: crate::providers::upstream_client::LOG_TARGET,
        "upstream attempt",
        otel.name = %name,
        otel.kind = "client",
    );
    span.set_attribute("http.request.method", attempt.method.to_owned());
    if let Some(template) = template {
        span.set_attribute("url.template", template);
    }
    if let Some(host) = attempt.url.host_str() {
        span.set_attribute("server.address", host.to_owned());
    }
    if let Some(port) = attempt.url.port_or_known_default() {
        span.set_attribute("server.port", i64::from(port));
    }
    if attempt.number > 1 {
        span.set_attribute("http.request.resend_count", i64::from(attempt.number - 1));
    }
    span.set_attribute("linkgate.provider", attempt.provider);
    span.set_attribute("linkgate.operation", attempt.operation);
    span
}

/// Records the upstream's answer.
pub fn record_answer(span: &Span, status: u16) {
    span.set_attribute("http.response.status_code", i64::from(status));
    if status >= 400 {
        fail(span, status.to_string());
    }
}

/// Records an attempt that got no usable answer: `error_type` says why (`timeout`, …).
pub fn record_failure(span: &Span, error_type: &'static str) {
    fail(span, error_type.to_owned());
}

fn fail(span: &Span, error_type: String) {
    span.set_status(Status::error(error_type.clone()));
    span.set_attribute("error.type", error_type);
}

/// `template` (relative to the provider's base URL) prefixed with the base URL's path, which is
/// what `url` holds before the template's segments. `None` when `url` does not end in the
/// template's fixed segments: the adapter named the wrong template, a bug tests catch.
fn absolute_template(url: &Url, template: &str) -> Option<String> {
    let mut path: Vec<&str> = url.path_segments()?.collect();
    if path.last() == Some(&"") {
        path.pop();
    }
    let fixed: Vec<&str> = template.trim_matches('/').split('/').collect();
    let base = path.len().checked_sub(fixed.len());
    let fits = base.is_some_and(|base| {
        fixed.iter().zip(&path[base..]).all(|(want, got)| (want.starts_with('{') && want.ends_with('}')) || want == got)
    });
    debug_assert!(fits, "the template {template} does not fit the path {}", url.path());
    let base = base.filter(|_| fits)?;
    Some(path[..base].iter().chain(&fixed).fold(String::new(), |joined, segment| joined + "/" + segment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_take_the_base_urls_path_and_hide_the_variable_segments() {
        let url: Url = "https://api.example/v1/links/mk_secret_link/accounts".parse().unwrap();
        assert_eq!(
            absolute_template(&url, "/links/{link_id}/accounts").as_deref(),
            Some("/v1/links/{link_id}/accounts")
        );
        let url: Url = "http://127.0.0.1:9000/auth/token".parse().unwrap();
        assert_eq!(absolute_template(&url, "/auth/token").as_deref(), Some("/auth/token"));
        let url: Url = "https://api.example/api/v1/queries/connections/tok%2F1/".parse().unwrap();
        assert_eq!(
            absolute_template(&url, "queries/connections/{token}").as_deref(),
            Some("/api/v1/queries/connections/{token}"),
            "an escaped slash is one segment; a trailing slash is none"
        );
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn a_template_that_does_not_fit_its_url_is_a_bug() {
        let url: Url = "https://api.example/links/abc".parse().unwrap();
        absolute_template(&url, "/institutions/{id}");
    }
}

//! Logs and traces.
//!
//! Logs: structured events filtered by `RUST_LOG` (default `info`), human-readable on a terminal
//! and JSON lines otherwise, so log shippers get fields rather than prose. A JSON line written
//! inside a span carries that span's `trace_id` and `span_id` ([`log_ids`]).
//!
//! Traces follow the OpenTelemetry semantic conventions: each call is a SERVER span named
//! `package.Service/Method` with the `rpc.*` attributes ([`rpc`]), and each attempt of an upstream
//! HTTP call a CLIENT span beneath it ([`http_client`]). A call's span continues the caller's W3C
//! trace (its `traceparent`). When `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the OpenTelemetry
//! variable every collector deployment already uses; `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_EXPORTER_OTLP_TIMEOUT` and `OTEL_SERVICE_NAME` apply too), spans are exported over
//! OTLP/gRPC, batched in the background, and provider calls carry linkgate's span as their
//! parent, so one trace runs from the caller through linkgate to the provider.
//!
//! Without a collector, spans still get their ids (the caller's trace id, else a new one) but are
//! sampled out: nothing is recorded or exported, log lines still name the caller's trace, and the
//! caller's `traceparent` is passed on unchanged, so a provider's spans hang under a span that
//! exists rather than under linkgate's unexported one.

pub mod http_client;
pub mod log_ids;
pub mod metrics;
pub mod rpc;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use std::collections::HashMap;
use std::io::IsTerminal;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The variable that turns trace export on.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Keeps trace export running; dropping it flushes the spans not yet sent.
#[must_use = "dropping the guard stops trace export"]
pub struct Telemetry {
    exported: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(traces) = self.exported.take()
            && let Err(error) = traces.shutdown()
        {
            eprintln!("linkgate: flushing traces failed: {error}");
        }
    }
}

/// Installs the global subscriber, exporting traces when a collector is configured. Call it
/// inside the Tokio runtime (the exporter's gRPC client lives there). Safe to call more than
/// once (tests): later calls install nothing.
pub fn init() -> Telemetry {
    let exported = std::env::var_os(OTLP_ENDPOINT_ENV).filter(|v| !v.is_empty()).and_then(|_| match otlp_provider() {
        Ok(provider) => Some(provider),
        Err(error) => {
            eprintln!("linkgate: traces will not be exported: {error}");
            None
        }
    });
    let traces = exported.clone().unwrap_or_else(unexported);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let json = !std::io::stderr().is_terminal();
    let _ = subscriber(filter, json, std::io::stderr, &traces).try_init();
    Telemetry { exported }
}

/// linkgate's subscriber: events passing `filter` logged to `writer` (JSON lines with trace ids
/// when `json`, else text), and every span given OpenTelemetry ids by `traces`' tracer, which
/// exports them or not. `init` installs it; tests install it with an in-memory exporter.
pub fn subscriber<W>(
    filter: EnvFilter,
    json: bool,
    writer: W,
    traces: &SdkTracerProvider,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let logs = if json {
        let format = tracing_subscriber::fmt::format().json().flatten_event(true).with_current_span(false);
        let (format, probe) = log_ids::with_trace_ids(format);
        tracing_subscriber::fmt::layer().json().event_format(format).with_writer(writer).and_then(probe).boxed()
    } else {
        tracing_subscriber::fmt::layer().with_writer(writer).boxed()
    };
    let spans = tracing_opentelemetry::layer().with_tracer(traces.tracer("linkgate"));
    tracing_subscriber::registry().with(filter).with(spans).with(logs)
}

/// Spans that get ids (continuing the caller's trace) and nothing else: sampled out, so never
/// recorded, and with no exporter to send them to.
fn unexported() -> SdkTracerProvider {
    SdkTracerProvider::builder().with_sampler(Sampler::AlwaysOff).build()
}

fn otlp_provider() -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().build()?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("linkgate");
    }
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build())
}

/// Makes `span` continue the trace of a caller's `traceparent`.
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    // Without an exporting layer there is no trace to continue: nothing to do.
    let _ = span.set_parent(TraceContextPropagator::new().extract(&carrier));
}

/// The `traceparent` for a provider call made now: the current span's when it is exported
/// (sampled), so the provider's spans hang under linkgate's; else `caller`'s unchanged.
pub fn outgoing_traceparent(caller: Option<String>) -> Option<String> {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_sampled() {
        return caller;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent").or(caller)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::trace::InMemorySpanExporter;

    #[test]
    fn a_provider_call_carries_linkgates_span_under_the_callers_trace() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

        let outgoing = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("rpc");
            continue_trace(&span, caller);
            span.in_scope(|| outgoing_traceparent(Some(caller.to_owned())))
        })
        .expect("a traceparent goes out");

        let parts: Vec<&str> = outgoing.split('-').collect();
        assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "the caller's trace continues");
        assert_ne!(parts[2], "00f067aa0ba902b7", "linkgate's span is the provider call's parent");
        provider.force_flush().unwrap();
        let spans = exporter.get_finished_spans().unwrap();
        let rpc = spans.iter().find(|s| s.name == "rpc").expect("the rpc span was exported");
        assert_eq!(rpc.parent_span_id.to_string(), "00f067aa0ba902b7", "exported under the caller's span");
        assert_eq!(rpc.span_context.span_id().to_string(), parts[2]);
    }

    #[test]
    fn without_export_the_callers_traceparent_goes_on_unchanged() {
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned();
        let subscriber = subscriber("info".into(), true, std::io::sink, &unexported());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("rpc");
            continue_trace(&span, &caller);
            assert!(span.context().span().span_context().is_valid(), "the span has ids all the same");
            assert_eq!(span.in_scope(|| outgoing_traceparent(Some(caller.clone()))), Some(caller.clone()));
            assert_eq!(span.in_scope(|| outgoing_traceparent(None)), None);
        });
    }
}

//! Logs and traces.
//!
//! Logs: structured events filtered by `RUST_LOG` (default `info`), human-readable on a terminal
//! and JSON lines otherwise, so log shippers get fields rather than prose.
//!
//! Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the OpenTelemetry variable every collector
//! deployment already uses; `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT` and
//! `OTEL_SERVICE_NAME` apply too), every span is also exported over OTLP/gRPC, batched in the
//! background. A call's `rpc` span continues the caller's W3C trace (its `traceparent`), and
//! provider calls made inside it carry linkgate's span as their parent, so one trace runs from
//! the caller through linkgate to the provider. Without a collector nothing is exported, and the
//! caller's `traceparent` is passed on unchanged.

pub mod metrics;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::collections::HashMap;
use std::io::IsTerminal;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The variable that turns trace export on.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Keeps trace export running; dropping it flushes the spans not yet sent.
#[must_use = "dropping the guard stops trace export"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(traces) = self.traces.take()
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
    let traces = std::env::var_os(OTLP_ENDPOINT_ENV).filter(|v| !v.is_empty()).and_then(|_| match otlp_provider() {
        Ok(provider) => Some(provider),
        Err(error) => {
            eprintln!("linkgate: traces will not be exported: {error}");
            None
        }
    });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let logs = if std::io::stderr().is_terminal() {
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .boxed()
    };
    let spans = traces.as_ref().map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("linkgate")));
    let _ = tracing_subscriber::registry().with(filter).with(logs).with(spans).try_init();
    Telemetry { traces }
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

/// The `traceparent` for a provider call made now: the current span's when traces are exported
/// (so the provider's spans hang under linkgate's), else `caller`'s unchanged.
pub fn outgoing_traceparent(caller: Option<String>) -> Option<String> {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
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
        let span = tracing::info_span!("rpc");
        continue_trace(&span, &caller);
        assert_eq!(span.in_scope(|| outgoing_traceparent(Some(caller.clone()))), Some(caller));
        assert_eq!(outgoing_traceparent(None), None);
    }
}

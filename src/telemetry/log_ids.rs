//! `trace_id` and `span_id` on every JSON log line written inside a span, so a log line leads to
//! its trace and a trace to its log lines.
//!
//! The ids are the OpenTelemetry ids of the event's span (W3C hex: 32 and 16 digits), read when
//! the line is written. [`WithTraceIds`] wraps the JSON event formatter and adds the two fields
//! to the object it wrote; lines outside any span are written unchanged. Reading a span's
//! OpenTelemetry context takes the dispatcher the span lives in, which a formatter is not given:
//! [`DispatchProbe`], a layer of the same subscriber, learns it when the subscriber is built.

use opentelemetry::trace::TraceContextExt;
use std::sync::{Arc, OnceLock};
use tracing::dispatcher::WeakDispatch;
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Where the probe leaves the subscriber's dispatcher for the formatter.
type SharedDispatch = Arc<OnceLock<WeakDispatch>>;

/// A JSON event formatter whose lines also carry their span's trace and span ids.
pub struct WithTraceIds<F> {
    inner: F,
    dispatch: SharedDispatch,
}

/// A layer that does nothing but tell [`WithTraceIds`] which dispatcher it formats for. Weak, so
/// the subscriber does not keep itself alive.
pub struct DispatchProbe(SharedDispatch);

/// `json` made to add trace ids, and the probe to install beside it in the same subscriber.
pub fn with_trace_ids<F>(json: F) -> (WithTraceIds<F>, DispatchProbe) {
    let dispatch = SharedDispatch::default();
    (WithTraceIds { inner: json, dispatch: dispatch.clone() }, DispatchProbe(dispatch))
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for DispatchProbe {
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.0.set(subscriber.downgrade());
    }
}

impl<F> WithTraceIds<F> {
    /// The ids of the span `event` belongs to, when it is in one the OpenTelemetry layer knows.
    fn ids<S, N>(&self, context: &FmtContext<'_, S, N>, event: &Event<'_>) -> Option<(String, String)>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        let span = match event.parent() {
            Some(parent) => context.span(parent)?,
            None if event.is_contextual() => context.lookup_current()?,
            None => return None,
        };
        let dispatch = self.dispatch.get()?.upgrade()?;
        let otel = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch)?;
        let otel_span = otel.span();
        let ids = otel_span.span_context();
        ids.is_valid().then(|| (ids.trace_id().to_string(), ids.span_id().to_string()))
    }
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let Some((trace_id, span_id)) = self.ids(context, event) else {
            return self.inner.format_event(context, writer, event);
        };
        let mut line = String::with_capacity(512);
        self.inner.format_event(context, Writer::new(&mut line), event)?;
        // The JSON formatter writes one object and a newline: the ids go before its closing brace.
        match line.rfind('}') {
            Some(end) => {
                let (object, rest) = line.split_at(end);
                write!(writer, "{object},\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"{rest}")
            }
            None => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
    use std::sync::Mutex;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// The JSON lines logged by `work` under linkgate's subscriber with `traces`.
    fn json_lines(traces: &SdkTracerProvider, work: impl FnOnce()) -> Vec<serde_json::Value> {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = super::super::subscriber("info".into(), true, move || writer.clone(), traces);
        tracing::subscriber::with_default(subscriber, work);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|line| serde_json::from_str(line).expect("each line is one JSON object")).collect()
    }

    fn span_ids(span: &tracing::Span) -> (String, String) {
        let context = span.context();
        let ids = context.span().span_context().clone();
        (ids.trace_id().to_string(), ids.span_id().to_string())
    }

    #[test]
    fn lines_inside_a_span_carry_its_trace_and_span_ids_and_others_none() {
        let traces = SdkTracerProvider::builder().build();
        let mut expected = None;
        let lines = json_lines(&traces, || {
            tracing::info!("outside");
            let span = tracing::info_span!("rpc", request_id = "r-1");
            crate::telemetry::continue_trace(&span, CALLER);
            span.in_scope(|| tracing::info!(answer = 42, "inside"));
            let child = span.in_scope(|| tracing::info_span!("upstream"));
            child.in_scope(|| tracing::warn!("deeper"));
            expected = Some((span_ids(&span), span_ids(&child)));
        });
        let ((trace, rpc), (child_trace, upstream)) = expected.unwrap();
        assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736", "the caller's trace continues");
        assert_eq!(child_trace, trace);
        let outside = &lines[0];
        assert_eq!(outside["message"], "outside");
        assert!(outside.get("trace_id").is_none() && outside.get("span_id").is_none(), "{outside}");
        let inside = &lines[1];
        assert_eq!((inside["message"].as_str(), inside["answer"].as_i64()), (Some("inside"), Some(42)));
        assert_eq!(
            (inside["trace_id"].as_str(), inside["span_id"].as_str()),
            (Some(trace.as_str()), Some(rpc.as_str()))
        );
        assert_eq!(inside["spans"][0]["request_id"], "r-1", "the span's fields are still there");
        assert_eq!(lines[2]["span_id"].as_str(), Some(upstream.as_str()), "the innermost span's id");
    }

    /// Without export (spans sampled out), lines still name the caller's trace, so they can be
    /// found from the caller's side.
    #[test]
    fn without_export_lines_name_the_callers_trace() {
        let traces = SdkTracerProvider::builder().with_sampler(Sampler::AlwaysOff).build();
        let lines = json_lines(&traces, || {
            let span = tracing::info_span!("rpc");
            crate::telemetry::continue_trace(&span, CALLER);
            span.in_scope(|| tracing::info!("inside"));
        });
        assert_eq!(lines[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        let span_id = lines[0]["span_id"].as_str().unwrap();
        assert!(span_id.len() == 16 && span_id != "00f067aa0ba902b7", "linkgate's own span: {span_id}");
    }
}

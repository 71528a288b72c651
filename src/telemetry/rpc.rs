//! The SERVER span of each gRPC call, as the OpenTelemetry RPC conventions have it: named
//! `package.Service/Method`, kind SERVER, with `rpc.system` (`grpc`), `rpc.service`,
//! `rpc.method` and `rpc.grpc.status_code`. Its status is an error only for the codes the
//! conventions count as the server's fault (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL,
//! UNAVAILABLE, DATA_LOSS); a caller's mistake (NOT_FOUND, INVALID_ARGUMENT, …) is not.
//!
//! The span lasts as long as the response: [`RpcBody`] holds it until the body is done, so a
//! stream's span covers the stream until it ends, and log lines written while a stream produces
//! its messages belong to the call. The status is read where gRPC puts it: the headers of a
//! trailers-only answer (errors), else the trailers. A response dropped before its status (the
//! caller went away) ends CANCELLED. A call abandoned before it had a response at all (tonic's
//! `LINKGATE_REQUEST_TIMEOUT` fired, whose answer tonic makes outside this span, or the caller
//! reset the stream) ends with no status code.
//!
//! The span's tracing fields are what every log line of the call shows (`method`, `request_id`,
//! `traceparent`, `tenant`); the `rpc.*` attributes are set on the OpenTelemetry span directly,
//! so log lines do not repeat them and recording the status does not make the JSON log layer
//! format the span's fields again.

use hyper::body::{Body, Frame, SizeHint};
use opentelemetry::trace::Status;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::Code;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The span of one call to `method` (`/package.Service/Method`), continuing the caller's trace
/// when it sent a `traceparent`.
pub fn server_span(method: &str, request_id: &str, traceparent: Option<&str>, tenant: &impl std::fmt::Display) -> Span {
    let name = method.strip_prefix('/').unwrap_or(method);
    let span = tracing::info_span!(
        "rpc",
        otel.name = name,
        otel.kind = "server",
        method = %method,
        request_id = %request_id,
        traceparent,
        tenant = %tenant,
    );
    if let Some(traceparent) = traceparent {
        super::continue_trace(&span, traceparent);
    }
    let (service, rpc_method) = name.split_once('/').unwrap_or((name, ""));
    span.set_attribute("rpc.system", "grpc");
    span.set_attribute("rpc.service", service.to_owned());
    span.set_attribute("rpc.method", rpc_method.to_owned());
    span
}

/// Records how the call ended.
fn record_status(span: &Span, code: Code) {
    span.set_attribute("rpc.grpc.status_code", i64::from(code as i32));
    if matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    ) {
        span.set_status(Status::error(format!("{code:?}")));
    }
}

/// `response` with its body holding `span` until it is done; a trailers-only answer's status is
/// recorded now.
pub fn traced<B>(response: http::Response<B>, span: Span) -> http::Response<RpcBody<B>> {
    let status = tonic::Status::from_header_map(response.headers()).map(|status| status.code());
    if let Some(code) = status {
        record_status(&span, code);
    }
    response.map(|inner| RpcBody { inner, span, status_recorded: status.is_some() })
}

/// A response body that carries its call's span to the end (see the module documentation).
pub struct RpcBody<B> {
    inner: B,
    span: Span,
    status_recorded: bool,
}

impl<B> RpcBody<B> {
    /// A body of a response outside any call's span (health, reflection, refused calls).
    pub fn untraced(inner: B) -> Self {
        Self { inner, span: Span::none(), status_recorded: true }
    }
}

impl<B: Default> Default for RpcBody<B> {
    fn default() -> Self {
        Self::untraced(B::default())
    }
}

impl<B: Body + Unpin> Body for RpcBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let _entered = this.span.enter();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(trailers) = frame.trailers_ref()
            && let Some(status) = tonic::Status::from_header_map(trailers)
        {
            record_status(&this.span, status.code());
            this.status_recorded = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for RpcBody<B> {
    fn drop(&mut self) {
        if !self.status_recorded {
            record_status(&self.span, Code::Cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

    /// The spans `work` finished under linkgate's subscriber.
    fn finished(work: impl FnOnce()) -> Vec<SpanData> {
        let exporter = InMemorySpanExporter::default();
        let traces = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        tracing::subscriber::with_default(super::super::subscriber("info".into(), true, std::io::sink, &traces), work);
        traces.force_flush().unwrap();
        exporter.get_finished_spans().unwrap()
    }

    fn status_code(span: &SpanData) -> Option<i64> {
        span.attributes.iter().find(|kv| kv.key.as_str() == "rpc.grpc.status_code").map(|kv| match kv.value {
            opentelemetry::Value::I64(code) => code,
            ref other => panic!("an integer status code, not {other:?}"),
        })
    }

    #[test]
    fn only_the_servers_faults_fail_the_span_and_an_abandoned_answer_ends_cancelled() {
        for (code, failed) in [(Code::Unavailable, true), (Code::Internal, true), (Code::NotFound, false)] {
            let spans = finished(|| {
                let span = server_span("/linkgate.v1.AccountService/ListAccounts", "r-1", None, &"dev");
                drop(traced(tonic::Status::new(code, "no").into_http::<()>(), span));
            });
            assert_eq!(spans[0].name, "linkgate.v1.AccountService/ListAccounts");
            assert_eq!(status_code(&spans[0]), Some(code as i64), "{code:?}");
            assert_eq!(matches!(spans[0].status, Status::Error { .. }), failed, "{code:?}");
        }
        let spans = finished(|| {
            let span = server_span("/linkgate.v1.ConnectionService/WatchConnection", "r-2", None, &"dev");
            drop(traced(http::Response::new(()), span));
        });
        assert_eq!(status_code(&spans[0]), Some(Code::Cancelled as i64), "the caller left before the status");
        assert_eq!(spans[0].status, Status::Unset, "not the server's fault");
    }
}

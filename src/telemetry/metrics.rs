//! Prometheus metrics, served as text on the HTTP listener's `/metrics`. What each series means
//! and when to alert on it is in the README's operations guide.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::LazyLock;
use std::time::Duration;

/// Every series linkgate exports.
pub struct Metrics {
    registry: Registry,
    /// RPCs by service, method and gRPC status code.
    pub rpc_requests: IntCounterVec,
    /// RPC latency (to the response; for streams, to the stream's start).
    pub rpc_duration: HistogramVec,
    /// Provider calls by provider, operation and outcome.
    pub upstream_requests: IntCounterVec,
    /// Provider call latency.
    pub upstream_duration: HistogramVec,
    /// Watch streams open on this replica.
    pub open_streams: IntGauge,
    /// Time from an event's commit to its broadcast to this replica's watchers.
    pub event_delivery_lag: Histogram,
    /// Items the sync engine leased, by kind.
    pub sync_leased: IntCounterVec,
    /// Items due for a sync and not yet leased, by kind (sampled).
    pub sync_backlog: IntGaugeVec,
    /// Calls refused, and connections closed, by the limit or rule that refused them.
    pub rejections: IntCounterVec,
    /// Webhook deliveries by provider and verdict (accepted, duplicate, or why it was refused).
    pub webhook_deliveries: IntCounterVec,
    /// Leases taken over from a replica that let them lapse, by kind.
    pub lease_takeovers: IntCounterVec,
    /// 1 for each provider this replica offers, 0 for each it knows but has no settings for.
    pub provider_enabled: IntGaugeVec,
}

const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
        let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
        registry.register(Box::new(metric.clone()))?;
        Ok(metric)
    };
    let histogram = |name: &str, help: &str, labels: &[&str]| -> Result<HistogramVec, prometheus::Error> {
        let metric = HistogramVec::new(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()), labels)?;
        registry.register(Box::new(metric.clone()))?;
        Ok(metric)
    };
    let open_streams = IntGauge::new("linkgate_open_streams", "Watch streams open on this replica.")?;
    registry.register(Box::new(open_streams.clone()))?;
    let event_delivery_lag = Histogram::with_opts(
        HistogramOpts::new(
            "linkgate_event_delivery_lag_seconds",
            "Time from a connection event's commit to its broadcast to this replica's watchers.",
        )
        .buckets(LATENCY_BUCKETS.to_vec()),
    )?;
    registry.register(Box::new(event_delivery_lag.clone()))?;
    let sync_backlog = IntGaugeVec::new(
        Opts::new("linkgate_sync_backlog", "Items due for a sync and not leased by any replica (sampled)."),
        &["kind"],
    )?;
    registry.register(Box::new(sync_backlog.clone()))?;
    let provider_enabled = IntGaugeVec::new(
        Opts::new(
            "linkgate_provider_enabled",
            "1 for each provider this replica offers (and leases work of), 0 for each it has no settings for.",
        ),
        &["provider"],
    )?;
    registry.register(Box::new(provider_enabled.clone()))?;
    Ok(Metrics {
        rpc_requests: counter(
            "linkgate_rpc_requests_total",
            "RPCs by service, method and status code.",
            &["service", "method", "code"],
        )?,
        rpc_duration: histogram(
            "linkgate_rpc_duration_seconds",
            "RPC latency to the response (for streams, to the stream's start).",
            &["service", "method"],
        )?,
        upstream_requests: counter(
            "linkgate_upstream_requests_total",
            "Provider calls by provider, operation and outcome.",
            &["provider", "operation", "outcome"],
        )?,
        upstream_duration: histogram(
            "linkgate_upstream_duration_seconds",
            "Provider call latency, retries included.",
            &["provider", "operation"],
        )?,
        open_streams,
        event_delivery_lag,
        sync_leased: counter("linkgate_sync_leased_total", "Items the sync engine leased, by kind.", &["kind"])?,
        sync_backlog,
        rejections: counter(
            "linkgate_rejections_total",
            "Calls refused, and connections closed, by the limit or rule that refused them.",
            &["limit"],
        )?,
        webhook_deliveries: counter(
            "linkgate_webhook_deliveries_total",
            "Webhook deliveries by provider and verdict.",
            &["provider", "verdict"],
        )?,
        lease_takeovers: counter(
            "linkgate_lease_takeovers_total",
            "Sync leases taken over after another replica let them lapse, by kind.",
            &["kind"],
        )?,
        provider_enabled,
        registry,
    })
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| build().expect("metric definitions are valid"));

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Every series in the Prometheus text format.
pub fn render() -> String {
    let mut buffer = Vec::new();
    TextEncoder::new().encode(&METRICS.registry.gather(), &mut buffer).expect("text encoding of gathered metrics");
    String::from_utf8(buffer).expect("the text format is UTF-8")
}

/// Records one RPC answered with `code` after `elapsed`. `path` is the gRPC path,
/// `/package.Service/Method`.
pub fn record_rpc(path: &str, code: tonic::Code, elapsed: Duration) {
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or(("unknown", "unknown"));
    let metrics = metrics();
    metrics.rpc_requests.with_label_values(&[service, method, code_name(code)]).inc();
    metrics.rpc_duration.with_label_values(&[service, method]).observe(elapsed.as_secs_f64());
}

/// The canonical upper-case name of a gRPC code, as other gRPC servers label it.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpcs_are_recorded_by_service_method_and_code() {
        record_rpc("/linkgate.v1.AccountService/ListAccounts", tonic::Code::NotFound, Duration::from_millis(3));
        let text = render();
        assert!(text.contains(
            r#"linkgate_rpc_requests_total{code="NOT_FOUND",method="ListAccounts",service="linkgate.v1.AccountService"}"#
        ));
        assert!(text.contains("linkgate_rpc_duration_seconds_bucket"));
    }
}

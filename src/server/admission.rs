//! Admission: what is refused before any work starts. Load shedding: when more unary calls are
//! in flight than the replica should carry, new ones are refused at once with UNAVAILABLE and a
//! retry delay, rather than queued until every caller times out (streams are long-lived by
//! design and are bounded per tenant instead). Fast failure: while the readiness probe finds the
//! database down, linkgate's calls, streams included, are refused at once with UNAVAILABLE /
//! STORE_UNAVAILABLE (see [`readiness`](super::readiness)); health and reflection still answer.

use crate::domain::ErrorReason;
use crate::error::Error;
use crate::server::readiness::StoreReadiness;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Semaphore;

/// The path prefix of linkgate's own services (not health or reflection).
const LINKGATE_SERVICES: &str = "/linkgate.v1.";

/// How long a shed caller should wait before trying again.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// The tower layer that sheds unary calls beyond a limit.
#[derive(Clone)]
pub struct AdmissionLayer {
    permits: Arc<Semaphore>,
    readiness: Arc<StoreReadiness>,
}

impl AdmissionLayer {
    /// At most `max_in_flight` unary calls at once, and none while `readiness` says the database
    /// is down.
    pub fn new(max_in_flight: usize, readiness: Arc<StoreReadiness>) -> Self {
        Self { permits: Arc::new(Semaphore::new(max_in_flight)), readiness }
    }
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission { inner, permits: self.permits.clone(), readiness: self.readiness.clone() }
    }
}

/// See [`AdmissionLayer`].
#[derive(Clone)]
pub struct Admission<S> {
    inner: S,
    permits: Arc<Semaphore>,
    readiness: Arc<StoreReadiness>,
}

/// Watch RPCs stream for as long as the caller likes; they are not load.
fn is_stream(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|method| method.starts_with("Watch"))
        || path.starts_with("/grpc.reflection.")
        || path.ends_with("/Watch")
}

impl<S, B, R> tower::Service<http::Request<B>> for Admission<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    R: Default,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if request.uri().path().starts_with(LINKGATE_SERVICES) && self.readiness.known_down() {
            let status = Error::new(ErrorReason::StoreUnavailable, "the database is unavailable")
                .retry_after(Duration::from_secs(1))
                .into_status("-");
            crate::telemetry::metrics::metrics().rejections.with_label_values(&["store_down"]).inc();
            crate::telemetry::metrics::record_rpc(request.uri().path(), status.code(), Duration::ZERO);
            return Box::pin(async move { Ok(status.into_http()) });
        }
        if is_stream(request.uri().path()) {
            return Box::pin(inner.call(request));
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            let status = Error::new(ErrorReason::Overloaded, "this replica is at capacity; retry shortly")
                .retry_after(RETRY_AFTER)
                .into_status("-");
            crate::telemetry::metrics::metrics().rejections.with_label_values(&["load_shed"]).inc();
            crate::telemetry::metrics::record_rpc(request.uri().path(), status.code(), std::time::Duration::ZERO);
            return Box::pin(async move { Ok(status.into_http()) });
        };
        Box::pin(async move {
            let response = inner.call(request).await;
            drop(permit);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_calls_are_streams_and_everything_else_is_load() {
        assert!(is_stream("/linkgate.v1.ConnectionService/WatchConnections"));
        assert!(is_stream("/grpc.health.v1.Health/Watch"));
        assert!(!is_stream("/linkgate.v1.AccountService/ListAccounts"));
        assert!(!is_stream("/linkgate.v1.LinkService/ExchangePublicToken"));
    }
}

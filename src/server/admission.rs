//! Load shedding: when more unary calls are in flight than the replica should carry, new ones
//! are refused at once with UNAVAILABLE and a retry delay, rather than queued until every caller
//! times out. Streams are long-lived by design and are bounded per tenant instead.

use crate::domain::ErrorReason;
use crate::error::Error;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long a shed caller should wait before trying again.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// The tower layer that sheds unary calls beyond a limit.
#[derive(Clone)]
pub struct AdmissionLayer {
    permits: Arc<Semaphore>,
}

impl AdmissionLayer {
    /// At most `max_in_flight` unary calls at once.
    pub fn new(max_in_flight: usize) -> Self {
        Self { permits: Arc::new(Semaphore::new(max_in_flight)) }
    }
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission { inner, permits: self.permits.clone() }
    }
}

/// See [`AdmissionLayer`].
#[derive(Clone)]
pub struct Admission<S> {
    inner: S,
    permits: Arc<Semaphore>,
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

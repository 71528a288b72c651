//! Whether the database answers, as this replica knows it. A probe runs every
//! [`PROBE_INTERVAL`], each bounded by [`PROBE_TIMEOUT`], so gRPC health (`""` and each service)
//! goes NOT_SERVING within about a second of the database failing and SERVING again once it
//! answers. While it is down, admission refuses linkgate's calls at once with UNAVAILABLE /
//! STORE_UNAVAILABLE and a RetryInfo instead of letting each wait for a database connection
//! until its caller's deadline; `/readyz` answers from the same probe and never waits longer
//! than it. Answers are not served from the connection cache meanwhile: a cached copy cannot be
//! known fresh while the events that would say otherwise cannot be read.

use crate::store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// How often the database is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// The longest one probe may take before it counts as a failure.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

// The verdicts; the default, 0, is "not probed yet".
const ANSWERS: u8 = 1;
const DOWN: u8 = 2;

/// The probe's latest verdict, shared by health and admission.
#[derive(Debug, Default)]
pub struct StoreReadiness {
    verdict: AtomicU8,
}

impl StoreReadiness {
    /// Whether the last probe found the database down. Before the first probe it is not known
    /// to be: calls are let through (and readiness stays NOT_SERVING until the probe answers).
    pub fn known_down(&self) -> bool {
        self.verdict.load(Ordering::Relaxed) == DOWN
    }

    /// One bounded probe of `store`, its verdict recorded.
    pub async fn probe(&self, store: &dyn Store) -> bool {
        let answers = matches!(tokio::time::timeout(PROBE_TIMEOUT, store.ping()).await, Ok(Ok(())));
        self.verdict.store(if answers { ANSWERS } else { DOWN }, Ordering::Relaxed);
        answers
    }
}

/// Keeps the readiness and the health `reporter` in step with the database until `stop`.
pub async fn watch(
    store: Arc<dyn Store>,
    readiness: Arc<StoreReadiness>,
    reporter: HealthReporter,
    stop: CancellationToken,
) {
    let mut serving = false;
    loop {
        let answers = readiness.probe(&*store).await;
        if answers != serving && !stop.is_cancelled() {
            serving = answers;
            if answers {
                tracing::info!("database answers; serving");
            } else {
                tracing::warn!("database does not answer; reporting NOT_SERVING and refusing calls until it does");
            }
            let status = if answers { ServingStatus::Serving } else { ServingStatus::NotServing };
            super::set_readiness(&reporter, status).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
            _ = stop.cancelled() => return,
        }
    }
}

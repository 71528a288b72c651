//! The store's health as probes and metrics read it: whether the database answers, and how much
//! sync work is due and leased by nobody.

use super::StoreResult;
use crate::domain::Timestamp;

/// Whether the database answers and how much work waits. See the module documentation.
#[async_trait::async_trait]
pub trait HealthStore: Send + Sync {
    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// How many link sessions and connections are due for a sync and leased by nobody.
    async fn sync_backlog(&self, now: Timestamp) -> StoreResult<(i64, i64)>;
}

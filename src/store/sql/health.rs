//! The SQL of [`HealthStore`](crate::store::HealthStore), expanded into each backend by
//! `impl_store!`.

macro_rules! impl_health_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl super::HealthStore for $store {
            async fn ping(&self) -> super::StoreResult<()> {
                self.probe_database().await
            }

            async fn sync_backlog(&self, now: crate::domain::Timestamp) -> super::StoreResult<(i64, i64)> {
                let counts: (i64, i64) = sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM link_sessions WHERE next_poll_at <= $1 \
                     AND (lease_expires_at IS NULL OR lease_expires_at < $1)), \
                     (SELECT COUNT(*) FROM connections WHERE next_poll_at <= $1 \
                     AND (lease_expires_at IS NULL OR lease_expires_at < $1))",
                )
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
                Ok(counts)
            }
        }
    };
}

pub(in crate::store) use impl_health_store;

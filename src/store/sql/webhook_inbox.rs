//! The SQL of [`WebhookInboxStore`](crate::store::WebhookInboxStore), expanded into each backend by
//! `impl_store!`.

macro_rules! impl_webhook_inbox_store {
    ($store:ty, lock_rows = $lock:literal) => {
        #[async_trait::async_trait]
        impl super::WebhookInboxStore for $store {
            async fn record_webhook(&self, d: &super::InboxDelivery) -> super::StoreResult<bool> {
                let inserted = sqlx::query(
                    "INSERT INTO webhook_inbox (provider, delivery_key, event, subject_hash, body_sealed, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (provider, delivery_key) DO NOTHING",
                )
                .bind(&d.provider)
                .bind(&d.delivery_key)
                .bind(&d.event)
                .bind(d.subject_hash.as_deref())
                .bind(&d.body_sealed)
                .bind(d.received_at)
                .execute(&self.pool)
                .await?;
                Ok(inserted.rows_affected() == 1)
            }

            async fn process_webhooks(
                &self,
                now: crate::domain::Timestamp,
                limit: i64,
            ) -> super::StoreResult<super::WebhooksProcessed> {
                let mut tx = self.begin().await?;
                let taken: Vec<(String, Option<Vec<u8>>)> = sqlx::query_as(concat!(
                    "UPDATE webhook_inbox SET processed_at = $1 WHERE id IN (",
                    "SELECT id FROM webhook_inbox WHERE processed_at IS NULL ORDER BY id LIMIT $2",
                    $lock,
                    ") RETURNING provider, subject_hash"
                ))
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                let mut processed = super::WebhooksProcessed { deliveries: taken.len() as u64, connections: 0 };
                for (provider, subject_hash) in &taken {
                    // A connection being polled right now keeps its lease, and is marked to be
                    // polled again as soon as that poll stores its outcome: the poll may have read
                    // the provider before this change. A delivery naming no connection could be
                    // about any import still running, so all of them are looked at.
                    let nudged = sqlx::query(
                        "UPDATE connections SET \
                         next_poll_at = CASE WHEN next_poll_at IS NULL OR next_poll_at > $3 THEN $3 ELSE next_poll_at END, \
                         poll_again = (poll_again OR (lease_expires_at IS NOT NULL AND lease_expires_at >= $3)) \
                         WHERE provider = $1 \
                         AND (upstream_ref_hash = $2 OR ($2 IS NULL AND state IN ('pending', 'refreshing'))) \
                         AND handle_sealed IS NOT NULL \
                         AND (next_poll_at IS NULL OR next_poll_at > $3 OR lease_expires_at >= $3)",
                    )
                    .bind(provider)
                    .bind(subject_hash.as_deref())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    processed.connections += nudged.rows_affected();
                }
                tx.commit().await?;
                Ok(processed)
            }

            async fn prune_webhooks(&self, before: crate::domain::Timestamp, limit: i64) -> super::StoreResult<u64> {
                let pruned = sqlx::query(
                    "DELETE FROM webhook_inbox WHERE id IN (SELECT id FROM webhook_inbox \
                     WHERE processed_at IS NOT NULL AND received_at < $1 ORDER BY id LIMIT $2)",
                )
                .bind(before)
                .bind(limit)
                .execute(&self.pool)
                .await?;
                Ok(pruned.rows_affected())
            }
        }
    };
}

pub(in crate::store) use impl_webhook_inbox_store;

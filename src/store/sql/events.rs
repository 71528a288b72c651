//! The SQL of [`EventStore`](crate::store::EventStore), expanded into each backend by
//! `impl_store!`.
//!
//! It also holds `append_event`, which every connection change calls inside its own transaction
//! to append the connection's event to `append_events_to`: the log itself where one writer at a
//! time commits (SQLite), the sequencer's inbox where writers commit concurrently (PostgreSQL).

macro_rules! impl_event_store {
    ($store:ty, $db:ty, append_events_to = $append_table:literal) => {
        impl $store {
            /// Appends a connection's event inside the caller's transaction.
            async fn append_event(
                tx: &mut sqlx::Transaction<'_, $db>,
                connection: &crate::domain::Connection,
                kind: crate::domain::ConnectionEventType,
            ) -> sqlx::Result<()> {
                Self::append_event_with(tx, connection, kind, crate::domain::EventDetails::default()).await
            }

            /// Appends a connection's event that says more than its state (`details`). No lock is
            /// taken and no log id is drawn here: where the backend's writers commit concurrently,
            /// the event lands in the inbox and the sequencer gives it its id once it committed.
            async fn append_event_with(
                tx: &mut sqlx::Transaction<'_, $db>,
                connection: &crate::domain::Connection,
                kind: crate::domain::ConnectionEventType,
                details: crate::domain::EventDetails,
            ) -> sqlx::Result<()> {
                use crate::domain::StoredName;
                sqlx::query(concat!(
                    "INSERT INTO ",
                    $append_table,
                    " (tenant_id, connection_id, provider, external_user_id, state, snapshot, occurred_at, event_type, \
                     details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                ))
                .bind(connection.tenant_id.0)
                .bind(connection.id)
                .bind(&connection.provider)
                .bind(&connection.external_user_id)
                .bind(connection.state.name())
                .bind(sqlx::types::Json(connection))
                .bind(connection.updated_at)
                .bind(kind.name())
                .bind((!details.is_empty()).then(|| sqlx::types::Json(&details)))
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl super::EventStore for $store {
            async fn events_after(
                &self,
                tenant: crate::domain::TenantId,
                filter: &super::EventFilter,
                after_event_id: i64,
                limit: i64,
            ) -> super::StoreResult<Vec<crate::domain::ConnectionEvent>> {
                let rows: Vec<super::rows::EventRow> = sqlx::query_as(
                    "SELECT id, event_type, snapshot, occurred_at, details FROM connection_events WHERE tenant_id = $1 AND id > $2 \
                     AND ($3 IS NULL OR connection_id = $3) \
                     AND ($4 IS NULL OR external_user_id = $4 OR (external_user_id = '' AND state = 'deleted')) \
                     AND ($5 IS NULL OR provider = $5) ORDER BY id LIMIT $6",
                )
                .bind(tenant.0)
                .bind(after_event_id)
                .bind(filter.connection_id)
                .bind(&filter.external_user_id)
                .bind(&filter.provider)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn tail_events(
                &self,
                after_event_id: i64,
                limit: i64,
            ) -> super::StoreResult<Vec<crate::domain::ConnectionEvent>> {
                let rows: Vec<super::rows::EventRow> = sqlx::query_as(
                    "SELECT id, event_type, snapshot, occurred_at, details FROM connection_events WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after_event_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn prune_events(&self, before: crate::domain::Timestamp, limit: i64) -> super::StoreResult<u64> {
                let mut tx = self.begin().await?;
                let pruned: Vec<(i64,)> = sqlx::query_as(
                    "DELETE FROM connection_events WHERE id IN ( \
                     SELECT e.id FROM connection_events e WHERE e.occurred_at < $1 AND (e.state = 'deleted' \
                     OR e.id < (SELECT MAX(l.id) FROM connection_events l WHERE l.connection_id = e.connection_id)) \
                     ORDER BY e.id LIMIT $2) RETURNING id",
                )
                .bind(before)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                if let Some(highest) = pruned.iter().map(|(id,)| *id).max() {
                    sqlx::query("UPDATE event_log_horizon SET pruned_through = $1 WHERE pruned_through < $1")
                        .bind(highest)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(pruned.len() as u64)
            }

            async fn pruned_through(&self) -> super::StoreResult<i64> {
                let (through,): (i64,) = sqlx::query_as("SELECT pruned_through FROM event_log_horizon")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(through)
            }

            async fn sequence_events(&self, limit: i64) -> super::StoreResult<u64> {
                self.sequence(limit).await
            }

            async fn announce_events(&self) -> super::StoreResult<()> {
                self.announce().await
            }

            async fn subscribe_events(&self) -> super::StoreResult<Option<Box<dyn super::EventBell>>> {
                self.subscribe().await
            }

            async fn last_event_id(&self) -> super::StoreResult<i64> {
                let (id,): (Option<i64>,) = sqlx::query_as("SELECT MAX(id) FROM connection_events")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(id.unwrap_or(0))
            }

            async fn current_events(
                &self,
                tenant: crate::domain::TenantId,
                filter: &super::EventFilter,
                as_of: i64,
                after: i64,
                limit: i64,
            ) -> super::StoreResult<Vec<crate::domain::ConnectionEvent>> {
                let rows: Vec<super::rows::EventRow> = sqlx::query_as(
                    "SELECT e.id, e.event_type, e.snapshot, e.occurred_at, e.details FROM connection_events e JOIN ( \
                     SELECT connection_id, MAX(id) AS id FROM connection_events WHERE tenant_id = $1 AND id <= $5 \
                     AND ($2 IS NULL OR connection_id = $2) AND ($3 IS NULL OR external_user_id = $3) \
                     AND ($4 IS NULL OR provider = $4) GROUP BY connection_id HAVING MAX(id) > $6) latest \
                     ON e.id = latest.id WHERE ($2 IS NOT NULL OR e.state <> 'deleted') ORDER BY e.id LIMIT $7",
                )
                .bind(tenant.0)
                .bind(filter.connection_id)
                .bind(&filter.external_user_id)
                .bind(&filter.provider)
                .bind(as_of)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }
        }
    };
}

pub(in crate::store) use impl_event_store;

//! The SQL of [`RecordStore`](crate::store::RecordStore), expanded into each backend by
//! `impl_store!`.
//!
//! It also holds `apply_import`, which stores a connection's import inside the transaction that
//! saves the connection: it reads the stored digests, plans the changes
//! ([`changes::plan`](crate::store::changes::plan)) and writes only those, each with its row in
//! the change log, under the import's version. How the changes are written is each backend's
//! `write_changes` (PostgreSQL: a few set-based statements; SQLite: a statement per row), over
//! the one upsert clause here, `on_record_conflict!`.

macro_rules! impl_record_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Stores `import` for `connection` and returns what it changed. The connection's
            /// row is locked by the save's update, so imports of one connection apply one at a
            /// time and their versions commit in order.
            async fn apply_import(
                tx: &mut sqlx::Transaction<'_, $db>,
                connection: &crate::domain::Connection,
                import: super::Import<'_>,
            ) -> sqlx::Result<super::changes::ChangePlan> {
                // The import is digested while the database reads the stored digests: the read's
                // first poll sends its query, then digesting (CPU alone) runs until its answer is
                // wanted, so a refresh pays the longer of the two rather than their sum.
                let (stored, served) = futures::join!(Self::stored_digests(tx, connection.id), async {
                    super::records::served_records(import.data)
                });
                let stored = stored?;
                let (current,): (i64,) = sqlx::query_as("SELECT data_version FROM connections WHERE id = $1")
                    .bind(connection.id)
                    .fetch_one(&mut **tx)
                    .await?;
                let version = current + 1;
                let mut plan = super::changes::plan(stored, &served, &super::changes::Coverage::of(&import), version);
                let modified = plan.modified();
                if !modified.is_empty() {
                    plan.settle(&Self::stored_bodies(tx, connection.id, &modified).await?);
                    Self::write_redigests(tx, connection.id, &plan.redigests).await?;
                }
                if plan.is_empty() {
                    return Ok(plan);
                }
                sqlx::query("UPDATE connections SET data_version = $2 WHERE id = $1")
                    .bind(connection.id)
                    .bind(version)
                    .execute(&mut **tx)
                    .await?;
                Self::write_changes(tx, connection, &plan, version, crate::domain::now()).await?;
                Ok(plan)
            }

            /// The stored bodies of a connection's `records`, a kind and a batch of ids a
            /// statement: naming the kind lets the lookup use the primary key.
            async fn stored_bodies(
                tx: &mut sqlx::Transaction<'_, $db>,
                connection_id: uuid::Uuid,
                records: &[(super::RecordKind, uuid::Uuid)],
            ) -> sqlx::Result<std::collections::HashMap<(super::RecordKind, uuid::Uuid), serde_json::Value>> {
                use crate::domain::StoredName;
                let mut records = records.to_vec();
                records.sort_unstable();
                let mut bodies = std::collections::HashMap::with_capacity(records.len());
                for of_kind in records.chunk_by(|a, b| a.0 == b.0) {
                    let kind = of_kind[0].0;
                    for batch in of_kind.chunks(super::sql::records::ID_BATCH) {
                        let mut query =
                            sqlx::QueryBuilder::<$db>::new("SELECT id, body FROM connection_records WHERE connection_id = ");
                        query.push_bind(connection_id).push(" AND kind = ").push_bind(kind.name()).push(" AND id IN (");
                        let mut ids = query.separated(", ");
                        for (_, id) in batch {
                            ids.push_bind(*id);
                        }
                        query.push(")");
                        let rows: Vec<(uuid::Uuid, sqlx::types::Json<serde_json::Value>)> =
                            query.build_query_as().fetch_all(&mut **tx).await?;
                        bodies.extend(rows.into_iter().map(|(id, body)| ((kind, id), body.0)));
                    }
                }
                Ok(bodies)
            }

            /// Rewrites the digests of records whose bodies did not change, a batch a statement.
            async fn write_redigests(
                tx: &mut sqlx::Transaction<'_, $db>,
                connection_id: uuid::Uuid,
                redigests: &[super::changes::Redigest],
            ) -> sqlx::Result<()> {
                use crate::domain::StoredName;
                for batch in redigests.chunks(super::sql::records::ID_BATCH) {
                    // A named CTE rather than `(VALUES …) AS v(…)`: SQLite has no column aliases.
                    let mut query = sqlx::QueryBuilder::<$db>::new("WITH v(kind, id, digest) AS (");
                    query.push_values(batch, |mut row, r| {
                        row.push_bind(r.kind.name()).push_bind(r.id).push_bind(r.digest);
                    });
                    query
                        .push(") UPDATE connection_records SET digest = v.digest FROM v WHERE connection_records.connection_id = ")
                        .push_bind(connection_id)
                        .push(" AND connection_records.kind = v.kind AND connection_records.id = v.id");
                    query.build().execute(&mut **tx).await?;
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl super::RecordStore for $store {
            async fn list_records(&self, q: &super::RecordQuery) -> super::StoreResult<super::PageOf<super::StoredRecord>> {
                use crate::domain::StoredName;
                let sql = if q.kind.newest_first() {
                    "SELECT id, sort_key, body FROM connection_records \
                     WHERE connection_id = $1 AND tenant_id = $2 AND kind = $3 AND ($4 IS NULL OR parent_id = $4) \
                     AND ($5 IS NULL OR record_date >= $5) AND ($6 IS NULL OR record_date <= $6) AND removed_at IS NULL \
                     AND ($7 IS NULL OR (sort_key, id) < ($7, $8)) ORDER BY sort_key DESC, id DESC LIMIT $9"
                } else {
                    "SELECT id, sort_key, body FROM connection_records \
                     WHERE connection_id = $1 AND tenant_id = $2 AND kind = $3 AND ($4 IS NULL OR parent_id = $4) \
                     AND ($5 IS NULL OR record_date >= $5) AND ($6 IS NULL OR record_date <= $6) AND removed_at IS NULL \
                     AND ($7 IS NULL OR (sort_key, id) > ($7, $8)) ORDER BY sort_key, id LIMIT $9"
                };
                let rows: Vec<super::rows::RecordRow> = sqlx::query_as(sql)
                    .bind(q.connection_id)
                    .bind(q.tenant.0)
                    .bind(q.kind.name())
                    .bind(q.parent_id)
                    .bind(q.dates.start)
                    .bind(q.dates.end)
                    .bind(q.after().map(|c| c.key.as_str()))
                    .bind(q.after().map(|c| c.id))
                    .bind(q.page.size as i64 + 1)
                    .fetch_all(&self.pool)
                    .await?;
                let records = rows
                    .into_iter()
                    .map(|r| super::StoredRecord { id: r.id, sort_key: r.sort_key, body: r.body.0 })
                    .collect();
                Ok(super::PageOf::from_rows(records, q.page.size, |r: &super::StoredRecord| super::Cursor {
                    key: r.sort_key.clone(),
                    id: r.id,
                }))
            }

            async fn has_record(
                &self,
                tenant: crate::domain::TenantId,
                connection_id: uuid::Uuid,
                kind: super::RecordKind,
                id: uuid::Uuid,
            ) -> super::StoreResult<bool> {
                use crate::domain::StoredName;
                let row: Option<(uuid::Uuid,)> = sqlx::query_as(
                    "SELECT id FROM connection_records \
                     WHERE connection_id = $1 AND tenant_id = $2 AND kind = $3 AND id = $4 AND removed_at IS NULL",
                )
                .bind(connection_id)
                .bind(tenant.0)
                .bind(kind.name())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.is_some())
            }

            async fn data_version(
                &self,
                tenant: crate::domain::TenantId,
                connection_id: uuid::Uuid,
            ) -> super::StoreResult<i64> {
                let row: Option<(i64,)> =
                    sqlx::query_as("SELECT data_version FROM connections WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.0)
                        .bind(connection_id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map_or(0, |(version,)| version))
            }

            async fn record_snapshot(&self, q: &super::SnapshotQuery) -> super::StoreResult<Vec<super::StoredRecord>> {
                use crate::domain::StoredName;
                // A tombstone removed after the snapshot's import was still there at it: the
                // reader gets it, and its removal from the log.
                let rows: Vec<super::rows::RecordRow> = sqlx::query_as(
                    "SELECT id, sort_key, body FROM connection_records \
                     WHERE connection_id = $1 AND tenant_id = $2 AND kind = $3 AND ($4 IS NULL OR parent_id = $4) \
                     AND created_version <= $5 AND (removed_at IS NULL OR changed_version > $5) \
                     AND ($6 IS NULL OR id > $6) ORDER BY id LIMIT $7",
                )
                .bind(q.connection_id)
                .bind(q.tenant.0)
                .bind(q.kind.name())
                .bind(q.parent_id)
                .bind(q.version)
                .bind(q.after)
                .bind(q.limit as i64)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|r| super::StoredRecord { id: r.id, sort_key: r.sort_key, body: r.body.0 }).collect())
            }

            async fn record_changes(&self, q: &super::ChangeQuery) -> super::StoreResult<Vec<super::RecordChange>> {
                use crate::domain::StoredName;
                let rows: Vec<super::rows::ChangeRow> = sqlx::query_as(
                    "SELECT c.id, c.version, c.change, c.paired_with, t.sort_key, t.body FROM record_changes c \
                     LEFT JOIN connection_records t ON t.connection_id = c.connection_id AND t.kind = c.kind AND t.id = c.id \
                     WHERE c.connection_id = $1 AND c.tenant_id = $2 AND c.kind = $3 AND ($4 IS NULL OR c.parent_id = $4) \
                     AND c.version > $5 AND ($6 IS NULL OR (c.version, c.id) > ($6, $7)) \
                     ORDER BY c.version, c.id LIMIT $8",
                )
                .bind(q.connection_id)
                .bind(q.tenant.0)
                .bind(q.kind.name())
                .bind(q.parent_id)
                .bind(q.origin)
                .bind(q.after.map(|(version, _)| version))
                .bind(q.after.map(|(_, id)| id))
                .bind(q.limit as i64)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(super::rows::ChangeRow::into_change).collect()
            }

            async fn prune_changes(&self, before: crate::domain::Timestamp, limit: i64) -> super::StoreResult<u64> {
                let log = sqlx::query(
                    "DELETE FROM record_changes WHERE (connection_id, kind, version, id) IN ( \
                     SELECT connection_id, kind, version, id FROM record_changes WHERE recorded_at < $1 LIMIT $2)",
                )
                .bind(before)
                .bind(limit)
                .execute(&self.pool)
                .await?
                .rows_affected();
                let tombstones = sqlx::query(
                    "DELETE FROM connection_records WHERE (connection_id, kind, id) IN ( \
                     SELECT connection_id, kind, id FROM connection_records WHERE removed_at < $1 LIMIT $2)",
                )
                .bind(before)
                .bind(limit)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(log.max(tombstones))
            }
        }
    };
}

pub(in crate::store) use impl_record_store;

/// Ids one statement of `stored_bodies` or `write_redigests` names at most, well within both
/// backends' limits on bound parameters.
pub(in crate::store) const ID_BATCH: usize = 1000;

/// How a stored record is overwritten when an import writes it again, on both backends: with
/// everything the write brings (a changed record keeps the import that created it, which the plan
/// passes on), and a tombstone comes back to life.
macro_rules! on_record_conflict {
    () => {
        " ON CONFLICT (connection_id, kind, id) DO UPDATE SET parent_id = excluded.parent_id, \
         sort_key = excluded.sort_key, record_date = excluded.record_date, body = excluded.body, \
         digest = excluded.digest, created_version = excluded.created_version, \
         changed_version = excluded.changed_version, removed_at = NULL, \
         pending_key = excluded.pending_key, pending_link = excluded.pending_link"
    };
}

pub(in crate::store) use on_record_conflict;

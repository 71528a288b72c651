//! The SQL of [`RecordStore`](crate::store::RecordStore), expanded into each backend by
//! `impl_store!`.
//!
//! It also holds `insert_records`, which replaces a connection's records inside the transaction
//! that saves the connection.

macro_rules! impl_record_store {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn insert_records(
                tx: &mut sqlx::Transaction<'_, $db>,
                connection: &crate::domain::Connection,
                data: &crate::domain::ConnectionData<crate::domain::SealedAccountDetails>,
            ) -> sqlx::Result<()> {
                use crate::domain::StoredName;
                sqlx::query("DELETE FROM connection_records WHERE connection_id = $1")
                    .bind(connection.id)
                    .execute(&mut **tx)
                    .await?;
                for record in super::records::records_of(data) {
                    sqlx::query(
                        "INSERT INTO connection_records \
                         (connection_id, kind, id, tenant_id, parent_id, sort_key, record_date, body) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(connection.id)
                    .bind(record.kind.name())
                    .bind(record.id)
                    .bind(connection.tenant_id.0)
                    .bind(record.parent_id)
                    .bind(&record.sort_key)
                    .bind(record.date)
                    .bind(sqlx::types::Json(&record.body))
                    .execute(&mut **tx)
                    .await?;
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
                     AND ($5 IS NULL OR record_date >= $5) AND ($6 IS NULL OR record_date <= $6) \
                     AND ($7 IS NULL OR (sort_key, id) < ($7, $8)) ORDER BY sort_key DESC, id DESC LIMIT $9"
                } else {
                    "SELECT id, sort_key, body FROM connection_records \
                     WHERE connection_id = $1 AND tenant_id = $2 AND kind = $3 AND ($4 IS NULL OR parent_id = $4) \
                     AND ($5 IS NULL OR record_date >= $5) AND ($6 IS NULL OR record_date <= $6) \
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
                     WHERE connection_id = $1 AND tenant_id = $2 AND kind = $3 AND id = $4",
                )
                .bind(connection_id)
                .bind(tenant.0)
                .bind(kind.name())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.is_some())
            }
        }
    };
}

pub(in crate::store) use impl_record_store;

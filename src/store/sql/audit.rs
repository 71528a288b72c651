//! The SQL of [`AuditStore`](crate::store::AuditStore), expanded into each backend by
//! `impl_store!`.

macro_rules! impl_audit_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl super::AuditStore for $store {
            async fn append_audit(&self, entries: &[crate::domain::AuditEntry]) -> super::StoreResult<()> {
                // Each backend writes a batch its own fastest way.
                self.insert_audit(entries).await?;
                Ok(())
            }

            async fn list_audit(
                &self,
                tenant: Option<crate::domain::TenantId>,
                resource_id: Option<uuid::Uuid>,
                limit: i64,
            ) -> super::StoreResult<Vec<crate::domain::AuditEntry>> {
                let rows: Vec<super::rows::AuditRow> = sqlx::query_as(
                    "SELECT id, occurred_at, tenant_id, api_key_id, action, resource_type, resource_id, request_id \
                     FROM audit_log WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR resource_id = $2) \
                     ORDER BY id DESC LIMIT $3",
                )
                .bind(tenant.map(|t| t.0))
                .bind(resource_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(TryInto::try_into).collect::<anyhow::Result<_>>().map_err(super::StoreError::Other)
            }
        }
    };
}

pub(in crate::store) use impl_audit_store;

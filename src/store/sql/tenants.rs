//! The SQL of [`TenantStore`](crate::store::TenantStore), expanded into each backend by
//! `impl_store!`.

macro_rules! impl_tenant_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl super::TenantStore for $store {
            async fn create_tenant(&self, tenant: &crate::domain::Tenant) -> super::StoreResult<bool> {
                let inserted = sqlx::query(
                    "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(tenant.id.0)
                .bind(&tenant.name)
                .bind(tenant.created_at)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(inserted == 1)
            }

            async fn list_tenants(&self) -> super::StoreResult<Vec<crate::domain::Tenant>> {
                let rows: Vec<super::rows::TenantRow> =
                    sqlx::query_as("SELECT id, name, created_at, revoked_at FROM tenants ORDER BY name")
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn find_tenant(&self, name: &str) -> super::StoreResult<Option<crate::domain::Tenant>> {
                let row: Option<super::rows::TenantRow> =
                    sqlx::query_as("SELECT id, name, created_at, revoked_at FROM tenants WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(Into::into))
            }

            async fn revoke_tenant(
                &self,
                id: crate::domain::TenantId,
                at: crate::domain::Timestamp,
            ) -> super::StoreResult<bool> {
                let updated = sqlx::query("UPDATE tenants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                    .bind(id.0)
                    .bind(at)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(updated == 1)
            }

            async fn active_tenant_count(&self) -> super::StoreResult<i64> {
                let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tenants WHERE revoked_at IS NULL")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(count)
            }

            async fn create_api_key(&self, key: &crate::domain::ApiKey) -> super::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO api_keys (id, tenant_id, secret_hmac, scopes, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(key.id)
                .bind(key.tenant_id.0)
                .bind(&key.secret_hmac)
                .bind(crate::domain::Scope::list(&key.scopes))
                .bind(key.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn find_active_api_key(&self, id: uuid::Uuid) -> super::StoreResult<Option<crate::domain::ApiKey>> {
                let row: Option<super::rows::ApiKeyRow> = sqlx::query_as(
                    "SELECT k.id, k.tenant_id, k.secret_hmac, k.scopes, k.created_at, k.revoked_at \
                     FROM api_keys k JOIN tenants t ON t.id = k.tenant_id \
                     WHERE k.id = $1 AND k.revoked_at IS NULL AND t.revoked_at IS NULL",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(Into::into))
            }

            async fn list_api_keys(
                &self,
                tenant: crate::domain::TenantId,
            ) -> super::StoreResult<Vec<crate::domain::ApiKey>> {
                let rows: Vec<super::rows::ApiKeyRow> = sqlx::query_as(
                    "SELECT id, tenant_id, secret_hmac, scopes, created_at, revoked_at FROM api_keys \
                     WHERE tenant_id = $1 ORDER BY created_at, id",
                )
                .bind(tenant.0)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn revoke_api_key(&self, id: uuid::Uuid, at: crate::domain::Timestamp) -> super::StoreResult<bool> {
                let updated = sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                    .bind(id)
                    .bind(at)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(updated == 1)
            }
        }
    };
}

pub(in crate::store) use impl_tenant_store;

//! The SQL of [`SandboxStore`](crate::store::SandboxStore), expanded into each backend by
//! `impl_store!`.

macro_rules! impl_sandbox_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl super::SandboxStore for $store {
            async fn sandbox_transactions(
                &self,
                connection_id: uuid::Uuid,
            ) -> super::StoreResult<Vec<(uuid::Uuid, Option<crate::domain::Transaction>)>> {
                let rows: Vec<(uuid::Uuid, Option<sqlx::types::Json<crate::domain::Transaction>>)> = sqlx::query_as(
                    "SELECT transaction_id, body FROM sandbox_transactions WHERE connection_id = $1 \
                     ORDER BY changed_at, transaction_id",
                )
                .bind(connection_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|(id, body)| (id, body.map(|b| b.0))).collect())
            }

            async fn put_sandbox_transaction(
                &self,
                tenant: crate::domain::TenantId,
                connection_id: uuid::Uuid,
                id: uuid::Uuid,
                transaction: Option<&crate::domain::Transaction>,
            ) -> super::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO sandbox_transactions (connection_id, transaction_id, tenant_id, body, changed_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (connection_id, transaction_id) \
                     DO UPDATE SET body = excluded.body, changed_at = excluded.changed_at",
                )
                .bind(connection_id)
                .bind(id)
                .bind(tenant.0)
                .bind(transaction.map(sqlx::types::Json))
                .bind(crate::domain::now())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn arm_sandbox_failure(
                &self,
                tenant: crate::domain::TenantId,
                connection_id: uuid::Uuid,
                failure: &str,
            ) -> super::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO sandbox_failures (connection_id, tenant_id, failure) VALUES ($1, $2, $3) \
                     ON CONFLICT (connection_id) DO UPDATE SET failure = excluded.failure",
                )
                .bind(connection_id)
                .bind(tenant.0)
                .bind(failure)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn take_sandbox_failure(&self, connection_id: uuid::Uuid) -> super::StoreResult<Option<String>> {
                let taken: Option<(String,)> =
                    sqlx::query_as("DELETE FROM sandbox_failures WHERE connection_id = $1 RETURNING failure")
                        .bind(connection_id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(taken.map(|(failure,)| failure))
            }
        }
    };
}

pub(in crate::store) use impl_sandbox_store;

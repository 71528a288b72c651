//! The SQL of [`AccountDetailStore`](crate::store::AccountDetailStore), expanded into each backend
//! by `impl_store!`.
//!
//! It also holds `store_account_details`, which replaces a connection's sealed details inside the
//! transaction that saves its import: a connection without any keeps no row.

macro_rules! impl_account_detail_store {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn store_account_details(
                tx: &mut sqlx::Transaction<'_, $db>,
                connection: &crate::domain::Connection,
                details: &crate::domain::SealedAccountDetails,
            ) -> sqlx::Result<()> {
                if details.numbers.is_none() && details.owners.is_none() {
                    sqlx::query("DELETE FROM account_details WHERE connection_id = $1")
                        .bind(connection.id)
                        .execute(&mut **tx)
                        .await?;
                    return Ok(());
                }
                sqlx::query(
                    "INSERT INTO account_details (connection_id, tenant_id, numbers_sealed, owners_sealed) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (connection_id) DO UPDATE \
                     SET numbers_sealed = excluded.numbers_sealed, owners_sealed = excluded.owners_sealed",
                )
                .bind(connection.id)
                .bind(connection.tenant_id.0)
                .bind(details.numbers.as_ref().map(|sealed| &sealed.0))
                .bind(details.owners.as_ref().map(|sealed| &sealed.0))
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl super::AccountDetailStore for $store {
            async fn account_details(
                &self,
                tenant: crate::domain::TenantId,
                connection_id: uuid::Uuid,
            ) -> super::StoreResult<crate::domain::SealedAccountDetails> {
                let row: Option<(Option<Vec<u8>>, Option<Vec<u8>>)> = sqlx::query_as(
                    "SELECT numbers_sealed, owners_sealed FROM account_details \
                     WHERE connection_id = $1 AND tenant_id = $2",
                )
                .bind(connection_id)
                .bind(tenant.0)
                .fetch_optional(&self.pool)
                .await?;
                let (numbers, owners) = row.unwrap_or_default();
                Ok(crate::domain::SealedAccountDetails {
                    numbers: numbers.map(crate::domain::Sealed),
                    owners: owners.map(crate::domain::Sealed),
                })
            }
        }
    };
}

pub(in crate::store) use impl_account_detail_store;

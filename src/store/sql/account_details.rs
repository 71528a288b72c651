//! The SQL of [`AccountDetailStore`](crate::store::AccountDetailStore), expanded into each backend
//! by `impl_store!`.
//!
//! It also holds `store_account_details`, which replaces a connection's sealed details inside the
//! transaction that saves its import, each list only when the import covers its product (numbers:
//! PRODUCT_ACCOUNT_NUMBERS, owners: PRODUCT_IDENTITY): a connection without any keeps no row.

macro_rules! impl_account_detail_store {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn store_account_details(
                tx: &mut sqlx::Transaction<'_, $db>,
                connection: &crate::domain::Connection,
                import: &super::Import<'_>,
            ) -> sqlx::Result<()> {
                use crate::domain::Product;
                let numbers = import.products.contains(&Product::AccountNumbers);
                let owners = import.products.contains(&Product::Identity);
                if !numbers && !owners {
                    // An import of other products leaves the details as they are.
                    return Ok(());
                }
                let details = &import.data.details;
                sqlx::query(
                    "INSERT INTO account_details (connection_id, tenant_id, numbers_sealed, owners_sealed) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (connection_id) DO UPDATE SET \
                     numbers_sealed = CASE WHEN $5 THEN excluded.numbers_sealed ELSE account_details.numbers_sealed END, \
                     owners_sealed = CASE WHEN $6 THEN excluded.owners_sealed ELSE account_details.owners_sealed END",
                )
                .bind(connection.id)
                .bind(connection.tenant_id.0)
                .bind(details.numbers.as_ref().filter(|_| numbers).map(|sealed| &sealed.0))
                .bind(details.owners.as_ref().filter(|_| owners).map(|sealed| &sealed.0))
                .bind(numbers)
                .bind(owners)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "DELETE FROM account_details WHERE connection_id = $1 \
                     AND numbers_sealed IS NULL AND owners_sealed IS NULL",
                )
                .bind(connection.id)
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

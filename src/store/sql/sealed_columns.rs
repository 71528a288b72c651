//! The SQL of [`SealedColumnStore`](crate::store::SealedColumnStore), expanded into each backend by
//! `impl_store!`.

macro_rules! impl_sealed_column_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl super::SealedColumnStore for $store {
            async fn list_sealed(
                &self,
                column: crate::crypto::SealedColumn,
                after: Option<uuid::Uuid>,
                limit: i64,
            ) -> super::StoreResult<Vec<super::SealedValue>> {
                let sql = match column {
                    crate::crypto::SealedColumn::ConnectionHandle => {
                        "SELECT tenant_id, id, handle_sealed FROM connections \
                         WHERE handle_sealed IS NOT NULL AND ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
                    }
                    crate::crypto::SealedColumn::SessionToken => {
                        "SELECT tenant_id, id, public_token_sealed FROM link_sessions \
                         WHERE public_token_sealed IS NOT NULL AND ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
                    }
                    crate::crypto::SealedColumn::SessionUpstreamState => {
                        "SELECT tenant_id, id, upstream_state_sealed FROM link_sessions \
                         WHERE upstream_state_sealed IS NOT NULL AND ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
                    }
                    crate::crypto::SealedColumn::AccountNumbers => {
                        "SELECT tenant_id, connection_id, numbers_sealed FROM account_details \
                         WHERE numbers_sealed IS NOT NULL AND ($1 IS NULL OR connection_id > $1) \
                         ORDER BY connection_id LIMIT $2"
                    }
                    crate::crypto::SealedColumn::AccountOwners => {
                        "SELECT tenant_id, connection_id, owners_sealed FROM account_details \
                         WHERE owners_sealed IS NOT NULL AND ($1 IS NULL OR connection_id > $1) \
                         ORDER BY connection_id LIMIT $2"
                    }
                };
                let rows: Vec<(uuid::Uuid, uuid::Uuid, Vec<u8>)> =
                    sqlx::query_as(sql).bind(after).bind(limit).fetch_all(&self.pool).await?;
                Ok(rows
                    .into_iter()
                    .map(|(tenant, id, sealed)| super::SealedValue { tenant: crate::domain::TenantId(tenant), id, sealed })
                    .collect())
            }

            async fn replace_sealed(
                &self,
                column: crate::crypto::SealedColumn,
                id: uuid::Uuid,
                old: &[u8],
                new: &[u8],
            ) -> super::StoreResult<bool> {
                let sql = match column {
                    crate::crypto::SealedColumn::ConnectionHandle => {
                        "UPDATE connections SET handle_sealed = $3 WHERE id = $1 AND handle_sealed = $2"
                    }
                    crate::crypto::SealedColumn::SessionToken => {
                        "UPDATE link_sessions SET public_token_sealed = $3 WHERE id = $1 AND public_token_sealed = $2"
                    }
                    crate::crypto::SealedColumn::SessionUpstreamState => {
                        "UPDATE link_sessions SET upstream_state_sealed = $3 WHERE id = $1 AND upstream_state_sealed = $2"
                    }
                    crate::crypto::SealedColumn::AccountNumbers => {
                        "UPDATE account_details SET numbers_sealed = $3 WHERE connection_id = $1 AND numbers_sealed = $2"
                    }
                    crate::crypto::SealedColumn::AccountOwners => {
                        "UPDATE account_details SET owners_sealed = $3 WHERE connection_id = $1 AND owners_sealed = $2"
                    }
                };
                let updated =
                    sqlx::query(sql).bind(id).bind(old).bind(new).execute(&self.pool).await?.rows_affected();
                Ok(updated == 1)
            }
        }
    };
}

pub(in crate::store) use impl_sealed_column_store;

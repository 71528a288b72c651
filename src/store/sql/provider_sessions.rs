//! The SQL of [`ProviderSessionStore`](crate::store::ProviderSessionStore), expanded into each backend by
//! `impl_store!`.

macro_rules! impl_provider_session_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl super::ProviderSessionStore for $store {
            async fn provider_session(
                &self,
                key: &str,
            ) -> super::StoreResult<Option<(Vec<u8>, crate::domain::Timestamp)>> {
                let row: Option<(Option<Vec<u8>>, Option<crate::domain::Timestamp>)> =
                    sqlx::query_as("SELECT token_sealed, expires_at FROM provider_sessions WHERE session_key = $1")
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.and_then(|(sealed, expires_at)| sealed.zip(expires_at)))
            }

            async fn lease_provider_login(
                &self,
                key: &str,
                holder: &str,
                now: crate::domain::Timestamp,
                until: crate::domain::Timestamp,
            ) -> super::StoreResult<bool> {
                let taken = sqlx::query(
                    "INSERT INTO provider_sessions (session_key, lease_holder, lease_until) VALUES ($1, $2, $4) \
                     ON CONFLICT (session_key) DO UPDATE SET lease_holder = $2, lease_until = $4 \
                     WHERE provider_sessions.lease_until IS NULL OR provider_sessions.lease_until < $3 \
                     OR provider_sessions.lease_holder = $2",
                )
                .bind(key)
                .bind(holder)
                .bind(now)
                .bind(until)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(taken == 1)
            }

            async fn save_provider_session(
                &self,
                key: &str,
                holder: &str,
                token_sealed: &[u8],
                expires_at: crate::domain::Timestamp,
            ) -> super::StoreResult<bool> {
                let saved = sqlx::query(
                    "UPDATE provider_sessions SET token_sealed = $3, expires_at = $4, lease_holder = NULL, \
                     lease_until = NULL WHERE session_key = $1 AND lease_holder = $2",
                )
                .bind(key)
                .bind(holder)
                .bind(token_sealed)
                .bind(expires_at)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(saved == 1)
            }

            async fn release_provider_login(&self, key: &str, holder: &str) -> super::StoreResult<()> {
                sqlx::query(
                    "UPDATE provider_sessions SET lease_holder = NULL, lease_until = NULL \
                     WHERE session_key = $1 AND lease_holder = $2",
                )
                .bind(key)
                .bind(holder)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    };
}

pub(in crate::store) use impl_provider_session_store;

//! The SQL of [`PublicTokenStore`](crate::store::PublicTokenStore), expanded into each backend by
//! `impl_store!`.

macro_rules! impl_public_token_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl super::PublicTokenStore for $store {
            async fn list_public_tokens(
                &self,
                tenant: crate::domain::TenantId,
                provider: Option<&str>,
                external_user_id: Option<&str>,
                now: crate::domain::Timestamp,
                page: &super::Page,
            ) -> super::StoreResult<super::PageOf<super::StoredPublicToken>> {
                let rows: Vec<super::rows::PublicTokenRow> = sqlx::query_as(
                    "SELECT p.id, p.provider, s.public_token_sealed, p.link_session_id, p.institution_id, \
                     p.external_user_id, p.created_at, p.expires_at \
                     FROM public_tokens p JOIN link_sessions s ON s.id = p.link_session_id \
                     WHERE p.tenant_id = $1 AND p.state = 'issued' AND p.expires_at > $2 \
                     AND ($3 IS NULL OR p.provider = $3) AND ($4 IS NULL OR p.external_user_id = $4) \
                     AND ($5 IS NULL OR p.id < $5) ORDER BY p.id DESC LIMIT $6",
                )
                .bind(tenant.0)
                .bind(now)
                .bind(provider)
                .bind(external_user_id)
                .bind(page.after.as_ref().map(|c| c.id))
                .bind(page.size as i64 + 1)
                .fetch_all(&self.pool)
                .await?;
                let tokens = rows.into_iter().map(super::StoredPublicToken::from).collect();
                Ok(super::PageOf::from_rows(tokens, page.size, |t: &super::StoredPublicToken| super::Cursor {
                    key: String::new(),
                    id: t.id,
                }))
            }

            async fn claim_public_token(
                &self,
                tenant: crate::domain::TenantId,
                provider: &str,
                token_hash: &[u8],
                now: crate::domain::Timestamp,
                claim_until: crate::domain::Timestamp,
            ) -> super::StoreResult<super::Claim> {
                // One connection for every statement: each trip through the pool costs a round trip
                // of its own when the connection goes back.
                let mut db = self.pool.acquire().await?;
                let claim_id = uuid::Uuid::now_v7();
                let reclaimed: Option<(Option<uuid::Uuid>,)> = sqlx::query_as(
                    "UPDATE public_tokens SET state = 'exchanging', claim_expires_at = $5, claim_id = $6 \
                     WHERE provider = $2 AND token_hash = $3 AND tenant_id = $1 \
                     AND (state = 'issued' OR (state = 'exchanging' AND claim_expires_at < $4)) \
                     AND (expires_at IS NULL OR expires_at > $4) RETURNING link_session_id",
                )
                .bind(tenant.0)
                .bind(provider)
                .bind(token_hash)
                .bind(now)
                .bind(claim_until)
                .bind(claim_id)
                .fetch_optional(&mut *db)
                .await?;
                if let Some((link_session_id,)) = reclaimed {
                    let link_session = match link_session_id {
                        Some(id) => Self::read_link_session(&mut *db, tenant, id).await?.map(Box::new),
                        None => None,
                    };
                    return Ok(super::Claim::Won { link_session, claim_id });
                }
                let inserted = sqlx::query(
                    "INSERT INTO public_tokens (id, provider, token_hash, tenant_id, state, claim_expires_at, created_at, \
                     claim_id) VALUES ($1, $2, $3, $4, 'exchanging', $5, $6, $7) ON CONFLICT DO NOTHING",
                )
                .bind(uuid::Uuid::now_v7())
                .bind(provider)
                .bind(token_hash)
                .bind(tenant.0)
                .bind(claim_until)
                .bind(now)
                .bind(claim_id)
                .execute(&mut *db)
                .await?
                .rows_affected();
                if inserted == 1 {
                    return Ok(super::Claim::Won { link_session: None, claim_id });
                }
                let row: Option<super::rows::ClaimRow> = sqlx::query_as(
                    "SELECT tenant_id, state, connection_id, expires_at, claim_expires_at FROM public_tokens \
                     WHERE provider = $1 AND token_hash = $2",
                )
                .bind(provider)
                .bind(token_hash)
                .fetch_optional(&mut *db)
                .await?;
                Ok(match row {
                    None => super::Claim::Busy,
                    Some(row) if row.tenant_id != tenant.0 => super::Claim::Foreign,
                    // Erased with its end user (EraseEndUser): never exchangeable again.
                    Some(row) if row.state == "erased" => super::Claim::Expired,
                    Some(super::rows::ClaimRow { connection_id: Some(connection_id), .. }) => {
                        super::Claim::Exchanged { connection_id }
                    }
                    // Expired, and nobody is exchanging it: an expired token's lapsed claim counts too,
                    // or a crashed claimer would leave it Busy forever.
                    Some(row)
                        if row.expires_at.is_some_and(|at| at <= now)
                            && (row.state == "issued" || row.claim_expires_at.is_some_and(|at| at < now)) =>
                    {
                        super::Claim::Expired
                    }
                    Some(_) => super::Claim::Busy,
                })
            }

            async fn renew_public_token_claim(
                &self,
                tenant: crate::domain::TenantId,
                provider: &str,
                claim: super::TokenClaim<'_>,
                claim_until: crate::domain::Timestamp,
            ) -> super::StoreResult<bool> {
                let renewed = sqlx::query(
                    "UPDATE public_tokens SET claim_expires_at = $5 WHERE tenant_id = $1 AND provider = $2 \
                     AND token_hash = $3 AND state = 'exchanging' AND claim_id = $4",
                )
                .bind(tenant.0)
                .bind(provider)
                .bind(claim.token_hash)
                .bind(claim.claim_id)
                .bind(claim_until)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(renewed == 1)
            }

            async fn release_public_token(
                &self,
                tenant: crate::domain::TenantId,
                provider: &str,
                claim: super::TokenClaim<'_>,
            ) -> super::StoreResult<()> {
                let mut tx = self.begin().await?;
                sqlx::query(
                    "DELETE FROM public_tokens WHERE tenant_id = $1 AND provider = $2 AND token_hash = $3 \
                     AND state = 'exchanging' AND claim_id = $4 AND link_session_id IS NULL",
                )
                .bind(tenant.0)
                .bind(provider)
                .bind(claim.token_hash)
                .bind(claim.claim_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE public_tokens SET state = 'issued', claim_expires_at = NULL, claim_id = NULL \
                     WHERE tenant_id = $1 AND provider = $2 AND token_hash = $3 AND state = 'exchanging' \
                     AND claim_id = $4",
                )
                .bind(tenant.0)
                .bind(provider)
                .bind(claim.token_hash)
                .bind(claim.claim_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

pub(in crate::store) use impl_public_token_store;

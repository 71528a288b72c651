//! The SQL of [`LinkSessionStore`](crate::store::LinkSessionStore), expanded into each backend by
//! `impl_store!`.
//!
//! It also holds `read_link_session`, which a public token claim uses too, on the database
//! connection it already holds, and `apply_link_session_update`, the one statement that moves a
//! session on, shared by a plain update and a repair's completion.

/// The condition of a repair session that is still open, `$3` the current time: not settled
/// (nor failed or expired) and its time not up. Its columns are named after the prefix given
/// (the table's alias, with its dot, or nothing).
macro_rules! open_repair {
    ($table:literal) => {
        concat!(
            $table,
            "repair_connection_id IS NOT NULL AND ",
            $table,
            "state IN ('created', 'connecting', 'mfa_required') AND ",
            $table,
            "expires_at > $3"
        )
    };
}

macro_rules! impl_link_session_store {
    ($store:ty, $db:ty, lock_rows = $lock:literal) => {
        impl $store {
            /// One link session of the tenant, read on `db`: the pool, or a connection already held.
            async fn read_link_session<'e>(
                db: impl sqlx::Executor<'e, Database = $db>,
                tenant: crate::domain::TenantId,
                id: uuid::Uuid,
            ) -> super::StoreResult<Option<crate::domain::LinkSession>> {
                let row: Option<super::rows::LinkSessionRow> =
                    sqlx::query_as("SELECT * FROM link_sessions WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.0)
                        .bind(id)
                        .fetch_optional(db)
                        .await?;
                row.map(TryInto::try_into).transpose().map_err(super::StoreError::Other)
            }

            /// Applies `update` inside `tx` if the session is still in `update.from`, storing the
            /// token it issued; returns whether it applied.
            async fn apply_link_session_update(
                tx: &mut sqlx::Transaction<'_, $db>,
                update: &super::LinkSessionUpdate<'_>,
            ) -> sqlx::Result<bool> {
                use crate::domain::StoredName;
                let s = update.session;
                let applied = sqlx::query(
                    "UPDATE link_sessions SET institution_id = $3, state = $4, link_token = $5, hosted_link_url = $6, \
                     mfa_question = $7, failure_reason = $8, failure_message = $9, last_request_id = $10, \
                     updated_at = $11, next_poll_at = $12, public_token_sealed = $14, public_token_expires_at = $15, \
                     upstream_state_sealed = $16, mfa_methods = $17, \
                     lease_owner = NULL, lease_expires_at = NULL \
                     WHERE tenant_id = $1 AND id = $2 AND state = $13",
                )
                .bind(s.tenant_id.0)
                .bind(s.id)
                .bind(&s.institution_id)
                .bind(s.state.name())
                .bind(&s.link_token)
                .bind(&s.hosted_link_url)
                .bind(&s.mfa_question)
                .bind(s.failure_reason.map(|r| r.stored_name()))
                .bind(&s.failure_message)
                .bind(&s.last_request_id)
                .bind(s.updated_at)
                .bind(update.next_poll_at)
                .bind(update.from.name())
                .bind(s.public_token.as_ref().map(|t| t.0.as_slice()))
                .bind(s.public_token_expires_at)
                .bind(s.upstream_state.as_ref().map(|state| state.0.as_slice()))
                .bind((!s.mfa_methods.is_empty()).then(|| sqlx::types::Json(&s.mfa_methods)))
                .execute(&mut **tx)
                .await?
                .rows_affected()
                    == 1;
                if !applied {
                    return Ok(false);
                }
                if let Some(token) = update.issued {
                    sqlx::query(
                        "INSERT INTO public_tokens (id, provider, token_hash, tenant_id, link_session_id, \
                         institution_id, external_user_id, state, created_at, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, 'issued', $8, $9)",
                    )
                    .bind(token.id)
                    .bind(&token.provider)
                    .bind(&token.token_hash)
                    .bind(s.tenant_id.0)
                    .bind(s.id)
                    .bind(&token.institution_id)
                    .bind(&s.external_user_id)
                    .bind(s.updated_at)
                    .bind(token.expires_at)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(true)
            }
        }

        #[async_trait::async_trait]
        impl super::LinkSessionStore for $store {
            async fn create_link_session(
                &self,
                s: &crate::domain::LinkSession,
                request_id: Option<&str>,
                next_poll_at: Option<crate::domain::Timestamp>,
            ) -> super::StoreResult<crate::domain::LinkSession> {
                use crate::domain::StoredName;
                let inserted = sqlx::query(
                    "INSERT INTO link_sessions (id, tenant_id, provider, institution_id, external_user_id, state, \
                     flow, products, link_token, hosted_link_url, redirect_uri, request_id, last_request_id, \
                     created_at, updated_at, expires_at, next_poll_at, upstream_state_sealed, repair_connection_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $13, $14, $15, $16, $17) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(s.id)
                .bind(s.tenant_id.0)
                .bind(&s.provider)
                .bind(&s.institution_id)
                .bind(&s.external_user_id)
                .bind(s.state.name())
                .bind(s.flow.name())
                .bind(super::rows::products_text(&s.products))
                .bind(&s.link_token)
                .bind(&s.hosted_link_url)
                .bind(&s.redirect_uri)
                .bind(request_id)
                .bind(s.created_at)
                .bind(s.expires_at)
                .bind(next_poll_at)
                .bind(s.upstream_state.as_ref().map(|state| state.0.as_slice()))
                .bind(s.repair_connection_id)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if inserted == 1 {
                    return Ok(s.clone());
                }
                // Only a request_id conflict skips the insert: ids are fresh UUIDv7s.
                let request_id = request_id.ok_or_else(|| {
                    super::StoreError::Other(anyhow::anyhow!("link session {} was not inserted", s.id))
                })?;
                self.find_link_session_by_request(s.tenant_id, request_id).await?.ok_or_else(|| {
                    super::StoreError::Other(anyhow::anyhow!("link session of request {request_id:?} vanished"))
                })
            }

            async fn find_link_session_by_request(
                &self,
                tenant: crate::domain::TenantId,
                request_id: &str,
            ) -> super::StoreResult<Option<crate::domain::LinkSession>> {
                let row: Option<super::rows::LinkSessionRow> =
                    sqlx::query_as("SELECT * FROM link_sessions WHERE tenant_id = $1 AND request_id = $2")
                        .bind(tenant.0)
                        .bind(request_id)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(TryInto::try_into).transpose().map_err(super::StoreError::Other)
            }

            async fn get_link_session(
                &self,
                tenant: crate::domain::TenantId,
                id: uuid::Uuid,
            ) -> super::StoreResult<Option<crate::domain::LinkSession>> {
                Self::read_link_session(&self.pool, tenant, id).await
            }

            async fn update_link_session(&self, update: super::LinkSessionUpdate<'_>) -> super::StoreResult<bool> {
                let mut tx = self.begin().await?;
                if !Self::apply_link_session_update(&mut tx, &update).await? {
                    return Ok(false);
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn complete_repair(
                &self,
                update: super::LinkSessionUpdate<'_>,
                repair: &super::Repair<'_>,
            ) -> super::StoreResult<bool> {
                let c = repair.connection;
                let mut tx = self.begin().await?;
                if !Self::apply_link_session_update(&mut tx, &update).await? {
                    return Ok(false);
                }
                if let Some((old, new)) = repair.handle {
                    let swapped = sqlx::query(
                        "UPDATE connections SET handle_sealed = $3, upstream_cursor = NULL, \
                         upstream_ref_hash = COALESCE($5, upstream_ref_hash) WHERE tenant_id = $1 AND id = $2 \
                         AND handle_sealed = $4",
                    )
                    .bind(c.tenant_id.0)
                    .bind(c.id)
                    .bind(new)
                    .bind(old)
                    .bind(repair.upstream_ref_hash)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if swapped == 0 {
                        return Ok(false);
                    }
                }
                if !Self::store_connection_state(&mut tx, c, Some(repair.next_poll_at)).await? {
                    return Ok(false);
                }
                if let Some(claim) = repair.exchanged
                    && !Self::mark_token_exchanged(&mut tx, c, claim).await?
                {
                    return Ok(false);
                }
                Self::append_event(&mut tx, c, crate::domain::ConnectionEventType::LoginRepaired).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn open_repair_session(
                &self,
                tenant: crate::domain::TenantId,
                connection_id: uuid::Uuid,
                now: crate::domain::Timestamp,
            ) -> super::StoreResult<Option<crate::domain::LinkSession>> {
                let row: Option<super::rows::LinkSessionRow> = sqlx::query_as(concat!(
                    "SELECT * FROM link_sessions WHERE repair_connection_id = $2 AND tenant_id = $1 AND ",
                    super::sql::link_sessions::open_repair!(""),
                    " ORDER BY id DESC LIMIT 1"
                ))
                .bind(tenant.0)
                .bind(connection_id)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                row.map(TryInto::try_into).transpose().map_err(super::StoreError::Other)
            }

            async fn connections_awaiting_repair(
                &self,
                tenant: crate::domain::TenantId,
                provider: &str,
                external_user_id: &str,
                institution_id: &str,
                now: crate::domain::Timestamp,
                limit: i64,
            ) -> super::StoreResult<Vec<uuid::Uuid>> {
                let rows: Vec<(uuid::Uuid,)> = sqlx::query_as(concat!(
                    "SELECT DISTINCT c.id FROM link_sessions s JOIN connections c ON c.id = s.repair_connection_id \
                     WHERE s.tenant_id = $1 AND s.external_user_id = $2 AND s.provider = $4 AND ",
                    super::sql::link_sessions::open_repair!("s."),
                    " AND c.tenant_id = $1 AND c.institution_id = $5 AND c.state <> 'deleted' ORDER BY c.id LIMIT $6"
                ))
                .bind(tenant.0)
                .bind(external_user_id)
                .bind(now)
                .bind(provider)
                .bind(institution_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|(id,)| id).collect())
            }

            async fn lease_link_sessions(
                &self,
                lease: &super::Lease,
            ) -> super::StoreResult<super::Leased<crate::domain::LinkSession>> {
                let rows: Vec<super::rows::Leased<super::rows::LinkSessionRow>> =
                    super::sql::lease_due::<$db>("link_sessions", lease, $lock, "*")
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await?;
                super::rows::Leased::collect(rows, TryInto::try_into).map_err(super::StoreError::Other)
            }

            async fn reschedule_link_session(
                &self,
                tenant: crate::domain::TenantId,
                id: uuid::Uuid,
                next_poll_at: crate::domain::Timestamp,
            ) -> super::StoreResult<()> {
                sqlx::query(
                    "UPDATE link_sessions SET next_poll_at = $3, lease_owner = NULL, lease_expires_at = NULL \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.0)
                .bind(id)
                .bind(next_poll_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    };
}

pub(in crate::store) use {impl_link_session_store, open_repair};

//! The SQL of [`ConnectionStore`](crate::store::ConnectionStore), expanded into each backend by
//! `impl_store!`.
//!
//! It also holds the two statements a repair's completion shares with a sync's save and an
//! exchange: storing a connection's state, and marking its public token exchanged.

macro_rules! impl_connection_store {
    ($store:ty, $db:ty, lock_rows = $lock:literal) => {
        impl $store {
            /// Stores a live connection's state and snapshot inside `tx`, due at `next_poll_at`,
            /// releasing any lease; `false` when it is deleted (or another tenant's).
            async fn store_connection_state(
                tx: &mut sqlx::Transaction<'_, $db>,
                c: &crate::domain::Connection,
                next_poll_at: Option<crate::domain::Timestamp>,
            ) -> sqlx::Result<bool> {
                use crate::domain::StoredName;
                let updated = sqlx::query(concat!(
                    "UPDATE connections SET state = $3, snapshot = $4, ",
                    super::sql::connections::next_poll!("$5", "$6"),
                    ", lease_owner = NULL, lease_expires_at = NULL WHERE tenant_id = $1 AND id = $2 AND state <> 'deleted'"
                ))
                .bind(c.tenant_id.0)
                .bind(c.id)
                .bind(c.state.name())
                .bind(sqlx::types::Json(c))
                .bind(next_poll_at)
                .bind(crate::domain::now())
                .execute(&mut **tx)
                .await?
                .rows_affected();
                Ok(updated == 1)
            }

            /// Records inside `tx` that the public token held under `claim` was exchanged for `c`;
            /// `false`, changing nothing, when the token is no longer held under that claim (it
            /// lapsed and another exchange took it over).
            async fn mark_token_exchanged(
                tx: &mut sqlx::Transaction<'_, $db>,
                c: &crate::domain::Connection,
                claim: super::TokenClaim<'_>,
            ) -> sqlx::Result<bool> {
                let marked = sqlx::query(
                    "UPDATE public_tokens SET state = 'exchanged', connection_id = $4, claim_expires_at = NULL, \
                     claim_id = NULL WHERE tenant_id = $1 AND provider = $2 AND token_hash = $3 \
                     AND state = 'exchanging' AND claim_id = $5",
                )
                .bind(c.tenant_id.0)
                .bind(&c.provider)
                .bind(claim.token_hash)
                .bind(c.id)
                .bind(claim.claim_id)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                Ok(marked == 1)
            }
        }

        #[async_trait::async_trait]
        impl super::ConnectionStore for $store {
            async fn create_connection(
                &self,
                c: &crate::domain::Connection,
                handle_sealed: &[u8],
                upstream_ref_hash: &[u8],
                claim: super::TokenClaim<'_>,
                next_poll_at: crate::domain::Timestamp,
            ) -> super::StoreResult<bool> {
                use crate::domain::StoredName;
                let mut tx = self.begin().await?;
                // The claim first: a holder that lost it writes nothing, and the token's row lock
                // keeps a takeover waiting until this transaction ends.
                if !Self::mark_token_exchanged(&mut tx, c, claim).await? {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO connections (id, tenant_id, provider, external_user_id, state, snapshot, \
                     handle_sealed, next_poll_at, upstream_ref_hash, institution_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(c.id)
                .bind(c.tenant_id.0)
                .bind(&c.provider)
                .bind(&c.external_user_id)
                .bind(c.state.name())
                .bind(sqlx::types::Json(c))
                .bind(handle_sealed)
                .bind(next_poll_at)
                .bind(upstream_ref_hash)
                .bind(&c.institution_id)
                .execute(&mut *tx)
                .await?;
                Self::append_event(&mut tx, c, crate::domain::ConnectionEventType::StateChanged).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn get_connection(
                &self,
                tenant: crate::domain::TenantId,
                id: uuid::Uuid,
            ) -> super::StoreResult<Option<crate::domain::Connection>> {
                let row: Option<super::rows::ConnectionRow> =
                    sqlx::query_as("SELECT snapshot FROM connections WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.0)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(|r| r.snapshot.0))
            }

            async fn find_connection_by_upstream_ref(
                &self,
                tenant: crate::domain::TenantId,
                provider: &str,
                upstream_ref_hash: &[u8],
            ) -> super::StoreResult<Option<crate::domain::Connection>> {
                let row: Option<super::rows::ConnectionRow> = sqlx::query_as(
                    "SELECT snapshot FROM connections WHERE tenant_id = $1 AND provider = $2 \
                     AND upstream_ref_hash = $3 AND state <> 'deleted' ORDER BY id DESC LIMIT 1",
                )
                .bind(tenant.0)
                .bind(provider)
                .bind(upstream_ref_hash)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|r| r.snapshot.0))
            }

            async fn find_live_duplicate(
                &self,
                tenant: crate::domain::TenantId,
                external_user_id: &str,
                provider: &str,
                institution_id: &str,
            ) -> super::StoreResult<Option<uuid::Uuid>> {
                let row: Option<(uuid::Uuid,)> = sqlx::query_as(
                    "SELECT id FROM connections WHERE tenant_id = $1 AND external_user_id = $2 AND provider = $3 \
                     AND institution_id = $4 AND state <> 'deleted' ORDER BY id LIMIT 1",
                )
                .bind(tenant.0)
                .bind(external_user_id)
                .bind(provider)
                .bind(institution_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(id,)| id))
            }

            async fn lease_connection(
                &self,
                tenant: crate::domain::TenantId,
                id: uuid::Uuid,
                owner: &str,
                now: crate::domain::Timestamp,
                until: crate::domain::Timestamp,
            ) -> super::StoreResult<bool> {
                let leased = sqlx::query(
                    "UPDATE connections SET lease_owner = $3, lease_expires_at = $5, lease_taken_over = FALSE \
                     WHERE tenant_id = $1 AND id = $2 AND handle_sealed IS NOT NULL \
                     AND (lease_expires_at IS NULL OR lease_expires_at < $4)",
                )
                .bind(tenant.0)
                .bind(id)
                .bind(owner)
                .bind(now)
                .bind(until)
                .execute(&self.pool)
                .await?;
                Ok(leased.rows_affected() == 1)
            }

            async fn list_connections(
                &self,
                tenant: crate::domain::TenantId,
                filter: &super::ConnectionFilter,
                page: &super::Page,
            ) -> super::StoreResult<super::PageOf<crate::domain::Connection>> {
                use crate::domain::StoredName;
                let rows: Vec<super::rows::ConnectionRow> = sqlx::query_as(
                    "SELECT snapshot FROM connections WHERE tenant_id = $1 \
                     AND ($2 IS NULL OR external_user_id = $2) AND ($3 IS NULL OR provider = $3) \
                     AND (($4 IS NULL AND state <> 'deleted') OR state = $4) \
                     AND ($5 IS NULL OR id < $5) ORDER BY id DESC LIMIT $6",
                )
                .bind(tenant.0)
                .bind(&filter.external_user_id)
                .bind(&filter.provider)
                .bind(filter.state.map(|s| s.name()))
                .bind(page.after.as_ref().map(|c| c.id))
                .bind(page.size as i64 + 1)
                .fetch_all(&self.pool)
                .await?;
                let connections = rows.into_iter().map(|r| r.snapshot.0).collect();
                Ok(super::PageOf::from_rows(connections, page.size, |c: &crate::domain::Connection| {
                    super::Cursor { key: String::new(), id: c.id }
                }))
            }

            async fn connection_handle(
                &self,
                tenant: crate::domain::TenantId,
                id: uuid::Uuid,
            ) -> super::StoreResult<Option<Vec<u8>>> {
                let row: Option<(Option<Vec<u8>>,)> =
                    sqlx::query_as("SELECT handle_sealed FROM connections WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.0)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.and_then(|(handle,)| handle))
            }

            async fn upstream_cursor(
                &self,
                tenant: crate::domain::TenantId,
                id: uuid::Uuid,
            ) -> super::StoreResult<Option<String>> {
                let row: Option<(Option<String>,)> = sqlx::query_as(
                    "SELECT upstream_cursor FROM connections WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.0)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.and_then(|(cursor,)| cursor))
            }

            async fn upstream_webhook(
                &self,
                tenant: crate::domain::TenantId,
                id: uuid::Uuid,
            ) -> super::StoreResult<Option<String>> {
                let row: Option<(Option<String>,)> = sqlx::query_as(
                    "SELECT upstream_webhook FROM connections WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.0)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.and_then(|(url,)| url))
            }

            async fn set_upstream_webhook(
                &self,
                tenant: crate::domain::TenantId,
                id: uuid::Uuid,
                url: Option<&str>,
            ) -> super::StoreResult<()> {
                sqlx::query("UPDATE connections SET upstream_webhook = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(id)
                    .bind(url)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn save_connection(
                &self,
                c: &crate::domain::Connection,
                next_poll_at: Option<crate::domain::Timestamp>,
                import: Option<super::Import<'_>>,
                kind: crate::domain::ConnectionEventType,
            ) -> super::StoreResult<bool> {
                use crate::domain::{ConnectionEventType, EventDetails};
                let mut tx = self.begin().await?;
                if !Self::store_connection_state(&mut tx, c, next_poll_at).await? {
                    return Ok(false);
                }
                let plan = match import {
                    Some(import) => {
                        sqlx::query("UPDATE connections SET upstream_cursor = $2 WHERE id = $1")
                            .bind(c.id)
                            .bind(import.cursor)
                            .execute(&mut *tx)
                            .await?;
                        Self::store_account_details(&mut tx, c, &import).await?;
                        Self::apply_import(&mut tx, c, import).await?
                    }
                    None => Default::default(),
                };
                Self::append_event(&mut tx, c, kind).await?;
                // What the import changed follows the state it brought, in the same transaction.
                if !plan.new_account_ids.is_empty() {
                    let details = EventDetails { new_account_ids: plan.new_account_ids, ..Default::default() };
                    Self::append_event_with(&mut tx, c, ConnectionEventType::NewAccounts, details).await?;
                }
                if !plan.changes.is_empty() {
                    let details = EventDetails { data_changes: Some(plan.changes), ..Default::default() };
                    Self::append_event_with(&mut tx, c, ConnectionEventType::DataUpdated, details).await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn release_connection(
                &self,
                tenant: crate::domain::TenantId,
                id: uuid::Uuid,
                owner: &str,
                next_poll_at: Option<crate::domain::Timestamp>,
            ) -> super::StoreResult<bool> {
                let released = sqlx::query(concat!(
                    "UPDATE connections SET lease_owner = NULL, lease_expires_at = NULL, ",
                    super::sql::connections::next_poll!("COALESCE($4, next_poll_at)", "$5"),
                    " WHERE tenant_id = $1 AND id = $2 AND lease_owner = $3 AND state <> 'deleted'"
                ))
                .bind(tenant.0)
                .bind(id)
                .bind(owner)
                .bind(next_poll_at)
                .bind(crate::domain::now())
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(released == 1)
            }

            async fn reschedule_connection(
                &self,
                tenant: crate::domain::TenantId,
                id: uuid::Uuid,
                next_poll_at: Option<crate::domain::Timestamp>,
            ) -> super::StoreResult<()> {
                sqlx::query(concat!(
                    "UPDATE connections SET ",
                    super::sql::connections::next_poll!("$3", "$4"),
                    ", lease_owner = NULL, lease_expires_at = NULL WHERE tenant_id = $1 AND id = $2 AND state <> 'deleted'"
                ))
                .bind(tenant.0)
                .bind(id)
                .bind(next_poll_at)
                .bind(crate::domain::now())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn delete_connection(
                &self,
                c: &crate::domain::Connection,
            ) -> super::StoreResult<bool> {
                let mut tx = self.begin().await?;
                let updated = sqlx::query(
                    "UPDATE connections SET state = 'deleted', snapshot = $3, handle_sealed = NULL, upstream_cursor = NULL, \
                     next_poll_at = NULL, lease_owner = NULL, lease_expires_at = NULL \
                     WHERE tenant_id = $1 AND id = $2 AND state <> 'deleted'",
                )
                .bind(c.tenant_id.0)
                .bind(c.id)
                .bind(sqlx::types::Json(c))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    return Ok(false);
                }
                // Its data, its account details, and what the sandbox kept for it.
                for table in
                    ["connection_records", "record_changes", "account_details", "sandbox_transactions", "sandbox_failures"]
                {
                    sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE connection_id = $1")))
                        .bind(c.id)
                        .execute(&mut *tx)
                        .await?;
                }
                Self::append_event(&mut tx, c, crate::domain::ConnectionEventType::StateChanged).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn lease_connections(
                &self,
                lease: &super::Lease,
            ) -> super::StoreResult<super::Leased<crate::domain::Connection>> {
                let rows: Vec<super::rows::Leased<super::rows::ConnectionRow>> =
                    super::sql::lease_due::<$db>("connections", lease, $lock, "snapshot, lease_taken_over")
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await?;
                super::rows::Leased::collect(rows, |row| Ok(row.snapshot.0)).map_err(super::StoreError::Other)
            }
        }
    };
}

pub(in crate::store) use impl_connection_store;

/// The assignments that end a poll's hold on a connection: due at `$scheduled`, unless a webhook
/// named it while it was polled (`poll_again`), which makes it due at `$now` instead.
macro_rules! next_poll {
    ($scheduled:literal, $now:literal) => {
        concat!("next_poll_at = CASE WHEN poll_again THEN ", $now, " ELSE ", $scheduled, " END, poll_again = FALSE")
    };
}

pub(in crate::store) use next_poll;

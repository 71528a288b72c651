//! The SQL of [`ErasureStore`](crate::store::ErasureStore), expanded into each backend by
//! `impl_store!`.
//!
//! A public token is not deleted but left as a tombstone: its row keeps only the token's hash,
//! tenant, provider and times, in state `erased`, so the token can never be exchanged again (an
//! exchange answers PUBLIC_TOKEN_EXPIRED) while nothing in it names the user.
//!
//! A connection's events go but its DELETED event, kept as a tombstone redacted of everything of
//! its user ([`Connection::tombstone`](crate::domain::Connection::tombstone)): a replica whose
//! tailer had not read the event before the erasure still finds it in the log, so its watchers
//! learn the connection is gone. Tombstones are pruned with the rest of the log.
//!
//! Every statement finds the user's erasable connections with the same subquery (the tenant's
//! DELETED connections of the user), so no list of ids crosses the wire and each backend binds
//! the same two parameters.

/// The user's erasable connections (`$1` the tenant, `$2` the user): the DELETED ones.
macro_rules! erasable {
    () => {
        "SELECT id FROM connections WHERE tenant_id = $1 AND external_user_id = $2 AND state = 'deleted'"
    };
}

macro_rules! impl_erasure_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl super::ErasureStore for $store {
            async fn end_user_connections(
                &self,
                tenant: crate::domain::TenantId,
                external_user_id: &str,
            ) -> super::StoreResult<Vec<crate::domain::Connection>> {
                let rows: Vec<super::rows::ConnectionRow> = sqlx::query_as(
                    "SELECT snapshot FROM connections WHERE tenant_id = $1 AND external_user_id = $2 ORDER BY id",
                )
                .bind(tenant.0)
                .bind(external_user_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|r| r.snapshot.0).collect())
            }

            async fn erase_end_user(
                &self,
                tenant: crate::domain::TenantId,
                external_user_id: &str,
            ) -> super::StoreResult<super::Erased> {
                // The connections' last events (their DELETED ones, usually just written) may
                // still wait for the sequencer: moved into the log first, they are erased below
                // rather than left to arrive afterwards with the user's name in them. A DELETED
                // connection is never written again, so none of its events can come later. In a
                // transaction of its own, as every move is: the sequencer's lock is not held for
                // the erasure's length.
                while self.sequence(10_000).await? == 10_000 {}
                let mut tx = self.begin().await?;
                sqlx::query(
                    "DELETE FROM webhook_inbox WHERE subject_hash IS NOT NULL AND EXISTS (SELECT 1 FROM connections c \
                     WHERE c.tenant_id = $1 AND c.external_user_id = $2 AND c.state = 'deleted' \
                     AND c.provider = webhook_inbox.provider AND c.upstream_ref_hash = webhook_inbox.subject_hash)",
                )
                .bind(tenant.0)
                .bind(external_user_id)
                .execute(&mut *tx)
                .await?;
                // The connections' data, their account details, and what the sandbox kept for them.
                for table in
                    ["connection_records", "record_changes", "account_details", "sandbox_transactions", "sandbox_failures"]
                {
                    let sql = format!(
                        "DELETE FROM {table} WHERE tenant_id = $1 AND connection_id IN ({})",
                        super::sql::erasure::erasable!()
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.0).bind(external_user_id).execute(&mut *tx).await?;
                }
                let deletions: Vec<(i64, sqlx::types::Json<crate::domain::Connection>)> = sqlx::query_as(concat!(
                    "SELECT id, snapshot FROM connection_events WHERE tenant_id = $1 AND state = 'deleted' \
                     AND connection_id IN (",
                    super::sql::erasure::erasable!(),
                    ")"
                ))
                .bind(tenant.0)
                .bind(external_user_id)
                .fetch_all(&mut *tx)
                .await?;
                for (event_id, deleted) in deletions {
                    sqlx::query("UPDATE connection_events SET external_user_id = '', snapshot = $2 WHERE id = $1")
                        .bind(event_id)
                        .bind(sqlx::types::Json(deleted.0.tombstone()))
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(concat!(
                    "DELETE FROM connection_events WHERE tenant_id = $1 AND state <> 'deleted' AND connection_id IN (",
                    super::sql::erasure::erasable!(),
                    ")"
                ))
                .bind(tenant.0)
                .bind(external_user_id)
                .execute(&mut *tx)
                .await?;
                let public_tokens = sqlx::query(concat!(
                    "UPDATE public_tokens SET state = 'erased', link_session_id = NULL, institution_id = NULL, \
                     external_user_id = NULL, connection_id = NULL, claim_expires_at = NULL, expires_at = $3 \
                     WHERE tenant_id = $1 AND state <> 'erased' AND (external_user_id = $2 \
                     OR connection_id IN (",
                    super::sql::erasure::erasable!(),
                    ") OR link_session_id IN \
                     (SELECT id FROM link_sessions WHERE tenant_id = $1 AND external_user_id = $2))"
                ))
                .bind(tenant.0)
                .bind(external_user_id)
                .bind(crate::domain::now())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let link_sessions = sqlx::query(concat!(
                    "DELETE FROM link_sessions WHERE tenant_id = $1 AND (external_user_id = $2 \
                     OR repair_connection_id IN (",
                    super::sql::erasure::erasable!(),
                    "))"
                ))
                .bind(tenant.0)
                .bind(external_user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let connections = sqlx::query(
                    "DELETE FROM connections WHERE tenant_id = $1 AND external_user_id = $2 AND state = 'deleted'",
                )
                .bind(tenant.0)
                .bind(external_user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let (live,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM connections WHERE tenant_id = $1 AND external_user_id = $2")
                        .bind(tenant.0)
                        .bind(external_user_id)
                        .fetch_one(&mut *tx)
                        .await?;
                tx.commit().await?;
                self.settle_erasure().await?;
                Ok(super::Erased { connections, link_sessions, public_tokens, live_connections_left: live as u64 })
            }
        }
    };
}

pub(in crate::store) use {erasable, impl_erasure_store};

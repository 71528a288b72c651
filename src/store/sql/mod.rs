//! The store's SQL, written once and expanded for each backend by [`impl_store!`].
//!
//! Both PostgreSQL and SQLite accept the same statements here (`$N` parameters, `ON CONFLICT`,
//! `RETURNING`, row-value comparisons). The one difference is how due work is leased: PostgreSQL
//! locks the rows it takes with `FOR UPDATE SKIP LOCKED` so replicas never take the same item,
//! while SQLite serializes writers anyway; each backend passes its clause as `lock_rows`.
//! Likewise PostgreSQL takes a transaction-scoped advisory lock as it appends an event
//! (`serialize_events`, evaluated before the event's id is drawn), so events commit in id order
//! and a reader that has seen event N has seen every earlier one: concurrent writers can no
//! longer commit id 11 before id 10 and have a "newer than 10" reader skip it. The lock is held only from the append to the commit, the last
//! steps of every writing transaction.
//! A macro rather than generic code keeps each expansion concrete: sqlx's generic bounds over
//! two databases would be longer than the SQL they protect.

macro_rules! impl_store {
    ($store:ty, $db:ty, lock_rows = $lock:literal, serialize_events = $event_lock:literal) => {
        impl $store {
            /// Appends a connection's event inside the caller's transaction.
            async fn append_event(
                tx: &mut sqlx::Transaction<'_, $db>,
                connection: &crate::domain::Connection,
            ) -> sqlx::Result<crate::domain::ConnectionEvent> {
                use crate::domain::StoredName;
                // The lock is taken in the statement that appends, before the event's id is
                // drawn: the row comes from the materialized `serialized`, so the lock is held from
                // this one round trip to the commit rather than from a round trip of its own.
                let (event_id,): (i64,) = sqlx::query_as(concat!(
                    "WITH serialized AS MATERIALIZED (",
                    $event_lock,
                    ") INSERT INTO connection_events \
                     (tenant_id, connection_id, provider, external_user_id, state, snapshot, occurred_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7 FROM serialized RETURNING id",
                ))
                .bind(connection.tenant_id.0)
                .bind(connection.id)
                .bind(&connection.provider)
                .bind(&connection.external_user_id)
                .bind(connection.state.name())
                .bind(sqlx::types::Json(connection))
                .bind(connection.updated_at)
                .fetch_one(&mut **tx)
                .await?;
                Ok(crate::domain::ConnectionEvent {
                    event_id,
                    connection: connection.clone(),
                    occurred_at: connection.updated_at,
                    snapshot: false,
                })
            }

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

            async fn insert_records(
                tx: &mut sqlx::Transaction<'_, $db>,
                connection: &crate::domain::Connection,
                data: &crate::domain::ConnectionData,
            ) -> sqlx::Result<()> {
                use crate::domain::StoredName;
                sqlx::query("DELETE FROM connection_records WHERE connection_id = $1")
                    .bind(connection.id)
                    .execute(&mut **tx)
                    .await?;
                for record in super::records::records_of(data) {
                    sqlx::query(
                        "INSERT INTO connection_records \
                         (connection_id, kind, id, tenant_id, parent_id, sort_key, record_date, body) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(connection.id)
                    .bind(record.kind.name())
                    .bind(record.id)
                    .bind(connection.tenant_id.0)
                    .bind(record.parent_id)
                    .bind(&record.sort_key)
                    .bind(record.date)
                    .bind(sqlx::types::Json(&record.body))
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl super::Store for $store {
            async fn ping(&self) -> super::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

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
                     created_at, updated_at, expires_at, next_poll_at, upstream_state_sealed) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $13, $14, $15, $16) \
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
                use crate::domain::StoredName;
                let s = update.session;
                let mut tx = self.begin().await?;
                let applied = sqlx::query(
                    "UPDATE link_sessions SET institution_id = $3, state = $4, link_token = $5, hosted_link_url = $6, \
                     mfa_question = $7, failure_reason = $8, failure_message = $9, last_request_id = $10, \
                     updated_at = $11, next_poll_at = $12, public_token_sealed = $14, public_token_expires_at = $15, \
                     upstream_state_sealed = $16, \
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
                .bind(s.failure_reason.map(|r| r.as_str_name()))
                .bind(&s.failure_message)
                .bind(&s.last_request_id)
                .bind(s.updated_at)
                .bind(update.next_poll_at)
                .bind(update.from.name())
                .bind(s.public_token.as_ref().map(|t| t.0.as_slice()))
                .bind(s.public_token_expires_at)
                .bind(s.upstream_state.as_ref().map(|state| state.0.as_slice()))
                .execute(&mut *tx)
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
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn lease_link_sessions(
                &self,
                lease: &super::Lease,
            ) -> super::StoreResult<super::Leased<crate::domain::LinkSession>> {
                // SET reads the row as it was: a lease that is still set has lapsed.
                let rows: Vec<super::rows::Leased<super::rows::LinkSessionRow>> = sqlx::query_as(concat!(
                    "UPDATE link_sessions SET lease_taken_over = (lease_expires_at IS NOT NULL), ",
                    "lease_owner = $1, lease_expires_at = $3 WHERE id IN (",
                    "SELECT id FROM link_sessions WHERE next_poll_at <= $2 ",
                    "AND (lease_expires_at IS NULL OR lease_expires_at < $2) ORDER BY next_poll_at LIMIT $4",
                    $lock,
                    ") RETURNING *"
                ))
                .bind(&lease.owner)
                .bind(lease.now)
                .bind(lease.until)
                .bind(lease.limit)
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
                let reclaimed: Option<(Option<uuid::Uuid>,)> = sqlx::query_as(
                    "UPDATE public_tokens SET state = 'exchanging', claim_expires_at = $5 \
                     WHERE provider = $2 AND token_hash = $3 AND tenant_id = $1 \
                     AND (state = 'issued' OR (state = 'exchanging' AND claim_expires_at < $4)) \
                     AND (expires_at IS NULL OR expires_at > $4) RETURNING link_session_id",
                )
                .bind(tenant.0)
                .bind(provider)
                .bind(token_hash)
                .bind(now)
                .bind(claim_until)
                .fetch_optional(&mut *db)
                .await?;
                if let Some((link_session_id,)) = reclaimed {
                    let link_session = match link_session_id {
                        Some(id) => Self::read_link_session(&mut *db, tenant, id).await?.map(Box::new),
                        None => None,
                    };
                    return Ok(super::Claim::Won { link_session });
                }
                let inserted = sqlx::query(
                    "INSERT INTO public_tokens (id, provider, token_hash, tenant_id, state, claim_expires_at, created_at) \
                     VALUES ($1, $2, $3, $4, 'exchanging', $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(uuid::Uuid::now_v7())
                .bind(provider)
                .bind(token_hash)
                .bind(tenant.0)
                .bind(claim_until)
                .bind(now)
                .execute(&mut *db)
                .await?
                .rows_affected();
                if inserted == 1 {
                    return Ok(super::Claim::Won { link_session: None });
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

            async fn release_public_token(
                &self,
                tenant: crate::domain::TenantId,
                provider: &str,
                token_hash: &[u8],
            ) -> super::StoreResult<()> {
                let mut tx = self.begin().await?;
                sqlx::query(
                    "DELETE FROM public_tokens WHERE tenant_id = $1 AND provider = $2 AND token_hash = $3 \
                     AND state = 'exchanging' AND link_session_id IS NULL",
                )
                .bind(tenant.0)
                .bind(provider)
                .bind(token_hash)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE public_tokens SET state = 'issued', claim_expires_at = NULL \
                     WHERE tenant_id = $1 AND provider = $2 AND token_hash = $3 AND state = 'exchanging'",
                )
                .bind(tenant.0)
                .bind(provider)
                .bind(token_hash)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn create_connection(
                &self,
                c: &crate::domain::Connection,
                handle_sealed: &[u8],
                upstream_ref_hash: &[u8],
                token_hash: &[u8],
                next_poll_at: crate::domain::Timestamp,
            ) -> super::StoreResult<crate::domain::ConnectionEvent> {
                use crate::domain::StoredName;
                let mut tx = self.begin().await?;
                sqlx::query(
                    "INSERT INTO connections (id, tenant_id, provider, external_user_id, state, snapshot, \
                     handle_sealed, next_poll_at, upstream_ref_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE public_tokens SET state = 'exchanged', connection_id = $4, claim_expires_at = NULL \
                     WHERE tenant_id = $1 AND provider = $2 AND token_hash = $3",
                )
                .bind(c.tenant_id.0)
                .bind(&c.provider)
                .bind(token_hash)
                .bind(c.id)
                .execute(&mut *tx)
                .await?;
                let event = Self::append_event(&mut tx, c).await?;
                tx.commit().await?;
                Ok(event)
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

            async fn record_webhook(&self, d: &super::InboxDelivery) -> super::StoreResult<bool> {
                let inserted = sqlx::query(
                    "INSERT INTO webhook_inbox (provider, delivery_key, event, subject_hash, body_sealed, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (provider, delivery_key) DO NOTHING",
                )
                .bind(&d.provider)
                .bind(&d.delivery_key)
                .bind(&d.event)
                .bind(d.subject_hash.as_deref())
                .bind(&d.body_sealed)
                .bind(d.received_at)
                .execute(&self.pool)
                .await?;
                Ok(inserted.rows_affected() == 1)
            }

            async fn process_webhooks(
                &self,
                now: crate::domain::Timestamp,
                limit: i64,
            ) -> super::StoreResult<super::WebhooksProcessed> {
                let mut tx = self.begin().await?;
                let taken: Vec<(String, Option<Vec<u8>>)> = sqlx::query_as(concat!(
                    "UPDATE webhook_inbox SET processed_at = $1 WHERE id IN (",
                    "SELECT id FROM webhook_inbox WHERE processed_at IS NULL ORDER BY id LIMIT $2",
                    $lock,
                    ") RETURNING provider, subject_hash"
                ))
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                let mut processed = super::WebhooksProcessed { deliveries: taken.len() as u64, connections: 0 };
                for (provider, subject_hash) in &taken {
                    let Some(subject_hash) = subject_hash else { continue };
                    // A connection being polled right now keeps its lease; its next round after
                    // this one picks the change up.
                    let nudged = sqlx::query(
                        "UPDATE connections SET next_poll_at = $3 WHERE provider = $1 AND upstream_ref_hash = $2 \
                         AND handle_sealed IS NOT NULL AND (next_poll_at IS NULL OR next_poll_at > $3)",
                    )
                    .bind(provider)
                    .bind(subject_hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    processed.connections += nudged.rows_affected();
                }
                tx.commit().await?;
                Ok(processed)
            }

            async fn prune_webhooks(&self, before: crate::domain::Timestamp, limit: i64) -> super::StoreResult<u64> {
                let pruned = sqlx::query(
                    "DELETE FROM webhook_inbox WHERE id IN (SELECT id FROM webhook_inbox \
                     WHERE processed_at IS NOT NULL AND received_at < $1 ORDER BY id LIMIT $2)",
                )
                .bind(before)
                .bind(limit)
                .execute(&self.pool)
                .await?;
                Ok(pruned.rows_affected())
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

            async fn save_connection(
                &self,
                c: &crate::domain::Connection,
                next_poll_at: Option<crate::domain::Timestamp>,
                data: Option<&crate::domain::ConnectionData>,
            ) -> super::StoreResult<Option<crate::domain::ConnectionEvent>> {
                use crate::domain::StoredName;
                let mut tx = self.begin().await?;
                let updated = sqlx::query(
                    "UPDATE connections SET state = $3, snapshot = $4, next_poll_at = $5, lease_owner = NULL, \
                     lease_expires_at = NULL WHERE tenant_id = $1 AND id = $2 AND state <> 'deleted'",
                )
                .bind(c.tenant_id.0)
                .bind(c.id)
                .bind(c.state.name())
                .bind(sqlx::types::Json(c))
                .bind(next_poll_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    return Ok(None);
                }
                if let Some(data) = data {
                    Self::insert_records(&mut tx, c, data).await?;
                }
                let event = Self::append_event(&mut tx, c).await?;
                tx.commit().await?;
                Ok(Some(event))
            }

            async fn reschedule_connection(
                &self,
                tenant: crate::domain::TenantId,
                id: uuid::Uuid,
                next_poll_at: crate::domain::Timestamp,
            ) -> super::StoreResult<()> {
                sqlx::query(
                    "UPDATE connections SET next_poll_at = $3, lease_owner = NULL, lease_expires_at = NULL \
                     WHERE tenant_id = $1 AND id = $2 AND state <> 'deleted'",
                )
                .bind(tenant.0)
                .bind(id)
                .bind(next_poll_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn delete_connection(
                &self,
                c: &crate::domain::Connection,
            ) -> super::StoreResult<Option<crate::domain::ConnectionEvent>> {
                let mut tx = self.begin().await?;
                let updated = sqlx::query(
                    "UPDATE connections SET state = 'deleted', snapshot = $3, handle_sealed = NULL, next_poll_at = NULL, \
                     lease_owner = NULL, lease_expires_at = NULL WHERE tenant_id = $1 AND id = $2 AND state <> 'deleted'",
                )
                .bind(c.tenant_id.0)
                .bind(c.id)
                .bind(sqlx::types::Json(c))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    return Ok(None);
                }
                sqlx::query("DELETE FROM connection_records WHERE connection_id = $1")
                    .bind(c.id)
                    .execute(&mut *tx)
                    .await?;
                let event = Self::append_event(&mut tx, c).await?;
                tx.commit().await?;
                Ok(Some(event))
            }

            async fn lease_connections(
                &self,
                lease: &super::Lease,
            ) -> super::StoreResult<super::Leased<crate::domain::Connection>> {
                let rows: Vec<super::rows::Leased<super::rows::ConnectionRow>> = sqlx::query_as(concat!(
                    "UPDATE connections SET lease_taken_over = (lease_expires_at IS NOT NULL), ",
                    "lease_owner = $1, lease_expires_at = $3 WHERE id IN (",
                    "SELECT id FROM connections WHERE next_poll_at <= $2 ",
                    "AND (lease_expires_at IS NULL OR lease_expires_at < $2) ORDER BY next_poll_at LIMIT $4",
                    $lock,
                    ") RETURNING snapshot, lease_taken_over"
                ))
                .bind(&lease.owner)
                .bind(lease.now)
                .bind(lease.until)
                .bind(lease.limit)
                .fetch_all(&self.pool)
                .await?;
                super::rows::Leased::collect(rows, |row| Ok(row.snapshot.0)).map_err(super::StoreError::Other)
            }

            async fn list_records(&self, q: &super::RecordQuery) -> super::StoreResult<super::PageOf<super::StoredRecord>> {
                use crate::domain::StoredName;
                let sql = if q.kind.newest_first() {
                    "SELECT id, sort_key, body FROM connection_records \
                     WHERE connection_id = $1 AND tenant_id = $2 AND kind = $3 AND ($4 IS NULL OR parent_id = $4) \
                     AND ($5 IS NULL OR record_date >= $5) AND ($6 IS NULL OR record_date <= $6) \
                     AND ($7 IS NULL OR (sort_key, id) < ($7, $8)) ORDER BY sort_key DESC, id DESC LIMIT $9"
                } else {
                    "SELECT id, sort_key, body FROM connection_records \
                     WHERE connection_id = $1 AND tenant_id = $2 AND kind = $3 AND ($4 IS NULL OR parent_id = $4) \
                     AND ($5 IS NULL OR record_date >= $5) AND ($6 IS NULL OR record_date <= $6) \
                     AND ($7 IS NULL OR (sort_key, id) > ($7, $8)) ORDER BY sort_key, id LIMIT $9"
                };
                let rows: Vec<super::rows::RecordRow> = sqlx::query_as(sql)
                    .bind(q.connection_id)
                    .bind(q.tenant.0)
                    .bind(q.kind.name())
                    .bind(q.parent_id)
                    .bind(q.dates.start)
                    .bind(q.dates.end)
                    .bind(q.after().map(|c| c.key.as_str()))
                    .bind(q.after().map(|c| c.id))
                    .bind(q.page.size as i64 + 1)
                    .fetch_all(&self.pool)
                    .await?;
                let records = rows
                    .into_iter()
                    .map(|r| super::StoredRecord { id: r.id, sort_key: r.sort_key, body: r.body.0 })
                    .collect();
                Ok(super::PageOf::from_rows(records, q.page.size, |r: &super::StoredRecord| super::Cursor {
                    key: r.sort_key.clone(),
                    id: r.id,
                }))
            }

            async fn has_record(
                &self,
                tenant: crate::domain::TenantId,
                connection_id: uuid::Uuid,
                kind: super::RecordKind,
                id: uuid::Uuid,
            ) -> super::StoreResult<bool> {
                use crate::domain::StoredName;
                let row: Option<(uuid::Uuid,)> = sqlx::query_as(
                    "SELECT id FROM connection_records \
                     WHERE connection_id = $1 AND tenant_id = $2 AND kind = $3 AND id = $4",
                )
                .bind(connection_id)
                .bind(tenant.0)
                .bind(kind.name())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.is_some())
            }

            async fn events_after(
                &self,
                tenant: crate::domain::TenantId,
                filter: &super::EventFilter,
                after_event_id: i64,
                limit: i64,
            ) -> super::StoreResult<Vec<crate::domain::ConnectionEvent>> {
                let rows: Vec<super::rows::EventRow> = sqlx::query_as(
                    "SELECT id, snapshot, occurred_at FROM connection_events WHERE tenant_id = $1 AND id > $2 \
                     AND ($3 IS NULL OR connection_id = $3) AND ($4 IS NULL OR external_user_id = $4) \
                     AND ($5 IS NULL OR provider = $5) ORDER BY id LIMIT $6",
                )
                .bind(tenant.0)
                .bind(after_event_id)
                .bind(filter.connection_id)
                .bind(&filter.external_user_id)
                .bind(&filter.provider)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn tail_events(
                &self,
                after_event_id: i64,
                limit: i64,
            ) -> super::StoreResult<Vec<crate::domain::ConnectionEvent>> {
                let rows: Vec<super::rows::EventRow> = sqlx::query_as(
                    "SELECT id, snapshot, occurred_at FROM connection_events WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after_event_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn prune_events(&self, before: crate::domain::Timestamp, limit: i64) -> super::StoreResult<u64> {
                let mut tx = self.begin().await?;
                let pruned: Vec<(i64,)> = sqlx::query_as(
                    "DELETE FROM connection_events WHERE id IN ( \
                     SELECT e.id FROM connection_events e WHERE e.occurred_at < $1 AND (e.state = 'deleted' \
                     OR e.id < (SELECT MAX(l.id) FROM connection_events l WHERE l.connection_id = e.connection_id)) \
                     ORDER BY e.id LIMIT $2) RETURNING id",
                )
                .bind(before)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                if let Some(highest) = pruned.iter().map(|(id,)| *id).max() {
                    sqlx::query("UPDATE event_log_horizon SET pruned_through = $1 WHERE pruned_through < $1")
                        .bind(highest)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(pruned.len() as u64)
            }

            async fn pruned_through(&self) -> super::StoreResult<i64> {
                let (through,): (i64,) = sqlx::query_as("SELECT pruned_through FROM event_log_horizon")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(through)
            }

            async fn sync_backlog(&self, now: crate::domain::Timestamp) -> super::StoreResult<(i64, i64)> {
                let counts: (i64, i64) = sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM link_sessions WHERE next_poll_at <= $1 \
                     AND (lease_expires_at IS NULL OR lease_expires_at < $1)), \
                     (SELECT COUNT(*) FROM connections WHERE next_poll_at <= $1 \
                     AND (lease_expires_at IS NULL OR lease_expires_at < $1))",
                )
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
                Ok(counts)
            }

            async fn announce_events(&self) -> super::StoreResult<()> {
                self.announce().await
            }

            async fn subscribe_events(&self) -> super::StoreResult<Option<Box<dyn super::EventBell>>> {
                self.subscribe().await
            }

            async fn last_event_id(&self) -> super::StoreResult<i64> {
                let (id,): (Option<i64>,) = sqlx::query_as("SELECT MAX(id) FROM connection_events")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(id.unwrap_or(0))
            }

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
                sqlx::query("INSERT INTO api_keys (id, tenant_id, secret_hmac, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(key.id)
                    .bind(key.tenant_id.0)
                    .bind(&key.secret_hmac)
                    .bind(key.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn find_active_api_key(&self, id: uuid::Uuid) -> super::StoreResult<Option<crate::domain::ApiKey>> {
                let row: Option<super::rows::ApiKeyRow> = sqlx::query_as(
                    "SELECT k.id, k.tenant_id, k.secret_hmac, k.created_at, k.revoked_at \
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
                    "SELECT id, tenant_id, secret_hmac, created_at, revoked_at FROM api_keys \
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
                };
                let updated =
                    sqlx::query(sql).bind(id).bind(old).bind(new).execute(&self.pool).await?.rows_affected();
                Ok(updated == 1)
            }

            async fn append_audit(&self, entries: &[crate::domain::AuditEntry]) -> super::StoreResult<()> {
                // Each backend writes a batch its own fastest way.
                self.insert_audit(entries).await?;
                Ok(())
            }

            async fn list_audit(
                &self,
                tenant: Option<crate::domain::TenantId>,
                resource_id: Option<uuid::Uuid>,
                limit: i64,
            ) -> super::StoreResult<Vec<crate::domain::AuditEntry>> {
                let rows: Vec<super::rows::AuditRow> = sqlx::query_as(
                    "SELECT id, occurred_at, tenant_id, api_key_id, action, resource_type, resource_id, request_id \
                     FROM audit_log WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR resource_id = $2) \
                     ORDER BY id DESC LIMIT $3",
                )
                .bind(tenant.map(|t| t.0))
                .bind(resource_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(TryInto::try_into).collect::<anyhow::Result<_>>().map_err(super::StoreError::Other)
            }

            async fn current_events(
                &self,
                tenant: crate::domain::TenantId,
                filter: &super::EventFilter,
            ) -> super::StoreResult<Vec<crate::domain::ConnectionEvent>> {
                let rows: Vec<super::rows::EventRow> = sqlx::query_as(
                    "SELECT e.id, e.snapshot, e.occurred_at FROM connection_events e JOIN ( \
                     SELECT connection_id, MAX(id) AS id FROM connection_events WHERE tenant_id = $1 \
                     AND ($2 IS NULL OR connection_id = $2) AND ($3 IS NULL OR external_user_id = $3) \
                     AND ($4 IS NULL OR provider = $4) GROUP BY connection_id) latest ON e.id = latest.id \
                     WHERE ($2 IS NOT NULL OR e.state <> 'deleted') ORDER BY e.id",
                )
                .bind(tenant.0)
                .bind(filter.connection_id)
                .bind(&filter.external_user_id)
                .bind(&filter.provider)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }
        }
    };
}

pub(super) use impl_store;

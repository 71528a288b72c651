//! The PostgreSQL backend: production, shared by every replica. Its schema is migrated by
//! `linkgate migrate` (a Helm Job), not by `serve`.

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The store on PostgreSQL.
pub struct PostgresStore {
    pool: PgPool,
    /// Where the pool connects, for the readiness probe's own connection.
    options: PgConnectOptions,
    /// The readiness probe's connection, when it has one that worked.
    probe: tokio::sync::Mutex<Option<PgConnection>>,
}

impl PostgresStore {
    /// Builds the pool without waiting for the database, so `serve` starts (NOT_SERVING) while
    /// PostgreSQL is still coming up. With `migrate`, applies pending migrations first.
    pub async fn connect(url: &str, max_connections: u32, migrate: bool) -> anyhow::Result<Self> {
        let options: PgConnectOptions = url.parse()?;
        let pool = super::pool_options::<sqlx::Postgres>(max_connections).connect_lazy_with(options.clone());
        if migrate {
            MIGRATOR.run(&pool).await?;
        }
        Ok(Self { pool, options, probe: tokio::sync::Mutex::new(None) })
    }

    /// Checks the database over a connection of the probe's own, opened again after any failure:
    /// a pool busy serving calls is not an outage, and the probe must not queue behind them.
    async fn probe_database(&self) -> super::StoreResult<()> {
        let mut slot = self.probe.lock().await;
        // Out of the slot while in use: a probe cancelled mid-statement leaves nothing behind.
        let mut connection = match slot.take() {
            Some(connection) => connection,
            None => PgConnection::connect_with(&self.options).await?,
        };
        sqlx::query("SELECT 1").execute(&mut connection).await?;
        *slot = Some(connection);
        Ok(())
    }

    async fn begin(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await
    }
}

/// The channel replicas announce committed events on.
const EVENTS_CHANNEL: &str = "linkgate_events";

impl PostgresStore {
    /// After an erasure: nothing to do. Deleted rows stay in PostgreSQL's files as dead tuples
    /// until (auto)vacuum reclaims them; no query can read them.
    async fn settle_erasure(&self) -> super::StoreResult<()> {
        Ok(())
    }

    async fn announce(&self) -> super::StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, '')").bind(EVENTS_CHANNEL).execute(&self.pool).await?;
        Ok(())
    }

    async fn subscribe(&self) -> super::StoreResult<Option<Box<dyn super::EventBell>>> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(EVENTS_CHANNEL).await?;
        Ok(Some(Box::new(PgBell(listener))))
    }

    /// One INSERT from arrays, whatever the batch size: the statement is prepared once per
    /// connection and a batch costs seven binds, where a multi-row VALUES list would be a new
    /// statement of thousands of parameters for every batch size. Rows keep the batch's order, so
    /// ids follow the order of the calls.
    async fn insert_audit(&self, entries: &[crate::domain::AuditEntry]) -> sqlx::Result<()> {
        use crate::domain::StoredName;
        let occurred_at = entries.iter().map(|e| e.occurred_at).collect::<Vec<_>>();
        let tenant_id = entries.iter().map(|e| e.tenant_id.0).collect::<Vec<_>>();
        let api_key_id = entries.iter().map(|e| e.api_key_id).collect::<Vec<_>>();
        let action = entries.iter().map(|e| e.action.name()).collect::<Vec<_>>();
        let resource_type = entries.iter().map(|e| e.resource_type.as_str()).collect::<Vec<_>>();
        let resource_id = entries.iter().map(|e| e.resource_id).collect::<Vec<_>>();
        let request_id = entries.iter().map(|e| e.request_id.as_str()).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO audit_log (occurred_at, tenant_id, api_key_id, action, resource_type, resource_id, \
             request_id) SELECT at, tenant, api_key, action, resource_type, resource, request \
             FROM UNNEST($1::timestamptz[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::uuid[], $7::text[]) \
             WITH ORDINALITY AS batch(at, tenant, api_key, action, resource_type, resource, request, position) \
             ORDER BY position",
        )
        .bind(occurred_at)
        .bind(tenant_id)
        .bind(api_key_id)
        .bind(action)
        .bind(resource_type)
        .bind(resource_id)
        .bind(request_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Rows one statement of `write_changes` carries at most: a whole import's first store stays a
/// few statements of bounded size, where a refresh's changes are one.
const WRITE_BATCH: usize = 1000;

/// A connection's stored digests of one kind, as arrays (see `stored_digests`): parallel arrays
/// over every record of what each needs, and, keyed by id, the few that tombstones, live pending
/// transactions and linked booked ones add.
#[derive(sqlx::FromRow)]
struct DigestColumns {
    kind: String,
    ids: Vec<uuid::Uuid>,
    digests: Vec<Option<i64>>,
    created_versions: Vec<i64>,
    removed_ids: Vec<uuid::Uuid>,
    pending_ids: Vec<uuid::Uuid>,
    pending_keys: Vec<String>,
    pending_dates: Vec<Option<crate::domain::Date>>,
    linked_ids: Vec<uuid::Uuid>,
    pending_links: Vec<uuid::Uuid>,
}

/// What a stored record has beyond its id, digest and creating import, when it has any.
#[derive(Default)]
struct Sparse {
    removed: bool,
    pending: Option<(String, Option<crate::domain::Date>)>,
    pending_link: Option<uuid::Uuid>,
}

impl PostgresStore {
    /// What an import compares with: a row of arrays per kind rather than a row per record,
    /// since decoding 100,000 rows costs several times what decoding the same values as arrays
    /// does, and only the arrays every record needs are dense: the columns most records leave
    /// empty (tombstones, pending keys and dates, pending links) come as short arrays of the
    /// records that have them, since each dense array costs PostgreSQL about as much to build
    /// as reading the rows (`bench/run --only feed`). The aggregates of one group consume its
    /// rows in one pass, so the dense arrays are parallel.
    async fn stored_digests(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        connection_id: uuid::Uuid,
    ) -> sqlx::Result<Vec<super::changes::StoredDigest>> {
        use crate::domain::StoredName;
        let kinds: Vec<DigestColumns> = sqlx::query_as(
            "SELECT kind, array_agg(id) AS ids, array_agg(digest) AS digests, \
             array_agg(created_version) AS created_versions, \
             coalesce(array_agg(id) FILTER (WHERE removed_at IS NOT NULL), '{}') AS removed_ids, \
             coalesce(array_agg(id) FILTER (WHERE pending_key IS NOT NULL), '{}') AS pending_ids, \
             coalesce(array_agg(pending_key) FILTER (WHERE pending_key IS NOT NULL), '{}') AS pending_keys, \
             coalesce(array_agg(record_date) FILTER (WHERE pending_key IS NOT NULL), '{}') AS pending_dates, \
             coalesce(array_agg(id) FILTER (WHERE pending_link IS NOT NULL), '{}') AS linked_ids, \
             coalesce(array_agg(pending_link) FILTER (WHERE pending_link IS NOT NULL), '{}') AS pending_links \
             FROM connection_records WHERE connection_id = $1 GROUP BY kind",
        )
        .bind(connection_id)
        .fetch_all(&mut **tx)
        .await?;
        let mut stored = Vec::with_capacity(kinds.iter().map(|k| k.ids.len()).sum());
        for columns in kinds {
            // A kind this version does not know is left alone, as the row-per-record read does.
            let Some(kind) = super::RecordKind::from_name(&columns.kind) else { continue };
            let mut sparse: std::collections::HashMap<uuid::Uuid, Sparse> = std::collections::HashMap::new();
            for id in columns.removed_ids {
                sparse.entry(id).or_default().removed = true;
            }
            let pending = columns.pending_keys.into_iter().zip(columns.pending_dates);
            for (id, pending) in columns.pending_ids.into_iter().zip(pending) {
                sparse.entry(id).or_default().pending = Some(pending);
            }
            for (id, link) in columns.linked_ids.into_iter().zip(columns.pending_links) {
                sparse.entry(id).or_default().pending_link = Some(link);
            }
            let rows = columns.ids.into_iter().zip(columns.digests).zip(columns.created_versions);
            stored.extend(rows.map(|((id, digest), created_version)| {
                let Sparse { removed, pending, pending_link } = sparse.remove(&id).unwrap_or_default();
                let (pending_key, date) = pending.map_or((None, None), |(key, date)| (Some(key), date));
                super::changes::StoredDigest {
                    kind,
                    id,
                    digest,
                    removed,
                    created_version,
                    pending_key,
                    date,
                    pending_link,
                }
            }));
        }
        Ok(stored)
    }

    /// An import's changes, a batch at a time: the new and changed records upserted from arrays
    /// together with their rows of the change log, then the removed ones turned into tombstones
    /// together with theirs. A statement per record and per log row cost a round trip each,
    /// which made writing a refresh's changes several times slower than the set-based writes
    /// `bench/run`'s feed benchmark measures them against. Like `insert_audit`, one statement
    /// text whatever the batch's size, prepared once per connection.
    async fn write_changes(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        connection: &crate::domain::Connection,
        plan: &super::changes::ChangePlan,
        version: i64,
        at: crate::domain::Timestamp,
    ) -> sqlx::Result<()> {
        use crate::domain::StoredName;
        for batch in plan.writes.chunks(WRITE_BATCH) {
            let records = || batch.iter().map(|w| &w.record);
            let change = |w: &super::changes::Write| {
                if w.added(version) { super::Change::Added } else { super::Change::Modified }.name()
            };
            sqlx::query(concat!(
                "WITH batch AS (SELECT * FROM UNNEST($3::text[], $4::uuid[], $5::uuid[], $6::text[], $7::date[], ",
                "$8::jsonb[], $9::int8[], $10::int8[], $11::text[], $12::uuid[], $13::text[], $14::uuid[]) ",
                "AS b(kind, id, parent_id, sort_key, record_date, body, digest, created_version, pending_key, ",
                "pending_link, change, paired_with)), ",
                "written AS (INSERT INTO connection_records (connection_id, kind, id, tenant_id, parent_id, sort_key, ",
                "record_date, body, digest, created_version, changed_version, removed_at, pending_key, pending_link) ",
                "SELECT $1, kind, id, $2, parent_id, sort_key, record_date, body, digest, created_version, $15, NULL, ",
                "pending_key, pending_link FROM batch",
                super::sql::records::on_record_conflict!(),
                ") INSERT INTO record_changes (connection_id, kind, version, id, tenant_id, parent_id, change, ",
                "paired_with, recorded_at) SELECT $1, kind, $15, id, $2, parent_id, change, paired_with, $16 FROM batch"
            ))
            .bind(connection.id)
            .bind(connection.tenant_id.0)
            .bind(records().map(|r| r.kind.name()).collect::<Vec<_>>())
            .bind(records().map(|r| r.id).collect::<Vec<_>>())
            .bind(records().map(|r| r.parent_id).collect::<Vec<_>>())
            .bind(records().map(|r| r.sort_key.as_str()).collect::<Vec<_>>())
            .bind(records().map(|r| r.date).collect::<Vec<_>>())
            .bind(records().map(|r| sqlx::types::Json(&*r.body)).collect::<Vec<_>>())
            .bind(records().map(|r| r.digest).collect::<Vec<_>>())
            .bind(batch.iter().map(|w| w.created_version).collect::<Vec<_>>())
            .bind(records().map(|r| r.match_key.as_deref().filter(|_| r.pending)).collect::<Vec<_>>())
            .bind(records().map(|r| r.pending_link).collect::<Vec<_>>())
            .bind(batch.iter().map(change).collect::<Vec<_>>())
            .bind(batch.iter().map(|w| w.paired).collect::<Vec<_>>())
            .bind(version)
            .bind(at)
            .execute(&mut **tx)
            .await?;
        }
        for batch in plan.removals.chunks(WRITE_BATCH) {
            // A tombstone's log row takes its parent from the stored record.
            let logged = sqlx::query(
                "WITH gone AS (UPDATE connection_records r SET removed_at = $3, changed_version = $4,                  pending_key = NULL FROM UNNEST($5::text[], $6::uuid[], $7::uuid[]) AS g(kind, id, replaced_by)                  WHERE r.connection_id = $1 AND r.kind = g.kind AND r.id = g.id                  RETURNING r.kind, r.id, r.parent_id, g.replaced_by)                  INSERT INTO record_changes (connection_id, kind, version, id, tenant_id, parent_id, change,                  paired_with, recorded_at) SELECT $1, kind, $4, id, $2, parent_id, $8, replaced_by, $3 FROM gone",
            )
            .bind(connection.id)
            .bind(connection.tenant_id.0)
            .bind(at)
            .bind(version)
            .bind(batch.iter().map(|r| r.kind.name()).collect::<Vec<_>>())
            .bind(batch.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind(batch.iter().map(|r| r.replaced_by).collect::<Vec<_>>())
            .bind(super::Change::Removed.name())
            .execute(&mut **tx)
            .await?
            .rows_affected();
            // Each was read in this transaction under the connection's lock: one missing is a bug.
            if logged != batch.len() as u64 {
                return Err(sqlx::Error::RowNotFound);
            }
        }
        Ok(())
    }
}

/// LISTEN on one dedicated connection; sqlx reconnects it after a loss.
struct PgBell(PgListener);

#[async_trait::async_trait]
impl super::EventBell for PgBell {
    async fn rung(&mut self) -> super::StoreResult<()> {
        // Some(_) is an announcement; None is a lost connection, reconnected on the next call.
        self.0.try_recv().await?;
        Ok(())
    }
}

/// The connection event log's sequencer. Writers append their events to
/// `connection_event_inbox` and commit concurrently, with no lock: a lock held from an event's
/// append to its commit would make every connection change in the cluster commit one at a time.
/// The sequencer then moves committed inbox rows into `connection_events`, oldest first, and the
/// log's id sequence numbers them as they arrive. Moves are serialized by one advisory lock, held
/// only by the moving statement (a few milliseconds, whatever the writers are doing): a later
/// move draws its ids after an earlier one committed, so they are higher, and no reader that has
/// seen event N can later find one below N. Rows not yet committed are invisible to the move and
/// wait for the next one. A connection's own events keep their order, because its writers take
/// its row lock before appending, so the later writer draws the later inbox id.
///
/// Nothing else waits for this lock: a long transaction elsewhere in the database delays no
/// move. A move is one statement in a transaction of its own, so the lock is never held across
/// a round trip (a replica paused mid-move cannot keep it), and a move waits at most
/// `lock_timeout` for another.
impl PostgresStore {
    /// Moves up to `limit` committed events into the log. The statement takes the lock first
    /// (`guard`, materialized, read by the DELETE's initial plan) and then reads the inbox: rows
    /// a concurrent move already took are skipped, being deleted. The ids come as an array, read
    /// by primary key whatever plan the prepared statement settles on (see `lease_due`). The lock number is fixed: it
    /// names the one lock that orders the log (the writers of earlier releases take it too, so a
    /// rolling upgrade keeps the order).
    async fn sequence(&self, limit: i64) -> super::StoreResult<u64> {
        let moved = sqlx::query(
            "WITH guard AS MATERIALIZED (SELECT set_config('lock_timeout', '10s', true), \
             pg_advisory_xact_lock(4242001)), \
             moved AS (DELETE FROM connection_event_inbox WHERE id = ANY(ARRAY(SELECT id FROM connection_event_inbox \
             WHERE (SELECT true FROM guard) ORDER BY id LIMIT $1)) RETURNING *) \
             INSERT INTO connection_events (tenant_id, connection_id, provider, external_user_id, state, snapshot, \
             occurred_at, event_type, details) SELECT tenant_id, connection_id, provider, external_user_id, state, \
             snapshot, occurred_at, event_type, details FROM moved ORDER BY id",
        )
        .bind(limit)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(moved)
    }
}

super::sql::impl_store!(
    PostgresStore,
    sqlx::Postgres,
    lock_rows = " FOR UPDATE SKIP LOCKED",
    append_events_to = "connection_event_inbox"
);

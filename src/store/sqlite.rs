//! The SQLite backend: the embedded default. One file, no server; it migrates itself at start.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A row of the change log as `write_changes` appends it: kind, id, parent, change, paired with.
type LogRow = (super::RecordKind, uuid::Uuid, Option<uuid::Uuid>, super::Change, Option<uuid::Uuid>);

/// The store on SQLite.
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file in WAL mode and applies pending migrations
    /// when `migrate` is set. Deleted content is overwritten (`secure_delete`), so an erased end
    /// user's rows do not linger in free pages of the file.
    pub async fn connect(url: &str, max_connections: u32, migrate: bool) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .pragma("secure_delete", "ON");
        let pool = super::pool_options::<sqlx::Sqlite>(max_connections).connect_with(options).await?;
        if migrate {
            MIGRATOR.run(&pool).await?;
        }
        Ok(Self { pool })
    }

    /// One process owns the file: there is nobody to announce events to.
    async fn announce(&self) -> super::StoreResult<()> {
        Ok(())
    }

    async fn subscribe(&self) -> super::StoreResult<Option<Box<dyn super::EventBell>>> {
        Ok(None)
    }

    /// After an erasure: copies the write-ahead log into the file and truncates it, so the
    /// erased rows' old page images do not stay in the `-wal` file. Best effort: a checkpoint
    /// that readers hold back is completed by SQLite's next automatic one.
    async fn settle_erasure(&self) -> super::StoreResult<()> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await?;
        Ok(())
    }

    /// One multi-row INSERT per chunk: a statement per record would cap the audited calls a
    /// replica can serve. 1,000 rows of 7 values stay under SQLite's bind-parameter limit.
    async fn insert_audit(&self, entries: &[crate::domain::AuditEntry]) -> sqlx::Result<()> {
        use crate::domain::StoredName;
        let mut tx = self.begin().await?;
        for chunk in entries.chunks(1000) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO audit_log (occurred_at, tenant_id, api_key_id, action, resource_type, \
                 resource_id, request_id) ",
            );
            insert.push_values(chunk, |mut row, entry| {
                row.push_bind(entry.occurred_at)
                    .push_bind(entry.tenant_id.0)
                    .push_bind(entry.api_key_id)
                    .push_bind(entry.action.name())
                    .push_bind(&entry.resource_type)
                    .push_bind(entry.resource_id)
                    .push_bind(&entry.request_id);
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    /// Checks the database answers: it runs in the process, so the pool is the probe.
    async fn probe_database(&self) -> super::StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// What an import compares with, a row per record.
    async fn stored_digests(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        connection_id: uuid::Uuid,
    ) -> sqlx::Result<Vec<super::changes::StoredDigest>> {
        let rows: Vec<super::rows::DigestRow> = sqlx::query_as(
            "SELECT kind, id, digest, removed_at IS NOT NULL AS removed, created_version, pending_key, \
             record_date, pending_link FROM connection_records WHERE connection_id = $1",
        )
        .bind(connection_id)
        .fetch_all(&mut **tx)
        .await?;
        Ok(rows.into_iter().filter_map(super::rows::DigestRow::into_digest).collect())
    }

    /// An import's changes, a statement per record and per log row: SQLite runs in the process,
    /// so a statement costs no round trip, and it has no arrays to write a batch from.
    async fn write_changes(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        connection: &crate::domain::Connection,
        plan: &super::changes::ChangePlan,
        version: i64,
        at: crate::domain::Timestamp,
    ) -> sqlx::Result<()> {
        use crate::domain::StoredName;
        for write in &plan.writes {
            let record = &write.record;
            sqlx::query(concat!(
                "INSERT INTO connection_records (connection_id, kind, id, tenant_id, parent_id, sort_key, ",
                "record_date, body, digest, created_version, changed_version, removed_at, pending_key, pending_link) ",
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, $12, $13)",
                super::sql::records::on_record_conflict!()
            ))
            .bind(connection.id)
            .bind(record.kind.name())
            .bind(record.id)
            .bind(connection.tenant_id.0)
            .bind(record.parent_id)
            .bind(&record.sort_key)
            .bind(record.date)
            .bind(sqlx::types::Json(&record.body))
            .bind(record.digest)
            .bind(write.created_version)
            .bind(version)
            .bind(record.match_key.as_deref().filter(|_| record.pending))
            .bind(record.pending_link)
            .execute(&mut **tx)
            .await?;
            let change = if write.added(version) { super::Change::Added } else { super::Change::Modified };
            let row = (record.kind, record.id, record.parent_id, change, write.paired);
            Self::log_change(tx, connection, row, version, at).await?;
        }
        for removal in &plan.removals {
            let (parent_id,): (Option<uuid::Uuid>,) = sqlx::query_as(
                "UPDATE connection_records SET removed_at = $4, changed_version = $5, pending_key = NULL \
                 WHERE connection_id = $1 AND kind = $2 AND id = $3 RETURNING parent_id",
            )
            .bind(connection.id)
            .bind(removal.kind.name())
            .bind(removal.id)
            .bind(at)
            .bind(version)
            .fetch_one(&mut **tx)
            .await?;
            let row = (removal.kind, removal.id, parent_id, super::Change::Removed, removal.replaced_by);
            Self::log_change(tx, connection, row, version, at).await?;
        }
        Ok(())
    }

    /// Appends one row to the change log: (kind, id, parent, change, paired with).
    async fn log_change(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        connection: &crate::domain::Connection,
        (kind, id, parent_id, change, paired_with): LogRow,
        version: i64,
        at: crate::domain::Timestamp,
    ) -> sqlx::Result<()> {
        use crate::domain::StoredName;
        sqlx::query(
            "INSERT INTO record_changes (connection_id, kind, version, id, tenant_id, parent_id, change, \
             paired_with, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(connection.id)
        .bind(kind.name())
        .bind(version)
        .bind(id)
        .bind(connection.tenant_id.0)
        .bind(parent_id)
        .bind(change.name())
        .bind(paired_with)
        .bind(at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Writers take the lock up front: a deferred transaction that reads and then writes can fail
    /// with SQLITE_BUSY at once instead of waiting out the busy timeout.
    async fn begin(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
}

/// The event log needs no sequencer here: SQLite commits one writer at a time, so events are
/// appended to the log itself and their ids follow the commits.
impl SqliteStore {
    async fn sequence(&self, _limit: i64) -> super::StoreResult<u64> {
        Ok(0)
    }
}

super::sql::impl_store!(SqliteStore, sqlx::Sqlite, lock_rows = "", append_events_to = "connection_events");

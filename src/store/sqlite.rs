//! The SQLite backend: the embedded default. One file, no server; it migrates itself at start.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The store on SQLite.
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file in WAL mode and applies pending migrations
    /// when `migrate` is set.
    pub async fn connect(url: &str, max_connections: u32, migrate: bool) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
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

    /// Writers take the lock up front: a deferred transaction that reads and then writes can fail
    /// with SQLITE_BUSY at once instead of waiting out the busy timeout.
    async fn begin(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
}

super::sql::impl_store!(SqliteStore, sqlx::Sqlite, lock_rows = "", serialize_events = "");

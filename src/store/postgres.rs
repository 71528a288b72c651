//! The PostgreSQL backend: production, shared by every replica. Its schema is migrated by
//! `linkgate migrate` (a Helm Job), not by `serve`.

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The store on PostgreSQL.
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Builds the pool without waiting for the database, so `serve` starts (NOT_SERVING) while
    /// PostgreSQL is still coming up. With `migrate`, applies pending migrations first.
    pub async fn connect(url: &str, max_connections: u32, migrate: bool) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy(url)?;
        if migrate {
            MIGRATOR.run(&pool).await?;
        }
        Ok(Self { pool })
    }

    async fn begin(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await
    }
}

/// The channel replicas announce committed events on.
const EVENTS_CHANNEL: &str = "linkgate_events";

impl PostgresStore {
    async fn announce(&self) -> super::StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, '')").bind(EVENTS_CHANNEL).execute(&self.pool).await?;
        Ok(())
    }

    async fn subscribe(&self) -> super::StoreResult<Option<Box<dyn super::EventBell>>> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(EVENTS_CHANNEL).await?;
        Ok(Some(Box::new(PgBell(listener))))
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

// Any fixed number works: it names the one lock that orders event appends.
super::sql::impl_store!(
    PostgresStore,
    sqlx::Postgres,
    lock_rows = " FOR UPDATE SKIP LOCKED",
    serialize_events = "SELECT pg_advisory_xact_lock(4242001)"
);

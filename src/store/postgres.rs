//! The PostgreSQL backend: production, shared by every replica. Its schema is migrated by
//! `linkgate migrate` (a Helm Job), not by `serve`.

use sqlx::postgres::{PgListener, PgPool};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The store on PostgreSQL.
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Builds the pool without waiting for the database, so `serve` starts (NOT_SERVING) while
    /// PostgreSQL is still coming up. With `migrate`, applies pending migrations first.
    pub async fn connect(url: &str, max_connections: u32, migrate: bool) -> anyhow::Result<Self> {
        let pool = super::pool_options::<sqlx::Postgres>(max_connections).connect_lazy(url)?;
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

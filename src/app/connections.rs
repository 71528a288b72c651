//! Connections: reading, listing, refreshing and deleting them.

use crate::app::{App, Caller};
use crate::crypto::SealedColumn;
use crate::domain::ErrorReason;
use crate::domain::{Connection, ConnectionEventType, ConnectionState, ProductState, TenantId, Timestamp, now};
use crate::error::{Error, Result};
use crate::providers::ProviderError;
use crate::store::{ConnectionFilter, Page, PageOf, Store};
use secrecy::SecretString;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long a change holds its connection's sync lease at most.
const CHANGE_LEASE: chrono::Duration = chrono::Duration::seconds(60);
/// How long a change waits for a running poll of its connection to finish: longer than any
/// provider call, so only a stuck replica's lease outlasts it.
const LEASE_WAIT: Duration = Duration::from_secs(30);

impl App {
    /// One connection of the caller, DELETED included, or CONNECTION_NOT_FOUND. Served from this
    /// replica's cache when it holds a current copy (see [`crate::app::connection_cache`]).
    pub async fn get_connection(&self, caller: &Caller, id: Uuid) -> Result<Arc<Connection>> {
        let cache = self.bus.connection_cache();
        let ticket = match cache.get(caller.tenant, id) {
            Ok(copy) => return Ok(copy),
            Err(ticket) => ticket,
        };
        let connection = Arc::new(self.stored_connection(caller, id).await?);
        cache.fill(ticket, connection.clone());
        Ok(connection)
    }

    /// A connection that can still be used, or CONNECTION_DELETED.
    pub async fn live_connection(&self, caller: &Caller, id: Uuid) -> Result<Arc<Connection>> {
        let connection = self.get_connection(caller, id).await?;
        ensure_live(&connection)?;
        Ok(connection)
    }

    /// One connection as the store holds it now, for calls that change it.
    pub(super) async fn stored_connection(&self, caller: &Caller, id: Uuid) -> Result<Connection> {
        self.store.get_connection(caller.tenant, id).await?.ok_or_else(|| {
            Error::new(ErrorReason::ConnectionNotFound, "no such connection").with("connection_id", id.to_string())
        })
    }

    /// The caller's connections, newest first.
    pub async fn list_connections(
        &self,
        caller: &Caller,
        filter: &ConnectionFilter,
        page: &Page,
    ) -> Result<PageOf<Connection>> {
        Ok(self.store.list_connections(caller.tenant, filter, page).await?)
    }

    /// The provider handle of a live connection, opened.
    pub async fn open_handle(&self, connection: &Connection) -> Result<SecretString> {
        self.open_handle_of(connection.tenant_id, connection.id).await
    }

    /// The provider handle of live connection `id` of `tenant`, opened; CONNECTION_DELETED once
    /// it is gone.
    pub(super) async fn open_handle_of(&self, tenant: TenantId, id: Uuid) -> Result<SecretString> {
        let sealed = self.store.connection_handle(tenant, id).await?.ok_or_else(|| {
            Error::new(ErrorReason::ConnectionDeleted, "the connection was deleted")
                .with("connection_id", id.to_string())
        })?;
        self.sealer.open(&sealed, &SealedColumn::ConnectionHandle.context(tenant, id)).map_err(Error::internal)
    }

    /// Runs `change` on connection `id` of `tenant` under the connection's sync lease, so no poll
    /// races it (a repair's completion, a sandbox control): waits for a poll already running on
    /// it, takes the lease for this change alone, and releases it once `change` is done, whatever
    /// it answered, or if the call is dropped midway. A change that saved the connection released
    /// the lease already, and a lease that lapsed meanwhile may be another holder's now: the
    /// release only ever frees this change's own. With `due_at`, it also makes the connection due
    /// then.
    pub(super) async fn with_change_lease<T>(
        &self,
        tenant: TenantId,
        id: Uuid,
        due_at: Option<Timestamp>,
        change: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        // Held from before the first try: a call dropped while the lease is being taken releases
        // it too (a release of a lease never taken changes nothing).
        let mut lease = ChangeLease {
            store: self.store.clone(),
            tenant,
            id,
            owner: format!("change-{}", Uuid::now_v7()),
            held: true,
        };
        let deadline = tokio::time::Instant::now() + LEASE_WAIT;
        loop {
            let at = now();
            if self.store.lease_connection(tenant, id, &lease.owner, at, at + CHANGE_LEASE).await? {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                lease.held = false;
                return Err(Error::internal(anyhow::anyhow!(
                    "connection {id}: its sync lease was not released within {LEASE_WAIT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let result = change.await;
        lease.release(due_at).await;
        result
    }

    /// Asks the provider for fresh data; the sync engine picks the connection up at once.
    pub async fn refresh_connection(&self, caller: &Caller, id: Uuid) -> Result<Connection> {
        self.call_budget.take(caller.tenant)?;
        let mut connection = self.stored_connection(caller, id).await?;
        ensure_live(&connection)?;
        match connection.state {
            // Already syncing: one refresh at a time, and a retried call changes nothing.
            ConnectionState::Pending | ConnectionState::Refreshing => return Ok(connection),
            ConnectionState::LoginRequired => {
                return Err(Error::new(
                    ErrorReason::LoginRequired,
                    "the user must sign in again through a new link session",
                )
                .with("connection_id", id.to_string()));
            }
            ConnectionState::Disconnected => {
                return Err(Error::new(ErrorReason::ProviderRejected, "the provider revoked this connection")
                    .with("connection_id", id.to_string()));
            }
            ConnectionState::Ready | ConnectionState::Stale | ConnectionState::Error | ConnectionState::Deleted => {}
        }
        let provider = self.provider(&connection.provider)?.clone();
        let handle = self.open_handle(&connection).await?;
        provider.refresh(&handle).await.map_err(|e| Error::from_provider(&connection.provider, e))?;

        let at = now();
        connection.state =
            if connection.last_synced_at.is_some() { ConnectionState::Refreshing } else { ConnectionState::Pending };
        connection.updated_at = at;
        for product in &mut connection.products {
            if product.is_readable() {
                product.state = ProductState::Refreshing;
            }
            product.last_attempted_at = Some(at);
        }
        self.save_connection(&connection, Some(at), None, ConnectionEventType::StateChanged).await?;
        Ok(connection)
    }

    /// Revokes the connection upstream, then destroys its secret and data and marks it DELETED.
    /// Deleting a deleted connection returns it unchanged.
    pub async fn delete_connection(&self, caller: &Caller, id: Uuid) -> Result<Connection> {
        let mut connection = self.stored_connection(caller, id).await?;
        if connection.state == ConnectionState::Deleted {
            return Ok(connection);
        }
        let provider = self.provider(&connection.provider)?.clone();
        let handle = self.open_handle(&connection).await?;
        match provider.delete_connection(&handle).await {
            // Already gone upstream is what we wanted.
            Ok(()) | Err(ProviderError::InvalidPublicToken | ProviderError::LoginRequired) => {}
            Err(error) => return Err(Error::from_provider(&connection.provider, error)),
        }
        connection.state = ConnectionState::Deleted;
        connection.error = None;
        // Its data is destroyed with it: no product has anything left to read.
        connection.products.clear();
        connection.updated_at = now();
        match self.store.delete_connection(&connection).await? {
            Some(_) => self.bus.committed(id),
            // A concurrent delete won; report what it stored.
            None => connection = self.stored_connection(caller, id).await?,
        }
        Ok(connection)
    }

    /// Stores a connection change made by a call or the sync engine, with the import `data` (its
    /// account details sealed here first), and wakes the tailer. Returns false when the
    /// connection was deleted meanwhile.
    pub async fn save_connection(
        &self,
        connection: &Connection,
        next_poll_at: Option<crate::domain::Timestamp>,
        import: Option<(crate::domain::ConnectionData, &[crate::domain::Product])>,
        kind: ConnectionEventType,
    ) -> Result<bool> {
        // The consent calendar's next date comes first when it is earlier.
        let next_poll_at = next_poll_at.map(|next| connection.next_look(next, self.consent_warning));
        let sealed = import
            .map(|(data, products)| (data.sealed(|details| self.seal_account_details(connection, details)), products));
        let import = sealed.as_ref().map(|(data, products)| crate::store::Import { data, products });
        let saved = self.store.save_connection(connection, next_poll_at, import, kind).await?.is_some();
        if saved {
            self.bus.committed(connection.id);
        }
        Ok(saved)
    }
}

/// A change's hold on a connection's sync lease (see [`App::with_change_lease`]). A hold
/// dropped without [`ChangeLease::release`] (the call was cancelled midway) is released in the
/// background, so a cancelled change does not keep polls off the connection until it lapses.
struct ChangeLease {
    store: Arc<dyn Store>,
    tenant: TenantId,
    id: Uuid,
    owner: String,
    /// Whether the lease may still be this change's to release.
    held: bool,
}

impl ChangeLease {
    async fn release(mut self, due_at: Option<Timestamp>) {
        self.held = false;
        release_change_lease(&*self.store, self.tenant, self.id, &self.owner, due_at).await;
    }
}

impl Drop for ChangeLease {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let (store, tenant, id, owner) = (self.store.clone(), self.tenant, self.id, std::mem::take(&mut self.owner));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { release_change_lease(&*store, tenant, id, &owner, None).await });
        }
    }
}

/// Frees `owner`'s lease on a connection, due again at `due_at` when given. A failure is only
/// logged: the lease lapses on its own, and the change's own answer is what its caller needs.
async fn release_change_lease(store: &dyn Store, tenant: TenantId, id: Uuid, owner: &str, due_at: Option<Timestamp>) {
    if let Err(error) = store.release_connection(tenant, id, owner, due_at).await {
        tracing::warn!(connection_id = %id, error = %error, "releasing a change's sync lease failed; it lapses on its own");
    }
}

/// CONNECTION_DELETED for a deleted connection.
pub(super) fn ensure_live(connection: &Connection) -> Result<()> {
    if connection.state == ConnectionState::Deleted {
        return Err(Error::new(ErrorReason::ConnectionDeleted, "the connection was deleted")
            .with("connection_id", connection.id.to_string()));
    }
    Ok(())
}

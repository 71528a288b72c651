//! Connections: reading, listing, refreshing and deleting them.

use crate::app::{App, Caller};
use crate::crypto::SealedColumn;
use crate::domain::ErrorReason;
use crate::domain::{Connection, ConnectionEventType, ConnectionState, Product, ProductState, Timestamp, now};
use crate::error::{Error, Result};
use crate::providers::{ProviderError, ProviderInfo};
use crate::store::{ConnectionFilter, Page, PageOf};
use secrecy::SecretString;
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
    pub(super) async fn open_handle_of(&self, tenant: crate::domain::TenantId, id: Uuid) -> Result<SecretString> {
        let sealed = self.store.connection_handle(tenant, id).await?.ok_or_else(|| {
            Error::new(ErrorReason::ConnectionDeleted, "the connection was deleted")
                .with("connection_id", id.to_string())
        })?;
        self.sealer.open(&sealed, &SealedColumn::ConnectionHandle.context(tenant, id)).map_err(Error::internal)
    }

    /// Takes the connection's sync lease for a change that must not race a poll (a repair, a
    /// sandbox control), waiting for a poll already running on it. The change releases it.
    pub(super) async fn lease_for_change(&self, tenant: crate::domain::TenantId, id: Uuid, owner: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + LEASE_WAIT;
        loop {
            let at = now();
            if self.store.lease_connection(tenant, id, owner, at, at + CHANGE_LEASE).await? {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::internal(anyhow::anyhow!(
                    "connection {id}: its sync lease was not released within {LEASE_WAIT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asks the provider for fresh data of `products` (every linked product when empty); the sync
    /// engine picks the connection up at once and fetches those. A product the provider limits
    /// (`ProviderInfo::refresh_limits`) that a refresh asked for within its limit makes the call
    /// RATE_LIMITED, saying when it may be asked again, without calling the provider.
    pub async fn refresh_connection(&self, caller: &Caller, id: Uuid, products: &[Product]) -> Result<Connection> {
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
        let products = products_to_refresh(&connection, products)?;
        let provider = self.provider(&connection.provider)?.clone();
        let at = now();
        ensure_within_limits(&connection, &products, provider.info(), at)?;
        let handle = self.open_handle(&connection).await?;
        provider.refresh(&handle, &products).await.map_err(|e| Error::from_provider(&connection.provider, e))?;

        connection.state =
            if connection.last_synced_at.is_some() { ConnectionState::Refreshing } else { ConnectionState::Pending };
        connection.updated_at = at;
        for product in connection.products.iter_mut().filter(|p| products.contains(&p.product)) {
            if product.is_readable() {
                product.state = ProductState::Refreshing;
            } else if product.state == ProductState::Failed {
                // Its first import failed: this refresh imports it again.
                product.state = ProductState::NotReady;
            }
            product.last_attempted_at = Some(at);
            product.refresh_requested_at = Some(at);
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

    /// Stores a connection change made by a call or the sync engine, with what a fetch of
    /// `products` brought (its account details sealed here first, its cursor stored with it),
    /// and wakes the tailer. Returns false when the connection was deleted meanwhile.
    pub async fn save_connection(
        &self,
        connection: &Connection,
        next_poll_at: Option<crate::domain::Timestamp>,
        import: Option<(crate::providers::Fetched, &[crate::domain::Product])>,
        kind: ConnectionEventType,
    ) -> Result<bool> {
        // The consent calendar's next date comes first when it is earlier.
        let next_poll_at = next_poll_at.map(|next| connection.next_look(next, self.consent_warning));
        let sealed = import.map(|(fetched, products)| {
            (fetched.data.sealed(|details| self.seal_account_details(connection, details)), products, fetched.cursor)
        });
        let import = sealed.as_ref().map(|(data, products, cursor)| crate::store::Import {
            data,
            products,
            cursor: cursor.as_deref(),
        });
        let saved = self.store.save_connection(connection, next_poll_at, import, kind).await?.is_some();
        if saved {
            self.bus.committed(connection.id);
        }
        Ok(saved)
    }
}

/// The products a refresh of `connection` asking for `asked` refreshes: those asked, each of
/// which the connection must link, or every linked product when none is asked.
fn products_to_refresh(connection: &Connection, asked: &[Product]) -> Result<Vec<Product>> {
    if asked.is_empty() {
        return Ok(connection.products.iter().map(|p| p.product).collect());
    }
    if let Some(unlinked) = asked.iter().find(|product| connection.product(**product).is_none()) {
        return Err(Error::new(
            ErrorReason::CapabilityUnsupported,
            format!("this connection does not link {}", unlinked.contract_name()),
        )
        .with("capability", unlinked.contract_name())
        .with("connection_id", connection.id.to_string()));
    }
    Ok(asked.to_vec())
}

/// RATE_LIMITED, with when to ask again, when one of `products` was refreshed on demand within
/// the provider's limit for it: the provider would refuse (and may bill) another refresh so soon.
fn ensure_within_limits(
    connection: &Connection,
    products: &[Product],
    info: &ProviderInfo,
    at: Timestamp,
) -> Result<()> {
    let wait = products
        .iter()
        .filter_map(|&product| {
            let limit = chrono::Duration::from_std(info.refresh_limit(product)?).ok()?;
            let last = connection.product(product)?.refresh_requested_at?;
            let wait = (last + limit - at).to_std().ok().filter(|wait| !wait.is_zero())?;
            Some((wait, product))
        })
        .max();
    let Some((wait, product)) = wait else { return Ok(()) };
    Err(Error::new(
        ErrorReason::RateLimited,
        format!("{} limits refreshes of {}; ask again later", info.display_name, product.contract_name()),
    )
    .with("product", product.contract_name())
    .with("connection_id", connection.id.to_string())
    .retry_after(wait))
}

/// CONNECTION_DELETED for a deleted connection.
pub(super) fn ensure_live(connection: &Connection) -> Result<()> {
    if connection.state == ConnectionState::Deleted {
        return Err(Error::new(ErrorReason::ConnectionDeleted, "the connection was deleted")
            .with("connection_id", connection.id.to_string()));
    }
    Ok(())
}

//! Connections: reading, listing, refreshing and deleting them.

use crate::app::{App, Caller};
use crate::crypto::SealedColumn;
use crate::domain::ErrorReason;
use crate::domain::{
    Connection, ConnectionEventType, ConnectionState, Product, ProductState, TenantId, Timestamp, now,
};
use crate::error::{Error, Result};
use crate::providers::{ProviderError, ProviderInfo};
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

    /// Asks the provider for fresh data of `products` (every linked product when empty); the sync
    /// engine picks the connection up at once and fetches those. A product the provider limits
    /// (`ProviderInfo::refresh_limits`) that a refresh names within its limit makes the call
    /// RATE_LIMITED, saying when it may be asked again, without calling the provider; a refresh
    /// naming none leaves such products out, and is refused only when every product is limited.
    pub async fn refresh_connection(&self, caller: &Caller, id: Uuid, products: &[Product]) -> Result<Connection> {
        self.call_budget.take(caller.tenant)?;
        let mut connection = self.stored_connection(caller, id).await?;
        ensure_live(&connection)?;
        ensure_linked(&connection, products)?;
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
        let at = now();
        let products = products_to_refresh(&connection, products, provider.info(), at)?;
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
        if self.store.delete_connection(&connection).await? {
            self.bus.committed(id);
        } else {
            // A concurrent delete won; report what it stored.
            connection = self.stored_connection(caller, id).await?;
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
        let saved = self.store.save_connection(connection, next_poll_at, import, kind).await?;
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

/// CAPABILITY_UNSUPPORTED unless `connection` links every product `asked` names.
fn ensure_linked(connection: &Connection, asked: &[Product]) -> Result<()> {
    match asked.iter().find(|product| connection.product(**product).is_none()) {
        Some(unlinked) => Err(Error::new(
            ErrorReason::CapabilityUnsupported,
            format!("this connection does not link {}", unlinked.contract_name()),
        )
        .with("capability", unlinked.contract_name())
        .with("connection_id", connection.id.to_string())),
        None => Ok(()),
    }
}

/// The products a refresh of `connection` asking for `asked` (all linked) refreshes at `at`:
/// those asked, each of which the provider's limits must let be refreshed now;
/// with none asked, every linked product the limits let be refreshed now, refused (saying when
/// the first frees up) only when that is none.
fn products_to_refresh(
    connection: &Connection,
    asked: &[Product],
    info: &ProviderInfo,
    at: Timestamp,
) -> Result<Vec<Product>> {
    let everything = asked.is_empty();
    let products: Vec<Product> =
        if everything { connection.products.iter().map(|p| p.product).collect() } else { asked.to_vec() };
    let waits: Vec<(Duration, Product)> =
        products.iter().filter_map(|&p| Some((limited_for(connection, p, info, at)?, p))).collect();
    let refused = if everything {
        let free: Vec<Product> = products.iter().copied().filter(|p| waits.iter().all(|(_, w)| w != p)).collect();
        if !free.is_empty() {
            return Ok(free);
        }
        waits.iter().min()
    } else {
        // Each product named must be free: the call waits for the last of them.
        waits.iter().max()
    };
    match refused {
        Some(&(wait, product)) => Err(rate_limited(connection, product, wait, info)),
        None => Ok(products),
    }
}

/// How long `product` of `connection` must wait before the provider lets it be refreshed on
/// demand again; `None` when it may be now.
fn limited_for(connection: &Connection, product: Product, info: &ProviderInfo, at: Timestamp) -> Option<Duration> {
    let limit = chrono::Duration::from_std(info.refresh_limit(product)?).ok()?;
    let last = connection.product(product)?.refresh_requested_at?;
    (last + limit - at).to_std().ok().filter(|wait| !wait.is_zero())
}

/// RATE_LIMITED for `product`, to ask again after `wait`: the provider would refuse (and may
/// bill) a refresh so soon.
fn rate_limited(connection: &Connection, product: Product, wait: Duration, info: &ProviderInfo) -> Error {
    Error::new(
        ErrorReason::RateLimited,
        format!("{} limits refreshes of {}; ask again later", info.display_name, product.contract_name()),
    )
    .with("product", product.contract_name())
    .with("connection_id", connection.id.to_string())
    .retry_after(wait)
}

/// CONNECTION_DELETED for a deleted connection.
pub(super) fn ensure_live(connection: &Connection) -> Result<()> {
    if connection.state == ConnectionState::Deleted {
        return Err(Error::new(ErrorReason::ConnectionDeleted, "the connection was deleted")
            .with("connection_id", connection.id.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ProductStatus;
    use crate::providers::RefreshLimit;

    const HOUR: Duration = Duration::from_secs(3600);
    const LIMITS: &[RefreshLimit] = &[
        RefreshLimit { product: Product::Accounts, once_per: HOUR },
        RefreshLimit { product: Product::Transactions, once_per: HOUR },
    ];

    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "limited",
            display_name: "Limited",
            flows: &[],
            products: &[Product::Accounts, Product::Transactions, Product::Investments],
            poll_interval: HOUR,
            refresh_interval: HOUR,
            consent_lifetime: None,
            refresh_limits: LIMITS,
            required_inputs: &[],
            min_external_user_id_chars: 1,
        }
    }

    /// A connection linking `products`, each last refreshed on demand the given minutes ago.
    fn connection(products: &[(Product, Option<i64>)], at: Timestamp) -> Connection {
        Connection {
            id: Uuid::now_v7(),
            tenant_id: TenantId(Uuid::now_v7()),
            provider: "limited".to_owned(),
            institution_id: "ins".to_owned(),
            institution_name: "Institution".to_owned(),
            external_user_id: "user".to_owned(),
            state: ConnectionState::Ready,
            error: None,
            products: products
                .iter()
                .map(|&(product, minutes_ago)| ProductStatus {
                    product,
                    state: ProductState::Ready,
                    refreshed_at: Some(at),
                    last_attempted_at: Some(at),
                    refresh_requested_at: minutes_ago.map(|m| at - chrono::Duration::minutes(m)),
                })
                .collect(),
            created_at: at,
            updated_at: at,
            last_synced_at: Some(at),
            link_session_id: None,
            consent_expires_at: None,
            consent_warned_for: None,
            duplicate_of: None,
        }
    }

    /// The product a refusal names and the minutes it says to wait (as the caller reads them).
    fn refused(result: Result<Vec<Product>>) -> (String, u64) {
        use tonic_types::StatusExt;
        let error = result.expect_err("refused");
        assert_eq!(error.reason(), ErrorReason::RateLimited);
        let status = error.into_status("req");
        let product = status.get_details_error_info().expect("an ErrorInfo").metadata["product"].clone();
        let wait = status.get_details_retry_info().and_then(|r| r.retry_delay).expect("says when");
        (product, wait.as_secs() / 60)
    }

    #[test]
    fn a_refresh_of_everything_leaves_out_what_its_limit_holds_back() {
        let at = now();
        let info = info();
        let c = connection(
            &[(Product::Accounts, Some(10)), (Product::Transactions, None), (Product::Investments, None)],
            at,
        );
        assert_eq!(products_to_refresh(&c, &[], &info, at).unwrap(), [Product::Transactions, Product::Investments]);
        assert_eq!(products_to_refresh(&c, &[Product::Transactions], &info, at).unwrap(), [Product::Transactions]);
        assert_eq!(
            refused(products_to_refresh(&c, &[Product::Accounts, Product::Transactions], &info, at)),
            ("PRODUCT_ACCOUNTS".to_owned(), 50)
        );
    }

    #[test]
    fn a_refresh_of_everything_held_back_waits_for_the_first_product_to_free_up() {
        let at = now();
        let info = info();
        let c = connection(&[(Product::Accounts, Some(10)), (Product::Transactions, Some(40))], at);
        assert_eq!(refused(products_to_refresh(&c, &[], &info, at)), ("PRODUCT_TRANSACTIONS".to_owned(), 20));
        assert_eq!(
            refused(products_to_refresh(&c, &[Product::Accounts, Product::Transactions], &info, at)),
            ("PRODUCT_ACCOUNTS".to_owned(), 50)
        );
        let later = at + chrono::Duration::minutes(21);
        assert_eq!(products_to_refresh(&c, &[], &info, later).unwrap(), [Product::Transactions]);
    }
}

//! Reads of imported data: accounts, transactions, portfolios, positions, portfolio transactions
//! and statements, each gated on its product's state and paginated from the store. First pages
//! are kept beside the replica's copy of their connection and served from memory until the
//! connection's next event (see [`crate::app::connection_cache`]); every read is audited either way.

use crate::app::connection_cache::{CachedPage, PageKey};
use crate::app::{App, Caller};
use crate::domain::ErrorReason;
use crate::domain::{AuditAction, Connection, ConnectionState, Product};
use crate::error::{Error, Result};
use crate::store::{DateRange, Page, RecordKind, RecordQuery};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use uuid::Uuid;

/// One data listing as the API asks for it.
#[derive(Debug, Clone)]
pub struct DataRequest {
    /// Connection.
    pub connection_id: Uuid,
    /// Only children of this account or portfolio.
    pub parent_id: Option<Uuid>,
    /// Date bounds.
    pub dates: DateRange,
    /// Page size.
    pub page_size: usize,
    /// The caller's page token.
    pub page_token: String,
}

/// A page of records and the token of the next one (empty on the last page).
#[derive(Debug, Clone)]
pub struct DataPage<T> {
    /// Records.
    pub items: Vec<T>,
    /// Next page token.
    pub next_page_token: String,
}

impl App {
    /// One page of `kind` records of a connection whose `product` is readable.
    pub async fn read_records<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
        caller: &Caller,
        product: Product,
        kind: RecordKind,
        request: DataRequest,
    ) -> Result<DataPage<T>> {
        let connection = self.live_connection(caller, request.connection_id).await?;
        ensure_readable(&connection, product)?;
        self.audit.record(caller, AuditAction::Read, "connection", connection.id).await;
        if !request.page_token.is_empty() {
            return self.list_records(caller, &connection, kind, request).await;
        }
        let cache = self.bus.connection_cache();
        let key = PageKey { kind, parent_id: request.parent_id, dates: request.dates, page_size: request.page_size };
        let ticket = match cache.page(caller.tenant, connection.id, &key) {
            // A kept page was listed after its parent was checked, and nothing changed since.
            Ok(kept) => match kept.page.downcast_ref::<DataPage<T>>() {
                Some(page) => return Ok(page.clone()),
                None => return self.list_records(caller, &connection, kind, request).await,
            },
            Err(ticket) => ticket,
        };
        let page = self.list_records(caller, &connection, kind, request).await?;
        let records = page.items.len();
        cache.fill_page(ticket, connection.id, key, CachedPage { page: Arc::new(page.clone()), records });
        Ok(page)
    }

    /// One page of `kind` records of `connection`, read from the store.
    async fn list_records<T: DeserializeOwned>(
        &self,
        caller: &Caller,
        connection: &Connection,
        kind: RecordKind,
        request: DataRequest,
    ) -> Result<DataPage<T>> {
        if let Some(parent) = request.parent_id {
            self.ensure_parent(caller, connection.id, kind, parent).await?;
        }
        // The token is bound to everything that shapes the listing.
        let scope = format!(
            "{kind:?}/{}/{:?}/{:?}/{:?}",
            connection.id, request.parent_id, request.dates.start, request.dates.end
        );
        let after = self.page_tokens.check(&scope, &request.page_token)?;
        let query = RecordQuery {
            tenant: caller.tenant,
            connection_id: connection.id,
            kind,
            parent_id: request.parent_id,
            dates: request.dates,
            page: Page { size: request.page_size, after },
        };
        let page = self.store.list_records(&query).await?;
        let next_page_token = page.next.map(|c| self.page_tokens.issue(&scope, &c)).unwrap_or_default();
        let items = page.items.into_iter().map(|r| r.decode().map_err(Error::internal)).collect::<Result<_>>()?;
        Ok(DataPage { items, next_page_token })
    }
}

impl App {
    /// ACCOUNT_NOT_FOUND or PORTFOLIO_NOT_FOUND unless the connection has `parent`, the account
    /// or portfolio records of `kind` belong to.
    pub(super) async fn ensure_parent(
        &self,
        caller: &Caller,
        connection_id: Uuid,
        kind: RecordKind,
        parent: Uuid,
    ) -> Result<()> {
        let parent_kind = parent_kind(kind);
        if self.store.has_record(caller.tenant, connection_id, parent_kind, parent).await? {
            return Ok(());
        }
        let (reason, field) = match parent_kind {
            RecordKind::Portfolio => (ErrorReason::PortfolioNotFound, "portfolio_id"),
            _ => (ErrorReason::AccountNotFound, "account_id"),
        };
        Err(Error::new(reason, format!("no such {field} on this connection")).with(field, parent.to_string()))
    }
}

fn parent_kind(kind: RecordKind) -> RecordKind {
    match kind {
        RecordKind::Position | RecordKind::PortfolioTransaction => RecordKind::Portfolio,
        _ => RecordKind::Account,
    }
}

/// Whether `product` of `connection` has data to serve; the error says what to do if not.
pub(super) fn ensure_readable(connection: &Connection, product: Product) -> Result<()> {
    let id = connection.id.to_string();
    let Some(status) = connection.product(product) else {
        return Err(Error::new(
            ErrorReason::CapabilityUnsupported,
            format!("this connection does not link {}", product.contract_name()),
        )
        .with("capability", product.contract_name())
        .with("connection_id", id));
    };
    if status.is_readable() {
        return Ok(());
    }
    if connection.state == ConnectionState::LoginRequired {
        return Err(Error::new(ErrorReason::LoginRequired, "the user must sign in again before data can be read")
            .with("connection_id", id));
    }
    Err(Error::new(
        ErrorReason::ProductNotReady,
        format!("{} is not ready yet; watch the connection to learn when it is", product.contract_name()),
    )
    .with("product", product.contract_name())
    .with("connection_id", id))
}

//! The details of a connection's accounts: full numbers (PRODUCT_ACCOUNT_NUMBERS) and owners
//! (PRODUCT_IDENTITY), the most sensitive data linkgate holds.
//!
//! They are sealed as an import is saved, each list under its own [`SealedColumn`] bound to the
//! connection's tenant and id, so the store never holds them in clear; they are opened only to
//! answer the two reads that serve them, each audited as its own action. Whether a caller may
//! read them at all is its API key's scope, checked before the call reaches the service
//! (`crate::server::auth`). Nothing here logs or reports a detail: errors name the connection,
//! never a value (a decoding error, which could quote one, is dropped).

use crate::app::reads::{DataPage, ensure_readable};
use crate::app::{App, Caller};
use crate::crypto::SealedColumn;
use crate::domain::{
    AccountDetails, AccountNumbers, AccountOwners, AuditAction, Connection, ErrorReason, OwnersOf, Product, Sealed,
    SealedAccountDetails,
};
use crate::error::{Error, Result};
use crate::store::{Cursor, RecordKind};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// One read of account details, as the API asks for it.
#[derive(Debug, Clone)]
pub struct DetailRequest {
    /// Connection.
    pub connection_id: Uuid,
    /// Only this account's entry.
    pub account_id: Option<Uuid>,
    /// Page size.
    pub page_size: usize,
    /// The caller's page token.
    pub page_token: String,
}

/// One kind of account detail: a list of entries, one per account (or portfolio).
trait Detail: Serialize + DeserializeOwned {
    /// The product that delivers it.
    const PRODUCT: Product;
    /// Where it is sealed.
    const COLUMN: SealedColumn;
    /// How a read of it is audited.
    const AUDIT: AuditAction;
    /// The account or portfolio the entry belongs to; listings are ordered and paged by it.
    fn key(&self) -> Uuid;
    /// Whether the entry belongs to account `id`.
    fn is_of_account(&self, id: Uuid) -> bool;
    /// This kind's sealed list among a connection's details.
    fn sealed(details: &SealedAccountDetails) -> Option<&Sealed>;
}

impl Detail for AccountNumbers {
    const PRODUCT: Product = Product::AccountNumbers;
    const COLUMN: SealedColumn = SealedColumn::AccountNumbers;
    const AUDIT: AuditAction = AuditAction::ReadAccountNumbers;
    fn key(&self) -> Uuid {
        self.account_id
    }
    fn is_of_account(&self, id: Uuid) -> bool {
        self.account_id == id
    }
    fn sealed(details: &SealedAccountDetails) -> Option<&Sealed> {
        details.numbers.as_ref()
    }
}

impl Detail for AccountOwners {
    const PRODUCT: Product = Product::Identity;
    const COLUMN: SealedColumn = SealedColumn::AccountOwners;
    const AUDIT: AuditAction = AuditAction::ReadAccountOwners;
    fn key(&self) -> Uuid {
        self.of.id()
    }
    fn is_of_account(&self, id: Uuid) -> bool {
        self.of == OwnersOf::Account(id)
    }
    fn sealed(details: &SealedAccountDetails) -> Option<&Sealed> {
        details.owners.as_ref()
    }
}

impl App {
    /// `details` sealed for `connection`: each non-empty list as one value of its column.
    pub(super) fn seal_account_details(
        &self,
        connection: &Connection,
        details: &AccountDetails,
    ) -> SealedAccountDetails {
        SealedAccountDetails {
            numbers: self.seal_detail(connection, &details.numbers),
            owners: self.seal_detail(connection, &details.owners),
        }
    }

    fn seal_detail<T: Detail>(&self, connection: &Connection, entries: &[T]) -> Option<Sealed> {
        if entries.is_empty() {
            return None;
        }
        let json = serde_json::to_vec(entries).expect("account details serialize");
        Some(Sealed(self.sealer.seal(&json, &T::COLUMN.context(connection.tenant_id, connection.id))))
    }

    /// One page of a connection's account numbers, by account id.
    pub async fn read_account_numbers(
        &self,
        caller: &Caller,
        request: DetailRequest,
    ) -> Result<DataPage<AccountNumbers>> {
        self.read_details(caller, request).await
    }

    /// One page of the owners of a connection's accounts and portfolios, by their id.
    pub async fn read_account_owners(
        &self,
        caller: &Caller,
        request: DetailRequest,
    ) -> Result<DataPage<AccountOwners>> {
        self.read_details(caller, request).await
    }

    async fn read_details<T: Detail>(&self, caller: &Caller, request: DetailRequest) -> Result<DataPage<T>> {
        let connection = self.live_connection(caller, request.connection_id).await?;
        ensure_readable(&connection, T::PRODUCT)?;
        self.audit.record(caller, T::AUDIT, "connection", connection.id).await;
        if let Some(account) = request.account_id
            && !self.store.has_record(caller.tenant, connection.id, RecordKind::Account, account).await?
        {
            return Err(Error::new(ErrorReason::AccountNotFound, "no such account_id on this connection")
                .with("account_id", account.to_string()));
        }
        // The token is bound to everything that shapes the listing.
        let scope = format!("{:?}/{}/{:?}", T::PRODUCT, connection.id, request.account_id);
        let after = self.page_tokens.check(&scope, &request.page_token)?.map(|cursor| cursor.id);
        let sealed = self.store.account_details(caller.tenant, connection.id).await?;
        let mut entries: Vec<T> = match T::sealed(&sealed) {
            None => Vec::new(),
            Some(sealed) => self.open_detail(&connection, sealed)?,
        };
        entries.retain(|entry| {
            request.account_id.is_none_or(|account| entry.is_of_account(account))
                && after.is_none_or(|after| entry.key() > after)
        });
        entries.sort_by_key(T::key);
        let more = entries.len() > request.page_size;
        entries.truncate(request.page_size);
        let next_page_token = match entries.last() {
            Some(last) if more => self.page_tokens.issue(&scope, &Cursor { key: String::new(), id: last.key() }),
            _ => String::new(),
        };
        Ok(DataPage { items: entries, next_page_token })
    }

    fn open_detail<T: Detail>(&self, connection: &Connection, sealed: &Sealed) -> Result<Vec<T>> {
        let undecodable = || {
            Error::internal(anyhow::anyhow!(
                "the sealed {:?} of connection {} do not open or decode",
                T::COLUMN,
                connection.id
            ))
        };
        let plain = self
            .sealer
            .open(&sealed.0, &T::COLUMN.context(connection.tenant_id, connection.id))
            .map_err(|_| undecodable())?;
        serde_json::from_str(plain.expose_secret()).map_err(|_| undecodable())
    }
}

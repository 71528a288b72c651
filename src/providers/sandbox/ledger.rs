//! The sandbox's memory of what callers did through `SandboxService`: transactions added,
//! modified, removed or booked, and a failure armed for a connection's next refresh. Real
//! providers keep such state upstream; the sandbox keeps it in linkgate's store
//! ([`SandboxStore`](crate::store::SandboxStore)), so every replica serves the same data, and it
//! is destroyed with the connection.
//!
//! A booked transaction gets an id of its own and does not name the pending one it replaces, as
//! most real banks do, so linkgate's pending-to-booked matching is what links them.

use super::Handle;
use super::data::{self, CURRENCY};
use crate::domain::{ConnectionData, Date, Decimal, Money, Product, TenantId, Transaction, stable_id, stored_enum};
use crate::providers::ProviderError;
use crate::store::{Store, StoreError};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

stored_enum! {
    /// How an armed refresh fails.
    pub enum Failure {
        /// The institution is down: transient.
        InstitutionDown = "institution_down",
        /// The provider rate-limits the call: transient, with a delay.
        RateLimited = "rate_limited",
        /// A refusal retrying at once cannot fix.
        ProviderError = "provider_error",
    }
}

impl Failure {
    fn into_error(self) -> ProviderError {
        match self {
            Self::InstitutionDown => ProviderError::Unavailable { retry_after: None },
            Self::RateLimited => ProviderError::RateLimited { retry_after: Some(Duration::from_secs(1)) },
            Self::ProviderError => {
                ProviderError::Rejected { detail: "sandbox refresh failed as armed by FailNextRefresh".to_owned() }
            }
        }
    }
}

/// Why the sandbox refuses a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The account is not one of the connection's.
    AccountNotFound,
    /// The transaction is not one the connection serves now.
    TransactionNotFound,
    /// Only a pending transaction can be booked.
    NotPending,
    /// A booking date before the pending transaction's date.
    BookedBeforePending,
}

/// What a ledger call can meet.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The change makes no sense for this connection.
    #[error("sandbox change refused: {0:?}")]
    Refused(Refusal),
    /// The handle could not be read.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The store did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A transaction to add.
#[derive(Debug, Clone)]
pub struct NewTransaction {
    /// Account.
    pub account_id: Uuid,
    /// Signed amount in the sandbox's currency.
    pub amount: Decimal,
    /// Date.
    pub date: Date,
    /// Description.
    pub description: String,
    /// Pending.
    pub pending: bool,
}

/// Changes to a transaction; unset fields stay.
#[derive(Debug, Clone, Default)]
pub struct TransactionChanges {
    /// New amount.
    pub amount: Option<Decimal>,
    /// New date.
    pub date: Option<Date>,
    /// New description.
    pub description: Option<String>,
}

/// The sandbox's memory, over the store.
#[derive(Clone)]
pub struct Ledger {
    store: Arc<dyn Store>,
}

impl Ledger {
    /// The ledger kept in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// What the sandbox serves for `products` of a connection: its generated data with every
    /// change callers made applied.
    pub async fn data(
        &self,
        handle: &SecretString,
        connection_id: Uuid,
        products: &[Product],
    ) -> Result<ConnectionData, LedgerError> {
        let handle = Handle::parse(handle)?.signed_in()?;
        let created_on = handle.created_at.date_naive();
        let mut data = data::generate(&handle.institution_id, handle.seed, created_on, connection_id, products);
        if products.contains(&Product::Transactions) {
            for (id, changed) in self.store.sandbox_transactions(connection_id).await? {
                data.transactions.retain(|t| t.id != id);
                data.transactions.extend(changed);
            }
        }
        Ok(data)
    }

    /// Adds a transaction; returns its id.
    pub async fn add(
        &self,
        tenant: TenantId,
        handle: &SecretString,
        connection_id: Uuid,
        new: NewTransaction,
    ) -> Result<Uuid, LedgerError> {
        let data = self.data(handle, connection_id, &[Product::Accounts]).await?;
        if !data.accounts.iter().any(|a| a.id == new.account_id) {
            return Err(LedgerError::Refused(Refusal::AccountNotFound));
        }
        let transaction = Transaction {
            id: stable_id(connection_id, "transaction", &format!("txn-added-{}", Uuid::now_v7().simple())),
            account_id: new.account_id,
            amount: Money::new(new.amount, CURRENCY),
            date: new.date,
            description: new.description,
            pending: new.pending,
            pending_transaction_id: None,
        };
        self.put(tenant, connection_id, transaction.id, Some(&transaction)).await?;
        Ok(transaction.id)
    }

    /// Changes a transaction the connection serves.
    pub async fn modify(
        &self,
        tenant: TenantId,
        handle: &SecretString,
        connection_id: Uuid,
        id: Uuid,
        changes: TransactionChanges,
    ) -> Result<(), LedgerError> {
        let mut transaction = self.served(handle, connection_id, id).await?;
        if let Some(amount) = changes.amount {
            transaction.amount.amount = amount;
        }
        transaction.date = changes.date.unwrap_or(transaction.date);
        transaction.description = changes.description.unwrap_or(transaction.description);
        self.put(tenant, connection_id, id, Some(&transaction)).await
    }

    /// Removes a transaction the connection serves.
    pub async fn remove(
        &self,
        tenant: TenantId,
        handle: &SecretString,
        connection_id: Uuid,
        id: Uuid,
    ) -> Result<(), LedgerError> {
        self.served(handle, connection_id, id).await?;
        self.put(tenant, connection_id, id, None).await
    }

    /// Books pending transaction `id` on `date` for `amount` (the pending amount when `None`):
    /// the pending one goes, a booked one with an id of its own comes. Returns the booked id.
    pub async fn post(
        &self,
        tenant: TenantId,
        handle: &SecretString,
        connection_id: Uuid,
        id: Uuid,
        date: Date,
        amount: Option<Decimal>,
    ) -> Result<Uuid, LedgerError> {
        let pending = self.served(handle, connection_id, id).await?;
        if !pending.pending {
            return Err(LedgerError::Refused(Refusal::NotPending));
        }
        if date < pending.date {
            return Err(LedgerError::Refused(Refusal::BookedBeforePending));
        }
        let mut booked = pending.clone();
        booked.id = stable_id(connection_id, "transaction", &format!("txn-booked-{}", Uuid::now_v7().simple()));
        booked.pending = false;
        booked.date = date;
        if let Some(amount) = amount {
            booked.amount.amount = amount;
        }
        self.put(tenant, connection_id, id, None).await?;
        self.put(tenant, connection_id, booked.id, Some(&booked)).await?;
        Ok(booked.id)
    }

    /// Arms `failure` for the connection's next refresh.
    pub async fn arm(&self, tenant: TenantId, connection_id: Uuid, failure: Failure) -> Result<(), LedgerError> {
        use crate::domain::StoredName;
        Ok(self.store.arm_sandbox_failure(tenant, connection_id, failure.name()).await?)
    }

    /// The armed failure of a refresh of the connection, taken so only this refresh fails.
    pub async fn take_failure(&self, connection_id: Uuid) -> Result<Option<ProviderError>, LedgerError> {
        use crate::domain::StoredName;
        let armed = self.store.take_sandbox_failure(connection_id).await?;
        Ok(armed.as_deref().and_then(Failure::from_name).map(Failure::into_error))
    }

    async fn served(&self, handle: &SecretString, connection_id: Uuid, id: Uuid) -> Result<Transaction, LedgerError> {
        let data = self.data(handle, connection_id, &[Product::Transactions]).await?;
        data.transactions.into_iter().find(|t| t.id == id).ok_or(LedgerError::Refused(Refusal::TransactionNotFound))
    }

    async fn put(
        &self,
        tenant: TenantId,
        connection_id: Uuid,
        id: Uuid,
        transaction: Option<&Transaction>,
    ) -> Result<(), LedgerError> {
        Ok(self.store.put_sandbox_transaction(tenant, connection_id, id, transaction).await?)
    }
}

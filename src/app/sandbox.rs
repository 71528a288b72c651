//! Sandbox controls: what a caller does to its own sandbox connections to rehearse situations
//! real connections meet (`SandboxService`): a login the institution revokes, a consent that
//! lapses, a refresh that fails, transactions that appear, change, vanish or book. Each control
//! changes what the sandbox answers for the connection (its handle, or its
//! [`Ledger`](sandbox::Ledger)), or the consent term linkgate keeps for it, under the
//! connection's sync lease, and makes it due at once, so the next poll shows the effect.

use crate::app::connections::ensure_live;
use crate::app::{App, Caller};
use crate::crypto::SealedColumn;
use crate::domain::{Connection, ConnectionEventType, ErrorReason, Timestamp, now};
use crate::domain::{Date, Decimal, Product};
use crate::error::{Error, Result};
use crate::providers::sandbox::{self, Failure, Ledger, LedgerError, NewTransaction, Refusal, TransactionChanges};
use secrecy::ExposeSecret;
use uuid::Uuid;

/// A change of a sandbox connection's transactions.
#[derive(Debug, Clone)]
pub enum TransactionControl {
    /// Add one.
    Add(NewTransaction),
    /// Change one the connection serves.
    Modify {
        /// Which.
        id: Uuid,
        /// What.
        changes: TransactionChanges,
    },
    /// Remove one the connection serves.
    Remove {
        /// Which.
        id: Uuid,
    },
    /// Book a pending one.
    Post {
        /// Which.
        id: Uuid,
        /// Booking date.
        date: Date,
        /// Booked amount, when not the pending one's.
        amount: Option<Decimal>,
    },
}

impl App {
    /// Makes the sandbox require its user to sign in again for connection `id`: the handle is
    /// marked (compare-and-swap under the connection's sync lease) and the connection polled at
    /// once, which turns it LOGIN_REQUIRED. Returns the connection as it stands.
    pub async fn reset_sandbox_login(&self, caller: &Caller, id: Uuid) -> Result<Connection> {
        let connection = self.sandbox_connection(caller, id).await?;
        // Due at once as the lease is released: the poll that follows reads the sandbox's new answer.
        self.with_change_lease(caller.tenant, id, Some(now()), self.mark_login_required(&connection)).await?;
        Ok(connection)
    }

    /// Sets when connection `id`'s consent lapses and makes it due at once, so the consent
    /// calendar acts at its next poll: a warning when within the lead time, LOGIN_REQUIRED with
    /// reason CONSENT_EXPIRED once the time has passed.
    pub async fn set_sandbox_consent_expiry(
        &self,
        caller: &Caller,
        id: Uuid,
        expires_at: Timestamp,
    ) -> Result<Connection> {
        self.sandbox_connection(caller, id).await?;
        let change = async {
            // Read under the lease: no poll changes it meanwhile.
            let mut connection = self.stored_connection(caller, id).await?;
            connection.consent_expires_at = Some(expires_at);
            connection.consent_warned_for = None;
            connection.updated_at = now();
            self.save_connection(&connection, Some(now()), None, ConnectionEventType::StateChanged).await?;
            Ok(connection)
        };
        self.with_change_lease(caller.tenant, id, None, change).await
    }

    /// Arms `failure` for connection `id`'s next refresh, which runs at once.
    pub async fn fail_next_sandbox_refresh(&self, caller: &Caller, id: Uuid, failure: Failure) -> Result<Connection> {
        let connection = self.sandbox_connection(caller, id).await?;
        let ledger = Ledger::new(self.store.clone());
        self.under_sandbox_lease(&connection, ledger.arm(caller.tenant, id, failure)).await?;
        Ok(connection)
    }

    /// Changes connection `id`'s sandbox transactions; the refresh that imports the change runs
    /// at once. Returns the id of the transaction an addition or a booking makes.
    pub async fn change_sandbox_transactions(
        &self,
        caller: &Caller,
        id: Uuid,
        control: TransactionControl,
    ) -> Result<Option<Uuid>> {
        let connection = self.sandbox_connection(caller, id).await?;
        if connection.product(Product::Transactions).is_none() {
            return Err(Error::new(ErrorReason::CapabilityUnsupported, "this connection does not link transactions")
                .with("capability", Product::Transactions.contract_name())
                .with("connection_id", id.to_string()));
        }
        let handle = self.open_handle(&connection).await?;
        let ledger = Ledger::new(self.store.clone());
        let tenant = caller.tenant;
        let change = async {
            match control {
                TransactionControl::Add(new) => ledger.add(tenant, &handle, id, new).await.map(Some),
                TransactionControl::Modify { id: transaction, changes } => {
                    ledger.modify(tenant, &handle, id, transaction, changes).await.map(|()| None)
                }
                TransactionControl::Remove { id: transaction } => {
                    ledger.remove(tenant, &handle, id, transaction).await.map(|()| None)
                }
                TransactionControl::Post { id: transaction, date, amount } => {
                    ledger.post(tenant, &handle, id, transaction, date, amount).await.map(Some)
                }
            }
        };
        self.under_sandbox_lease(&connection, change).await
    }

    /// Runs `change` under the connection's sync lease, then makes it due at once as the lease
    /// is released, whether the change went through or not.
    async fn under_sandbox_lease<T>(
        &self,
        connection: &Connection,
        change: impl std::future::Future<Output = std::result::Result<T, LedgerError>>,
    ) -> Result<T> {
        let change = async { change.await.map_err(ledger_error) };
        self.with_change_lease(connection.tenant_id, connection.id, Some(now()), change).await
    }

    async fn mark_login_required(&self, connection: &Connection) -> Result<()> {
        let context = SealedColumn::ConnectionHandle.context(connection.tenant_id, connection.id);
        let old = self.store.connection_handle(connection.tenant_id, connection.id).await?.ok_or_else(|| {
            Error::new(ErrorReason::ConnectionDeleted, "the connection was deleted")
                .with("connection_id", connection.id.to_string())
        })?;
        let handle = self.sealer.open(&old, &context).map_err(Error::internal)?;
        let marked = sandbox::require_login(&handle).map_err(|e| Error::from_provider(sandbox::ID, e))?;
        if marked.expose_secret() == handle.expose_secret() {
            return Ok(());
        }
        let new = self.sealer.seal(marked.expose_secret().as_bytes(), &context);
        // Every other change of a handle holds the lease this call holds, so only a re-sealing
        // under a new key can get in between.
        if !self.store.replace_sealed(SealedColumn::ConnectionHandle, connection.id, &old, &new).await? {
            return Err(Error::internal(anyhow::anyhow!(
                "connection {}: its handle changed under the lease",
                connection.id
            )));
        }
        Ok(())
    }

    /// A live sandbox connection of the caller, while the sandbox is enabled.
    async fn sandbox_connection(&self, caller: &Caller, id: Uuid) -> Result<Connection> {
        self.provider(sandbox::ID)?;
        let connection = self.stored_connection(caller, id).await?;
        ensure_live(&connection)?;
        if connection.provider != sandbox::ID {
            return Err(Error::new(
                ErrorReason::CapabilityUnsupported,
                "sandbox controls act on sandbox connections only",
            )
            .with("capability", "sandbox_controls")
            .with("provider", connection.provider.clone()));
        }
        Ok(connection)
    }
}

/// The caller's view of a change the sandbox refused or could not make.
fn ledger_error(error: LedgerError) -> Error {
    match error {
        LedgerError::Refused(Refusal::AccountNotFound) => {
            Error::new(ErrorReason::AccountNotFound, "no such account_id on this connection")
                .with("field", "account_id")
        }
        LedgerError::Refused(Refusal::TransactionNotFound) => Error::new(
            ErrorReason::TransactionNotFound,
            "no such transaction_id among the transactions this connection serves now",
        )
        .with("field", "transaction_id"),
        LedgerError::Refused(Refusal::NotPending) => {
            Error::invalid_field("transaction_id", "only a pending transaction can be booked")
        }
        LedgerError::Refused(Refusal::BookedBeforePending) => {
            Error::invalid_field("date", "a transaction cannot be booked before its pending date")
        }
        LedgerError::Provider(error) => Error::from_provider(sandbox::ID, error),
        LedgerError::Store(error) => error.into(),
    }
}

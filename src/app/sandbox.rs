//! Sandbox controls: what a caller does to its own sandbox connections to rehearse situations
//! real connections meet (`SandboxService`): a login the institution revokes, a consent that
//! lapses. Each control changes what the sandbox answers for the connection, or the consent term
//! linkgate keeps for it, and makes it due at once, so the next poll shows the effect.

use crate::app::connections::ensure_live;
use crate::app::{App, Caller};
use crate::crypto::SealedColumn;
use crate::domain::{Connection, ConnectionEventType, ErrorReason, Timestamp, now};
use crate::error::{Error, Result};
use crate::providers::sandbox;
use secrecy::ExposeSecret;
use uuid::Uuid;

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

//! Repair in place: a link session that runs the provider's repair flow for an existing connection
//! (after LOGIN_REQUIRED, or to update credentials), so the user signs in again and the same
//! connection, with the same id and the same data ids, works once more.
//!
//! A repair session is an ordinary link session that names its connection: it is created here,
//! runs through the usual credentials, MFA and polling steps (`link`), and its provider ends it
//! with [`LinkProgress::Repaired`](crate::providers::LinkProgress::Repaired) instead of a public
//! token. Completing it takes the connection's sync lease (so no poll with the old handle races
//! it, as token rotation does), then stores in one transaction: the session SUCCEEDED, a new
//! handle swapped in by compare-and-swap when the provider issued one, the connection REFRESHING
//! and due at once, and its LOGIN_REPAIRED event. The poll that follows brings it to READY.

use crate::app::link::{NewLinkSession, consent_until};
use crate::app::{App, Caller};
use crate::crypto::SealedColumn;
use crate::domain::{Connection, ConnectionState, ErrorReason, LinkSession, ProductState, now};
use crate::error::{Error, Result};
use crate::store::{LinkSessionUpdate, Repair};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

impl App {
    /// Fills a repair request from the connection it names, after checking that the caller may
    /// repair it: a live connection of the caller's tenant whose provider has a repair flow. Fields
    /// the caller gave must agree with the connection.
    pub(super) async fn repair_request(
        &self,
        caller: &Caller,
        mut new: NewLinkSession,
        id: Uuid,
    ) -> Result<NewLinkSession> {
        let connection = self.stored_connection(caller, id).await?;
        if connection.state == ConnectionState::Deleted {
            return Err(Error::new(
                ErrorReason::ConnectionDeleted,
                "a deleted connection cannot be repaired; link again",
            )
            .with("connection_id", id.to_string()));
        }
        let mut violations = Vec::new();
        let mut must_match = |field: &str, given: &str, ours: &str| {
            if !given.is_empty() && given != ours {
                violations.push((field.to_owned(), format!("differs from the connection's ({ours:?})")));
            }
        };
        must_match("provider", &new.provider, &connection.provider);
        must_match("external_user_id", &new.external_user_id, &connection.external_user_id);
        must_match("institution_id", new.institution_id.as_deref().unwrap_or_default(), &connection.institution_id);
        if !new.products.is_empty() {
            violations
                .push(("products".to_owned(), "must be empty: a repair keeps the connection's products".to_owned()));
        }
        if !violations.is_empty() {
            return Err(Error::invalid_fields(violations));
        }
        let provider = self.provider(&connection.provider)?;
        if !provider.info().repairs_connections {
            return Err(Error::new(
                ErrorReason::CapabilityUnsupported,
                format!("{} connections cannot be repaired in place yet", provider.info().display_name),
            )
            .with("capability", "repair")
            .with("provider", provider.info().id));
        }
        new.provider = connection.provider;
        new.external_user_id = connection.external_user_id;
        new.institution_id = Some(connection.institution_id);
        new.products = connection.products.iter().map(|p| p.product).collect();
        Ok(new)
    }

    /// The handle a repair session's provider calls name the connection by, opened.
    pub(super) async fn repair_handle(&self, session: &LinkSession) -> Result<Option<SecretString>> {
        let Some(id) = session.repair_connection_id else {
            return Ok(None);
        };
        let sealed = self.store.connection_handle(session.tenant_id, id).await?.ok_or_else(|| {
            Error::new(ErrorReason::ConnectionDeleted, "the connection this session repairs was deleted")
                .with("connection_id", id.to_string())
        })?;
        let context = SealedColumn::ConnectionHandle.context(session.tenant_id, id);
        self.sealer.open(&sealed, &context).map(Some).map_err(Error::internal)
    }

    /// Completes a repair session whose provider reported the connection repaired: `session` is
    /// the session SUCCEEDED, moved from `from`. See the module documentation.
    pub(super) async fn complete_repair(
        &self,
        session: &LinkSession,
        from: crate::domain::LinkSessionState,
        new_handle: Option<SecretString>,
    ) -> Result<()> {
        let id = session.repair_connection_id.ok_or_else(|| {
            Error::internal(anyhow::anyhow!("a provider reported a repair for a session that repairs nothing"))
        })?;
        let tenant = session.tenant_id;
        let owner = format!("repair-{}", session.id);
        self.lease_for_change(tenant, id, &owner).await?;

        let mut connection = self.store.get_connection(tenant, id).await?.ok_or_else(|| {
            Error::new(ErrorReason::ConnectionNotFound, "no such connection").with("connection_id", id.to_string())
        })?;
        let at = now();
        repaired(&mut connection, at);
        connection.consent_expires_at = consent_until(self.provider(&connection.provider)?.info(), at);
        let context = SealedColumn::ConnectionHandle.context(tenant, id);
        let old = self.store.connection_handle(tenant, id).await?.unwrap_or_default();
        let new = new_handle.map(|handle| self.sealer.seal(handle.expose_secret().as_bytes(), &context));
        let repair = Repair {
            connection: &connection,
            handle: new.as_deref().map(|new| (old.as_slice(), new)),
            next_poll_at: at,
        };
        let update = LinkSessionUpdate { session, from, next_poll_at: None, issued: None };
        match self.store.complete_repair(update, &repair).await? {
            Some(_) => {
                tracing::info!(connection_id = %id, link_session_id = %session.id, provider = %connection.provider, "connection repaired in place");
                self.bus.committed(id);
                self.bus.publish_link_session(session.clone());
                Ok(())
            }
            None => Err(Error::new(
                ErrorReason::LinkSessionWrongState,
                "the link session or its connection changed meanwhile; get the session again",
            )
            .with("link_session_id", session.id.to_string())),
        }
    }
}

/// The connection after its user signed in again: refreshing, its error gone, each product
/// refreshing where it had data and waiting for its first import where it had none.
fn repaired(connection: &mut Connection, at: crate::domain::Timestamp) {
    connection.state = ConnectionState::Refreshing;
    connection.error = None;
    connection.updated_at = at;
    for product in &mut connection.products {
        if product.state != ProductState::Unsupported {
            product.state =
                if product.refreshed_at.is_some() { ProductState::Refreshing } else { ProductState::NotReady };
        }
    }
}

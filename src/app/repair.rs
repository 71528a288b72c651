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
//! and due at once, and its LOGIN_REPAIRED event. The poll that follows brings it to READY. A
//! completion that fails (the session moved on meanwhile, the store failed) releases the lease
//! all the same, so the connection is polled as before.
//!
//! Hosted repairs whose outcome the provider hands to the caller's front end (MoneyKit Connect
//! relinking with `existing_link_id`) end at ExchangePublicToken instead: linkgate never saw that
//! token issued, so the exchange is recognised as a repair by what the provider answers. When
//! the exchanged handle's upstream reference is a live connection's (MoneyKit answers the same
//! link id), that connection's open repair session completes with it, and without one the
//! exchange is refused rather than make a second connection for the same upstream link. When it
//! is no connection's, the one open repair session of the same user at the same institution
//! completes with it and the connection takes the new handle (and upstream reference); with none
//! or several, the exchange makes a new connection as usual. Either way the exchange answers
//! the repaired connection, and the token is recorded as exchanged for it in the repair's
//! transaction, so exchanging it again answers the same connection.

use crate::app::connections::ensure_live;
use crate::app::link::{NewLinkSession, consent_until};
use crate::app::{App, Caller};
use crate::crypto::SealedColumn;
use crate::domain::{Connection, ConnectionState, ErrorReason, LinkSession, LinkSessionState, ProductState, now};
use crate::error::{Error, Result};
use crate::providers::ExchangedConnection;
use crate::store::{LinkSessionUpdate, Repair, TokenClaim};
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
        ensure_live(&connection)?;
        let mut violations = Vec::new();
        let mut must_match = |field: &str, given: &str, ours: &str| {
            if !given.is_empty() && given != ours {
                violations.push((field.to_owned(), "differs from the connection's".to_owned()));
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
        self.provider(&connection.provider)?;
        new.provider = connection.provider;
        new.external_user_id = connection.external_user_id;
        new.institution_id = Some(connection.institution_id);
        new.products = connection.products.iter().map(|p| p.product).collect();
        Ok(new)
    }

    /// The handle a repair session's provider calls name the connection by, opened.
    pub(super) async fn repair_handle(&self, session: &LinkSession) -> Result<Option<SecretString>> {
        match session.repair_connection_id {
            Some(id) => self.open_handle_of(session.tenant_id, id).await.map(Some),
            None => Ok(None),
        }
    }

    /// The open repair session an exchange completes, if the exchanged handle relinks a
    /// connection (see the module documentation): the session of the connection whose upstream
    /// reference the provider answered with, or else the one open repair session of the same
    /// user at the same institution (the provider relinked under a new id).
    pub(super) async fn repair_of_exchange(
        &self,
        tenant: crate::domain::TenantId,
        provider: &str,
        exchanged: &ExchangedConnection,
        external_user_id: Option<&str>,
    ) -> Result<Option<LinkSession>> {
        let upstream_ref = exchanged.upstream_ref.as_ref().unwrap_or(&exchanged.handle);
        let reference = crate::crypto::upstream_ref_hash(provider, upstream_ref.expose_secret());
        let at = now();
        if let Some(connection) = self.store.find_connection_by_upstream_ref(tenant, provider, &reference).await? {
            return match self.store.open_repair_session(tenant, connection.id, at).await? {
                Some(session) => Ok(Some(session)),
                None => Err(Error::new(
                    ErrorReason::LinkSessionExpired,
                    "the token relinks an existing connection that no open repair session names; create a repair \
                     session for it and link again",
                )
                .with("connection_id", connection.id.to_string())
                .with("provider", provider)),
            };
        }
        let Some(user) = external_user_id.filter(|user| !user.is_empty()) else {
            return Ok(None);
        };
        // Two connections of the user at the institution waiting for repair: which one was
        // relinked cannot be told, so neither is guessed.
        let awaiting =
            self.store.connections_awaiting_repair(tenant, provider, user, &exchanged.institution_id, at, 2).await?;
        match awaiting.as_slice() {
            [only] => Ok(self.store.open_repair_session(tenant, *only, at).await?),
            _ => Ok(None),
        }
    }

    /// Completes the repair `session` with an exchange's answer: its connection takes the
    /// exchanged handle when it differs from the stored one, the token is recorded as exchanged
    /// for it, and the repaired connection is returned.
    pub(super) async fn complete_repair_by_exchange(
        &self,
        session: LinkSession,
        exchanged: ExchangedConnection,
        claim: TokenClaim<'_>,
    ) -> Result<Connection> {
        let current = self.repair_handle(&session).await?.unwrap_or_else(|| SecretString::from(String::new()));
        let changed = current.expose_secret() != exchanged.handle.expose_secret();
        let upstream_ref = exchanged.upstream_ref.clone().unwrap_or_else(|| exchanged.handle.clone());
        let from = session.state;
        let mut succeeded = session;
        succeeded.state = LinkSessionState::Succeeded;
        succeeded.clear_mfa();
        succeeded.updated_at = now();
        let proof = ExchangeProof { upstream_ref: changed.then_some(&upstream_ref), claim };
        let handle = changed.then_some(exchanged.handle);
        let repaired = self.complete_repair(&succeeded, from, handle, Some(proof)).await?;
        // The repair's session named linkgate's URL (or none) afresh.
        self.record_webhook_url(&repaired, exchanged.webhook_url.as_deref()).await;
        Ok(repaired)
    }

    /// Completes a repair session whose provider reported the connection repaired: `session` is
    /// the session SUCCEEDED, moved from `from`; `exchange` when an exchange reported it. Returns
    /// the repaired connection. See the module documentation.
    pub(super) async fn complete_repair(
        &self,
        session: &LinkSession,
        from: crate::domain::LinkSessionState,
        new_handle: Option<SecretString>,
        exchange: Option<ExchangeProof<'_>>,
    ) -> Result<Connection> {
        let id = session.repair_connection_id.ok_or_else(|| {
            Error::internal(anyhow::anyhow!("a provider reported a repair for a session that repairs nothing"))
        })?;
        let change = self.complete_repair_under_lease(id, session, from, new_handle, exchange);
        self.with_change_lease(session.tenant_id, id, None, change).await
    }

    /// [`complete_repair`](Self::complete_repair)'s work on connection `id`, under its sync lease.
    async fn complete_repair_under_lease(
        &self,
        id: Uuid,
        session: &LinkSession,
        from: crate::domain::LinkSessionState,
        new_handle: Option<SecretString>,
        exchange: Option<ExchangeProof<'_>>,
    ) -> Result<Connection> {
        let tenant = session.tenant_id;
        let mut connection = self.store.get_connection(tenant, id).await?.ok_or_else(|| {
            Error::new(ErrorReason::ConnectionNotFound, "no such connection").with("connection_id", id.to_string())
        })?;
        let at = now();
        repaired(&mut connection, at);
        connection.consent_expires_at = consent_until(self.provider(&connection.provider)?.info(), at);
        let context = SealedColumn::ConnectionHandle.context(tenant, id);
        let old = self.store.connection_handle(tenant, id).await?.unwrap_or_default();
        let new = new_handle.map(|handle| self.sealer.seal(handle.expose_secret().as_bytes(), &context));
        let reference = exchange
            .as_ref()
            .and_then(|e| e.upstream_ref)
            .map(|r| crate::crypto::upstream_ref_hash(&connection.provider, r.expose_secret()));
        let repair = Repair {
            connection: &connection,
            handle: new.as_deref().map(|new| (old.as_slice(), new)),
            upstream_ref_hash: reference.as_deref(),
            exchanged: exchange.as_ref().map(|e| e.claim),
            next_poll_at: at,
        };
        let mut session = session.clone();
        let mut from = from;
        // An exchange may meet the session's first poll moving it on (CREATED to CONNECTING):
        // once more from where it is now, under the lease already held.
        for attempt in 0..2 {
            let update = LinkSessionUpdate { session: &session, from, next_poll_at: None, issued: None };
            if self.store.complete_repair(update, &repair).await? {
                tracing::info!(connection_id = %id, link_session_id = %session.id, provider = %connection.provider, "connection repaired in place");
                self.bus.committed(id);
                self.bus.publish_link_session(session.clone());
                return Ok(connection);
            }
            let moved = self.store.get_link_session(tenant, session.id).await?;
            match moved {
                Some(now_stored)
                    if attempt == 0
                        && exchange.is_some()
                        && now_stored.state != from
                        && !now_stored.state.is_terminal() =>
                {
                    from = now_stored.state;
                    session.upstream_state = now_stored.upstream_state;
                    session.last_request_id = now_stored.last_request_id;
                }
                _ => break,
            }
        }
        Err(Error::new(
            ErrorReason::LinkSessionWrongState,
            "the link session or its connection changed meanwhile; get the session again",
        )
        .with("link_session_id", session.id.to_string()))
    }
}

/// What an exchange that completes a repair adds to it.
pub(super) struct ExchangeProof<'a> {
    /// The connection's new upstream reference, when the exchange changed its handle.
    pub upstream_ref: Option<&'a SecretString>,
    /// The exchange's claim on its token, recorded as exchanged for the connection.
    pub claim: TokenClaim<'a>,
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

//! Link flows: creating link sessions, forwarding credentials and MFA answers, applying what the
//! provider answers, listing issued public tokens and exchanging them exactly once.

use crate::app::exchange_claim::{CLAIM_LEASE, HeldClaim};
use crate::app::{App, Caller};
use crate::crypto::{SealedColumn, token_hash};
use crate::domain::ErrorReason;
use crate::domain::{
    Connection, ConnectionState, LinkFlow, LinkSession, LinkSessionState, Product, ProductStatus, PublicTokenRecord,
    Sealed, Timestamp, now,
};
use crate::error::{Error, Result};
use crate::providers::{Credentials, Institution, LinkContext, LinkInput, LinkProgress, LinkStep, Provider};
use crate::store::{Claim, IssuedToken, LinkSessionUpdate, Page, PageOf};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use uuid::Uuid;

/// When consent given at `signed_in_at` lapses, where the provider fixes a term.
pub(super) fn consent_until(info: &crate::providers::ProviderInfo, signed_in_at: Timestamp) -> Option<Timestamp> {
    let lifetime = chrono::Duration::from_std(info.consent_lifetime?).ok()?;
    signed_in_at.checked_add_signed(lifetime)
}

/// Whether `new` carries `input`.
fn is_given(input: LinkInput, new: &NewLinkSession) -> bool {
    match input {
        LinkInput::RedirectUri => new.redirect_uri.is_some(),
    }
}

/// How long a link session may take before it expires.
const LINK_SESSION_TTL: chrono::Duration = chrono::Duration::minutes(30);
/// How long an exchange waits for another replica's claim on the same token before giving up:
/// longer than a claim's lease, so a caller waiting on a claim whose holder died takes it over.
const EXCHANGE_WAIT: Duration = Duration::from_secs(10);
const _: () = assert!(EXCHANGE_WAIT.as_secs() > CLAIM_LEASE.as_secs());

/// What AnswerMfa sends: the answer to the session's question, or the id of one of the methods
/// it offers.
pub enum MfaAnswer {
    /// The user's answer; never stored or logged.
    Text(SecretString),
    /// The chosen [`crate::domain::MfaMethod`]'s id.
    Method(String),
}

/// What CreateLinkSession asks for, validated.
#[derive(Debug, Clone)]
pub struct NewLinkSession {
    /// Provider id.
    pub provider: String,
    /// Caller's id for the end user.
    pub external_user_id: String,
    /// Institution, if chosen.
    pub institution_id: Option<String>,
    /// Products (empty: all the institution offers).
    pub products: Vec<Product>,
    /// Return URL of the hosted page.
    pub redirect_uri: Option<String>,
    /// Flow; `None` picks the provider's default.
    pub flow: Option<LinkFlow>,
    /// Idempotency key.
    pub request_id: Option<String>,
    /// The connection to repair in place instead of linking a new one (see `crate::app::repair`).
    pub repair_connection_id: Option<Uuid>,
}

impl App {
    /// The institution `id` of `provider`, or INSTITUTION_NOT_FOUND.
    pub async fn institution(&self, provider: &dyn Provider, id: &str) -> Result<Institution> {
        let institution = provider.institution(id).await.map_err(|e| Error::from_provider(provider.info().id, e))?;
        institution.ok_or_else(|| {
            Error::new(ErrorReason::InstitutionNotFound, format!("institution {id:?} is unknown to the provider"))
                .with("institution_id", id)
                .with("provider", provider.info().id)
        })
    }

    /// Starts a link session, or returns the one an earlier call with the same request id made.
    pub async fn create_link_session(&self, caller: &Caller, new: NewLinkSession) -> Result<LinkSession> {
        self.call_budget.take(caller.tenant)?;
        let new = match new.repair_connection_id {
            Some(id) => self.repair_request(caller, new, id).await?,
            None => new,
        };
        if let Some(request_id) = &new.request_id
            && let Some(existing) = self.store.find_link_session_by_request(caller.tenant, request_id).await?
        {
            return same_request(existing, &new);
        }
        let provider = self.provider(&new.provider)?;
        let info = provider.info();
        // Before any upstream call (the institution lookup is one): nothing is asked or stored.
        let mut missing: Vec<(String, String)> = info
            .required_inputs
            .iter()
            .filter(|input| !is_given(**input, &new))
            .map(|input| (input.field().to_owned(), format!("required by {}", info.display_name)))
            .collect();
        let least = info.min_external_user_id_chars;
        if new.external_user_id.chars().count() < least {
            let description = format!("{} needs at least {least} characters", info.display_name);
            missing.push(("external_user_id".to_owned(), description));
        }
        if !missing.is_empty() {
            return Err(Error::invalid_fields(missing));
        }
        let flow = new.flow.unwrap_or(info.flows[0]);
        if !info.flows.contains(&flow) {
            return Err(unsupported(info.id, &format!("the {} flow", flow_label(flow))));
        }
        if let Some(product) = new.products.iter().find(|p| !info.products.contains(p)) {
            return Err(unsupported(info.id, &format!("product {product:?}")));
        }
        match &new.institution_id {
            Some(id) => {
                let institution = self.institution(provider.as_ref(), id).await?;
                if let Some(product) = new.products.iter().find(|p| !institution.products.contains(p)) {
                    return Err(unsupported(info.id, &format!("product {product:?} at {}", institution.name)));
                }
            }
            None if flow == LinkFlow::Credentials => {
                return Err(Error::invalid_field("institution_id", "required for the credentials flow"));
            }
            None => {}
        }

        let created_at = now();
        let mut session = LinkSession {
            id: Uuid::now_v7(),
            tenant_id: caller.tenant,
            provider: info.id.to_owned(),
            institution_id: new.institution_id.clone(),
            external_user_id: new.external_user_id.clone(),
            state: LinkSessionState::Created,
            flow,
            products: new.products.clone(),
            link_token: None,
            hosted_link_url: None,
            mfa_question: None,
            mfa_methods: Vec::new(),
            public_token: None,
            public_token_expires_at: None,
            upstream_state: None,
            failure_reason: None,
            failure_message: None,
            redirect_uri: new.redirect_uri.clone(),
            last_request_id: new.request_id.clone(),
            created_at,
            updated_at: created_at,
            expires_at: created_at + LINK_SESSION_TTL,
            repair_connection_id: new.repair_connection_id,
        };
        let start = provider
            .start_link(&self.link_context(&session).await?)
            .await
            .map_err(|e| Error::from_provider(info.id, e))?;
        session.link_token = start.link_token;
        session.hosted_link_url = start.hosted_link_url;
        self.remember(&mut session, start.upstream_state);
        // Hosted sessions are polled for the widget's outcome; the others only need a look at expiry.
        let next_poll_at = match flow {
            LinkFlow::Hosted => created_at + info.poll_interval,
            LinkFlow::Credentials => session.expires_at,
        };
        let stored = self.store.create_link_session(&session, new.request_id.as_deref(), Some(next_poll_at)).await?;
        if stored.id != session.id {
            return same_request(stored, &new);
        }
        self.bus.publish_link_session(stored.clone());
        Ok(stored)
    }

    /// One link session of the caller, or LINK_SESSION_NOT_FOUND.
    pub async fn get_link_session(&self, caller: &Caller, id: Uuid) -> Result<LinkSession> {
        self.store.get_link_session(caller.tenant, id).await?.ok_or_else(|| {
            Error::new(ErrorReason::LinkSessionNotFound, "no such link session").with("link_session_id", id.to_string())
        })
    }

    /// Forwards credentials for a CREATED session of the credentials flow.
    pub async fn submit_credentials(
        &self,
        caller: &Caller,
        id: Uuid,
        institution_id: Option<String>,
        credentials: Credentials,
        request_id: Option<String>,
    ) -> Result<LinkSession> {
        self.call_budget.take(caller.tenant)?;
        let session = self.get_link_session(caller, id).await?;
        if request_id.is_some() && session.last_request_id == request_id {
            return Ok(session);
        }
        expect_state(&session, LinkSessionState::Created)?;
        if session.flow != LinkFlow::Credentials {
            return Err(Error::new(
                ErrorReason::LinkSessionWrongState,
                "this session uses the hosted flow; the user completes it in the provider's widget",
            )
            .with("flow", flow_label(session.flow)));
        }
        let institution_id = match (&session.institution_id, institution_id) {
            (Some(ours), Some(theirs)) if *ours != theirs => {
                return Err(Error::invalid_field("institution_id", "differs from the session's institution"));
            }
            (Some(ours), _) => ours.clone(),
            (None, Some(theirs)) => theirs,
            (None, None) => return Err(Error::invalid_field("institution_id", "required: the session has none")),
        };
        let provider = self.provider(&session.provider)?;
        let institution = self.institution(provider.as_ref(), &institution_id).await?;
        let missing: Vec<(String, String)> = institution
            .credential_fields
            .iter()
            .filter(|f| credentials.0.get(f.name.as_ref()).is_none_or(|v| v.expose_secret().is_empty()))
            .map(|f| (format!("credentials[{}]", f.name), format!("required by {}", institution.name)))
            .collect();
        if !missing.is_empty() {
            return Err(Error::invalid_fields(missing));
        }

        let mut connecting = session.clone();
        connecting.institution_id = Some(institution_id);
        connecting.last_request_id = request_id;
        self.forward_to_provider(session, connecting, |provider, link| {
            Box::pin(async move { provider.submit_credentials(&link, credentials).await })
        })
        .await
    }

    /// Forwards the answer to a session's MFA step: the answer to its question, or the method
    /// chosen among those it offers.
    pub async fn answer_mfa(
        &self,
        caller: &Caller,
        id: Uuid,
        answer: MfaAnswer,
        request_id: Option<String>,
    ) -> Result<LinkSession> {
        let session = self.get_link_session(caller, id).await?;
        if request_id.is_some() && session.last_request_id == request_id {
            return Ok(session);
        }
        expect_state(&session, LinkSessionState::MfaRequired)?;
        let answer = match answer {
            MfaAnswer::Text(_) if !session.mfa_methods.is_empty() => {
                return Err(Error::invalid_field(
                    "mfa_method_id",
                    "required: the session offers MFA methods to choose from",
                ));
            }
            MfaAnswer::Method(_) if session.mfa_methods.is_empty() => {
                return Err(Error::invalid_field("answer", "required: the session asks a question, not for a method"));
            }
            MfaAnswer::Method(chosen) if !session.mfa_methods.iter().any(|m| m.id == chosen) => {
                return Err(Error::invalid_field("mfa_method_id", "not one of the session's mfa_methods"));
            }
            MfaAnswer::Method(chosen) => SecretString::from(chosen),
            MfaAnswer::Text(text) => text,
        };
        let mut connecting = session.clone();
        connecting.last_request_id = request_id;
        connecting.clear_mfa();
        self.forward_to_provider(session, connecting, |provider, link| {
            Box::pin(async move { provider.answer_mfa(&link, answer).await })
        })
        .await
    }

    /// Moves `before` to CONNECTING (as `connecting`), makes the provider call, and applies its
    /// answer. When the call itself fails the session returns to where it was, so the caller can
    /// retry, and the error goes back to the caller.
    async fn forward_to_provider<F>(
        &self,
        before: LinkSession,
        mut connecting: LinkSession,
        call: F,
    ) -> Result<LinkSession>
    where
        F: for<'a> FnOnce(
            &'a dyn Provider,
            LinkContext,
        ) -> futures::future::BoxFuture<'a, crate::providers::ProviderResult<LinkStep>>,
    {
        let provider = self.provider(&before.provider)?.clone();
        connecting.state = LinkSessionState::Connecting;
        connecting.updated_at = now();
        let poll_at = connecting.updated_at + provider.info().poll_interval;
        self.save_link_session(&connecting, before.state, Some(poll_at), None).await?;

        match call(provider.as_ref(), self.link_context(&connecting).await?).await {
            Ok(step) => self.apply_link_progress(connecting, step).await,
            Err(error) => {
                let mut restored = before.clone();
                restored.updated_at = now();
                let next = if before.state == LinkSessionState::Created { before.expires_at } else { poll_at };
                self.save_link_session(&restored, LinkSessionState::Connecting, Some(next), None).await?;
                Err(Error::from_provider(&before.provider, error))
            }
        }
    }

    /// The provider-facing view of a session, its remembered upstream state and, for a repair
    /// session, its connection's handle opened.
    pub async fn link_context(&self, session: &LinkSession) -> Result<LinkContext> {
        let upstream_state = session
            .upstream_state
            .as_ref()
            .map(|sealed| {
                let context = SealedColumn::SessionUpstreamState.context(session.tenant_id, session.id);
                self.sealer.open(&sealed.0, &context).map_err(Error::internal)
            })
            .transpose()?;
        Ok(LinkContext {
            link_session_id: session.id,
            institution_id: session.institution_id.clone(),
            external_user_id: session.external_user_id.clone(),
            flow: session.flow,
            products: session.products.clone(),
            redirect_uri: session.redirect_uri.clone(),
            created_at: session.created_at,
            link_token: session.link_token.clone(),
            upstream_state,
            repair: self.repair_handle(session).await?,
        })
    }

    /// Seals state a provider asked linkgate to remember onto its session.
    fn remember(&self, session: &mut LinkSession, state: Option<SecretString>) {
        if let Some(state) = state {
            let context = SealedColumn::SessionUpstreamState.context(session.tenant_id, session.id);
            session.upstream_state = Some(Sealed(self.sealer.seal(state.expose_secret().as_bytes(), &context)));
        }
    }

    /// Applies the provider's answer about a session that is CONNECTING (or CREATED on the hosted
    /// flow) and returns the session as stored afterwards.
    pub async fn apply_link_progress(&self, session: LinkSession, step: LinkStep) -> Result<LinkSession> {
        let from = session.state;
        let mut next = session;
        next.updated_at = now();
        self.remember(&mut next, step.upstream_state);
        let progress = step.progress;
        let provider = self.provider(&next.provider)?;
        let mut issued = None;
        let next_poll_at = match progress {
            LinkProgress::Repaired { handle } => {
                next.state = LinkSessionState::Succeeded;
                next.clear_mfa();
                self.complete_repair(&next, from, handle, None).await?;
                return Ok(next);
            }
            LinkProgress::Succeeded { .. } if next.repair_connection_id.is_some() => {
                // A repair keeps its connection; a provider that links a new one instead is wrong.
                return Err(Error::internal(anyhow::anyhow!(
                    "provider {} issued a public token for a repair session",
                    next.provider
                )));
            }
            LinkProgress::Connecting => {
                next.state = LinkSessionState::Connecting;
                Some(next.updated_at + provider.info().poll_interval)
            }
            LinkProgress::MfaRequired { question, methods } => {
                next.state = LinkSessionState::MfaRequired;
                next.mfa_question = Some(question);
                next.mfa_methods = methods;
                Some(next.expires_at)
            }
            LinkProgress::Succeeded { public_token, institution_id, expires_at } => {
                next.state = LinkSessionState::Succeeded;
                next.clear_mfa();
                next.institution_id = Some(institution_id.clone());
                next.public_token = Some(Sealed(self.sealer.seal(
                    public_token.expose_secret().as_bytes(),
                    &SealedColumn::SessionToken.context(next.tenant_id, next.id),
                )));
                next.public_token_expires_at = Some(expires_at);
                issued = Some(IssuedToken {
                    id: Uuid::now_v7(),
                    provider: next.provider.clone(),
                    token_hash: token_hash(public_token.expose_secret()),
                    institution_id,
                    expires_at,
                });
                None
            }
            LinkProgress::Failed { reason, message } => {
                next.state = LinkSessionState::Failed;
                next.clear_mfa();
                next.failure_reason = Some(reason);
                next.failure_message = Some(message);
                None
            }
        };
        self.save_link_session(&next, from, next_poll_at, issued.as_ref()).await?;
        Ok(next)
    }

    /// The oldest live connection of `new`'s end user at the same provider and institution, if
    /// any: `new` would link the same accounts again. Users without an id are never matched.
    async fn live_duplicate(&self, new: &Connection) -> Result<Option<Uuid>> {
        if new.external_user_id.is_empty() {
            return Ok(None);
        }
        let store = &self.store;
        Ok(store.find_live_duplicate(new.tenant_id, &new.external_user_id, &new.provider, &new.institution_id).await?)
    }

    /// Marks a session that outlived its `expires_at` EXPIRED.
    pub async fn expire_link_session(&self, session: LinkSession) -> Result<()> {
        let from = session.state;
        let mut expired = session;
        expired.state = LinkSessionState::Expired;
        expired.clear_mfa();
        expired.updated_at = now();
        match self.save_link_session(&expired, from, None, None).await {
            Err(error) if error.reason() == ErrorReason::LinkSessionWrongState => Ok(()),
            other => other,
        }
    }

    /// Stores a session change made from state `from` and tells watchers. A session that moved
    /// meanwhile (another call, another replica) is left alone: LINK_SESSION_WRONG_STATE.
    async fn save_link_session(
        &self,
        session: &LinkSession,
        from: LinkSessionState,
        next_poll_at: Option<Timestamp>,
        issued: Option<&IssuedToken>,
    ) -> Result<()> {
        let update = LinkSessionUpdate { session, from, next_poll_at, issued };
        if !self.store.update_link_session(update).await? {
            return Err(Error::new(
                ErrorReason::LinkSessionWrongState,
                "the link session changed meanwhile; get it again",
            )
            .with("link_session_id", session.id.to_string()));
        }
        self.bus.publish_link_session(session.clone());
        Ok(())
    }

    /// The public token of a SUCCEEDED session, opened.
    pub fn open_session_token(&self, session: &LinkSession) -> Result<Option<SecretString>> {
        session
            .public_token
            .as_ref()
            .map(|sealed| {
                self.sealer
                    .open(&sealed.0, &SealedColumn::SessionToken.context(session.tenant_id, session.id))
                    .map_err(Error::internal)
            })
            .transpose()
    }

    /// The link token a session serves: the one stored with it, or else the one its provider
    /// makes from the session's sealed upstream state (see
    /// [`Provider::sealed_link_token`](crate::providers::Provider::sealed_link_token)).
    pub fn open_link_token(&self, session: &LinkSession) -> Result<Option<String>> {
        if session.link_token.is_some() {
            return Ok(session.link_token.clone());
        }
        let (Some(sealed), Some(provider)) = (&session.upstream_state, self.providers.get(&session.provider)) else {
            return Ok(None);
        };
        let context = SealedColumn::SessionUpstreamState.context(session.tenant_id, session.id);
        let state = self.sealer.open(&sealed.0, &context).map_err(Error::internal)?;
        Ok(provider.sealed_link_token(&state).map(|token| token.expose_secret().to_owned()))
    }

    /// Issued, unexchanged, unexpired public tokens of the caller, newest first.
    pub async fn list_public_tokens(
        &self,
        caller: &Caller,
        provider: Option<&str>,
        external_user_id: Option<&str>,
        page: &Page,
    ) -> Result<PageOf<PublicTokenRecord>> {
        if let Some(provider) = provider {
            self.provider(provider)?;
        }
        let stored = self.store.list_public_tokens(caller.tenant, provider, external_user_id, now(), page).await?;
        let mut items = Vec::with_capacity(stored.items.len());
        for token in stored.items {
            let context = SealedColumn::SessionToken.context(caller.tenant, token.link_session_id);
            let public_token = self.sealer.open(&token.token_sealed.0, &context).map_err(Error::internal)?;
            items.push(PublicTokenRecord {
                public_token: public_token.expose_secret().to_owned(),
                provider: token.provider,
                link_session_id: Some(token.link_session_id),
                institution_id: token.institution_id,
                external_user_id: token.external_user_id,
                created_at: token.created_at,
                expires_at: token.expires_at,
            });
        }
        Ok(PageOf { items, next: stored.next })
    }

    /// Exchanges a public token for a connection, exactly once per token: the first caller makes
    /// the one provider call and records the connection in the same transaction that marks the
    /// token exchanged; every concurrent or later caller of the same tenant gets that connection.
    /// The claim that makes the caller first is a short lease renewed while it works (see
    /// `crate::app::exchange_claim`): a caller waiting on a claim whose holder died takes it over.
    pub async fn exchange_public_token(
        &self,
        caller: &Caller,
        provider_id: &str,
        public_token: SecretString,
        external_user_id: Option<String>,
    ) -> Result<Connection> {
        self.call_budget.take(caller.tenant)?;
        let provider = self.provider(provider_id)?.clone();
        let hash = token_hash(public_token.expose_secret());
        let lock = self.exchange_lock(&hash);
        let _local_turn = lock.lock().await;

        let lease = chrono::Duration::from_std(CLAIM_LEASE).expect("a lease of seconds");
        let waiting_since = tokio::time::Instant::now();
        let (session, held) = loop {
            let (sent, at) = (tokio::time::Instant::now(), now());
            match self.store.claim_public_token(caller.tenant, provider_id, &hash, at, at + lease).await? {
                Claim::Won { link_session, claim_id } => {
                    let store = self.store.clone();
                    break (link_session, HeldClaim::start(store, caller.tenant, provider_id, &hash, claim_id, sent));
                }
                Claim::Exchanged { connection_id } => return self.exchanged_connection(caller, connection_id).await,
                Claim::Expired => {
                    return Err(Error::new(ErrorReason::PublicTokenExpired, "the public token expired; link again")
                        .with("provider", provider_id));
                }
                Claim::Foreign => return Err(token_not_found(provider_id)),
                Claim::Busy if waiting_since.elapsed() >= EXCHANGE_WAIT => {
                    return Err(Error::new(
                        ErrorReason::ExchangeInProgress,
                        "another exchange of this token is still running; retry with the same token",
                    )
                    .with("provider", provider_id)
                    .retry_after(Duration::from_secs(1)));
                }
                Claim::Busy => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };

        // Dropped unfinished once the claim can no longer be vouched for: before any other replica
        // may take it over and call the provider with the same token.
        let exchanged = match held.hold(provider_id, provider.exchange_public_token(&public_token)).await {
            Ok(Ok(exchanged)) => exchanged,
            Ok(Err(error)) => {
                self.store.release_public_token(caller.tenant, provider_id, held.claim()).await?;
                return Err(Error::from_provider(provider_id, error));
            }
            Err(lost) => {
                // The token may be consumed upstream: the next holder gets the provider's verdict.
                tracing::warn!(
                    request_id = %caller.request_id, provider = provider_id, reason = ?lost.reason(),
                    "an exchange abandoned its provider call: its claim on the token could no longer be vouched for"
                );
                self.store.release_public_token(caller.tenant, provider_id, held.claim()).await?;
                return Err(lost);
            }
        };
        let repairs = match &session {
            // A token linkgate saw issued belongs to an ordinary session: repairs issue none.
            Some(_) => Ok(None),
            None => self.repair_of_exchange(caller.tenant, provider_id, &exchanged, external_user_id.as_deref()).await,
        };
        match repairs {
            Ok(Some(repair)) => return self.complete_repair_by_exchange(repair, exchanged, held.claim()).await,
            Ok(None) => {}
            Err(error) => {
                self.store.release_public_token(caller.tenant, provider_id, held.claim()).await?;
                return Err(error);
            }
        }
        let products: Vec<Product> = match &session {
            Some(s) if !s.products.is_empty() => {
                exchanged.products.iter().copied().filter(|p| s.products.contains(p)).collect()
            }
            _ => exchanged.products.clone(),
        };
        let created_at = now();
        let connection = Connection {
            id: Uuid::now_v7(),
            tenant_id: caller.tenant,
            provider: provider_id.to_owned(),
            institution_id: exchanged.institution_id,
            institution_name: exchanged.institution_name,
            external_user_id: session
                .as_ref()
                .map(|s| s.external_user_id.clone())
                .or(external_user_id)
                .unwrap_or_default(),
            state: ConnectionState::Pending,
            error: None,
            products: products.into_iter().map(ProductStatus::not_ready).collect(),
            created_at,
            updated_at: created_at,
            last_synced_at: None,
            link_session_id: session.as_ref().map(|s| s.id),
            consent_expires_at: consent_until(provider.info(), created_at),
            consent_warned_for: None,
            duplicate_of: None,
        };
        let duplicate_of = self.live_duplicate(&connection).await?;
        let connection = Connection { duplicate_of, ..connection };
        let handle = self.sealer.seal(
            exchanged.handle.expose_secret().as_bytes(),
            &SealedColumn::ConnectionHandle.context(connection.tenant_id, connection.id),
        );
        let upstream_ref = exchanged.upstream_ref.as_ref().unwrap_or(&exchanged.handle);
        let upstream_ref_hash = crate::crypto::upstream_ref_hash(provider_id, upstream_ref.expose_secret());
        let first_poll = created_at + provider.info().poll_interval;
        let recorded = self.store.create_connection(&connection, &handle, &upstream_ref_hash, held.claim(), first_poll);
        let failure = match recorded.await {
            Ok(true) => None,
            // The claim lapsed and another exchange took it over before this one could record.
            Ok(false) => Some(held.lost(provider_id)),
            Err(error) => Some(Error::from(error)),
        };
        if let Some(error) = failure {
            // The provider consumed the token but nothing was recorded: the one window that needs
            // a new link. Say so loudly; the claim lapses (or is another's) and a retry gets the
            // provider's verdict.
            tracing::error!(
                request_id = %caller.request_id, provider = provider_id, error = %error,
                "public token exchanged upstream but the connection could not be stored; the user must link again"
            );
            return Err(error);
        }
        // A new connection has no URL recorded: only one its link was given is worth a write
        // (providers without per-link webhooks give none, and their exchanges write nothing more).
        if let Some(url) = exchanged.webhook_url.as_deref() {
            self.record_webhook_url(&connection, Some(url)).await;
        }
        self.bus.ring();
        Ok(connection)
    }

    /// Records the webhook URL the provider says `connection`'s upstream link was given at its
    /// exchange, so the sync engine moves it only when linkgate's URL changes. Not recorded (a
    /// failed write, logged), the sync engine merely sets the same URL once more.
    pub(super) async fn record_webhook_url(&self, connection: &Connection, url: Option<&str>) {
        if let Err(error) = self.store.set_upstream_webhook(connection.tenant_id, connection.id, url).await {
            tracing::warn!(connection_id = %connection.id, error = %error, "recording the connection's webhook URL failed");
        }
    }

    async fn exchanged_connection(&self, caller: &Caller, connection_id: Uuid) -> Result<Connection> {
        let connection = self.store.get_connection(caller.tenant, connection_id).await?.ok_or_else(|| {
            Error::internal(anyhow::anyhow!("exchanged token points at missing connection {connection_id}"))
        })?;
        if connection.state == ConnectionState::Deleted {
            return Err(Error::new(
                ErrorReason::PublicTokenUsed,
                "the public token was exchanged for a connection that has since been deleted",
            )
            .with("connection_id", connection_id.to_string()));
        }
        Ok(connection)
    }
}

fn token_not_found(provider: &str) -> Error {
    Error::new(ErrorReason::PublicTokenNotFound, "the provider does not recognise this public token")
        .with("provider", provider)
}

fn unsupported(provider: &str, capability: &str) -> Error {
    Error::new(ErrorReason::CapabilityUnsupported, format!("provider {provider:?} does not support {capability}"))
        .with("provider", provider)
        .with("capability", capability)
}

fn flow_label(flow: LinkFlow) -> &'static str {
    match flow {
        LinkFlow::Hosted => "hosted",
        LinkFlow::Credentials => "credentials",
    }
}

fn expect_state(session: &LinkSession, expected: LinkSessionState) -> Result<()> {
    if session.state == expected {
        return Ok(());
    }
    if session.expires_at <= now() && !session.state.is_terminal() {
        return Err(Error::new(ErrorReason::LinkSessionExpired, "the link session expired; create a new one"));
    }
    Err(Error::new(
        ErrorReason::LinkSessionWrongState,
        format!("the link session is {:?}, not {expected:?}", session.state),
    )
    .with("state", format!("{:?}", session.state)))
}

/// The session an earlier call with the same request id created, if this call asks for the same.
fn same_request(existing: LinkSession, new: &NewLinkSession) -> Result<LinkSession> {
    let same = existing.provider == new.provider
        && existing.external_user_id == new.external_user_id
        && existing.institution_id == new.institution_id
        && existing.products == new.products
        && existing.redirect_uri == new.redirect_uri
        && existing.repair_connection_id == new.repair_connection_id
        && new.flow.is_none_or(|flow| flow == existing.flow);
    if same {
        Ok(existing)
    } else {
        Err(Error::new(ErrorReason::RequestIdReused, "this request_id was used with different parameters")
            .with("field", "request_id"))
    }
}

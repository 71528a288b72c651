//! `linkgate.v1.LinkService`.

use super::convert::{self, enum_field};
use super::{ResponseStream, Validator, caller, next_page_token, page, respond, respond_stream};
use crate::app::App;
use crate::app::link::{MfaAnswer, NewLinkSession};
use crate::domain::{AuditAction, LinkFlow};
use crate::pb::{self, link_service_server::LinkService};
use crate::providers::Credentials;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use tonic::{Request, Response, Status};

const MAX_USER_ID: usize = 128;
const MAX_INSTITUTION_ID: usize = 128;
const MAX_URI: usize = 2048;
const MAX_QUERY: usize = 100;
const MAX_CREDENTIALS: usize = 10;
const MAX_CREDENTIAL_BYTES: usize = 1024;
const MAX_MFA_ANSWER: usize = 256;
const MAX_PUBLIC_TOKEN: usize = 512;

/// The LinkService implementation.
pub struct LinkApi {
    app: Arc<App>,
}

impl LinkApi {
    /// The service over `app`.
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }

    /// A session for the caller (see [`served`]).
    fn session(&self, session: &crate::domain::LinkSession) -> crate::error::Result<pb::LinkSession> {
        served(&self.app, session)
    }
}

/// A session as its caller sees it: its link token and public token opened where they are kept
/// sealed.
fn served(app: &App, session: &crate::domain::LinkSession) -> crate::error::Result<pb::LinkSession> {
    let link_token = app.open_link_token(session)?;
    let public_token = app.open_session_token(session)?;
    Ok(convert::link_session(session, link_token, public_token.map(|t| t.expose_secret().to_owned())))
}

#[tonic::async_trait]
impl LinkService for LinkApi {
    async fn list_providers(
        &self,
        request: Request<pb::ListProvidersRequest>,
    ) -> Result<Response<pb::ListProvidersResponse>, Status> {
        let caller = caller(&request)?;
        let enabled = self.app.providers.all().map(|p| {
            let info = p.info();
            pb::Provider {
                id: info.id.to_owned(),
                display_name: info.display_name.to_owned(),
                enabled: true,
                flows: info.flows.iter().map(|f| pb::LinkFlow::from(*f) as i32).collect(),
                products: info.products.iter().map(|p| pb::Product::from(*p) as i32).collect(),
                health: pb::ProviderHealth::from(p.health()) as i32,
                required_fields: info.required_inputs.iter().map(|i| i.field().to_owned()).collect(),
            }
        });
        let disabled = self.app.providers.disabled().map(|(id, display_name)| pb::Provider {
            id: id.to_owned(),
            display_name: display_name.to_owned(),
            enabled: false,
            ..Default::default()
        });
        let mut providers: Vec<pb::Provider> = enabled.chain(disabled).collect();
        providers.sort_by(|a, b| a.id.cmp(&b.id));
        respond(&caller, Ok(pb::ListProvidersResponse { providers }))
    }

    async fn list_institutions(
        &self,
        request: Request<pb::ListInstitutionsRequest>,
    ) -> Result<Response<pb::ListInstitutionsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let provider_id = v.text("provider", &req.provider, MAX_USER_ID);
            let query = v.optional_text("query", &req.query, MAX_QUERY).unwrap_or_default().to_lowercase();
            let size = v.page_size(req.page_size);
            v.finish()?;
            let provider = self.app.provider(&provider_id)?;
            // Keyset paging on (name, id), the listing's order: a page token stays good when the
            // provider's catalogue is fetched anew between pages.
            let scope = format!("institutions/{provider_id}/{query}");
            let after: Option<(String, String)> =
                self.app.page_tokens.check_as(&scope, &req.page_token, "page_token")?;
            let matching =
                provider.institutions(&query).await.map_err(|e| crate::error::Error::from_provider(&provider_id, e))?;
            let mut rest = matching
                .into_iter()
                .filter(|i| after.as_ref().is_none_or(|(name, id)| (&i.name, &i.id) > (name, id)))
                .peekable();
            let page: Vec<_> = rest.by_ref().take(size).collect();
            let next = match (rest.peek(), page.last()) {
                (Some(_), Some(last)) => self.app.page_tokens.issue_as(&scope, &(&last.name, &last.id)),
                _ => String::new(),
            };
            Ok(pb::ListInstitutionsResponse {
                institutions: page.into_iter().map(|i| convert::institution(&provider_id, i)).collect(),
                next_page_token: next,
            })
        }
        .await;
        respond(&caller, result)
    }

    async fn create_link_session(
        &self,
        request: Request<pb::CreateLinkSessionRequest>,
    ) -> Result<Response<pb::CreateLinkSessionResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            // A repair session takes its provider and user from the connection it repairs.
            let repair_connection_id = v.optional_id("connection_id", &req.connection_id);
            let required = |v: &mut Validator, field: &str, value: &str| match repair_connection_id {
                Some(_) => v.optional_text(field, value, MAX_USER_ID).unwrap_or_default(),
                None => v.text(field, value, MAX_USER_ID),
            };
            let new = NewLinkSession {
                provider: required(&mut v, "provider", &req.provider),
                external_user_id: required(&mut v, "external_user_id", &req.external_user_id),
                institution_id: v.optional_text("institution_id", &req.institution_id, MAX_INSTITUTION_ID),
                products: v.products(&req.products),
                redirect_uri: v.optional_text("redirect_uri", &req.redirect_uri, MAX_URI),
                flow: match req.flow {
                    0 => None,
                    value => enum_field::<pb::LinkFlow, LinkFlow>("flow", value)
                        .map_err(|_| v.reject("flow", format!("{value} is not a valid LinkFlow")))
                        .ok(),
                },
                request_id: v.request_id(&req.request_id),
                repair_connection_id,
            };
            v.finish()?;
            let session = self.app.create_link_session(&caller, new).await?;
            self.app.audit.record(&caller, AuditAction::CreateLinkSession, "link_session", session.id).await;
            Ok(pb::CreateLinkSessionResponse { link_session: Some(self.session(&session)?) })
        }
        .await;
        respond(&caller, result)
    }

    async fn get_link_session(
        &self,
        request: Request<pb::GetLinkSessionRequest>,
    ) -> Result<Response<pb::GetLinkSessionResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let id = v.id("link_session_id", &req.link_session_id);
            v.finish()?;
            let session = self.app.get_link_session(&caller, id).await?;
            Ok(pb::GetLinkSessionResponse { link_session: Some(self.session(&session)?) })
        }
        .await;
        respond(&caller, result)
    }

    async fn submit_credentials(
        &self,
        request: Request<pb::SubmitCredentialsRequest>,
    ) -> Result<Response<pb::SubmitCredentialsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let id = v.id("link_session_id", &req.link_session_id);
            let institution_id = v.optional_text("institution_id", &req.institution_id, MAX_INSTITUTION_ID);
            let request_id = v.request_id(&req.request_id);
            if req.credentials.is_empty() {
                v.reject("credentials", "required");
            } else if req.credentials.len() > MAX_CREDENTIALS {
                v.reject("credentials", format!("at most {MAX_CREDENTIALS} entries"));
            }
            for (name, value) in &req.credentials {
                if name.is_empty() || name.len() > 64 || value.len() > MAX_CREDENTIAL_BYTES {
                    v.reject(
                        &format!("credentials[{}]", name.chars().take(64).collect::<String>()),
                        format!("names are 1 to 64 bytes and values at most {MAX_CREDENTIAL_BYTES} bytes"),
                    );
                }
            }
            v.finish()?;
            let credentials =
                Credentials(req.credentials.into_iter().map(|(k, value)| (k, SecretString::from(value))).collect());
            let session = self.app.submit_credentials(&caller, id, institution_id, credentials, request_id).await?;
            Ok(pb::SubmitCredentialsResponse { link_session: Some(self.session(&session)?) })
        }
        .await;
        respond(&caller, result)
    }

    async fn answer_mfa(
        &self,
        request: Request<pb::AnswerMfaRequest>,
    ) -> Result<Response<pb::AnswerMfaResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let id = v.id("link_session_id", &req.link_session_id);
            let request_id = v.request_id(&req.request_id);
            match (req.answer.is_empty(), req.mfa_method_id.is_empty()) {
                (true, true) => v.reject("answer", "required, unless mfa_method_id is given"),
                (false, false) => v.reject("mfa_method_id", "give either answer or mfa_method_id, not both"),
                _ => {}
            }
            if req.answer.chars().count() > MAX_MFA_ANSWER {
                v.reject("answer", format!("at most {MAX_MFA_ANSWER} characters"));
            }
            if req.mfa_method_id.chars().count() > MAX_MFA_ANSWER {
                v.reject("mfa_method_id", format!("at most {MAX_MFA_ANSWER} characters"));
            }
            v.finish()?;
            let answer = match req.mfa_method_id.is_empty() {
                true => MfaAnswer::Text(SecretString::from(req.answer)),
                false => MfaAnswer::Method(req.mfa_method_id),
            };
            let session = self.app.answer_mfa(&caller, id, answer, request_id).await?;
            Ok(pb::AnswerMfaResponse { link_session: Some(self.session(&session)?) })
        }
        .await;
        respond(&caller, result)
    }

    type WatchLinkSessionStream = ResponseStream<pb::WatchLinkSessionResponse>;

    async fn watch_link_session(
        &self,
        request: Request<pb::WatchLinkSessionRequest>,
    ) -> Result<Response<Self::WatchLinkSessionStream>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let stream = async {
            let mut v = Validator::default();
            let id = v.id("link_session_id", &req.link_session_id);
            v.finish()?;
            let session = self.app.get_link_session(&caller, id).await?;
            self.app.watch_link_session(&caller, session)
        }
        .await
        .map_err(|error| super::fail(&caller, error))?;
        let app = self.app.clone();
        let stream = tokio_stream::StreamExt::map(stream, move |item| item.and_then(|session| served(&app, &session)));
        Ok(respond_stream(&caller, stream, |link_session| pb::WatchLinkSessionResponse {
            link_session: Some(link_session),
        }))
    }

    async fn list_public_tokens(
        &self,
        request: Request<pb::ListPublicTokensRequest>,
    ) -> Result<Response<pb::ListPublicTokensResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let provider = v.optional_text("provider", &req.provider, MAX_USER_ID);
            let user = v.optional_text("external_user_id", &req.external_user_id, MAX_USER_ID);
            let size = v.page_size(req.page_size);
            v.finish()?;
            let scope = format!("public_tokens/{provider:?}/{user:?}");
            let page_request = page(&self.app, &scope, size, &req.page_token)?;
            let tokens =
                self.app.list_public_tokens(&caller, provider.as_deref(), user.as_deref(), &page_request).await?;
            let next_page_token = next_page_token(&self.app, &scope, &tokens);
            Ok(pb::ListPublicTokensResponse {
                public_tokens: tokens.items.into_iter().map(Into::into).collect(),
                next_page_token,
            })
        }
        .await;
        respond(&caller, result)
    }

    async fn exchange_public_token(
        &self,
        request: Request<pb::ExchangePublicTokenRequest>,
    ) -> Result<Response<pb::ExchangePublicTokenResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let provider = v.text("provider", &req.provider, MAX_USER_ID);
            let token = v.text("public_token", &req.public_token, MAX_PUBLIC_TOKEN);
            let user = v.optional_text("external_user_id", &req.external_user_id, MAX_USER_ID);
            v.request_id(&req.request_id);
            v.finish()?;
            let connection =
                self.app.exchange_public_token(&caller, &provider, SecretString::from(token), user).await?;
            self.app.audit.record(&caller, AuditAction::Exchange, "connection", connection.id).await;
            Ok(pb::ExchangePublicTokenResponse { connection: Some((&connection).into()) })
        }
        .await;
        respond(&caller, result)
    }
}

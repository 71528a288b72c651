//! `linkgate.v1.ConnectionService`.

use super::convert::enum_field;
use super::{ResponseStream, Validator, caller, fail, next_page_token, page, respond, respond_stream};
use crate::app::App;
use crate::domain::{AuditAction, ConnectionState};
use crate::pb::{self, connection_service_server::ConnectionService};
use crate::store::{ConnectionFilter, EventFilter};
use std::sync::Arc;
use tonic::{Request, Response, Status};

const MAX_FILTER: usize = 128;
/// Longest `external_user_id`, as CreateLinkSession accepts it.
const MAX_USER_ID: usize = 128;

/// The ConnectionService implementation.
pub struct ConnectionApi {
    app: Arc<App>,
}

impl ConnectionApi {
    /// The service over `app`.
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl ConnectionService for ConnectionApi {
    async fn get_connection(
        &self,
        request: Request<pb::GetConnectionRequest>,
    ) -> Result<Response<pb::GetConnectionResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let id = v.id("connection_id", &req.connection_id);
            v.finish()?;
            let connection = self.app.get_connection(&caller, id).await?;
            self.app.audit.record(&caller, AuditAction::Read, "connection", id).await;
            Ok(pb::GetConnectionResponse { connection: Some(connection.as_ref().into()) })
        }
        .await;
        respond(&caller, result)
    }

    async fn list_connections(
        &self,
        request: Request<pb::ListConnectionsRequest>,
    ) -> Result<Response<pb::ListConnectionsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let filter = ConnectionFilter {
                external_user_id: v.optional_text("external_user_id", &req.external_user_id, MAX_FILTER),
                provider: v.optional_text("provider", &req.provider, MAX_FILTER),
                state: match req.state {
                    0 => None,
                    value => enum_field::<pb::ConnectionState, ConnectionState>("state", value)
                        .map_err(|_| v.reject("state", format!("{value} is not a valid ConnectionState")))
                        .ok(),
                },
            };
            let size = v.page_size(req.page_size);
            v.finish()?;
            let scope = format!("connections/{:?}/{:?}/{:?}", filter.external_user_id, filter.provider, filter.state);
            let page_request = page(&self.app, &scope, size, &req.page_token)?;
            let connections = self.app.list_connections(&caller, &filter, &page_request).await?;
            Ok(pb::ListConnectionsResponse {
                next_page_token: next_page_token(&self.app, &scope, &connections),
                connections: connections.items.iter().map(Into::into).collect(),
            })
        }
        .await;
        respond(&caller, result)
    }

    async fn refresh_connection(
        &self,
        request: Request<pb::RefreshConnectionRequest>,
    ) -> Result<Response<pb::RefreshConnectionResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let id = v.id("connection_id", &req.connection_id);
            v.request_id(&req.request_id);
            let products = v.products(&req.products);
            v.finish()?;
            let connection = self.app.refresh_connection(&caller, id, &products).await?;
            self.app.audit.record(&caller, AuditAction::Refresh, "connection", id).await;
            Ok(pb::RefreshConnectionResponse { connection: Some((&connection).into()) })
        }
        .await;
        respond(&caller, result)
    }

    async fn delete_connection(
        &self,
        request: Request<pb::DeleteConnectionRequest>,
    ) -> Result<Response<pb::DeleteConnectionResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let id = v.id("connection_id", &req.connection_id);
            v.request_id(&req.request_id);
            v.finish()?;
            let connection = self.app.delete_connection(&caller, id).await?;
            self.app.audit.record(&caller, AuditAction::Delete, "connection", id).await;
            Ok(pb::DeleteConnectionResponse { connection: Some((&connection).into()) })
        }
        .await;
        respond(&caller, result)
    }

    type WatchConnectionStream = ResponseStream<pb::WatchConnectionResponse>;

    async fn watch_connection(
        &self,
        request: Request<pb::WatchConnectionRequest>,
    ) -> Result<Response<Self::WatchConnectionStream>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let stream = async {
            let mut v = Validator::default();
            let id = v.id("connection_id", &req.connection_id);
            if req.after_event_id < 0 {
                v.reject("after_event_id", "must not be negative");
            }
            v.finish()?;
            // Existence is checked up front so a wrong id fails the call instead of idling.
            self.app.get_connection(&caller, id).await?;
            self.app.audit.record(&caller, AuditAction::Read, "connection", id).await;
            let filter = EventFilter { connection_id: Some(id), ..EventFilter::default() };
            self.app.watch_connections(&caller, filter, req.after_event_id)
        }
        .await
        .map_err(|error| fail(&caller, error))?;
        Ok(respond_stream(&caller, stream, |event| pb::WatchConnectionResponse { event: Some((&event).into()) }))
    }

    type WatchConnectionsStream = ResponseStream<pb::WatchConnectionsResponse>;

    async fn watch_connections(
        &self,
        request: Request<pb::WatchConnectionsRequest>,
    ) -> Result<Response<Self::WatchConnectionsStream>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let filter = {
            let mut v = Validator::default();
            let filter = EventFilter {
                connection_id: None,
                external_user_id: v.optional_text("external_user_id", &req.external_user_id, MAX_FILTER),
                provider: v.optional_text("provider", &req.provider, MAX_FILTER),
            };
            if req.after_event_id < 0 {
                v.reject("after_event_id", "must not be negative");
            }
            v.finish().map(|()| filter).map_err(|error| fail(&caller, error))?
        };
        let stream =
            self.app.watch_connections(&caller, filter, req.after_event_id).map_err(|error| fail(&caller, error))?;
        Ok(respond_stream(&caller, stream, |event| pb::WatchConnectionsResponse { event: Some((&event).into()) }))
    }

    async fn erase_end_user(
        &self,
        request: Request<pb::EraseEndUserRequest>,
    ) -> Result<Response<pb::EraseEndUserResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let user = v.text("external_user_id", &req.external_user_id, MAX_USER_ID);
            v.finish()?;
            // Audited as the erasure starts, so an interrupted one is on record too. The record
            // names the erasure's own id: the trail must not keep the user's.
            let erasure_id = uuid::Uuid::now_v7();
            self.app.audit.record(&caller, AuditAction::EraseEndUser, "end_user_erasure", erasure_id).await;
            let erasure = self.app.erase_end_user(&caller, erasure_id, &user).await?;
            let count = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
            Ok(pb::EraseEndUserResponse {
                connections_erased: count(erasure.connections),
                link_sessions_erased: count(erasure.link_sessions),
                public_tokens_erased: count(erasure.public_tokens),
                revocations_failed: count(erasure.revocations_failed),
                complete: erasure.complete,
                erasure_id: erasure.id.to_string(),
            })
        }
        .await;
        respond(&caller, result)
    }
}

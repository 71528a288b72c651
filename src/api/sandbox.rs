//! `linkgate.v1.SandboxService`, added to the server only while the sandbox provider is enabled.

use super::{Validator, caller, respond};
use crate::app::App;
use crate::domain::AuditAction;
use crate::pb::{self, sandbox_service_server::SandboxService};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The SandboxService implementation.
pub struct SandboxApi {
    app: Arc<App>,
}

impl SandboxApi {
    /// The service over `app`.
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl SandboxService for SandboxApi {
    async fn reset_login(
        &self,
        request: Request<pb::ResetLoginRequest>,
    ) -> Result<Response<pb::ResetLoginResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let id = v.id("connection_id", &req.connection_id);
            v.finish()?;
            let connection = self.app.reset_sandbox_login(&caller, id).await?;
            self.app.audit.record(&caller, AuditAction::SandboxControl, "connection", id).await;
            Ok(pb::ResetLoginResponse { connection: Some((&connection).into()) })
        }
        .await;
        respond(&caller, result)
    }

    async fn set_consent_expiry(
        &self,
        request: Request<pb::SetConsentExpiryRequest>,
    ) -> Result<Response<pb::SetConsentExpiryResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let id = v.id("connection_id", &req.connection_id);
            let expires_at = v.timestamp("consent_expires_at", req.consent_expires_at.as_ref());
            v.finish()?;
            let expires_at = expires_at.expect("validated");
            let connection = self.app.set_sandbox_consent_expiry(&caller, id, expires_at).await?;
            self.app.audit.record(&caller, AuditAction::SandboxControl, "connection", id).await;
            Ok(pb::SetConsentExpiryResponse { connection: Some((&connection).into()) })
        }
        .await;
        respond(&caller, result)
    }
}

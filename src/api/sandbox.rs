//! `linkgate.v1.SandboxService`, added to the server only while the sandbox provider is enabled.

use super::{Validator, caller, respond};
use crate::app::App;
use crate::app::sandbox::TransactionControl;
use crate::domain::{AuditAction, now};
use crate::pb::{self, sandbox_service_server::SandboxService};
use crate::providers::sandbox::{Failure, NewTransaction, TransactionChanges};
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

    async fn fail_next_refresh(
        &self,
        request: Request<pb::FailNextRefreshRequest>,
    ) -> Result<Response<pb::FailNextRefreshResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let id = v.id("connection_id", &req.connection_id);
            let failure = match pb::SandboxFailure::try_from(req.failure) {
                Ok(pb::SandboxFailure::InstitutionDown) => Some(Failure::InstitutionDown),
                Ok(pb::SandboxFailure::RateLimited) => Some(Failure::RateLimited),
                Ok(pb::SandboxFailure::ProviderError) => Some(Failure::ProviderError),
                Ok(pb::SandboxFailure::Unspecified) | Err(_) => {
                    v.violation("failure", "required: one of the SandboxFailure values");
                    None
                }
            };
            v.finish()?;
            let failure = failure.expect("validated");
            let connection = self.app.fail_next_sandbox_refresh(&caller, id, failure).await?;
            self.app.audit.record(&caller, AuditAction::SandboxControl, "connection", id).await;
            Ok(pb::FailNextRefreshResponse { connection: Some((&connection).into()) })
        }
        .await;
        respond(&caller, result)
    }

    async fn add_transaction(
        &self,
        request: Request<pb::AddTransactionRequest>,
    ) -> Result<Response<pb::AddTransactionResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let id = v.id("connection_id", &req.connection_id);
            let account_id = v.id("account_id", &req.account_id);
            let amount = v.amount("amount", &req.amount);
            if req.amount.is_empty() {
                v.violation("amount", "required");
            }
            let date = v.date("date", &req.date).unwrap_or_else(|| now().date_naive());
            let description = v.text("description", &req.description, 200);
            v.finish()?;
            let new = NewTransaction {
                account_id,
                amount: amount.expect("validated"),
                date,
                description,
                pending: req.pending,
            };
            let added = self.control(&caller, id, TransactionControl::Add(new)).await?;
            Ok(pb::AddTransactionResponse { transaction_id: added })
        }
        .await;
        respond(&caller, result)
    }

    async fn modify_transaction(
        &self,
        request: Request<pb::ModifyTransactionRequest>,
    ) -> Result<Response<pb::ModifyTransactionResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let id = v.id("connection_id", &req.connection_id);
            let transaction = v.id("transaction_id", &req.transaction_id);
            let changes = TransactionChanges {
                amount: req.amount.as_deref().and_then(|amount| required(&mut v, "amount", amount, Validator::amount)),
                date: req.date.as_deref().and_then(|date| required(&mut v, "date", date, Validator::date)),
                description: req.description.as_deref().map(|d| v.text("description", d, 200)),
            };
            if req.amount.is_none() && req.date.is_none() && req.description.is_none() {
                v.violation("amount", "set at least one of amount, date and description");
            }
            v.finish()?;
            self.control(&caller, id, TransactionControl::Modify { id: transaction, changes }).await?;
            Ok(pb::ModifyTransactionResponse {})
        }
        .await;
        respond(&caller, result)
    }

    async fn remove_transaction(
        &self,
        request: Request<pb::RemoveTransactionRequest>,
    ) -> Result<Response<pb::RemoveTransactionResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let id = v.id("connection_id", &req.connection_id);
            let transaction = v.id("transaction_id", &req.transaction_id);
            v.finish()?;
            self.control(&caller, id, TransactionControl::Remove { id: transaction }).await?;
            Ok(pb::RemoveTransactionResponse {})
        }
        .await;
        respond(&caller, result)
    }

    async fn post_transaction(
        &self,
        request: Request<pb::PostTransactionRequest>,
    ) -> Result<Response<pb::PostTransactionResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let id = v.id("connection_id", &req.connection_id);
            let transaction = v.id("transaction_id", &req.transaction_id);
            let date = v.date("date", &req.date).unwrap_or_else(|| now().date_naive());
            let amount = v.amount("amount", &req.amount);
            v.finish()?;
            let booked = self.control(&caller, id, TransactionControl::Post { id: transaction, date, amount }).await?;
            Ok(pb::PostTransactionResponse { transaction_id: booked })
        }
        .await;
        respond(&caller, result)
    }
}

impl SandboxApi {
    /// Runs a transaction control and audits it; the id of the transaction it made, if any.
    async fn control(
        &self,
        caller: &crate::app::Caller,
        id: uuid::Uuid,
        control: TransactionControl,
    ) -> crate::error::Result<String> {
        let made = self.app.change_sandbox_transactions(caller, id, control).await?;
        self.app.audit.record(caller, AuditAction::SandboxControl, "connection", id).await;
        Ok(made.map(|made| made.to_string()).unwrap_or_default())
    }
}

/// A value of an `optional` field that is set: empty is refused, anything else checked by
/// `check`.
fn required<T>(
    v: &mut Validator,
    field: &str,
    value: &str,
    check: impl FnOnce(&mut Validator, &str, &str) -> Option<T>,
) -> Option<T> {
    if value.is_empty() {
        v.violation(field, "must not be empty when set");
        return None;
    }
    check(v, field, value)
}

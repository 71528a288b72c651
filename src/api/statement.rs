//! `linkgate.v1.StatementService`.

use super::{Validator, caller, respond};
use crate::app::App;
use crate::app::reads::DataRequest;
use crate::domain::{Product, Statement};
use crate::pb::{self, statement_service_server::StatementService};
use crate::store::{DateRange, RecordKind};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The StatementService implementation.
pub struct StatementApi {
    app: Arc<App>,
}

impl StatementApi {
    /// The service over `app`.
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl StatementService for StatementApi {
    async fn list_statements(
        &self,
        request: Request<pb::ListStatementsRequest>,
    ) -> Result<Response<pb::ListStatementsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let data = DataRequest {
                connection_id: v.id("connection_id", &req.connection_id),
                parent_id: v.optional_id("account_id", &req.account_id),
                dates: DateRange::default(),
                page_size: v.page_size(req.page_size),
                page_token: req.page_token,
            };
            v.finish()?;
            let page =
                self.app.read_records::<Statement>(&caller, Product::Statements, RecordKind::Statement, data).await?;
            Ok(pb::ListStatementsResponse {
                statements: page.items.into_iter().map(Into::into).collect(),
                next_page_token: page.next_page_token,
            })
        }
        .await;
        respond(&caller, result)
    }
}

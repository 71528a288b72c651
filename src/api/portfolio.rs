//! `linkgate.v1.PortfolioService`.

use super::convert;
use super::{Validator, caller, respond};
use crate::app::App;
use crate::app::feed::SyncRequest;
use crate::app::reads::DataRequest;
use crate::domain::{Portfolio, PortfolioTransaction, Position, Product};
use crate::pb::{self, portfolio_service_server::PortfolioService};
use crate::store::{DateRange, RecordKind};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The PortfolioService implementation.
pub struct PortfolioApi {
    app: Arc<App>,
}

impl PortfolioApi {
    /// The service over `app`.
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl PortfolioService for PortfolioApi {
    async fn list_portfolios(
        &self,
        request: Request<pb::ListPortfoliosRequest>,
    ) -> Result<Response<pb::ListPortfoliosResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let data = DataRequest {
                connection_id: v.id("connection_id", &req.connection_id),
                parent_id: None,
                dates: DateRange::default(),
                page_size: v.page_size(req.page_size),
                page_token: req.page_token,
            };
            v.finish()?;
            let page =
                self.app.read_records::<Portfolio>(&caller, Product::Investments, RecordKind::Portfolio, data).await?;
            Ok(pb::ListPortfoliosResponse {
                portfolios: page.items.into_iter().map(|p| convert::portfolio(&req.connection_id, p)).collect(),
                next_page_token: page.next_page_token,
            })
        }
        .await;
        respond(&caller, result)
    }

    async fn list_portfolio_positions(
        &self,
        request: Request<pb::ListPortfolioPositionsRequest>,
    ) -> Result<Response<pb::ListPortfolioPositionsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let data = DataRequest {
                connection_id: v.id("connection_id", &req.connection_id),
                parent_id: v.optional_id("portfolio_id", &req.portfolio_id),
                dates: DateRange::default(),
                page_size: v.page_size(req.page_size),
                page_token: req.page_token,
            };
            v.finish()?;
            let page =
                self.app.read_records::<Position>(&caller, Product::Investments, RecordKind::Position, data).await?;
            Ok(pb::ListPortfolioPositionsResponse {
                positions: page.items.into_iter().map(Into::into).collect(),
                next_page_token: page.next_page_token,
            })
        }
        .await;
        respond(&caller, result)
    }

    async fn list_portfolio_transactions(
        &self,
        request: Request<pb::ListPortfolioTransactionsRequest>,
    ) -> Result<Response<pb::ListPortfolioTransactionsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let data = DataRequest {
                connection_id: v.id("connection_id", &req.connection_id),
                parent_id: v.optional_id("portfolio_id", &req.portfolio_id),
                dates: v.date_range(&req.start_date, &req.end_date),
                page_size: v.page_size(req.page_size),
                page_token: req.page_token,
            };
            v.finish()?;
            let page = self
                .app
                .read_records::<PortfolioTransaction>(
                    &caller,
                    Product::Investments,
                    RecordKind::PortfolioTransaction,
                    data,
                )
                .await?;
            Ok(pb::ListPortfolioTransactionsResponse {
                transactions: page.items.into_iter().map(Into::into).collect(),
                next_page_token: page.next_page_token,
            })
        }
        .await;
        respond(&caller, result)
    }

    async fn sync_portfolio_transactions(
        &self,
        request: Request<pb::SyncPortfolioTransactionsRequest>,
    ) -> Result<Response<pb::SyncPortfolioTransactionsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let sync = SyncRequest {
                connection_id: v.id("connection_id", &req.connection_id),
                parent_id: v.optional_id("portfolio_id", &req.portfolio_id),
                cursor: req.cursor,
                page_size: v.page_size(req.page_size),
            };
            v.finish()?;
            let page = self
                .app
                .sync_records::<PortfolioTransaction>(
                    &caller,
                    Product::Investments,
                    RecordKind::PortfolioTransaction,
                    sync,
                )
                .await?;
            Ok(pb::SyncPortfolioTransactionsResponse {
                added: page.added.into_iter().map(Into::into).collect(),
                modified: page.modified.into_iter().map(Into::into).collect(),
                removed: convert::ids(&page.removed),
                next_cursor: page.next_cursor,
                has_more: page.has_more,
            })
        }
        .await;
        respond(&caller, result)
    }
}

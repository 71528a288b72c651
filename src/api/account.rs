//! `linkgate.v1.AccountService`. ListAccountNumbers and ListAccountOwners need API-key scopes of
//! their own, which the authentication layer checks before a call gets here.

use super::convert;
use super::{Validator, caller, respond};
use crate::app::App;
use crate::app::account_details::DetailRequest;
use crate::app::feed::SyncRequest;
use crate::app::reads::DataRequest;
use crate::domain::{Account, Product, Transaction};
use crate::pb::{self, account_service_server::AccountService};
use crate::store::{DateRange, RecordKind};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The AccountService implementation.
pub struct AccountApi {
    app: Arc<App>,
}

impl AccountApi {
    /// The service over `app`.
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl AccountService for AccountApi {
    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
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
            let page = self.app.read_records::<Account>(&caller, Product::Accounts, RecordKind::Account, data).await?;
            Ok(pb::ListAccountsResponse {
                accounts: page.items.into_iter().map(|a| convert::account(&req.connection_id, a)).collect(),
                next_page_token: page.next_page_token,
            })
        }
        .await;
        respond(&caller, result)
    }

    async fn list_account_transactions(
        &self,
        request: Request<pb::ListAccountTransactionsRequest>,
    ) -> Result<Response<pb::ListAccountTransactionsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let data = DataRequest {
                connection_id: v.id("connection_id", &req.connection_id),
                parent_id: v.optional_id("account_id", &req.account_id),
                dates: v.date_range(&req.start_date, &req.end_date),
                page_size: v.page_size(req.page_size),
                page_token: req.page_token,
            };
            v.finish()?;
            let page = self
                .app
                .read_records::<Transaction>(&caller, Product::Transactions, RecordKind::Transaction, data)
                .await?;
            Ok(pb::ListAccountTransactionsResponse {
                transactions: page.items.into_iter().map(Into::into).collect(),
                next_page_token: page.next_page_token,
            })
        }
        .await;
        respond(&caller, result)
    }

    async fn sync_account_transactions(
        &self,
        request: Request<pb::SyncAccountTransactionsRequest>,
    ) -> Result<Response<pb::SyncAccountTransactionsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let mut v = Validator::default();
            let sync = SyncRequest {
                connection_id: v.id("connection_id", &req.connection_id),
                parent_id: v.optional_id("account_id", &req.account_id),
                cursor: req.cursor,
                page_size: v.page_size(req.page_size),
            };
            v.finish()?;
            let page = self
                .app
                .sync_records::<Transaction>(&caller, Product::Transactions, RecordKind::Transaction, sync)
                .await?;
            Ok(pb::SyncAccountTransactionsResponse {
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

    async fn list_account_numbers(
        &self,
        request: Request<pb::ListAccountNumbersRequest>,
    ) -> Result<Response<pb::ListAccountNumbersResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let details = detail_request(&req.connection_id, &req.account_id, req.page_size, req.page_token)?;
            let page = self.app.read_account_numbers(&caller, details).await?;
            Ok(pb::ListAccountNumbersResponse {
                account_numbers: page.items.into_iter().map(Into::into).collect(),
                next_page_token: page.next_page_token,
            })
        }
        .await;
        respond(&caller, result)
    }

    async fn list_account_owners(
        &self,
        request: Request<pb::ListAccountOwnersRequest>,
    ) -> Result<Response<pb::ListAccountOwnersResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let result = async {
            let details = detail_request(&req.connection_id, &req.account_id, req.page_size, req.page_token)?;
            let page = self.app.read_account_owners(&caller, details).await?;
            Ok(pb::ListAccountOwnersResponse {
                account_owners: page.items.into_iter().map(Into::into).collect(),
                next_page_token: page.next_page_token,
            })
        }
        .await;
        respond(&caller, result)
    }
}

/// The read of account details that ListAccountNumbers and ListAccountOwners ask for alike.
fn detail_request(
    connection_id: &str,
    account_id: &str,
    page_size: i32,
    page_token: String,
) -> crate::error::Result<DetailRequest> {
    let mut v = Validator::default();
    let request = DetailRequest {
        connection_id: v.id("connection_id", connection_id),
        account_id: v.optional_id("account_id", account_id),
        page_size: v.page_size(page_size),
        page_token,
    };
    v.finish()?;
    Ok(request)
}

//! The whole sandbox flow, through the streams, on both backends.

use crate::support::server::{PATIENCE, spawn_app};
use crate::support::status::assert_error;
use linkgate::pb;
use std::collections::HashSet;
use tokio_stream::StreamExt;

on_both_backends! {
    async fn the_sandbox_flow_runs_end_to_end_through_the_streams(backend: Backend) {
        let mut app = spawn_app(backend).await;

        // Link with MFA, watching the session from the start.
        let session = app.create_session("ins_sandbox_bank", "user-7").await;
        assert_eq!(session.state(), pb::LinkSessionState::Created);
        let mut session_stream = app
            .link
            .watch_link_session(pb::WatchLinkSessionRequest { link_session_id: session.id.clone() })
            .await
            .unwrap()
            .into_inner();
        let asked = app.submit(&session.id, "user_mfa", "pass_good").await.unwrap();
        assert_eq!(asked.state(), pb::LinkSessionState::MfaRequired);
        assert!(!asked.mfa_question.is_empty());
        let answered = app
            .link
            .answer_mfa(pb::AnswerMfaRequest { link_session_id: session.id.clone(), answer: "1234".into(), ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .link_session
            .unwrap();
        assert_eq!(answered.state(), pb::LinkSessionState::Succeeded);

        let mut seen = Vec::new();
        let public_token = tokio::time::timeout(PATIENCE, async {
            while let Some(message) = session_stream.next().await {
                let s = message.unwrap().link_session.unwrap();
                seen.push(s.state());
                if s.state() == pb::LinkSessionState::Succeeded {
                    return s.public_token;
                }
            }
            panic!("session stream ended early: {seen:?}");
        })
        .await
        .expect("session succeeded in time");
        assert_eq!(public_token, answered.public_token);
        assert!(session_stream.next().await.is_none(), "the session stream ends after a terminal state");
        assert_eq!(seen.first(), Some(&pb::LinkSessionState::Created));
        assert!(seen.contains(&pb::LinkSessionState::MfaRequired), "states seen: {seen:?}");

        // The token is listed until it is exchanged.
        let listed = app.link.list_public_tokens(pb::ListPublicTokensRequest::default()).await.unwrap().into_inner();
        assert_eq!(listed.public_tokens.len(), 1);
        assert_eq!(listed.public_tokens[0].public_token, public_token);
        assert_eq!(listed.public_tokens[0].external_user_id, "user-7");

        let connection = app.exchange("sandbox", &public_token).await.unwrap();
        assert_eq!(connection.state(), pb::ConnectionState::Pending);
        assert_eq!(connection.external_user_id, "user-7");
        assert!(connection.products.iter().all(|p| p.state() == pb::ProductState::NotReady));
        let listed = app.link.list_public_tokens(pb::ListPublicTokensRequest::default()).await.unwrap().into_inner();
        assert!(listed.public_tokens.is_empty(), "an exchanged token is no longer listed");

        // The connection stream shows PENDING, then READY with every product ready.
        let mut events = app
            .connections
            .watch_connection(pb::WatchConnectionRequest { connection_id: connection.id.clone(), after_event_id: 0 })
            .await
            .unwrap()
            .into_inner();
        let mut states = Vec::new();
        let ready = tokio::time::timeout(PATIENCE, async {
            while let Some(message) = events.next().await {
                let event = message.unwrap().event.unwrap();
                let c = event.connection.unwrap();
                states.push(c.state());
                if c.state() == pb::ConnectionState::Ready {
                    return c;
                }
            }
            panic!("stream ended: {states:?}");
        })
        .await
        .expect("connection ready in time");
        assert_eq!(states.first(), Some(&pb::ConnectionState::Pending));
        assert!(ready.products.iter().all(|p| p.state() == pb::ProductState::Ready && p.refreshed_at.is_some()));
        assert!(ready.last_synced_at.is_some());

        // Accounts, then every transaction page by page: each once, newest first.
        let accounts = app
            .accounts
            .list_accounts(pb::ListAccountsRequest { connection_id: connection.id.clone(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(accounts.accounts.len(), 2);
        assert!(accounts.next_page_token.is_empty());
        let names: Vec<_> = accounts.accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["Everyday Checking", "Rainy Day Savings"], "accounts are ordered by name");
        let everything = app
            .accounts
            .list_account_transactions(pb::ListAccountTransactionsRequest {
                connection_id: connection.id.clone(),
                page_size: 500,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .transactions;
        let mut paged = Vec::new();
        let mut token = String::new();
        loop {
            let page = app
                .accounts
                .list_account_transactions(pb::ListAccountTransactionsRequest {
                    connection_id: connection.id.clone(),
                    page_size: 7,
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert!(page.transactions.len() <= 7);
            paged.extend(page.transactions);
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(paged, everything, "paging yields the same transactions in the same order");
        assert_eq!(paged.iter().map(|t| &t.id).collect::<HashSet<_>>().len(), paged.len(), "no duplicates");
        assert!(paged.windows(2).all(|w| w[0].date >= w[1].date), "newest first");
        assert!(paged.iter().all(|t| t.amount.as_ref().unwrap().amount.parse::<f64>().is_ok()), "decimal strings");

        // Deleting ends the watch with DELETED, and the data is gone.
        let mut watch = app
            .connections
            .watch_connection(pb::WatchConnectionRequest { connection_id: connection.id.clone(), after_event_id: 0 })
            .await
            .unwrap()
            .into_inner();
        let deleted = app
            .connections
            .delete_connection(pb::DeleteConnectionRequest { connection_id: connection.id.clone(), ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .connection
            .unwrap();
        assert_eq!(deleted.state(), pb::ConnectionState::Deleted);
        let last = tokio::time::timeout(PATIENCE, async {
            let mut last = None;
            while let Some(message) = watch.next().await {
                last = Some(message.unwrap().event.unwrap().connection.unwrap().state());
            }
            last
        })
        .await
        .expect("stream ends after deletion");
        assert_eq!(last, Some(pb::ConnectionState::Deleted));
        let read = app
            .accounts
            .list_accounts(pb::ListAccountsRequest { connection_id: connection.id.clone(), ..Default::default() })
            .await
            .unwrap_err();
        assert_error("read after delete", &read, tonic::Code::FailedPrecondition, "CONNECTION_DELETED");
    }
}

on_both_backends! {
    async fn broker_and_utility_data_is_served_by_their_services(backend: Backend) {
        let mut app = spawn_app(backend).await;

        let broker = app.ready_connection("ins_sandbox_broker", "user-b").await;
        let portfolios = app
            .portfolios
            .list_portfolios(pb::ListPortfoliosRequest { connection_id: broker.id.clone(), ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .portfolios;
        assert_eq!(portfolios.len(), 1);
        let portfolio = &portfolios[0];
        let positions = app
            .portfolios
            .list_portfolio_positions(pb::ListPortfolioPositionsRequest {
                connection_id: broker.id.clone(),
                portfolio_id: portfolio.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .positions;
        assert_eq!(positions.len(), 5);
        assert!(positions.iter().all(|p| !p.quantity.is_empty() && p.instrument.as_ref().is_some_and(|i| !i.isin.is_empty())));
        let cash_accounts = app
            .accounts
            .list_accounts(pb::ListAccountsRequest { connection_id: broker.id.clone(), ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .accounts;
        assert_eq!(cash_accounts.len(), 1);
        assert_eq!(cash_accounts[0].r#type(), pb::AccountType::BrokerageCash);
        assert_eq!(portfolio.cash_account_id, cash_accounts[0].id);

        let all = app
            .portfolios
            .list_portfolio_transactions(pb::ListPortfolioTransactionsRequest {
                connection_id: broker.id.clone(),
                portfolio_id: portfolio.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .transactions;
        let newest = all.first().unwrap().date.clone();
        let only_newest_day = app
            .portfolios
            .list_portfolio_transactions(pb::ListPortfolioTransactionsRequest {
                connection_id: broker.id.clone(),
                portfolio_id: portfolio.id.clone(),
                start_date: newest.clone(),
                end_date: newest.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .transactions;
        assert!(!only_newest_day.is_empty());
        assert!(only_newest_day.iter().all(|t| t.date == newest), "date bounds are inclusive and exact");
        assert!(only_newest_day.len() < all.len());

        let utility = app.ready_connection("ins_sandbox_utility", "user-u").await;
        let statements = app
            .statements
            .list_statements(pb::ListStatementsRequest { connection_id: utility.id.clone(), page_size: 5, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(statements.statements.len(), 5);
        assert!(!statements.next_page_token.is_empty());
        assert!(statements.statements.windows(2).all(|w| w[0].period_start > w[1].period_start));
        assert!(statements.statements.iter().all(|s| s.usage.as_ref().is_some_and(|u| u.unit == "kWh")));

        // A bank connection links no statements: that is a capability, not a readiness question.
        let unsupported = app
            .statements
            .list_statements(pb::ListStatementsRequest { connection_id: broker.id.clone(), ..Default::default() })
            .await
            .unwrap_err();
        assert_error("statements of a broker", &unsupported, tonic::Code::FailedPrecondition, "CAPABILITY_UNSUPPORTED");
    }
}

on_both_backends! {
    async fn a_broker_connection_is_read_whole_without_naming_a_portfolio(backend: Backend) {
        let mut app = spawn_app(backend).await;
        let broker = app.ready_connection("ins_sandbox_broker", "user-w").await;
        let portfolio_id = app
            .portfolios
            .list_portfolios(pb::ListPortfoliosRequest { connection_id: broker.id.clone(), ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .portfolios[0]
            .id
            .clone();
        let positions = |portfolio_id: &str, page_size: i32, page_token: String| pb::ListPortfolioPositionsRequest {
            connection_id: broker.id.clone(),
            portfolio_id: portfolio_id.into(),
            page_size,
            page_token,
        };
        let trades = |portfolio_id: &str, start_date: &str, page_token: String| pb::ListPortfolioTransactionsRequest {
            connection_id: broker.id.clone(),
            portfolio_id: portfolio_id.into(),
            start_date: start_date.into(),
            page_size: 3,
            page_token,
            ..Default::default()
        };

        // Every portfolio's positions, by instrument name, in pages.
        let of_one = app.portfolios.list_portfolio_positions(positions(&portfolio_id, 500, String::new())).await.unwrap().into_inner();
        let mut whole = Vec::new();
        let mut token = String::new();
        loop {
            let page = app.portfolios.list_portfolio_positions(positions("", 2, token)).await.expect("no portfolio named").into_inner();
            whole.extend(page.positions);
            token = page.next_page_token;
            if token.is_empty() {
                break;
            }
        }
        assert_eq!(whole, of_one.positions, "the broker's one portfolio holds every position");
        assert!(whole.len() > 2, "more than one page");

        // Every portfolio's transactions, newest first, with the date filter, in pages.
        let all_of_one = app.portfolios.list_portfolio_transactions(trades(&portfolio_id, "", String::new())).await.unwrap().into_inner();
        let first = app.portfolios.list_portfolio_transactions(trades("", "", String::new())).await.unwrap().into_inner();
        assert_eq!(first.transactions, all_of_one.transactions, "the same first page");
        assert!(!first.next_page_token.is_empty());
        let status = app.portfolios.list_portfolio_transactions(trades(&portfolio_id, "", first.next_page_token.clone())).await.unwrap_err();
        assert_error("a token of the whole read for one portfolio", &status, tonic::Code::InvalidArgument, "INVALID_PAGE_TOKEN");
        let second = app.portfolios.list_portfolio_transactions(trades("", "", first.next_page_token)).await.unwrap().into_inner();
        assert!(second.transactions.first().unwrap().date <= first.transactions.last().unwrap().date, "newest first across pages");
        let newest = first.transactions[0].date.clone();
        let recent = app.portfolios.list_portfolio_transactions(trades("", &newest, String::new())).await.unwrap().into_inner();
        assert!(!recent.transactions.is_empty() && recent.transactions.iter().all(|t| t.date == newest));

        // A portfolio that is not the connection's, or no id at all, is still refused.
        let status = app.portfolios.list_portfolio_positions(positions(&uuid::Uuid::now_v7().to_string(), 10, String::new())).await.unwrap_err();
        assert_error("another portfolio", &status, tonic::Code::NotFound, "PORTFOLIO_NOT_FOUND");
        let status = app.portfolios.list_portfolio_transactions(trades("not-a-uuid", "", String::new())).await.unwrap_err();
        assert_error("a malformed portfolio id", &status, tonic::Code::InvalidArgument, "INVALID_FIELD");
    }
}

//! A caller of the change feed (SyncAccountTransactions), as tests play one.

use super::server::TestApp;
use linkgate::pb;
use std::collections::BTreeMap;

/// A caller's copy of a connection's transactions, kept current through the feed. Applying a
/// page checks the feed's promises: an added transaction is new to the copy, a modified or
/// removed one is in it.
#[derive(Default)]
pub struct FeedCopy {
    /// The cursor to sync from next.
    pub cursor: String,
    /// The transactions, by id.
    pub transactions: BTreeMap<String, pb::Transaction>,
}

impl FeedCopy {
    /// Syncs one page; returns it.
    pub async fn page(
        &mut self,
        app: &mut TestApp,
        connection_id: &str,
        page_size: i32,
    ) -> pb::SyncAccountTransactionsResponse {
        let request = pb::SyncAccountTransactionsRequest {
            connection_id: connection_id.into(),
            cursor: self.cursor.clone(),
            page_size,
            ..Default::default()
        };
        let page = app.accounts.sync_account_transactions(request).await.expect("sync").into_inner();
        for id in &page.removed {
            assert!(self.transactions.remove(id).is_some(), "removed {id}, which the copy never had");
        }
        for added in &page.added {
            let before = self.transactions.insert(added.id.clone(), added.clone());
            assert!(before.is_none(), "added {} twice", added.id);
        }
        for modified in &page.modified {
            let before = self.transactions.insert(modified.id.clone(), modified.clone());
            assert!(before.is_some(), "modified {}, which the copy never had", modified.id);
        }
        self.cursor = page.next_cursor.clone();
        page
    }

    /// Syncs until no more changes wait; returns how many pages it took.
    pub async fn drain(&mut self, app: &mut TestApp, connection_id: &str, page_size: i32) -> usize {
        for pages in 1..=1000 {
            if !self.page(app, connection_id, page_size).await.has_more {
                return pages;
            }
        }
        panic!("the feed did not end within 1000 pages");
    }
}

/// Every transaction of a connection as ListAccountTransactions serves it, by id.
pub async fn listed(app: &mut TestApp, connection_id: &str) -> BTreeMap<String, pb::Transaction> {
    let mut all = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListAccountTransactionsRequest {
            connection_id: connection_id.into(),
            page_size: 500,
            page_token,
            ..Default::default()
        };
        let page = app.accounts.list_account_transactions(request).await.unwrap().into_inner();
        all.extend(page.transactions.into_iter().map(|t| (t.id.clone(), t)));
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

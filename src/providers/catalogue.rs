//! Institution catalogues cached per provider, for ListInstitutions and institution lookups.
//!
//! A provider either lists its whole catalogue (Vumi's entities, MoneyKit's institutions), which
//! linkgate then searches itself, or searches it upstream by a term (Deck's sources). Either way
//! each list fetched upstream is kept for the provider's TTL, so repeated queries, paging and a
//! user's typing are answered from memory, and one fetch at a time runs per provider: callers
//! that arrive meanwhile wait for it and share its answer instead of asking again.

use super::{Institution, ProviderResult};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Lists kept at most; past it the expired ones go, then all (a bound on distinct search terms).
const LISTS_KEPT: usize = 1024;

/// One list and when it was fetched.
type Kept = (Instant, Arc<[Institution]>);

/// A provider's cached institution lists, by the key the adapter fetched each under.
pub struct Catalogue {
    ttl: Duration,
    lists: tokio::sync::Mutex<HashMap<String, Kept>>,
}

impl Catalogue {
    /// A catalogue whose lists are reused for `ttl` (zero: never reused).
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, lists: tokio::sync::Mutex::default() }
    }

    /// The list kept under `key` while it is fresh, without fetching it.
    pub fn fresh(&self, key: &str) -> Option<Arc<[Institution]>> {
        let lists = self.lists.try_lock().ok()?;
        lists.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, list)| list.clone())
    }

    /// The list kept under `key`, or what `fetch` answers, ordered by name then id and kept for
    /// the TTL. A failed fetch is not kept: the next caller asks again.
    pub async fn list(
        &self,
        key: &str,
        fetch: impl Future<Output = ProviderResult<Vec<Institution>>>,
    ) -> ProviderResult<Arc<[Institution]>> {
        // Held across the fetch: concurrent callers wait for it rather than fetch the same list.
        let mut lists = self.lists.lock().await;
        if let Some((at, list)) = lists.get(key)
            && at.elapsed() < self.ttl
        {
            return Ok(list.clone());
        }
        let mut fetched = fetch.await?;
        fetched.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        let list: Arc<[Institution]> = fetched.into();
        if lists.len() >= LISTS_KEPT {
            lists.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if lists.len() >= LISTS_KEPT {
                lists.clear();
            }
        }
        lists.insert(key.to_owned(), (Instant::now(), list.clone()));
        Ok(list)
    }
}

/// The institutions of `list` whose name contains `query` (matched case-insensitively; empty
/// matches all), in the list's order.
pub fn matching(list: &[Institution], query: &str) -> Vec<Institution> {
    let query = query.to_lowercase();
    list.iter().filter(|i| query.is_empty() || i.name.to_lowercase().contains(&query)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::InstitutionKind;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn institution(id: &str, name: &str) -> Institution {
        Institution {
            id: id.to_owned(),
            name: name.to_owned(),
            kind: InstitutionKind::Bank,
            products: Vec::new(),
            credential_fields: Vec::new(),
            country_codes: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_list_is_fetched_once_per_ttl_ordered_and_searched_by_name() {
        let catalogue = Catalogue::new(Duration::from_secs(60));
        let fetches = AtomicU32::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok(vec![institution("b", "Zeta Bank"), institution("a", "alpha bank"), institution("c", "Alpha Bank")])
        };
        let first = catalogue.list("", fetch()).await.unwrap();
        let again = catalogue.list("", fetch()).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "the second list came from memory");
        assert!(Arc::ptr_eq(&first, &again));
        let names: Vec<&str> = first.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["Alpha Bank", "Zeta Bank", "alpha bank"], "ordered by name, then id");
        let found: Vec<String> = matching(&first, "ALPHA").into_iter().map(|i| i.id).collect();
        assert_eq!(found, ["c", "a"]);
        assert_eq!(matching(&first, "").len(), 3);

        catalogue.list("other", fetch()).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 2, "each key is a list of its own");
    }

    #[tokio::test]
    async fn failures_are_not_kept_and_a_zero_ttl_keeps_nothing() {
        let catalogue = Catalogue::new(Duration::ZERO);
        let failed =
            catalogue.list("", async { Err(crate::providers::ProviderError::Unavailable { retry_after: None }) });
        assert!(failed.await.is_err());
        let fetches = AtomicU32::new(0);
        for _ in 0..2 {
            catalogue
                .list("", async {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    Ok(Vec::new())
                })
                .await
                .unwrap();
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }
}

//! This replica's copies of connections recently read, so GetConnection is answered from memory,
//! and with each copy the first pages of its data recently listed, so the data reads callers make
//! most (ListAccounts, the newest transactions) are too. A connection's data changes only in the
//! transaction that appends one of its events (an import is saved with its STATE_CHANGED and
//! DATA_UPDATED), so the rules that keep a copy current keep its pages current.
//!
//! A copy is dropped the moment the event log says its connection changed: the event tailer
//! drops it when it delivers the event, which covers every replica's writes, and this replica's
//! own writers drop it right after they commit, so a caller reads its own writes at once. A copy
//! is only trusted while the tailer keeps reading the log: if the tailer has not read it
//! to its end for [`FRESHNESS`] recheck intervals (the database is away), reads go to the
//! store. Another replica's write therefore shows here after the announcement reaches this
//! replica's tailer (milliseconds), and at the latest after one recheck interval.
//!
//! A read that misses fills the copy only if nothing was dropped while it was reading the store;
//! otherwise the snapshot it read may predate a change the tailer already delivered. A page is
//! kept only beside a copy still held, under the same rule, and goes with it.
//!
//! Memory: at most [`CAPACITY`] copies, [`PAGES_PER_CONNECTION`] pages each, and
//! [`PAGE_RECORDS`] records in all pages together; a fill past a bound evicts another entry.

use crate::domain::{Connection, TenantId};
use crate::store::{DateRange, RecordKind};
use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Connections kept per replica; at this size a fill evicts another copy.
const CAPACITY: usize = 100_000;
/// Recheck intervals the tailer may go without reading the log before copies stop being trusted.
const FRESHNESS: u32 = 3;
/// First pages kept per connection copy (distinct listings: kind, parent, dates, page size).
pub const PAGES_PER_CONNECTION: usize = 8;
/// Records kept in all pages together (a transaction is about a kilobyte in memory, so about
/// 50 MiB at most).
pub const PAGE_RECORDS: usize = 50_000;

/// The replica's connection copies. Cheap to clone: clones share one cache.
#[derive(Clone, Default)]
pub struct ConnectionCache {
    inner: Arc<Inner>,
}

struct Inner {
    copies: Mutex<Copies>,
    /// Until when copies are trusted, in milliseconds since `started`; 0 until the tailer's first
    /// read.
    trusted_until: AtomicU64,
    started: Instant,
}

#[derive(Default)]
struct Copies {
    by_id: HashMap<Uuid, Copy>,
    /// Bumped by every drop; a fill that saw another value would store a snapshot a drop
    /// meant to remove.
    generation: u64,
    /// Records held in pages, across copies.
    page_records: usize,
}

/// A connection and the first pages of its data listed since it was read.
struct Copy {
    connection: Arc<Connection>,
    pages: HashMap<PageKey, CachedPage>,
}

/// One listing's first page: everything that shapes it but the (absent) page token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    /// Kind of record.
    pub kind: RecordKind,
    /// Only children of this account or portfolio.
    pub parent_id: Option<Uuid>,
    /// Date bounds.
    pub dates: DateRange,
    /// Page size.
    pub page_size: usize,
}

/// A page as the reads module built it (its type is the record type's page), and its size.
#[derive(Clone)]
pub struct CachedPage {
    /// The page.
    pub page: Arc<dyn Any + Send + Sync>,
    /// Records in it, counted against [`PAGE_RECORDS`].
    pub records: usize,
}

impl std::fmt::Debug for CachedPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedPage").field("records", &self.records).finish_non_exhaustive()
    }
}

/// Taken before a read that missed; hands the snapshot read to [`ConnectionCache::fill`].
pub struct FillTicket {
    generation: u64,
}

impl Default for Inner {
    fn default() -> Self {
        Self { copies: Mutex::default(), trusted_until: AtomicU64::new(0), started: Instant::now() }
    }
}

impl ConnectionCache {
    /// The tenant's connection `id` from memory, or the ticket to fill it after reading the store.
    pub fn get(&self, tenant: TenantId, id: Uuid) -> Result<Arc<Connection>, FillTicket> {
        let copies = self.inner.copies.lock().expect("connection cache poisoned");
        let ticket = FillTicket { generation: copies.generation };
        if !self.trusted() {
            return Err(ticket);
        }
        match copies.by_id.get(&id) {
            // Another tenant asking for this id is told what the store tells it: not found.
            Some(copy) if copy.connection.tenant_id == tenant => Ok(copy.connection.clone()),
            _ => Err(ticket),
        }
    }

    /// The first page `key` of the tenant's connection `id` from memory, or the ticket to keep
    /// it after reading the store.
    pub fn page(&self, tenant: TenantId, id: Uuid, key: &PageKey) -> Result<CachedPage, FillTicket> {
        let copies = self.inner.copies.lock().expect("connection cache poisoned");
        let ticket = FillTicket { generation: copies.generation };
        if !self.trusted() {
            return Err(ticket);
        }
        match copies.by_id.get(&id) {
            Some(copy) if copy.connection.tenant_id == tenant => copy.pages.get(key).cloned().ok_or(ticket),
            _ => Err(ticket),
        }
    }

    /// Keeps `page`, read from the store after `ticket` was taken, beside connection `id`'s copy,
    /// unless a change was dropped meanwhile or the copy is gone.
    pub fn fill_page(&self, ticket: FillTicket, id: Uuid, key: PageKey, page: CachedPage) {
        let mut guard = self.inner.copies.lock().expect("connection cache poisoned");
        let copies = &mut *guard;
        if copies.generation != ticket.generation || page.records > PAGE_RECORDS {
            return;
        }
        while copies.page_records + page.records > PAGE_RECORDS {
            let Some(evicted) = copies.by_id.values_mut().find_map(|copy| copy.take_a_page()) else { break };
            copies.page_records -= evicted.records;
        }
        let Some(copy) = copies.by_id.get_mut(&id) else { return };
        if copy.pages.len() >= PAGES_PER_CONNECTION
            && let Some(evicted) = copy.take_a_page()
        {
            copies.page_records -= evicted.records;
        }
        copies.page_records += page.records;
        if let Some(replaced) = copy.pages.insert(key, page) {
            copies.page_records -= replaced.records;
        }
    }

    /// Keeps `connection`, read from the store after `ticket` was taken, unless a change was
    /// dropped meanwhile.
    pub fn fill(&self, ticket: FillTicket, connection: Arc<Connection>) {
        let mut copies = self.inner.copies.lock().expect("connection cache poisoned");
        if copies.generation != ticket.generation {
            return;
        }
        if copies.by_id.len() >= CAPACITY
            && let Some(evicted) = copies.by_id.keys().next().copied()
        {
            copies.remove(evicted);
        }
        copies.remove(connection.id);
        copies.by_id.insert(connection.id, Copy { connection, pages: HashMap::new() });
    }

    /// Forgets connection `id` and its pages: it changed.
    pub fn drop_copy(&self, id: Uuid) {
        let mut copies = self.inner.copies.lock().expect("connection cache poisoned");
        copies.generation += 1;
        copies.remove(id);
    }

    /// Notes that the tailer, which re-reads the log at least every `recheck`, has just read it
    /// to its end.
    pub fn tailer_read(&self, recheck: Duration) {
        let until = self.inner.started.elapsed() + recheck * FRESHNESS;
        self.inner.trusted_until.store(until.as_millis() as u64, Ordering::Release);
    }

    /// Whether the tailer has read the log recently enough for copies to be current.
    fn trusted(&self) -> bool {
        (self.inner.started.elapsed().as_millis() as u64) < self.inner.trusted_until.load(Ordering::Acquire)
    }
}

impl Copies {
    fn remove(&mut self, id: Uuid) {
        if let Some(copy) = self.by_id.remove(&id) {
            self.page_records -= copy.pages.values().map(|p| p.records).sum::<usize>();
        }
    }
}

impl Copy {
    /// Removes one of its pages, if it has any.
    fn take_a_page(&mut self) -> Option<CachedPage> {
        let key = self.pages.keys().next()?.clone();
        self.pages.remove(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ConnectionState;

    fn connection(tenant: TenantId) -> Arc<Connection> {
        let at = crate::domain::now();
        Arc::new(Connection {
            id: Uuid::now_v7(),
            tenant_id: tenant,
            provider: "sandbox".into(),
            institution_id: "ins_1".into(),
            institution_name: "First Sandbox Bank".into(),
            external_user_id: "user-1".into(),
            state: ConnectionState::Ready,
            error: None,
            products: Vec::new(),
            created_at: at,
            updated_at: at,
            last_synced_at: Some(at),
            link_session_id: None,
            consent_expires_at: None,
            consent_warned_for: None,
            duplicate_of: None,
        })
    }

    fn fresh_cache() -> ConnectionCache {
        let cache = ConnectionCache::default();
        cache.tailer_read(Duration::from_secs(1));
        cache
    }

    #[test]
    fn a_filled_copy_is_served_to_its_tenant_only() {
        let cache = fresh_cache();
        let tenant = TenantId(Uuid::now_v7());
        let copy = connection(tenant);
        let ticket = cache.get(tenant, copy.id).unwrap_err();
        cache.fill(ticket, copy.clone());
        assert_eq!(cache.get(tenant, copy.id).ok().as_deref(), Some(&*copy));
        assert!(cache.get(TenantId(Uuid::now_v7()), copy.id).is_err());
    }

    #[test]
    fn a_fill_that_raced_a_change_is_not_kept() {
        let cache = fresh_cache();
        let tenant = TenantId(Uuid::now_v7());
        let copy = connection(tenant);
        let ticket = cache.get(tenant, copy.id).unwrap_err();
        // The change lands (and is dropped) while the miss reads the store.
        cache.drop_copy(copy.id);
        cache.fill(ticket, copy.clone());
        assert!(cache.get(tenant, copy.id).is_err());
    }

    #[test]
    fn a_change_drops_the_copy() {
        let cache = fresh_cache();
        let tenant = TenantId(Uuid::now_v7());
        let copy = connection(tenant);
        cache.fill(cache.get(tenant, copy.id).unwrap_err(), copy.clone());
        cache.drop_copy(copy.id);
        assert!(cache.get(tenant, copy.id).is_err());
    }

    fn key(page_size: usize) -> PageKey {
        PageKey { kind: RecordKind::Transaction, parent_id: None, dates: DateRange::default(), page_size }
    }

    fn page(records: usize) -> CachedPage {
        CachedPage { page: Arc::new(vec![0u8; records]), records }
    }

    /// A cache holding `copy` and, beside it, page `key` of `records` records.
    fn keep_page(cache: &ConnectionCache, copy: &Arc<Connection>, key: PageKey, records: usize) {
        if let Err(ticket) = cache.get(copy.tenant_id, copy.id) {
            cache.fill(ticket, copy.clone());
        }
        let ticket = cache.page(copy.tenant_id, copy.id, &key).expect_err("not kept yet");
        cache.fill_page(ticket, copy.id, key, page(records));
    }

    #[test]
    fn a_page_is_served_to_its_tenant_until_its_connection_changes() {
        let cache = fresh_cache();
        let tenant = TenantId(Uuid::now_v7());
        let copy = connection(tenant);
        keep_page(&cache, &copy, key(50), 3);
        assert_eq!(cache.page(tenant, copy.id, &key(50)).ok().map(|p| p.records), Some(3));
        assert!(cache.page(tenant, copy.id, &key(20)).is_err(), "another listing is another page");
        assert!(cache.page(TenantId(Uuid::now_v7()), copy.id, &key(50)).is_err());
        cache.drop_copy(copy.id);
        cache.fill(cache.get(tenant, copy.id).unwrap_err(), copy.clone());
        assert!(cache.page(tenant, copy.id, &key(50)).is_err(), "the change took the page with the copy");
    }

    #[test]
    fn a_page_is_kept_only_beside_a_copy_and_never_after_a_change_raced_it() {
        let cache = fresh_cache();
        let tenant = TenantId(Uuid::now_v7());
        let copy = connection(tenant);
        let ticket = cache.page(tenant, copy.id, &key(50)).unwrap_err();
        cache.fill_page(ticket, copy.id, key(50), page(1));
        cache.fill(cache.get(tenant, copy.id).unwrap_err(), copy.clone());
        assert!(cache.page(tenant, copy.id, &key(50)).is_err(), "no copy, no page");

        let ticket = cache.page(tenant, copy.id, &key(50)).unwrap_err();
        cache.drop_copy(Uuid::now_v7());
        cache.fill_page(ticket, copy.id, key(50), page(1));
        assert!(cache.page(tenant, copy.id, &key(50)).is_err(), "a change landed while the page was read");
    }

    #[test]
    fn pages_stay_within_their_bounds() {
        let cache = fresh_cache();
        let tenant = TenantId(Uuid::now_v7());
        let copy = connection(tenant);
        for size in 0..PAGES_PER_CONNECTION + 3 {
            keep_page(&cache, &copy, key(size + 1), 1);
        }
        let kept = (1..=PAGES_PER_CONNECTION + 3).filter(|size| cache.page(tenant, copy.id, &key(*size)).is_ok());
        assert_eq!(kept.count(), PAGES_PER_CONNECTION);

        let others: Vec<Arc<Connection>> = (0..3).map(|_| connection(tenant)).collect();
        for other in &others {
            keep_page(&cache, other, key(500), PAGE_RECORDS / 2);
        }
        let records = cache.inner.copies.lock().unwrap().page_records;
        assert!(records <= PAGE_RECORDS, "{records} records kept");
        assert!(cache.page(tenant, others[2].id, &key(500)).is_ok(), "the newest page is kept");
        let ticket = cache.page(tenant, copy.id, &key(999)).unwrap_err();
        cache.fill_page(ticket, copy.id, key(999), page(PAGE_RECORDS + 1));
        assert!(cache.page(tenant, copy.id, &key(999)).is_err(), "a page past the whole budget is not kept");
    }

    #[test]
    fn copies_are_not_trusted_until_the_tailer_reads_nor_once_it_stops() {
        let cache = ConnectionCache::default();
        let tenant = TenantId(Uuid::now_v7());
        let copy = connection(tenant);
        cache.fill(cache.get(tenant, copy.id).unwrap_err(), copy.clone());
        assert!(cache.get(tenant, copy.id).is_err(), "the tailer has not read the log yet");
        cache.tailer_read(Duration::from_millis(10));
        assert!(cache.get(tenant, copy.id).is_ok());
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get(tenant, copy.id).is_err(), "the tailer has been silent past 3 rechecks");
    }
}

//! This replica's copies of connections recently read, so GetConnection is answered from memory.
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
//! otherwise the snapshot it read may predate a change the tailer already delivered.

use crate::domain::{Connection, TenantId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Connections kept per replica; at this size a fill evicts another copy.
const CAPACITY: usize = 100_000;
/// Recheck intervals the tailer may go without reading the log before copies stop being trusted.
const FRESHNESS: u32 = 3;

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
    by_id: HashMap<Uuid, Arc<Connection>>,
    /// Bumped by every drop; a fill that saw another value would store a snapshot a drop
    /// meant to remove.
    generation: u64,
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
            Some(copy) if copy.tenant_id == tenant => Ok(copy.clone()),
            _ => Err(ticket),
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
            copies.by_id.remove(&evicted);
        }
        copies.by_id.insert(connection.id, connection);
    }

    /// Forgets connection `id`: it changed.
    pub fn drop_copy(&self, id: Uuid) {
        let mut copies = self.inner.copies.lock().expect("connection cache poisoned");
        copies.generation += 1;
        copies.by_id.remove(&id);
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

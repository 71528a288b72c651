//! Per-tenant limits: a token bucket for expensive calls and a cap on open watch streams, so one
//! tenant cannot starve the others or the providers.

use crate::domain::ErrorReason;
use crate::domain::TenantId;
use crate::error::Error;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Token buckets of expensive calls, one per tenant.
pub struct CallBudget {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<TenantId, (f64, Instant)>>,
}

impl CallBudget {
    /// `per_second` sustained, `burst` at once.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self { per_second: f64::from(per_second.max(1)), burst: f64::from(burst.max(1)), buckets: Mutex::default() }
    }

    /// Takes one call from the tenant's bucket, or says when one will be available.
    pub fn take(&self, tenant: TenantId) -> Result<(), Error> {
        let mut buckets = self.buckets.lock().expect("call budget poisoned");
        let now = Instant::now();
        let (tokens, last) = buckets.entry(tenant).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - *tokens) / self.per_second);
        crate::telemetry::metrics::metrics().rejections.with_label_values(&["call_budget"]).inc();
        Err(Error::new(ErrorReason::RateLimited, "this tenant's budget of expensive calls is spent; slow down")
            .retry_after(wait.max(Duration::from_millis(1))))
    }
}

/// Counts open watch streams, each tenant's and the replica's: a tenant may not crowd out the
/// others, and all tenants together may not hold more streams than the replica's memory bound
/// was sized for (see `crate::app::watch`).
pub struct StreamSlots {
    max_per_tenant: usize,
    max_total: usize,
    open: Arc<Mutex<OpenStreams>>,
}

#[derive(Default)]
struct OpenStreams {
    total: usize,
    by_tenant: HashMap<TenantId, usize>,
}

/// One open stream's slot; dropping it frees the slot.
pub struct StreamSlot {
    tenant: TenantId,
    open: Arc<Mutex<OpenStreams>>,
}

impl StreamSlots {
    /// At most `max_per_tenant` streams per tenant and `max_total` in all.
    pub fn new(max_per_tenant: usize, max_total: usize) -> Self {
        Self { max_per_tenant, max_total, open: Arc::default() }
    }

    /// A slot for a new stream of `tenant`, or STREAM_LIMIT_REACHED when the tenant or the
    /// replica is full. The replica's cap answers with the same reason: the caller's remedy is
    /// the same (close streams, or watch with filters), and another replica may have room.
    pub fn acquire(&self, tenant: TenantId) -> Result<StreamSlot, Error> {
        let mut open = self.open.lock().expect("stream slots poisoned");
        let refuse = |limit: &str, message: String| {
            crate::telemetry::metrics::metrics().rejections.with_label_values(&[limit]).inc();
            Err(Error::new(ErrorReason::StreamLimitReached, message))
        };
        if open.total >= self.max_total {
            return refuse(
                "stream_budget",
                format!("this replica already holds {} open watch streams", self.max_total),
            );
        }
        let count = open.by_tenant.entry(tenant).or_default();
        if *count >= self.max_per_tenant {
            return refuse("stream_cap", format!("this tenant already has {} open watch streams", self.max_per_tenant));
        }
        *count += 1;
        open.total += 1;
        crate::telemetry::metrics::metrics().open_streams.inc();
        Ok(StreamSlot { tenant, open: self.open.clone() })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        crate::telemetry::metrics::metrics().open_streams.dec();
        let mut open = self.open.lock().expect("stream slots poisoned");
        open.total -= 1;
        if let Some(count) = open.by_tenant.get_mut(&self.tenant) {
            *count -= 1;
            if *count == 0 {
                open.by_tenant.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_says_when_to_retry_and_refills() {
        let budget = CallBudget::new(1000, 2);
        let tenant = TenantId(uuid::Uuid::now_v7());
        budget.take(tenant).unwrap();
        budget.take(tenant).unwrap();
        let error = budget.take(tenant).unwrap_err();
        assert_eq!(error.reason(), ErrorReason::RateLimited);
        assert!(budget.take(TenantId(uuid::Uuid::now_v7())).is_ok(), "other tenants are unaffected");
        std::thread::sleep(Duration::from_millis(5));
        assert!(budget.take(tenant).is_ok(), "the bucket refills");
    }

    #[test]
    fn stream_slots_are_freed_when_dropped() {
        let slots = StreamSlots::new(1, 10);
        let tenant = TenantId::DEV;
        let first = slots.acquire(tenant).unwrap();
        assert_eq!(slots.acquire(tenant).err().map(|e| e.reason()), Some(ErrorReason::StreamLimitReached));
        drop(first);
        assert!(slots.acquire(tenant).is_ok());
    }

    #[test]
    fn the_replica_cap_holds_across_tenants_and_frees_with_the_slots() {
        let slots = StreamSlots::new(2, 3);
        let tenants: Vec<_> = (0..3).map(|_| TenantId(uuid::Uuid::now_v7())).collect();
        let held: Vec<_> = tenants.iter().map(|tenant| slots.acquire(*tenant).unwrap()).collect();
        let refused = slots.acquire(tenants[0]).err().expect("the replica is full");
        assert_eq!(refused.reason(), ErrorReason::StreamLimitReached);
        assert!(refused.to_string().contains("replica"), "{refused}");
        drop(held);
        assert!(slots.acquire(tenants[0]).is_ok(), "closed streams free the replica's slots");
    }
}

//! What an import changed: each record the provider served compared with the stored copy by
//! digest, the pending transactions that booked ones replace matched, the rows of the change log
//! the feed replays, and the counts a DATA_UPDATED event reports. Pure, so each backend's SQL
//! only loads the stored side ([`StoredDigest`]) and writes the [`ChangePlan`].
//!
//! Pending to booked: few providers say which pending transaction a booked one replaces (none of
//! those linkgate fronts today does; MoneyKit drops pending ones and serves booked ones under new
//! ids). Where the provider names it, that link stands. Otherwise a pending transaction that the
//! import drops is replaced by a booked transaction the import adds on the same account, in the
//! same currency, for the same amount, dated on the pending date or up to
//! [`PENDING_MATCH_DAYS`] after it. Each pending transaction is replaced at most once; a booked
//! one with several candidates takes the latest-dated, then the lowest id, so the rule gives the
//! same answer on every replica.

use super::records::{Import, NewRecord, RecordKind, ServedRecord};
use crate::domain::{ChangeCounts, DataChanges, Date};
use chrono::Days;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// How many days after a pending transaction's date the booked one that replaces it may be dated.
pub const PENDING_MATCH_DAYS: u64 = 10;

/// A stored record as the comparison needs it: no body.
#[derive(Debug, Clone)]
pub struct StoredDigest {
    /// Kind.
    pub kind: RecordKind,
    /// Id.
    pub id: Uuid,
    /// Digest of what the provider served; `None` for rows stored before digests existed.
    pub digest: Option<i64>,
    /// Whether it is a tombstone.
    pub removed: bool,
    /// The import that created it.
    pub created_version: i64,
    /// A live pending transaction's match key.
    pub pending_key: Option<String>,
    /// A live pending transaction's date (what matching needs; other records may leave it out).
    pub date: Option<Date>,
    /// On a booked transaction: the pending one it replaced.
    pub pending_link: Option<Uuid>,
}

/// A record to insert or overwrite.
#[derive(Debug, Clone)]
pub struct Write {
    /// The record as it is to be stored.
    pub record: NewRecord,
    /// The import that created it: this one for a new record, else the stored one's.
    pub created_version: i64,
    /// On a booked transaction this import adds: the pending one it removes in its place.
    pub paired: Option<Uuid>,
}

impl Write {
    /// Whether the record is new (or served again after a removal) rather than changed.
    pub fn added(&self, version: i64) -> bool {
        self.created_version == version
    }
}

/// A record to turn into a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// Kind.
    pub kind: RecordKind,
    /// Id.
    pub id: Uuid,
    /// For a pending transaction: the booked one that replaced it.
    pub replaced_by: Option<Uuid>,
}

/// A stored record whose digest differs from the import's while its body is the same (a version
/// of linkgate that serializes records differently digests them differently): only its digest
/// is rewritten, and nothing is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redigest {
    /// Kind.
    pub kind: RecordKind,
    /// Id.
    pub id: Uuid,
    /// The import's digest of it.
    pub digest: i64,
}

/// Everything an import changes.
#[derive(Debug, Clone, Default)]
pub struct ChangePlan {
    /// The import's version.
    pub version: i64,
    /// New and changed records.
    pub writes: Vec<Write>,
    /// Records the provider no longer serves.
    pub removals: Vec<Removal>,
    /// The counts, per kind.
    pub changes: DataChanges,
    /// Accounts that are new to a connection that had data before.
    pub new_account_ids: Vec<Uuid>,
    /// Records whose digest alone is stale (see [`settle`](Self::settle)).
    pub redigests: Vec<Redigest>,
}

impl ChangePlan {
    /// Whether the import changes nothing.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.removals.is_empty()
    }

    /// The stored records the plan overwrites as modified, whose bodies [`settle`](Self::settle)
    /// needs.
    pub fn modified(&self) -> Vec<(RecordKind, Uuid)> {
        self.writes.iter().filter(|w| !w.added(self.version)).map(|w| (w.record.kind, w.record.id)).collect()
    }

    /// Compares each modified record with its `stored` body: one the import serves unchanged
    /// (its digest differed only because the digest's input did) becomes a [`Redigest`] and is
    /// neither written nor counted. Digests are the fast path; bodies decide.
    pub fn settle(&mut self, stored: &HashMap<(RecordKind, Uuid), serde_json::Value>) {
        let version = self.version;
        let writes = std::mem::take(&mut self.writes);
        for write in writes {
            let record = &write.record;
            let unchanged = !write.added(version)
                && stored.get(&(record.kind, record.id)).is_some_and(|old| {
                    serde_json::from_str::<serde_json::Value>(record.body.get()).is_ok_and(|new| new == *old)
                });
            if unchanged {
                counts_of(&mut self.changes, record.kind).modified -= 1;
                self.redigests.push(Redigest { kind: record.kind, id: record.id, digest: record.digest });
            } else {
                self.writes.push(write);
            }
        }
    }
}

/// Which stored records an import speaks for beyond those it serves: which of them it removes.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    /// The kinds the import's products deliver.
    kinds: Vec<RecordKind>,
    /// For a transaction delta, the ids it removes.
    removed_transactions: Option<HashSet<Uuid>>,
}

impl Coverage {
    /// What `import` covers.
    pub fn of(import: &Import<'_>) -> Self {
        Self {
            kinds: import.products.iter().flat_map(|p| RecordKind::of_product(*p)).copied().collect(),
            removed_transactions: import.data.transaction_delta.as_ref().map(|d| d.removed.iter().copied().collect()),
        }
    }

    /// Whether the live stored record `old`, which the import does not serve, is gone: any of a
    /// covered kind, except that a transaction delta removes only the pending transactions (its
    /// pending set is complete) and those it names.
    fn drops(&self, old: &StoredDigest) -> bool {
        if !self.kinds.contains(&old.kind) {
            return false;
        }
        match &self.removed_transactions {
            Some(removed) if old.kind == RecordKind::Transaction => {
                old.pending_key.is_some() || removed.contains(&old.id)
            }
            _ => true,
        }
    }
}

/// The plan for storing `import`, whose reach over the stored records `covered` says, as import
/// `version` over the `stored` records. Only the records it writes are built
/// ([`ServedRecord::to_record`]): most of an import is served unchanged.
pub fn plan(stored: Vec<StoredDigest>, import: &[ServedRecord<'_>], covered: &Coverage, version: i64) -> ChangePlan {
    let had_data = !stored.is_empty();
    // Positions in `stored` rather than the records themselves: a smaller table to build and
    // probe, once per served record.
    let mut at: HashMap<(RecordKind, Uuid), usize> = HashMap::with_capacity(stored.len());
    at.extend(stored.iter().enumerate().map(|(n, s)| ((s.kind, s.id), n)));
    // Whether the import serves each stored record.
    let mut seen = vec![false; stored.len()];
    let mut plan = ChangePlan { version, ..ChangePlan::default() };
    for served in import {
        let counts = counts_of(&mut plan.changes, served.kind);
        let created_version = match at.get(&(served.kind, served.id)) {
            Some(&n) => {
                seen[n] = true;
                let old = &stored[n];
                if old.removed {
                    None
                } else if old.digest == Some(served.digest) {
                    continue;
                } else {
                    Some(old)
                }
            }
            None => None,
        };
        let mut record = served.to_record();
        let created_version = match created_version {
            Some(old) => {
                counts.modified += 1;
                if record.pending_link.is_none() {
                    // A link linkgate matched is its own, not the provider's: it outlives changes.
                    record.pending_link = old.pending_link;
                    set_pending_link(&mut record);
                }
                old.created_version
            }
            None => {
                counts.added += 1;
                if record.kind == RecordKind::Account && had_data {
                    plan.new_account_ids.push(record.id);
                }
                version
            }
        };
        plan.writes.push(Write { record, created_version, paired: None });
    }
    let mut gone: Vec<StoredDigest> = stored
        .into_iter()
        .zip(seen)
        .filter(|(old, seen)| !seen && !old.removed && covered.drops(old))
        .map(|(old, _)| old)
        .collect();
    gone.sort_by_key(|old| (old.kind, old.id));
    let replaced = match_pending(&mut plan.writes, &gone, version);
    for old in gone {
        counts_of(&mut plan.changes, old.kind).removed += 1;
        plan.removals.push(Removal { kind: old.kind, id: old.id, replaced_by: replaced.get(&old.id).copied() });
    }
    plan
}

/// Links the booked transactions import `version` adds to the pending ones among `gone` they
/// replace (see the module documentation). Returns each replaced pending transaction's
/// replacement.
fn match_pending(writes: &mut [Write], gone: &[StoredDigest], version: i64) -> HashMap<Uuid, Uuid> {
    let mut candidates: Vec<&StoredDigest> =
        gone.iter().filter(|old| old.kind == RecordKind::Transaction && old.pending_key.is_some()).collect();
    let mut replaced = HashMap::new();
    let mut booked: Vec<&mut Write> = writes
        .iter_mut()
        .filter(|w| w.added(version) && w.record.kind == RecordKind::Transaction && !w.record.pending)
        .collect();
    booked.sort_by_key(|w| (w.record.date, w.record.id));
    for write in booked {
        let record = &mut write.record;
        if let Some(named) = record.pending_link {
            // The provider's own link.
            if candidates.iter().any(|c| c.id == named) {
                replaced.insert(named, record.id);
                candidates.retain(|c| c.id != named);
                write.paired = Some(named);
            }
            continue;
        }
        let (Some(date), Some(key)) = (record.date, record.match_key.as_deref()) else { continue };
        let best = candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.pending_key.as_deref() == Some(key))
            .filter_map(|(at, c)| c.date.map(|pending_date| (at, pending_date, c.id)))
            .filter(|(_, pending_date, _)| {
                *pending_date <= date && date <= *pending_date + Days::new(PENDING_MATCH_DAYS)
            })
            .max_by_key(|(_, pending_date, id)| (*pending_date, std::cmp::Reverse(*id)));
        if let Some((at, _, pending_id)) = best {
            candidates.remove(at);
            replaced.insert(pending_id, record.id);
            record.pending_link = Some(pending_id);
            set_pending_link(record);
            write.paired = Some(pending_id);
        }
    }
    replaced
}

/// Writes a transaction record's pending link into its body, where readers find it (the digest
/// stays that of what the provider served).
fn set_pending_link(record: &mut NewRecord) {
    let Some(link) = record.pending_link else { return };
    let mut body: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(record.body.get()).expect("a record's body is the JSON object it was serialized as");
    body.insert("pending_transaction_id".to_owned(), serde_json::Value::String(link.to_string()));
    record.body = serde_json::value::to_raw_value(&body).expect("a JSON object serializes");
}

fn counts_of(changes: &mut DataChanges, kind: RecordKind) -> &mut ChangeCounts {
    match kind {
        RecordKind::Account => &mut changes.accounts,
        RecordKind::Transaction => &mut changes.transactions,
        RecordKind::Portfolio => &mut changes.portfolios,
        RecordKind::Position => &mut changes.positions,
        RecordKind::PortfolioTransaction => &mut changes.portfolio_transactions,
        RecordKind::Statement => &mut changes.statements,
    }
}

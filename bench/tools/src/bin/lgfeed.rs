//! The feed benchmark's store driver: what a refresh that changes 1 % of a large connection costs
//! linkgate, beside writing the changed rows alone.
//!
//! It fills two sandbox connections of one tenant (a connection and its twin) with the same
//! transactions through linkgate's own store (`save_connection` with an import, the call a
//! refresh makes), then runs rounds of one change set each: pending transactions booked (each
//! replaced by a booked one), others withdrawn, some corrected, new ones added. The connection
//! gets each round as a refresh does: the whole import, diffed against the stored records, only
//! the changes written and logged (`diff_ms`, all of `save_connection`). The twin gets the same
//! changed rows alone (`baseline_ms`): the rows linkgate would store for them, serialized and
//! written by two set-based statements in one committed transaction, with nothing read, digested
//! or logged. The connection then gets the same import again, which changes nothing
//! (`unchanged_ms`: reading, digesting and comparing alone, of which `read_ms` is reading the
//! stored digests and `digest_ms` digesting the import). Prints one JSON object.

use anyhow::{Context, ensure};
use clap::Parser;
use linkgate::domain::{
    Account, ChangeCounts, Connection, ConnectionData, ConnectionEventType, Date, Decimal, Money, Product,
    SealedAccountDetails, TenantId, Transaction,
};
use linkgate::store::{
    EventFilter, Import, Page, RecordKind, RecordQuery, Store, StoredRecord, records_of, served_records,
};
use std::collections::HashSet;
use std::time::Instant;
use uuid::Uuid;

#[derive(Parser)]
struct Cli {
    /// linkgate's PostgreSQL database.
    #[arg(long)]
    database_url: String,
    /// The connections' tenant.
    #[arg(long)]
    tenant: Uuid,
    /// The connection refreshes are applied to (a READY sandbox connection).
    #[arg(long)]
    connection: Uuid,
    /// Its twin, which gets the changed rows alone.
    #[arg(long)]
    twin: Uuid,
    /// Transactions each connection holds before the first round.
    #[arg(long, default_value_t = 100_000)]
    transactions: usize,
    /// Transactions each round adds: the booked ones replacing the round's pending ones, new
    /// pending ones (as many) and new booked ones (the rest).
    #[arg(long, default_value_t = 400)]
    added: usize,
    /// Transactions each round corrects.
    #[arg(long, default_value_t = 400)]
    modified: usize,
    /// Transactions each round removes: the pending ones (half) and withdrawn booked ones.
    #[arg(long, default_value_t = 200)]
    removed: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// The namespace of the benchmark's transaction ids (random-looking, as linkgate's stable ids are).
const IDS: Uuid = Uuid::from_u128(0x6c67_6665_6564_4000_8000_0000_0000_0000);

const MERCHANTS: [&str; 8] =
    ["Grocer", "Rail ticket", "Coffee bar", "Bookshop", "Utility bill", "Pharmacy", "Restaurant", "Fuel station"];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    ensure!(cli.added >= cli.removed, "each round books its pending transactions: --added must be ≥ --removed");
    let store = linkgate::store::open(&cli.database_url, 2, false).await?;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&cli.database_url).await?;
    let tenant = TenantId(cli.tenant);
    let connection = ready(&*store, tenant, cli.connection).await?;
    let twin = ready(&*store, tenant, cli.twin).await?;
    let mut ledger = Ledger::new(accounts(&*store, &connection).await?, cli.removed / 2);

    // The starting point, the same on both: each connection's whole history as one import.
    let data = ledger.seed(cli.transactions);
    let mut seed_seconds = Vec::new();
    for c in [&connection, &twin] {
        let at = Instant::now();
        save(&*store, c, &data).await?;
        seed_seconds.push(at.elapsed().as_secs_f64());
    }
    // As a table in service would be: vacuumed and analysed, not fresh from a bulk load.
    sqlx::raw_sql("VACUUM (ANALYZE) connection_records, record_changes").execute(&pool).await?;
    ensure!(store.data_version(tenant, twin.id).await? == store.data_version(tenant, connection.id).await?);

    let mut rounds = Vec::new();
    for round in 0..cli.rounds {
        let change = ledger.change(cli.added, cli.modified, cli.removed, round);
        let data = ledger.data();
        let version = store.data_version(tenant, connection.id).await? + 1;
        // Alternate which goes first, so the machine's drift touches both alike.
        let (mut diff_ms, mut baseline_ms, mut counts) = (0.0, 0.0, None);
        for side in if round.is_multiple_of(2) { [0, 1] } else { [1, 0] } {
            let at = Instant::now();
            if side == 0 {
                counts = Some(save(&*store, &connection, &data).await?);
                diff_ms = at.elapsed().as_secs_f64() * 1e3;
            } else {
                write_alone(&pool, &twin, &change, version).await?;
                baseline_ms = at.elapsed().as_secs_f64() * 1e3;
            }
        }
        let counts = counts.expect("the refresh ran");
        let expected =
            ChangeCounts { added: cli.added as u32, modified: cli.modified as u32, removed: cli.removed as u32 };
        ensure!(counts == Some(expected), "round {round} changed {counts:?}, not {expected:?}");
        let at = Instant::now();
        let again = save(&*store, &connection, &data).await?;
        let unchanged_ms = at.elapsed().as_secs_f64() * 1e3;
        ensure!(again.is_none(), "the same import again changed {again:?}");
        let at = Instant::now();
        let stored = read_digests(&pool, &connection).await?;
        let read_ms = at.elapsed().as_secs_f64() * 1e3;
        // Digesting the whole import, on its own: CPU only, part of every refresh.
        let at = Instant::now();
        let digested = served_records(&data).len();
        let digest_ms = at.elapsed().as_secs_f64() * 1e3;
        eprintln!(
            "round {round}: diff {diff_ms:.1} ms, baseline {baseline_ms:.1} ms, unchanged {unchanged_ms:.1} ms, \
             reading {stored} stored digests {read_ms:.1} ms, digesting {digested} records {digest_ms:.1} ms"
        );
        rounds.push(serde_json::json!({
            "round": round,
            "version": version,
            "diff_ms": diff_ms,
            "baseline_ms": baseline_ms,
            "unchanged_ms": unchanged_ms,
            "read_ms": read_ms,
            "digest_ms": digest_ms,
            "digested_records": digested,
            "stored_digests": stored,
        }));
    }
    let live = ledger.live.len();
    println!(
        "{}",
        serde_json::json!({
            "transactions": cli.transactions,
            "live_after": live,
            "changes": { "added": cli.added, "modified": cli.modified, "removed": cli.removed },
            "seed_seconds": seed_seconds,
            "rounds": rounds,
        })
    );
    Ok(())
}

async fn ready(store: &dyn Store, tenant: TenantId, id: Uuid) -> anyhow::Result<Connection> {
    let connection = store.get_connection(tenant, id).await?.with_context(|| format!("no connection {id}"))?;
    ensure!(connection.state == linkgate::domain::ConnectionState::Ready, "connection {id} is not READY");
    Ok(connection)
}

/// The accounts the sandbox imported, which the benchmark's imports keep as they are.
async fn accounts(store: &dyn Store, connection: &Connection) -> anyhow::Result<Vec<Account>> {
    let query = RecordQuery {
        tenant: connection.tenant_id,
        connection_id: connection.id,
        kind: RecordKind::Account,
        parent_id: None,
        dates: Default::default(),
        page: Page { size: 500, after: None },
    };
    let accounts: Vec<Account> =
        store.list_records(&query).await?.items.into_iter().map(StoredRecord::decode).collect::<Result<_, _>>()?;
    ensure!(!accounts.is_empty(), "the sandbox connection has no accounts");
    Ok(accounts)
}

/// Saves `data` as a refresh does; returns the transactions' counts of its DATA_UPDATED, if any.
async fn save(
    store: &dyn Store,
    connection: &Connection,
    data: &ConnectionData<SealedAccountDetails>,
) -> anyhow::Result<Option<ChangeCounts>> {
    let import = Import { data, products: &[Product::Accounts, Product::Transactions], cursor: None };
    let before = store.last_event_id().await?;
    let saved = store.save_connection(connection, None, Some(import), ConnectionEventType::StateChanged).await?;
    ensure!(saved, "the connection was deleted");
    // Its events reach the log once sequenced, as the replica's sequencer would move them.
    while store.sequence_events(1000).await? == 1000 {}
    let filter = EventFilter { connection_id: Some(connection.id), ..Default::default() };
    let after = store.events_after(connection.tenant_id, &filter, before, 10).await?;
    Ok(after.into_iter().find_map(|e| e.details.data_changes).map(|c| c.transactions))
}

/// Reads the connection's stored digests a row per record, to show what reading them costs of
/// `unchanged_ms` (the store reads them as arrays, while it digests the import). Returns how many
/// rows it read.
async fn read_digests(pool: &sqlx::PgPool, connection: &Connection) -> anyhow::Result<usize> {
    type Row = (String, Uuid, Option<i64>, bool, i64, Option<String>, Option<Date>, Option<Uuid>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT kind, id, digest, removed_at IS NOT NULL AS removed, created_version, pending_key, \
         record_date, pending_link FROM connection_records WHERE connection_id = $1",
    )
    .bind(connection.id)
    .fetch_all(pool)
    .await?;
    Ok(rows.len())
}

/// The baseline: one round's changed rows written to the twin, as linkgate stores them, by one
/// upsert and one tombstone update, committed.
async fn write_alone(pool: &sqlx::PgPool, twin: &Connection, change: &Change, version: i64) -> anyhow::Result<()> {
    let changed = ConnectionData::<SealedAccountDetails> { transactions: change.written.clone(), ..Default::default() };
    let records = records_of(&changed);
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO connection_records (connection_id, kind, id, tenant_id, parent_id, sort_key, record_date, body, \
         digest, created_version, changed_version, pending_key) \
         SELECT $1, 'transaction', r.id, $2, r.parent_id, r.sort_key, r.record_date, r.body, r.digest, $3, $3, \
         r.pending_key FROM UNNEST($4::uuid[], $5::uuid[], $6::text[], $7::date[], $8::jsonb[], $9::int8[], \
         $10::text[]) AS r(id, parent_id, sort_key, record_date, body, digest, pending_key) \
         ON CONFLICT (connection_id, kind, id) DO UPDATE SET parent_id = excluded.parent_id, \
         sort_key = excluded.sort_key, record_date = excluded.record_date, body = excluded.body, \
         digest = excluded.digest, changed_version = excluded.changed_version, removed_at = NULL, \
         pending_key = excluded.pending_key",
    )
    .bind(twin.id)
    .bind(twin.tenant_id.0)
    .bind(version)
    .bind(records.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.parent_id).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.sort_key.as_str()).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.date).collect::<Vec<_>>())
    .bind(records.iter().map(|r| sqlx::types::Json(&*r.body)).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.digest).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.match_key.as_deref().filter(|_| r.pending)).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    let removed = sqlx::query(
        "UPDATE connection_records SET removed_at = now(), changed_version = $3, pending_key = NULL \
         WHERE connection_id = $1 AND kind = 'transaction' AND id = ANY($2)",
    )
    .bind(twin.id)
    .bind(&change.removed)
    .bind(version)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    ensure!(removed as usize == change.removed.len(), "the twin lacked transactions to remove");
    Ok(())
}

/// One round's changes: the transactions added or corrected, and the ids removed.
struct Change {
    written: Vec<Transaction>,
    removed: Vec<Uuid>,
}

/// The benchmark's provider: the live transactions and the next id to issue.
struct Ledger {
    accounts: Vec<Account>,
    live: Vec<Transaction>,
    next: u64,
    pending: usize,
    today: Date,
    random: u64,
}

impl Ledger {
    fn new(accounts: Vec<Account>, pending: usize) -> Self {
        let today = chrono::Utc::now().date_naive();
        Self { accounts, live: Vec::new(), next: 0, pending, today, random: 0x9e37_79b9_7f4a_7c15 }
    }

    /// `count` transactions over about three years, the newest `pending` of them pending.
    fn seed(&mut self, count: usize) -> ConnectionData<SealedAccountDetails> {
        for n in 0..count {
            let days_ago = ((count - 1 - n) * 1000 / count.max(1)) as u64;
            let transaction = self.issue(self.today - chrono::Days::new(days_ago), n + self.pending >= count);
            self.live.push(transaction);
        }
        self.data()
    }

    fn data(&self) -> ConnectionData<SealedAccountDetails> {
        ConnectionData { accounts: self.accounts.clone(), transactions: self.live.clone(), ..Default::default() }
    }

    fn issue(&mut self, date: Date, pending: bool) -> Transaction {
        let n = self.next;
        self.next += 1;
        let account = &self.accounts[(n % self.accounts.len() as u64) as usize];
        // Mostly spending, every tenth a credit.
        let cents = ((n * 7919) % 50_000 + 1) as i64 * if n.is_multiple_of(10) { 1 } else { -1 };
        Transaction {
            id: Uuid::new_v5(&IDS, &n.to_be_bytes()),
            account_id: account.id,
            amount: Money::new(Decimal::new(cents, 2), &account.currency),
            date,
            description: format!("{} #{n}", MERCHANTS[(n % MERCHANTS.len() as u64) as usize]),
            pending,
            pending_transaction_id: None,
        }
    }

    /// An index into the live transactions (xorshift: the same sequence on every run).
    fn pick(&mut self) -> usize {
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        (self.random % self.live.len() as u64) as usize
    }

    /// One round: every pending transaction booked (removed, and a booked one for the same
    /// account, amount and day added, which linkgate pairs with it), other booked ones
    /// withdrawn or corrected, new pending and booked ones added.
    fn change(&mut self, added: usize, modified: usize, removed: usize, round: usize) -> Change {
        let pending: Vec<usize> = (0..self.live.len()).filter(|&i| self.live[i].pending).collect();
        assert_eq!(pending.len(), self.pending, "each round books the previous round's pending transactions");
        let mut gone: HashSet<usize> = pending.iter().copied().collect();
        while gone.len() < removed {
            let at = self.pick();
            gone.insert(at);
        }
        let mut corrected = HashSet::new();
        while corrected.len() < modified {
            let at = self.pick();
            if !gone.contains(&at) {
                corrected.insert(at);
            }
        }
        let mut written = Vec::with_capacity(added + modified);
        for &at in &corrected {
            let t = &mut self.live[at];
            t.description = format!("{} (corrected in round {round})", t.description.split(" (").next().unwrap_or(""));
            written.push(t.clone());
        }
        for &at in &pending {
            let old = self.live[at].clone();
            let mut booked = self.issue(old.date, false);
            booked.account_id = old.account_id;
            booked.amount = old.amount.clone();
            booked.description = old.description;
            written.push(booked);
        }
        for _ in 0..added - 2 * self.pending {
            written.push(self.issue(self.today, false));
        }
        for _ in 0..self.pending {
            written.push(self.issue(self.today, true));
        }
        let removed_ids = gone.iter().map(|&at| self.live[at].id).collect();
        let mut index = 0;
        self.live.retain(|_| {
            index += 1;
            !gone.contains(&(index - 1))
        });
        self.live.extend(written[modified..].iter().cloned());
        Change { written, removed: removed_ids }
    }
}

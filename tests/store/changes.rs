//! The change feed's side of the store: an import writes only what changed and logs it under the
//! import's version, a booked transaction replaces the pending one it matches, a delta import
//! removes only what it names and the pending transactions it no longer serves, the provider's
//! cursor is stored with its import, the snapshot holds what was current at its import, and
//! pruning keeps the log to the change window.

use super::*;
use linkgate::domain::{ChangeCounts, DataChanges, EventDetails, TransactionDelta};
use linkgate::store::{Change, ChangeQuery, SnapshotQuery};

/// The transaction log of a connection after import `origin`, as (change, id, paired) rows.
async fn logged(store: &dyn Store, connection: &Connection, origin: i64) -> Vec<(Change, Uuid, Option<Uuid>)> {
    let query = ChangeQuery {
        tenant: connection.tenant_id,
        connection_id: connection.id,
        kind: RecordKind::Transaction,
        parent_id: None,
        origin,
        after: None,
        limit: 10_000,
    };
    let rows = store.record_changes(&query).await.unwrap();
    assert!(rows.windows(2).all(|w| (w[0].version, w[0].id) < (w[1].version, w[1].id)), "in import order, then by id");
    rows.into_iter().map(|r| (r.change, r.id, r.paired_with)).collect()
}

/// The transaction ids of the snapshot as of import `version`.
async fn snapshot(store: &dyn Store, connection: &Connection, version: i64) -> BTreeSet<Uuid> {
    let query = SnapshotQuery {
        tenant: connection.tenant_id,
        connection_id: connection.id,
        kind: RecordKind::Transaction,
        parent_id: None,
        version,
        after: None,
        limit: 10_000,
    };
    store.record_snapshot(&query).await.unwrap().into_iter().map(|r| r.id).collect()
}

/// Saves `data` as the next import of `connection` and returns the events it appended.
async fn import(
    store: &dyn Store,
    connection: &Connection,
    data: &ConnectionData<SealedAccountDetails>,
) -> Vec<ConnectionEvent> {
    save_import(store, connection, import_of(data)).await
}

/// Saves `import` for `connection` and returns the events it appended.
async fn save_import(store: &dyn Store, connection: &Connection, import: Import<'_>) -> Vec<ConnectionEvent> {
    let last = last_event_id(store, connection).await;
    let saved = store.save_connection(connection, None, Some(import), ConnectionEventType::StateChanged).await;
    assert!(saved.unwrap(), "a live connection saves");
    sequence(store).await;
    let filter = EventFilter { connection_id: Some(connection.id), ..Default::default() };
    store.events_after(connection.tenant_id, &filter, last, 100).await.unwrap()
}

async fn last_event_id(store: &dyn Store, connection: &Connection) -> i64 {
    sequence(store).await;
    let filter = EventFilter { connection_id: Some(connection.id), ..Default::default() };
    store.events_after(connection.tenant_id, &filter, 0, 1000).await.unwrap().last().map_or(0, |e| e.event_id)
}

fn transaction_ids<D>(data: &ConnectionData<D>) -> BTreeSet<Uuid> {
    data.transactions.iter().map(|t| t.id).collect()
}

async fn an_import_writes_only_what_changed_and_logs_it_under_its_version(store: Arc<dyn Store>) {
    let (ready, sample) = connection_with_sample(&*store, new_tenant()).await;
    assert_eq!(store.data_version(ready.tenant_id, ready.id).await.unwrap(), 1);
    let first = logged(&*store, &ready, 0).await;
    assert_eq!(first.iter().map(|(_, id, _)| *id).collect::<BTreeSet<_>>(), transaction_ids(&sample.data));
    assert!(first.iter().all(|(change, _, paired)| *change == Change::Added && paired.is_none()));

    // The provider corrects one, drops one, books a new one and opens an account.
    let mut next = sample.data.clone();
    let corrected = next.transactions.iter_mut().find(|t| t.description == "transaction tx-a1").unwrap();
    corrected.description = "corrected".to_owned();
    let corrected = corrected.id;
    let dropped = next.transactions.iter().position(|t| t.description == "transaction tx-z2").unwrap();
    let dropped = next.transactions.remove(dropped).id;
    let mut added = next.transactions[0].clone();
    added.id = stable_id(ready.id, "transaction", "tx-new");
    added.amount = eur(-1);
    next.transactions.push(added.clone());
    let mut account = next.accounts[0].clone();
    account.id = stable_id(ready.id, "account", "acc-new");
    account.name = "New Account".to_owned();
    next.accounts.push(account.clone());

    let events = import(&*store, &ready, &next).await;
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [ConnectionEventType::StateChanged, ConnectionEventType::NewAccounts, ConnectionEventType::DataUpdated]
    );
    assert_eq!(events[1].details, EventDetails { new_account_ids: vec![account.id], ..Default::default() });
    let changes = events[2].details.data_changes.expect("DATA_UPDATED counts");
    assert_eq!(
        changes,
        DataChanges {
            accounts: ChangeCounts { added: 1, ..Default::default() },
            transactions: ChangeCounts { added: 1, modified: 1, removed: 1 },
            ..Default::default()
        }
    );
    assert_eq!(store.data_version(ready.tenant_id, ready.id).await.unwrap(), 2);
    let mut expected =
        vec![(Change::Added, added.id, None), (Change::Modified, corrected, None), (Change::Removed, dropped, None)];
    expected.sort_by_key(|(_, id, _)| *id);
    assert_eq!(logged(&*store, &ready, 1).await, expected);
    let listed = decode::<Transaction>(list_records(&*store, &records_of(&ready, RecordKind::Transaction)).await);
    assert_eq!(
        listed.iter().map(|t| t.id).collect::<BTreeSet<_>>(),
        transaction_ids(&next),
        "the removed one is not listed"
    );
    assert!(!store.has_record(ready.tenant_id, ready.id, RecordKind::Transaction, dropped).await.unwrap());

    // The same data again changes nothing: no version, no log, no DATA_UPDATED.
    let events = import(&*store, &ready, &next).await;
    assert_eq!(events.iter().map(|e| e.kind).collect::<Vec<_>>(), [ConnectionEventType::StateChanged]);
    assert_eq!(store.data_version(ready.tenant_id, ready.id).await.unwrap(), 2);
    assert!(logged(&*store, &ready, 2).await.is_empty());
}
conformance!(an_import_writes_only_what_changed_and_logs_it_under_its_version);

async fn a_booked_transaction_replaces_the_pending_one_it_matches(store: Arc<dyn Store>) {
    let (ready, sample) = connection_with_sample(&*store, new_tenant()).await;
    let mut data = sample.data.clone();
    let pending = |upstream: &str, cents: i64, date: Date| Transaction {
        id: stable_id(ready.id, "transaction", upstream),
        account_id: sample.checking,
        amount: eur(cents),
        date,
        description: upstream.to_owned(),
        pending: true,
        pending_transaction_id: None,
    };
    let (authorised, withdrawn) = (pending("auth", -1234, day(2026, 1, 10)), pending("hold", -500, day(2026, 1, 10)));
    data.transactions.extend([authorised.clone(), withdrawn.clone()]);
    import(&*store, &ready, &data).await;

    // Both pending ones go; a booked one for the same account and amount comes two days later,
    // and another for that amount beyond the matching window.
    data.transactions.retain(|t| !t.pending);
    let booked = Transaction {
        id: stable_id(ready.id, "transaction", "booked"),
        pending: false,
        date: day(2026, 1, 12),
        ..authorised.clone()
    };
    let late = Transaction {
        id: stable_id(ready.id, "transaction", "late"),
        pending: false,
        date: day(2026, 1, 10) + Duration::days(11),
        ..authorised.clone()
    };
    data.transactions.extend([booked.clone(), late.clone()]);
    import(&*store, &ready, &data).await;

    let mut expected = vec![
        (Change::Added, booked.id, Some(authorised.id)),
        (Change::Added, late.id, None),
        (Change::Removed, authorised.id, Some(booked.id)),
        (Change::Removed, withdrawn.id, None),
    ];
    expected.sort_by_key(|(_, id, _)| *id);
    assert_eq!(logged(&*store, &ready, 2).await, expected);
    let listed = decode::<Transaction>(list_records(&*store, &records_of(&ready, RecordKind::Transaction)).await);
    let link = |id: Uuid| listed.iter().find(|t| t.id == id).unwrap().pending_transaction_id;
    assert_eq!(link(booked.id), Some(authorised.id));
    assert_eq!(link(late.id), None, "outside the window");

    // The link is linkgate's: a later change of the booked one keeps it.
    data.transactions.iter_mut().find(|t| t.id == booked.id).unwrap().description = "settled".to_owned();
    import(&*store, &ready, &data).await;
    assert_eq!(logged(&*store, &ready, 3).await, [(Change::Modified, booked.id, None)]);
    let listed = decode::<Transaction>(list_records(&*store, &records_of(&ready, RecordKind::Transaction)).await);
    let settled = listed.iter().find(|t| t.id == booked.id).unwrap();
    assert_eq!((settled.description.as_str(), settled.pending_transaction_id), ("settled", Some(authorised.id)));
}
conformance!(a_booked_transaction_replaces_the_pending_one_it_matches);

async fn the_snapshot_holds_what_was_current_at_its_import(store: Arc<dyn Store>) {
    let (ready, sample) = connection_with_sample(&*store, new_tenant()).await;
    let mut next = sample.data.clone();
    let dropped = next.transactions.pop().unwrap().id;
    let mut added = next.transactions[0].clone();
    added.id = stable_id(ready.id, "transaction", "tx-new");
    next.transactions.push(added.clone());
    import(&*store, &ready, &next).await;

    assert_eq!(snapshot(&*store, &ready, 1).await, transaction_ids(&sample.data), "as of the first import");
    assert_eq!(snapshot(&*store, &ready, 2).await, transaction_ids(&next), "as of the second");
    assert!(snapshot(&*store, &ready, 0).await.is_empty(), "nothing before the first import");
    assert!(snapshot(&*store, &ready, 1).await.contains(&dropped));
}
conformance!(the_snapshot_holds_what_was_current_at_its_import);

async fn kinds_an_import_does_not_cover_are_left_alone(store: Arc<dyn Store>) {
    let (ready, sample) = connection_with_sample(&*store, new_tenant()).await;
    let only_transactions =
        ConnectionData { transactions: sample.data.transactions[1..].to_vec(), ..Default::default() };
    let import = Import { data: &only_transactions, products: &[Product::Transactions], cursor: None };
    store.save_connection(&ready, None, Some(import), ConnectionEventType::StateChanged).await.unwrap();
    let accounts = list_records(&*store, &records_of(&ready, RecordKind::Account)).await;
    assert_eq!(accounts.len(), sample.data.accounts.len(), "accounts were not part of the import");
    let transactions = list_records(&*store, &records_of(&ready, RecordKind::Transaction)).await;
    assert_eq!(transactions.len(), sample.data.transactions.len() - 1);
}
conformance!(kinds_an_import_does_not_cover_are_left_alone);

async fn pruning_keeps_the_log_and_tombstones_to_the_window(store: Arc<dyn Store>) {
    let (ready, sample) = connection_with_sample(&*store, new_tenant()).await;
    let mut next = sample.data.clone();
    let dropped = next.transactions.pop().unwrap().id;
    import(&*store, &ready, &next).await;

    assert_eq!(store.prune_changes(now() - Duration::hours(1), 1000).await.unwrap(), 0, "nothing is that old");
    assert_eq!(logged(&*store, &ready, 1).await, [(Change::Removed, dropped, None)]);
    let pruned = store.prune_changes(now() + Duration::seconds(1), 1000).await.unwrap();
    let d = &sample.data;
    let first_import = d.accounts.len()
        + d.transactions.len()
        + d.portfolios.len()
        + d.positions.len()
        + d.portfolio_transactions.len()
        + d.statements.len();
    assert_eq!(pruned, first_import as u64 + 1, "every log row: the first import's and the removal");
    assert!(logged(&*store, &ready, 0).await.is_empty());
    assert!(!snapshot(&*store, &ready, 1).await.contains(&dropped), "the tombstone went too");
    assert_eq!(snapshot(&*store, &ready, 2).await, transaction_ids(&next), "live records stay");
}
conformance!(pruning_keeps_the_log_and_tombstones_to_the_window);

async fn a_delta_import_removes_what_it_names_and_the_pending_transactions_it_no_longer_serves(store: Arc<dyn Store>) {
    let (ready, sample) = connection_with_sample(&*store, new_tenant()).await;
    let pending = |upstream: &str, cents: i64| Transaction {
        id: stable_id(ready.id, "transaction", upstream),
        account_id: sample.checking,
        amount: eur(cents),
        date: day(2026, 1, 10),
        description: upstream.to_owned(),
        pending: true,
        pending_transaction_id: None,
    };
    let (authorised, withdrawn, held) = (pending("auth", -1234), pending("hold", -500), pending("held", -700));
    let mut whole = sample.data.clone();
    whole.transactions.extend([authorised.clone(), withdrawn.clone(), held.clone()]);
    import(&*store, &ready, &whole).await;

    // The provider's feed since its cursor: one booked transaction corrected, one reversed (and
    // one the store never had), the authorised one booked under an id of its own; of the pending
    // ones only `held` is still served. Every other booked transaction goes unmentioned.
    let mut corrected = sample.data.transactions.iter().find(|t| t.description == "transaction tx-a1").unwrap().clone();
    corrected.description = "corrected".to_owned();
    let reversed = sample.data.transactions.iter().find(|t| t.description == "transaction tx-z2").unwrap().id;
    let booked = Transaction {
        id: stable_id(ready.id, "transaction", "booked"),
        pending: false,
        date: day(2026, 1, 12),
        ..authorised.clone()
    };
    let delta = ConnectionData {
        transactions: vec![corrected.clone(), booked.clone(), held.clone()],
        transaction_delta: Some(TransactionDelta { removed: vec![reversed, stable_id(ready.id, "transaction", "x")] }),
        ..Default::default()
    };
    let import = Import { data: &delta, products: &[Product::Transactions], cursor: Some("c2") };
    let events = save_import(&*store, &ready, import).await;

    let changes = events.last().unwrap().details.data_changes.expect("DATA_UPDATED");
    assert_eq!(
        changes,
        DataChanges { transactions: ChangeCounts { added: 1, modified: 1, removed: 3 }, ..Default::default() }
    );
    let mut expected = vec![
        (Change::Added, booked.id, Some(authorised.id)),
        (Change::Modified, corrected.id, None),
        (Change::Removed, reversed, None),
        (Change::Removed, authorised.id, Some(booked.id)),
        (Change::Removed, withdrawn.id, None),
    ];
    expected.sort_by_key(|(_, id, _)| *id);
    assert_eq!(logged(&*store, &ready, 2).await, expected);
    let listed = decode::<Transaction>(list_records(&*store, &records_of(&ready, RecordKind::Transaction)).await);
    let mut kept: BTreeSet<Uuid> = transaction_ids(&sample.data);
    kept.remove(&reversed);
    kept.extend([booked.id, held.id]);
    assert_eq!(listed.iter().map(|t| t.id).collect::<BTreeSet<_>>(), kept, "the unmentioned booked ones stay");
    assert_eq!(listed.iter().find(|t| t.id == corrected.id).unwrap().description, "corrected");
    assert_eq!(listed.iter().find(|t| t.id == booked.id).unwrap().pending_transaction_id, Some(authorised.id));
    assert_eq!(store.upstream_cursor(ready.tenant_id, ready.id).await.unwrap().as_deref(), Some("c2"));

    // Nothing new since: only the pending set again, which changes nothing but the cursor.
    let quiet = ConnectionData {
        transactions: vec![held.clone()],
        transaction_delta: Some(TransactionDelta::default()),
        ..Default::default()
    };
    let import = Import { data: &quiet, products: &[Product::Transactions], cursor: Some("c3") };
    let events = save_import(&*store, &ready, import).await;
    assert_eq!(events.iter().map(|e| e.kind).collect::<Vec<_>>(), [ConnectionEventType::StateChanged]);
    assert_eq!(store.upstream_cursor(ready.tenant_id, ready.id).await.unwrap().as_deref(), Some("c3"));
}
conformance!(a_delta_import_removes_what_it_names_and_the_pending_transactions_it_no_longer_serves);

async fn the_providers_cursor_is_stored_with_its_import_and_only_then(store: Arc<dyn Store>) {
    let (ready, sample) = connection_with_sample(&*store, new_tenant()).await;
    let tenant = ready.tenant_id;
    assert_eq!(store.upstream_cursor(tenant, ready.id).await.unwrap(), None, "none handed out yet");
    let import = Import { cursor: Some("after-import-2"), ..import_of(&sample.data) };
    store.save_connection(&ready, None, Some(import), ConnectionEventType::StateChanged).await.unwrap();
    assert_eq!(store.upstream_cursor(tenant, ready.id).await.unwrap().as_deref(), Some("after-import-2"));
    assert_eq!(store.upstream_cursor(new_tenant(), ready.id).await.unwrap(), None, "another tenant reads none");

    // A save without an import (a refresh asked, a failure) keeps it.
    let stale = moved(&ready, ConnectionState::Stale);
    store.save_connection(&stale, None, None, ConnectionEventType::StateChanged).await.unwrap();
    assert_eq!(store.upstream_cursor(tenant, ready.id).await.unwrap().as_deref(), Some("after-import-2"));
    // An import without one (a whole fetch that found none) drops it: the next fetch is whole.
    store
        .save_connection(&ready, None, Some(import_of(&sample.data)), ConnectionEventType::StateChanged)
        .await
        .unwrap();
    assert_eq!(store.upstream_cursor(tenant, ready.id).await.unwrap(), None);

    // A connection deleted meanwhile stores neither the import nor its cursor; deletion destroys it.
    let import = Import { cursor: Some("after-import-4"), ..import_of(&sample.data) };
    store.save_connection(&ready, None, Some(import), ConnectionEventType::StateChanged).await.unwrap();
    assert!(store.delete_connection(&moved(&ready, ConnectionState::Deleted)).await.unwrap(), "deleted");
    let import = Import { cursor: Some("after-delete"), ..import_of(&sample.data) };
    let saved = store.save_connection(&ready, None, Some(import), ConnectionEventType::StateChanged).await.unwrap();
    assert!(!saved);
    assert_eq!(store.upstream_cursor(tenant, ready.id).await.unwrap(), None);
}
conformance!(the_providers_cursor_is_stored_with_its_import_and_only_then);
async fn imports_larger_than_a_write_batch_are_stored_and_logged_whole(store: Arc<dyn Store>) {
    // PostgreSQL writes an import's changes a batch of 1,000 rows at a time: these span several.
    let (ready, sample) = connection_with_sample(&*store, new_tenant()).await;
    let bulk = |n: usize| Transaction {
        id: stable_id(ready.id, "transaction", &format!("bulk-{n}")),
        description: format!("bulk {n}"),
        ..sample.data.transactions[0].clone()
    };
    let mut data = sample.data.clone();
    data.transactions.extend((0..2500).map(bulk));
    let events = import(&*store, &ready, &data).await;
    let counts = events.iter().find_map(|e| e.details.data_changes).expect("DATA_UPDATED counts");
    assert_eq!(counts.transactions, ChangeCounts { added: 2500, ..Default::default() });
    let added = logged(&*store, &ready, 1).await;
    assert_eq!(added.len(), 2500);
    assert!(added.iter().all(|(change, _, paired)| *change == Change::Added && paired.is_none()));

    // 1,100 corrected and 1,200 withdrawn.
    let corrected: BTreeSet<Uuid> = (0..1100).map(|n| bulk(n).id).collect();
    let withdrawn: BTreeSet<Uuid> = (1100..2300).map(|n| bulk(n).id).collect();
    for t in data.transactions.iter_mut().filter(|t| corrected.contains(&t.id)) {
        t.description = format!("{} corrected", t.description);
    }
    data.transactions.retain(|t| !withdrawn.contains(&t.id));
    import(&*store, &ready, &data).await;
    let changed = logged(&*store, &ready, 2).await;
    let of = |wanted: Change| -> BTreeSet<Uuid> {
        changed.iter().filter(|(c, _, _)| *c == wanted).map(|(_, id, _)| *id).collect()
    };
    assert_eq!(of(Change::Modified), corrected);
    assert_eq!(of(Change::Removed), withdrawn);
    assert_eq!(changed.len(), 2300, "nothing else");
    assert_eq!(snapshot(&*store, &ready, 3).await, transaction_ids(&data));
    let listed = decode::<Transaction>(
        all_pages(500, async |page| {
            store.list_records(&RecordQuery { page, ..records_of(&ready, RecordKind::Transaction) }).await.unwrap()
        })
        .await
        .0,
    );
    let stored: BTreeSet<Uuid> =
        listed.iter().filter(|t| t.description.ends_with(" corrected")).map(|t| t.id).collect();
    assert_eq!(stored, corrected, "the corrected bodies are stored");
    assert_eq!(listed.len(), data.transactions.len());
}
conformance!(imports_larger_than_a_write_batch_are_stored_and_logged_whole);

/// Rewrites every stored digest of `connection` as a version of linkgate that digested records
/// differently would have left them.
async fn age_digests(backend: Backend, database: &TestDatabase, connection: &Connection) {
    use sqlx::Connection as _;
    let statement = "UPDATE connection_records SET digest = digest + 1 WHERE connection_id = $1";
    match backend {
        Backend::Postgres => {
            let mut db = sqlx::PgConnection::connect(&database.url).await.unwrap();
            sqlx::query(statement).bind(connection.id).execute(&mut db).await.unwrap();
        }
        Backend::Sqlite => {
            let mut db = sqlx::SqliteConnection::connect(&database.url).await.unwrap();
            sqlx::query(statement).bind(connection.id).execute(&mut db).await.unwrap();
        }
    }
}

async fn stale_digests_are_settled_by_the_bodies_and_never_reported(backend: Backend) {
    let (store, database) = open(backend).await;
    let (ready, sample) = connection_with_sample(&*store, new_tenant()).await;
    age_digests(backend, &database, &ready).await;

    // The same data again: every digest differs, no body does.
    let events = import(&*store, &ready, &sample.data).await;
    assert!(events.iter().all(|e| e.details.data_changes.is_none()), "nothing changed: {events:?}");
    assert_eq!(store.data_version(ready.tenant_id, ready.id).await.unwrap(), 1, "no new import version");
    assert!(logged(&*store, &ready, 1).await.is_empty());

    // The digests were rewritten: a real change among them is still found, and only it.
    let mut next = sample.data.clone();
    let corrected = next.transactions.iter_mut().find(|t| t.description == "transaction tx-a1").unwrap();
    corrected.description = "transaction tx-a1, corrected".to_owned();
    let corrected = corrected.id;
    let events = import(&*store, &ready, &next).await;
    let counts = events.iter().find_map(|e| e.details.data_changes).expect("DATA_UPDATED counts");
    assert_eq!(
        counts,
        DataChanges { transactions: ChangeCounts { modified: 1, ..Default::default() }, ..Default::default() }
    );
    assert_eq!(logged(&*store, &ready, 1).await, [(Change::Modified, corrected, None)]);
}

mod stale_digests_are_settled_by_the_bodies_and_never_reported {
    #[tokio::test]
    async fn sqlite() {
        super::stale_digests_are_settled_by_the_bodies_and_never_reported(super::Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn postgres() {
        super::stale_digests_are_settled_by_the_bodies_and_never_reported(super::Backend::Postgres).await;
    }
}

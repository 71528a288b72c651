//! A connection's imported records: listed by name or newest first, paged, filtered by parent and
//! dates, and seen by their tenant only.

use super::*;

async fn named_records_list_by_name_ascending(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let (ready, sample) = connection_with_sample(&*store, tenant).await;
    let data = &sample.data;

    let accounts = decode::<Account>(list_records(&*store, &records_of(&ready, RecordKind::Account)).await);
    assert_eq!(accounts, by_name(&data.accounts, |a| (a.name.clone(), a.id)));
    let names: Vec<String> = accounts.iter().map(|a| a.name.to_lowercase()).collect();
    assert_eq!(names, ["alpha checking", "bills", "mid card", "zeta savings", "zeta savings"]);

    let portfolios = decode::<Portfolio>(list_records(&*store, &records_of(&ready, RecordKind::Portfolio)).await);
    assert_eq!(portfolios, by_name(&data.portfolios, |p| (p.name.clone(), p.id)));

    let positions = decode::<Position>(list_records(&*store, &records_of(&ready, RecordKind::Position)).await);
    assert_eq!(positions, by_name(&data.positions, |p| (p.instrument.name.clone(), p.id)));
}
conformance!(named_records_list_by_name_ascending);

async fn dated_records_list_newest_first(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let (ready, sample) = connection_with_sample(&*store, tenant).await;
    let data = &sample.data;

    let transactions = decode::<Transaction>(list_records(&*store, &records_of(&ready, RecordKind::Transaction)).await);
    assert_eq!(transactions, newest_first(&data.transactions, |t| (t.date, t.id)));

    let trades = records_of(&ready, RecordKind::PortfolioTransaction);
    let trades = decode::<PortfolioTransaction>(list_records(&*store, &trades).await);
    assert_eq!(trades, newest_first(&data.portfolio_transactions, |t| (t.date, t.id)));

    let statements = decode::<Statement>(list_records(&*store, &records_of(&ready, RecordKind::Statement)).await);
    assert_eq!(statements, newest_first(&data.statements, |s| (s.period_start, s.id)));
    let periods: Vec<Date> = statements.iter().map(|s| s.period_start).collect();
    assert_eq!(periods, [day(2026, 1, 1), day(2025, 12, 1), day(2025, 11, 1)]);
}
conformance!(dated_records_list_newest_first);

async fn paging_records_yields_each_once_in_the_order_of_one_page(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let (ready, sample) = connection_with_sample(&*store, tenant).await;
    let data = &sample.data;
    let kinds = [
        (RecordKind::Account, data.accounts.len()),
        (RecordKind::Transaction, data.transactions.len()),
        (RecordKind::Portfolio, data.portfolios.len()),
        (RecordKind::Position, data.positions.len()),
        (RecordKind::PortfolioTransaction, data.portfolio_transactions.len()),
        (RecordKind::Statement, data.statements.len()),
    ];

    for (kind, count) in kinds {
        let query = records_of(&ready, kind);
        let one_page = ids(&list_records(&*store, &query).await, |r| r.id);
        assert_eq!(one_page.len(), count, "{kind:?}: one page");
        let (paged, pages) =
            all_pages(2, async |page| store.list_records(&RecordQuery { page, ..query.clone() }).await.unwrap()).await;
        assert_eq!(ids(&paged, |r| r.id), one_page, "{kind:?}: pages of 2");
        assert_eq!(pages, count.div_ceil(2), "{kind:?}: pages of 2");
    }

    // Cursors combine with filters: the checking account's transactions of 5 to 7 January,
    // one per page, across the two on the 5th.
    let query = RecordQuery {
        parent_id: Some(sample.checking),
        dates: DateRange { start: Some(day(2026, 1, 5)), end: Some(day(2026, 1, 7)) },
        ..records_of(&ready, RecordKind::Transaction)
    };
    let (paged, _) =
        all_pages(1, async |page| store.list_records(&RecordQuery { page, ..query.clone() }).await.unwrap()).await;
    let in_range: Vec<Transaction> = data
        .transactions
        .iter()
        .filter(|t| t.account_id == sample.checking && (day(2026, 1, 5)..=day(2026, 1, 7)).contains(&t.date))
        .cloned()
        .collect();
    assert_eq!(in_range.len(), 3);
    assert_eq!(decode::<Transaction>(paged), newest_first(&in_range, |t| (t.date, t.id)));
}
conformance!(paging_records_yields_each_once_in_the_order_of_one_page);

async fn records_filter_by_parent_and_inclusive_date_range(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let (ready, sample) = connection_with_sample(&*store, tenant).await;
    let data = &sample.data;
    let transactions = async |parent_id: Option<Uuid>, start: Option<Date>, end: Option<Date>| {
        let query =
            RecordQuery { parent_id, dates: DateRange { start, end }, ..records_of(&ready, RecordKind::Transaction) };
        decode::<Transaction>(list_records(&*store, &query).await)
    };
    let expected = |keep: &dyn Fn(&Transaction) -> bool| {
        let kept: Vec<Transaction> = data.transactions.iter().filter(|t| keep(t)).cloned().collect();
        newest_first(&kept, |t| (t.date, t.id))
    };

    let savings = transactions(Some(sample.savings), None, None).await;
    assert_eq!(savings, expected(&|t| t.account_id == sample.savings));
    assert_eq!(savings.len(), 2);

    let (start, end) = (day(2026, 1, 5), day(2026, 1, 8));
    let bounded = transactions(None, Some(start), Some(end)).await;
    assert_eq!(bounded, expected(&|t| t.date >= start && t.date <= end), "both bounds are inclusive");
    assert_eq!(bounded.len(), 5);
    assert_eq!(transactions(None, Some(start), None).await, expected(&|t| t.date >= start));
    assert_eq!(transactions(None, None, Some(end)).await, expected(&|t| t.date <= end));
    let one_day = transactions(Some(sample.checking), Some(start), Some(start)).await;
    assert_eq!(one_day, expected(&|t| t.account_id == sample.checking && t.date == start));
    assert_eq!(one_day.len(), 2);
    assert!(transactions(None, Some(day(2026, 1, 11)), None).await.is_empty());

    let positions = RecordQuery { parent_id: Some(sample.retirement), ..records_of(&ready, RecordKind::Position) };
    let positions = decode::<Position>(list_records(&*store, &positions).await);
    let retirement: Vec<Position> =
        data.positions.iter().filter(|p| p.portfolio_id == sample.retirement).cloned().collect();
    assert_eq!(positions, by_name(&retirement, |p| (p.instrument.name.clone(), p.id)));
    assert_eq!(positions.len(), 3);

    let statements = RecordQuery {
        dates: DateRange { start: Some(day(2025, 12, 1)), end: Some(day(2025, 12, 1)) },
        ..records_of(&ready, RecordKind::Statement)
    };
    let statements = decode::<Statement>(list_records(&*store, &statements).await);
    let december: Vec<Uuid> = statements.iter().map(|s| s.id).collect();
    assert_eq!(december, vec![stable_id(ready.id, "statement", "st-dec")], "statements are dated by period start");
}
conformance!(records_filter_by_parent_and_inclusive_date_range);

async fn has_record_knows_exactly_the_stored_records(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let (ready, sample) = connection_with_sample(&*store, tenant).await;
    let other = new_connection(&*store, tenant, "user-2", PROVIDER).await;
    let transaction = sample.data.transactions[0].id;

    assert!(store.has_record(tenant, ready.id, RecordKind::Account, sample.checking).await.unwrap());
    assert!(store.has_record(tenant, ready.id, RecordKind::Transaction, transaction).await.unwrap());
    assert!(store.has_record(tenant, ready.id, RecordKind::Portfolio, sample.retirement).await.unwrap());
    assert!(!store.has_record(tenant, ready.id, RecordKind::Portfolio, sample.checking).await.unwrap(), "wrong kind");
    assert!(!store.has_record(tenant, ready.id, RecordKind::Account, Uuid::now_v7()).await.unwrap(), "unknown id");
    assert!(
        !store.has_record(tenant, other.id, RecordKind::Account, sample.checking).await.unwrap(),
        "other connection"
    );
    assert!(
        !store.has_record(new_tenant(), ready.id, RecordKind::Account, sample.checking).await.unwrap(),
        "other tenant"
    );
}
conformance!(has_record_knows_exactly_the_stored_records);

async fn another_tenant_sees_none_of_a_connections_records(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let (ready, _) = connection_with_sample(&*store, tenant).await;
    let intruder = new_tenant();
    for kind in [RecordKind::Account, RecordKind::Transaction, RecordKind::Portfolio, RecordKind::Statement] {
        let query = RecordQuery { tenant: intruder, ..records_of(&ready, kind) };
        assert!(store.list_records(&query).await.unwrap().items.is_empty(), "{kind:?}");
        assert!(!list_records(&*store, &records_of(&ready, kind)).await.is_empty(), "{kind:?} of the owner");
    }
}
conformance!(another_tenant_sees_none_of_a_connections_records);

//! Sealed account details: an import stores them as given, within its tenant; the next import
//! covering their products replaces them (and one without any removes them), one of other
//! products leaves them; deleting the connection destroys them; key rotation finds and replaces
//! them like every sealed column.

use super::*;
use linkgate::crypto::SealedColumn;

async fn an_import_keeps_its_sealed_details_until_the_next_one_replaces_them(store: Arc<dyn Store>) {
    let (tenant, other_tenant) = (new_tenant(), new_tenant());
    let (ready, sample) = connection_with_sample(&*store, tenant).await;
    assert_eq!(store.account_details(tenant, ready.id).await.unwrap(), sample.data.details, "kept as given");
    assert_eq!(
        store.account_details(other_tenant, ready.id).await.unwrap(),
        SealedAccountDetails::default(),
        "another tenant's connection has none"
    );

    // A refresh whose provider delivered numbers but no owners.
    let mut refreshed = super::sample(ready.id).data;
    refreshed.details = SealedAccountDetails { owners: None, ..sealed_details(ready.id, "refresh") };
    let saved = store.save_connection(&ready, None, Some(import_of(&refreshed)), ConnectionEventType::StateChanged);
    assert!(saved.await.unwrap());
    assert_eq!(store.account_details(tenant, ready.id).await.unwrap(), refreshed.details);

    // A state change without data leaves them; an import with none removes them.
    assert!(store.save_connection(&ready, None, None, ConnectionEventType::StateChanged).await.unwrap());
    assert_eq!(store.account_details(tenant, ready.id).await.unwrap(), refreshed.details);
    refreshed.details = SealedAccountDetails::default();
    let saved = store.save_connection(&ready, None, Some(import_of(&refreshed)), ConnectionEventType::StateChanged);
    assert!(saved.await.unwrap());
    assert_eq!(store.account_details(tenant, ready.id).await.unwrap(), SealedAccountDetails::default());
    for column in [SealedColumn::AccountNumbers, SealedColumn::AccountOwners] {
        assert!(store.list_sealed(column, None, 10).await.unwrap().is_empty(), "{column:?}: no row is left");
    }
}
conformance!(an_import_keeps_its_sealed_details_until_the_next_one_replaces_them);

async fn an_import_replaces_only_the_details_of_the_products_it_covers(store: Arc<dyn Store>) {
    let (ready, sample) = connection_with_sample(&*store, new_tenant()).await;
    let tenant = ready.tenant_id;
    let mut refreshed = super::sample(ready.id).data;
    refreshed.details = sealed_details(ready.id, "refresh");

    // A refresh of transactions alone leaves both lists as they were.
    let import = Import { data: &refreshed, products: &[Product::Transactions], cursor: None };
    assert!(store.save_connection(&ready, None, Some(import), ConnectionEventType::StateChanged).await.unwrap());
    assert_eq!(store.account_details(tenant, ready.id).await.unwrap(), sample.data.details);

    // One of account numbers replaces the numbers and keeps the owners, and the other way round.
    let import = Import { data: &refreshed, products: &[Product::AccountNumbers], cursor: None };
    assert!(store.save_connection(&ready, None, Some(import), ConnectionEventType::StateChanged).await.unwrap());
    let expected = SealedAccountDetails { numbers: refreshed.details.numbers.clone(), ..sample.data.details.clone() };
    assert_eq!(store.account_details(tenant, ready.id).await.unwrap(), expected);
    refreshed.details = SealedAccountDetails::default();
    let import = Import { data: &refreshed, products: &[Product::Identity], cursor: None };
    assert!(store.save_connection(&ready, None, Some(import), ConnectionEventType::StateChanged).await.unwrap());
    let expected = SealedAccountDetails { owners: None, ..expected };
    assert_eq!(store.account_details(tenant, ready.id).await.unwrap(), expected, "owners no longer served");
}
conformance!(an_import_replaces_only_the_details_of_the_products_it_covers);

async fn deleting_a_connection_destroys_its_sealed_details_and_no_other(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let (ready, _) = connection_with_sample(&*store, tenant).await;
    let (survivor, survivor_sample) = connection_with_sample(&*store, tenant).await;

    assert!(store.delete_connection(&moved(&ready, ConnectionState::Deleted)).await.unwrap(), "deleted");

    assert_eq!(store.account_details(tenant, ready.id).await.unwrap(), SealedAccountDetails::default());
    assert_eq!(store.account_details(tenant, survivor.id).await.unwrap(), survivor_sample.data.details);
}
conformance!(deleting_a_connection_destroys_its_sealed_details_and_no_other);

async fn key_rotation_finds_and_replaces_each_sealed_detail(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let (ready, sample) = connection_with_sample(&*store, tenant).await;
    let stored = [
        (SealedColumn::AccountNumbers, sample.data.details.numbers.clone().unwrap()),
        (SealedColumn::AccountOwners, sample.data.details.owners.clone().unwrap()),
    ];
    for (column, sealed) in stored {
        let values = store.list_sealed(column, None, 10).await.unwrap();
        assert_eq!(values.len(), 1, "{column:?}");
        assert_eq!((values[0].tenant, values[0].id, &values[0].sealed), (tenant, ready.id, &sealed.0), "{column:?}");
        assert!(store.list_sealed(column, Some(ready.id), 10).await.unwrap().is_empty(), "{column:?}: paged by id");

        let resealed = format!("{column:?} under a new key").into_bytes();
        assert!(!store.replace_sealed(column, ready.id, b"not the stored value", &resealed).await.unwrap());
        assert!(store.replace_sealed(column, ready.id, &sealed.0, &resealed).await.unwrap());
        assert_eq!(store.list_sealed(column, None, 10).await.unwrap()[0].sealed, resealed, "{column:?}");
    }
    let details = store.account_details(tenant, ready.id).await.unwrap();
    assert_eq!(details.numbers.unwrap().0, b"AccountNumbers under a new key");
    assert_eq!(details.owners.unwrap().0, b"AccountOwners under a new key", "each column on its own");
}
conformance!(key_rotation_finds_and_replaces_each_sealed_detail);

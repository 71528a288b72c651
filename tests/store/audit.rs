//! The audit log: appended in order in large batches, read back by filter.

use super::*;

async fn audit_records_are_appended_in_order_in_large_batches_and_read_back_by_filter(store: Arc<dyn Store>) {
    use linkgate::domain::{AuditAction, AuditEntry};
    let (tenant, other) = (new_tenant(), new_tenant());
    let resource = Uuid::now_v7();
    // More than one multi-row INSERT's worth, across two tenants.
    let entries: Vec<AuditEntry> = (0..2500)
        .map(|i| AuditEntry {
            id: 0,
            occurred_at: now(),
            tenant_id: if i % 2 == 0 { tenant } else { other },
            api_key_id: (i % 3 == 0).then(Uuid::now_v7),
            action: if i % 5 == 0 { AuditAction::Exchange } else { AuditAction::Read },
            resource_type: "connection".to_owned(),
            resource_id: if i == 2498 { resource } else { Uuid::now_v7() },
            request_id: format!("request-{i}"),
        })
        .collect();
    store.append_audit(&entries).await.unwrap();

    let mine = store.list_audit(Some(tenant), None, 5000).await.unwrap();
    assert_eq!(mine.len(), 1250, "every record of the tenant, none of the other's");
    let expected: Vec<String> = (0..2500).rev().filter(|i| i % 2 == 0).map(|i| format!("request-{i}")).collect();
    assert_eq!(mine.iter().map(|e| e.request_id.clone()).collect::<Vec<_>>(), expected, "newest first, in order");
    let first = mine.last().unwrap();
    assert_eq!((first.action, first.api_key_id.is_some()), (AuditAction::Exchange, true), "fields survive");
    let about = store.list_audit(None, Some(resource), 10).await.unwrap();
    assert_eq!(about.iter().map(|e| e.request_id.as_str()).collect::<Vec<_>>(), ["request-2498"]);
}
conformance!(audit_records_are_appended_in_order_in_large_batches_and_read_back_by_filter);

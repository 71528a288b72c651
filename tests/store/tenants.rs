//! Tenants' API keys: each keeps the scopes it was created with, read back by id and listed.

use super::*;
use linkgate::domain::{ApiKey, Scope, Tenant};

async fn api_keys_keep_the_scopes_they_were_created_with(store: Arc<dyn Store>) {
    let tenant =
        Tenant { id: new_tenant(), name: format!("tenant-{}", Uuid::now_v7()), created_at: now(), revoked_at: None };
    assert!(store.create_tenant(&tenant).await.unwrap());
    let key = |scopes: Vec<Scope>| ApiKey {
        id: Uuid::now_v7(),
        tenant_id: tenant.id,
        secret_hmac: vec![7; 32],
        scopes,
        created_at: now(),
        revoked_at: None,
    };
    let payments = key(vec![Scope::Standard, Scope::AccountNumbersRead]);
    let verifier = key(vec![Scope::IdentityRead]);
    for created in [&payments, &verifier] {
        store.create_api_key(created).await.unwrap();
    }

    let found = store.find_active_api_key(verifier.id).await.unwrap().expect("an active key");
    assert_eq!(found.scopes, [Scope::IdentityRead], "only what it was created with");
    assert_eq!(store.list_api_keys(tenant.id).await.unwrap(), vec![payments, verifier]);
}
conformance!(api_keys_keep_the_scopes_they_were_created_with);

//! Account numbers and owners: read with an API key that carries their scopes, refused on every
//! RPC that serves them to a key without, never in clear in the database or the logs, and gone
//! with the connection and with its end user.

use crate::support::database::Backend;
use crate::support::logs::capture_logs;
use crate::support::server::{PATIENCE, TestApp, spawn_app};
use crate::support::status::assert_error;
use linkgate::domain::{AuditAction, Scope, StoredName};
use linkgate::pb;
use std::time::Duration;
use tonic::Code;
use tonic_types::StatusExt;

/// Every scope a payments service and a KYC service would ask for, and `standard` to link.
const ALL_SCOPES: &[Scope] = &[Scope::Standard, Scope::AccountNumbersRead, Scope::IdentityRead];

impl TestApp {
    /// One page of the connection's account numbers.
    async fn account_numbers(
        &mut self,
        connection_id: &str,
        account_id: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ListAccountNumbersResponse, tonic::Status> {
        let request = pb::ListAccountNumbersRequest {
            connection_id: connection_id.into(),
            account_id: account_id.into(),
            page_size,
            page_token: page_token.into(),
        };
        self.accounts.list_account_numbers(request).await.map(tonic::Response::into_inner)
    }

    /// One page of the owners of the connection's accounts.
    async fn account_owners(
        &mut self,
        connection_id: &str,
        account_id: &str,
    ) -> Result<pb::ListAccountOwnersResponse, tonic::Status> {
        let request = pb::ListAccountOwnersRequest {
            connection_id: connection_id.into(),
            account_id: account_id.into(),
            ..Default::default()
        };
        self.accounts.list_account_owners(request).await.map(tonic::Response::into_inner)
    }

    /// The connection's accounts, by name.
    async fn accounts_by_name(&mut self, connection_id: &str) -> Vec<pb::Account> {
        let request = pb::ListAccountsRequest { connection_id: connection_id.into(), ..Default::default() };
        let mut accounts = self.accounts.list_accounts(request).await.unwrap().into_inner().accounts;
        accounts.sort_by(|a, b| a.name.cmp(&b.name));
        accounts
    }
}

/// The values of numbers and owners distinctive enough to search a dump or a log for.
fn sensitive_values(numbers: &[pb::AccountNumbers], owners: &[pb::AccountOwners]) -> Vec<String> {
    let mut values = Vec::new();
    for entry in numbers {
        values.extend(entry.ach.iter().map(|a| a.account_number.clone()));
        values.extend(entry.eft.iter().map(|e| e.account_number.clone()));
        values.extend(entry.bacs.iter().map(|b| b.account_number.clone()));
        values.extend(entry.international.iter().map(|i| i.iban.clone()));
    }
    for owner in owners.iter().flat_map(|entry| &entry.owners) {
        values.extend(owner.names.iter().cloned());
        values.extend(owner.emails.iter().map(|e| e.address.clone()));
        values.extend(owner.phone_numbers.iter().map(|p| p.number.clone()));
        values.extend(owner.addresses.iter().map(|a| a.street.clone()));
    }
    assert!(values.len() >= 12, "numbers and owners were read: {values:?}");
    assert!(values.iter().all(|value| value.len() >= 8), "each value is distinctive: {values:?}");
    values
}

on_both_backends! {
    async fn a_scoped_key_reads_a_sandbox_banks_numbers_and_owners_and_each_read_is_audited(backend: Backend) {
        let mut app = crate::support::server::spawn_app(backend).await;
        app.create_tenant("payments").await;
        let key = app.create_key("payments", ALL_SCOPES).await;
        app.use_key(Some(&key));
        let connection = app.ready_connection("ins_sandbox_bank", "u-1").await;
        let ready: Vec<(pb::Product, pb::ProductState)> =
            connection.products.iter().map(|p| (p.product(), p.state())).collect();
        for product in [pb::Product::Identity, pb::Product::AccountNumbers] {
            assert!(ready.contains(&(product, pb::ProductState::Ready)), "{product:?} is linked: {ready:?}");
        }
        let accounts = app.accounts_by_name(&connection.id).await;
        let (checking, savings) = (&accounts[0], &accounts[1]);
        assert_eq!((checking.name.as_str(), savings.name.as_str()), ("Everyday Checking", "Rainy Day Savings"));

        // Numbers: every form, ordered by account id, each ending in its account's mask.
        let numbers = app.account_numbers(&connection.id, "", 0, "").await.unwrap();
        let mut expected_order = vec![checking.id.clone(), savings.id.clone()];
        expected_order.sort();
        let listed: Vec<&str> = numbers.account_numbers.iter().map(|n| n.account_id.as_str()).collect();
        assert_eq!(listed, expected_order);
        let of = |id: &str| numbers.account_numbers.iter().find(|n| n.account_id == id).unwrap();
        let ach = &of(&checking.id).ach[0];
        assert_eq!((ach.routing_number.as_str(), ach.wire_routing_number.as_str()), ("110000000", "026009593"));
        assert!(ach.account_number.ends_with(&checking.mask), "{} ends in {}", ach.account_number, checking.mask);
        let international = &of(&checking.id).international[0];
        assert!(international.iban.starts_with("ES") && international.iban.ends_with(&checking.mask));
        assert_eq!(international.bic, "SBXBESMMXXX");
        let savings_numbers = of(&savings.id);
        assert_eq!(savings_numbers.bacs[0].sort_code, "601613");
        assert_eq!(
            (savings_numbers.eft[0].institution_number.as_str(), savings_numbers.eft[0].branch_number.as_str()),
            ("003", "00011")
        );
        assert!(savings_numbers.ach.is_empty() && savings_numbers.international.is_empty());

        // One account, and page by page.
        let only = app.account_numbers(&connection.id, &savings.id, 0, "").await.unwrap();
        assert_eq!(only.account_numbers, vec![savings_numbers.clone()]);
        let first = app.account_numbers(&connection.id, "", 1, "").await.unwrap();
        assert_eq!(first.account_numbers, numbers.account_numbers[..1]);
        let second = app.account_numbers(&connection.id, "", 1, &first.next_page_token).await.unwrap();
        assert_eq!(second.account_numbers, numbers.account_numbers[1..]);
        assert!(second.next_page_token.is_empty(), "two accounts, two pages");
        let status = app.account_numbers(&connection.id, &savings.id, 1, &first.next_page_token).await.unwrap_err();
        assert_error("a token of another filter", &status, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
        let status = app.account_numbers(&connection.id, &uuid::Uuid::now_v7().to_string(), 0, "").await.unwrap_err();
        assert_error("an account of no connection", &status, Code::NotFound, "ACCOUNT_NOT_FOUND");

        // Owners: the savings account is held jointly.
        let owners = app.account_owners(&connection.id, "").await.unwrap().account_owners;
        assert_eq!(owners.len(), 2);
        let joint = app.account_owners(&connection.id, &savings.id).await.unwrap().account_owners;
        assert_eq!(joint.len(), 1);
        assert_eq!((joint[0].account_id.as_str(), joint[0].portfolio_id.as_str()), (savings.id.as_str(), ""));
        let names: Vec<&str> = joint[0].owners.iter().flat_map(|o| o.names.iter().map(String::as_str)).collect();
        assert_eq!(names, ["Alex Rivera", "Sam Rivera"]);
        let alex = &joint[0].owners[0];
        assert_eq!(alex.emails[0].address, "alex.rivera@example.com");
        assert!(alex.emails[0].primary);
        assert_eq!(alex.phone_numbers[0].r#type(), pb::PhoneNumberType::Mobile);
        let address = &alex.addresses[0];
        assert_eq!((address.city.as_str(), address.country.as_str(), address.primary), ("Madrid", "ES", true));

        // Each kind of read is audited as its own action, naming the key.
        let storage = app.storage().await;
        let connection_id = uuid::Uuid::parse_str(&connection.id).unwrap();
        let key_id = uuid::Uuid::try_parse(&key[4..36]).unwrap();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let entries = storage.store.list_audit(None, Some(connection_id), 100).await.unwrap();
            let count = |action| entries.iter().filter(|e| e.action == action && e.api_key_id == Some(key_id)).count();
            // Six reads of numbers (the last two refused by checks that follow the audit), two of
            // owners.
            if count(AuditAction::ReadAccountNumbers) == 6 && count(AuditAction::ReadAccountOwners) == 2 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the reads were never audited: {entries:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn every_rpc_that_serves_numbers_or_owners_refuses_a_key_without_its_scope() {
    let mut app = spawn_app(Backend::Sqlite).await;
    // Dev mode (no tenants, loopback) holds every scope.
    let connection = app.ready_connection("ins_sandbox_bank", "u-1").await;
    app.account_numbers(&connection.id, "", 0, "").await.expect("dev mode reads numbers");
    app.account_owners(&connection.id, "").await.expect("dev mode reads owners");

    // The dev tenant's connection is not the new tenant's: link one as the tenant.
    let standard = app.create_tenant("ledger").await;
    let numbers_only = app.create_key("ledger", &[Scope::AccountNumbersRead]).await;
    let owners_too = app.create_key("ledger", &[Scope::Standard, Scope::IdentityRead]).await;
    let before_scopes = key_stored_before_scopes(&app, "ledger").await;
    app.use_key(Some(&standard));
    let connection = app.ready_connection("ins_sandbox_bank", "u-1").await;
    let c = connection.id.as_str();

    for (case, key) in [("a standard key", &standard), ("a key stored before scopes existed", &before_scopes)] {
        app.use_key(Some(key));
        app.accounts_by_name(c).await;
        let status = app.account_numbers(c, "", 0, "").await.unwrap_err();
        assert_scope_required(&format!("{case}, ListAccountNumbers"), &status, "account_numbers:read");
        let status = app.account_owners(c, "").await.unwrap_err();
        assert_scope_required(&format!("{case}, ListAccountOwners"), &status, "identity:read");
    }

    // A key holds exactly its scopes: numbers only is no key for anything else.
    app.use_key(Some(&numbers_only));
    app.account_numbers(c, "", 0, "").await.expect("the numbers scope reads numbers");
    let status = app.account_owners(c, "").await.unwrap_err();
    assert_scope_required("numbers only, ListAccountOwners", &status, "identity:read");
    let status = app
        .accounts
        .list_accounts(pb::ListAccountsRequest { connection_id: c.into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_scope_required("numbers only, ListAccounts", &status, "standard");

    app.use_key(Some(&owners_too));
    app.account_owners(c, "").await.expect("the identity scope reads owners");
    let status = app.account_numbers(c, "", 0, "").await.unwrap_err();
    assert_scope_required("owners only, ListAccountNumbers", &status, "account_numbers:read");
}

#[track_caller]
fn assert_scope_required(case: &str, status: &tonic::Status, scope: &str) {
    assert_error(case, status, Code::PermissionDenied, "SCOPE_REQUIRED");
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.metadata.get("scope").map(String::as_str), Some(scope), "{case}: the scope is named");
}

/// A key of tenant `name` stored as keys were before scopes existed: a row without `scopes`,
/// which the migration's default fills as it filled every existing key's.
async fn key_stored_before_scopes(app: &TestApp, name: &str) -> String {
    use secrecy::ExposeSecret;
    use sqlx::Connection;
    let storage = app.storage().await;
    let tenant = storage.store.find_tenant(name).await.unwrap().unwrap();
    let (record, key) = storage.peppers.issue(tenant.id, &[]);
    let insert = sqlx::query("INSERT INTO api_keys (id, tenant_id, secret_hmac, created_at) VALUES ($1, $2, $3, $4)")
        .bind(record.id)
        .bind(tenant.id.0)
        .bind(&record.secret_hmac)
        .bind(record.created_at);
    let mut db = sqlx::SqliteConnection::connect(&app.settings().database.database_url).await.unwrap();
    insert.execute(&mut db).await.unwrap();
    let stored = storage.store.find_active_api_key(record.id).await.unwrap().unwrap();
    assert_eq!(stored.scopes, [Scope::Standard], "everything a key could call before scopes, nothing newer");
    key.expose_secret().to_owned()
}

#[tokio::test]
async fn no_number_or_owner_is_in_clear_in_a_database_dump_or_the_trace_logs() {
    let logs = capture_logs();
    let mut values = Vec::new();
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let mut app = spawn_app(backend).await;
        app.create_tenant("vault").await;
        let key = app.create_key("vault", ALL_SCOPES).await;
        app.use_key(Some(&key));
        let connection = app.ready_connection("ins_sandbox_bank", "u-1").await;
        // A refresh imports them again: the second import is sealed as well.
        app.connections
            .refresh_connection(pb::RefreshConnectionRequest {
                connection_id: connection.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        app.wait_for_connection(&connection.id, pb::ConnectionState::Ready).await;
        let numbers = app.account_numbers(&connection.id, "", 0, "").await.unwrap().account_numbers;
        let owners = app.account_owners(&connection.id, "").await.unwrap().account_owners;
        let read = sensitive_values(&numbers, &owners);

        let storage = app.storage().await;
        let sealed = storage.store.account_details(linkgate_tenant(&app, "vault").await, uuid(&connection.id)).await;
        let sealed = sealed.unwrap();
        assert!(sealed.numbers.is_some() && sealed.owners.is_some(), "{backend:?}: both are stored, sealed");
        let dump = app.database_dump().await;
        assert!(dump.contains(&connection.id) || dump.len() > 10_000, "{backend:?}: the dump is real");
        for value in &read {
            let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
            assert!(!dump.contains(value.as_str()), "{backend:?}: {value:?} is stored in clear");
            assert!(!dump.contains(&hex), "{backend:?}: {value:?} is stored in clear (as hex)");
        }
        app.shut_down().await.unwrap();
        values.extend(read);
    }
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(text.lines().count() > 100, "trace logging captured the runs ({} lines)", text.lines().count());
    for value in &values {
        let line = text.lines().find(|line| line.contains(value.as_str()));
        assert!(line.is_none(), "{value:?} appears in the logs: {line:?}");
    }
}

async fn linkgate_tenant(app: &TestApp, name: &str) -> linkgate::domain::TenantId {
    app.storage().await.store.find_tenant(name).await.unwrap().unwrap().id
}

fn uuid(id: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(id).unwrap()
}

on_both_backends! {
    async fn deleting_the_connection_or_erasing_its_user_destroys_its_numbers_and_owners(backend: Backend) {
        let mut app = spawn_app(backend).await;
        let deleted = app.ready_connection("ins_sandbox_bank", "user-deleted").await;
        let erased = app.ready_connection("ins_sandbox_bank", "user-erased").await;
        let kept = app.ready_connection("ins_sandbox_bank", "user-kept").await;
        let storage = app.storage().await;
        let dev = linkgate::domain::TenantId::DEV;
        for connection in [&deleted, &erased, &kept] {
            let sealed = storage.store.account_details(dev, uuid(&connection.id)).await.unwrap();
            assert!(sealed.numbers.is_some() && sealed.owners.is_some(), "{backend:?}: stored for {}", connection.id);
        }

        app.connections
            .delete_connection(pb::DeleteConnectionRequest { connection_id: deleted.id.clone(), ..Default::default() })
            .await
            .unwrap();
        let status = app.account_numbers(&deleted.id, "", 0, "").await.unwrap_err();
        assert_error("numbers of a deleted connection", &status, Code::FailedPrecondition, "CONNECTION_DELETED");
        app.connections
            .erase_end_user(pb::EraseEndUserRequest { external_user_id: "user-erased".into() })
            .await
            .unwrap();

        let none = linkgate::domain::SealedAccountDetails::default();
        assert_eq!(storage.store.account_details(dev, uuid(&deleted.id)).await.unwrap(), none, "{backend:?}: deleted");
        assert_eq!(storage.store.account_details(dev, uuid(&erased.id)).await.unwrap(), none, "{backend:?}: erased");
        let survivor = storage.store.account_details(dev, uuid(&kept.id)).await.unwrap();
        assert!(survivor.numbers.is_some(), "{backend:?}: another user's stay");
        app.account_owners(&kept.id, "").await.expect("and are still served");
    }
}

#[tokio::test]
async fn keys_create_takes_repeated_scopes_names_them_in_its_help_and_keys_list_shows_them() {
    use clap::{CommandFactory, Parser};
    use linkgate::cli::admin::{AdminSettings, KeyCommand};

    #[derive(Parser)]
    struct Keys {
        #[command(subcommand)]
        command: KeyCommand,
    }
    let mut command = Keys::command();
    let help = command.find_subcommand_mut("create").unwrap().render_long_help().to_string();
    for scope in Scope::ALL {
        let name = scope.name();
        assert!(help.contains(name), "--help names {name}:\n{help}");
        assert!(help.contains(scope.grants()), "--help says what {name} grants:\n{help}");
    }
    let parsed = Keys::try_parse_from(["keys", "create", "kyc", "--scope", "identity:read", "--scope", "standard"]);
    let KeyCommand::Create { tenant, scopes } = parsed.unwrap().command else { panic!("a create command") };
    assert_eq!((tenant.as_str(), scopes.as_slice()), ("kyc", [Scope::IdentityRead, Scope::Standard].as_slice()));
    let KeyCommand::Create { scopes, .. } = Keys::try_parse_from(["keys", "create", "kyc"]).unwrap().command else {
        panic!("a create command")
    };
    assert_eq!(scopes, [Scope::Standard], "standard without --scope");
    assert!(Keys::try_parse_from(["keys", "create", "kyc", "--scope", "everything"]).is_err(), "unknown scopes");

    // The command itself stores the key with its scopes.
    let app = spawn_app(Backend::Sqlite).await;
    app.create_tenant("kyc").await;
    let settings = AdminSettings { database: app.settings().database.clone(), secrets: app.settings().secrets.clone() };
    let create = KeyCommand::Create { tenant: "kyc".into(), scopes: vec![Scope::IdentityRead, Scope::Standard] };
    linkgate::cli::admin::keys(&settings, create).await.expect("the key is created");
    let storage = app.storage().await;
    let keys = storage.store.list_api_keys(linkgate_tenant(&app, "kyc").await).await.unwrap();
    let scopes: Vec<Vec<Scope>> = keys.into_iter().map(|key| key.scopes).collect();
    assert_eq!(scopes, [vec![Scope::Standard], vec![Scope::Standard, Scope::IdentityRead]]);
}

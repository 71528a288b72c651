//! Operator commands: tenants and their API keys, re-sealing secrets under a new encryption key,
//! rotating a connection's upstream token, and reading the audit trail. They work on the database directly, so they run beside serving
//! replicas (a Kubernetes Job, or `kubectl exec`).

use crate::config::{DatabaseSettings, SecretSettings};
use crate::crypto::SealedColumn;
use crate::domain::{Scope, StoredName, Tenant, TenantId, now};
use crate::server::Storage;
use anyhow::Context;
use secrecy::ExposeSecret;
use uuid::Uuid;

/// Rows re-sealed per batch by `keys rotate`.
const ROTATE_BATCH: i64 = 500;

/// Where the commands find the database and its keys.
#[derive(Debug, Clone, clap::Args)]
pub struct AdminSettings {
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub secrets: SecretSettings,
}

/// `linkgate tenants …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and its first API key (shown once).
    Create {
        /// The calling service's name, unique (for example "billing-service").
        name: String,
    },
    /// List tenants.
    List,
    /// Revoke a tenant: every key of it stops working (within seconds on every replica).
    Revoke {
        /// The tenant's name.
        name: String,
    },
}

/// `linkgate keys …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum KeyCommand {
    /// Create another API key for a tenant (shown once), to rotate keys without downtime or to
    /// grant scopes. The key holds exactly the scopes named.
    Create {
        /// The tenant's name.
        tenant: String,
        /// A scope the key holds; repeat the flag for several. Without it the key holds
        /// `standard`. Account numbers and owners need their own scope, even with `standard`.
        #[arg(long = "scope", value_name = "SCOPE", value_parser = scope_parser(), default_value = "standard")]
        scopes: Vec<Scope>,
    },
    /// List a tenant's keys (ids, scopes and dates; never the keys).
    List {
        /// The tenant's name.
        tenant: String,
    },
    /// Revoke one API key.
    Revoke {
        /// The key id (the hex part after `lgk_`, or the UUID `keys list` shows).
        key_id: String,
    },
    /// Re-seal every stored secret under the first `LINKGATE_ENCRYPTION_KEY`, in batches, while
    /// replicas keep serving. Run it after putting the new key first on every replica.
    Rotate,
}

/// Reads a scope name, listing every scope with what it grants in `--help`.
fn scope_parser() -> impl clap::builder::TypedValueParser<Value = Scope> {
    use clap::builder::TypedValueParser;
    let names = Scope::ALL.iter().map(|scope| clap::builder::PossibleValue::new(scope.name()).help(scope.grants()));
    clap::builder::PossibleValuesParser::new(names)
        .map(|name| Scope::from_name(&name).expect("clap accepts only the scopes' names"))
}

/// `linkgate connections …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ConnectionCommand {
    /// Replace a connection's upstream access token (providers that offer it: Deck), when the
    /// old one may have leaked. The provider kills the old token at once; linkgate stores the new
    /// one before anything else and polls the connection straight after, with the new token.
    RotateToken {
        /// The tenant's name.
        #[arg(long)]
        tenant: String,
        /// The connection's id.
        #[arg(long)]
        connection: Uuid,
    },
}

/// Where `connections` commands find the database, its keys and the providers.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionAdminSettings {
    #[command(flatten)]
    pub admin: AdminSettings,
    #[command(flatten)]
    pub providers: crate::config::ProviderSettings,
}

async fn storage(settings: &AdminSettings) -> anyhow::Result<Storage> {
    Storage::open(&settings.database, &settings.secrets).await
}

async fn tenant_named(storage: &Storage, name: &str) -> anyhow::Result<Tenant> {
    storage.store.find_tenant(name).await?.with_context(|| format!("no tenant named {name:?}"))
}

/// Runs a `connections` command.
pub async fn connections(settings: &ConnectionAdminSettings, command: ConnectionCommand) -> anyhow::Result<()> {
    let storage = storage(&settings.admin).await?;
    match command {
        ConnectionCommand::RotateToken { tenant, connection } => {
            let tenant = tenant_named(&storage, &tenant).await?;
            let sessions = crate::providers::session::SharedSessions::new(
                storage.store.clone(),
                storage.sealer.clone(),
                format!("admin-{}", Uuid::now_v7()),
            );
            let providers =
                crate::providers::Registry::from_settings(&settings.providers, storage.store.clone(), &sessions);
            crate::cli::rotation::rotate_connection_token(
                storage.store.as_ref(),
                &storage.sealer,
                &providers,
                tenant.id,
                connection,
            )
            .await?;
            println!("rotated the upstream token of connection {connection}; it is polled now with the new one");
        }
    }
    Ok(())
}

/// Runs a `tenants` command.
pub async fn tenants(settings: &AdminSettings, command: TenantCommand) -> anyhow::Result<()> {
    let storage = storage(settings).await?;
    match command {
        TenantCommand::Create { name } => {
            anyhow::ensure!(
                !name.is_empty() && name.len() <= 64 && !name.chars().any(char::is_control),
                "tenant names are 1 to 64 printable characters"
            );
            let tenant =
                Tenant { id: TenantId(Uuid::now_v7()), name: name.clone(), created_at: now(), revoked_at: None };
            anyhow::ensure!(storage.store.create_tenant(&tenant).await?, "a tenant named {name:?} already exists");
            let (record, key) = storage.peppers.issue(tenant.id, &[Scope::Standard]);
            storage.store.create_api_key(&record).await?;
            println!("tenant   {} ({})", tenant.name, tenant.id);
            println!("key id   {}", record.id);
            println!("api key  {}", key.expose_secret());
            println!("\nThe API key is shown only now. Callers send it as `authorization: Bearer <api key>`.");
        }
        TenantCommand::List => {
            println!("{:<36}  {:<24}  {:<20}  REVOKED", "ID", "NAME", "CREATED");
            for tenant in storage.store.list_tenants().await? {
                println!(
                    "{:<36}  {:<24}  {:<20}  {}",
                    tenant.id,
                    tenant.name,
                    tenant.created_at.format("%Y-%m-%d %H:%M:%S"),
                    tenant.revoked_at.map(|at| at.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
                );
            }
        }
        TenantCommand::Revoke { name } => {
            let tenant = tenant_named(&storage, &name).await?;
            anyhow::ensure!(
                storage.store.revoke_tenant(tenant.id, now()).await?,
                "tenant {name:?} was already revoked"
            );
            println!("revoked tenant {name} ({})", tenant.id);
        }
    }
    Ok(())
}

/// Runs a `keys` command.
pub async fn keys(settings: &AdminSettings, command: KeyCommand) -> anyhow::Result<()> {
    let storage = storage(settings).await?;
    match command {
        KeyCommand::Create { tenant, scopes } => {
            let tenant = tenant_named(&storage, &tenant).await?;
            anyhow::ensure!(tenant.revoked_at.is_none(), "tenant {:?} is revoked", tenant.name);
            let (record, key) = storage.peppers.issue(tenant.id, &scopes);
            storage.store.create_api_key(&record).await?;
            println!("key id   {}", record.id);
            println!("scopes   {}", scope_list(&record.scopes));
            println!("api key  {}", key.expose_secret());
            println!("\nThe API key is shown only now.");
        }
        KeyCommand::List { tenant } => {
            let tenant = tenant_named(&storage, &tenant).await?;
            println!("{:<36}  {:<48}  {:<20}  REVOKED", "KEY ID", "SCOPES", "CREATED");
            for key in storage.store.list_api_keys(tenant.id).await? {
                println!(
                    "{:<36}  {:<48}  {:<20}  {}",
                    key.id,
                    scope_list(&key.scopes),
                    key.created_at.format("%Y-%m-%d %H:%M:%S"),
                    key.revoked_at.map(|at| at.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
                );
            }
        }
        KeyCommand::Revoke { key_id } => {
            let id = Uuid::try_parse(key_id.trim_start_matches("lgk_").split('_').next().unwrap_or_default())
                .context("a key id is a UUID (or the hex after lgk_)")?;
            anyhow::ensure!(storage.store.revoke_api_key(id, now()).await?, "no active key {id}");
            println!("revoked key {id}; replicas stop accepting it within {:?}", crate::server::auth::KEY_CACHE_TTL);
        }
        KeyCommand::Rotate => {
            for column in SealedColumn::ALL {
                let (checked, resealed) = reseal(&storage, column).await?;
                println!("{column:?}: {checked} values checked, {resealed} re-sealed under the current key");
            }
        }
    }
    Ok(())
}

/// Scope names as `keys` prints them.
fn scope_list(scopes: &[Scope]) -> String {
    if scopes.is_empty() {
        return "-".to_owned();
    }
    Scope::list(scopes)
}

/// Re-seals one column's values that are not under the current key. Returns (checked, re-sealed).
async fn reseal(storage: &Storage, column: SealedColumn) -> anyhow::Result<(usize, usize)> {
    let (mut checked, mut resealed) = (0, 0);
    let mut after = None;
    loop {
        let page = storage.store.list_sealed(column, after, ROTATE_BATCH).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for value in page {
            checked += 1;
            if storage.sealer.is_current(&value.sealed) {
                continue;
            }
            let context = column.context(value.tenant, value.id);
            let plain = storage
                .sealer
                .open(&value.sealed, &context)
                .with_context(|| format!("opening {column:?} {}", value.id))?;
            let fresh = storage.sealer.seal(plain.expose_secret().as_bytes(), &context);
            // A row changed meanwhile was written under the current key already.
            if storage.store.replace_sealed(column, value.id, &value.sealed, &fresh).await? {
                resealed += 1;
            }
        }
    }
    Ok((checked, resealed))
}

/// `linkgate audit`: the newest records first.
pub async fn audit(
    settings: &AdminSettings,
    tenant: Option<String>,
    resource: Option<Uuid>,
    limit: i64,
) -> anyhow::Result<()> {
    let storage = storage(settings).await?;
    let tenant = match tenant {
        Some(name) => Some(tenant_named(&storage, &name).await?.id),
        None => None,
    };
    println!("{:<26}  {:<36}  {:<36}  {:<19}  {:<36}  REQUEST", "WHEN", "TENANT", "KEY", "ACTION", "RESOURCE");
    for entry in storage.store.list_audit(tenant, resource, limit).await? {
        println!(
            "{:<26}  {:<36}  {:<36}  {:<19}  {:<36}  {}",
            entry.occurred_at.format("%Y-%m-%d %H:%M:%S%.6f"),
            entry.tenant_id,
            entry.api_key_id.map(|id| id.to_string()).unwrap_or_else(|| "-".to_owned()),
            entry.action.name(),
            format!("{}/{}", entry.resource_type, entry.resource_id),
            entry.request_id
        );
    }
    Ok(())
}

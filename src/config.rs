//! Settings of `linkgate serve`: flags, each with a `LINKGATE_*` environment variable, and
//! defaults that run the embedded setup (SQLite file, sandbox provider, loopback listeners).

use secrecy::SecretString;
use std::net::SocketAddr;
use std::time::Duration;

/// Everything `serve` needs.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Address of the gRPC listener.
    #[arg(long, env = "LINKGATE_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,

    /// Address of the HTTP listener (webhooks, /metrics, /healthz).
    #[arg(long, env = "LINKGATE_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseSettings,

    #[command(flatten)]
    pub providers: ProviderSettings,

    #[command(flatten)]
    pub sync: SyncSettings,
}

/// Where linkgate keeps its data and how it seals secrets.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` (embedded, created if missing) or `postgres://…`.
    #[arg(long, env = "LINKGATE_DATABASE_URL", default_value = "sqlite://linkgate.db")]
    pub database_url: String,

    /// Maximum pooled database connections.
    #[arg(long, env = "LINKGATE_DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,

    /// Base64 of 32 random bytes that seal upstream secrets (AES-256-GCM). Required on
    /// PostgreSQL. On SQLite, when unset, linkgate keeps a generated key in a file next to the
    /// database (`<database>.key`).
    #[arg(long, env = "LINKGATE_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<SecretString>,
}

/// Provider switches and settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ProviderSettings {
    #[command(flatten)]
    pub sandbox: SandboxSettings,
}

/// The built-in sandbox provider.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxSettings {
    /// Offer the built-in sandbox provider.
    #[arg(long = "sandbox-enabled", env = "LINKGATE_SANDBOX_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,

    /// How long the sandbox's first import of a connection takes.
    #[arg(long = "sandbox-import-delay", env = "LINKGATE_SANDBOX_IMPORT_DELAY", default_value = "2s", value_parser = parse_duration)]
    pub import_delay: Duration,

    /// How long a sandbox public token stays exchangeable.
    #[arg(long = "sandbox-public-token-ttl", env = "LINKGATE_SANDBOX_PUBLIC_TOKEN_TTL", default_value = "30m", value_parser = parse_duration)]
    pub public_token_ttl: Duration,

    /// How often linkgate polls the sandbox about unsettled sessions and connections.
    #[arg(long = "sandbox-poll-interval", env = "LINKGATE_SANDBOX_POLL_INTERVAL", default_value = "500ms", value_parser = parse_duration)]
    pub poll_interval: Duration,
}

/// The background sync engine.
#[derive(Debug, Clone, clap::Args)]
pub struct SyncSettings {
    /// How often each replica looks for due work.
    #[arg(long = "sync-tick", env = "LINKGATE_SYNC_TICK", default_value = "250ms", value_parser = parse_duration)]
    pub tick: Duration,

    /// How long a replica owns an item it leased before another may take it over.
    #[arg(long = "sync-lease", env = "LINKGATE_SYNC_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub lease: Duration,
}

/// Parses "250ms", "2s", "5m" or "1h".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 250ms, 2s, 5m or 1h"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" | "" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        "h" => Ok(Duration::from_secs(number * 3600)),
        _ => Err(format!("{text:?} has an unknown unit; use ms, s, m or h")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_reject_garbage() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 weeks").is_err());
    }
}

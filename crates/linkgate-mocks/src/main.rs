//! `linkgate-mock`: the upstream provider mocks as their own process, for demos, manual testing
//! and load tests (`linkgate-mock deck --addr 127.0.0.1:9103`). Each mock imitates its provider's
//! API and adds an admin API under `/__admin/` that scripts faults and reports call counts.

use clap::{Parser, Subcommand};
use linkgate_mocks::MockServer;
use linkgate_mocks::deck::{self, DeckMockOptions};
use linkgate_mocks::moneykit::{self, MoneyKitMockOptions};
use linkgate_mocks::vumi::{self, VumiMockOptions};
use std::net::SocketAddr;
use tracing_subscriber::EnvFilter;

/// Mock servers of the upstream providers linkgate calls.
///
/// Admin API of every mock: POST /__admin/faults with {"kind": "status"|"delay"|"rate_limit"|
/// "malformed"|"oversized"|"drop", "times": N, "path": "/endpoint", ...} scripts faults;
/// GET /__admin/calls reports calls per endpoint; DELETE /__admin/faults and POST /__admin/reset
/// clear them.
#[derive(Parser)]
#[command(name = "linkgate-mock", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    provider: ProviderMock,
}

#[derive(Subcommand)]
enum ProviderMock {
    /// Deck's legacy product API under /api/v1 (point LINKGATE_DECK_BASE_URL at
    /// http://ADDR/api/v1; keys test-client / test-secret). Users: user_good, user_mfa (answer
    /// 1234), user_security, user_select, user_error; password pass_good.
    Deck {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9103")]
        addr: SocketAddr,

        #[command(flatten)]
        options: DeckMockOptions,
    },
    /// Vumi Finlink's API under /api/v1 (point LINKGATE_VUMI_BASE_URL at http://ADDR/api/v1;
    /// credentials test-client / test-secret; any redirect id). The widget is played by
    /// POST /__admin/connect {"externalId": ..., "entity": ...}; POST /__admin/session/expire
    /// ends the live session.
    Vumi {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9101")]
        addr: SocketAddr,

        #[command(flatten)]
        options: VumiMockOptions,
    },
    /// MoneyKit's API at the host root (point LINKGATE_MONEYKIT_BASE_URL at http://ADDR; OAuth
    /// client test-client / test-secret). Connect is simulated by POST /__admin/connect with
    /// {"link_session_token": ..., "institution_id": "chase"}, which answers the exchangeable
    /// token; POST /__admin/tokens/expire lapses every access token.
    Moneykit {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9102")]
        addr: SocketAddr,

        #[command(flatten)]
        options: MoneyKitMockOptions,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let result = match Cli::parse().provider {
        ProviderMock::Deck { addr, options } => {
            let client_id = options.client_id.clone();
            run("Deck", addr, client_id, deck::spawn(addr, options).await).await
        }
        ProviderMock::Vumi { addr, options } => {
            let client_id = options.client_id.clone();
            run("Vumi", addr, client_id, vumi::spawn(addr, options).await).await
        }
        ProviderMock::Moneykit { addr, options } => {
            let client_id = options.client_id.clone();
            run("MoneyKit", addr, client_id, moneykit::spawn(addr, options).await).await
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("linkgate-mock: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(
    name: &str,
    addr: SocketAddr,
    client_id: String,
    spawned: std::io::Result<MockServer>,
) -> anyhow::Result<()> {
    let server = spawned.map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
    tracing::info!(base_url = %server.base_url(), admin = %server.admin_url(), client_id, "{name} mock listening");
    eprintln!("{name} mock: API {} (client id {client_id}), admin {}", server.base_url(), server.admin_url());
    server.run_until(async { tokio::signal::ctrl_c().await.unwrap_or(()) }).await;
    Ok(())
}

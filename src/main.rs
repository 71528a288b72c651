//! The `linkgate` command: `serve` runs a replica, `migrate` brings a database schema up to date.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use linkgate::cli::admin::{
    self, AdminSettings, ConnectionAdminSettings, ConnectionCommand, KeyCommand, TenantCommand,
};
use linkgate::cli::config_file;
use linkgate::config::{DatabaseSettings, Settings};
use linkgate::server::Application;
use tokio_util::sync::CancellationToken;

/// jemalloc rather than glibc's malloc: after a burst of allocations (thousands of watch streams
/// opening and closing) its background thread returns the freed pages to the system within
/// seconds, where glibc's per-thread arenas kept the resident set near its peak (README,
/// Operations: memory).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// One gRPC API over account-aggregation providers.
#[derive(Parser)]
#[command(name = "linkgate", version, about)]
struct Cli {
    /// TOML settings file: keys are the LINKGATE_* variables without the prefix, in lower case,
    /// optionally grouped in tables (`[deck] client_id = "…"`). The environment and flags override it.
    #[arg(long, global = true, env = "LINKGATE_CONFIG", value_name = "PATH")]
    config: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Command,
}

/// The command line, with the settings file's values as defaults when one is named.
fn parse_command_line() -> anyhow::Result<Cli> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut command = Cli::command();
    if let Some(path) = config_file::path_from(&args, std::env::var_os(config_file::CONFIG_ENV)) {
        command = config_file::apply_file(command, &path)?;
    }
    let matches = command.get_matches_from(args);
    Cli::from_arg_matches(&matches).map_err(|error| error.exit())
}

#[derive(Subcommand)]
// Parsed once at start; boxing the settings would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Serve gRPC (and HTTP) until SIGTERM or SIGINT. With no configuration: SQLite file
    /// `linkgate.db`, sandbox provider, gRPC on 127.0.0.1:50051.
    Serve(Settings),
    /// Check the settings `serve` would run with: print them with secrets masked and list every
    /// problem at once. Exits non-zero when there is one.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Apply pending database migrations, then exit.
    Migrate(DatabaseSettings),
    /// Manage tenants (the internal services that call linkgate).
    Tenants {
        #[command(subcommand)]
        command: TenantCommand,
        #[command(flatten)]
        settings: AdminSettings,
    },
    /// Manage API keys, and re-seal stored secrets after adding an encryption key.
    Keys {
        #[command(subcommand)]
        command: KeyCommand,
        #[command(flatten)]
        settings: AdminSettings,
    },
    /// Operate on a connection: rotate its upstream access token.
    Connections {
        #[command(subcommand)]
        command: ConnectionCommand,
        #[command(flatten)]
        settings: ConnectionAdminSettings,
    },
    /// Walk the sandbox flow against a running linkgate: link a bank (with MFA) and a broker,
    /// follow their first imports, read accounts and positions, then delete the connections.
    Demo {
        /// gRPC address of the linkgate to call.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        addr: String,
        /// API key to call with; not needed while the server is in dev mode.
        #[arg(long, env = "LINKGATE_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
    },
    /// Show the audit trail: who created, exchanged, read, refreshed or deleted what.
    Audit {
        /// Only this tenant's records (by name).
        #[arg(long)]
        tenant: Option<String>,
        /// Only records about this connection or link session.
        #[arg(long)]
        resource: Option<uuid::Uuid>,
        /// Most records to show, newest first.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[command(flatten)]
        settings: AdminSettings,
    },
}

#[derive(Subcommand)]
// Parsed once at start; boxing the settings would buy nothing.
#[allow(clippy::large_enum_variant)]
enum ConfigCommand {
    /// Print the effective settings (defaults, then the settings file, LINKGATE_* variables and
    /// flags) and check them.
    Check(Settings),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _telemetry = linkgate::telemetry::init();
    let cli = match parse_command_line() {
        Ok(cli) => cli,
        Err(error) => {
            eprintln!("linkgate: {error:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(settings) => serve(settings).await,
        Command::Config { command: ConfigCommand::Check(settings) } => check(&settings),
        Command::Migrate(database) => migrate(database).await,
        Command::Demo { addr, api_key } => linkgate::cli::demo::run(addr, api_key).await,
        Command::Tenants { command, settings } => admin::tenants(&settings, command).await,
        Command::Keys { command, settings } => admin::keys(&settings, command).await,
        Command::Connections { command, settings } => admin::connections(&settings, command).await,
        Command::Audit { tenant, resource, limit, settings } => admin::audit(&settings, tenant, resource, limit).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error.cause_chain = %format!("{error:#}"), "linkgate failed");
            eprintln!("linkgate: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    refuse_problems(&settings)?;
    let application = Application::build(settings).await?;
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    application.run_until_stopped(stop).await
}

fn refuse_problems(settings: &Settings) -> anyhow::Result<()> {
    let problems = settings.problems();
    anyhow::ensure!(problems.is_empty(), "invalid settings:\n  {}", problems.join("\n  "));
    Ok(())
}

/// `linkgate config check`: secrets print as redacted, by their types.
fn check(settings: &Settings) -> anyhow::Result<()> {
    println!("{settings:#?}");
    refuse_problems(settings)?;
    println!("settings are valid");
    Ok(())
}

async fn migrate(database: DatabaseSettings) -> anyhow::Result<()> {
    linkgate::store::open(&database.database_url, 2, true).await?;
    tracing::info!("migrations applied");
    Ok(())
}

/// Cancels `stop` on the first SIGTERM or SIGINT.
async fn stop_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
    }
    stop.cancel();
}

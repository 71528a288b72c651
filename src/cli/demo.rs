//! `linkgate demo`: walks the sandbox flow against a running linkgate, for newcomers.
//!
//! Through the public gRPC API only, it links Sandbox Bank (with an MFA question) and Sandbox
//! Broker, exchanges their public tokens, follows each first import on the connection stream, reads
//! accounts and positions, deletes both connections and ends with a summary of what it read. On a
//! terminal each step redraws one status line as it progresses; otherwise every change is a plain
//! line, so the output reads well in a log too. Every call and every stream is bounded by 30 s.

use crate::pb;
use crate::pb::account_service_client::AccountServiceClient;
use crate::pb::connection_service_client::ConnectionServiceClient;
use crate::pb::link_service_client::LinkServiceClient;
use crate::pb::portfolio_service_client::PortfolioServiceClient;
use anyhow::{Context, bail};
use linkgate_client::{Authed, Client};
use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::Endpoint;
use tonic_types::StatusExt;

/// The bound on every call and on every wait for a stream.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The end user the demo links accounts for.
const EXTERNAL_USER_ID: &str = "demo-user";

/// Runs the demo against the linkgate at `addr` (`http://host:port`; `host:port` works too).
/// `api_key` is sent on every call; without one the server must be in dev mode.
pub async fn run(addr: String, api_key: Option<String>) -> anyhow::Result<()> {
    let url = if addr.contains("://") { addr } else { format!("http://{addr}") };
    let mut progress = Progress::new();

    progress.start(format!("Connect to {url}"));
    let channel = Endpoint::from_shared(url.clone())
        .with_context(|| format!("invalid address {url}"))?
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT)
        .connect()
        .await
        .with_context(|| format!("connecting to {url}; is `linkgate serve` running there?"))?;
    let client = Client::from_channel(channel, api_key.as_deref())?;
    let mut demo = Demo {
        link: client.link,
        connections: client.connections,
        accounts: client.accounts,
        portfolios: client.portfolios,
        progress,
    };
    let providers = demo.link.list_providers(pb::ListProvidersRequest {}).await.map_err(failed)?.into_inner();
    if !providers.providers.iter().any(|p| p.id == "sandbox" && p.enabled) {
        bail!("the sandbox provider is not enabled on this server (LINKGATE_SANDBOX_ENABLED=true turns it on)");
    }
    demo.progress.done("the sandbox provider is enabled");

    let bank = demo.link_institution("Sandbox Bank", "ins_sandbox_bank", "user_mfa", Some("1234")).await?;
    let mut accounts = demo.read_accounts("Sandbox Bank", &bank).await?;
    let broker = demo.link_institution("Sandbox Broker", "ins_sandbox_broker", "user_good", None).await?;
    accounts.extend(demo.read_accounts("Sandbox Broker", &broker).await?);
    let positions = demo.read_positions("Sandbox Broker", &broker).await?;
    demo.delete(&[bank, broker]).await?;

    print_summary(&accounts, &positions);
    Ok(())
}

/// The clients the demo calls, and its progress display.
struct Demo {
    link: LinkServiceClient<Authed>,
    connections: ConnectionServiceClient<Authed>,
    accounts: AccountServiceClient<Authed>,
    portfolios: PortfolioServiceClient<Authed>,
    progress: Progress,
}

impl Demo {
    /// Links an institution with the credentials flow, answering its MFA question when there is
    /// one, exchanges the public token and waits for the connection's first import. Returns the
    /// connection id.
    async fn link_institution(
        &mut self,
        name: &str,
        institution_id: &str,
        username: &str,
        mfa_answer: Option<&str>,
    ) -> anyhow::Result<String> {
        self.progress.start(format!("Link {name}"));
        let session = self
            .link
            .create_link_session(pb::CreateLinkSessionRequest {
                provider: "sandbox".into(),
                external_user_id: EXTERNAL_USER_ID.into(),
                institution_id: institution_id.into(),
                ..Default::default()
            })
            .await
            .map_err(failed)?
            .into_inner()
            .link_session
            .context("CreateLinkSession answered no session")?;
        self.progress.update(format!("session {} {}", session.id, short(session.state().as_str_name())));

        // Watch from the start, so every state the session passes through shows; the first message
        // (the current state) means the watch is established.
        let deadline = Instant::now() + TIMEOUT;
        let mut watch = self
            .link
            .watch_link_session(pb::WatchLinkSessionRequest { link_session_id: session.id.clone() })
            .await
            .map_err(failed)?
            .into_inner();
        next_before(&mut watch, deadline).await?.context("the link session stream ended at once")?;

        let credentials = [("username", username), ("password", "pass_good")];
        let submitted = self
            .link
            .submit_credentials(pb::SubmitCredentialsRequest {
                link_session_id: session.id.clone(),
                credentials: credentials.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
                ..Default::default()
            })
            .await
            .map_err(failed)?
            .into_inner()
            .link_session
            .unwrap_or_default();
        self.progress.update(format!("credentials sent as {username}: {}", short(submitted.state().as_str_name())));

        if submitted.state() == pb::LinkSessionState::MfaRequired {
            let answer = mfa_answer.context("the institution asked an MFA question the demo cannot answer")?;
            self.progress.update(format!("MFA question {:?}: answering {answer}", submitted.mfa_question));
            let answered = self
                .link
                .answer_mfa(pb::AnswerMfaRequest {
                    link_session_id: session.id.clone(),
                    answer: answer.into(),
                    ..Default::default()
                })
                .await
                .map_err(failed)?
                .into_inner()
                .link_session
                .unwrap_or_default();
            self.progress.update(format!("MFA answered: {}", short(answered.state().as_str_name())));
        }

        // The stream ends by itself after a terminal state.
        let mut public_token = None;
        while let Some(message) = next_before(&mut watch, deadline).await? {
            let session = message.link_session.unwrap_or_default();
            self.progress.update(format!("session {}", short(session.state().as_str_name())));
            match session.state() {
                pb::LinkSessionState::Succeeded => public_token = Some(session.public_token),
                pb::LinkSessionState::Failed | pb::LinkSessionState::Expired => {
                    bail!(
                        "the link session ended {}: {}",
                        short(session.state().as_str_name()),
                        session.failure_message
                    )
                }
                _ => {}
            }
        }
        let public_token = public_token.context("the link session stream ended before SUCCEEDED")?;
        self.progress.done("linked; public token issued");

        self.progress.start(format!("Import {name}"));
        let connection = self
            .link
            .exchange_public_token(pb::ExchangePublicTokenRequest {
                provider: "sandbox".into(),
                public_token,
                ..Default::default()
            })
            .await
            .map_err(failed)?
            .into_inner()
            .connection
            .context("ExchangePublicToken answered no connection")?;
        self.progress.update(format!(
            "token exchanged: connection {} {}",
            connection.id,
            short(connection.state().as_str_name())
        ));

        // This stream stays open until the connection is deleted; it is dropped once READY.
        let deadline = Instant::now() + TIMEOUT;
        let mut events = self
            .connections
            .watch_connection(pb::WatchConnectionRequest { connection_id: connection.id.clone(), after_event_id: 0 })
            .await
            .map_err(failed)?
            .into_inner();
        loop {
            let message =
                next_before(&mut events, deadline).await?.context("the connection stream ended before READY")?;
            let event = message.event.unwrap_or_default();
            let state = event.connection.unwrap_or_default().state();
            self.progress.update(format!("event {}: {}", event.event_id, short(state.as_str_name())));
            match state {
                pb::ConnectionState::Ready => break,
                pb::ConnectionState::Pending | pb::ConnectionState::Refreshing => {}
                other => bail!("the connection turned {} during its first import", short(other.as_str_name())),
            }
        }
        self.progress.done(format!("connection {} is READY", connection.id));
        Ok(connection.id)
    }

    /// Reads every account of a connection.
    async fn read_accounts(&mut self, name: &str, connection_id: &str) -> anyhow::Result<Vec<pb::Account>> {
        self.progress.start(format!("Read {name} accounts"));
        let mut accounts = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .accounts
                .list_accounts(pb::ListAccountsRequest {
                    connection_id: connection_id.into(),
                    page_token,
                    ..Default::default()
                })
                .await
                .map_err(failed)?
                .into_inner();
            accounts.extend(page.accounts);
            if page.next_page_token.is_empty() {
                break;
            }
            self.progress.update(format!("{} so far", count(accounts.len(), "account")));
            page_token = page.next_page_token;
        }
        self.progress.done(count(accounts.len(), "account"));
        Ok(accounts)
    }

    /// Reads the positions of every portfolio of a connection (the demo's broker has one portfolio
    /// with a handful of positions, so a single page of each is all there is).
    async fn read_positions(&mut self, name: &str, connection_id: &str) -> anyhow::Result<Vec<pb::Position>> {
        self.progress.start(format!("Read {name} positions"));
        let portfolios = self
            .portfolios
            .list_portfolios(pb::ListPortfoliosRequest { connection_id: connection_id.into(), ..Default::default() })
            .await
            .map_err(failed)?
            .into_inner()
            .portfolios;
        let mut positions = Vec::new();
        for portfolio in &portfolios {
            self.progress.update(format!("portfolio {}", portfolio.name));
            let page = self
                .portfolios
                .list_portfolio_positions(pb::ListPortfolioPositionsRequest {
                    connection_id: connection_id.into(),
                    portfolio_id: portfolio.id.clone(),
                    page_size: 500,
                    ..Default::default()
                })
                .await
                .map_err(failed)?
                .into_inner();
            positions.extend(page.positions);
        }
        self.progress.done(format!("{}, {}", count(portfolios.len(), "portfolio"), count(positions.len(), "position")));
        Ok(positions)
    }

    /// Deletes the connections the demo made, so a second run starts from the same place.
    async fn delete(&mut self, connection_ids: &[String]) -> anyhow::Result<()> {
        self.progress.start("Delete the demo's connections");
        for connection_id in connection_ids {
            let deleted = self
                .connections
                .delete_connection(pb::DeleteConnectionRequest {
                    connection_id: connection_id.clone(),
                    ..Default::default()
                })
                .await
                .map_err(failed)?
                .into_inner()
                .connection
                .unwrap_or_default();
            self.progress.update(format!("connection {connection_id} {}", short(deleted.state().as_str_name())));
        }
        self.progress.done(format!("{} deleted", count(connection_ids.len(), "connection")));
        Ok(())
    }
}

/// Describes a failed call with linkgate's machine-readable reason from `google.rpc.ErrorInfo`.
fn failed(status: tonic::Status) -> anyhow::Error {
    let reason = status.get_details_error_info().map_or_else(|| "no ErrorInfo".to_owned(), |info| info.reason);
    anyhow::anyhow!("{:?}: {} (reason {reason})", status.code(), status.message())
}

/// The next message of `stream`, or `None` when it ended, waiting at most until `deadline`.
async fn next_before<T>(stream: &mut tonic::Streaming<T>, deadline: Instant) -> anyhow::Result<Option<T>> {
    tokio::time::timeout_at(deadline, stream.message()).await.context("timed out waiting on a stream")?.map_err(failed)
}

/// `n` and a noun, plural unless `n` is 1: "1 account", "3 accounts".
fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// A state's proto name without its type prefix: `MFA_REQUIRED`, `READY`.
fn short(name: &'static str) -> &'static str {
    name.split_once("_STATE_").map_or(name, |(_, state)| state)
}

/// The step being shown: one status line redrawn in place on a terminal, plain lines otherwise.
struct Progress {
    terminal: bool,
    step: Option<(String, Instant)>,
}

impl Progress {
    fn new() -> Self {
        let dumb = std::env::var_os("TERM").is_some_and(|term| term == "dumb");
        Self { terminal: std::io::stdout().is_terminal() && !dumb, step: None }
    }

    fn start(&mut self, step: impl Into<String>) {
        let step = step.into();
        if self.terminal {
            redraw(format_args!("... {step}"), false);
        } else {
            println!("{step}");
        }
        self.step = Some((step, Instant::now()));
    }

    fn update(&mut self, detail: impl Display) {
        let Some((step, _)) = &self.step else { return };
        if self.terminal {
            redraw(format_args!("... {step}: {detail}"), false);
        } else {
            println!("  {detail}");
        }
    }

    fn done(&mut self, detail: impl Display) {
        let Some((step, started)) = self.step.take() else { return };
        let took = started.elapsed().as_secs_f64();
        if self.terminal {
            redraw(format_args!(" ok {step}: {detail} ({took:.1}s)"), true);
        } else {
            println!("  done: {detail} ({took:.1}s)");
        }
    }
}

impl Drop for Progress {
    /// Marks a step that never finished, so the error printed next stands on its own line.
    fn drop(&mut self) {
        if let Some((step, _)) = self.step.take() {
            if self.terminal {
                redraw(format_args!("FAIL {step}"), true);
            } else {
                println!("  failed");
            }
        }
    }
}

/// Replaces the terminal's current line with `line` (ANSI: carriage return, erase line). A line
/// still in progress is cut to the terminal's width (`$COLUMNS`, else 80), since erasing only
/// reaches back one row; a finished line may wrap.
fn redraw(line: std::fmt::Arguments<'_>, finished: bool) {
    let mut line = line.to_string();
    if !finished {
        let width = std::env::var("COLUMNS").ok().and_then(|c| c.parse::<usize>().ok()).unwrap_or(80);
        if let Some((cut, _)) = line.char_indices().nth(width.saturating_sub(2)) {
            line.truncate(cut);
            line.push('…');
        }
    }
    let mut out = std::io::stdout().lock();
    let end = if finished { "\n" } else { "" };
    // A closed stdout is no reason to stop the demo.
    let _ = write!(out, "\r\x1b[2K{line}{end}").and_then(|()| out.flush());
}

/// Prints what the demo read: the accounts, then the positions.
fn print_summary(accounts: &[pb::Account], positions: &[pb::Position]) {
    let money = |m: Option<&pb::Money>| m.map_or_else(|| "-".to_owned(), |m| format!("{} {}", m.amount, m.currency));
    println!();
    println!("Accounts");
    let rows: Vec<_> = accounts
        .iter()
        .map(|a| {
            let kind = a.r#type().as_str_name().trim_start_matches("ACCOUNT_TYPE_").replace('_', " ").to_lowercase();
            [a.name.clone(), kind, money(a.balances.as_ref().and_then(|b| b.current.as_ref()))]
        })
        .collect();
    print_table(["name", "type", "balance"], [false, false, true], &rows);
    println!();
    println!("Positions");
    let rows: Vec<_> = positions
        .iter()
        .map(|p| {
            let instrument = p.instrument.as_ref().map_or("-", |i| i.name.as_str());
            [instrument.to_owned(), p.quantity.clone(), money(p.market_value.as_ref())]
        })
        .collect();
    print_table(["instrument", "quantity", "market value"], [false, true, true], &rows);
}

/// Prints a table, each column as wide as its widest cell; `right` aligns number columns right.
fn print_table<const N: usize>(header: [&str; N], right: [bool; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let cells: Vec<_> = cells
            .iter()
            .zip(widths)
            .zip(right)
            .map(|((cell, width), right)| if right { format!("{cell:>width$}") } else { format!("{cell:<width$}") })
            .collect();
        println!("  {}", cells.join("  ").trim_end());
    };
    line(header);
    line(widths.map(|width| "-".repeat(width)).each_ref().map(String::as_str));
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
    if rows.is_empty() {
        println!("  (none)");
    }
}

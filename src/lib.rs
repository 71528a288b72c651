//! linkgate: one gRPC API over account-aggregation providers.
//!
//! Read it top-down, outside in:
//!
//! - `server`: a replica put together and run: startup, authentication and API-key scopes,
//!   admission, the HTTP listener (health, metrics, webhooks in).
//! - `api`: the gRPC services, each a thin layer between `pb` and the service core.
//! - `app`: the service core, free of gRPC: link sessions, connections and their repair, reads
//!   (account numbers and owners sealed apart) and the change feed, watches, the sync engine and
//!   consent calendar, erasure, sandbox controls, the event bus, the connection cache, audit,
//!   webhook inbox, limits.
//! - `providers`: adapters that translate to each upstream API, over one upstream client.
//! - `store`: everything kept, in PostgreSQL or SQLite, behind one trait per concern.
//! - `domain`: the normalized model, free of protobuf and of storage.
//! - `cli`: operator commands and the sandbox demo.
//! - beside them: `config` (settings), `crypto` (sealing, webhook signatures), `error` (the one
//!   error type and its one mapping to gRPC status), `telemetry` (logs, traces, metrics) and `pb`
//!   (the generated contract).

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod pb;
pub mod providers;
pub mod server;
pub mod store;
pub mod telemetry;

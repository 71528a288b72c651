//! linkgate: one gRPC API over account-aggregation providers.
//!
//! Read it top-down: `api` is the gRPC surface, `app` the service core whose operations live in
//! `link`, `connections`, `reads`, `watch` and `sync`; `providers` translate to upstream APIs;
//! `store` keeps everything in PostgreSQL or SQLite; `startup` wires a replica together.

pub mod admin;
pub mod admission;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod client;
pub mod config;
pub mod config_file;
pub mod connection_cache;
pub mod connections;
pub mod crypto;
pub mod demo;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod jws;
pub mod limits;
pub mod link;
pub mod metrics;
pub mod mocks;
pub mod page_token;
pub mod pb;
pub mod providers;
pub mod reads;
pub mod rotation;
pub mod startup;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod watch;
pub mod webhooks;

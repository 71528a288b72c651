//! linkgate's API tests: each starts the real server on a random port over a fresh database and
//! talks to it through the generated gRPC clients.

#[path = "../support/mod.rs"]
mod support;

mod sandbox;

/// Expands one test body into a test per store backend, so a failure names its backend.
macro_rules! on_both_backends {
    (async fn $name:ident($backend:ident: Backend) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn case($backend: crate::support::database::Backend) $body

            #[tokio::test]
            async fn postgres() {
                case(crate::support::database::Backend::Postgres).await
            }

            #[tokio::test]
            async fn sqlite() {
                case(crate::support::database::Backend::Sqlite).await
            }
        }
    };
}

mod bad_input;
mod consent;
mod erasure;
mod event_order;
mod exchange;
mod feed;
mod flow;
mod grpc_web;
mod health;
mod identity;
mod institutions;
mod link;
mod repair;
mod replicas;
mod security;
mod storm;
mod tls;
mod transport;
mod watch;
mod webhooks;

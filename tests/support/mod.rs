//! Helpers shared by the integration test binaries.

// Each test binary uses a part of the shared helpers.
#![allow(dead_code)]

pub mod database;
pub mod deck_openapi;
pub mod feed;
pub mod logs;
pub mod moneykit_requests;
pub mod server;
pub mod status;

pub mod pb;
pub mod domain;
pub mod config;
pub mod error;
pub mod providers;
pub mod store;

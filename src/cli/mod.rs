//! Operator commands beside `serve`: tenants, keys and connections managed from a shell next to
//! the replicas (`admin`, `rotation`), the sandbox walk-through (`demo`), and the settings file
//! that gives every command its defaults (`config_file`).

pub mod admin;
pub mod config_file;
pub mod demo;
pub mod rotation;

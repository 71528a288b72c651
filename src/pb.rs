//! `linkgate.v1` for the server: the messages and client stubs of `linkgate-client`, the service
//! traits generated here, and the descriptor set that server reflection serves.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

pub use linkgate_client::pb::*;

tonic::include_proto!("linkgate.v1");

/// Encoded `FileDescriptorSet` of every linkgate proto and its imports, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("linkgate_descriptor");

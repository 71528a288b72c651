//! The generated protobuf and gRPC code of `linkgate.v1`, and the descriptor set that server
//! reflection serves.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("linkgate.v1");

/// Encoded `FileDescriptorSet` of every linkgate proto and its imports, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("linkgate_descriptor");

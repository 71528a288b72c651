//! Generates the gRPC service traits and the reflection descriptor set from `proto/`.
//!
//! The messages and client stubs come from the `linkgate-client` crate (`extern_path`), so a
//! server and its Rust callers share one set of types. protoc comes from the
//! `protoc-bin-vendored` crate unless `PROTOC` is set, so a machine with only the Rust toolchain
//! can build linkgate.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    if std::env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "proto/linkgate/v1/common.proto",
        "proto/linkgate/v1/error_reason.proto",
        "proto/linkgate/v1/link_service.proto",
        "proto/linkgate/v1/connection_service.proto",
        "proto/linkgate/v1/account_service.proto",
        "proto/linkgate/v1/portfolio_service.proto",
        "proto/linkgate/v1/statement_service.proto",
        "proto/linkgate/v1/sandbox_service.proto",
    ];
    tonic_prost_build::configure()
        .build_client(false)
        .extern_path(".linkgate.v1", "::linkgate_client::pb")
        .file_descriptor_set_path(out_dir.join("linkgate_descriptor.bin"))
        .compile_with_config(config, &protos, &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}

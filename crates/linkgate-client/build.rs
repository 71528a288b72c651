//! Generates the `linkgate.v1` messages and client stubs from the repository's `proto/`.
//!
//! protoc comes from the `protoc-bin-vendored` crate unless `PROTOC` is set, so a machine with only
//! the Rust toolchain can build the client. The server crate generates its service traits from
//! the same files and reuses these messages.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    if std::env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let protos = [
        "common.proto",
        "error_reason.proto",
        "link_service.proto",
        "connection_service.proto",
        "account_service.proto",
        "portfolio_service.proto",
        "statement_service.proto",
        "sandbox_service.proto",
    ]
    .map(|file| root.join("linkgate/v1").join(file));
    tonic_prost_build::configure().build_server(false).compile_with_config(
        config,
        &protos,
        std::slice::from_ref(&root),
    )?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}

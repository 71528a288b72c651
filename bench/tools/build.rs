//! Generates the echo server and the linkgate client code (from linkgate's own proto/).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    if std::env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }
    let protos = [
        "proto/echo.proto",
        "../../proto/linkgate/v1/link_service.proto",
        "../../proto/linkgate/v1/connection_service.proto",
        "../../proto/linkgate/v1/account_service.proto",
    ];
    tonic_prost_build::configure().build_server(true).compile_with_config(config, &protos, &["proto", "../../proto"])?;
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=../../proto");
    Ok(())
}

//! Compiles every contract under `proto/` with the protoc that ships inside the
//! protoc-bin-vendored crate, so no system protoc is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos: Vec<PathBuf> = [
        "proto/corebank/platform/v1/platform.proto",
        "proto/corebank/ledger/v1/ledger.proto",
        "proto/corebank/saga/v1/saga.proto",
        "proto/corebank/deposits/v1/deposits.proto",
        "proto/corebank/payments/v1/payments.proto",
        "proto/corebank/legacy/v1/legacy.proto",
        "proto/corebank/gateway/v1/gateway.proto",
        "proto/corebank/migration/v1/migration.proto",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &protos, &[PathBuf::from("proto")])?;
    Ok(())
}

//! Compiles the public API and the storage format with a vendored `protoc`,
//! and writes the descriptor set that feeds server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known = protoc_bin_vendored::include_path()?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos: Vec<PathBuf> = [
        "proto/connvault/v1/tenant_service.proto",
        "proto/connvault/v1/data_source_service.proto",
        "proto/connvault/v1/connection_service.proto",
        "proto/connvault/v1/metadata.proto",
        "proto/connvault/v1/audit_service.proto",
        "proto/connvault/v1/admin_service.proto",
        "proto/connvault/storage/v1/storage.proto",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        // Undecodable requests are INVALID_ARGUMENT, not prost's INTERNAL.
        .codec_path("crate::codec::ApiCodec")
        .file_descriptor_set_path(out_dir.join("connvault_descriptor.bin"))
        .compile_with_config(config, &protos, &[PathBuf::from("proto"), well_known])?;
    Ok(())
}

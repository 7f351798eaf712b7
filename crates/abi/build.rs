//! Compiles the plugin protocol with a vendored `protoc`, so a fresh machine builds.
//!
//! The crate carries its own copy of `plugin.proto` (a published crate cannot
//! read the repository's `proto/`); `tests/proto_copy.rs` fails when the two drift.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let file = root.join("connvault/plugin/v1/plugin.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    config.btree_map(["."]);
    config.compile_protos(&[file], &[root])?;
    Ok(())
}

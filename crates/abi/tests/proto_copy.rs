//! The crate's copy of `plugin.proto` is the repository's, byte for byte:
//! the repository's `proto/` is the one source, the crate carries a copy so
//! it can be published.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

#[test]
fn the_crate_carries_the_repository_plugin_proto() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repository = manifest.join("../../proto/connvault/plugin/v1/plugin.proto");
    let copy = manifest.join("proto/connvault/plugin/v1/plugin.proto");
    let Ok(source) = std::fs::read_to_string(&repository) else {
        // A packaged crate, outside the repository: nothing to compare with.
        assert!(
            !manifest.join("../../Cargo.toml").exists(),
            "cannot read {}",
            repository.display()
        );
        return;
    };
    let carried = std::fs::read_to_string(&copy).unwrap();
    assert!(
        source == carried,
        "{} differs from {}: copy it over (cp proto/connvault/plugin/v1/plugin.proto crates/abi/proto/connvault/plugin/v1/)",
        copy.display(),
        repository.display()
    );
}

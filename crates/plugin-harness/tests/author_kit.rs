//! What a third-party plugin author gets works from outside the repository:
//! the out-of-tree example plugin builds against the SDK by path and passes
//! its harness tests, and the ABI and SDK crates package (and build from
//! their packages, without the repository's `proto/`) offline.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::{Command, Output};

use connvault_testkit::{plugin_target_dir, workspace_root};

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // The builds share the plugin builds' target directory: its
    // dependencies are compiled once for both.
    command.env("CARGO_TARGET_DIR", plugin_target_dir());
    command
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Copies the example (sources and manifest; not a lock) to `to`, its path
/// dependencies pointed at this checkout's crates, and gives it the
/// workspace's lock: the same versions the workspace is tested with, all
/// already downloaded.
fn copy_example(to: &Path) {
    let example = workspace_root().join("examples/out-of-tree-plugin");
    let crates = workspace_root().join("crates");
    let manifest = std::fs::read_to_string(example.join("Cargo.toml"))
        .unwrap()
        .replace("\"../../crates/", &format!("\"{}/", crates.display()));
    assert!(manifest.contains(&format!("path = \"{}/sdk\"", crates.display())));
    std::fs::create_dir_all(to.join("src")).unwrap();
    std::fs::create_dir_all(to.join("tests")).unwrap();
    std::fs::write(to.join("Cargo.toml"), manifest).unwrap();
    for file in ["src/lib.rs", "tests/harness.rs"] {
        std::fs::copy(example.join(file), to.join(file)).unwrap();
    }
    std::fs::copy(workspace_root().join("Cargo.lock"), to.join("Cargo.lock")).unwrap();
}

#[test]
fn the_out_of_tree_example_plugin_builds_and_passes_its_harness_tests() {
    let copy = plugin_target_dir().join("out-of-tree-plugin");
    copy_example(&copy);
    let output = cargo()
        .arg("test")
        .arg("--manifest-path")
        .arg(copy.join("Cargo.toml"))
        .output()
        .unwrap();
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    assert!(
        report.contains("test result: ok. 5 passed"),
        "the harness tests did not all run:\n{report}"
    );
}

#[test]
fn the_abi_and_sdk_crates_package_and_build_offline() {
    let crates = [
        "connvault-plugin-abi",
        "connvault-egress",
        "connvault-plugin-sdk",
    ];
    let mut package = cargo();
    package
        .current_dir(workspace_root())
        .args(["package", "--offline", "--allow-dirty"]);
    for name in crates {
        package.args(["-p", name]);
    }
    let output = package.output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    for name in crates {
        let file = plugin_target_dir()
            .join("package")
            .join(format!("{name}-{}.crate", env!("CARGO_PKG_VERSION")));
        assert!(file.is_file(), "{} missing", file.display());
    }

    // The ABI crate carries the proto it compiles.
    let listed = cargo()
        .current_dir(workspace_root())
        .args([
            "package",
            "--list",
            "--offline",
            "--allow-dirty",
            "-p",
            "connvault-plugin-abi",
        ])
        .output()
        .unwrap();
    let files = text(&listed);
    assert!(listed.status.success(), "{files}");
    for expected in [
        "proto/connvault/plugin/v1/plugin.proto",
        "build.rs",
        "README.md",
    ] {
        assert!(
            files.lines().any(|line| line == expected),
            "{expected} not in:\n{files}"
        );
    }
}

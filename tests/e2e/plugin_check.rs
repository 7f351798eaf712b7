//! `connvault plugin check`: the real binary on good and bad plugin files.

use std::path::Path;
use std::process::Command;

use connvault_testkit::{PluginDir, compile_c_plugin, workspace_root};

use crate::support::fixture_so;

/// Runs `connvault plugin check` with `args`; whether it passed, and what it printed.
fn check(file: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_connvault"))
        .args(["plugin", "check"])
        .arg(file)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn plugin_check_passes_a_good_plugin_and_names_each_problem_of_a_bad_one() {
    let dir = PluginDir::new();
    let good = dir.add(&fixture_so(), "fixture");
    let (passed, text) = check(&good, &[]);
    assert!(passed, "{text}");
    for expected in [
        "ok      load-time checks and schema lint: connvault-fixture-testplugin",
        "Process isolation",
        "ok      validate testdb with no config: answered with",
        "ok      validate testdb with a sample config",
        "0 problem(s)",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }
    let pin = crate::support::sha256_file(&good);
    assert!(check(&good, &["--sha256", &pin]).0);
    let (passed, text) = check(&good, &["--sha256", &"0".repeat(64)]);
    assert!(
        !passed && text.contains("does not match the pinned"),
        "{text}"
    );

    // Named so the server would skip it.
    let (passed, text) = check(&fixture_so(), &[]);
    assert!(!passed, "{text}");
    assert!(text.contains("PROBLEM file name"), "{text}");

    // Not a shared object.
    let garbage = dir.add_bytes(b"not a shared object", "garbage");
    let (passed, text) = check(&garbage, &[]);
    assert!(!passed && text.contains("not a loadable ELF"), "{text}");

    let out = tempfile::tempdir().unwrap();
    // A schema the lint refuses.
    let schema = workspace_root().join("crates/host/tests/fixtures/schema_plugin.c");
    let empty_enum = compile_c_plugin(
        &schema,
        out.path(),
        "connvault_plugin_lint",
        &["EMPTY_ENUM"],
    );
    let (passed, text) = check(&empty_enum, &[]);
    assert!(!passed, "{text}");
    assert!(text.contains("is an enum with no allowed values"), "{text}");

    // A validate that crashes: the runner dies, the check reports it.
    let faulty = workspace_root().join("plugins/fixtures/faulty/plugin.c");
    let crashing = compile_c_plugin(
        &faulty,
        out.path(),
        "connvault_plugin_crashing",
        &["FAULTY_DEFAULT_MODE=\"segv\""],
    );
    let (passed, text) = check(&crashing, &[]);
    assert!(!passed, "{text}");
    assert!(
        text.contains("PROBLEM validate faulty with no config") && text.contains("SIGSEGV"),
        "{text}"
    );
}

//! Test support for connvault's own tests.
//!
//! `cargo test` does not build a `cdylib`-only crate unless something depends
//! on it, so tests that load plugins build them with a separate `cargo build`
//! invocation ([`build_plugins`]) and copy them into a temporary plugin
//! directory under a plugin name ([`PluginDir`]).
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod fakes;
pub mod harness;
pub mod listeners;
pub mod provider;
pub mod servers;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The workspace root (where the root `Cargo.toml` is).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The cargo target directory tests build into.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("target"),
    }
}

/// Where tests build plugins: a target directory of its own, because a
/// second build of the SDK (with other features) beside the outer one leaves
/// two candidates for the same crate in `deps/` and breaks doctests.
pub fn plugin_target_dir() -> PathBuf {
    target_dir().join("plugins")
}

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Builds the given workspace packages (cdylib plugins) and returns the
/// directory holding their shared libraries: in the dev profile for tests, in
/// the release profile when the caller is optimised (benchmarks), so a
/// benchmark never measures an unoptimised plugin.
///
/// Cargo's own lock serialises concurrent invocations from parallel test
/// processes; a build that is already fresh returns in well under a second.
pub fn build_plugins(packages: &[&str]) -> PathBuf {
    let _guard = BUILD_LOCK
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root())
        .arg("build")
        .arg("--quiet")
        .env("CARGO_TARGET_DIR", plugin_target_dir());
    for package in packages {
        command.args(["-p", package]);
    }
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        command.arg("--release");
        "release"
    };
    let status = command.status().expect("run cargo build for plugins");
    assert!(status.success(), "cargo build of {packages:?} failed");
    plugin_target_dir().join(profile)
}

/// The file name of a shared library: `lib{stem}.so` on Linux.
pub fn dylib_name(stem: &str) -> String {
    format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// A temporary plugin directory (mode 0755) that tests fill with plugin files.
pub struct PluginDir {
    dir: tempfile::TempDir,
}

impl Default for PluginDir {
    fn default() -> Self {
        Self::new()
    }
}

impl PluginDir {
    /// An empty directory.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp plugin dir"),
        }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copies `source` in as `libconnvault_plugin_{name}.so`, mode 0644; returns the new path.
    pub fn add(&self, source: &Path, name: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let target = self
            .dir
            .path()
            .join(dylib_name(&format!("connvault_plugin_{name}")));
        std::fs::copy(source, &target).expect("copy plugin");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644))
            .expect("chmod plugin");
        target
    }

    /// Writes `bytes` as `libconnvault_plugin_{name}.so`, mode 0644.
    pub fn add_bytes(&self, bytes: &[u8], name: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let target = self
            .dir
            .path()
            .join(dylib_name(&format!("connvault_plugin_{name}")));
        std::fs::write(&target, bytes).expect("write plugin");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644))
            .expect("chmod plugin");
        target
    }
}

/// Compiles a C plugin with the system compiler (`-Wall -Werror -fvisibility=hidden`)
/// against `include/connvault_plugin.h`; `defines` select variants. Returns the `.so` path.
pub fn compile_c_plugin(source: &Path, out_dir: &Path, stem: &str, defines: &[&str]) -> PathBuf {
    let out = out_dir.join(dylib_name(stem));
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let mut command = Command::new(cc);
    command
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror"])
        .arg("-fvisibility=hidden")
        .arg("-I")
        .arg(workspace_root().join("include"))
        .arg("-o")
        .arg(&out)
        .arg(source);
    for define in defines {
        command.arg(format!("-D{define}"));
    }
    let output = command.output().expect("run the C compiler");
    assert!(
        output.status.success(),
        "C plugin failed to compile: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// Builds the C example plugin (`plugins/examples/c-minimal`) as its
/// Makefile does, into `out_dir`: protoc-c generates the protobuf code for
/// `plugin.proto` (without the proto3 `optional` keyword, which Debian's
/// protoc-c 1.4 does not read), and the plugin links libprotobuf-c. Returns
/// the `.so` path (`libc_minimal.so`).
pub fn compile_c_example(out_dir: &Path) -> PathBuf {
    let proto =
        std::fs::read_to_string(workspace_root().join("proto/connvault/plugin/v1/plugin.proto"))
            .expect("read plugin.proto");
    let stripped: String = proto
        .lines()
        .map(|line| {
            let indent = line.len() - line.trim_start().len();
            match line.trim_start().strip_prefix("optional ") {
                Some(rest) => format!("{}{rest}\n", &line[..indent]),
                None => format!("{line}\n"),
            }
        })
        .collect();
    let gen_dir = out_dir.join("gen");
    let proto_dir = gen_dir.join("proto/connvault/plugin/v1");
    std::fs::create_dir_all(&proto_dir).expect("create the generated-code directory");
    std::fs::write(proto_dir.join("plugin.proto"), stripped).expect("write plugin.proto");
    let output = Command::new("protoc-c")
        .arg(format!("--c_out={}", gen_dir.display()))
        .arg("-I")
        .arg(gen_dir.join("proto"))
        .arg("connvault/plugin/v1/plugin.proto")
        .output()
        .expect("run protoc-c (scripts/test-deps.sh installs protobuf-c-compiler)");
    assert!(
        output.status.success(),
        "protoc-c failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out = out_dir.join(dylib_name("c_minimal"));
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let output = Command::new(cc)
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror"])
        .arg("-fvisibility=hidden")
        .arg("-I")
        .arg(workspace_root().join("include"))
        .arg("-I")
        .arg(&gen_dir)
        .arg("-o")
        .arg(&out)
        .arg(workspace_root().join("plugins/examples/c-minimal/plugin.c"))
        .arg(gen_dir.join("connvault/plugin/v1/plugin.pb-c.c"))
        .arg("-lprotobuf-c")
        .output()
        .expect("run the C compiler");
    assert!(
        output.status.success(),
        "the C example failed to compile: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

//! Every RPC: `[caller][rpc][request message]`, decoded as the server
//! decodes it and served by the real handlers over a sled store in a
//! temporary directory and the C example plugin (built with the system C
//! compiler: its calls stay in-process and never touch the network).
#![no_main]

use std::path::PathBuf;
use std::sync::{LazyLock, OnceLock};

use connvault::fuzzing::rpc::{RpcFixture, check_answer};
use connvault_testkit::{compile_c_plugin, workspace_root};
use libfuzzer_sys::fuzz_target;

struct Harness {
    runtime: tokio::runtime::Runtime,
    fixture: RpcFixture,
}

/// The temporary data directory, removed when libFuzzer exits (statics are
/// never dropped, so an `atexit` hook does it).
static DATA_DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_data_dir() {
    if let Some(dir) = DATA_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let data = tempfile::Builder::new()
        .prefix("connvault-fuzz-")
        .tempdir()
        .expect("data dir")
        .keep();
    let _ = DATA_DIR.set(data.clone());
    // SAFETY: `remove_data_dir` is an `extern "C" fn()` that never unwinds.
    unsafe { libc::atexit(remove_data_dir) };
    let plugins = data.join("plugins");
    std::fs::create_dir(&plugins).expect("plugin dir");
    let source = workspace_root().join("plugins/examples/c-minimal/plugin.c");
    compile_c_plugin(&source, &plugins, "connvault_plugin_c_minimal", &[]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let fixture = runtime
        .block_on(RpcFixture::start(&data, &plugins))
        .expect("fixture");
    Harness { runtime, fixture }
});

// The harness is built before the first input, so its one-time work (the
// plugin build and load, the store) is not charged to an input.
fuzz_target!(
    init: {
        LazyLock::force(&HARNESS);
    },
    |data: &[u8]| {
        let harness = &*HARNESS;
        if let Some(answer) = harness.runtime.block_on(harness.fixture.call(data)) {
            check_answer(&answer);
        }
    }
);

//! `connvault plugin check FILE.so`: checks a plugin file before it is
//! deployed, as the server would load it, in a runner process.

use std::path::PathBuf;

use connvault_plugin_host::Isolation;
use connvault_plugin_host::check::{Report, check};

/// The arguments of `connvault plugin check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The plugin file (`libconnvault_plugin_<name>.so`).
    pub file: PathBuf,
    /// The SHA-256 (hex) the file must have: the pin you will configure.
    #[arg(long)]
    pub sha256: Option<String>,
    /// Load it into this process instead of a runner (as `isolation =
    /// "in-process"` would): a crash then ends the check.
    #[arg(long)]
    pub in_process: bool,
}

/// Checks the file; the report, whose `problems()` says whether it passed.
pub async fn run(args: &CheckArgs) -> Report {
    let mut options = crate::config::PluginConfig::default().host_options(false, Vec::new());
    options.require_pins = false;
    if let (Some(pin), Some(name)) = (&args.sha256, args.file.file_name()) {
        options
            .pins
            .insert(name.to_string_lossy().into_owned(), pin.clone());
    }
    options.isolation = if args.in_process {
        Isolation::InProcess
    } else {
        Isolation::Process
    };
    options.isolation_overrides.clear();
    check(&args.file, &options).await
}

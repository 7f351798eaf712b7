//! Load a built connvault plugin through the real ABI and call it from a
//! unit test, without a server.
//!
//! [`Harness::load`] takes a shared library and loads it exactly as the
//! server does (every file check, `dlopen`, the descriptor checks, `init`,
//! `describe` and the schema lint), in this process; its methods make the
//! calls the server makes, each under a deadline, and
//! [`Harness::server_refusals`] runs the checks the server applies to a
//! `validate` answer before it stores one. [`Harness::built`] finds the
//! library `cargo test` built for the crate under test.
//!
//! A plugin crate built as `crate-type = ["cdylib", "rlib"]` gets its
//! `lib<name>.so` built by `cargo test` beside the test binaries:
//!
//! ```no_run
//! use connvault_plugin_harness::{Harness, string};
//!
//! let harness = Harness::built("connvault_plugin_echo").unwrap();
//! let spec = harness.spec("echo", &[("host", string("db.example"))], &[]);
//! let answer = harness.validate(&spec).unwrap();
//! assert!(answer.violations.is_empty(), "{:?}", answer.violations);
//! assert!(harness.server_refusals(&spec, &answer).is_empty());
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use connvault_plugin_abi::pb;
pub use connvault_plugin_host::{CallError, LoadError, Mismatch, Plugin};
use connvault_plugin_host::{
    HostOptions, PluginHost, ProviderClient, check_normalized_config, check_secret_names,
};

/// Why a harness could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// The built library is not where `cargo test` puts it.
    #[error("no {name} in {dirs}: build the crate as crate-type = [\"cdylib\", \"rlib\"]")]
    NotBuilt {
        /// The file name looked for.
        name: String,
        /// Where it was looked for.
        dirs: String,
    },
    /// The loader refused the library, as the server would.
    #[error("the server would refuse {path}: {reason}")]
    Refused {
        /// The library.
        path: PathBuf,
        /// Why (the loader's [`LoadError`], as the server logs it).
        reason: String,
    },
    /// The async runtime the calls run on did not start.
    #[error("cannot start the harness's runtime: {0}")]
    Runtime(std::io::Error),
}

/// A plugin loaded through the real ABI, and the calls the server makes to it.
pub struct Harness {
    plugin: Arc<Plugin>,
    runtime: tokio::runtime::Runtime,
    deadline: Duration,
    tenant: String,
    _host: PluginHost,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("plugin", &self.plugin)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// Loads the library at `path` as the server loads a plugin, in this process.
    pub fn load(path: &Path) -> Result<Harness, HarnessError> {
        Self::load_with(path, &HostOptions::default())
    }

    /// Loads with the given host options (pins, lanes, limits).
    pub fn load_with(path: &Path, options: &HostOptions) -> Result<Harness, HarnessError> {
        let host = PluginHost::load_files(&[path.to_owned()], options);
        if let Some(refusal) = host.refused().first() {
            return Err(HarnessError::Refused {
                path: path.to_owned(),
                reason: refusal.error.to_string(),
            });
        }
        let plugin = host
            .plugins()
            .first()
            .cloned()
            .ok_or_else(|| HarnessError::NotBuilt {
                name: path.display().to_string(),
                dirs: String::new(),
            })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(HarnessError::Runtime)?;
        Ok(Harness {
            plugin,
            runtime,
            deadline: Duration::from_secs(10),
            tenant: "harness".to_owned(),
            _host: host,
        })
    }

    /// Loads `lib<lib_name>.so` that `cargo test` built beside the running
    /// test binary (`target/<profile>/`), for a crate whose `[lib] name` is
    /// `lib_name` and whose `crate-type` includes `cdylib`.
    pub fn built(lib_name: &str) -> Result<Harness, HarnessError> {
        let path = built_library(lib_name)?;
        Self::load(&path)
    }

    /// Sets the deadline of each call (10 s unless set).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The loaded plugin (name, version, SHA-256, counters).
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// What the plugin described, as the server checked it.
    pub fn describe(&self) -> &pb::DescribeResponse {
        self.plugin.description()
    }

    /// The data source `id`, as described.
    pub fn data_source(&self, id: &str) -> Option<&pb::DataSource> {
        self.describe()
            .data_sources
            .iter()
            .find(|source| source.id == id)
    }

    /// A connection of data source `data_source` with `config` and `secrets`.
    pub fn spec(
        &self,
        data_source: &str,
        config: &[(&str, pb::Value)],
        secrets: &[(&str, &str)],
    ) -> pb::ConnectionSpec {
        pb::ConnectionSpec {
            data_source: data_source.to_owned(),
            config: config
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value.clone()))
                .collect(),
            secrets: secrets
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
            tls: None,
        }
    }

    /// Calls `validate`.
    pub fn validate(&self, spec: &pb::ConnectionSpec) -> Result<pb::ValidateResponse, CallError> {
        let request = pb::ValidateRequest {
            connection: Some(spec.clone()),
            ..pb::ValidateRequest::default()
        };
        self.runtime
            .block_on(self.plugin.validate(&request, self.deadline))
    }

    /// Calls `test` (a real connection attempt), with the call's deadline.
    pub fn test(&self, spec: &pb::ConnectionSpec) -> Result<pb::TestResponse, CallError> {
        let request = pb::TestRequest {
            connection: Some(spec.clone()),
            deadline_ms: u32::try_from(self.deadline.as_millis()).unwrap_or(u32::MAX),
            egress: None,
        };
        self.runtime
            .block_on(self.plugin.test(&self.tenant, &request, self.deadline))
    }

    /// Calls `discover`.
    pub fn discover(
        &self,
        request: &pb::DiscoverRequest,
    ) -> Result<pb::DiscoverResponse, CallError> {
        self.runtime
            .block_on(self.plugin.discover(&self.tenant, request, self.deadline))
    }

    /// Calls `render`, with or without the secrets.
    pub fn render(
        &self,
        spec: &pb::ConnectionSpec,
        include_secrets: bool,
    ) -> Result<pb::RenderResponse, CallError> {
        let request = pb::RenderRequest {
            connection: Some(spec.clone()),
            include_secrets,
        };
        self.runtime
            .block_on(self.plugin.render(&request, self.deadline))
    }

    /// What the server would refuse in `answer` to validating `spec` before
    /// storing it: it stores the answer's `normalized_config` (so every field
    /// sent must be kept, and typed as the schema says) and seals the
    /// request's secrets (so each must be a declared secret field). Empty
    /// when the server would store the connection.
    pub fn server_refusals(
        &self,
        spec: &pb::ConnectionSpec,
        answer: &pb::ValidateResponse,
    ) -> Vec<Mismatch> {
        let Some(source) = self.data_source(&spec.data_source) else {
            return vec![Mismatch {
                field: "data_source".to_owned(),
                problem: "is not a data source of this plugin".to_owned(),
            }];
        };
        let mut found = check_normalized_config(source, &spec.config, &answer.normalized_config);
        found.extend(check_secret_names(
            source,
            spec.secrets.keys().map(String::as_str),
        ));
        found
    }
}

/// A string config value.
pub fn string(text: &str) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::StringValue(text.to_owned())),
    }
}

/// An integer config value.
pub fn int(number: i64) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::IntValue(number)),
    }
}

/// A boolean config value.
pub fn boolean(value: bool) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::BoolValue(value)),
    }
}

/// A string-list config value.
pub fn list(values: &[&str]) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::ListValue(pb::StringList {
            values: values.iter().map(|value| (*value).to_owned()).collect(),
        })),
    }
}

/// Where `cargo test` put `lib<lib_name>.so`: beside the test binary's
/// `deps/` directory (`target/<profile>/`), or in it.
pub fn built_library(lib_name: &str) -> Result<PathBuf, HarnessError> {
    let name = format!(
        "{}{lib_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let exe = std::env::current_exe().map_err(|_| HarnessError::NotBuilt {
        name: name.clone(),
        dirs: "(the test binary's directory is unknown)".to_owned(),
    })?;
    let deps = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let profile = deps.parent().map(Path::to_path_buf).unwrap_or_default();
    let candidates = [profile.join(&name), deps.join(&name)];
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .ok_or_else(|| HarnessError::NotBuilt {
            name,
            dirs: format!("{} or {}", profile.display(), deps.display()),
        })
}

//! Starts the real `connvault` binary on a free loopback port with a temp
//! data directory and a plugin directory holding the fixture plugin.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use connvault::pb::v1;
use connvault::pb::v1::connection_service_client::ConnectionServiceClient;
use connvault::pb::v1::data_source_service_client::DataSourceServiceClient;
use connvault::pb::v1::tenant_service_client::TenantServiceClient;
use connvault_testkit::{PluginDir, build_plugins, dylib_name};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The HS256 secret test servers verify tokens with.
pub const TOKEN_SECRET: &str = "connvault-e2e-token-secret-0123456789abcdef";
/// The issuer and audience test servers require.
pub const ISSUER: &str = "connvault-test";
pub const AUDIENCE: &str = "connvault";

/// Attaches `authorization: Bearer <token>` to every request.
#[derive(Clone)]
pub struct Bearer(pub Option<String>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        Ok(request)
    }
}

/// A channel that sends a bearer token.
pub type Authed = InterceptedService<Channel, Bearer>;

/// Mints a test token.
pub fn token(subject: &str, tenants: &[&str], roles: &[connvault::auth::Role]) -> String {
    let config = connvault::auth::AuthConfig {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        ..Default::default()
    };
    let secret = secrecy::SecretString::from(TOKEN_SECRET.to_owned());
    let tenants: Vec<String> = tenants.iter().map(|t| (*t).to_owned()).collect();
    connvault::auth::Minter::new(&secret, &config)
        .mint(subject, &tenants, roles, connvault::auth::unix_now(), 3600)
        .unwrap()
}

/// A token for every tenant and every role: what the pre-auth tests act as.
pub fn operator_token() -> String {
    use connvault::auth::Role;
    token(
        "operator",
        &["*"],
        &[Role::Admin, Role::Reader, Role::Writer, Role::Resolver],
    )
}

/// The fixture plugin, built once per test process by a separate cargo invocation.
pub fn fixture_so() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        build_plugins(&["connvault-fixture-testplugin"]).join(dylib_name("cvfixture_test"))
    })
    .clone()
}

/// How to start a server.
#[derive(Default)]
pub struct Options {
    /// Base64 master key; `None` runs with `--dev`.
    pub master_key: Option<String>,
    /// More `serve` flags.
    pub args: Vec<String>,
    /// `auth.jwks_file` (a file setting only).
    pub jwks_file: Option<PathBuf>,
    /// More plugin files, each copied in under a plugin name.
    pub plugins: Vec<(PathBuf, String)>,
    /// More TOML appended to the config file (`[egress]` settings...).
    pub toml: String,
    /// Start the server under this open-file limit (soft and hard).
    pub open_files: Option<u64>,
}

/// A running server and the directories it owns.
pub struct Server {
    child: Option<Child>,
    pub addr: String,
    /// The HTTP listener's base URL (`http://127.0.0.1:port`), empty when off.
    pub http_addr: String,
    pub data: tempfile::TempDir,
    pub plugins: PluginDir,
    pub log: PathBuf,
    options: Options,
    /// Every line the server printed on stdout.
    pub stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Server {
        let mut server = Self::prepare(options);
        server
            .spawn()
            .unwrap_or_else(|error| panic!("server did not start: {error}"));
        server
    }

    /// A server with its directories made but no process yet (`spawn` starts it).
    pub fn prepare(options: Options) -> Server {
        let plugins = PluginDir::new();
        plugins.add(&fixture_so(), "fixture");
        for (file, name) in &options.plugins {
            plugins.add(file, name);
        }
        let data = tempfile::tempdir().unwrap();
        let log = data.path().join("server.log");
        Server {
            child: None,
            addr: String::new(),
            http_addr: String::new(),
            data,
            plugins,
            log,
            options,
            stdout: Default::default(),
        }
    }

    /// Replaces the `serve` flags the next `spawn` adds.
    pub fn set_args(&mut self, args: &[&str]) {
        self.options.args = args.iter().map(|arg| (*arg).to_owned()).collect();
    }

    /// Starts a dev-mode server whose plugin directory also holds first-party
    /// plugins, each given as (cargo package, library stem, plugin name), e.g.
    /// `("connvault-plugin-postgres", "connvault_plugin_postgres", "postgres")`.
    pub fn start_with_plugins(extra: &[(&str, &str, &str)]) -> Server {
        Self::start_with_options_and_plugins(Options::default(), extra)
    }

    /// Starts a server with `options` whose plugin directory also holds the
    /// first-party plugins `extra` (see [`Server::start_with_plugins`]).
    pub fn start_with_options_and_plugins(
        options: Options,
        extra: &[(&str, &str, &str)],
    ) -> Server {
        let plugins = PluginDir::new();
        plugins.add(&fixture_so(), "fixture");
        let packages: Vec<&str> = extra.iter().map(|(package, _, _)| *package).collect();
        let built = build_plugins(&packages);
        for (_, stem, name) in extra {
            plugins.add(&built.join(dylib_name(stem)), name);
        }
        let data = tempfile::tempdir().unwrap();
        let log = data.path().join("server.log");
        let mut server = Server {
            child: None,
            addr: String::new(),
            http_addr: String::new(),
            data,
            plugins,
            log,
            options,
            stdout: Default::default(),
        };
        server
            .spawn()
            .unwrap_or_else(|error| panic!("server did not start: {error}"));
        server
    }

    /// Starts the process on the same data directory; returns stderr on failure.
    pub fn spawn(&mut self) -> Result<(), String> {
        let mut command = match self.options.open_files {
            // The shell sets both limits, then becomes the server (same pid).
            Some(limit) => {
                let mut command = Command::new("sh");
                command
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(env!("CARGO_BIN_EXE_connvault"));
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_connvault")),
        };
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(self.data.path().join("data"))
            .arg("--plugin-dir")
            .arg(self.plugins.path())
            .args(["--log-level", "debug"])
            .args(["--shutdown-grace-ms", "500"])
            .args(&self.options.args)
            .env("CONNVAULT_JWT_HS256_SECRET", TOKEN_SECRET)
            .arg("--audit-log")
            .arg(self.data.path().join("audit.jsonl"))
            .env_remove("RUST_LOG")
            .env_remove("CONNVAULT_MASTER_KEY")
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.log)
                    .unwrap(),
            );
        let jwks = match &self.options.jwks_file {
            Some(path) => format!("jwks_file = \"{}\"\n", path.display()),
            None => String::new(),
        };
        let mut toml = format!(
            "[auth]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n{jwks}\n[[auth.keys]]\nkid = \"rs1\"\nalg = \"RS256\"\npem_file = \"{}\"\n\n",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/rs256-public.pem")
                .display()
        );
        match &self.options.master_key {
            Some(key) => {
                command.env("CONNVAULT_MASTER_KEY", key);
                // Outside --dev, plugins need pins: pin every plugin in the directory.
                toml.push_str("[plugins.pins]\n");
                for entry in std::fs::read_dir(self.plugins.path())
                    .unwrap()
                    .map(Result::unwrap)
                {
                    toml.push_str(&format!(
                        "\"{}\" = \"{}\"\n",
                        entry.file_name().to_string_lossy(),
                        sha256_file(&entry.path())
                    ));
                }
            }
            None => {
                command.arg("--dev");
            }
        }
        // Any free port, unless the test chose (port 8080 would collide).
        if !self.options.args.iter().any(|arg| arg == "--http-listen") {
            command.args(["--http-listen", "127.0.0.1:0"]);
        }
        toml.push_str(&self.options.toml);
        let config = self.data.path().join("connvault.toml");
        std::fs::write(&config, toml).unwrap();
        command.arg("--config").arg(config);
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        let printed = std::sync::Arc::clone(&self.stdout);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("connvault listening on ") {
                    let _ = sender.send(addr.to_owned());
                }
                printed.lock().unwrap().push(line);
            }
        });
        match receiver.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => {
                self.addr = format!("http://{addr}");
                // Printed before the gRPC line, so already collected.
                self.http_addr = self
                    .stdout
                    .lock()
                    .unwrap()
                    .iter()
                    .rev()
                    .find_map(|line| line.strip_prefix("connvault http listening on "))
                    .unwrap_or_default()
                    .to_owned();
                self.child = Some(child);
                Ok(())
            }
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                Err(format!("exit {status:?}; log:\n{}", self.log_text()))
            }
        }
    }

    /// Stops the process with SIGTERM and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY-free: send SIGTERM through the kill command to keep tests free of unsafe.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    /// Kills the process with SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn()
            .unwrap_or_else(|error| panic!("server did not restart: {error}"));
    }

    /// Changes the master key used by the next `spawn`.
    pub fn set_master_key(&mut self, key: &str) {
        self.options.master_key = Some(key.to_owned());
    }

    /// Starts a second process on this server's data directory while the first runs.
    pub fn spawn_second(&mut self) -> Result<(), String> {
        let first = self.child.take();
        let result = self.spawn();
        let second = std::mem::replace(&mut self.child, first);
        if let Some(mut child) = second {
            let _ = child.kill();
            let _ = child.wait();
        }
        result
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data.path().join("data")
    }

    /// The `--audit-log` JSON lines written so far.
    pub fn audit_file_text(&self) -> String {
        std::fs::read_to_string(self.data.path().join("audit.jsonl")).unwrap_or_default()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.addr.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// A channel acting with `token` (`None`: no authorization header).
    pub async fn channel_as(&self, token: Option<String>) -> Authed {
        InterceptedService::new(self.channel().await, Bearer(token))
    }

    pub async fn connections(&self) -> ConnectionServiceClient<Authed> {
        ConnectionServiceClient::new(self.channel_as(Some(operator_token())).await)
    }

    pub async fn tenants(&self) -> TenantServiceClient<Authed> {
        TenantServiceClient::new(self.channel_as(Some(operator_token())).await)
    }

    pub async fn data_sources(&self) -> DataSourceServiceClient<Authed> {
        DataSourceServiceClient::new(self.channel_as(Some(operator_token())).await)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub async fn create_tenant(&self, id: &str) {
        self.tenants()
            .await
            .create_tenant(v1::CreateTenantRequest {
                tenant_id: id.into(),
                tenant: Some(v1::Tenant {
                    display_name: format!("Tenant {id}"),
                    ..Default::default()
                }),
            })
            .await
            .unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// A `google.protobuf.Struct` from string pairs.
pub fn config(pairs: &[(&str, &str)]) -> prost_types::Struct {
    prost_types::Struct {
        fields: pairs
            .iter()
            .map(|(key, value)| {
                (
                    (*key).to_owned(),
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::StringValue((*value).to_owned())),
                    },
                )
            })
            .collect(),
    }
}

/// A valid fixture connection.
pub fn connection(display_name: &str, password: &str) -> v1::Connection {
    v1::Connection {
        display_name: display_name.into(),
        data_source: "TESTDB".into(),
        config: Some(config(&[
            ("host", "db.example.com"),
            ("user", "app"),
            ("database", "orders"),
        ])),
        secrets: [("password".to_owned(), password.to_owned())]
            .into_iter()
            .collect(),
        labels: [("env".to_owned(), "prod".to_owned())]
            .into_iter()
            .collect(),
        product: "Reporting".into(),
        ..Default::default()
    }
}

pub async fn create(
    client: &mut ConnectionServiceClient<Authed>,
    tenant: &str,
    connection: v1::Connection,
) -> Result<v1::Connection, tonic::Status> {
    client
        .create_connection(v1::CreateConnectionRequest {
            parent: format!("tenants/{tenant}"),
            connection: Some(connection),
            validate_only: false,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The field paths of an INVALID_ARGUMENT's BadRequest details.
pub fn violations(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

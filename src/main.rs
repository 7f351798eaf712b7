//! The `connvault` binary.

use anyhow::Context;
use clap::{Parser, Subcommand};
use connvault::config::{Config, LogFormat, ServeArgs};
use secrecy::SecretString;
use tracing_subscriber::EnvFilter;

mod cli_backup;
mod cli_transfer;

// sled copies tree nodes on every write and the server allocates per request
// from many threads; glibc's allocator spent a quarter of a create's CPU time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// connvault keeps connections to your customers' data sources, for many tenants.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the gRPC server.
    Serve(Box<ServeArgs>),
    /// Mints an HS256 bearer token with the configured secret (CONNVAULT_JWT_HS256_SECRET
    /// or auth.hs256_secret_file), issuer and audience.
    Token(TokenArgs),
    /// Serves one plugin for the server, confined (started by the server
    /// itself, with its socket on fd 3 and the plugin on fd 4).
    #[command(name = connvault::RUNNER_SUBCOMMAND, hide = true)]
    PluginRunner,
    /// Offline tools for a data directory's store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Streams a consistent backup of a running server (AdminService.Backup) into a file.
    Backup(cli_backup::BackupArgs),
    /// Builds a new data directory from a backup file.
    Restore(cli_backup::RestoreArgs),
    /// Exports a tenant with its connections and secrets, age-encrypted (AdminService.ExportTenant).
    ExportTenant(cli_transfer::ExportArgs),
    /// Imports a tenant export, re-sealed under the server's keys (AdminService.ImportTenant).
    ImportTenant(cli_transfer::ImportArgs),
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Checks a data directory at rest: reads every record, opens every sealed
    /// secret, checks every index and the change sequence against the progress
    /// record; prints counts and each problem; exits non-zero on any.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// The data directory (of a stopped server).
    #[arg(long, env = "CONNVAULT_DATA_DIR")]
    data_dir: std::path::PathBuf,
    /// Master key file (base64 of 32 bytes, mode 0600). Or set CONNVAULT_MASTER_KEY.
    #[arg(long, env = "CONNVAULT_MASTER_KEY_FILE")]
    master_key_file: Option<std::path::PathBuf>,
    /// Use the development master key kept in the data directory.
    #[arg(long)]
    dev: bool,
    /// Where to copy the store for the check [default: the system's temporary directory].
    #[arg(long)]
    scratch_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// The principal (`sub`).
    #[arg(long)]
    sub: String,
    /// A tenant the token may act in (repeat; `*` for every tenant, admin only).
    #[arg(long = "tenant", required = true)]
    tenants: Vec<String>,
    /// A role (repeat).
    #[arg(long = "role", value_enum, required = true)]
    roles: Vec<connvault::auth::Role>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// The config file holding `[auth]` settings.
    #[arg(long, env = "CONNVAULT_CONFIG")]
    config: Option<std::path::PathBuf>,
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}

fn secret_env(name: &str) -> Option<SecretString> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .map(SecretString::from)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A runner must confine itself while it has a single thread (Landlock
    // and seccomp bind the calling thread and those it starts later), so it
    // runs before any async runtime exists.
    if let Command::PluginRunner = cli.command {
        std::process::exit(match connvault_plugin_host::runner::main() {
            code if code == std::process::ExitCode::SUCCESS => 0,
            _ => 1,
        });
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(cli.command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let config = Config::load(&args).context("loading configuration")?;
            init_logging(&config);
            let secrets = connvault::server::StartSecrets {
                master_key: secret_env("CONNVAULT_MASTER_KEY"),
                jwt_hs256: secret_env("CONNVAULT_JWT_HS256_SECRET"),
            };
            connvault::server::run(config, secrets, shutdown_signal())
                .await
                .context("connvault failed")?;
        }
        Command::Token(args) => {
            let config = match &args.config {
                Some(path) => Config::from_file(path).context("loading configuration")?,
                None => Config::default(),
            };
            let secret = match (
                secret_env("CONNVAULT_JWT_HS256_SECRET"),
                &config.auth.hs256_secret_file,
            ) {
                (Some(secret), _) => secret,
                (None, Some(path)) => SecretString::from(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?
                        .trim()
                        .to_owned(),
                ),
                (None, None) => anyhow::bail!(
                    "no signing secret: set CONNVAULT_JWT_HS256_SECRET or auth.hs256_secret_file"
                ),
            };
            if args.ttl > config.auth.max_token_lifetime_secs {
                anyhow::bail!(
                    "--ttl {} is over auth.max_token_lifetime_secs ({}): the server would refuse the token",
                    args.ttl,
                    config.auth.max_token_lifetime_secs
                );
            }
            let minter = connvault::auth::Minter::new(&secret, &config.auth);
            let token = minter.mint(
                &args.sub,
                &args.tenants,
                &args.roles,
                connvault::auth::unix_now(),
                args.ttl,
            )?;
            println!("{token}");
        }
        Command::PluginRunner => {}
        Command::Store(StoreCommand::Verify(args)) => verify(args).await?,
        Command::Backup(args) => cli_backup::backup(args).await?,
        Command::Restore(args) => cli_backup::restore(args).await?,
        Command::ExportTenant(args) => cli_transfer::export(args).await?,
        Command::ImportTenant(args) => cli_transfer::import(args).await?,
    }
    Ok(())
}

/// `connvault store verify`: prints the report; an error if it found problems.
async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let dev_key = args.data_dir.join(connvault::master_key::DEV_KEY_FILE);
    // The check must not create a development key where none was.
    if args.dev && !dev_key.exists() {
        anyhow::bail!("--dev: no development master key at {}", dev_key.display());
    }
    let (master, _) = connvault::master_key::load_master_key(
        secret_env("CONNVAULT_MASTER_KEY"),
        args.master_key_file.as_deref(),
        args.dev,
        &args.data_dir,
    )?;
    let report = connvault::verify::verify(&args.data_dir, master, args.scratch_dir.as_deref())
        .await
        .context("connvault store verify")?;
    print!("{report}");
    if !report.problems.is_empty() {
        anyhow::bail!(
            "{} problem(s) found in {}",
            report.problems.len(),
            args.data_dir.display()
        );
    }
    Ok(())
}

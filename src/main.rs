//! The `connvault` binary.

use anyhow::Context;
use clap::{Parser, Subcommand};
use connvault::config::{Config, LogFormat, ServeArgs};
use secrecy::SecretString;
use tracing_subscriber::EnvFilter;

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
    Serve(ServeArgs),
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = Config::load(&args).context("loading configuration")?;
            init_logging(&config);
            let master_key = std::env::var("CONNVAULT_MASTER_KEY")
                .ok()
                .filter(|value| !value.is_empty())
                .map(SecretString::from);
            connvault::server::run(config, master_key, shutdown_signal())
                .await
                .context("connvault failed")?;
        }
    }
    Ok(())
}

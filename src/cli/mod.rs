//! The client verbs of `connvault` (`tenants`, `connections`, `data-sources`,
//! `audit`, `completions`): the API from a shell, the way `vault` or
//! `kubectl` work. Secrets come from a file or a prompt, never a flag.
//!
//! Exit codes say what failed (see [`CliError::exit_code`]).

mod connect;
mod connections;
mod output;
mod resources;
mod secrets;

pub use connect::Connect;
pub use connections::ConnectionsCommand;
pub use output::Output;
pub use resources::{AuditCommand, DataSourcesCommand, TenantsCommand};

/// Why a client verb failed; each kind has its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line is wrong (exit 2, as clap's own usage errors).
    #[error("{0}")]
    Usage(String),
    /// A file or prompt did not give what was needed (exit 3).
    #[error("{0}")]
    Input(String),
    /// The server could not be reached (exit 4).
    #[error("cannot reach the server: {0}")]
    Connect(String),
    /// The server refused the caller: UNAUTHENTICATED or PERMISSION_DENIED (exit 5).
    #[error("{0}")]
    Denied(String),
    /// What the call names does not exist: NOT_FOUND (exit 6).
    #[error("{0}")]
    NotFound(String),
    /// The server refused the request as asked: INVALID_ARGUMENT,
    /// FAILED_PRECONDITION, ALREADY_EXISTS, ABORTED, OUT_OF_RANGE (exit 7).
    #[error("{0}")]
    Refused(String),
    /// A connection test ran and the connection does not work (exit 8).
    #[error("{0}")]
    TestFailed(String),
    /// The server is busy or stopping: UNAVAILABLE, RESOURCE_EXHAUSTED,
    /// DEADLINE_EXCEEDED (exit 9; trying again may work).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else (exit 1).
    #[error("{0}")]
    Internal(String),
}

impl CliError {
    /// The process exit code of this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Internal(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Input(_) => 3,
            CliError::Connect(_) => 4,
            CliError::Denied(_) => 5,
            CliError::NotFound(_) => 6,
            CliError::Refused(_) => 7,
            CliError::TestFailed(_) => 8,
            CliError::Unavailable(_) => 9,
        }
    }
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        let mut text = format!("{:?}: {}", status.code(), status.message());
        // The field violations of a BadRequest, one per line.
        if let Ok(details) = tonic_types::StatusExt::check_error_details(&status)
            && let Some(bad) = details.bad_request()
        {
            for violation in &bad.field_violations {
                let line = format!("{}: {}", violation.field, violation.description);
                // The server's message usually says it already.
                if !status.message().contains(&line) {
                    text.push_str(&format!("\n  {line}"));
                }
            }
        }
        match status.code() {
            Code::Unauthenticated | Code::PermissionDenied => CliError::Denied(text),
            Code::NotFound => CliError::NotFound(text),
            Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::AlreadyExists
            | Code::Aborted
            | Code::OutOfRange => CliError::Refused(text),
            Code::Unavailable | Code::ResourceExhausted | Code::DeadlineExceeded => {
                CliError::Unavailable(text)
            }
            _ => CliError::Internal(text),
        }
    }
}

/// The client verbs, flattened into `connvault`'s own subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Tenants: list, get, create, delete.
    Tenants(Box<Verb<TenantsCommand>>),
    /// Connections: list, get, create, update, delete, test, discover, resolve.
    Connections(Box<Verb<ConnectionsCommand>>),
    /// The data sources the server's plugins serve, with their fields.
    #[command(name = "data-sources")]
    DataSources(Box<Verb<DataSourcesCommand>>),
    /// The audit log: list, follow.
    Audit(Box<Verb<AuditCommand>>),
}

/// A client verb with the flags every verb shares.
#[derive(Debug, clap::Args)]
pub struct Verb<C: clap::Subcommand> {
    #[command(flatten)]
    connect: Connect,
    /// How to print answers.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
    #[command(subcommand)]
    command: C,
}

/// Runs a client verb; prints its failure on stderr and returns the exit code.
pub async fn run(command: ClientCommand) -> i32 {
    let result = match command {
        ClientCommand::Tenants(verb) => verb.command.run(&verb.connect, verb.output).await,
        ClientCommand::Connections(verb) => verb.command.run(&verb.connect, verb.output).await,
        ClientCommand::DataSources(verb) => verb.command.run(&verb.connect, verb.output).await,
        ClientCommand::Audit(verb) => verb.command.run(&verb.connect, verb.output).await,
    };
    match result {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("connvault: {error}");
            i32::from(error.exit_code())
        }
    }
}

/// Writes the completion script for `shell` of the whole `connvault` command.
pub fn completions(shell: clap_complete::Shell, command: &mut clap::Command) {
    clap_complete::generate(shell, command, "connvault", &mut std::io::stdout());
}

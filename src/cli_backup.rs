//! `connvault backup` and `connvault restore`: the client side of
//! `AdminService.Backup`, and building a data directory from its file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use connvault::backup::{self, BackupReader};
use connvault::pb::v1;
use connvault::pb::v1::admin_service_client::AdminServiceClient;
use secrecy::{ExposeSecret as _, SecretString};

/// The server a client verb calls, and its credentials.
#[derive(Debug, clap::Args)]
pub struct Remote {
    /// The server (`http://host:port`; plaintext, loopback or behind a TLS-terminating proxy).
    #[arg(long, env = "CONNVAULT_ADDR", default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// A file holding an admin bearer token. Or set CONNVAULT_TOKEN.
    #[arg(long, env = "CONNVAULT_TOKEN_FILE")]
    token_file: Option<PathBuf>,
}

/// An `AdminService` client sending the bearer token.
pub type Admin = AdminServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
>;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

impl Remote {
    fn token(&self) -> anyhow::Result<SecretString> {
        if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the token file {}", path.display()))?;
            return Ok(SecretString::from(text.trim().to_owned()));
        }
        match std::env::var("CONNVAULT_TOKEN") {
            Ok(token) if !token.is_empty() => Ok(SecretString::from(token)),
            _ => anyhow::bail!("no token: give --token-file or set CONNVAULT_TOKEN"),
        }
    }

    /// Connects to the server.
    pub async fn admin(&self) -> anyhow::Result<Admin> {
        let mut bearer: tonic::metadata::MetadataValue<tonic::metadata::Ascii> =
            format!("Bearer {}", self.token()?.expose_secret())
                .parse()
                .context("the token is not a valid header value")?;
        bearer.set_sensitive(true);
        let channel = tonic::transport::Endpoint::from_shared(self.addr.clone())
            .with_context(|| format!("--addr {}", self.addr))?
            .connect()
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        Ok(
            AdminServiceClient::with_interceptor(channel, Bearer(bearer))
                .max_decoding_message_size(4 << 20),
        )
    }
}

/// `connvault backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    #[command(flatten)]
    remote: Remote,
    /// Where to write the backup (must not exist; written as FILE.partial, checked, then renamed).
    #[arg(long)]
    out: PathBuf,
}

/// `connvault restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup file (`connvault backup --out`).
    #[arg(long)]
    from: PathBuf,
    /// The new data directory: absent or empty.
    #[arg(long)]
    data_dir: PathBuf,
}

/// Streams a backup of the server at `--addr` into `--out`.
pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    if args.out.exists() {
        anyhow::bail!("{} exists: choose a new file", args.out.display());
    }
    let mut client = args.remote.admin().await?;
    let partial = partial_path(&args.out);
    let result = receive(&mut client, &partial).await;
    let (bytes, entries) = match result {
        Ok(done) => done,
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
    };
    std::fs::rename(&partial, &args.out)
        .with_context(|| format!("renaming {} to {}", partial.display(), args.out.display()))?;
    sync_parent(&args.out)?;
    println!(
        "backup written to {}: {bytes} bytes, {entries} store entries, checksums verified",
        args.out.display()
    );
    Ok(())
}

/// `FILE.partial`, where a download goes until it is complete.
pub fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Makes `path`'s name durable.
pub fn sync_parent(path: &Path) -> anyhow::Result<()> {
    let parent = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(parent)?.sync_all()?;
    Ok(())
}

/// Writes the stream into `partial`, then reads the file back through
/// every checksum; returns its length and its number of entries.
async fn receive(client: &mut Admin, partial: &Path) -> anyhow::Result<(u64, u64)> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut stream = client
        .backup(v1::BackupRequest {})
        .await
        .context("AdminService.Backup")?
        .into_inner();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut written = 0u64;
    let mut total = None;
    while let Some(piece) = stream.message().await.context("receiving the backup")? {
        if total.is_none() {
            total = Some(piece.total_bytes);
        }
        file.write_all(&piece.data)
            .with_context(|| format!("writing {}", partial.display()))?;
        written += piece.data.len() as u64;
    }
    file.sync_all()?;
    drop(file);
    if total != Some(written) {
        anyhow::bail!(
            "the server announced {} bytes but sent {written}: the backup is incomplete",
            total.unwrap_or_default()
        );
    }
    let check = partial.to_path_buf();
    let entries = tokio::task::spawn_blocking(move || -> Result<u64, backup::BackupError> {
        let mut reader = BackupReader::new(std::io::BufReader::new(std::fs::File::open(&check)?))?;
        while reader.next_chunk()?.is_some() {}
        Ok(reader.entries())
    })
    .await
    .context("checking the backup")?
    .context("the received backup does not check out")?;
    Ok((written, entries))
}

/// Builds a new data directory from a backup file.
pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let from = args.from.clone();
    let data_dir = args.data_dir.clone();
    let restored = tokio::task::spawn_blocking(move || {
        backup::restore(
            || std::fs::File::open(&from).map(std::io::BufReader::new),
            &data_dir,
        )
    })
    .await
    .context("restore task")?
    .with_context(|| {
        format!(
            "restoring {} into {} (nothing was left behind)",
            args.from.display(),
            args.data_dir.display()
        )
    })?;
    println!(
        "restored {} store entries into {} (backup by {}; store at change {}); \
         check it with `connvault store verify --data-dir {}` and start the server on it with the same master key",
        restored.entries,
        restored.data_dir.display(),
        restored.created_by,
        restored.progress.last_change_seq,
        restored.data_dir.display(),
    );
    Ok(())
}

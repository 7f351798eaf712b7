//! `connvault export-tenant` and `connvault import-tenant`: the client side
//! of `AdminService.ExportTenant` and `ImportTenant`. The age envelope is
//! made and opened by the server; the file holds only ciphertext.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;
use connvault::pb::v1;
use secrecy::{ExposeSecret as _, SecretString};

use crate::cli_backup::{Remote, partial_path, sync_parent};

/// Bytes of the export per ImportTenant message (the server's bound).
const PIECE: usize = connvault::bounds::MAX_IMPORT_PIECE_BYTES;

/// `connvault export-tenant`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    remote: Remote,
    /// The tenant's id.
    #[arg(long)]
    tenant: String,
    /// Encrypt to this age X25519 recipient (`age1...`).
    #[arg(
        long,
        conflicts_with = "passphrase_file",
        required_unless_present = "passphrase_file"
    )]
    recipient: Option<String>,
    /// Encrypt with the passphrase in this file (`-`: read it from standard input).
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
    /// Where to write the export (must not exist).
    #[arg(long)]
    out: PathBuf,
}

/// `connvault import-tenant`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    remote: Remote,
    /// The export file (`connvault export-tenant --out`).
    #[arg(long)]
    from: PathBuf,
    /// A file holding the age X25519 identity (`AGE-SECRET-KEY-1...`, as age-keygen writes it).
    #[arg(
        long,
        conflicts_with = "passphrase_file",
        required_unless_present = "passphrase_file"
    )]
    identity_file: Option<PathBuf>,
    /// A file holding the passphrase the export was encrypted with (`-`: standard input).
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
    /// Import into an existing tenant and skip (and list) connections whose
    /// id or display name is taken, instead of refusing the whole import.
    #[arg(long)]
    skip_existing: bool,
}

/// Reads a secret from a file (or standard input for `-`), trimmed of its
/// line end.
fn read_secret(path: &std::path::Path) -> anyhow::Result<SecretString> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
    } else {
        text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    }
    let secret = SecretString::from(text.trim_end_matches(['\r', '\n']).to_owned());
    zeroize::Zeroize::zeroize(&mut text);
    Ok(secret)
}

/// The identity line of an age identity file (comments skipped).
fn identity_line(secret: &SecretString) -> SecretString {
    let line = secret
        .expose_secret()
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .unwrap_or_default();
    SecretString::from(line.to_owned())
}

/// Exports a tenant into `--out`, encrypted by the server.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    use v1::export_tenant_request::Recipient;
    if args.out.exists() {
        anyhow::bail!("{} exists: choose a new file", args.out.display());
    }
    let recipient = match (&args.recipient, &args.passphrase_file) {
        (Some(key), _) => Recipient::AgeRecipient(key.clone()),
        (None, Some(path)) => Recipient::Passphrase(read_secret(path)?.expose_secret().to_owned()),
        (None, None) => anyhow::bail!("give --recipient or --passphrase-file"),
    };
    let mut client = args.remote.admin().await?;
    let mut stream = client
        .export_tenant(v1::ExportTenantRequest {
            name: format!("tenants/{}", args.tenant),
            recipient: Some(recipient),
        })
        .await
        .context("AdminService.ExportTenant")?
        .into_inner();
    let partial = partial_path(&args.out);
    let result: anyhow::Result<(u64, u32)> = async {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        let (mut written, mut total, mut connections) = (0u64, None, 0);
        while let Some(piece) = stream.message().await.context("receiving the export")? {
            if total.is_none() {
                total = Some(piece.total_bytes);
                connections = piece.connections;
            }
            file.write_all(&piece.data)?;
            written += piece.data.len() as u64;
        }
        file.sync_all()?;
        if total != Some(written) {
            anyhow::bail!("the export is incomplete: {written} of {total:?} bytes");
        }
        Ok((written, connections))
    }
    .await;
    let (bytes, connections) = result.inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    std::fs::rename(&partial, &args.out)?;
    sync_parent(&args.out)?;
    println!(
        "exported tenants/{} ({connections} connection(s), {bytes} bytes, age-encrypted) to {}",
        args.tenant,
        args.out.display()
    );
    Ok(())
}

/// Imports an export file; prints what was imported and skipped.
pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    use v1::import_tenant_request::Identity;
    let identity = match (&args.identity_file, &args.passphrase_file) {
        (Some(path), _) => Identity::AgeIdentity(
            identity_line(&read_secret(path)?)
                .expose_secret()
                .to_owned(),
        ),
        (None, Some(path)) => Identity::Passphrase(read_secret(path)?.expose_secret().to_owned()),
        (None, None) => anyhow::bail!("give --identity-file or --passphrase-file"),
    };
    let data =
        std::fs::read(&args.from).with_context(|| format!("reading {}", args.from.display()))?;
    let mut messages = vec![v1::ImportTenantRequest {
        identity: Some(identity),
        skip_existing: args.skip_existing,
        data: Vec::new(),
    }];
    messages.extend(data.chunks(PIECE).map(|piece| v1::ImportTenantRequest {
        data: piece.to_vec(),
        ..Default::default()
    }));
    let mut client = args.remote.admin().await?;
    let response = client
        .import_tenant(tokio_stream::iter(messages))
        .await
        .context("AdminService.ImportTenant")?
        .into_inner();
    println!(
        "{} {}: {} connection(s) imported, {} skipped",
        if response.tenant_created {
            "created"
        } else {
            "imported into existing"
        },
        response.tenant,
        response.imported.len(),
        response.skipped.len()
    );
    for skipped in &response.skipped {
        println!(
            "  skipped {} ({:?}): {}",
            skipped.name, skipped.display_name, skipped.reason
        );
    }
    Ok(())
}

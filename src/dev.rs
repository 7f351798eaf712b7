//! Development mode: a signing secret, a `dev` tenant and ready-made tokens,
//! kept in the data directory so they stay the same across restarts.

use std::path::Path;

use base64::Engine;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::auth::{AuthConfig, AuthError, Minter, Role, unix_now};

const SECRET_FILE: &str = "dev-jwt.secret";
const TOKENS_FILE: &str = "dev-tokens.json";
/// How long dev tokens live.
pub(crate) const DEV_TOKEN_TTL: u64 = 365 * 24 * 3600;

/// The tokens printed at start in dev mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevTokens {
    /// Operator: every tenant, every role.
    pub admin: String,
    /// Writer and resolver (and reader) in the `dev` tenant.
    pub dev: String,
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// The dev HS256 secret in `data_dir`, created on first use.
pub fn secret(data_dir: &Path) -> Result<SecretString, AuthError> {
    let path = data_dir.join(SECRET_FILE);
    if !path.exists() {
        let mut bytes = [0u8; 32];
        rand_bytes(&mut bytes)?;
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        write_private(&path, text.as_bytes()).map_err(|error| {
            AuthError::Config(format!("cannot write {}: {error}", path.display()))
        })?;
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|error| AuthError::Config(format!("cannot read {}: {error}", path.display())))?;
    Ok(SecretString::from(text.trim().to_owned()))
}

fn rand_bytes(bytes: &mut [u8]) -> Result<(), AuthError> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(bytes))
        .map_err(|error| AuthError::Config(format!("no randomness: {error}")))
}

/// The dev tokens in `data_dir`, minted on first use.
pub fn tokens(
    data_dir: &Path,
    secret: &SecretString,
    config: &AuthConfig,
) -> Result<DevTokens, AuthError> {
    let path = data_dir.join(TOKENS_FILE);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(tokens) = serde_json::from_str::<DevTokens>(&text)
    {
        return Ok(tokens);
    }
    let minter = Minter::new(secret, config);
    let now = unix_now();
    let tokens = DevTokens {
        admin: minter.mint(
            "dev-admin",
            &["*".into()],
            &[Role::Admin, Role::Reader, Role::Writer, Role::Resolver],
            now,
            DEV_TOKEN_TTL,
        )?,
        dev: minter.mint(
            "dev-app",
            &["dev".into()],
            &[Role::Reader, Role::Writer, Role::Resolver],
            now,
            DEV_TOKEN_TTL,
        )?,
    };
    let text = serde_json::to_string_pretty(&tokens)
        .map_err(|error| AuthError::Config(error.to_string()))?;
    let _ = std::fs::remove_file(&path);
    write_private(&path, text.as_bytes())
        .map_err(|error| AuthError::Config(format!("cannot write {}: {error}", path.display())))?;
    Ok(tokens)
}

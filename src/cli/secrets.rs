//! Secret values for a connection: read from files or typed at a prompt,
//! never taken from a flag (a flag's value lands in shell history and in
//! the process list).

use std::collections::HashMap;
use std::path::PathBuf;

use zeroize::Zeroizing;

use super::CliError;

/// Where a connection's secrets come from.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SecretArgs {
    /// A secret field read from a file, `NAME=PATH` (repeat); one trailing newline is dropped.
    #[arg(long = "secret-file", value_name = "NAME=PATH")]
    pub files: Vec<String>,
    /// A secret field typed at a prompt, without echo (repeat).
    #[arg(long = "secret-prompt", value_name = "NAME")]
    pub prompts: Vec<String>,
}

/// A field name: what the API accepts in `secrets` keys.
fn field_name(name: &str) -> Result<String, CliError> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(CliError::Usage(format!(
            "{name:?} is not a field name (letters, digits, _ - .)"
        )));
    }
    Ok(name.to_owned())
}

/// The most bytes a secret file may hold (the server's own limit is lower).
const MAX_SECRET_FILE: u64 = 1024 * 1024;

impl SecretArgs {
    /// Whether any secret was asked for.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.prompts.is_empty()
    }

    /// The secrets, read now.
    pub fn read(&self) -> Result<HashMap<String, Zeroizing<String>>, CliError> {
        let mut secrets = HashMap::new();
        for spec in &self.files {
            let (name, path) = spec
                .split_once('=')
                .ok_or_else(|| CliError::Usage(format!("--secret-file {spec}: NAME=PATH")))?;
            let path = PathBuf::from(path);
            let size = std::fs::metadata(&path)
                .map_err(|error| CliError::Input(format!("{}: {error}", path.display())))?
                .len();
            if size > MAX_SECRET_FILE {
                return Err(CliError::Input(format!(
                    "{}: {size} bytes; a secret file may hold at most {MAX_SECRET_FILE}",
                    path.display()
                )));
            }
            let mut value = Zeroizing::new(
                std::fs::read_to_string(&path)
                    .map_err(|error| CliError::Input(format!("{}: {error}", path.display())))?,
            );
            if value.ends_with('\n') {
                value.pop();
                if value.ends_with('\r') {
                    value.pop();
                }
            }
            secrets.insert(field_name(name)?, value);
        }
        for name in &self.prompts {
            let value = Zeroizing::new(
                rpassword::prompt_password(format!("{name}: "))
                    .map_err(|error| CliError::Input(format!("reading {name}: {error}")))?,
            );
            secrets.insert(field_name(name)?, value);
        }
        Ok(secrets)
    }
}
